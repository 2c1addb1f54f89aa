#!/usr/bin/env bash
# Property-based fuzzing of every target in tests/fuzz.rs, one after another, N seconds each.
#
#   benches/fuzz.sh [SECS] [TARGET...]   (default: 60 s each; targets: scenario decoders jwt mock_http)
#
# Builds the fuzz test in release mode once, copies the binary (so a rebuild during a long run
# does not change what the later targets run), then runs each target alone, at nice 19, with
# CHATSTORM_FUZZ_SECS=SECS (CHATSTORM_FUZZ_SEED is passed through; default 42). Prints one line per
# target: cases run, seconds, failures. Each target's full output is kept under $BENCH_OUT;
# a failure's output holds proptest's minimal failing input. Exit status: 1 if any target failed.
#
# Measured 2026-12-04 20:24-20:44 UTC, 600 s per target (release, nice 19, seed 42), run as two
# `benches/fuzz.sh 600` side by side (scenario+jwt, decoders+mock_http: one target per core) on
# 2 shared cores, load 3.36 2.49 1.68 at start, 4.30-4.50 at end; 0 failures:
#   target        cases   seconds failures
#   scenario   20,717,184  600.00   0  (bytes, mutations, token_soup 6,905,728 each)
#   jwt        17,252,736  600.00   0  (arbitrary_text, dotted_segments, structured 5,750,912 each)
#   decoders       12,544  603.87   0  (event_text, event_object, upgrade_response, mock_client_frames
#                                       3,136 each; the mock-frame part, which waits up to 300 ms
#                                       per case for the mock to close, sets the pace of its batches)
#   mock_http     182,016  600.18   0  (requests through the real mock)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_OUT="${BENCH_OUT:-$(mktemp -d /tmp/chatstorm-fuzz.XXXXXX)}"
SECS="${1:-60}"
shift || true
TARGETS=("${@:-scenario}")
[ $# -gt 0 ] || TARGETS=(scenario decoders jwt mock_http)

echo "# building tests/fuzz.rs (cargo test --release --test fuzz --no-run)" >&2
exe="$(cd "$ROOT" && cargo test --release --test fuzz --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="fuzz" and m.get("executable"): print(m["executable"])' | tail -1)"
[ -n "$exe" ] || { echo "fuzz.sh: the fuzz test did not build" >&2; exit 2; }
cp "$exe" "$BENCH_OUT/fuzz-bin"
echo "# $(date -u +%FT%TZ) load: $(uptime | sed 's/.*load average: //'); ${SECS}s per target; output in $BENCH_OUT" >&2

failed=0
printf '%-10s %10s %9s %8s  %s\n' target cases seconds failures detail
for t in "${TARGETS[@]}"; do
  log="$BENCH_OUT/$t.log"
  rc=0
  (cd "$ROOT" && CHATSTORM_FUZZ_SECS="$SECS" nice -n 19 "$BENCH_OUT/fuzz-bin" --exact "$t" --nocapture --test-threads=1) \
    >"$log" 2>&1 || rc=$?
  line="$(grep -oE "fuzz $t: .*" "$log" | tail -1 || true)"
  if [ -z "$line" ]; then
    printf '%-10s %10s %9s %8s  %s\n' "$t" "?" "?" "1" "no summary line (exit $rc), see $log"
    failed=1
    continue
  fi
  cases="$(sed -E 's/^fuzz [a-z_]+: ([0-9]+) cases.*/\1/' <<<"$line")"
  secs="$(sed -E 's/.* cases in ([0-9.]+) s.*/\1/' <<<"$line")"
  fails="$(sed -E 's/.* s, ([0-9]+) failures.*/\1/' <<<"$line")"
  detail="$(sed -E 's/.*failures \((.*)\)$/\1/' <<<"$line")"
  printf '%-10s %10s %9s %8s  %s\n' "$t" "$cases" "$secs" "$fails" "$detail"
  [ "$rc" -eq 0 ] && [ "$fails" = 0 ] || failed=1
done
echo "# $(date -u +%FT%TZ) load: $(uptime | sed 's/.*load average: //')" >&2
exit "$failed"
