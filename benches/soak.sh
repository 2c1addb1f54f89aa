#!/usr/bin/env bash
# Soak: are resident memory and descriptors flat, for the harness and for the mock, over a long
# run with a fault every minute? (issue 18, "Fuzzing and soak")
#
#   benches/soak.sh [DURATION] [USERS]     (default 30m and 10000; e.g. benches/soak.sh 4m 2000)
#   SOAK_SCENARIO=other.yaml benches/soak.sh ...   (another base scenario, e.g. to isolate a cause)
#   SOAK_MOCK_ARGS='--messages-kept 10' benches/soak.sh ...   (extra options for the mock)
#
# Runs benches/scenarios/soak.yaml (mostly-JS mixed users, light traffic: a message, a typing
# pair and a read every few minutes per user) against a standalone mock in its own process
# (start_mock; the fault-control secret goes through the environment). The scenario's timeline is
# one cycle of ten restart-free fault kinds; this script repeats it so that one fault falls on
# every whole minute of the run, and shortens the 2-minute ramp to a sixth of short runs. Every
# 10 s it samples VmRSS (/proc/PID/status) and the open descriptors (/proc/PID/fd) of both
# processes into $BENCH_OUT/soak.csv. At the end it prints one row a minute (t, harness RSS MB and
# fds, mock RSS MB and fds) and a verdict per process: "flat" when the median of the last third
# of the run is within 10 % (RSS) and 2 % (fds) of the median of the middle third (which starts
# after the ramp), else "growing" with the figures; then the run's exit code and verdict from
# summary.json. Exit status: 1 if either process grows, else 0. A run that ends with exit 4
# (the generator saturated on this shared machine) is a result, not a failure of this script.
#
# Measured 2026-12-04, `benches/soak.sh` (30m, 10,000 users: 70 % JS, 20 % Android, 5 % Swift,
# 5 % Flutter; release; 2 shared cores, load 0.13 at start, 1.1-1.2 during, 1.08 1.22 1.13 at end):
#
#       t  harness_MB harness_fds  mock_MB mock_fds
#    0m00s         8.6          11      7.3       12
#    5m02s       116.1       10040    177.1    10040
#   10m03s       123.2        9955    192.4     9971
#   15m05s       125.6       10044    199.9    10044
#   20m06s       126.4       10047    217.1    10047
#   25m07s       129.6       10046    229.5    10046
#   29m08s       129.6       10025    238.6    10025
#   harness: flat: RSS median 125.2 MB (middle third) -> 129.7 MB (last third), +3.6 %; fds 10041 -> 10056, +0.1 %
#   mock: growing: RSS median 199.3 MB (middle third) -> 229.5 MB (last third), +15.1 %; fds 10041 -> 10056, +0.1 %
#   run: exit 3 (conformance failed: HEALTH-INTERVAL, 4 of 1,286,497 gaps were 50 s = one
#   health.check missing, first at 4m02s, after the 3m half_open fault); 38,953 connects, 34,402
#   reconnect attempts, 15,428 token refreshes, 144,051 messages sent, 3,198,109 received.
#   (That was a false fail, fixed after this run: the observer no longer judges a health-check gap
#   across the scenario's own half_open or add_latency window. Not re-soaked since.)
# Descriptors are flat in both. The mock's RSS rises in two ways: a creep of about 2 MB a minute
# until about 22m and none from 23m to 27m (229.4 -> 229.7 MB), which fits the message history
# filling up (the mock keeps the last 100 messages of each of the 1,000 channels: 100,000 at
# most; about 144 per channel were sent in the run, so most channels reached their cap around
# 20m); and steps of 8-11 MB that stay, at 8m, 18m, 22m and 28m, each an expire_tokens fault
# (client side at 8/18/28m, server side at 22m) after which thousands of users refresh and
# reconnect at once; the harness shows a spike at the same moments (about +8 MB, fds 10,270) that
# goes away again. The steps look like the allocator keeping a burst's peak, not a structure
# that grows (every map of the mock is keyed by user, connection or channel); not proven.
# Checked with a history-only run (1,000 JS users in 1,000 channels of 10, a message a second
# each, no faults; SOAK_SCENARIO, 3m, load 3.4 -> 1.6): the mock's RSS rose 30.9 -> 141.6 MB from
# 20 s to 121 s while the history filled (about 1.2 KB per kept message, so 100,000 kept
# messages are about 120 MB), then 152.2 MB at 141 s and 159.9 MB at 161 s: slower, not yet
# flat. A 5m history-only run (load 1.6-3.4) settles: 163.9 MB at 181 s, 176.8 at 221 s, 180.2
# at 241 s, 181.5 at 261 s, 181.9 at 281 s (274,559 messages sent): the mock's growth is its
# bounded message history (about 1.2 KB per kept message, 100 per channel), not a leak; in the
# 30m soak the history was still filling in the middle third, hence "growing". The harness stayed
# at 25.4-26.6 MB, fds flat.
# Measured 2026-12-05, `SOAK_MOCK_ARGS='--messages-kept 10' benches/soak.sh` (30m, 10,000 users; the
# mock keeps 10 messages per channel instead of 100, so its bounded history is full after ~3 min and
# what is left to see is a leak; release; load 4.3 at start, 0.2 at the end):
#       t  harness_MB harness_fds  mock_MB mock_fds
#    3m01s       111.3       10025    133.8    10025
#    9m03s       118.6       10022    158.3    10024
#   13m05s       131.7       10019    172.0    10019
#   20m09s       131.3       10087    172.8    10087
#   25m01s       131.3       10039    172.8    10040
#   29m02s       130.4        9734    173.7     9736
#   harness: flat: RSS median 132.3 MB (middle third) -> 131.3 MB (last third), -0.8 %; fds 10070 -> 10049
#   mock: flat: RSS median 172.1 MB (middle third) -> 172.8 MB (last third), +0.4 %; fds 10070 -> 10049
#   run: exit 0, passed (the HEALTH-INTERVAL false fail is gone); 39,018 connects, 34,426 reconnect
#   attempts, 15,455 token refreshes, 144,123 messages sent, 3,190,728 received.
# Both processes rise until ~13m (the expire_tokens fault at 12m is the last step up) and are flat
# from then to the end.
source "$(dirname "$0")/lib.sh"
DURATION="${1:-30m}"
USERS="${2:-10000}"
SAMPLE_SECS=10
build
load_note

# The scenario for this duration: the base file with its ramp scaled and its fault cycle repeated.
scenario="$BENCH_OUT/soak.yaml"
secs="$(python3 - "${SOAK_SCENARIO:-$ROOT/benches/scenarios/soak.yaml}" "$DURATION" "$scenario" <<'PY'
import re, sys, yaml
base, dur, out = sys.argv[1], sys.argv[2], sys.argv[3]
units = {'h': 3600, 'm': 60, 's': 1}
parts = re.findall(r'(\d+)(h|m|s)', dur)
if not parts or ''.join(n + u for n, u in parts) != dur:
    sys.exit(f"soak.sh: duration {dur!r}: write it like 30m, 4m or 1h30m")
total = sum(int(n) * units[u] for n, u in parts)
if total < 180:
    sys.exit(f"soak.sh: duration {dur!r}: at least 3m (a ramp, then two thirds to compare)")
s = yaml.safe_load(open(base))
ramp = min(120, total // 6)
s['load'] = [{'ramp': {'to': s['users']['count'], 'over': f'{ramp}s'}},
             {'hold': f'{total - ramp}s'}]
cycle = sorted(s.get('timeline') or [], key=lambda e: int(e['at'].rstrip('m')))
timeline = []
for minute in range(1, (total - 1) // 60 + 1 if cycle else 1):
    entry = dict(cycle[(minute - 1) % len(cycle)])
    entry['at'] = f'{minute}m'
    timeline.append(entry)
s['timeline'] = timeline
yaml.safe_dump(s, open(out, 'w'), sort_keys=False)
print(total)
PY
)"
"$BIN" validate "$scenario" >/dev/null

csv="$BENCH_OUT/soak.csv"
echo "t_s,harness_rss_kb,harness_fds,mock_rss_kb,mock_fds" >"$csv"
start_mock ${SOAK_MOCK_ARGS:-}
out="$BENCH_OUT/soak"
echo "# soak: $USERS users for $DURATION (${secs} s), a fault every minute; output in $BENCH_OUT" >&2
# Started directly (not through with_secrets): $! must be the harness itself, not a subshell.
RC=0
CHATSTORM_SECRET="$MOCK_SECRET" CHATSTORM_FAULT_SECRET="$MOCK_FAULT_SECRET" \
  "$BIN" run "$scenario" --target "$MOCK_URL" --api-key "$MOCK_KEY" --users "$USERS" \
  --out "$out" --format json,console,html >"$out.log" 2>&1 &
HARNESS_PID=$!
trap 'kill "$HARNESS_PID" 2>/dev/null || true; stop_mock' EXIT

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
t0=$(date +%s)
# A sample every SAMPLE_SECS while the harness lives; t is measured, not counted, so a late tick
# on a busy machine does not shift the table.
while kill -0 "$HARNESS_PID" 2>/dev/null; do
  h_rss="$(proc_kb "$HARNESS_PID" VmRSS 2>/dev/null || true)"
  h_fds="$(fds "$HARNESS_PID")"
  m_rss="$(proc_kb "$MOCK_PID" VmRSS 2>/dev/null || true)"
  m_fds="$(fds "$MOCK_PID")"
  [ -n "$h_rss" ] && [ -n "$m_rss" ] && echo "$(( $(date +%s) - t0 )),$h_rss,$h_fds,$m_rss,$m_fds" >>"$csv"
  sleep "$SAMPLE_SECS" & wait $! || true
done
wait "$HARNESS_PID" || RC=$?
trap - EXIT
stop_mock
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$csv" "$secs" "$out/summary.json" "$RC" <<'PY'
import csv, json, statistics, sys
rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(open(sys.argv[1]))]
total, rc = int(sys.argv[2]), sys.argv[4]
ramp = min(120, total // 6)
mb = lambda kb: kb / 1024
print(f"{'t':>7} {'harness_MB':>11} {'harness_fds':>11} {'mock_MB':>8} {'mock_fds':>8}")
nxt = 0
for r in rows:
    if r['t_s'] >= nxt:
        print(f"{r['t_s'] // 60:>3}m{r['t_s'] % 60:02d}s {mb(r['harness_rss_kb']):>11.1f} {r['harness_fds']:>11} {mb(r['mock_rss_kb']):>8.1f} {r['mock_fds']:>8}")
        nxt = (r['t_s'] // 60 + 1) * 60
mid = [r for r in rows if max(total / 3, ramp) <= r['t_s'] < 2 * total / 3]
# Samples after the planned end are the users leaving, not the soak.
last = [r for r in rows if 2 * total / 3 <= r['t_s'] < total]
growing = False
for who in ('harness', 'mock'):
    if len(mid) < 2 or len(last) < 2:
        print(f"{who}: no verdict (too few samples: {len(mid)} in the middle third, {len(last)} in the last)")
        growing = True
        continue
    m_rss = statistics.median(r[f'{who}_rss_kb'] for r in mid)
    l_rss = statistics.median(r[f'{who}_rss_kb'] for r in last)
    m_fds = statistics.median(r[f'{who}_fds'] for r in mid)
    l_fds = statistics.median(r[f'{who}_fds'] for r in last)
    d_rss = (l_rss - m_rss) / m_rss * 100
    d_fds = (l_fds - m_fds) / max(m_fds, 1) * 100
    grows = d_rss > 10 or d_fds > 2
    growing |= grows
    print(f"{who}: {'growing' if grows else 'flat'}: RSS median {mb(m_rss):.1f} MB (middle third) -> "
          f"{mb(l_rss):.1f} MB (last third), {d_rss:+.1f} % (limit +10 %); fds {m_fds:.0f} -> {l_fds:.0f}, "
          f"{d_fds:+.1f} % (limit +2 %)")
try:
    s = json.load(open(sys.argv[3]))
    v = s['verdict']
    c = s['metrics']['counters']
    print(f"run: exit {rc}; verdict {v['outcome']} (exit {v['exit_code']}): {'; '.join(v['reasons']) or '-'}")
    print(f"run: connects {c.get('connects', 0)}, reconnect attempts {c.get('reconnect_attempts', 0)}, "
          f"disconnects {c.get('disconnects', 0)}, token refreshes {c.get('token_refreshes', 0)}, "
          f"messages sent {c.get('events_sent', 0)}, received {c.get('events_received', 0)}")
except (OSError, ValueError, KeyError) as e:
    print(f"run: exit {rc}; no summary.json verdict ({e})")
sys.exit(1 if growing else 0)
PY
