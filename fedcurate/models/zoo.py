"""Model zoo: logistic regression, MLP and a small GroupNorm CNN.

Every model is sized from the dataset and is compatible with Opacus per-example
gradients (no BatchNorm, no parameter sharing).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from fedcurate.config import ConfigError, ModelConfig
from fedcurate.data.federation import DatasetSpec


def _flat_size(shape: tuple[int, ...]) -> int:
    size = 1
    for dim in shape:
        size *= dim
    return size


def logistic(cfg: ModelConfig, spec: DatasetSpec) -> nn.Module:
    """Multinomial logistic regression."""
    return nn.Sequential(nn.Flatten(), nn.Linear(_flat_size(spec.input_shape), spec.num_classes))


def mlp(cfg: ModelConfig, spec: DatasetSpec) -> nn.Module:
    """Fully connected network with ReLU hidden layers of sizes ``cfg.hidden``."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = _flat_size(spec.input_shape)
    for hidden in cfg.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, spec.num_classes))
    return nn.Sequential(*layers)


def cnn(cfg: ModelConfig, spec: DatasetSpec) -> nn.Module:
    """Conv -> GroupNorm -> ReLU blocks, a max-pool and a linear head (1-D or 2-D input)."""
    if len(spec.input_shape) not in (2, 3):
        raise ConfigError(
            f"model=cnn needs image (C, H, W) or signal (C, L) inputs; dataset "
            f"'{spec.name}' has shape {spec.input_shape}: use model=mlp or model=logistic"
        )
    two_d = len(spec.input_shape) == 3
    conv = nn.Conv2d if two_d else nn.Conv1d
    pool = nn.MaxPool2d(2) if two_d else nn.MaxPool1d(2)
    layers: list[nn.Module] = []
    width = spec.input_shape[0]
    for channels in cfg.channels:
        if channels % cfg.norm_groups:
            raise ConfigError(
                f"model.channels: {channels} is not divisible by "
                f"model.norm_groups={cfg.norm_groups}"
            )
        layers += [
            conv(width, channels, kernel_size=3, padding=1),
            nn.GroupNorm(cfg.norm_groups, channels),
            nn.ReLU(),
        ]
        width = channels
    layers += [pool, nn.Flatten()]
    body = nn.Sequential(*layers)
    with torch.no_grad():
        features = body(torch.zeros(1, *spec.input_shape)).shape[1]
    return nn.Sequential(*layers, nn.Linear(features, spec.num_classes))


MODELS: dict[str, Callable[[ModelConfig, DatasetSpec], nn.Module]] = {
    "logistic": logistic,
    "mlp": mlp,
    "cnn": cnn,
}


def build_model(cfg: ModelConfig, spec: DatasetSpec, seed: int = 0) -> nn.Module:
    """A freshly initialised model; the same ``seed`` gives the same weights."""
    try:
        factory = MODELS[cfg.name]
    except KeyError:
        raise ConfigError(f"model.name: '{cfg.name}' is not one of {sorted(MODELS)}") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(cfg, spec)


_TEMPLATES: dict[tuple[str, DatasetSpec], nn.Module] = {}


def blank_model(cfg: ModelConfig, spec: DatasetSpec) -> nn.Module:
    """A model of this architecture whose weights the caller will overwrite.

    A copy of a cached template: building and initialising a fresh module for
    every message costs more than the local training of a small model.
    """
    key = (repr(cfg), spec)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = build_model(cfg, spec)
    return copy.deepcopy(_TEMPLATES[key])
