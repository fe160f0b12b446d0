#!/usr/bin/env bash
# One-time set-up: a virtual environment with the project and its dev tools.
# Idempotent: re-running it only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
  # torch (CPU build) lets the tests prove numpy and torch give the same bytes
  .venv/bin/python -m pip install --quiet -e '.[dev,torch,demo,flower]'
  touch "$stamp"
fi
# the pinned Solidity compiler (solcjs) and anvil, from the npm registry
if [ ! -f contracts/node_modules/.installed ] || [ contracts/package-lock.json -nt contracts/node_modules/.installed ]; then
  # npm ci rejects this lock file (it omits the other platforms' optional anvil binaries);
  # npm install keeps to the lock and the exact pins in package.json
  (cd contracts && npm install --no-audit --no-fund --loglevel=error)
  touch contracts/node_modules/.installed
fi
# headless Chromium for the explorer page's test (Debian's package), where apt-get runs as root;
# without it that one test is skipped and says why
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
  if ! { apt-get update -qq && apt-get install -y -qq chromium; } \
      >/tmp/mps-setup-apt.log 2>&1; then
    echo "setup: could not install chromium (see /tmp/mps-setup-apt.log); its test will skip" >&2
  fi
fi
