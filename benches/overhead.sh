#!/usr/bin/env bash
# Measurement overhead: the mock delays every first frame by exactly 50 ms
# (POST /_fault/first-frame-delay). A baseline of 200 users (the idle round trip plus the delay)
# is compared with 10,000 users at the same arrival pattern; the difference at p50 and p99 is what
# the harness itself adds under load (PRODUCT.md budget: under 1 ms at p99).
#
#   benches/overhead.sh [N]        (default 10000)
source "$(dirname "$0")/lib.sh"
n=${1:-10000}
build
load_note
printf '%-7s %-9s %-9s %-9s %-9s %s\n' users count p50_ms p99_ms p99.9_ms exit
declare -A P50 P99
for users in 200 "$n"; do
  start_mock
  python3 - "$MOCK_URL" "$MOCK_FAULT_SECRET" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/_fault/first-frame-delay", data=b'{"ms": 50}', method="POST",
                             headers={"X-Chatstorm-Secret": sys.argv[2], "Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=5).read()
PY
  out="$BENCH_OUT/overhead-$users"
  run_against_mock "$ROOT/benches/scenarios/overhead-10k.yaml" "$out" --users "$users"
  stop_mock
  read -r count p50 p99 p999 < <(field "$out/summary.json" \
    "' '.join(str(x) for x in [s['latency']['connect.ws']['summary'][k] for k in ['count','p50_us','p99_us','p999_us']])")
  P50[$users]=$p50; P99[$users]=$p99
  printf '%-7s %-9s %-9s %-9s %-9s %s\n' "$users" "$count" "$(echo "scale=3; $p50/1000" | bc)" \
    "$(echo "scale=3; $p99/1000" | bc)" "$(echo "scale=3; $p999/1000" | bc)" "$RC"
done
python3 -c "import sys; a=[int(x) for x in sys.argv[1:]]; print(f'overhead at {a[0]} users: p50 {(a[1]-a[2])/1000:+.2f} ms, p99 {(a[3]-a[4])/1000:+.2f} ms over the 200-user baseline (50 ms first-frame delay in both; budget: under 1 ms at p99)')" \
  "$n" "${P50[$n]}" "${P50[200]}" "${P99[$n]}" "${P99[200]}"
echo "# runs in $BENCH_OUT"
