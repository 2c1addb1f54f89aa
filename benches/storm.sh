#!/usr/bin/env bash
# A reconnect storm of 19,000 users, all dropped at once by the mock (close 1011): the recovery
# curve and the harness's CPU, once with the SDK's back-off formula and once with a fixed 250 ms.
#
#   benches/storm.sh [N]          (default 19000)
#
# Runs benches/scenarios/storm-19k.yaml against its embedded mock (a child process: 19,000
# sockets per side do not fit one process). Prints, per back-off, the time until 50/90/99/100 %
# of the dropped users were connected again, attempts per user, the accepted connect rate and the
# harness CPU seconds spent in the whole run.
source "$(dirname "$0")/lib.sh"
n=${1:-19000}
build
load_note
printf '%-12s %-8s %-9s %-8s %-8s %-8s %-8s %-9s %-10s %-8s %s\n' backoff dropped recovered p50_s p90_s p99_s p100_s attempts accepted/s cpu_s exit
for backoff in sdk 250ms; do
  scenario="$BENCH_OUT/storm-$backoff.yaml"
  sed -e "s/backoff: sdk/backoff: $backoff/" "$ROOT/benches/scenarios/storm-19k.yaml" >"$scenario"
  out="$BENCH_OUT/storm-$backoff"
  rc=0
  "$BIN" run "$scenario" --users "$n" --out "$out" --format json,console,html >"$out.log" 2>&1 || rc=$?
  python3 - "$out/summary.json" "$backoff" "$rc" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
st = s['storms'][0] if s['storms'] else None
if st is None:
    print(f"{sys.argv[2]:<12} no storm recorded (exit {sys.argv[3]})"); sys.exit()
f = lambda ms: f"{ms/1000:.2f}" if ms is not None else "-"
print(f"{sys.argv[2]:<12} {st['dropped']:<8} {st['recovered']:<9} {f(st['p50_ms']):<8} {f(st['p90_ms']):<8} "
      f"{f(st['p99_ms']):<8} {f(st['p100_ms']):<8} {st['attempts_mean']:<9.2f} {st['accepted_per_s']:<10.0f} "
      f"{s['generator']['cpu_seconds']:<8.1f} {sys.argv[3]}")
PY
done
echo "# runs (with report.html and its recovery curves) in $BENCH_OUT"
