#!/usr/bin/env bash
# Set up (first time only) and run the test suite on every core; extra arguments
# go to pytest (`bash scripts/test.sh -m slow` runs the real-process deployment suite).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FLWR_TELEMETRY_ENABLED=0
exec .venv/bin/python -m pytest -n auto "$@"
