"""Drain3 (PyPI `drain3`) over a file of message bodies, one per line: lines/s, bytes/s.

Usage: python drain3_bench.py MESSAGES [MAX_LINES] [SECONDS]
Repeats the file until SECONDS have passed (like the Rust side), default config
(Drain3's defaults: depth 4, sim_th 0.4, no masking), in-memory persistence.
"""
import json
import sys
import time

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig


def main():
    path = sys.argv[1]
    max_lines = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 62
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    msgs = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f):
            if i >= max_lines:
                break
            msgs.append(line.rstrip("\n"))
    nbytes = sum(len(m.encode("utf-8")) + 1 for m in msgs)
    cfg = TemplateMinerConfig()
    cfg.profiling_enabled = False
    miner = TemplateMiner(config=cfg)
    lines = 0
    t0 = time.perf_counter()
    while True:
        for m in msgs:
            miner.add_log_message(m)
        lines += len(msgs)
        if time.perf_counter() - t0 >= seconds:
            break
    dt = time.perf_counter() - t0
    print(json.dumps({"bench": "drain3", "path": path, "messages": len(msgs), "lines": lines,
                      "clusters": len(miner.drain.clusters),
                      "lines_per_sec": round(lines / dt), "bytes_per_sec": round(nbytes * lines / len(msgs) / dt)}))


if __name__ == "__main__":
    main()
