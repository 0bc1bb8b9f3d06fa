"""Privacy ledger: accountant persistence across restarts, budget guard, corrupt files."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fedcurate.config import TrainConfig
from fedcurate.data.arrays import ArrayDataset, make_dataset
from fedcurate.privacy import (
    BudgetExhaustedError,
    DPPlan,
    DPSettings,
    LedgerError,
    PrivacyLedger,
    create_accountant,
    epsilon_for_history,
    load_ledger,
    open_ledger,
    save_ledger,
    train_private_round,
)

TRAIN = TrainConfig(local_epochs=1, batch_size=10, lr=0.1, momentum=0.0)
SIGMA = 1.1


def dataset(n: int = 50) -> ArrayDataset:
    rng = np.random.default_rng(0)
    return make_dataset(rng.normal(size=(n, 5)), rng.integers(0, 2, size=n), 2)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(5, 2)


def plan(accountant: str = "rdp", epsilon: float = 50.0) -> DPPlan:
    """n = 50, q = 0.2, 5 steps per round."""
    return DPPlan(
        epsilon=epsilon,
        delta=1e-5,
        max_grad_norm=1.0,
        batch_size=TRAIN.batch_size,
        local_epochs=TRAIN.local_epochs,
        num_examples=50,
        planned_rounds=4,
        accountant=accountant,
        grad_sample_mode="fast",
        noise_multiplier=SIGMA,
    )


def ledger(accountant: str = "rdp", epsilon: float = 50.0) -> PrivacyLedger:
    return PrivacyLedger(DPSettings(plan(accountant, epsilon), SIGMA))


def train_round(book: PrivacyLedger, server_round: int) -> None:
    generator = torch.Generator().manual_seed(server_round)
    train_private_round(
        book, model(), dataset(), TRAIN, server_round=server_round, generator=generator
    )


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_restart_every_round_reproduces_one_long_run(accountant: str, tmp_path: Path) -> None:
    path = tmp_path / "site" / "privacy.json"
    for server_round in (1, 2, 4):  # the owner sat out round 3
        book = load_ledger(path, missing_ok=server_round == 1) or ledger(accountant)
        train_round(book, server_round)
        save_ledger(book, path)
        del book  # a new process reads the file next round
    restored = load_ledger(path)
    assert restored is not None
    long_run = create_accountant(accountant)
    for _ in range(3 * restored.plan.steps_per_round):
        long_run.step(noise_multiplier=SIGMA, sample_rate=0.2)
    assert restored.history == long_run.history
    assert restored.epsilon_spent() == long_run.get_epsilon(delta=1e-5)
    assert [r.server_round for r in restored.rounds] == [1, 2, 4]
    assert restored.rounds[-1].epsilon == restored.epsilon_spent()


def test_without_restoring_the_state_each_round_looks_like_the_first() -> None:
    """The failure the ledger exists to prevent: a fresh accountant forgets rounds."""
    book = ledger()
    train_round(book, 1)
    one_round = book.epsilon_spent()
    train_round(book, 2)
    assert book.epsilon_spent() > one_round
    assert ledger().projected_epsilon(2) == book.epsilon_spent()


def test_budget_guard_stops_before_the_budget_is_exceeded() -> None:
    steps = plan().steps_per_round
    budget = epsilon_for_history("rdp", [(SIGMA, 0.2, 2 * steps)], 1e-5)
    book = ledger(epsilon=budget)
    for server_round in (1, 2):
        assert book.can_train_next_round()
        train_round(book, server_round)
    assert not book.can_train_next_round()
    with pytest.raises(BudgetExhaustedError, match="round 3") as raised:
        train_round(book, 3)
    assert raised.value.stop == book.stopped_on_budget
    assert book.stopped_on_budget is not None
    assert book.stopped_on_budget.server_round == 3
    assert book.rounds_trained == 2
    assert book.epsilon_spent() <= budget
    assert book.metrics()["dp_stopped_on_budget"] == 1
    again = PrivacyLedger.from_bytes(book.to_bytes())
    assert again.stopped_on_budget == book.stopped_on_budget


class FailsOnThirdBatch(nn.Module):
    """A model that crashes mid-round, after two DP steps were composed."""

    def __init__(self) -> None:
        super().__init__()
        self.linear, self.calls = model(), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("site crashed mid-round")
        return self.linear(x)


def test_a_failed_round_spends_nothing() -> None:
    book = ledger()
    train_round(book, 1)
    before = book.history
    with pytest.raises(RuntimeError, match="mid-round"):
        train_private_round(
            book, FailsOnThirdBatch(), dataset(), TRAIN, server_round=2, generator=torch.Generator()
        )
    assert book.history == before
    assert book.rounds_trained == 1
    train_round(book, 2)
    assert book.rounds_trained == 2


def test_record_round_checks_the_accountant() -> None:
    book = ledger()
    with pytest.raises(LedgerError, match="composed 0 steps"):
        book.record_round(1)
    train_round(book, 1)
    with pytest.raises(LedgerError, match="recorded after"):
        book.record_round(1)
    book.accountant.step(noise_multiplier=2 * SIGMA, sample_rate=0.2)
    with pytest.raises(LedgerError, match="other settings"):
        book.record_round(2)


@pytest.fixture
def saved() -> bytes:
    book = ledger()
    train_round(book, 1)
    return book.to_bytes()


def test_bytes_round_trip(saved: bytes) -> None:
    book = PrivacyLedger.from_bytes(saved)
    assert book.to_bytes() == saved
    assert book.settings == DPSettings(plan(), SIGMA)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda data: b"", "empty file"),
        (lambda data: data[: len(data) // 2], "not valid JSON"),
        (lambda data: b"\xff\xfe" + data, "not valid JSON"),
        (lambda data: b"[1, 2]", "not a fedcurate privacy ledger"),
        (lambda data: data.replace(b'"version": 1', b'"version": 2'), "version 2"),
        (lambda data: data.replace(b'"epsilon": 50.0', b'"epsilon": 500.0'), "checksum mismatch"),
    ],
)
def test_corrupt_bytes_fail_loudly(
    saved: bytes, mangle: Callable[[bytes], bytes], message: str
) -> None:
    assert mangle(saved) != saved
    with pytest.raises(LedgerError, match=message):
        PrivacyLedger.from_bytes(mangle(saved))


def test_edited_history_breaks_the_checksum(saved: bytes) -> None:
    document = json.loads(saved)
    document["ledger"]["accountant"]["history"][0][2] = 1  # "forget" most steps
    with pytest.raises(LedgerError, match="checksum mismatch"):
        PrivacyLedger.from_bytes(json.dumps(document).encode())


def test_consistent_forgery_is_still_rejected(saved: bytes) -> None:
    """Even with a recomputed checksum, history and rounds must agree."""
    from fedcurate.privacy.ledger import _digest

    document = json.loads(saved)
    document["ledger"]["accountant"]["history"][0][2] = 1
    document["sha256"] = _digest(document["ledger"])
    with pytest.raises(LedgerError, match="composed 1 steps"):
        PrivacyLedger.from_bytes(json.dumps(document).encode())


def test_missing_file_is_fresh_only_when_the_caller_says_so(tmp_path: Path) -> None:
    path = tmp_path / "privacy.json"
    with pytest.raises(LedgerError, match="not found"):
        load_ledger(path)
    with pytest.raises(LedgerError, match="not found"):
        open_ledger(path, plan(), missing_ok=False)
    fresh = open_ledger(path, plan(), missing_ok=True)
    assert fresh.rounds_trained == 0
    assert fresh.epsilon_spent() == 0.0
    save_ledger(fresh, path)
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(LedgerError, match=str(path)):
        open_ledger(path, plan(), missing_ok=True)  # corrupt is never "missing"


def test_changed_config_does_not_silently_reuse_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "privacy.json"
    save_ledger(ledger(), path)
    with pytest.raises(LedgerError, match="max_grad_norm"):
        open_ledger(path, replace(plan(), max_grad_norm=2.0), missing_ok=False)
    assert open_ledger(path, plan(), missing_ok=False).settings.noise_multiplier == SIGMA


def test_metrics_are_plain_scalars() -> None:
    book = ledger()
    train_round(book, 1)
    metrics = book.metrics()
    assert metrics["dp_epsilon"] == book.epsilon_spent() > 0
    assert metrics["dp_rounds_trained"] == 1
    assert all(isinstance(v, (int, float)) for v in metrics.values())
