#!/usr/bin/env bash
# transbench's bulk workload next to iperf3, one TCP flow (CUBIC on both),
# interleaved and repeated so both see the same machine noise: on loopback,
# and (as root) through the same emulated link, "rate 100mbit delay 10ms
# limit 1000", each tool behind a link of its own built from that profile.
# Prints each round, then the medians and the ratio transbench / iperf3 of
# the goodput the receiving application read, warm-up (1 s) left out.
#
#   bench/peers/iperf3_bulk.sh [ROUNDS] [SECONDS]
#
# Needs iperf3 (Debian package `iperf3`), python3, and a release build
# (`cargo build --release`). Traffic stays on 127.0.0.1 and in namespaces
# transbench makes and removes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.bash
. "$(dirname "$0")/common.bash"

rounds=${1:-5}
secs=${2:-5}
profile="rate 100mbit delay 10ms limit 1000"
command -v iperf3 >/dev/null || { echo "iperf3 not found: apt-get install iperf3" >&2; exit 1; }

port=$((40000 + RANDOM % 10000))
iperf3 -s -B 127.0.0.1 -p "$port" >"$work/iperf3-server.log" 2>&1 & pids+=($!)
"$tb" receiver --listen 127.0.0.1:0 >"$work/tb.out" 2>"$work/tb.err" & pids+=($!)
for _ in $(seq 50); do grep -q "listening on" "$work/tb.out" 2>/dev/null && break; sleep 0.1; done
tb_addr=$(sed -n 's/^transbench receiver listening on //p' "$work/tb.out")
[ -n "$tb_addr" ] || { echo "transbench receiver did not start: $(cat "$work/tb.err")" >&2; exit 1; }
sleep 0.5

mbit_iperf3() { python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6)'; }
mbit_tb() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["trials"][0]["bulk"]["goodput_bps"]/1e6)' "$1"; }

ip_loop() { iperf3 -c 127.0.0.1 -p "$port" -C cubic -O 1 -t "$secs" -J | mbit_iperf3; }
tb_loop() {
    "$tb" sender --connect "$tb_addr" --transport tcp --workload bulk --cc cubic \
        --warmup 1s --duration "${secs}s" --out "$work/r.json" >/dev/null
    mbit_tb "$work/r.json"
}
ip_link() {
    # shellcheck disable=SC2016 # expanded by the shell inside the namespace
    "$tb" shell --impair "$profile" --probe-packets 0 -- sh -c '
        ip netns exec "$TRANSBENCH_PEER_NS" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
        sleep 0.5
        iperf3 -c "$TRANSBENCH_PEER" -p 5201 -C cubic -O 1 -t "$1" -J' sh "$secs" 2>/dev/null | mbit_iperf3
}
tb_link() {
    rm -rf "$work/run"
    "$tb" run --workload bulk --transport tcp --cc cubic --impair "$profile" --probe-packets 0 \
        --warmup 1s --duration "${secs}s" --out "$work/run" >/dev/null
    mbit_tb "$work/run/results.json"
}

paths=(loopback)
if [ "$(id -u)" = 0 ]; then paths+=(link); else echo "not root: loopback only" >&2; fi
printf '%-6s %-9s %12s %12s\n' round path iperf3_Mbit tb_Mbit | tee "$work/rows"
for r in $(seq "$rounds"); do
    for path in "${paths[@]}"; do
        f_ip=ip_loop; f_tb=tb_loop
        [ "$path" = link ] && { f_ip=ip_link; f_tb=tb_link; }
        # Alternate which tool goes first, so neither always gets the warmer machine.
        if (( r % 2 )); then i=$($f_ip); t=$($f_tb); else t=$($f_tb); i=$($f_ip); fi
        printf '%-6s %-9s %12.1f %12.1f\n' "$r" "$path" "$i" "$t" | tee -a "$work/rows"
    done
done
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
for path in dict.fromkeys(r[1] for r in rows):
    ip = statistics.median(float(r[2]) for r in rows if r[1] == path)
    tb = statistics.median(float(r[3]) for r in rows if r[1] == path)
    print(f"{path}: median iperf3 {ip:.1f} Mbit/s, transbench {tb:.1f} Mbit/s, ratio {tb / ip:.3f}")
PY
