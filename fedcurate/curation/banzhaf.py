"""Data Banzhaf with the maximum-sample-reuse (MSR) estimator.

J. T. Wang and R. Jia, "Data Banzhaf: A Robust Data Valuation Framework for
Machine Learning", AISTATS 2023.

The Banzhaf value ``β_i = E_S[v(S + {i}) - v(S)]`` over uniformly random
``S ⊆ N - {i}`` equals ``E[v(S) | i ∈ S] - E[v(S) | i ∉ S]`` for ``S`` uniform over
all coalitions. MSR draws coalitions with every owner in each independently with
probability 1/2, evaluates each once and reuses every evaluation for every
owner: ``β̂_i = mean{v(S_k) : i ∈ S_k} - mean{v(S_k) : i ∉ S_k}``. Unlike Shapley
it weights every coalition size alike, which the authors show is the most
robust semivalue to noise in ``v``; it is not efficient (the values need not sum
to ``v(N) - v(∅)``).
"""

from __future__ import annotations

import numpy as np

from fedcurate.curation.games import CoalitionGame


def msr_banzhaf(game: CoalitionGame, samples: int, rng: np.random.Generator) -> dict[str, float]:
    """MSR estimate of every player's Banzhaf value.

    Parameters
    ----------
    game : CoalitionGame
        The game (cached: a coalition drawn twice is evaluated once).
    samples : int
        Coalitions to draw. More are drawn if needed until every player has been
        both in and out of some coalition, so every estimate is defined.
    rng : np.random.Generator
        Source of the coalitions.
    """
    n = len(game.players)
    draws: list[np.ndarray] = []
    while len(draws) < samples or not _both_sides_seen(draws):
        draws.append(rng.random(n) < 0.5)
    members = np.array(draws)
    worth = np.array(
        [
            game.value(p for p, inside in zip(game.players, row, strict=True) if inside)
            for row in members
        ]
    )
    return {
        player: float(worth[members[:, j]].mean() - worth[~members[:, j]].mean())
        for j, player in enumerate(game.players)
    }


def _both_sides_seen(draws: list[np.ndarray]) -> bool:
    """Whether every player is inside some drawn coalition and outside another."""
    inside = np.sum(draws, axis=0)
    return bool(draws) and bool(((inside > 0) & (inside < len(draws))).all())
