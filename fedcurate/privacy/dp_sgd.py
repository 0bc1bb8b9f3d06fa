"""DP-SGD local training with Opacus, on in-memory tensors.

Like :func:`fedcurate.training.train_local`, batches are sliced from tensors
rather than drawn through a ``DataLoader``; here each step's batch is a Poisson
sample (every example independently with probability ``q``), the sampling that
the accountants' amplification assumes. One seeded ``torch.Generator`` drives
both the sampling and the noise.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from opacus.accountants import IAccountant
from torch import nn

from fedcurate.config import TrainConfig
from fedcurate.data.arrays import ArrayDataset
from fedcurate.privacy.calibration import DPPlan, DPSettings
from fedcurate.privacy.ledger import BudgetStop, PrivacyLedger
from fedcurate.privacy.mechanisms import PrivateModel, make_private
from fedcurate.training import TrainResult, add_proximal_gradient, make_optimizer

#: Bound on the Poisson masks drawn at once (steps x examples booleans).
_MASK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class DPTrainResult(TrainResult):
    """A :class:`TrainResult` of DP-SGD.

    ``loss`` and ``accuracy`` are measured on the raw private batches: they are
    for the site's own logs and are NOT covered by the DP guarantee; do not send
    them to the server. ``empty_batches`` counts noise-only steps.
    """

    empty_batches: int = 0


class BudgetExhaustedError(RuntimeError):
    """The owner declines to train: one more round would exceed its epsilon budget."""

    def __init__(self, stop: BudgetStop) -> None:
        super().__init__(
            f"round {stop.server_round}: epsilon would reach {stop.epsilon_projected:.3f} "
            f"(spent {stop.epsilon_spent:.3f}); refusing to exceed the budget"
        )
        self.stop = stop


def poisson_batches(
    num_examples: int, sample_rate: float, steps: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Index tensors of ``steps`` Poisson batches (possibly empty), drawn in blocks."""
    rows_per_draw = max(1, _MASK_ELEMENTS // max(num_examples, 1))
    for first in range(0, steps, rows_per_draw):
        rows = min(rows_per_draw, steps - first)
        mask = torch.rand(rows, num_examples, generator=generator) < sample_rate
        yield from mask.nonzero()[:, 1].split(mask.sum(1).tolist())


def _check_plan(plan: DPPlan, data: ArrayDataset, cfg: TrainConfig) -> None:
    planned = (plan.num_examples, plan.batch_size, plan.local_epochs)
    actual = (len(data), cfg.batch_size, cfg.local_epochs)
    if planned != actual:
        raise ValueError(
            f"DP settings were planned for (examples, batch_size, local_epochs) = {planned}, "
            f"got {actual}; sigma and q stay fixed for an owner, plan a new owner instead"
        )


def train_dp_sgd(
    model: nn.Module,
    data: ArrayDataset,
    cfg: TrainConfig,
    settings: DPSettings,
    *,
    generator: torch.Generator,
    accountant: IAccountant | None = None,
    proximal_mu: float = 0.0,
) -> DPTrainResult:
    """Train ``model`` in place for one round of DP-SGD (Opacus).

    Parameters
    ----------
    model : nn.Module
        A fresh model loaded with the global weights; afterwards it holds the
        local model as a plain module (no Opacus hooks or ``_module.`` prefix).
    data : ArrayDataset
        The owner's training set (the one its settings were planned for).
    cfg : TrainConfig
        Epochs, batch size and optimiser settings.
    settings : DPSettings
        Noise multiplier, clipping norm, sample rate, steps and grad-sample mode.
    generator : torch.Generator
        Seeded source of the Poisson sampling and the noise.
    accountant : IAccountant, optional
        Composes every step (Opacus optimizer hook); pass ``ledger.accountant``.
    proximal_mu : float
        FedProx weight: ``mu (w - w_t)`` is added to the noisy gradient, which
        is post-processing (it does not touch the data).
    """
    plan = settings.plan
    _check_plan(plan, data, cfg)
    start = time.perf_counter()
    private = make_private(model, make_optimizer(model, cfg), settings, generator=generator)
    if accountant is not None:
        private.optimizer.attach_step_hook(
            accountant.get_optimizer_hook_fn(sample_rate=plan.sample_rate)
        )
    try:
        model.train()
        batches = poisson_batches(len(data), plan.sample_rate, plan.steps_per_round, generator)
        total_loss, correct, seen, empty = _run_steps(private, data, batches, proximal_mu)
    finally:
        private.release()
    return DPTrainResult(
        loss=total_loss / max(seen, 1),
        accuracy=correct / max(seen, 1),
        num_examples=len(data),
        steps=plan.steps_per_round,
        seconds=time.perf_counter() - start,
        empty_batches=empty,
    )


def _run_steps(
    private: PrivateModel,
    data: ArrayDataset,
    batches: Iterator[torch.Tensor],
    proximal_mu: float,
) -> tuple[float, int, int, int]:
    """Every DP-SGD step of a round; ``(summed loss, correct, seen, empty batches)``."""
    x, y = data.tensors()
    optimizer = private.optimizer
    anchor = [p.detach().clone() for p in private.module.parameters()] if proximal_mu > 0 else []
    total_loss, correct, seen, empty = 0.0, 0, 0, 0
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        loss, hits = private.backward(x[batch], y[batch])
        if optimizer.pre_step():  # clip, noise, average, account
            if anchor:
                # Same parameters, same order as the anchor: the wrapper's are the model's.
                add_proximal_gradient(private.module, anchor, proximal_mu)
            optimizer.original_optimizer.step()
        total_loss, correct, seen = total_loss + loss, correct + hits, seen + len(batch)
        empty += int(len(batch) == 0)
    return total_loss, correct, seen, empty


def train_private_round(
    ledger: PrivacyLedger,
    model: nn.Module,
    data: ArrayDataset,
    cfg: TrainConfig,
    *,
    server_round: int,
    generator: torch.Generator,
    proximal_mu: float = 0.0,
) -> DPTrainResult:
    """Budget guard, one round of DP-SGD composed into the ledger, and its record.

    Raises
    ------
    BudgetExhaustedError
        One more round would exceed the budget (recorded in ``ledger.stopped_on_budget``).
    """
    if not ledger.can_train_next_round():
        raise BudgetExhaustedError(ledger.refuse_round(server_round))
    before = ledger.accountant.state_dict()
    try:
        result = train_dp_sgd(
            model,
            data,
            cfg,
            ledger.settings,
            generator=generator,
            accountant=ledger.accountant,
            proximal_mu=proximal_mu,
        )
    except BaseException:
        # Nothing of a failed round is released: its partial steps are not spent.
        ledger.accountant.load_state_dict(before)
        raise
    ledger.record_round(server_round)
    return result
