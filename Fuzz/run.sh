#!/usr/bin/env bash
# Runs each fuzz target built by Fuzz/build.sh for SECONDS on a scratch copy
# of its seed corpus (Fuzz/corpus/<target>), so a run never writes into
# the repository, and prints libFuzzer's closing figures for each.
# Exits non-zero if any target crashed, leaked a trap or timed out; the
# input that did it is kept in $FUZZ_BUILD_PATH/fuzz-runs/<target>/.
#
#   Fuzz/run.sh SECONDS [TARGET...]     (default: every target)
#   FUZZ_JOBS=2       targets run at the same time (default 1)
#   FUZZ_BUILD_PATH   where build.sh built them (default .build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: Fuzz/run.sh SECONDS [TARGET...]}
shift
BUILD=${FUZZ_BUILD_PATH:-.build-fuzz}
if [ $# -gt 0 ]; then targets=("$@"); else targets=(envelope request answer snapshot field schema); fi
jobs=${FUZZ_JOBS:-1}
runs="$BUILD/fuzz-runs"

one() {
    local target=$1
    local dir="$runs/$target"
    rm -rf "$dir"
    mkdir -p "$dir/corpus"
    cp Fuzz/corpus/"$target"/* "$dir/corpus/"
    local seeds
    seeds=$(ls "$dir/corpus" | wc -l)
    local started=$SECONDS
    # The Swift runtime's own crash report would take the signal from
    # libFuzzer, which then keeps no crashing input: it is turned off.
    local status=0
    SWIFT_BACKTRACE=enable=no "$BUILD/release/fuzz-$target" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/" "$dir/corpus" >"$dir/log" 2>&1 || status=$?
    local done_line
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/log" | tail -1 || true)
    local files
    files=$(ls "$dir/corpus" | wc -l)
    if [ "$status" = 0 ]; then
        echo "fuzz-$target: ok, $((SECONDS - started)) s, corpus $seeds seeds -> $files files; ${done_line:-no DONE line}"
    else
        echo "fuzz-$target: FAILED (exit $status) after $((SECONDS - started)) s; input and log in $dir/"
        grep -E 'Fatal error|ERROR: libFuzzer|SUMMARY|Test unit written' "$dir/log" | sed 's/^/    /' | head -8
        return 1
    fi
}

# Each target's outcome is a file, so targets run at once can report.
rm -rf "$runs/outcomes"
mkdir -p "$runs/outcomes"
pids=()
for target in "${targets[@]}"; do
    test -x "$BUILD/release/fuzz-$target" || { echo "fuzz-$target is not built: run Fuzz/build.sh"; exit 1; }
    { if one "$target"; then touch "$runs/outcomes/$target.passed"; else touch "$runs/outcomes/$target.failed"; fi; } &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$jobs" ]; then
        wait "${pids[0]}"
        pids=("${pids[@]:1}")
    fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
passed=$(find "$runs/outcomes" -name '*.passed' | wc -l)
failed=$(find "$runs/outcomes" -name '*.failed' | wc -l)
if [ "$failed" != 0 ]; then
    echo "fuzzing found a crash: fix it, add a regression test with the input, and add the input to Fuzz/corpus/<target>/ (docs/SECURITY.md)"
fi
# A closing line CI reads: one per target, $seconds s each.
echo "fuzzing: $passed passed, $failed failed"
test "$failed" = 0
