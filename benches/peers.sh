#!/usr/bin/env bash
# chatstorm beside the leanest peer (node-ws) on the peers' standard workload, through the peers'
# own harness, in one sitting: N users open ws://127.0.0.1:PORT/connect on refserver, wait for
# the first frame, hold HOLD_SECS (20), close. Prints one table with the ratios.
# Then the same over wss:// (issue 13): the work copy's refserver gets a TLS form
# (benches/peers/refserver-tls.patch: REFSERVER_TLS_CERT/KEY, rustls with ring), a certificate
# for 127.0.0.1 is made with openssl, node-ws trusts it through NODE_EXTRA_CA_CERTS and
# chatstorm through --ca-cert; the work copy's lib/common.sh is pointed at wss:// (REF_SCHEME).
# Budgets over wss: chatstorm's memory per connection at most a quarter of node's, CPU at most
# node's.
#
# Usage: benches/peers.sh [N] [SCHEMES]     (default 10000 "ws wss")
#
# Measured 2026-12-05, N=10000, load average 5.5-6.1 (two other agents building), wss:
#   node-ws 62.54 KB/conn, 14.46 CPU s; chatstorm 7.94 KB/conn, 3.22 CPU s: ratios 0.127 (goal
#   <= 0.25, met) and 0.223 (goal <= 1, met); connect p50 738 ms vs 55 ms. chatstorm's run itself
#   was exit 4 (scheduler lag p99 40.9 ms at that load; its own handshakes 25 % of the cores in
#   the busiest second, bound 50 %). Same sitting over ws: 3.74 vs 13.61 KB/conn (0.275, goal
#   0.25 not met at that load), CPU 0.83 vs 2.37 s (0.350).
# Env:   PEERS_DIR (default ../shared/peers beside the repository: copied, never used in place), PEERS_WORK (the
#        copy, default $TMPDIR/chatstorm-peers; must be outside the repository), HOLD_SECS (20).
# Needs: cargo, node + npm (for the `ws` package), python3, /usr/bin/time, unshare (optional).
set -euo pipefail
N="${1:-10000}"
SCHEMES="${2:-ws wss}"
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
if [ ! -f "$WORK/refserver/.tls-form" ]; then
  patch -p1 -d "$WORK/refserver" <"$REPO/benches/peers/refserver-tls.patch"
  # The URL the harness builds for its own refserver: ws:// unless REF_SCHEME says wss.
  sed -i 's|URL="ws://127.0.0.1:$REF_PORT/connect"|URL="${REF_SCHEME:-ws}://127.0.0.1:$REF_PORT/connect"|' \
    "$WORK/lib/common.sh"
  touch "$WORK/refserver/.tls-form"
fi
(cd "$WORK/refserver" && cargo build --release)
# A self-signed server certificate, trusted as itself: not a CA (webpki refuses a CA certificate
# as the server's own, CaUsedAsEndEntity, which is what openssl's default -x509 makes).
TLS_DIR="$WORK/tls"
if [ ! -f "$TLS_DIR/cert.pem" ]; then
  mkdir -p "$TLS_DIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=refserver -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
    -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null
fi
(cd "$REPO" && cargo build --release -p chatstorm)
export CHATSTORM_BIN="$REPO/target/release/chatstorm"
export CHATSTORM_WORKLOAD="$REPO/benches/peers/workload.yaml"
export CHATSTORM_TOJSON="$REPO/benches/peers/to_json.py"
cp "$REPO/benches/peers/run-chatstorm.sh" "$REPO/benches/peers/chatstorm-wrap.sh" "$WORK/"
chmod +x "$WORK/run-chatstorm.sh"
export RESULTS_DIR="$WORK/results"
for scheme in $SCHEMES; do
  if [ "$scheme" = wss ]; then
    export REF_SCHEME=wss REFSERVER_TLS_CERT="$TLS_DIR/cert.pem" REFSERVER_TLS_KEY="$TLS_DIR/key.pem"
    export NODE_EXTRA_CA_CERTS="$TLS_DIR/cert.pem" CHATSTORM_CA="$TLS_DIR/cert.pem"
  else
    unset REF_SCHEME REFSERVER_TLS_CERT REFSERVER_TLS_KEY NODE_EXTRA_CA_CERTS CHATSTORM_CA
  fi
  echo "## $scheme://"
  echo "load before: $(uptime)"
  "$WORK/run-node-ws.sh" "$N" >/dev/null
  echo "load between: $(uptime)"
  "$WORK/run-chatstorm.sh" "$N" >/dev/null
  echo "load after: $(uptime)"
  python3 "$REPO/benches/peers/table.py" "$RESULTS_DIR/results.jsonl" "$N" "$scheme"
done
