"""Grad-sample modes: how a model is prepared for DP-SGD with Opacus.

=========  ==========================================  ====================================
mode       per-sample gradients (Opacus)               clipping and noise (Opacus)
=========  ==========================================  ====================================
``fast``   ``GradSampleModuleExpandedWeights``          :class:`FlatClipDPOptimizer`
``hooks``  ``GradSampleModule`` (module hooks)          ``DPOptimizer``
``ew``     ``GradSampleModuleExpandedWeights``          ``DPOptimizer``
``ghost``  ``GradSampleModuleFastGradientClipping``     ``DPOptimizerFastGradientClipping``
=========  ==========================================  ====================================

``fast`` is the cheapest per step on small models: PyTorch's ExpandedWeights
computes per-sample gradients inside autograd (no Python module hooks) and the
flat optimizer clips them in a few tensor operations. On the default MLP an epoch
cost about 2.3x non-private training, against 2.7x (ew), 3.4x (hooks) and 4.1x
(ghost) (``python -m simulations.bench_dp``). Every mode takes the same steps:
with one seed they draw the same batches and noise and end at the same weights.

ExpandedWeights rejects empty batches, so an empty Poisson batch never reaches
the model in any mode: its step clips an empty set of gradients, i.e. adds noise
only, as Opacus does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from opacus.grad_sample import (
    AbstractGradSampleModule,
    GradSampleModule,
    GradSampleModuleExpandedWeights,
    GradSampleModuleFastGradientClipping,
)
from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
from torch import nn
from torch.optim import Optimizer

from fedcurate.privacy.optimizer import FlatClipDPOptimizer

if TYPE_CHECKING:
    from fedcurate.privacy.calibration import DPSettings

#: Accepted values of ``privacy.grad_sample_mode``, fastest first.
GRAD_SAMPLE_MODES = ("fast", "hooks", "ew", "ghost")
#: Modes whose optimizer clips per-sample gradients held in ``p.grad_sample``.
PER_SAMPLE_MODES = ("fast", "hooks", "ew")

_OPTIMIZERS: dict[str, type[DPOptimizer]] = {
    "fast": FlatClipDPOptimizer,
    "hooks": DPOptimizer,
    "ew": DPOptimizer,
    "ghost": DPOptimizerFastGradientClipping,
}


def wrap_optimizer(
    optimizer: Optimizer, settings: DPSettings, *, generator: torch.Generator
) -> DPOptimizer:
    """The Opacus DP optimizer of ``settings.plan.grad_sample_mode`` around ``optimizer``.

    Noise comes from ``generator``, so concurrent owners in one process never share
    a random stream and a seeded run reproduces.
    """
    plan = settings.plan
    return _OPTIMIZERS[_checked_mode(plan.grad_sample_mode)](
        optimizer,
        noise_multiplier=settings.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        expected_batch_size=plan.expected_batch_size,
        generator=generator,
    )


@dataclass
class PrivateModel:
    """A model wrapped for DP-SGD: per-sample gradient module, DP optimizer, loss.

    ``loss_is_sum``: ExpandedWeights modes use a summed loss, which yields
    per-sample gradients directly (a mean makes ExpandedWeights multiply every one
    of them by the batch size again); the optimizer averages over the expected
    batch size either way.
    """

    module: AbstractGradSampleModule
    optimizer: DPOptimizer
    loss_fn: Callable[[torch.Tensor, torch.Tensor], Any]
    loss_is_sum: bool
    per_sample: bool

    def backward(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
        """Forward and backward one Poisson batch; ``(summed loss, correct predictions)``."""
        if len(targets) == 0:
            self._empty_batch_gradients()
            return 0.0, 0
        logits = self.module(inputs)
        loss = self.loss_fn(logits, targets)
        loss.backward()
        mean_or_sum = float(loss.detach())
        summed = mean_or_sum if self.loss_is_sum else mean_or_sum * len(targets)
        return summed, int((logits.detach().argmax(1) == targets).sum())

    def _empty_batch_gradients(self) -> None:
        for p in self.module.parameters():
            if self.per_sample:
                p.grad_sample = p.new_zeros((0, *p.shape))
            else:
                p.grad = torch.zeros_like(p)

    def release(self) -> None:
        """Remove Opacus' hooks and parameter attributes: the model is plain again."""
        self.module.cleanup()
        for p in self.module.parameters():
            if hasattr(p, "summed_grad"):
                del p.summed_grad


def _expanded_weights(
    model: nn.Module, settings: DPSettings, optimizer: DPOptimizer
) -> PrivateModel:
    module = GradSampleModuleExpandedWeights(model, loss_reduction="sum")
    return PrivateModel(module, optimizer, nn.CrossEntropyLoss(reduction="sum"), True, True)


def _hooks(model: nn.Module, settings: DPSettings, optimizer: DPOptimizer) -> PrivateModel:
    module = GradSampleModule(model, loss_reduction="mean")
    return PrivateModel(module, optimizer, nn.CrossEntropyLoss(), False, True)


def _ghost(model: nn.Module, settings: DPSettings, optimizer: DPOptimizer) -> PrivateModel:
    module = GradSampleModuleFastGradientClipping(
        model,
        max_grad_norm=settings.plan.max_grad_norm,
        use_ghost_clipping=True,
        loss_reduction="mean",
    )
    loss = DPLossFastGradientClipping(module, optimizer, nn.CrossEntropyLoss(), "mean")
    return PrivateModel(module, optimizer, loss, False, False)


_MODULES: dict[str, Callable[[nn.Module, DPSettings, DPOptimizer], PrivateModel]] = {
    "fast": _expanded_weights,
    "hooks": _hooks,
    "ew": _expanded_weights,
    "ghost": _ghost,
}


def make_private(
    model: nn.Module, optimizer: Optimizer, settings: DPSettings, *, generator: torch.Generator
) -> PrivateModel:
    """Wrap ``model`` (trained in place) and its ``optimizer`` for DP-SGD."""
    dp_optimizer = wrap_optimizer(optimizer, settings, generator=generator)
    return _MODULES[settings.plan.grad_sample_mode](model, settings, dp_optimizer)


def _checked_mode(mode: str) -> str:
    if mode not in GRAD_SAMPLE_MODES:
        raise ValueError(f"unknown grad_sample_mode '{mode}'; choose one of {GRAD_SAMPLE_MODES}")
    return mode
