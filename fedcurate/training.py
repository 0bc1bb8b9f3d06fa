"""Local (non-private) training and evaluation on in-memory tensors.

Batches are sliced from tensors with a seeded permutation instead of going
through a ``DataLoader``: on the small models of cross-silo FL the loader's
per-batch overhead is a large share of the training time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from fedcurate.config import TrainConfig
from fedcurate.data.arrays import ArrayDataset


@dataclass(frozen=True)
class TrainResult:
    """Summary of one local training call."""

    loss: float
    accuracy: float
    num_examples: int
    steps: int
    seconds: float


@dataclass(frozen=True)
class EvalResult:
    """Loss and accuracy of a model on a dataset."""

    loss: float
    accuracy: float
    num_examples: int


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with the configured momentum and weight decay."""
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


@torch.no_grad()
def add_proximal_gradient(model: nn.Module, anchor: list[torch.Tensor], mu: float) -> None:
    """Add the gradient of FedProx's ``(mu/2)||w - w_t||^2`` to the parameters' grads.

    Adding ``mu (w - w_t)`` after ``backward()`` is exact and avoids building the
    proximal term into the autograd graph at every step.
    """
    for parameter, start in zip(model.parameters(), anchor, strict=True):
        if parameter.grad is not None:
            parameter.grad.add_(parameter - start, alpha=mu)


def train_local(
    model: nn.Module,
    data: ArrayDataset,
    cfg: TrainConfig,
    *,
    generator: torch.Generator,
    proximal_mu: float = 0.0,
) -> TrainResult:
    """Train ``model`` in place for ``cfg.local_epochs`` epochs of minibatch SGD.

    Parameters
    ----------
    model : nn.Module
        Starts from the global weights; holds the local model afterwards.
    data : ArrayDataset
        The owner's training set.
    cfg : TrainConfig
        Epochs, batch size and optimiser settings.
    generator : torch.Generator
        Seeded source of the shuffling order (keeps runs reproducible and
        independent of other clients sharing the process).
    proximal_mu : float
        FedProx proximal weight; 0 gives plain local SGD.
    """
    start = time.perf_counter()
    x, y = data.tensors()
    optimizer = make_optimizer(model, cfg)
    anchor = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else []
    criterion = nn.CrossEntropyLoss()
    model.train()
    # Running sums stay tensors: converting to Python numbers every step costs more
    # than the step itself on small models.
    total_loss, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
    seen, steps = 0, 0
    for _ in range(cfg.local_epochs):
        order = torch.randperm(len(y), generator=generator)
        for batch in order.split(cfg.batch_size):
            inputs, targets = x[batch], y[batch]
            optimizer.zero_grad(set_to_none=True)
            logits = model(inputs)
            loss = criterion(logits, targets)
            loss.backward()
            if anchor:
                add_proximal_gradient(model, anchor, proximal_mu)
            optimizer.step()
            total_loss += loss.detach() * len(batch)
            correct += (logits.detach().argmax(1) == targets).sum()
            seen += len(batch)
            steps += 1
    return TrainResult(
        loss=float(total_loss) / max(seen, 1),
        accuracy=int(correct) / max(seen, 1),
        num_examples=len(data),
        steps=steps,
        seconds=time.perf_counter() - start,
    )


@torch.no_grad()
def evaluate(model: nn.Module, data: ArrayDataset, batch_size: int = 1024) -> EvalResult:
    """Mean cross-entropy and accuracy of ``model`` on ``data``."""
    if len(data) == 0:
        return EvalResult(loss=float("nan"), accuracy=float("nan"), num_examples=0)
    model.eval()
    x, y = data.tensors()
    total_loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size])
        targets = y[start : start + batch_size]
        total_loss += float(nn.functional.cross_entropy(logits, targets, reduction="sum"))
        correct += int((logits.argmax(1) == targets).sum())
    return EvalResult(total_loss / len(y), correct / len(y), len(y))
