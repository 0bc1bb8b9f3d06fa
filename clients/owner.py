"""What a data owner does when asked to train or evaluate."""

from __future__ import annotations

import functools
import hashlib
import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict
from torch import nn

from clients.site import Site
from clients.state import SiteState
from fedcurate.crypto import CkksContext, encrypt_vector, load_key_file, to_wire
from fedcurate.data import ArrayDataset
from fedcurate.data.corruption import FREE_RIDER_KINDS, UPDATE_KINDS, corrupt_update
from fedcurate.data.federation import build_federation, dataset_spec
from fedcurate.models import ParamLayout, blank_model, load_record, model_to_record
from fedcurate.privacy import (
    BudgetExhaustedError,
    LedgerError,
    PrivacyLedger,
    open_ledger_bytes,
    plan_privacy,
    train_private_round,
)
from fedcurate.protocol import (
    AGGREGATION_WEIGHT,
    ARRAYS,
    CONFIG,
    ENCRYPTED_UPDATE,
    METRICS,
    PRIVACY,
    PROXIMAL_MU,
    ROUNDS_TRAINED,
    SERVER_ROUND,
    TIMING,
    EvalMetrics,
    TrainMetrics,
    declined_content,
)
from fedcurate.seeding import numpy_rng, torch_generator
from fedcurate.training import evaluate, train_local

_LAST_GLOBAL = "last-global.npy"
_LAST_GLOBAL_CHANGE = "last-global-change.npy"
_PRIVACY_LEDGER = "privacy-ledger.json"
_LAST_RELEASE = "last-dp-release.npz"


@dataclass(frozen=True)
class Instruction:
    """What the server asks of an owner in one training round."""

    server_round: int
    proximal_mu: float
    rounds_trained: int
    aggregation_weight: float

    @staticmethod
    def parse(record: ConfigRecord) -> Instruction:
        """Read the train config record (Flower's keys and fedcurate's)."""
        return Instruction(
            server_round=int(record[SERVER_ROUND]),  # type: ignore[arg-type]
            proximal_mu=float(record.get(PROXIMAL_MU, 0.0)),  # type: ignore[arg-type]
            rounds_trained=int(record.get(ROUNDS_TRAINED, 0)),  # type: ignore[arg-type]
            aggregation_weight=float(record.get(AGGREGATION_WEIGHT, 1.0)),  # type: ignore[arg-type]
        )


def _corruption_kind(site: Site) -> str | None:
    """The simulated corruption of this owner (never any in deployment)."""
    if site.owner_index is None:
        return None
    return build_federation(site.config).corruption.get(site.owner_index)


def train(site: Site, content: RecordDict, context: Context) -> RecordDict:
    """Train on the owner's data from the received global model.

    Returns Flower's conventional reply (the local model as ``arrays`` and
    :class:`TrainMetrics` with ``num-examples`` as ``metrics``), plus the owner's
    privacy ledger summary under DP-SGD, or a refusal once its budget is spent.
    """
    instruction = Instruction.parse(content.config_records[CONFIG])
    global_arrays = content.array_records[ARRAYS]
    model = load_record(blank_model(site.config.model, dataset_spec(site.config)), global_arrays)
    train_data, _ = site.owner_data()
    kind = _corruption_kind(site)
    state = SiteState(context, site.state_dir)
    last_change = _remember_global(state, global_arrays) if kind in UPDATE_KINDS else None
    reply = RecordDict()
    if kind in FREE_RIDER_KINDS:
        metrics = _pose_as_trained(site, model, train_data)
    elif site.config.privacy.name == "dp_sgd":
        ledger = _ledger(site, state, len(train_data), instruction)
        if ledger.rounds and instruction.server_round <= ledger.rounds[-1].server_round:
            try:
                model = _replay_release(site, model, state, instruction, global_arrays)
            except LedgerError as refusal:
                return _with_privacy(declined_content(str(refusal)), state, ledger)
            metrics = TrainMetrics(len(train_data), 0.0)
        else:
            try:
                metrics = _train_private(site, model, train_data, ledger, instruction)
            except BudgetExhaustedError as refusal:
                reply = declined_content(str(refusal))
                return _with_privacy(reply, state, ledger)
            _keep_release(state, instruction.server_round, global_arrays, model)
        _with_privacy(reply, state, ledger)
    else:
        metrics = _train_plain(site, model, train_data, instruction)
    arrays = model_to_record(model)
    if kind in UPDATE_KINDS:
        arrays = _corrupted(
            site,
            kind,
            global_arrays=global_arrays,
            honest_arrays=arrays,
            last_change=last_change,
            server_round=instruction.server_round,
        )
    if site.config.crypto.name == "ckks":
        start = time.perf_counter()
        reply[ENCRYPTED_UPDATE] = _encrypted_update(site, global_arrays, arrays, instruction)
        reply[TIMING] = ConfigRecord({"encrypt-seconds": time.perf_counter() - start})
    else:
        reply[ARRAYS] = arrays
    reply[METRICS] = metrics.to_record()
    return reply


@functools.lru_cache(maxsize=4)
def _public_context(path: Path) -> CkksContext:
    return load_key_file(path, expect="public")


def _encrypted_update(
    site: Site, global_arrays: ArrayRecord, local: ArrayRecord, instruction: Instruction
) -> ConfigRecord:
    """``p_i (w_i - w_t)`` encrypted with the curator's public key (DP, if any, came first)."""
    layout = ParamLayout.of(global_arrays)
    update = layout.flatten(local) - layout.flatten(global_arrays)
    context = _public_context(site.public_context_path())
    encrypted = encrypt_vector(instruction.aggregation_weight * update, context)
    return ConfigRecord(to_wire(encrypted))  # type: ignore[arg-type]


def _pose_as_trained(site: Site, model: nn.Module, data: ArrayDataset) -> TrainMetrics:
    """A free rider's metrics, shaped like an honest owner's so that its reply passes.

    Without privacy: the global model's loss and accuracy on its own data. Under
    any DP, honest owners release no metric of their data, so neither does it.
    """
    if site.config.privacy.name != "none":
        return TrainMetrics(len(data), 0.0)
    probe = evaluate(model, data)
    return TrainMetrics(len(data), 0.0, probe.loss, probe.accuracy)


def _train_plain(
    site: Site, model: nn.Module, data: ArrayDataset, instruction: Instruction
) -> TrainMetrics:
    result = train_local(
        model,
        data,
        site.config.train,
        generator=torch_generator(site.config.seed, "train", site.name, instruction.server_round),
        proximal_mu=instruction.proximal_mu,
    )
    if site.config.privacy.name != "none":  # client-level DP: metrics are releases too
        return TrainMetrics(result.num_examples, result.seconds)
    return TrainMetrics(result.num_examples, result.seconds, result.loss, result.accuracy)


def _train_private(
    site: Site,
    model: nn.Module,
    data: ArrayDataset,
    ledger: PrivacyLedger,
    instruction: Instruction,
) -> TrainMetrics:
    result = train_private_round(
        ledger,
        model,
        data,
        site.config.train,
        server_round=instruction.server_round,
        generator=torch_generator(site.config.seed, "dp-sgd", site.name, instruction.server_round),
        proximal_mu=instruction.proximal_mu,
    )
    # Loss and accuracy on raw private batches are not covered by DP: not released.
    return TrainMetrics(result.num_examples, result.seconds)


def _ledger(
    site: Site, state: SiteState, num_examples: int, instruction: Instruction
) -> PrivacyLedger:
    """The owner's privacy ledger, never silently reset.

    A missing ledger is only accepted as a fresh start when the server also
    records no round trained by this owner; otherwise the site lost its ledger
    and must restore it before training again.
    """
    config = site.config
    planned = config.privacy.planned_rounds or config.num_rounds
    plan = plan_privacy(config.privacy, config.train, num_examples, num_rounds=planned)
    stored = state.get_bytes(_PRIVACY_LEDGER)
    if stored is None and instruction.rounds_trained > 0:
        raise LedgerError(
            f"{site.state_dir / _PRIVACY_LEDGER}: privacy ledger missing, but the server "
            f"records {instruction.rounds_trained} round(s) trained by {site.name}; "
            "restore the ledger file before training again"
        )
    return open_ledger_bytes(stored, plan, source=str(site.state_dir / _PRIVACY_LEDGER))


def _keep_release(
    state: SiteState, server_round: int, global_arrays: ArrayRecord, model: nn.Module
) -> None:
    """Keep this round's DP output, written before the ledger that counts it.

    The global model it was trained from is kept as a digest only: enough to
    recognise a repeated request, at no cost in disk space.
    """
    layout = ParamLayout.of(global_arrays)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        round=np.array(server_round),
        global_digest=_digest(layout.flatten(global_arrays)),
        local=layout.flatten(model_to_record(model)),
    )
    state.set_bytes(_LAST_RELEASE, buffer.getvalue())


def _digest(flat: np.ndarray) -> np.ndarray:
    """SHA-256 of a flat float64 model, as 32 bytes in an array."""
    digest = hashlib.sha256(np.ascontiguousarray(flat, dtype="<f8").tobytes()).digest()
    return np.frombuffer(digest, dtype=np.uint8)


def _kept_release(state: SiteState) -> dict[str, np.ndarray] | None:
    """The kept release's fields, ``None`` when absent or unreadable."""
    raw = state.get_bytes(_LAST_RELEASE)
    if raw is None:
        return None
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as stored:
            return {key: stored[key] for key in ("round", "global_digest", "local")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def _replay_release(
    site: Site,
    model: nn.Module,
    state: SiteState,
    instruction: Instruction,
    global_arrays: ArrayRecord,
) -> nn.Module:
    """The model this owner already released for a repeated round.

    A server that resumes from its last checkpoint asks again for the round it
    lost. Training again would spend the budget twice for one round; re-sending
    the released DP output is post-processing and spends nothing.

    Raises
    ------
    LedgerError
        The kept release is missing, unreadable, or of another round or another
        global model.
    """
    layout = ParamLayout.of(global_arrays)
    kept = _kept_release(state)
    if (
        kept is None
        or kept["local"].shape != (layout.size,)
        or int(kept["round"]) != instruction.server_round
        or not np.array_equal(kept["global_digest"], _digest(layout.flatten(global_arrays)))
    ):
        raise LedgerError(
            f"{site.name} already trained round {instruction.server_round} and keeps no "
            "update of it for this global model; training again would spend its budget "
            "twice, so it sits this round out"
        )
    return load_record(model, layout.unflatten(kept["local"]))


def _with_privacy(reply: RecordDict, state: SiteState, ledger: PrivacyLedger) -> RecordDict:
    """Persist the ledger and attach its public summary to the reply."""
    state.set_bytes(_PRIVACY_LEDGER, ledger.to_bytes())
    reply[PRIVACY] = ConfigRecord(dict(ledger.metrics()))
    return reply


def _remember_global(state: SiteState, global_arrays: ArrayRecord) -> np.ndarray | None:
    """Store ``w_t`` and return the last global change ``w_t - w_{t-1}`` if known."""
    current = ParamLayout.of(global_arrays).flatten(global_arrays)
    previous = state.get_array(_LAST_GLOBAL)
    if previous is not None and previous.shape == current.shape:
        state.set_array(_LAST_GLOBAL_CHANGE, current - previous)
    state.set_array(_LAST_GLOBAL, current)
    return state.get_array(_LAST_GLOBAL_CHANGE)


def _corrupted(
    site: Site,
    kind: str,
    *,
    global_arrays: ArrayRecord,
    honest_arrays: ArrayRecord,
    last_change: np.ndarray | None,
    server_round: int,
) -> ArrayRecord:
    layout = ParamLayout.of(global_arrays)
    global_flat = layout.flatten(global_arrays)
    honest = None if kind in FREE_RIDER_KINDS else layout.flatten(honest_arrays) - global_flat
    update = corrupt_update(
        honest,
        site.config.corruption,
        last_global_change=last_change,
        global_weights=global_flat,
        rng=numpy_rng(site.config.seed, "corrupt-update", site.name, server_round),
    )
    return layout.unflatten(global_flat + update)


def evaluate_global(site: Site, content: RecordDict) -> RecordDict:
    """Evaluate the received global model on the owner's local test split.

    Under differential privacy the owner declines: metrics computed on its
    private data would be a release that no privacy budget accounts for.
    """
    if site.config.privacy.name != "none":
        return declined_content(
            f"under privacy={site.config.privacy.name} an owner releases no metric computed "
            "on its private data"
        )
    model = load_record(
        blank_model(site.config.model, dataset_spec(site.config)),
        content.array_records[ARRAYS],
    )
    _, test_data = site.owner_data()
    result = evaluate(model, test_data)
    metrics = EvalMetrics(result.num_examples, result.loss, result.accuracy)
    return RecordDict({METRICS: metrics.to_record()})
