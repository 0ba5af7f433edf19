#!/usr/bin/env bash
# transbench's stream workload (UDP datagrams at a bit rate, GSO batches
# out, recvmmsg and GRO in) next to iperf3 -u at full speed, 1200-byte
# datagrams, on loopback, interleaved and repeated so both see the same
# machine noise. Prints each round, then the medians and the ratio
# transbench / iperf3 of what the receiver got: iperf3's rate less its lost
# share, and transbench's goodput.
#
#   bench/peers/iperf3_udp.sh [ROUNDS] [SECONDS] [BITRATE]
#
# BITRATE is what transbench offers (default 9.5G: its pacer keeps at most a
# million datagrams a second). Needs iperf3 (Debian package `iperf3`),
# python3, and a release build (`cargo build --release`). Traffic stays on
# 127.0.0.1.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.bash
. "$(dirname "$0")/common.bash"

rounds=${1:-5}
secs=${2:-3}
bitrate=${3:-9.5G}
command -v iperf3 >/dev/null || { echo "iperf3 not found: apt-get install iperf3" >&2; exit 1; }

port=$((40000 + RANDOM % 10000))
iperf3 -s -B 127.0.0.1 -p "$port" >"$work/iperf3-server.log" 2>&1 & pids+=($!)
sleep 0.5

ip() {
    iperf3 -c 127.0.0.1 -p "$port" -u -b 0 -l 1200 -t "$secs" -J |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print(s["bits_per_second"]*(1-s["lost_percent"]/100)/1e6)'
}
tb_stream() {
    rm -rf "$work/run"
    "$tb" run --workload stream --bitrate "$bitrate" --gso --size 1200 --warmup 1s --duration "${secs}s" \
        --out "$work/run" >/dev/null
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["trials"][0]["udp"]["goodput_bps"]/1e6)' \
        "$work/run/results.json"
}

printf '%-6s %12s %12s\n' round iperf3_Mbit tb_Mbit | tee "$work/rows"
for r in $(seq "$rounds"); do
    # Alternate which tool goes first, so neither always gets the warmer machine.
    if (( r % 2 )); then i=$(ip); t=$(tb_stream); else t=$(tb_stream); i=$(ip); fi
    printf '%-6s %12.1f %12.1f\n' "$r" "$i" "$t" | tee -a "$work/rows"
done
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
ip = statistics.median(float(r[1]) for r in rows)
tb = statistics.median(float(r[2]) for r in rows)
print(f"received: median iperf3 {ip:.1f} Mbit/s, transbench {tb:.1f} Mbit/s, ratio {tb / ip:.3f}")
PY
