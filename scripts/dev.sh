#!/usr/bin/env bash
# The main job: set-up, then a local dev network in one process (Ctrl-C stops it cleanly).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mps-node dev --datadir "${MPS_DATADIR:-./devnet}" "$@"
