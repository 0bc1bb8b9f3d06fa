"""An owner's privacy ledger: budget, fixed DP-SGD settings and accountant state.

The ledger lives at the data site and survives process restarts as one JSON file
written atomically. Only rounds the owner actually trained are composed; no
amplification from the server's client sampling is claimed (the owner cannot
verify how it was sampled). A file that is missing, truncated, corrupt or edited
raises :class:`LedgerError`; it is never read as an empty ledger, because that
would silently hand the owner a fresh budget.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from fedcurate.io import atomic_write_bytes
from fedcurate.privacy.accountants import (
    HistoryEntry,
    create_accountant,
    epsilon_for_history,
    total_steps,
)
from fedcurate.privacy.calibration import DPPlan, DPSettings, calibrate

LEDGER_FORMAT = "fedcurate-privacy-ledger"
LEDGER_VERSION = 1


class LedgerError(ValueError):
    """A privacy ledger cannot be trusted (missing, corrupt, edited or inconsistent)."""


@dataclass(frozen=True)
class RoundRecord:
    """One round the owner trained, and its cumulative epsilon afterwards."""

    server_round: int
    epsilon: float


@dataclass(frozen=True)
class BudgetStop:
    """Why the owner refused to train: one more round would exceed the budget."""

    server_round: int
    epsilon_spent: float
    epsilon_projected: float


class PrivacyLedger:
    """Privacy state of one data owner across rounds.

    Parameters
    ----------
    settings : DPSettings
        Fixed for the owner's lifetime (noise multiplier, sample rate, steps per round).

    Attributes
    ----------
    accountant : opacus.accountants.IAccountant
        Hook it to the DP optimizer (``train_dp_sgd(..., accountant=ledger.accountant)``).
    rounds : list of RoundRecord
        The rounds trained so far.
    stopped_on_budget : BudgetStop or None
        Set when the owner refused a round for lack of budget.
    """

    def __init__(self, settings: DPSettings) -> None:
        self.settings = settings
        self.accountant = create_accountant(settings.plan.accountant)
        self.rounds: list[RoundRecord] = []
        self.stopped_on_budget: BudgetStop | None = None

    @property
    def plan(self) -> DPPlan:
        """The settings' plan (budget, delta, clipping, sampling)."""
        return self.settings.plan

    @property
    def history(self) -> list[HistoryEntry]:
        """Accountant history: ``(noise_multiplier, sample_rate, steps)`` entries."""
        return list(self.accountant.history)

    @property
    def rounds_trained(self) -> int:
        """Rounds this owner trained (and so spent budget on)."""
        return len(self.rounds)

    def epsilon_spent(self) -> float:
        """Epsilon at the ledger's delta over every step taken so far."""
        return epsilon_for_history(self.plan.accountant, self.history, self.plan.delta)

    def projected_epsilon(self, rounds: int = 1) -> float:
        """Epsilon after ``rounds`` more rounds at the fixed settings."""
        extra = (self.settings.noise_multiplier, self.plan.sample_rate)
        history = self.history
        steps = rounds * self.plan.steps_per_round
        # Merge like Opacus' accountants do, so the projection is the exact long-run value.
        if history and history[-1][:2] == extra:
            history[-1] = (*extra, history[-1][2] + steps)
        else:
            history.append((*extra, steps))
        return epsilon_for_history(self.plan.accountant, history, self.plan.delta)

    def can_train_next_round(self) -> bool:
        """Budget guard: would one more round stay within the epsilon budget?"""
        return self.projected_epsilon(1) <= self.plan.epsilon

    def refuse_round(self, server_round: int) -> BudgetStop:
        """Record that the owner declines ``server_round`` for lack of budget."""
        self.stopped_on_budget = BudgetStop(
            server_round, self.epsilon_spent(), self.projected_epsilon(1)
        )
        return self.stopped_on_budget

    def record_round(self, server_round: int) -> RoundRecord:
        """Record a round whose steps the accountant has just composed.

        Raises
        ------
        LedgerError
            The accountant holds other settings or another number of steps than
            the rounds trained imply, or ``server_round`` does not increase.
        """
        if self.rounds and server_round <= self.rounds[-1].server_round:
            raise LedgerError(
                f"round {server_round} recorded after round {self.rounds[-1].server_round}"
            )
        self._check_history(self.rounds_trained + 1)
        record = RoundRecord(server_round, self.epsilon_spent())
        self.rounds.append(record)
        return record

    def _check_history(self, rounds: int) -> None:
        expected = (self.settings.noise_multiplier, self.plan.sample_rate)
        foreign = [entry for entry in self.history if entry[:2] != expected]
        if foreign:
            raise LedgerError(
                f"accountant holds steps at other settings than {expected}: {foreign}"
            )
        steps, wanted = total_steps(self.history), rounds * self.plan.steps_per_round
        if steps != wanted:
            raise LedgerError(
                f"accountant composed {steps} steps but {rounds} round(s) of "
                f"{self.plan.steps_per_round} steps make {wanted}"
            )

    def require_plan(self, plan: DPPlan) -> None:
        """Raise :class:`LedgerError` unless the ledger was made for ``plan``."""
        if plan != self.plan:
            mine, theirs = asdict(self.plan), asdict(plan)
            changed = {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}
            raise LedgerError(
                f"the privacy ledger was planned with other settings {changed} "
                "(ledger, now); an owner's DP-SGD settings are fixed for the whole run"
            )

    def metrics(self) -> dict[str, int | float]:
        """Scalars for a reply or a report (all public: no function of the data)."""
        return {
            "dp_epsilon": self.epsilon_spent(),
            "dp_epsilon_budget": self.plan.epsilon,
            "dp_delta": self.plan.delta,
            "dp_noise_multiplier": self.settings.noise_multiplier,
            "dp_rounds_trained": self.rounds_trained,
            "dp_stopped_on_budget": int(self.stopped_on_budget is not None),
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state (Opacus ``state_dict`` style)."""
        return {
            "settings": {
                **asdict(self.plan),
                "calibrated_noise_multiplier": self.settings.noise_multiplier,
            },
            "accountant": {"mechanism": self.accountant.mechanism(), "history": self.history},
            "rounds": [asdict(record) for record in self.rounds],
            "stopped_on_budget": asdict(self.stopped_on_budget) if self.stopped_on_budget else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (settings included)."""
        self.settings = _settings_from_dict(state["settings"])
        self.accountant = create_accountant(self.plan.accountant, state["accountant"])
        self.rounds = [
            RoundRecord(int(r["server_round"]), float(r["epsilon"])) for r in state["rounds"]
        ]
        stop = state["stopped_on_budget"]
        self.stopped_on_budget = BudgetStop(**stop) if stop is not None else None
        self._check_history(self.rounds_trained)

    def to_bytes(self) -> bytes:
        """JSON with the format, its version and a SHA-256 of the state.

        The checksum catches corruption and hand edits, not a forger who
        recomputes it: the ledger protects the owner from its own mistakes.
        """
        state = self.state_dict()
        document = {
            "format": LEDGER_FORMAT,
            "version": LEDGER_VERSION,
            "sha256": _digest(state),
            "ledger": state,
        }
        return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "privacy ledger") -> PrivacyLedger:
        """Parse :meth:`to_bytes` output; raise :class:`LedgerError` naming the problem."""
        state = _verified_state(data, source)
        try:
            ledger = cls(_settings_from_dict(state["settings"]))
            ledger.load_state_dict(state)
        except LedgerError as error:
            raise LedgerError(f"{source}: {error}") from error
        except (KeyError, TypeError, ValueError) as error:
            raise LedgerError(f"{source}: malformed ledger state ({error!r})") from error
        return ledger


def _digest(state: dict[str, Any]) -> str:
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _verified_state(data: bytes, source: str) -> dict[str, Any]:
    """The ledger state of a serialized document, after format and checksum checks."""
    if not data:
        raise LedgerError(f"{source}: empty file (truncated?)")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LedgerError(f"{source}: not valid JSON, truncated or corrupt ({error})") from error
    if not isinstance(document, dict) or document.get("format") != LEDGER_FORMAT:
        raise LedgerError(f"{source}: not a fedcurate privacy ledger")
    if document.get("version") != LEDGER_VERSION:
        raise LedgerError(
            f"{source}: ledger format version {document.get('version')!r} is not "
            f"supported (this code reads version {LEDGER_VERSION})"
        )
    state = document.get("ledger")
    if not isinstance(state, dict) or document.get("sha256") != _digest(state):
        raise LedgerError(f"{source}: checksum mismatch, the ledger was modified or corrupted")
    return state


def _settings_from_dict(raw: dict[str, Any]) -> DPSettings:
    names = {f.name for f in fields(DPPlan)}
    expected = names | {"calibrated_noise_multiplier"}
    if set(raw) != expected:
        raise LedgerError(f"settings keys {sorted(raw)} differ from {sorted(expected)}")
    plan = DPPlan(**{name: raw[name] for name in names})
    return DPSettings(plan, float(raw["calibrated_noise_multiplier"]))


def save_ledger(ledger: PrivacyLedger, path: str | Path) -> Path:
    """Write the ledger atomically (owner-only permissions)."""
    return atomic_write_bytes(path, ledger.to_bytes(), mode=0o600)


def load_ledger(path: str | Path, *, missing_ok: bool = False) -> PrivacyLedger | None:
    """Read the ledger at ``path``.

    Parameters
    ----------
    missing_ok : bool
        Return ``None`` for a missing file (the caller starts a fresh ledger).
        Only the caller knows that no ledger should exist yet; by default a
        missing file is an error.
    """
    stored = _read_ledger_file(Path(path), missing_ok)
    return None if stored is None else PrivacyLedger.from_bytes(stored, source=str(path))


def _read_ledger_file(path: Path, missing_ok: bool) -> bytes | None:
    if path.exists():
        return path.read_bytes()
    if missing_ok:
        return None
    raise LedgerError(f"{path}: privacy ledger not found (refusing to start a fresh budget)")


def open_ledger(path: str | Path, plan: DPPlan, *, missing_ok: bool) -> PrivacyLedger:
    """The ledger at ``path`` checked against ``plan``, or a fresh calibrated one
    when the file is missing and ``missing_ok``."""
    stored = _read_ledger_file(Path(path), missing_ok)
    return open_ledger_bytes(stored, plan, source=str(path))


def open_ledger_bytes(stored: bytes | None, plan: DPPlan, *, source: str) -> PrivacyLedger:
    """A stored ledger checked against ``plan``, or a fresh calibrated one for ``None``.

    For owners that keep the ledger in their own state store; ``source`` names
    it in errors. Deciding that ``None`` really means "never trained" is the
    caller's job (see :func:`load_ledger`).
    """
    if stored is None:
        return PrivacyLedger(calibrate(plan))
    ledger = PrivacyLedger.from_bytes(stored, source=source)
    ledger.require_plan(plan)
    return ledger
