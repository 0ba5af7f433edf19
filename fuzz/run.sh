#!/usr/bin/env bash
# Runs each fuzz target for a bounded time and says, per target, how long
# it ran, how many inputs it executed, and what it found.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default $FUZZ_SECONDS, else 30); every target of
# fuzz/Cargo.toml unless some are named. Works on the stable toolchain:
# no sanitizer (`--sanitizer none`), so nothing needs nightly; what the
# targets catch are panics (failed assertions, overflows: the build keeps
# debug assertions), timeouts and memory past the limit below.
#
# Each target starts from its committed corpus (fuzz/corpus/TARGET/, read
# only) and writes the new inputs it finds to a scratch directory
# ($FUZZ_WORK, else a temporary one, kept) so the committed corpus stays
# small. A crash, a timeout or running out of memory fails the run, with
# the input's path and how to reproduce it; the other targets still run.
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++
# compiler for libFuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-${FUZZ_SECONDS:-30}}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
work=${FUZZ_WORK:-$(mktemp -d -t transbench-fuzz.XXXXXX)}
mkdir -p "$work"

# Per input: 10 s at most; per process: 2 GB of memory.
limits=(-timeout=10 -rss_limit_mb=2048)

echo "fuzz: building the targets (stable, no sanitizer)"
cargo fuzz build --fuzz-dir fuzz --sanitizer none

# A final statistic of libFuzzer's in the current target's log.
stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }

failed=0
summary=()
for t in "${targets[@]}"; do
    new="$work/corpus/$t" artifacts="$work/artifacts/$t" log="$work/$t.log"
    mkdir -p "$new" "$artifacts"
    # What this run finds is what is newer than this (a reused $FUZZ_WORK
    # keeps earlier finds).
    stamp="$work/$t.start"
    touch "$stamp"
    echo "fuzz: $t for ${seconds}s"
    start=$(date +%s)
    status=0
    cargo fuzz run --fuzz-dir fuzz --sanitizer none "$t" "$new" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" "${limits[@]}" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    # How long it fuzzed, as libFuzzer says it ("Done N runs in S
    # second(s)"; not after a crash), else the time with the build.
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    took=${took:-$(($(date +%s) - start))}
    execs=$(stat number_of_executed_units)
    # The last status line's coverage: "#N DONE cov: C ft: F corp: ...".
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
    found=$(find "$artifacts" -type f -newer "$stamp" | sort)
    if [ "$status" -eq 0 ] && [ -z "$found" ]; then
        result="nothing"
    else
        failed=1
        result="FOUND (exit $status): ${found:-no input saved}"
        # What failed, and how to run that input again.
        echo "fuzz: $t failed; the end of its log ($log):"
        tail -n 40 "$log"
        for f in $found; do
            echo "fuzz: reproduce: cargo fuzz run --fuzz-dir fuzz --sanitizer none $t $f"
            echo "fuzz: or without cargo-fuzz: mkdir -p DIR/$t && cp $f DIR/$t/ &&" \
                "TRANSBENCH_FUZZ_REPLAY=DIR cargo test -p transbench-fuzz-targets --test replay $t"
        done
    fi
    summary+=("$(printf '%-10s %5ss %11s %-22s %5s  %s' "$t" "$took" "${execs:--}" "${cov:--}" \
        "$(stat new_units_added)" "$result")")
done

echo "fuzz: summary (new inputs are in $work/corpus, not committed)"
printf '%-10s %6s %11s %-22s %5s  %s\n' target ran execs coverage new found
printf '%s\n' "${summary[@]}"
exit "$failed"
