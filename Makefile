# Linli: set-up and everyday commands.
#
#   make demo    a district day: linli-admin enrols the server, two inspectors, a
#                kiosk, staff and a conflict desk; linli-server starts on
#                loopback; linli and linli-kiosk record offline, sync, meet a
#                conflict, verify a kiosk submission; linli-desk settles the
#                conflict; the replicas are compared
#   make test    every test (unit, property, vectors, store, the real programs,
#                the desk page in headless Chromium), then each fuzz target
#                briefly (make fuzz-brief); what CI runs
#   make fuzz    builds the libFuzzer targets (Fuzz/) and runs each for
#                FUZZ_SECONDS (600) on a copy of its seed corpus; fails on a
#                crash (FUZZ_JOBS=2 runs two at once); docs/SECURITY.md
#   make bench   linli-bench merge, sync, bootstrap and desk (--json), release build
#   make simulate  the deterministic simulation, 10,000 seeds of 40 steps
#                (SEEDS=, STEPS=, FROM=), release build; docs/RELIABILITY.md
#   make fault-day the district day through a faulty network, 20 seeds
#                (FAULT_SEEDS=); docs/RELIABILITY.md
#
# Each target installs the system libraries it needs when they are missing.

SWIFT ?= swift
APT_PACKAGES := libsodium-dev libsqlite3-dev pkg-config zlib1g-dev nginx-light openssl chromium chromium-driver fonts-wqy-microhei postgresql-15 systemd
PG_BIN := /usr/lib/postgresql/15/bin

.PHONY: all deps build test demo bench simulate fault-day vectors schema clean-demo fuzz fuzz-build fuzz-brief

all: build

# Installs the C libraries Linli links (through pkg-config) and the programs
# the tests run (nginx for TLS in front of the server, openssl for its test
# certificate, headless Chromium, chromedriver and a Chinese font for the
# web page, PostgreSQL 15 for the PostgreSQL store's tests, which start a
# temporary cluster of their own, and systemd-analyze, which checks the
# service files of deploy/systemd) when missing.
deps:
	@if ! pkg-config --exists libsodium sqlite3 zlib 2>/dev/null || ! { test -x /usr/sbin/nginx || command -v nginx; } >/dev/null || ! command -v openssl >/dev/null || ! command -v chromedriver >/dev/null || ! test -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || ! test -x $(PG_BIN)/initdb || ! test -x /usr/bin/systemd-analyze; then \
		echo "installing $(APT_PACKAGES)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES); \
	fi
	@pkg-config --exists libsodium sqlite3 zlib || { echo "libsodium, sqlite3 or zlib is still missing; install $(APT_PACKAGES)"; exit 1; }
	@test -x /usr/sbin/nginx || command -v nginx >/dev/null || { echo "nginx is still missing; install nginx-light"; exit 1; }
	@command -v chromedriver >/dev/null || { echo "chromedriver is still missing; install chromium chromium-driver"; exit 1; }
	@test -x $(PG_BIN)/initdb || { echo "PostgreSQL 15 is still missing ($(PG_BIN)/initdb); install postgresql-15"; exit 1; }

build: deps
	$(SWIFT) build

# The PostgreSQL store's tests run in a test process of their own, after
# the others: the rest of the suite runs programs and SQLite work that hold
# the process's few threads for seconds at a time, and PostgresNIO's pool,
# which needs one to connect, would wait behind them.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip LinliPostgresTests
	$(SWIFT) test --filter LinliPostgresTests
	$(MAKE) fuzz-brief

# The fuzz targets of Fuzz/Targets, in their own build folder (.build-fuzz,
# release, instrumented with --sanitize fuzzer; libFuzzer comes with the
# Swift toolchain). Each run works on a scratch copy of Fuzz/corpus/<target>
# under .build-fuzz/fuzz-runs, where a crashing input is kept.
FUZZ_SECONDS ?= 600
FUZZ_BRIEF_SECONDS ?= 5
FUZZ_JOBS ?= 1

fuzz-build: deps
	SWIFT=$(SWIFT) Fuzz/build.sh

fuzz: fuzz-build
	FUZZ_JOBS=$(FUZZ_JOBS) Fuzz/run.sh $(FUZZ_SECONDS)

# Every target for FUZZ_BRIEF_SECONDS (5 s each, about 30 s in all), after
# replaying its corpus: a crash found once, and kept in the corpus, stays found.
fuzz-brief: fuzz-build
	Fuzz/run.sh $(FUZZ_BRIEF_SECONDS)

demo: deps
	$(SWIFT) build --product linli-sim
	$(SWIFT) build --product linli-admin
	$(SWIFT) build --product linli-server
	$(SWIFT) build --product linli
	$(SWIFT) build --product linli-kiosk
	$(SWIFT) build --product linli-desk
	Tools/demo.sh

SEEDS ?= 10000
STEPS ?= 40
FROM ?= 1
FAULT_SEEDS ?= 20

simulate: deps
	$(SWIFT) build -c release --product linli-sim
	.build/release/linli-sim simulate --seeds $(SEEDS) --steps $(STEPS) --from $(FROM)

fault-day: deps
	$(SWIFT) build --build-tests
	LINLI_FAULT_SEEDS=$(FAULT_SEEDS) $(SWIFT) test --skip-build --filter FaultyDistrictDayTests

# Embeds Protocol/schema/community-v1.json in the clients after a change.
schema:
	Tools/embed-schema.sh

bench: deps
	$(SWIFT) build -c release --product linli-bench
	$(SWIFT) build -c release --product linli-server
	.build/release/linli-bench merge --json
	.build/release/linli-bench sync --json
	.build/release/linli-bench bootstrap --json
	.build/release/linli-bench desk --json

# Regenerates Protocol/vectors/*.json, Protocol/vectors/trust/*.json and
# Protocol/vectors/protocol/*.json
# (reproducible: the same bytes each time).
vectors: deps
	$(SWIFT) run linli-sim vectors --out Protocol/vectors
	$(SWIFT) run linli-sim trust-vectors --out Protocol/vectors/trust
	$(SWIFT) run linli-sim refusal-vectors --out Protocol/vectors/refusals
	$(SWIFT) run linli-sim protocol-vectors --out Protocol/vectors/protocol

clean-demo:
	rm -rf demo-data
