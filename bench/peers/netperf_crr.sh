#!/usr/bin/env bash
# transbench's churn next to netperf's TCP_CRR on loopback, interleaved and
# repeated so both see the same machine noise: connections (connect,
# 64-byte request, 64-byte response, close) per second. transbench runs at
# an offered rate far above what the machine does, so it goes as fast as
# its slots allow: with --max-inflight 1, one connection after another,
# like TCP_CRR (tb_tcp); with 4 (tb_tcp_x4), as its open-loop schedule
# runs by default. Also churn's one-at-a-time rate for tcp+tls and quic,
# for scale. Prints each round, then medians and the ratios transbench /
# netperf.
#
#   bench/peers/netperf_crr.sh [ROUNDS] [SECONDS]
#
# Needs netperf (Debian package `netperf`, in the non-free section: add
# `non-free` to the apt sources' Components, then apt-get install netperf),
# python3, and a release build (`cargo build --release`). Traffic stays on
# 127.0.0.1.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.bash
. "$(dirname "$0")/common.bash"

rounds=${1:-5}
secs=${2:-5}
if ! command -v netperf >/dev/null || ! command -v netserver >/dev/null; then
    echo "netperf not found: apt-get install netperf (Debian non-free)" >&2
    exit 1
fi

# Below the ephemeral range, where the churn's TIME_WAIT sockets are.
np_port=$((20000 + RANDOM % 5000))
# -D: stay in the foreground, so the PID is netserver's own.
netserver -D -L 127.0.0.1 -p "$np_port" >"$work/ns.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do [ -n "$(ss -Htln "( sport = :$np_port )")" ] && break; sleep 0.1; done
[ -n "$(ss -Htln "( sport = :$np_port )")" ] || { echo "netserver did not start: $(cat "$work/ns.log")" >&2; exit 1; }
"$tb" receiver --listen 127.0.0.1:0 >"$work/tb.out" 2>"$work/tb.err" & pids+=($!)
for _ in $(seq 50); do grep -q "listening on" "$work/tb.out" 2>/dev/null && break; sleep 0.1; done
tb_addr=$(sed -n 's/^transbench receiver listening on //p' "$work/tb.out")
[ -n "$tb_addr" ] || { echo "transbench receiver did not start: $(cat "$work/tb.err")" >&2; exit 1; }
sleep 0.5

np() { # -> transactions/s
    # -P 0: no banner; the last line's last number is the rate.
    netperf -P 0 -H 127.0.0.1 -p "$np_port" -t TCP_CRR -l "$secs" -- -r 64,64 2>&1 |
        awk 'NF >= 6 { rate = $6 } END { print rate }'
}
# netperf keeps the system's congestion control; so does transbench here
# (it pins cubic by default), for TCP: like for like.
cc=$(cat /proc/sys/net/ipv4/tcp_congestion_control)
tbc() { # transport [inflight] -> completed connections/s
    local cc_arg=(--cc "$cc")
    [ "$1" = quic ] && cc_arg=()
    # A loss timeout past the trial: every transaction connects, however
    # long it waited for a slot.
    "$tb" sender --connect "$tb_addr" --transport "$1" --workload churn --conn-rate 100000 \
        --max-inflight "${2:-1}" --loss-timeout 60s --size 64 --duration "${secs}s" --warmup 0s \
        "${cc_arg[@]}" --out "$work/c.json" >/dev/null
    python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["trials"][0]["churn"]["achieved_rate"]))' \
        "$work/c.json"
}

printf '%-6s %10s %10s %10s %10s %10s\n' round netperf tb_tcp tb_tcp_x4 tb_tls tb_quic | tee "$work/rows"
for r in $(seq "$rounds"); do
    # Alternate which tool goes first, so neither always gets the warmer machine.
    if (( r % 2 )); then n=$(np); t=$(tbc tcp); else t=$(tbc tcp); n=$(np); fi
    printf '%-6s %10s %10s %10s %10s %10s\n' "$r" "$n" "$t" "$(tbc tcp 4)" "$(tbc tcp+tls)" "$(tbc quic)" |
        tee -a "$work/rows"
done

python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
col = lambda i: statistics.median(float(r[i]) for r in rows)
n, t, t4, tls, quic = col(1), col(2), col(3), col(4), col(5)
print(f"medians: netperf TCP_CRR {n:.0f}/s; transbench churn tcp one at a time {t:.0f}/s "
      f"(ratio {t / n:.2f}), 4 in flight {t4:.0f}/s (ratio {t4 / n:.2f}); "
      f"tcp+tls {tls:.0f}/s, quic {quic:.0f}/s one at a time")
PY
