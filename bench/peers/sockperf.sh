#!/usr/bin/env bash
# transbench next to sockperf on loopback, interleaved and repeated, so the
# two see the same machine noise. Prints each round and the medians and
# ratios (transbench / sockperf) of round-trip p50 and p99.
#
#   bench/peers/sockperf.sh [ROUNDS] [SECONDS]
#
# Needs sockperf (Debian package `sockperf`), python3, and a release build
# (`cargo build --release`). Traffic stays on 127.0.0.1.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.bash
. "$(dirname "$0")/common.bash"

rounds=${1:-5}
secs=${2:-5}
command -v sockperf >/dev/null || { echo "sockperf not found: apt-get install sockperf" >&2; exit 1; }

# Ports from the ephemeral range's top, unlikely to be taken; checked below.
udp_port=$((40000 + RANDOM % 10000)); tcp_port=$((udp_port + 1))
sockperf server -i 127.0.0.1 -p "$udp_port" >"$work/sp-udp.log" 2>&1 & pids+=($!)
sockperf server --tcp -i 127.0.0.1 -p "$tcp_port" >"$work/sp-tcp.log" 2>&1 & pids+=($!)
"$tb" receiver --listen 127.0.0.1:0 >"$work/tb.out" 2>"$work/tb.err" & pids+=($!)
for _ in $(seq 50); do grep -q "listening on" "$work/tb.out" 2>/dev/null && break; sleep 0.1; done
tb_addr=$(sed -n 's/^transbench receiver listening on //p' "$work/tb.out")
[ -n "$tb_addr" ] || { echo "transbench receiver did not start: $(cat "$work/tb.err")" >&2; exit 1; }
sleep 0.5

# sockperf prints percentiles in microseconds: "percentile 50.000 =   36.799".
sp() { # mode(under-load|ping-pong) proto(udp|tcp) -> "p50 p99" in us
    local port=$udp_port flag=""
    [ "$2" = tcp ] && { port=$tcp_port; flag=--tcp; }
    local extra=()
    [ "$1" = under-load ] && extra=(--mps 1000 --reply-every 1)
    sockperf "$1" $flag -i 127.0.0.1 -p "$port" "${extra[@]}" --full-rtt -m 64 -t "$secs" 2>&1 |
        awk '/percentile 50.000/{p50=$NF} /percentile 99.000/{p99=$NF} END{print p50, p99}'
}
tbr() { # mode(open|closed) transport -> "p50 p99" in us
    local extra=(--rate 1000)
    [ "$1" = closed ] && extra=(--closed-loop)
    "$tb" sender --connect "$tb_addr" --transport "$2" --size 64 --duration "${secs}s" --warmup 1s \
        "${extra[@]}" --out "$work/r.json" >/dev/null
    python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["trials"][0]["lat"]; print(t["p50"]/1e3, t["p99"]/1e3)' "$work/r.json"
}

printf '%-6s %-7s %-4s %10s %10s %10s %10s\n' round mode proto sp_p50 tb_p50 sp_p99 tb_p99 | tee "$work/rows"
for r in $(seq "$rounds"); do
    for mode in open closed; do
        for proto in udp tcp; do
            spmode=under-load; [ "$mode" = closed ] && spmode=ping-pong
            # Alternate which tool goes first, so neither always gets the warmer machine.
            if (( r % 2 )); then s=$(sp $spmode $proto); t=$(tbr $mode $proto)
            else t=$(tbr $mode $proto); s=$(sp $spmode $proto); fi
            read -r sp50 sp99 <<<"$s"; read -r tb50 tb99 <<<"$t"
            printf '%-6s %-7s %-4s %10.1f %10.1f %10.1f %10.1f\n' "$r" $mode $proto "$sp50" "$tb50" "$sp99" "$tb99" | tee -a "$work/rows"
        done
    done
done

python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
print("\nmedians over rounds (us) and ratio transbench/sockperf")
print(f"{'mode':7} {'proto':5} {'sp_p50':>8} {'tb_p50':>8} {'ratio':>6} {'sp_p99':>8} {'tb_p99':>8} {'ratio':>6}")
for mode in ("open", "closed"):
    for proto in ("udp", "tcp"):
        sel = [r for r in rows if r[1] == mode and r[2] == proto]
        med = [statistics.median(float(r[i]) for r in sel) for i in (3, 4, 5, 6)]
        print(f"{mode:7} {proto:5} {med[0]:8.1f} {med[1]:8.1f} {med[1]/med[0]:6.2f} {med[2]:8.1f} {med[3]:8.1f} {med[3]/med[2]:6.2f}")
PY
