#!/usr/bin/env bash
# The head-of-line table: one `transbench run --workload multistream` per
# cell of delay (each way) x loss (each way), every multistream transport in
# each run (with its no-loss baseline on the same path), then one Markdown
# table of p50, p99 and hol_frac per transport.
#
#   bench/hol/table.sh [OUT_DIR] [-- extra transbench run options]
#
# OUT_DIR defaults to a new transbench-out/hol-table-<UTC time>/.
#
# Defaults: 8 streams x 25 messages/s x 512 bytes, 20 s per trial,
# delays 10 and 50 ms, losses 0, 0.5, 1, 2 and 5 %. Needs root (the
# emulated link), python3 and a release build (`cargo build --release`).
# Set DELAYS / LOSSES (space-separated) to change the grid.
set -euo pipefail
case "${1:-}" in
    ""|--|/*) ;;
    *) set -- "$PWD/$1" "${@:2}" ;;
esac
cd "$(dirname "$0")/../.."

# A grid of its own per run, as `transbench run` makes: a rerun keeps the last.
out=transbench-out/hol-table-$(date -u +%Y%m%dT%H%M%SZ)
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    out=$1
    shift
fi
if compgen -G "$out/*/results.json" >/dev/null; then
    echo "$out already holds a grid: give another OUT_DIR (or none, for a new one)" >&2
    exit 1
fi
[ "${1:-}" = "--" ] && shift
tb=target/release/transbench
[ -x "$tb" ] || { echo "$tb not found: run cargo build --release" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "the emulated link needs root" >&2; exit 1; }

delays=${DELAYS:-"10 50"}
losses=${LOSSES:-"0 0.5 1 2 5"}
mkdir -p "$out"
for d in $delays; do
    for l in $losses; do
        cell="$out/delay${d}ms-loss${l}pct"
        profile="delay ${d}ms"
        [ "$l" != 0 ] && profile="$profile loss ${l}%"
        cmd=("$tb" run --workload multistream --streams 8 --rate 25 --size 512
             --duration 20s --impair "$profile" --out "$cell" "$@")
        echo "${cmd[*]}" >"$cell.cmd"
        echo "== $profile" >&2
        "${cmd[@]}" >"$cell.log" 2>&1 || echo "   (run failed or had failed trials: see $cell.log)" >&2
    done
done
python3 bench/hol/table.py "$out"
