#!/usr/bin/env bash
# Holds linkemu against the kernel's netem and rewrites the table in the
# docs: sends every profile of a set through linkemu here and through tc
# netem (in a QEMU guest via vm-run.sh when this kernel has no sch_netem),
# then compares the two feature by feature (transbench fidelity compare).
#
#   netem-scripts/fidelity.sh [--set FILE] [--out DIR] [--doc FILE] [--only NAMES]
#                             [--kernel-root DIR]
#
# --set    the profiles (default bench/fidelity.toml)
# --out    where the traces go (default: a new directory under /tmp, kept)
# --doc    the Markdown table ("-" for none; default docs/fidelity.md for
#          the default set and all its profiles, else none)
# --only   a comma-separated subset of the set's profiles
# --kernel-root  boot the guest from this unpacked kernel package (see
#          vm-run.sh): another kernel's netem, e.g. one that takes `seed`
#          (6.12 does, 6.1 does not; tc must take it too: put a newer
#          iproute2's first in PATH)
#
# Exit status: 0 when no row FAILs unexplained, 1 when one does, 2 for a
# set-up problem. Needs root, a release build of transbench (built if
# missing; TRANSBENCH=path to use another) and, without sch_netem here,
# what vm-run.sh needs. The default set takes about 4 minutes (3 in the
# guest, 1 here).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

invocation="netem-scripts/fidelity.sh${*:+ $*}"
default_set=$repo/bench/fidelity.toml
set_file=$default_set
out=
doc=
only=
kroot=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --set) set_file=$(realpath "$2"); shift 2 ;;
        --out) out=$2; shift 2 ;;
        --doc) doc=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --kernel-root) kroot=(--kernel-root "$2"); shift 2 ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "error: fidelity.sh needs root (namespaces, TUN, tc)" >&2; exit 2; }
if [ -z "$doc" ]; then
    if [ -z "$only" ] && [ "$set_file" = "$default_set" ]; then doc=$repo/docs/fidelity.md; else doc=-; fi
fi
out=${out:-$(mktemp -d /tmp/transbench-fidelity.XXXXXX)}
mkdir -p "$out"
out=$(realpath "$out")

tb=${TRANSBENCH:-$repo/target/release/transbench}
if [ ! -x "$tb" ]; then
    echo "building transbench (cargo build --release)..." >&2
    (cd "$repo" && cargo build --release --quiet) || exit 2
fi
tb=$(realpath "$tb")

probe=(fidelity probe --set "$set_file" --out "$out")
[ -n "$only" ] && probe+=(--only "$only")

# Does this kernel have netem? Tried in a namespace of our own.
ns=tbfid-$$
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
if [ ${#kroot[@]} -eq 0 ] && tc -n "$ns" qdisc add dev lo root netem delay 1ms 2>/dev/null; then
    where="on this host, $(tc -V | head -n 1)"
    "$tb" "${probe[@]}" --backend netem
else
    where="in a QEMU guest, $(tc -V | head -n 1)"
    "$here/vm-run.sh" --timeout 1200 "${kroot[@]}" --rw "$out" -- "$tb" "${probe[@]}" --backend netem
fi
ip netns del "$ns"
trap - EXIT
"$tb" "${probe[@]}" --backend linkemu

compare=(fidelity compare "$out" --set "$set_file" --json "$out/fidelity.json"
    --command "$invocation" --netem-where "$where")
[ "$doc" != - ] && compare+=(--markdown "$doc")
status=0
"$tb" "${compare[@]}" || status=$?
echo "traces and fidelity.json in $out" >&2
exit "$status"
