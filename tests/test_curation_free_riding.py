"""Updates made of public information only are recognised, honest ones are not."""

from __future__ import annotations

import numpy as np

from fedcurate.curation.free_riding import PublicHistory, screen_scores, screen_updates


def test_public_history_keeps_the_recent_changes() -> None:
    history = PublicHistory(memory=2)
    for step in range(4):
        history.observe(np.full(3, float(step)))
    history.observe(np.full(3, 3.0))  # the same model again is not a new round
    changes = history.changes()
    assert [c[0] for c in changes] == [1.0, 2.0]
    restored = PublicHistory(memory=2)
    restored.load_state_dict(history.state_dict())
    assert [c[0] for c in restored.changes()] == [1.0, 2.0]


def test_zero_and_replayed_updates_are_flagged_honest_ones_are_not() -> None:
    rng = np.random.default_rng(0)
    last_change, older_change = rng.normal(size=50), rng.normal(size=50)
    updates = {
        "zero": np.zeros(50),
        "replay": last_change.copy(),
        "scaled-mix": 3.0 * last_change - 0.5 * older_change,
        "honest": 0.8 * last_change + rng.normal(size=50),
        "random": rng.normal(size=50),
    }
    flagged = screen_updates(updates, [last_change, older_change], tolerance=1e-3)
    assert set(flagged) == {"zero", "replay", "scaled-mix"}
    assert "zero update" in flagged["zero"]
    assert "replay" in flagged["replay"]
    assert set(screen_updates(updates, [], tolerance=1e-3)) == {"zero"}


def test_scalar_screen_recognises_exact_replays_and_zeros() -> None:
    public = {"the replay of w_t - w_(t-1)": -0.42}
    products = {"replay": -0.42 * (1 + 1e-6), "zero": 0.0, "honest": -0.40, "other": 0.3}
    flagged = screen_scores(products, public, tolerance=1e-3)
    assert set(flagged) == {"replay", "zero"}
