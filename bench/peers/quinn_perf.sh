#!/usr/bin/env bash
# transbench's QUIC next to quinn's own perf tool (the `quinn-perf` binary
# of the quinn repository's perf/ crate), same quinn, ring crypto on both,
# on loopback, interleaved and repeated so both see the same machine noise:
#
#   rr    closed loop, one request at a time, a new bidirectional stream per
#         request, 64-byte responses: round-trip p50 in microseconds, and
#         round trips per second (one at a time, so the whole cost of a
#         request on both sides, wherever either tool starts its clock;
#         quinn-perf's over its whole run, transbench's over its measured
#         window, after 1 s of warm-up).
#         transbench: `--closed-loop --size 64 --quic-stream per-request`
#         (64 bytes each way, its 32-byte header included, plus a 4-byte
#         length prefix). quinn-perf: `--bi-requests 1 --upload-size 0
#         --download-size 64` and its "Download Duration" P50: from the
#         request handed to quinn to the response's end read. Its request
#         is just its 8-byte header: with --upload-size N the client waits
#         for the server's ACK of the upload before it starts that clock,
#         so the duration would no longer be the round trip. quinn-perf
#         keeps whole microseconds (truncated) and has no warm-up.
#   bulk  one connection, one stream, as fast as it goes: goodput the
#         receiving application read, first second left out. transbench:
#         `--workload bulk --warmup 1s` (the sender's stream to the
#         receiver); quinn-perf: a download the server writes, its
#         per-second intervals after the first.
#
# Prints each round, then the medians and the ratios transbench / quinn-perf.
#
#   QUINN_PERF_DIR=DIR [QUINN_PERF_PIN=same|split] bench/peers/quinn_perf.sh [ROUNDS] [SECONDS]
#
# QUINN_PERF_PIN=same runs every server and client on CPU 0 (taskset), so
# a round trip is the two processes' own work; split puts the servers on
# CPU 0 and the clients on CPU 1, so every round trip crosses CPUs twice.
# Unset, the scheduler places them, and the two tools can land apart: it
# keeps a client and server that answer each other on whichever CPUs they
# started on, and on a VM a wake-up across CPUs costs tens of
# microseconds, far more than either tool's own work.
#
# DIR holds a built `quinn-perf`: check out quinn (github.com/quinn-rs/quinn)
# outside this repository, point its perf crate at the quinn and quinn-proto
# releases transbench's Cargo.lock has, and build that crate in release
# (`cargo build --release -p perf`, which leaves it in target/release/);
# README.md, next to this script's results, gives the commands. This script
# does not build it. Needs python3 and a release build of transbench
# (`cargo build --release`).
# Traffic stays on 127.0.0.1.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.bash
. "$(dirname "$0")/common.bash"

rounds=${1:-5}
secs=${2:-5}
qp=${QUINN_PERF_DIR:?set QUINN_PERF_DIR to the directory of a built quinn-perf (see the header of this script)}/quinn-perf
[ -x "$qp" ] || { echo "$qp not found: build quinn's perf crate (see this script's header)" >&2; exit 1; }

case ${QUINN_PERF_PIN:-} in
    "") server_pin=() client_pin=() ;;
    same) server_pin=(taskset -c 0) client_pin=(taskset -c 0) ;;
    split) server_pin=(taskset -c 0) client_pin=(taskset -c 1) ;;
    *) echo "QUINN_PERF_PIN is same or split, not ${QUINN_PERF_PIN}" >&2; exit 1 ;;
esac

port=$((40000 + RANDOM % 10000))
"${server_pin[@]}" "$qp" server --listen "127.0.0.1:$port" >"$work/qp-server.log" 2>&1 & pids+=($!)
"${server_pin[@]}" "$tb" receiver --listen 127.0.0.1:0 >"$work/tb.out" 2>"$work/tb.err" & pids+=($!)
for _ in $(seq 50); do grep -q "listening on" "$work/tb.out" 2>/dev/null && break; sleep 0.1; done
tb_addr=$(sed -n 's/^transbench receiver listening on //p' "$work/tb.out")
[ -n "$tb_addr" ] || { echo "transbench receiver did not start: $(cat "$work/tb.err")" >&2; exit 1; }
sleep 0.5
kill -0 "${pids[0]}" 2>/dev/null || { echo "quinn-perf server did not start: $(cat "$work/qp-server.log")" >&2; exit 1; }

# quinn-perf prints its cumulative table every second; the last one covers
# the run. Its P50 row: " P50  │ 0.00ns │ 34.00µs │ ...", durations in µs
# or ns (Rust's {:?}); then "RPS: 20578.89 (82483 requests in 4.01s)".
# Each rr prints its p50 (us) and its round trips per second.
qp_rr() {
    "${client_pin[@]}" "$qp" client --bi-requests 1 --upload-size 0 --download-size 64 --duration "$secs" \
        "127.0.0.1:$port" 2>/dev/null |
        awk -F'│' '$1 ~ /P50/ {d=$3} /^RPS:/ {split($0, w, " "); rps=w[2]} END {
            gsub(/ /, "", d); v=d+0
            if (d ~ /ns$/) v/=1000; else if (d ~ /ms$/) v*=1000; else if (d !~ /µs$/) v=-1
            print v, rps }'
}
tb_rr() {
    "${client_pin[@]}" "$tb" sender --connect "$tb_addr" --transport quic --quic-stream per-request --closed-loop \
        --size 64 --duration "${secs}s" --warmup 1s --out "$work/r.json" >/dev/null
    python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["trials"][0]
print(t["lat"]["p50"] / 1e3, t["counters"]["received"] / (t["duration_ns"] / 1e9))' "$work/r.json"
}
qp_bulk() {
    "${client_pin[@]}" "$qp" client --bi-requests 1 --upload-size 0 --download-size 1000G --duration "$((secs + 1))" \
        --json "$work/q.json" "127.0.0.1:$port" >/dev/null 2>&1
    python3 -c '
import json, sys
iv = [i["sum"] for i in json.load(open(sys.argv[1]))["intervals"][1:]]
print(sum(i["bytes"] for i in iv) * 8 / sum(i["seconds"] for i in iv) / 1e6)' "$work/q.json"
}
tb_bulk() {
    "${client_pin[@]}" "$tb" sender --connect "$tb_addr" --transport quic --workload bulk \
        --duration "${secs}s" --warmup 1s --out "$work/b.json" >/dev/null
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["trials"][0]["bulk"]["goodput_bps"]/1e6)' "$work/b.json"
}

printf '%-6s %10s %10s %10s %10s %12s %12s\n' round qp_p50_us tb_p50_us qp_rt_s tb_rt_s qp_Mbit tb_Mbit |
    tee "$work/rows"
for r in $(seq "$rounds"); do
    # Alternate which tool goes first, so neither always gets the warmer machine.
    if (( r % 2 )); then q=$(qp_rr); t=$(tb_rr); qb=$(qp_bulk); tbb=$(tb_bulk)
    else t=$(tb_rr); q=$(qp_rr); tbb=$(tb_bulk); qb=$(qp_bulk); fi
    read -r qp50 qrt <<<"$q"
    read -r tp50 trt <<<"$t"
    for v in "$qp50" "$qrt" "$tp50" "$trt" "$qb" "$tbb"; do
        if ! [[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]] || [ "$v" = 0 ]; then
            echo "round $r: a tool printed no usable number (got '$q' '$t' '$qb' '$tbb')" >&2
            exit 1
        fi
    done
    printf '%-6s %10.1f %10.1f %10.0f %10.0f %12.1f %12.1f\n' "$r" "$qp50" "$tp50" "$qrt" "$trt" "$qb" "$tbb" |
        tee -a "$work/rows"
done
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [[float(x) for x in l.split()[1:]] for l in open(sys.argv[1]).read().splitlines()[1:]]
med = [statistics.median(r[i] for r in rows) for i in range(6)]
print(f"rr p50:        median quinn-perf {med[0]:.1f} us, transbench {med[1]:.1f} us, ratio {med[1] / med[0]:.3f}")
print(f"rr trips/s:    median quinn-perf {med[2]:.0f}, transbench {med[3]:.0f}, ratio {med[3] / med[2]:.3f}")
print(f"bulk:          median quinn-perf {med[4]:.1f} Mbit/s, transbench {med[5]:.1f} Mbit/s, ratio {med[5] / med[4]:.3f}")
PY
