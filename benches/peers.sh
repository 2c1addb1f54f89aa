#!/usr/bin/env bash
# chatstorm beside the leanest peer (node-ws) on the peers' standard workload, through the peers'
# own harness, in one sitting: N users open ws://127.0.0.1:PORT/connect on refserver, wait for
# the first frame, hold HOLD_SECS (20), close. Prints one table with the ratios.
#
# Usage: benches/peers.sh [N]     (default 10000)
# Env:   PEERS_DIR (default ../shared/peers beside the repository: copied, never used in place), PEERS_WORK (the
#        copy, default $TMPDIR/chatstorm-peers; must be outside the repository), HOLD_SECS (20).
# Needs: cargo, node + npm (for the `ws` package), python3, /usr/bin/time, unshare (optional).
set -euo pipefail
N="${1:-10000}"
export HOLD_SECS="${HOLD_SECS:-20}" RAMP_SECS=0
REPO="$(cd "$(dirname "$0")/.." && pwd)"
# The peers folder sits beside the repository (../shared/peers) in this workplace.
SRC="${PEERS_DIR:-}"
if [ -z "$SRC" ]; then
  for c in "$REPO/../shared/peers" /work/shared/peers; do [ -d "$c" ] && SRC="$c" && break; done
fi
[ -d "${SRC:-/nonexistent}" ] || { echo "peers.sh: no peers folder; set PEERS_DIR" >&2; exit 2; }
WORK="${PEERS_WORK:-${TMPDIR:-/tmp}/chatstorm-peers}"
case "$(cd "$(dirname "$WORK")" && pwd)/" in
  "$REPO"/*) echo "PEERS_WORK must be outside the repository (third-party installs)" >&2; exit 2 ;;
esac
if [ ! -d "$WORK" ]; then cp -r "$SRC" "$WORK"; fi
if [ ! -x "$WORK/refserver/target/release/refserver" ]; then
  (cd "$WORK/refserver" && cargo build --release)
fi
if [ ! -f "$WORK/node_modules/ws/package.json" ]; then
  # Only ws: the folder's package.json also lists artillery and stream-chat (600 MB).
  tmp="$(mktemp -d)"
  (cd "$tmp" && echo '{"private": true}' >package.json && npm install --no-audit --no-fund ws@8.23.0)
  mkdir -p "$WORK/node_modules" && cp -r "$tmp/node_modules/ws" "$WORK/node_modules/"
  rm -rf "$tmp"
fi
(cd "$REPO" && cargo build --release -p chatstorm)
export CHATSTORM_BIN="$REPO/target/release/chatstorm"
export CHATSTORM_WORKLOAD="$REPO/benches/peers/workload.yaml"
export CHATSTORM_TOJSON="$REPO/benches/peers/to_json.py"
cp "$REPO/benches/peers/run-chatstorm.sh" "$REPO/benches/peers/chatstorm-wrap.sh" "$WORK/"
chmod +x "$WORK/run-chatstorm.sh"
export RESULTS_DIR="$WORK/results"
echo "load before: $(uptime)"
"$WORK/run-node-ws.sh" "$N" >/dev/null
echo "load between: $(uptime)"
"$WORK/run-chatstorm.sh" "$N" >/dev/null
echo "load after: $(uptime)"
python3 "$REPO/benches/peers/table.py" "$RESULTS_DIR/results.jsonl" "$N"
