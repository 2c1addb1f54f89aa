#!/usr/bin/env python3
"""chatstorm's summary.json -> the one JSON line the peers' own_json parser reads."""
import json, sys

s = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
c = s["metrics"]["counters"]
h = s["latency"].get("connect.ws", {}).get("summary", {})
ms = lambda k: None if h.get(k) is None else round(h[k] / 1000, 2)
est = c.get("connects", 0)
print(json.dumps({
    "tool": "chatstorm", "n": n, "established": est, "failed": n - est,
    "errors": {"connect_failures": c.get("connect_failures", 0), "disconnects": c.get("disconnects", 0)},
    "p50_ms": ms("p50_us"), "p90_ms": ms("p90_us"), "p99_ms": ms("p99_us"), "max_ms": ms("max_us"),
    "min_ms": ms("min_us"), "verdict": s["verdict"]["outcome"],
}))
