#!/usr/bin/env bash
# Set up (first time only) and run the main job: a local simulation on bundled
# digits with every protection on (DP-SGD at the owners, CKKS-encrypted updates,
# the curator scoring owners on ciphertexts; conf/experiment/quickstart.yaml).
# Extra arguments are Hydra overrides, e.g. `bash scripts/quickstart.sh num_rounds=10`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FLWR_TELEMETRY_ENABLED=0
exec .venv/bin/fedcurate simulate experiment=quickstart "$@"
