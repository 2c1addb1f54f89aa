#!/bin/sh
# Runs chatstorm on the workload, then prints the one JSON line the peers' own_json parser reads
# (from chatstorm's summary.json). A POSIX sh wrapper: about 1 MB next to chatstorm in the tree RSS.
if [ "${RAMP_SECS:-0}" != 0 ]; then echo "chatstorm runner: only RAMP_SECS=0 is wired up" >&2; exit 2; fi
# Over wss:// the run trusts the refserver's certificate (CHATSTORM_CA, set by benches/peers.sh).
"$CHATSTORM_BIN" run "$CHATSTORM_WORKLOAD" --target "$URL" --users "$N" --duration "${HOLD_SECS}s" \
  ${CHATSTORM_CA:+--ca-cert "$CHATSTORM_CA"} \
  --out "$RUN/chatstorm" --format json,console -q >&2
rc=$?
python3 "$CHATSTORM_TOJSON" "$RUN/chatstorm/summary.json" "$N"
exit $rc
