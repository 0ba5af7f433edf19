#!/bin/sh
# Records the A/A calibration runs reports/tests/calibration.rs reads:
# bench/calibration/aa-quiet.json on the machine as it is, and
# aa-busy.json beside a CPU-bound neighbour (one busy loop, stopped by
# its PID at the end). Run from the repository's root:
#   sh bench/calibration/record.sh [quiet|busy]...   (default: both)
set -eu
bin="${TRANSBENCH:-target/release/transbench}"
[ -x "$bin" ] || cargo build --release -p transbench-agents
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for kind in "${@:-quiet busy}"; do
  for k in $kind; do
    hog=
    if [ "$k" = busy ]; then
      sh -c 'while :; do :; done' &
      hog=$!
    fi
    RUST_LOG=warn "$bin" run bench/calibration/aa.toml --out "$dir/$k" >/dev/null || status=$?
    [ -n "$hog" ] && kill "$hog"
    [ "${status:-0}" = 0 ] || exit "$status"
    cp "$dir/$k/results.json" "bench/calibration/aa-$k.json"
    echo "bench/calibration/aa-$k.json"
  done
done
