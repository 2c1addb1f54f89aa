#!/usr/bin/env python3
"""One table from the peers' results.jsonl: the latest node-ws and chatstorm runs at N over SCHEME
(ws or wss, from each run's URL; default ws), and the chatstorm/node-ws ratios of memory per
connection and CPU seconds."""
import json, sys

path, n = sys.argv[1], int(sys.argv[2])
scheme = sys.argv[3] if len(sys.argv) > 3 else "ws"
latest = {}
for line in open(path):
    r = json.loads(line)
    if (r.get("n") == n and r.get("tool") in ("node-ws", "chatstorm")
            and (r.get("url") or "ws://").startswith(scheme + "://")):
        latest[r["tool"]] = r

def row(r):
    rss = r.get("time_v_max_rss_kb") or 0
    return {"tool": r["tool"], "N": r["n"], "est/failed": f"{r.get('established')}/{r.get('failed')}",
            "p50 ms": r.get("p50_ms"), "p99 ms": r.get("p99_ms"), "peak RSS MB": round(rss / 1024, 1),
            "tree RSS MB": round((r.get("tree_rss_peak_kb") or 0) / 1024, 1),
            "RSS/conn KB": round(rss / r["n"], 2), "CPU s": r.get("cpu_s"), "wall s": r.get("wall_s"),
            "server CPU s": r.get("server_cpu_s"), "server peak": r.get("server_peak_active")}

rows = [row(latest[t]) for t in ("node-ws", "chatstorm") if t in latest]
if not rows:
    sys.exit(f"no node-ws or chatstorm run at N={n} over {scheme} in {path}")
cols = list(rows[0])
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for r in rows:
    print("| " + " | ".join(str(r[c]) for c in cols) + " |")
if len(rows) == 2:
    a, b = rows
    print(f"\n{scheme}: chatstorm / node-ws: memory per connection {b['RSS/conn KB'] / a['RSS/conn KB']:.3f} "
          f"(goal <= 0.25), CPU seconds {b['CPU s'] / a['CPU s']:.3f} (goal <= 1)")
