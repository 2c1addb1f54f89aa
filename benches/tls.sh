#!/usr/bin/env bash
# TLS budgets (issue 13), each TLS figure beside the same run over plain ws in the same sitting:
#
#   benches/tls.sh [IDLE_USERS] [BURST_USERS]     (default: 10000 5000)
#
# Memory: IDLE_USERS JS users connect over 40 s and sit idle for 30 s (benches/scenarios/idle-19k
# scaled), once over ws:// and once over wss:// to a standalone mock with a self-signed
# certificate (--tls-self-signed; the harness trusts it with --ca-cert). Prints the harness's peak
# resident set per connected user, base included (budget over wss: 12 KiB = 12,288 B), and the
# difference per user: what a TLS connection costs on top.
# CPU: BURST_USERS JS users arrive at 1,000/s (benches/scenarios/tls-burst.yaml) three times: plain
# ws, wss with every handshake full, wss with resumption on. Prints the harness's whole-run CPU
# per 1,000 connects (token, handshake, upgrade, first health.check, the channel watch, the hold
# and shutdown) and the TLS share: (wss - ws) per 1,000 connects, the cost the handshakes add
# (budget: full 0.4 s, resumed 0.2 s per 1,000). The handshake counts come from summary.json.
# The machine is shared: the load average is printed at start and at the end; compare the
# figures of one sitting, not across sittings.
#
# Measured 2026-12-05 22:40 UTC (release, 2 shared cores, load 5.8 -> 3.7: others' builds),
# `benches/tls.sh`: idle 10,000 users 6,547 B per user over ws, 10,903 B over wss (budget
# 12,288 B: met since the users' TLS stream is net::lean_tls, rustls's unbuffered API with no
# buffer held while idle; with tokio-rustls it was 15,176 B); TLS adds 0.284 CPU s per 1,000
# full connects (budget 0.4) and 0.143 per 1,000 resumed (budget 0.2), on 0.260 s per 1,000
# over ws. With P-384 first (ring's default), load 0.3-0.8: 0.817 and 0.681.
source "$(dirname "$0")/lib.sh"
idle=${1:-10000}
burst=${2:-5000}
build
load_note
CA="$BENCH_OUT/ca.pem"

# run_one NAME SCENARIO TLS(yes|no) [RUN-OPTIONS...]: a fresh mock, one run; leaves the summary
# in $BENCH_OUT/NAME/summary.json.
run_one() {
  local name=$1 scenario=$2 tls=$3; shift 3
  if [ "$tls" = yes ]; then
    start_mock --tls-self-signed --tls-write-ca "$CA"
    run_against_mock "$scenario" "$BENCH_OUT/$name" --ca-cert "$CA" "$@"
  else
    start_mock
    run_against_mock "$scenario" "$BENCH_OUT/$name" "$@"
  fi
  stop_mock
}

s() { field "$BENCH_OUT/$1/summary.json" "$2"; }
count() { s "$1" "s['metrics']['counters'].get('$2', 0)"; }

echo "## memory: $idle idle JS users, one process"
run_one idle-ws "$ROOT/benches/scenarios/idle-19k.yaml" no --users "$idle"
run_one idle-wss "$ROOT/benches/scenarios/idle-19k.yaml" yes --users "$idle"
printf '%-8s %-10s %-12s %-12s %-11s %s\n' target connected harness_MiB harness_B/u reconnects exit
for r in idle-ws idle-wss; do
  printf '%-8s %-10s %-12s %-12s %-11s %s\n' "${r#idle-}" "$(count "$r" connects)" \
    "$(s "$r" "round(s['generator']['peak_rss_bytes']/1048576,1)")" \
    "$(s "$r" "s['generator']['rss_per_user_bytes']")" \
    "$(count "$r" reconnect_attempts)" "$(s "$r" "s['verdict']['exit_code']")"
done
ws_b=$(s idle-ws "s['generator']['rss_per_user_bytes']")
wss_b=$(s idle-wss "s['generator']['rss_per_user_bytes']")
echo "wss: $wss_b B per user (budget 12,288 B); TLS adds $((wss_b - ws_b)) B per user over ws ($ws_b B)"

echo "## CPU: $burst JS users at 1,000/s"
sed -e "s/to: 5000, over: 5s/to: $burst, over: $((burst / 1000))s/" "$ROOT/benches/scenarios/tls-burst.yaml" >"$BENCH_OUT/burst-off.yaml"
sed -e 's/resumption: off/resumption: on/' "$BENCH_OUT/burst-off.yaml" >"$BENCH_OUT/burst-on.yaml"
run_one burst-ws "$BENCH_OUT/burst-off.yaml" no --users "$burst"
run_one burst-full "$BENCH_OUT/burst-off.yaml" yes --users "$burst"
run_one burst-resumed "$BENCH_OUT/burst-on.yaml" yes --users "$burst"
python3 - "$BENCH_OUT" <<'PY'
import json, sys
out = sys.argv[1]
runs = {}
for name in ["burst-ws", "burst-full", "burst-resumed"]:
    s = json.load(open(f"{out}/{name}/summary.json"))
    c = s["metrics"]["counters"]
    runs[name] = (s["generator"]["cpu_seconds"], c["connects"], c.get("tls_full_handshakes", 0),
                  c.get("tls_resumed_handshakes", 0), s["verdict"]["exit_code"],
                  s["latency"].get("connect.tls", {}).get("summary", {}).get("p50_us", 0) / 1000)
print(f"{'run':<14} {'connects':>8} {'full':>6} {'resumed':>8} {'cpu_s':>6} {'cpu_s/1k':>9} {'tls_p50':>8} exit")
for name, (cpu, n, full, res, rc, p50) in runs.items():
    print(f"{name:<14} {n:>8} {full:>6} {res:>8} {cpu:>6.2f} {cpu / (n / 1000):>9.3f} {p50:>7.2f}ms {rc}")
base = runs["burst-ws"][0] / (runs["burst-ws"][1] / 1000)
for name, budget in [("burst-full", 0.4), ("burst-resumed", 0.2)]:
    cpu, n = runs[name][0], runs[name][1]
    per = cpu / (n / 1000)
    print(f"{name}: {per:.3f} CPU s per 1,000 connects in all (ws: {base:.3f}); TLS adds {per - base:.3f} s per 1,000 (budget {budget})")
PY
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# runs in $BENCH_OUT"
