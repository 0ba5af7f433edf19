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
    ns_exists "$name-$ns" || continue
    for signal in TERM KILL; do
        pids=$(ip netns pids "$name-$ns")
        [ -n "$pids" ] || break
        # shellcheck disable=SC2086 # one PID per word
        kill -s "$signal" $pids 2>/dev/null || true
        sleep 0.5
    done
    ip netns del "$name-$ns"
done
echo "testbed $name: removed"
