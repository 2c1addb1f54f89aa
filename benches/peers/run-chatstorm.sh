#!/usr/bin/env bash
# chatstorm on the peers' standard workload, through the peers' own harness (lib/common.sh):
# same refserver, netns, /usr/bin/time -v and RSS/CPU sampler as every other tool.
# Copied into the peers folder by benches/peers.sh. Needs CHATSTORM_BIN, CHATSTORM_WORKLOAD,
# CHATSTORM_TOJSON in the environment.
# Usage: ./run-chatstorm.sh [N] [URL]
TOOL=chatstorm
source "$(dirname "$0")/lib/common.sh"
maybe_netns
tool_prepare() { :; }
tool_version() { "$CHATSTORM_BIN" --version; }
tool_cmd() { TOOL_CMD=(sh "$PEERS_DIR/chatstorm-wrap.sh"); }
TOOL_PARSER=own_json
main_run
