#!/usr/bin/env bash
# testbed-down.sh NAME
#
# Removes the namespaces testbed-up.sh NAME made (their veth pairs and
# qdiscs go with them). Processes still running inside are stopped first.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 NAME"
name=$1
need_root
for ns in snd rtr rcv; do
    ip netns list | grep -qw "$name-$ns" || continue
    pids=$(ip netns pids "$name-$ns")
    # shellcheck disable=SC2086 # one PID per word
    if [ -n "$pids" ]; then kill $pids 2>/dev/null || true; fi
    ip netns del "$name-$ns"
done
echo "testbed $name: removed"
