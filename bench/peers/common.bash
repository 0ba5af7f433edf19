# Sourced by the peer comparisons in this directory: they run from the
# repository's root, against its release build, with a temporary directory
# and the background processes they start (PIDs in `pids`) removed on exit.
# shellcheck shell=bash

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
tb=target/release/transbench
[ -x "$tb" ] || { echo "$tb not found: run cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
