"""Exact per-round Shapley and Banzhaf values by enumerating every coalition.

The reference the estimators are measured against: ``2^n`` evaluations of the
game (1024 at n = 10), so it refuses federations above :data:`MAX_EXACT_PLAYERS`.

Shapley (1953): ``φ_i = Σ_{S ⊆ N-{i}} |S|! (n-|S|-1)! / n! · (v(S + {i}) - v(S))``.
Banzhaf (1965): ``β_i = 2^{-(n-1)} Σ_{S ⊆ N-{i}} (v(S + {i}) - v(S))``.
"""

from __future__ import annotations

from math import factorial

import numpy as np

from fedcurate.curation.games import CoalitionGame

#: Largest federation valued exactly per round (4096 evaluations).
MAX_EXACT_PLAYERS = 12


def coalition_sizes(n: int) -> np.ndarray:
    """Number of members of every bitmask coalition ``0 .. 2^n - 1``."""
    masks = np.arange(2**n)
    sizes = np.zeros(2**n, dtype=np.int64)
    for player in range(n):
        sizes += (masks >> player) & 1
    return sizes


def marginal_contributions(worth: np.ndarray, player: int) -> tuple[np.ndarray, np.ndarray]:
    """``(masks without player, v(S + {player}) - v(S))`` over the bitmask worth table."""
    masks = np.arange(len(worth))
    bit = 1 << player
    without = masks[(masks & bit) == 0]
    return without, worth[without | bit] - worth[without]


def shapley_from_table(worth: np.ndarray) -> np.ndarray:
    """Exact Shapley values from a worth table indexed by bitmask (player ``j`` = bit ``j``)."""
    n = int(np.log2(len(worth)))
    sizes = coalition_sizes(n)
    size_weight = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)])
    values = np.empty(n)
    for player in range(n):
        without, marginals = marginal_contributions(worth, player)
        values[player] = float(np.dot(size_weight[sizes[without]], marginals))
    return values


def worth_table(game: CoalitionGame, max_players: int = MAX_EXACT_PLAYERS) -> np.ndarray:
    """``v`` of every coalition, indexed by bitmask over ``game.players``.

    Raises
    ------
    ValueError
        More than ``max_players`` players (``2^n`` evaluations would not be affordable).
    """
    n = len(game.players)
    if n > max_players:
        raise ValueError(
            f"exact valuation needs 2^n evaluations; n = {n} owners exceeds the limit of "
            f"{max_players}: use gtg_shapley, banzhaf or first_order instead"
        )
    return np.array(
        [game.value(p for j, p in enumerate(game.players) if mask >> j & 1) for mask in range(2**n)]
    )


def exact_shapley(game: CoalitionGame) -> dict[str, float]:
    """Exact Shapley value of every player (at most :data:`MAX_EXACT_PLAYERS`)."""
    values = shapley_from_table(worth_table(game))
    return dict(zip(game.players, values.tolist(), strict=True))


def exact_banzhaf(game: CoalitionGame) -> dict[str, float]:
    """Exact Banzhaf value of every player (at most :data:`MAX_EXACT_PLAYERS`)."""
    worth = worth_table(game)
    n = len(game.players)
    values = [float(marginal_contributions(worth, j)[1].mean()) for j in range(n)]
    return dict(zip(game.players, values, strict=True))
