"""Prints the head-of-line table from the cells of bench/hol/table.sh.

    python3 bench/hol/table.py OUT_DIR
"""
import glob
import json
import os
import sys

TRANSPORTS = ["tcp-mux", "tcp+tls-mux", "tcp-n", "quic", "udp"]


def ms(ns):
    return f"{ns / 1e6:.1f}"


def main(out):
    cells = []
    for path in sorted(glob.glob(os.path.join(out, "*/results.json"))):
        results = json.load(open(path))
        # Baselines and attempts a retry replaced are no cells of the grid.
        trials = [t for t in results["trials"]
                  if "-base-" not in t["id"] and not t.get("superseded_by")]
        if not trials:
            continue
        profile = (trials[0].get("impairment") or {}).get("forward", "")
        words = profile.split()
        delay = float(words[words.index("delay") + 1].rstrip("ms")) if "delay" in words else 0.0
        loss = float(words[words.index("random") + 1].rstrip("%")) if "random" in words else 0.0
        cells.append((delay, loss, {t["transport"]: t for t in trials}, path))
    cells.sort(key=lambda c: (c[0], c[1]))
    head = "| delay | loss |" + "".join(f" {t} p50 / p99 / hol_frac |" for t in TRANSPORTS)
    print(head)
    print("|---|---|" + "---|" * len(TRANSPORTS))
    for delay, loss, by_transport, _ in cells:
        row = f"| {delay:g} ms | {loss:g} % |"
        for name in TRANSPORTS:
            t = by_transport.get(name)
            if t is None:
                row += " - |"
                continue
            hol = t.get("hol") or {}
            flag = "" if t["valid"] else " (invalid)"
            row += (
                f" {ms(t['lat']['p50'])} / {ms(t['lat']['p99'])} ms / "
                f"{100 * hol.get('hol_frac', 0):.1f} %{flag} |"
            )
        print(row)
    print()
    print("One-way latency in ms (p50 / p99; a message lost or later than the 2 s "
          "loss timeout counts at 2 s), hol_frac in % of messages. Each cell: "
          "the command in its .cmd file.")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 bench/hol/table.py OUT_DIR (the grid bench/hol/table.sh made)")
    main(sys.argv[1])
