"""An Opacus ``DPOptimizer`` with a vectorised clipping step for small models.

On the small models of cross-silo FL a DP-SGD step costs little arithmetic and a
lot of per-parameter Python: Opacus' ``DPOptimizer`` walks every parameter
several times per step (norms, clip factors, noise, scaling, bookkeeping).
:class:`FlatClipDPOptimizer` does the same step on one ``(batch, d)`` matrix of
all per-sample gradients. It keeps Opacus' step contract (``pre_step`` ->
clip, noise, scale, accountant hook) and its numbers: the clip factor
``min(1, C / (||g_i|| + 1e-6))``, noise drawn per parameter from the same
generator in the same order, and averaging over the expected batch size.
"""

from __future__ import annotations

import torch
from opacus.optimizers import DPOptimizer
from torch.optim import Optimizer

#: Opacus' guard against dividing by a zero gradient norm.
_NORM_EPSILON = 1e-6


class FlatClipDPOptimizer(DPOptimizer):
    """``DPOptimizer`` that clips all parameters' per-sample gradients at once.

    Every Poisson batch is one step: per-sample gradients are never accumulated
    across batches (``accumulated_iterations`` is always 1), and the gradients of
    a step are consumed by it, so a second step without a new backward pass fails.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The wrapped optimiser (SGD with momentum / weight decay in fedcurate).
    noise_multiplier, max_grad_norm : float
        Noise standard deviation is ``noise_multiplier * max_grad_norm``.
    expected_batch_size : int
        Denominator of the averaged noisy gradient (``q n``).
    generator : torch.Generator, optional
        Source of the noise.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        noise_multiplier: float,
        max_grad_norm: float,
        expected_batch_size: int,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            optimizer,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            expected_batch_size=expected_batch_size,
            loss_reduction="mean",
            generator=generator,
        )
        self._param_list: list[torch.nn.Parameter] = list(self.params)
        self._sizes = [p.numel() for p in self._param_list]
        self._flat_grad: torch.Tensor | None = None

    @property
    def grad_samples(self) -> list[torch.Tensor]:
        """Per-sample gradients of this step, one ``(batch, *shape)`` tensor per parameter."""
        # Opacus stores per-sample gradients as an attribute of each parameter.
        samples = [p.grad_sample for p in self._param_list]  # type: ignore[attr-defined]
        if any(not isinstance(sample, torch.Tensor) for sample in samples):
            raise ValueError(
                "per-sample gradients are missing (or accumulated over several "
                "batches): run one backward pass before every step"
            )
        return samples

    @property
    def accumulated_iterations(self) -> int:
        """Always one batch per step (Poisson batches are never accumulated)."""
        return 1

    def clip_and_accumulate(self) -> None:
        """Sum the clipped per-sample gradients into one flat vector."""
        samples = self.grad_samples
        batch = samples[0].shape[0]
        per_sample = torch.cat(
            [s.reshape(batch, size) for s, size in zip(samples, self._sizes, strict=True)], dim=1
        )
        norms = torch.linalg.vector_norm(per_sample, dim=1)
        factors = (self.max_grad_norm / (norms + _NORM_EPSILON)).clamp(max=1.0)
        # An empty Poisson batch gives (0,) @ (0, d): a zero sum, so the step is pure noise.
        self._flat_grad = factors.to(per_sample.dtype) @ per_sample
        self._drop_grad_samples()

    def add_noise(self) -> None:
        """Add N(0, (sigma C)^2) to the clipped sum and expose it as ``p.grad`` views."""
        flat = self._clipped_sum()
        std = self.noise_multiplier * self.max_grad_norm
        if std > 0:
            noise = torch.empty_like(flat)
            # Parameter by parameter, like Opacus, so both draw identical noise.
            for chunk in noise.split(self._sizes):
                chunk.normal_(0.0, std, generator=self.generator)
            flat.add_(noise)
        for p, chunk in zip(self._param_list, flat.split(self._sizes), strict=True):
            p.grad = chunk.view_as(p)

    def scale_grad(self) -> None:
        """Average over the expected batch size (every ``p.grad`` is a view of one vector)."""
        self._clipped_sum().div_(self.expected_batch_size)

    def _clipped_sum(self) -> torch.Tensor:
        if self._flat_grad is None:
            raise ValueError("no clipped gradient for this step: call clip_and_accumulate first")
        return self._flat_grad

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop this step's per-sample and averaged gradients."""
        self._drop_grad_samples()
        self._flat_grad = None
        self.original_optimizer.zero_grad(set_to_none)

    def _drop_grad_samples(self) -> None:
        for p in self._param_list:
            p.grad_sample = None  # type: ignore[attr-defined]
