"""One-run privacy audit of DP-SGD (Steinke, Nasr and Jagielski, NeurIPS 2023).

``m`` canaries are each included independently with probability 1/2 and the
mechanism runs once. White-box gradient canaries: canary ``j``'s per-sample
gradient is a large vector along coordinate ``j`` (the mechanism must clip it to
``C``), the auditor sees every step's noisy gradient (all model iterates) and
scores canary ``j`` by the sum of coordinate ``j`` over the steps. It guesses
"included" for the highest scores and "excluded" for the lowest, abstaining on
the rest; ``v`` correct out of ``r`` guesses refutes (epsilon, delta)-DP when

    P[Binomial(r, e^eps / (1 + e^eps)) >= v]
        + 2 m delta max_{1 <= i <= v} P[v > Binomial(r, e^eps / (1 + e^eps)) >= v - i] / i

is below the significance level (their Theorem 5.2). The audit runs the same
Opacus optimizer as training, with a run's noise multiplier, clipping norm,
sample rate and number of steps; it cannot see composition bugs (an accountant
that forgets rounds), which the ledger's own tests cover deterministically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from opacus.optimizers import DPOptimizer
from scipy import special, stats  # type: ignore[import-untyped]
from torch import nn
from torch.optim import Optimizer

from fedcurate.privacy.accountants import epsilon_for_history
from fedcurate.privacy.calibration import DPSettings
from fedcurate.privacy.dp_sgd import poisson_batches
from fedcurate.privacy.mechanisms import PER_SAMPLE_MODES, wrap_optimizer

#: Canary gradients are this many clipping norms long: a mechanism that forgets
#: to clip releases them ten times louder.
CANARY_NORM_IN_CLIPS = 10.0
DEFAULT_CANARIES = 384
SIGNIFICANCE = 0.05

OptimizerFactory = Callable[..., DPOptimizer]


@dataclass(frozen=True)
class AuditResult:
    """Outcome of one audit; ``passed`` when the lower bound does not exceed the claim."""

    epsilon_lower_bound: float
    epsilon_claimed: float
    num_canaries: int
    guesses: int
    correct: int
    steps: int

    @property
    def passed(self) -> bool:
        """No evidence against the accountant's claim."""
        return self.epsilon_lower_bound <= self.epsilon_claimed


def audit_p_value(
    num_canaries: int, guesses: int, correct: int, epsilon: float, delta: float
) -> float:
    """Probability that an (epsilon, delta)-DP mechanism lets ``correct`` or more
    of ``guesses`` guesses about ``num_canaries`` canaries be right."""
    m, r, v = num_canaries, guesses, correct
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= correct <= guesses <= canaries, got {v}, {r}, {m}")
    accuracy = float(special.expit(epsilon))  # e^eps / (1 + e^eps)
    tail = float(stats.binom.sf(v - 1, r, accuracy))  # P[W >= v]
    if v == 0:
        return min(1.0, tail)
    # P[v > W >= v - i] for i = 1..v, each divided by i.
    below = np.cumsum(stats.binom.pmf(np.arange(v - 1, -1, -1), r, accuracy))
    delta_weight = float(np.max(below / np.arange(1, v + 1)))
    return min(1.0, tail + 2 * m * delta * delta_weight)


def epsilon_lower_bound(
    num_canaries: int,
    guesses: int,
    correct: int,
    delta: float,
    *,
    significance: float = SIGNIFICANCE,
) -> float:
    """Largest epsilon whose p-value (:func:`audit_p_value`) is below ``significance``.

    0 when even epsilon = 0 cannot be refuted.
    """

    def refuted(epsilon: float) -> bool:
        return audit_p_value(num_canaries, guesses, correct, epsilon, delta) < significance

    if not refuted(0.0):
        return 0.0
    low, high = 0.0, 1.0
    while refuted(high):  # the p-value tends to 1 as epsilon grows
        low, high = high, 2 * high
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if refuted(middle) else (low, middle)
    return low


def audit_dp_sgd(
    settings: DPSettings,
    *,
    generator: torch.Generator,
    num_canaries: int = DEFAULT_CANARIES,
    guesses: int | None = None,
    steps: int | None = None,
    optimizer_factory: OptimizerFactory = wrap_optimizer,
) -> AuditResult:
    """Audit the DP-SGD step of ``settings`` with white-box gradient canaries.

    Parameters
    ----------
    settings : DPSettings
        The run's settings; the claim is the accountant's epsilon for them.
    generator : torch.Generator
        Draws canary inclusion, Poisson sampling and the mechanism's noise.
    num_canaries : int
        ``m``.
    guesses : int, optional
        ``r``, fixed before looking at the scores (default ``m // 2``): half
        "included" on the highest scores, half "excluded" on the lowest.
    steps : int, optional
        Steps to run (default the plan's total: every planned round).
    optimizer_factory : callable
        Builds the DP optimizer as ``factory(optimizer, settings, generator=...)``;
        training's own :func:`wrap_optimizer` unless a test injects a fault.
    """
    plan = settings.plan
    if plan.grad_sample_mode not in PER_SAMPLE_MODES:
        raise ValueError(
            f"grad_sample_mode '{plan.grad_sample_mode}' clips inside the backward pass; "
            f"gradient canaries need one of {PER_SAMPLE_MODES}"
        )
    steps = plan.planned_steps if steps is None else steps
    guesses = num_canaries // 2 if guesses is None else guesses
    if not 2 <= guesses <= num_canaries:
        raise ValueError(f"guesses must be in [2, {num_canaries}], got {guesses}")
    included = torch.rand(num_canaries, generator=generator) < 0.5
    scores = _canary_scores(settings, included, steps, generator, optimizer_factory)
    correct = _correct_guesses(scores, included, guesses)
    history = [(settings.noise_multiplier, plan.sample_rate, steps)]
    return AuditResult(
        epsilon_lower_bound=epsilon_lower_bound(num_canaries, guesses, correct, plan.delta),
        epsilon_claimed=epsilon_for_history(plan.accountant, history, plan.delta),
        num_canaries=num_canaries,
        guesses=guesses,
        correct=correct,
        steps=steps,
    )


def _canary_scores(
    settings: DPSettings,
    included: torch.Tensor,
    steps: int,
    generator: torch.Generator,
    optimizer_factory: OptimizerFactory,
) -> torch.Tensor:
    """Sum over steps of each canary's coordinate of the released noisy gradient."""
    num_canaries = len(included)
    weights = nn.Parameter(torch.zeros(num_canaries))
    base: Optimizer = torch.optim.SGD([weights], lr=1.0)
    optimizer = optimizer_factory(base, settings, generator=generator)
    canary_gradients = CANARY_NORM_IN_CLIPS * settings.plan.max_grad_norm * torch.eye(num_canaries)
    members = included.nonzero().squeeze(1)
    scores = torch.zeros(num_canaries)
    for batch in poisson_batches(len(members), settings.plan.sample_rate, steps, generator):
        optimizer.zero_grad(set_to_none=True)
        weights.grad_sample = canary_gradients[members[batch]]  # type: ignore[attr-defined]
        optimizer.pre_step()  # clip, noise, average: the mechanism under audit
        assert weights.grad is not None
        scores += weights.grad
    return scores


def _correct_guesses(scores: torch.Tensor, included: torch.Tensor, guesses: int) -> int:
    """Right guesses among "in" for the top scores and "out" for the bottom ones."""
    order = torch.argsort(scores, descending=True)
    guess_in, guess_out = order[: guesses - guesses // 2], order[len(order) - guesses // 2 :]
    return int(included[guess_in].sum()) + int((~included[guess_out]).sum())
