#!/usr/bin/env bash
# The test command: set-up, lint, type-check, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy stf node rpc client_sdk contracts mps_common examples
# one worker per core (tests pick free ports and their own temp dirs); "-n 0" runs serially
.venv/bin/python -m pytest -q -n "${MPS_TEST_WORKERS:-auto}" "$@"
