#!/usr/bin/env bash
# apply.sh IFACE PROFILE [ingress]
#
# Puts a netem profile on IFACE's egress, or with "ingress" on what IFACE
# receives (through an IFB device: netem on a sender's own egress distorts
# TCP, whose queues then see the delay). PROFILE is a name from profiles/
# (lan, wan-50ms, lossy-1pct, ...), a file, or netem words in quotes.
# Undo with clear.sh IFACE.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -lt 2 ] || [ $# -gt 3 ]; then die "usage: $0 IFACE PROFILE [ingress]"; fi
iface=$1
args=$(profile_args "$2")
direction=${3:-egress}
need_root
ip link show "$iface" >/dev/null 2>&1 || die "no interface $iface"

case $direction in
    egress)
        offloads_off "$iface"
        netem_or_die "$iface" "$args"
        ;;
    ingress)
        ifb="ifb-${iface:0:11}"
        offloads_off "$iface"
        # Whatever fails from here on, clear.sh's work is undone.
        trap '[ "$?" = 0 ] || "$here/clear.sh" "$iface" >/dev/null 2>&1 || true' EXIT
        ip link show "$ifb" >/dev/null 2>&1 || ip link add "$ifb" type ifb
        ip link set "$ifb" up
        tc qdisc replace dev "$iface" handle ffff: ingress
        # Every packet (u32 matching nothing in particular: older kernels
        # lack matchall), with a fixed priority and handle so applying again
        # replaces the filter.
        tc filter replace dev "$iface" parent ffff: protocol all prio 1 handle 800::1 u32 match u32 0 0 \
            action mirred egress redirect dev "$ifb"
        netem_or_die "$ifb" "$args"
        ;;
    *) die "direction must be ingress (or left out for egress), not $direction" ;;
esac
echo "$iface $direction: netem $args"
