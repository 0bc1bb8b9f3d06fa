"""Shared test fixtures: quiet, offline, small."""

from __future__ import annotations

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from pathlib import Path

import pytest
import torch

from fedcurate.config import Config, compose_config

torch.set_num_threads(1)

#: A small experiment that still exercises every part of the round loop.
SMALL = ["num_clients=4", "num_rounds=2", "train.local_epochs=1"]


@pytest.fixture
def small_config() -> Config:
    """Four digits owners, two rounds."""
    return compose_config(SMALL)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh run directory."""
    return tmp_path / "run"
