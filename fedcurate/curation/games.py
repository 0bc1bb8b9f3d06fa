"""Cooperative games over named owners, with cached and counted evaluations.

A :class:`CoalitionGame` is what every estimator works on: a tuple of player
names and a worth ``v(S)`` for any coalition ``S`` (a frozenset of names). The
worth of each coalition is computed once; :attr:`CoalitionGame.evaluations`
counts the distinct coalitions computed, which is the cost that matters when
``v`` trains nothing but evaluates a model.

:class:`CoalitionModels` builds the games of one federated round: the coalition
model is ``w_t + Σ_{i∈S} p_i Δ_i / Σ_{i∈S} p_i`` and ``v(∅)`` is the worth of
``w_t`` itself. One validation pass scores both utilities, so the accuracy and
the loss game of a round share their evaluations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from fedcurate.curation.evaluator import ValidationEvaluator, ValidationScore
from fedcurate.curation.rounds import RoundUpdates

Coalition = frozenset[str]


class CoalitionGame:
    """Players and a cached worth function ``v(S)``.

    Parameters
    ----------
    players : Iterable[str]
        Distinct player names (any strings).
    worth : Callable[[frozenset[str]], float]
        ``v(S)``; called at most once per coalition.
    """

    def __init__(self, players: Iterable[str], worth: Callable[[Coalition], float]) -> None:
        self.players = tuple(players)
        if len(set(self.players)) != len(self.players):
            raise ValueError(f"player names must be distinct, got {self.players}")
        self._worth = worth
        self._cache: dict[Coalition, float] = {}

    @property
    def evaluations(self) -> int:
        """Distinct coalitions evaluated so far."""
        return len(self._cache)

    def value(self, coalition: Iterable[str]) -> float:
        """``v(S)`` (cached)."""
        key = frozenset(coalition)
        if key not in self._cache:
            unknown = key - set(self.players)
            if unknown:
                raise KeyError(f"{sorted(unknown)} are not players of this game")
            self._cache[key] = float(self._worth(key))
        return self._cache[key]

    @property
    def grand_coalition(self) -> Coalition:
        """Every player."""
        return frozenset(self.players)


class CoalitionModels:
    """Validation scores of every coalition model of one round (cached, counted).

    Parameters
    ----------
    evaluator : ValidationEvaluator
        Scores flat weight vectors on the curator's validation set.
    updates : RoundUpdates
        ``w_t``, the participants' updates and their aggregation weights.
    """

    def __init__(self, evaluator: ValidationEvaluator, updates: RoundUpdates) -> None:
        self.owners = updates.owners
        self._evaluator = evaluator
        self._global = torch.as_tensor(updates.global_weights, dtype=torch.float64)
        self._updates = torch.as_tensor(updates.stacked_updates(), dtype=torch.float64)
        self._weights = updates.weight_vector()
        self._scores: dict[Coalition, ValidationScore] = {}

    @property
    def evaluations(self) -> int:
        """Distinct coalition models scored so far (validation passes)."""
        return len(self._scores)

    def coalition_weights(self, coalition: Coalition) -> np.ndarray:
        """Aggregation coefficients of the coalition model, renormalised within ``S``."""
        member = np.array([name in coalition for name in self.owners])
        weights = np.where(member, self._weights, 0.0)
        return weights / weights.sum() if member.any() else weights

    def score(self, coalition: Coalition) -> ValidationScore:
        """Validation loss and accuracy of the model aggregated from ``coalition``."""
        if coalition not in self._scores:
            coefficients = torch.as_tensor(self.coalition_weights(coalition))
            flat = self._global + coefficients @ self._updates
            self._scores[coalition] = self._evaluator.score(flat)
        return self._scores[coalition]

    def game(self, utility: str) -> CoalitionGame:
        """The round's game under ``utility`` (``accuracy`` or ``loss``)."""
        return CoalitionGame(self.owners, lambda coalition: self.score(coalition).utility(utility))
