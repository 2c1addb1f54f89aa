#!/usr/bin/env bash
# What the fleet's bus costs a shard: the same 19,000-user idle run (benches/scenarios/idle-19k.yaml,
# its mock a child process) alone and as the only shard of a fleet (`--shard auto/1 --fleet`, a
# coordinator and a nats-server on loopback), interleaved ROUNDS times; prints the harness's own CPU
# seconds (summary.json generator.cpu_seconds) of each and the fleet's share over the median.
# Budget: the bus adds under 2 % to a shard's CPU at 19,000 users.
#
#   benches/fleet-bus.sh [USERS] [ROUNDS]        (default 19000 2)
source "$(dirname "$0")/lib.sh"
users=${1:-19000}
rounds=${2:-2}
build
out="$BENCH_OUT/fleet-bus"
start_nats "$out/nats"
url=$NATS_URL
scenario="$ROOT/benches/scenarios/idle-19k.yaml"
load_note
for r in $(seq "$rounds"); do
  "$BIN" run "$scenario" --users "$users" --format json --quiet --out "$out/alone-$r" >"$out/alone-$r.log" 2>&1 || true
  run="bus-$$-$r"
  "$BIN" fleet coordinate "$scenario" --shards 1 --nats "$url" --run "$run" --users "$users" \
    --format json --quiet --out "$out/merged-$r" >"$out/coordinator-$r.log" 2>&1 &
  coord=$!
  JOB_COMPLETION_INDEX=0 "$BIN" run "$scenario" --users "$users" --shard auto/1 --fleet "$url" \
    --fleet-run "$run" --format json --quiet --out "$out/shard-$r" >"$out/shard-$r.log" 2>&1 || true
  wait "$coord" || true
done
python3 - "$out" "$rounds" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def cpu(d):
    s = json.load(open(os.path.join(out, d, 'summary.json')))
    return s['generator']['cpu_seconds'], s['verdict']['exit_code']
alone = [cpu(f'alone-{r}') for r in range(1, rounds + 1)]
shard = [cpu(f'shard-{r}') for r in range(1, rounds + 1)]
print('alone CPU s: ' + ', '.join(f'{c:.2f} (exit {e})' for c, e in alone))
print('shard CPU s: ' + ', '.join(f'{c:.2f} (exit {e})' for c, e in shard))
a, s = statistics.median(c for c, _ in alone), statistics.median(c for c, _ in shard)
print(f'the bus adds {100 * (s - a) / a:+.1f} % to the harness CPU (medians {a:.2f} -> {s:.2f} s; budget under 2 %)')
PY
