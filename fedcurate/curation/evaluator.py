"""Fast validation loss, accuracy and loss gradient of flat weight vectors.

Coalition methods evaluate thousands of models per round. Instead of building
a model or loading a state dict each time, one template module is called
functionally (:func:`torch.func.functional_call`) with views into a flat tensor,
and the validation tensors are kept ready.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from fedcurate.data.arrays import ArrayDataset

UTILITIES = ("accuracy", "loss")


@dataclass(frozen=True)
class ValidationScore:
    """Mean cross-entropy and accuracy of one model on the validation set."""

    loss: float
    accuracy: float

    def utility(self, name: str) -> float:
        """The worth of this model: ``accuracy`` or the negative ``loss`` (higher is better)."""
        if name == "accuracy":
            return self.accuracy
        if name == "loss":
            return -self.loss
        raise ValueError(f"utility '{name}' is not one of {UTILITIES}")


class ValidationEvaluator:
    """Scores flat weight vectors of one architecture on a fixed validation set.

    Parameters
    ----------
    model : nn.Module
        Template of the architecture; its own weights are never used or changed.
        Flat vectors follow its ``state_dict`` order, the order of
        :class:`~fedcurate.models.ParamLayout`.
    data : ArrayDataset
        The curator's validation set (non-empty).
    batch_size : int
        Examples per forward pass (bounds memory on larger sets).
    """

    def __init__(self, model: nn.Module, data: ArrayDataset, batch_size: int = 2048) -> None:
        if len(data) == 0:
            raise ValueError(
                "the curator's validation set is empty: set dataset.validation_fraction > 0"
            )
        self.model = model.eval()
        state = model.state_dict()
        self.keys = tuple(state)
        self.shapes = tuple(tuple(value.shape) for value in state.values())
        self.sizes = tuple(int(value.numel()) for value in state.values())
        self.x, self.y = (t.clone() for t in data.tensors())
        self.batch_size = batch_size
        # In plaintext mode the valuation method and the descent alignment both
        # ask for the gradient at w_t in the same round: compute it once.
        self._last_gradient: tuple[bytes, np.ndarray] | None = None

    @property
    def num_parameters(self) -> int:
        """Length of the flat vectors this evaluator accepts."""
        return sum(self.sizes)

    @cached_property
    def matrix_mask(self) -> np.ndarray:
        """Boolean flat mask of the entries of weight matrices and kernels (tensors of 2+ dims)."""
        pieces = zip(self.sizes, self.shapes, strict=True)
        mask = np.concatenate([np.full(size, len(shape) >= 2) for size, shape in pieces])
        mask.flags.writeable = False
        return mask

    def _as_tensor(self, flat: np.ndarray | torch.Tensor) -> torch.Tensor:
        tensor = torch.as_tensor(flat, dtype=torch.float32)
        if tensor.shape != (self.num_parameters,):
            raise ValueError(
                f"flat weights of shape {tuple(tensor.shape)} do not fit "
                f"{self.num_parameters} parameters"
            )
        return tensor

    def _parameters(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        pieces = flat.split(self.sizes)
        return {
            key: piece.view(shape)
            for key, piece, shape in zip(self.keys, pieces, self.shapes, strict=True)
        }

    def _summed_loss(
        self, parameters: dict[str, torch.Tensor], start: int
    ) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy and number of correct predictions of one batch."""
        inputs = self.x[start : start + self.batch_size]
        targets = self.y[start : start + self.batch_size]
        logits = functional_call(self.model, parameters, (inputs,))
        loss = nn.functional.cross_entropy(logits, targets, reduction="sum")
        return loss, int((logits.argmax(1) == targets).sum())

    def model_with(self, flat: np.ndarray | torch.Tensor) -> nn.Module:
        """A fresh copy of the template holding the weights ``flat`` (e.g. to train it)."""
        model = copy.deepcopy(self.model)
        model.load_state_dict(self._parameters(self._as_tensor(flat).clone()), strict=True)
        return model

    def flatten(self, model: nn.Module) -> np.ndarray:
        """The float64 flat vector of ``model``'s weights, in this evaluator's order."""
        state = model.state_dict()
        return torch.cat([state[key].detach().flatten() for key in self.keys]).double().numpy()

    @torch.no_grad()
    def score(self, flat: np.ndarray | torch.Tensor) -> ValidationScore:
        """Validation loss and accuracy of the model with weights ``flat``."""
        parameters = self._parameters(self._as_tensor(flat))
        total_loss, correct = 0.0, 0
        for start in range(0, len(self.y), self.batch_size):
            loss, hits = self._summed_loss(parameters, start)
            total_loss += float(loss)
            correct += hits
        return ValidationScore(total_loss / len(self.y), correct / len(self.y))

    @torch.no_grad()
    def example_losses(self, flat: np.ndarray | torch.Tensor) -> np.ndarray:
        """Cross-entropy of every validation example under the model ``flat`` (float64)."""
        parameters = self._parameters(self._as_tensor(flat))
        losses = []
        for start in range(0, len(self.y), self.batch_size):
            inputs = self.x[start : start + self.batch_size]
            targets = self.y[start : start + self.batch_size]
            logits = functional_call(self.model, parameters, (inputs,))
            losses.append(nn.functional.cross_entropy(logits, targets, reduction="none"))
        return torch.cat(losses).double().numpy()

    def loss_gradient(self, flat: np.ndarray | torch.Tensor) -> np.ndarray:
        """``∇L_val`` at ``flat``: gradient of the mean validation cross-entropy.

        Returned as a read-only float64 flat vector in the same order as ``flat``;
        entries of buffers (no gradient) are zero. The gradient of the latest
        weights asked about is remembered (keyed by their float32 bytes).
        """
        tensor = self._as_tensor(flat)
        key = hashlib.blake2b(tensor.detach().numpy().tobytes(), digest_size=16).digest()
        if self._last_gradient is None or self._last_gradient[0] != key:
            gradient = self._gradient(tensor)
            gradient.flags.writeable = False
            self._last_gradient = (key, gradient)
        return self._last_gradient[1]

    def _gradient(self, tensor: torch.Tensor) -> np.ndarray:
        weights = tensor.clone().requires_grad_(True)
        parameters = self._parameters(weights)
        for start in range(0, len(self.y), self.batch_size):
            loss, _ = self._summed_loss(parameters, start)
            (loss / len(self.y)).backward()
        assert weights.grad is not None
        return weights.grad.detach().numpy().astype(np.float64)
