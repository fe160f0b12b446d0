#!/usr/bin/env bash
# The main job: set-up, a local dev network (sequencer, anvil L1, contracts, 12 staked dev
# clients), the demo federation against it, then the network keeps running until Ctrl-C.
#
#   bash scripts/dev.sh               set-up, network, demo, keep running
#   bash scripts/dev.sh --no-demo     set-up and the network only (in the foreground)
#   bash scripts/dev.sh --demo-only   the demo against the network already running on ./devnet
#
# Data in ${MPS_DATADIR:-./devnet}, node log in <datadir>/node.log, RPC on 127.0.0.1:8645
# (MPS_RPC_PORT to change it), the demo's figure and figures in <datadir>/demo/. Other
# arguments go to `mps-node dev`. Re-running on an existing data directory resumes the chain;
# each demo run creates a new task (dev clients slashed by an earlier run are replaced by
# fresh staked keys, see examples/demo/members.py).
set -euo pipefail
cd "$(dirname "$0")/.."
DATADIR="${MPS_DATADIR:-./devnet}"
PORT="${MPS_RPC_PORT:-8645}"
mode=demo
args=()
for a in "$@"; do
  case "$a" in
    --no-demo) mode=node ;;
    --demo-only) mode=demo-only ;;
    *) args+=("$a") ;;
  esac
done
bash scripts/setup.sh

if [ "$mode" = node ]; then
  exec .venv/bin/mps-node dev --datadir "$DATADIR" --rpc-port "$PORT" ${args[@]+"${args[@]}"}
fi
if [ "$mode" = demo-only ]; then
  exec .venv/bin/python -m examples.demo --devnet "$DATADIR" ${args[@]+"${args[@]}"}
fi

mkdir -p "$DATADIR"
log="$DATADIR/node.log"
: >"$log"
# its own process group (set -m), so that Ctrl-C reaches this script and the node gets exactly
# one SIGTERM from the trap below (a second signal makes it exit at once, not cleanly)
set -m
.venv/bin/mps-node dev --datadir "$DATADIR" --rpc-port "$PORT" --log-format json \
  ${args[@]+"${args[@]}"} >>"$log" 2>&1 &
node=$!
set +m
stop() {
  trap - EXIT INT TERM
  if kill -0 "$node" 2>/dev/null; then
    echo "stopping the dev network..."
    kill -TERM "$node" 2>/dev/null || true
    wait "$node" 2>/dev/null || true
  fi
}
trap stop EXIT
trap 'exit 130' INT TERM

echo "starting the dev network in $DATADIR (log: $log)..."
url=""
for _ in $(seq 1 240); do
  if ! kill -0 "$node" 2>/dev/null; then
    echo "mps-node dev exited; the end of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  url=$(grep -m1 '"rpc listening"' "$log" | grep -o 'http://[^"]*' | head -n1 || true)
  [ -n "$url" ] && break
  sleep 0.5
done
if [ -z "$url" ]; then
  echo "the node did not start listening within 2 minutes; see $log" >&2
  exit 1
fi
echo "dev network up: RPC $url, L1 $(cat "$DATADIR/l1/endpoint" 2>/dev/null || echo '?')"

if ! .venv/bin/python -m examples.demo --devnet "$DATADIR" --rpc "$url"; then
  echo "the demo failed (above); the dev network keeps running" >&2
fi
echo
echo "dev network running: RPC $url, data in $DATADIR, log $log. Ctrl-C stops it."
wait "$node"
