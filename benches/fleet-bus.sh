#!/usr/bin/env bash
# What the fleet's bus costs a shard: the same 19,000-user idle run (benches/scenarios/idle-19k.yaml,
# its mock a child process) alone and as the only shard of a fleet (`--shard auto/1 --fleet`, a
# coordinator and a nats-server on loopback), interleaved ROUNDS times; prints the harness's own CPU
# seconds (summary.json generator.cpu_seconds) of each and the fleet's share over the median.
# Budget: the bus adds under 2 % to a shard's CPU at 19,000 users.
#
# On a shared machine a run's CPU seconds move by several per cent with the other load, more than
# the budget; so it also prints each pair's difference and the alone runs' own spread, and (when
# `perf` is installed; FLEET_BUS_PERF=0 skips it) one more shard run under `perf record
# --call-graph dwarf`: the share of the shard's samples with a bus frame on the stack (async_nats,
# chatstorm::fleet), a ratio within one run (benches/perf_share.py).
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
pairs = [100 * (sc - ac) / ac for (ac, _), (sc, _) in zip(alone, shard)]
print('per pair: ' + ', '.join(f'{p:+.1f} %' for p in pairs) + f'; median {statistics.median(pairs):+.1f} %')
lo, hi = min(c for c, _ in alone), max(c for c, _ in alone)
print(f'alone runs spread {100 * (hi - lo) / lo:.1f} % among themselves (a difference smaller than that is noise)')
PY
if command -v perf >/dev/null && [ "${FLEET_BUS_PERF:-1}" != 0 ]; then
  run="bus-$$-perf"
  "$BIN" fleet coordinate "$scenario" --shards 1 --nats "$url" --run "$run" --users "$users" \
    --format json --quiet --out "$out/merged-perf" >"$out/coordinator-perf.log" 2>&1 &
  coord=$!
  # sh execs the shard, so the pid it writes is the shard's.
  JOB_COMPLETION_INDEX=0 perf record -F 299 --call-graph dwarf,16384 -o "$out/shard.perf" -- \
    sh -c 'echo $$ >"$0/shard-perf.pid"; exec "$@"' "$out" "$BIN" run "$scenario" --users "$users" \
    --shard auto/1 --fleet "$url" --fleet-run "$run" --format json --quiet --out "$out/shard-perf" \
    >"$out/shard-perf.log" 2>&1 || true
  wait "$coord" || true
  echo -n "bus frames in the shard's CPU samples: "
  python3 "$ROOT/benches/perf_share.py" "$out/shard.perf" "$(cat "$out/shard-perf.pid")" 'async_nats|chatstorm::fleet::'
fi
