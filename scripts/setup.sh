#!/usr/bin/env bash
# Create .venv with the CPU build of PyTorch first (a bare torch requirement would
# pull a multi-GB CUDA build), then fedcurate and its development tools.
# Dependencies are pinned by constraints.txt (exact versions, so a fresh installation
# computes like the one that made the published benchmarks). Idempotent: reinstalls
# only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.fedcurate-installed"
wanted=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet torch==2.13.0
  .venv/bin/python -m pip install --quiet -e ".[dev]" -c constraints.txt
  echo "$wanted" > "$stamp"
fi
