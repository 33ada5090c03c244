#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/Targets/*.swift, docs/SECURITY.md
# "Fuzzing") into $FUZZ_BUILD_PATH/release/fuzz-<target>: a release build
# of the Fuzz package, which takes LinliCore, LinliCrypto and LinliProtocol
# (and SwiftProtobuf) from the repository's package, all of it instrumented
# with `--sanitize fuzzer`. libFuzzer comes with the Swift toolchain; the
# system libraries are the package's own (libsodium through pkg-config).
#
#   FUZZ_BUILD_PATH   the build folder (default .build-fuzz, git-ignored)
#   FUZZ_ADDRESS=1    AddressSanitizer too (slower; for C code and unsafe pointers)
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
BUILD=${FUZZ_BUILD_PATH:-.build-fuzz}
sanitizers=(--sanitize fuzzer)
if [ "${FUZZ_ADDRESS:-0}" = 1 ]; then sanitizers+=(--sanitize address); fi
exec "$SWIFT" build -c release --package-path Fuzz --build-path "$BUILD" "${sanitizers[@]}"
