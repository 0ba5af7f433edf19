#!/usr/bin/env bash
# clear.sh IFACE
#
# Removes what apply.sh put on IFACE: the root netem qdisc, the ingress
# redirect and its IFB device. Safe to run when nothing is there.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 IFACE"
iface=$1
need_root
ip link show "$iface" >/dev/null 2>&1 || die "no interface $iface"
tc qdisc del dev "$iface" root 2>/dev/null || true
tc qdisc del dev "$iface" handle ffff: ingress 2>/dev/null || true
ifb="ifb-${iface:0:11}"
if ip link show "$ifb" >/dev/null 2>&1; then ip link del "$ifb"; fi
echo "$iface: cleared"
