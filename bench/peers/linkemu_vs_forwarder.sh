#!/usr/bin/env bash
# What linkemu itself costs: pings and one iperf3 TCP flow between
# the testbed's two namespaces, through linkemu with no impairment
# (`transbench shell --impair-backend linkemu`) and through a minimal C TUN
# forwarder (bench/peers/tun_forwarder.c) between namespaces addressed as
# the testbed's (TUN devices of the same name, MTU, txqueuelen and
# addresses; the forwarder's without offloads). Interleaved
# and repeated, the order rotating each round, so every path sees the same
# machine noise. Prints each round, then the medians and the ratios
# linkemu / forwarder (throughput: higher is better; RTT: lower is).
#
# Pings go 10 ms apart (idle) and then 2 ms apart (warm). On a VM the idle
# ones cost several times the forwarding itself (0.08-0.10 ms against 0.02 on
# one CPU), most likely because each finds caches and TLBs cold after the
# CPU halted.
#
# LINK_PIN=same runs everything on CPU 0 (taskset): the forwarder, or
# transbench with its link thread, and ping and iperf3, so a round trip is
# the forwarding's own work, with no wake-up across CPUs, whose cost on a
# VM (tens of microseconds) depends on where the scheduler put each side.
#
#   bench/peers/linkemu_vs_forwarder.sh [ROUNDS] [SECONDS] [PINGS]
#
# FORWARDER_VNET_HDR=1 adds a path, forwarder-vnet: the forwarder with
# the virtio-net header that the testbed's devices carry (IFF_VNET_HDR),
# without offloads, so each packet costs the kernel the header's work as
# through linkemu. Its round trips and linkemu's then compare the two
# loops on nearly the same kernel work (the throughput still differs by
# the offloads), in the same rounds as the plain forwarder's.
#
# TRANSBENCH_BASELINE=path/to/another/transbench adds that build's linkemu
# as a path of its own, linkemu-base (before and after a change, say).
# Needs root, iperf3 (Debian package `iperf3`), gcc, python3 and a release
# build (`cargo build --release`). Everything it makes (namespaces tb-<pid>-<n>, processes, a
# temporary directory) is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=${1:-5}
secs=${2:-5}
pings=${3:-200}
tb=$(realpath "${TRANSBENCH:-target/release/transbench}")
baseline=${TRANSBENCH_BASELINE:+$(realpath "$TRANSBENCH_BASELINE")}
[ "$(id -u)" = 0 ] || { echo "needs root: namespaces and TUN devices" >&2; exit 1; }
for tool in iperf3 gcc python3; do
    command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install $tool" >&2; exit 1; }
done
[ -x "$tb" ] || { echo "$tb not found: run cargo build --release" >&2; exit 1; }
[ -z "$baseline" ] || [ -x "$baseline" ] || { echo "$baseline is not executable" >&2; exit 1; }
case ${FORWARDER_VNET_HDR:-} in
    "" | 1) ;;
    *) echo "FORWARDER_VNET_HDR is 1 or unset, not ${FORWARDER_VNET_HDR}" >&2; exit 1 ;;
esac
case ${LINK_PIN:-} in
    "") pin=() ;;
    same) pin=(taskset -c 0) ;;
    *) echo "LINK_PIN is same or unset, not ${LINK_PIN}" >&2; exit 1 ;;
esac

work=$(mktemp -d)
pids=()
namespaces=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    for ns in "${namespaces[@]}"; do
        # What a failed run left in our namespaces (an iperf3 server) keeps them alive.
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

gcc -O2 -Wall -Wextra -o "$work/tun_forwarder" bench/peers/tun_forwarder.c

# The testbed's link (testbed/src/lib.rs): device, addresses, MTU, queue.
dev=tb0 snd_addr=10.201.0.1 rcv_addr=10.201.0.2 mtu=1500 txqueuelen=10000

# Runs inside the sender namespace, TRANSBENCH_PEER and TRANSBENCH_PEER_NS
# set as `transbench shell` sets them, with the seconds and the pings as $1
# and $2: prints "MBIT RTT_MS WARM_MS", the iperf3 receiver's rate and the
# medians of the idle and the warm pings before it. The pings come first,
# so the round trip is measured on an idle path, not in the seconds after
# a flow of many Gbit/s (whose rate differs between the paths).
# shellcheck disable=SC2016 # expanded by the shell inside the namespace
measure='
    set -e
    ping -n -c "$2" -i 0.01 "$TRANSBENCH_PEER" >ping.txt
    ping -n -c "$2" -i 0.002 "$TRANSBENCH_PEER" >ping-warm.txt
    ip netns exec "$TRANSBENCH_PEER_NS" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    server=$!
    # The client has the server'"'"'s numbers; a server no client reached would
    # wait for ever.
    trap "kill $server 2>/dev/null || true" EXIT
    sleep 0.5
    # Timeouts: a link that died mid-test fails the run instead of hanging it.
    iperf3 -c "$TRANSBENCH_PEER" -p 5201 -t "$1" -J --connect-timeout 5000 --snd-timeout 5000 >iperf3.json
    python3 -c "
import json, re, statistics
mbit = json.load(open(\"iperf3.json\"))[\"end\"][\"sum_received\"][\"bits_per_second\"] / 1e6
rtt = [statistics.median(float(t) for t in re.findall(r\"time=([0-9.]+)\", open(f).read()))
       for f in (\"ping.txt\", \"ping-warm.txt\")]
print(mbit, *rtt)"'

# linkemu, unimpaired, in namespaces transbench makes and removes.
via_linkemu() {
    (cd "$work" && "${pin[@]}" "$1" shell --impair-backend linkemu --probe-packets 0 -- \
        sh -c "$measure" sh "$secs" "$pings" 2>"$work/shell.err") ||
        { echo "transbench shell failed: $(cat "$work/shell.err")" >&2; exit 1; }
}

n=0
# $1, if given, is the forwarder's `vnet` argument.
via_forwarder() {
    local prefix snd rcv fwd ns addr peer
    prefix="tb-$$-$n"; n=$((n + 1))
    snd="$prefix-snd" rcv="$prefix-rcv"
    ip netns add "$snd"; namespaces+=("$snd")
    ip netns add "$rcv"; namespaces+=("$rcv")
    "${pin[@]}" "$work/tun_forwarder" "$snd" "$rcv" "$dev" "$@" >"$work/fwd.out" & fwd=$!; pids+=("$fwd")
    for _ in $(seq 50); do grep -q ready "$work/fwd.out" 2>/dev/null && break; sleep 0.1; done
    grep -q ready "$work/fwd.out" || { echo "tun_forwarder did not start" >&2; exit 1; }
    for end in "$snd $snd_addr $rcv_addr" "$rcv $rcv_addr $snd_addr"; do
        read -r ns addr peer <<<"$end"
        ip netns exec "$ns" sh -c "echo 1 >/proc/sys/net/ipv6/conf/$dev/disable_ipv6"
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "$dev" mtu "$mtu" txqueuelen "$txqueuelen" up
        ip -n "$ns" addr add "$addr/32" peer "$peer/32" dev "$dev"
    done
    (cd "$work" && ip netns exec "$snd" env TRANSBENCH_PEER="$rcv_addr" TRANSBENCH_PEER_NS="$rcv" \
        "${pin[@]}" sh -c "$measure" sh "$secs" "$pings")
    kill "$fwd"; wait "$fwd" 2>/dev/null || true
    ip netns del "$snd"; ip netns del "$rcv"
    pids=() namespaces=()
}

paths=(forwarder linkemu)
[ -n "$baseline" ] && paths+=(linkemu-base)
[ -n "${FORWARDER_VNET_HDR:-}" ] && paths+=(forwarder-vnet)
printf '%-6s %-14s %10s %10s %10s\n' round path Mbit rtt_ms warm_ms | tee "$work/rows"
for r in $(seq "$rounds"); do
    # Rotate the order each round, so no path always gets the warmer machine.
    for i in $(seq 0 $((${#paths[@]} - 1))); do
        path=${paths[$(((i + r) % ${#paths[@]}))]}
        # Not in a $(...) subshell: what it starts must reach the cleanup.
        case $path in
            forwarder) via_forwarder >"$work/out" ;;
            forwarder-vnet) via_forwarder vnet >"$work/out" ;;
            linkemu) via_linkemu "$tb" >"$work/out" ;;
            linkemu-base) via_linkemu "$baseline" >"$work/out" ;;
        esac
        read -r mbit rtt warm <"$work/out"
        printf '%-6s %-14s %10.1f %10.3f %10.3f\n' "$r" "$path" "$mbit" "$rtt" "$warm" | tee -a "$work/rows"
    done
done
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
med = {
    p: [statistics.median(float(r[i]) for r in rows if r[1] == p) for i in (2, 3, 4)]
    for p in sorted(set(r[1] for r in rows), key=lambda p: (p != "forwarder", p))
}
fwd = med["forwarder"]
for p, (mbit, rtt, warm) in med.items():
    line = f"{p}: median {mbit:.1f} Mbit/s, RTT idle {rtt:.3f} ms, warm {warm:.3f} ms"
    if p != "forwarder":
        line += f"; / forwarder: throughput {mbit / fwd[0]:.3f}x, RTT idle {rtt / fwd[1]:.3f}x, warm {warm / fwd[2]:.3f}x"
    print(line)
PY
