#!/usr/bin/env bash
# Set up (first time only) and run the default experiment; extra arguments are
# Hydra overrides, e.g. `bash scripts/quickstart.sh num_rounds=5`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fedcurate simulate "$@"
