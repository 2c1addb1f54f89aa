#!/usr/bin/env bash
# What the fleet's bus costs a shard: the same 19,000-user idle run (benches/scenarios/idle-19k.yaml,
# its mock a child process) alone and as the only shard of a fleet (`--shard auto/1 --fleet`, a
# coordinator and a nats-server on loopback), ROUNDS pairs; prints the harness's own CPU seconds
# (summary.json generator.cpu_seconds) of each and the fleet's share over the median.
# Budget: the bus adds under 2 % to a shard's CPU at 19,000 users.
#
# The two runs of a pair run side by side, at the same time: on this shared machine a run's CPU
# seconds move by 10-25 % with the other load (alone runs 8.90-11.11 s within one sequential
# series), far more than the budget, and one after the other each run of a pair sees a different
# load. Run side by side, both see the same load (the shard's users start about 2 s later, after
# the fleet's start lead). FLEET_BUS_SIDE_BY_SIDE=0 runs them one after the other instead, the
# order alternating (alone first, then shard first: ABBA), each after FLEET_BUS_GAP seconds
# (default 10); FLEET_BUS_BESIDE=1 adds a one-user fleet beside each alone run. Measured
# 2026-12-06 (release, 2 cores): side by side, four pairs +0.5, +0.9, +0.2 and -0.7 % (median
# +0.4 %, load 0.3-0.8; budget met); one after the other with a fleet beside the alone runs,
# +27.5, -5.1, +15.8 and +7.6 % while the alone runs spread 18 % among themselves: noise that a
# sequential pair cannot resolve on this machine; see the README.
# It also prints each pair's difference, the alone runs' own spread, and (when `perf` is
# installed; FLEET_BUS_PERF=0 skips it) one more shard run under `perf record --call-graph dwarf`:
# the share of the shard's samples with a bus frame on the stack (async_nats, chatstorm::fleet), a
# ratio within one run (benches/perf_share.py).
#
#   benches/fleet-bus.sh [USERS] [ROUNDS]        (default 19000 2)
#   DURATION=140s benches/fleet-bus.sh 19000 2   (--duration for every run)
source "$(dirname "$0")/lib.sh"
users=${1:-19000}
rounds=${2:-2}
build
out="$BENCH_OUT/fleet-bus"
start_nats "$out/nats"
url=$NATS_URL
scenario="$ROOT/benches/scenarios/idle-19k.yaml"
gap=${FLEET_BUS_GAP:-10}
length=()
[ -n "${DURATION:-}" ] && length=(--duration "$DURATION")
load_note
alone() {
  local companion=()
  # FLEET_BUS_BESIDE=1: a one-user fleet of its own (a coordinator and a shard, on the same
  # nats-server) runs beside the alone run, so that both runs of a pair have a coordinator and
  # live bus traffic on these 2 cores; only the shard's own bus work differs.
  if [ "${FLEET_BUS_BESIDE:-0}" != 0 ]; then
    local run="beside-$$-$1"
    "$BIN" fleet coordinate "$scenario" --shards 1 --nats "$url" --run "$run" --users 1 "${length[@]}" \
      --format json --quiet --out "$out/beside-merged-$1" >"$out/beside-coordinator-$1.log" 2>&1 &
    companion+=($!)
    JOB_COMPLETION_INDEX=0 "$BIN" run "$scenario" --users 1 "${length[@]}" --shard auto/1 --fleet "$url" \
      --fleet-run "$run" --format json --quiet --out "$out/beside-shard-$1" >"$out/beside-shard-$1.log" 2>&1 &
    companion+=($!)
  fi
  "$BIN" run "$scenario" --users "$users" "${length[@]}" --format json --quiet --out "$out/alone-$1" \
    >"$out/alone-$1.log" 2>&1 || true
  [ ${#companion[@]} = 0 ] || wait "${companion[@]}" || true
}
shard() {
  local run="bus-$$-$1" coord
  "$BIN" fleet coordinate "$scenario" --shards 1 --nats "$url" --run "$run" --users "$users" "${length[@]}" \
    --format json --quiet --out "$out/merged-$1" >"$out/coordinator-$1.log" 2>&1 &
  coord=$!
  JOB_COMPLETION_INDEX=0 "$BIN" run "$scenario" --users "$users" "${length[@]}" --shard auto/1 --fleet "$url" \
    --fleet-run "$run" --format json --quiet --out "$out/shard-$1" >"$out/shard-$1.log" 2>&1 || true
  wait "$coord" || true
}
for r in $(seq "$rounds"); do
  sleep "$gap"
  echo "# pair $r: load average $(cut -d' ' -f1-3 /proc/loadavg) at its start"
  if [ "${FLEET_BUS_SIDE_BY_SIDE:-1}" != 0 ]; then
    shard "$r" &
    side=$!
    alone "$r"
    wait "$side" || true
  elif [ $((r % 2)) = 1 ]; then
    alone "$r"; sleep "$gap"; shard "$r"
  else
    shard "$r"; sleep "$gap"; alone "$r"
  fi
done
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
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
  "$BIN" fleet coordinate "$scenario" --shards 1 --nats "$url" --run "$run" --users "$users" "${length[@]}" \
    --format json --quiet --out "$out/merged-perf" >"$out/coordinator-perf.log" 2>&1 &
  coord=$!
  # sh execs the shard, so the pid it writes is the shard's.
  JOB_COMPLETION_INDEX=0 perf record -F 299 --call-graph dwarf,16384 -o "$out/shard.perf" -- \
    sh -c 'echo $$ >"$0/shard-perf.pid"; exec "$@"' "$out" "$BIN" run "$scenario" --users "$users" "${length[@]}" \
    --shard auto/1 --fleet "$url" --fleet-run "$run" --format json --quiet --out "$out/shard-perf" \
    >"$out/shard-perf.log" 2>&1 || true
  wait "$coord" || true
  echo -n "bus frames in the shard's CPU samples: "
  python3 "$ROOT/benches/perf_share.py" "$out/shard.perf" "$(cat "$out/shard-perf.pid")" 'async_nats|chatstorm::fleet::'
fi
