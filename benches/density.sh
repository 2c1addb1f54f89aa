#!/usr/bin/env bash
# Memory per idle user (harness) and per connection (mock), each process on its own.
#
#   benches/density.sh [N...]        (default: 10000 19000)
#
# For each N: a fresh standalone mock (`chatstorm mock`), then `chatstorm run
# benches/scenarios/idle-19k.yaml --users N` against it: N JS users connect over 40 s (scaled),
# each watches one channel, then all sit idle for 30 s with health checks running. Prints the
# harness's peak resident set per connected user (base included; PRODUCT.md budget 8 KiB) and the
# mock's (budget 16 KiB), plus reconnects: 0 means no user missed the mock's health checks.
#
# Measured 2026-12-04 (release, 2 shared cores, load 0.9), `benches/density.sh 19000`: 19,000
# connected, 0 reconnects, exit 0; harness 6,922 B per user, mock 11,266 B per connection (14,556 B
# before its 512 B read buffer and other buffer work, same sitting).
source "$(dirname "$0")/lib.sh"
build
load_note
printf '%-7s %-10s %-11s %-11s %-10s %-10s %-11s %-9s %s\n' users connected harness_MiB harness_B/u mock_MiB mock_B/c reconnects conn_p99 exit
for n in "${@:-10000 19000}"; do
  for n1 in $n; do
    start_mock
    out="$BENCH_OUT/density-$n1"
    run_against_mock "$ROOT/benches/scenarios/idle-19k.yaml" "$out" --users "$n1"
    mock_hwm=$(proc_kb "$MOCK_PID" VmHWM)
    stop_mock
    conn=$(field "$out/summary.json" "s['metrics']['counters']['connects']")
    printf '%-7s %-10s %-11s %-11s %-10s %-10s %-11s %-9s %s\n' "$n1" "$conn" \
      "$(field "$out/summary.json" "round(s['generator']['peak_rss_bytes']/1048576,1)")" \
      "$(field "$out/summary.json" "s['generator']['rss_per_user_bytes']")" \
      "$(python3 -c "print(round($mock_hwm/1024,1))")" \
      "$(python3 -c "print(round($mock_hwm*1024/max(1,$conn)))")" \
      "$(field "$out/summary.json" "s['metrics']['counters']['reconnect_attempts']")" \
      "$(field "$out/summary.json" "str(round(s['latency']['connect.ws']['summary']['p99_us']/1000,1))+'ms'")" \
      "$RC"
  done
done
echo "# runs in $BENCH_OUT"
