"""Estimators on small games whose Shapley and Banzhaf values are known."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from fedcurate.config import CuratorConfig
from fedcurate.curation.banzhaf import msr_banzhaf
from fedcurate.curation.exact import exact_banzhaf, exact_shapley
from fedcurate.curation.games import CoalitionGame
from fedcurate.curation.gtg import GTGSettings, gtg_shapley, stratified_shapley
from fedcurate.curation.loo import leave_one_out
from fedcurate.curation.methods import gtg_settings

#: Owner names are arbitrary strings, never 0..n-1.
WEIGHTS = {"zeta": 0.5, "alpha-7": -0.2, "owner-042": 1.5, "b": 0.0}


def additive_game(weights: dict[str, float]) -> CoalitionGame:
    """``v(S) = sum of the members' weights``: every semivalue equals the weights."""
    return CoalitionGame(weights, lambda s: sum(weights[p] for p in s))


def glove_game() -> CoalitionGame:
    """One left glove, two right gloves; a pair is worth 1."""
    left, right = {"left"}, {"right-1", "right-2"}
    return CoalitionGame(
        ["left", "right-1", "right-2"], lambda s: min(len(s & left), len(s & right))
    )


def game_with_symmetry_and_null(seed: int = 0) -> CoalitionGame:
    """``a`` and ``b`` are interchangeable, ``null`` never changes anything."""
    table = np.random.default_rng(seed).normal(size=(3, 2, 2))

    def worth(s: frozenset[str]) -> float:
        return float(table[len(s & {"a", "b"}), int("c" in s), int("d" in s)])

    return CoalitionGame(["a", "null", "b", "c", "d"], worth)


def assert_values(values: dict[str, float], expected: dict[str, float], tol: float) -> None:
    assert set(values) == set(expected)
    for name, value in expected.items():
        assert values[name] == pytest.approx(value, abs=tol), name


def test_exact_shapley_of_additive_and_glove_games() -> None:
    assert_values(exact_shapley(additive_game(WEIGHTS)), WEIGHTS, 1e-12)
    expected = {"left": 2 / 3, "right-1": 1 / 6, "right-2": 1 / 6}
    assert_values(exact_shapley(glove_game()), expected, 1e-12)


def test_exact_shapley_axioms() -> None:
    game = game_with_symmetry_and_null()
    values = exact_shapley(game)
    assert values["a"] == pytest.approx(values["b"], abs=1e-12)
    assert values["null"] == pytest.approx(0.0, abs=1e-12)
    gain = game.value(game.players) - game.value(())
    assert sum(values.values()) == pytest.approx(gain, abs=1e-12)
    assert game.evaluations == 2 ** len(game.players)


def test_exact_shapley_matches_the_permutation_definition() -> None:
    game = game_with_symmetry_and_null(seed=3)
    totals = dict.fromkeys(game.players, 0.0)
    orders = list(itertools.permutations(game.players))
    for order in orders:
        for position, player in enumerate(order):
            before = game.value(order[:position])
            totals[player] += game.value(order[: position + 1]) - before
    expected = {name: total / len(orders) for name, total in totals.items()}
    assert_values(exact_shapley(game), expected, 1e-12)


def test_exact_valuation_refuses_large_federations() -> None:
    game = additive_game({f"site-{i}": 1.0 for i in range(13)})
    with pytest.raises(ValueError, match="exceeds the limit of 12"):
        exact_shapley(game)
    assert game.evaluations == 0


def test_exact_banzhaf_and_loo_of_known_games() -> None:
    assert_values(exact_banzhaf(additive_game(WEIGHTS)), WEIGHTS, 1e-12)
    expected = {"left": 3 / 4, "right-1": 1 / 4, "right-2": 1 / 4}
    assert_values(exact_banzhaf(glove_game()), expected, 1e-12)
    assert_values(leave_one_out(additive_game(WEIGHTS)), WEIGHTS, 1e-12)
    loo = glove_game()
    assert_values(leave_one_out(loo), {"left": 1.0, "right-1": 0.0, "right-2": 0.0}, 1e-12)
    assert loo.evaluations == 4


def test_msr_banzhaf_converges_to_exact_banzhaf() -> None:
    rng = np.random.default_rng(0)
    estimate = msr_banzhaf(glove_game(), samples=4000, rng=rng)
    assert_values(estimate, {"left": 3 / 4, "right-1": 1 / 4, "right-2": 1 / 4}, 0.05)
    game = game_with_symmetry_and_null()
    assert_values(msr_banzhaf(game, 4000, rng), exact_banzhaf(game), 0.1)


def test_msr_banzhaf_defines_every_estimate_with_few_samples() -> None:
    game = additive_game(WEIGHTS)
    values = msr_banzhaf(game, samples=2, rng=np.random.default_rng(1))
    assert all(np.isfinite(v) for v in values.values())


def paper_settings(**changes: Any) -> GTGSettings:
    """The default accuracy settings of the curator config, with ``changes``."""
    return replace(gtg_settings(CuratorConfig(), "accuracy", 0.0), **changes)


def test_gtg_marginal_estimator_is_exact_on_an_additive_game() -> None:
    settings = paper_settings(round_tolerance=0.0, prefix_tolerance=0.0, estimator="marginal")
    result = gtg_shapley(additive_game(WEIGHTS), settings, np.random.default_rng(0))
    assert_values(result.values, WEIGHTS, 1e-12)
    assert not result.truncated_round


@pytest.mark.parametrize("estimator", ["marginal", "stratified"])
def test_gtg_approaches_exact_shapley(estimator: str) -> None:
    settings = paper_settings(
        round_tolerance=0.0,
        prefix_tolerance=0.0,
        min_permutations=2000,
        max_permutations=2000,
        estimator=estimator,
    )
    for game in (glove_game(), game_with_symmetry_and_null()):
        result = gtg_shapley(game, settings, np.random.default_rng(0))
        assert_values(result.values, exact_shapley(game), 0.05)


def test_gtg_between_round_truncation_is_reported() -> None:
    game = CoalitionGame(["x", "y"], lambda s: 0.5 + 0.001 * len(s))
    result = gtg_shapley(game, paper_settings(round_tolerance=0.01), np.random.default_rng(0))
    assert result.truncated_round
    assert result.values == {"x": 0.0, "y": 0.0}
    assert game.evaluations == 2


def test_gtg_within_round_truncation_saves_evaluations() -> None:
    """``v(S) = min(1, |S|)``: after any first owner the prefix already reaches v(N)."""
    players = [f"node-{c}" for c in "pqrstu"]
    settings = paper_settings(round_tolerance=0.0, prefix_tolerance=0.001, estimator="marginal")
    game = CoalitionGame(players, lambda s: float(min(1, len(s))))
    result = gtg_shapley(game, settings, np.random.default_rng(0))
    assert game.evaluations == len(players) + 2  # the singletons, v(empty), v(N)
    assert_values(result.values, dict.fromkeys(players, 1 / len(players)), 1e-12)


def test_stratified_estimate_is_exact_with_every_coalition() -> None:
    game = game_with_symmetry_and_null(seed=5)
    n = len(game.players)
    masks = range(1, 2**n - 1)
    members = np.array([[mask >> j & 1 for j in range(n)] for mask in masks], dtype=bool)
    worth = np.array([game.value(np.asarray(game.players)[row]) for row in members])
    estimate = stratified_shapley(members, worth, game.value(()), game.value(game.players))
    expected = exact_shapley(game)
    assert_values(dict(zip(game.players, estimate, strict=True)), expected, 1e-12)


def test_coalition_game_caches_and_rejects_strangers() -> None:
    calls: list[frozenset[str]] = []

    def worth(coalition: frozenset[str]) -> float:
        calls.append(coalition)
        return float(len(coalition))

    game = CoalitionGame(["u", "v"], worth)
    assert game.value(["u"]) == game.value({"u"}) == 1.0
    assert game.evaluations == 1
    assert len(calls) == 1
    with pytest.raises(KeyError, match="w"):
        game.value(["w"])
    with pytest.raises(ValueError, match="distinct"):
        CoalitionGame(["u", "u"], len)
