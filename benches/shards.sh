#!/usr/bin/env bash
# 50,000 users on one box through local shards: `chatstorm run --workers 3`, three harness
# processes, each with its own embedded mock as a child process (three mock processes on three
# ports), merged into one summary, one report and one exit code.
#
#   benches/shards.sh [N] [WORKERS]        (default 50000 3)
source "$(dirname "$0")/lib.sh"
n=${1:-50000}
workers=${2:-3}
build
load_note
out="$BENCH_OUT/shards"
rc=0
/usr/bin/time -f "%e s wall" -o "$out.time" "$BIN" run "$ROOT/benches/scenarios/idle-50k.yaml" --users "$n" \
  --workers "$workers" --out "$out" >"$out.log" 2>&1 || rc=$?
python3 - "$out/summary.json" "$rc" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c, g, lat = s['metrics']['counters'], s['generator'], s['latency']['connect.ws']['summary']
peak = max(s['metrics']['timeline']['gauges']['connected'] or [0])
print(f"shards merged {s['run']['shards']}; users started {s['run']['users_started']} of {s['run']['users_planned']}")
print(f"connects {c['connects']} ok, {c['connect_failures']} failed; peak connected {peak}")
print(f"connect p50 {lat['p50_us']/1000:.2f} ms, p99 {lat['p99_us']/1000:.2f} ms")
print(f"harness (3 processes summed) peak RSS {g['peak_rss_bytes']/1048576:.1f} MiB = {g['rss_per_user_bytes']} B/user, CPU {g['cpu_seconds']:.1f} s")
print(f"verdict {s['verdict']['outcome']} (exit {sys.argv[2]}); {'; '.join(s['verdict']['reasons'])}")
PY
cat "$out.time"
echo "# run in $out (report.html, shard-*/)"
