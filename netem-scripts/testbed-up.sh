#!/usr/bin/env bash
# testbed-up.sh NAME [FORWARD_PROFILE [REVERSE_PROFILE]]
#
# Three namespaces on this host: NAME-snd (10.203.1.1) -- NAME-rtr --
# NAME-rcv (10.203.2.1), joined by veth pairs. The impairment sits on the
# router's egress interfaces (FORWARD towards the receiver, REVERSE towards
# the sender; REVERSE defaults to FORWARD), so neither endpoint's own
# queues see it. "none" means no impairment. Run commands with
# `ip netns exec NAME-snd ...`; remove everything with testbed-down.sh NAME.
# netem's limit is raised above the bandwidth-delay product unless the
# profile sets one. If anything fails, what was made is removed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -lt 1 ] || [ $# -gt 3 ]; then die "usage: $0 NAME [FORWARD_PROFILE [REVERSE_PROFILE]]"; fi
name=$1
forward=$(profile_args "${2:-none}")
reverse=$(profile_args "${3:-${2:-none}}")
need_root
case $name in *[!a-zA-Z0-9-]* | "") die "NAME may hold letters, digits and dashes only" ;; esac
[ ${#name} -le 10 ] || die "NAME is at most 10 characters (interface names are short)"
for ns in snd rtr rcv; do
    if ns_exists "$name-$ns"; then die "$name-$ns exists already: testbed-down.sh $name first"; fi
done

done_ok=0
cleanup() {
    if [ "$done_ok" != 1 ]; then "$here/testbed-down.sh" "$name" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
for ns in snd rtr rcv; do
    ip netns add "$name-$ns"
    ip -n "$name-$ns" link set lo up
done
ip link add "$name-s" netns "$name-snd" type veth peer name "$name-rs" netns "$name-rtr"
ip link add "$name-r" netns "$name-rcv" type veth peer name "$name-rr" netns "$name-rtr"
ip -n "$name-snd" addr add 10.203.1.1/24 dev "$name-s"
ip -n "$name-rtr" addr add 10.203.1.254/24 dev "$name-rs"
ip -n "$name-rtr" addr add 10.203.2.254/24 dev "$name-rr"
ip -n "$name-rcv" addr add 10.203.2.1/24 dev "$name-r"
iface_up() { # NS DEV
    ip -n "$1" link set "$2" up
    NS=$1 ip netns exec "$1" bash -c "$(declare -f die offloads_off); offloads_off $2"
}
iface_up "$name-snd" "$name-s"
iface_up "$name-rtr" "$name-rs"
iface_up "$name-rtr" "$name-rr"
iface_up "$name-rcv" "$name-r"
# ARP would cross netem too, and a lost request stalls a path for the
# 1 s retry: pin each end's neighbour.
mac() { ip -n "$1" -o link show dev "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }
pin() { # NS ADDR PEER_NS PEER_DEV DEV
    ip -n "$1" neigh replace "$2" lladdr "$(mac "$3" "$4")" dev "$5" nud permanent
}
pin "$name-snd" 10.203.1.254 "$name-rtr" "$name-rs" "$name-s"
pin "$name-rtr" 10.203.1.1 "$name-snd" "$name-s" "$name-rs"
pin "$name-rtr" 10.203.2.1 "$name-rcv" "$name-r" "$name-rr"
pin "$name-rcv" 10.203.2.254 "$name-rtr" "$name-rr" "$name-r"
ip -n "$name-snd" route add default via 10.203.1.254
ip -n "$name-rcv" route add default via 10.203.2.254
ip netns exec "$name-rtr" sysctl -qw net.ipv4.ip_forward=1

with_limit() {
    case " $1 " in *" limit "*) printf '%s' "$1" ;; *) printf '%s limit 100000' "$1" ;; esac
}
if [ "$forward" != none ]; then NETNS="$name-rtr" netem_or_die "$name-rr" "$(with_limit "$forward")"; fi
if [ "$reverse" != none ]; then NETNS="$name-rtr" netem_or_die "$name-rs" "$(with_limit "$reverse")"; fi
done_ok=1
echo "testbed $name: $name-snd 10.203.1.1 -> $name-rcv 10.203.2.1; forward [$forward], reverse [$reverse]"
