"""``fedcurate bench curator``: does the curator find bad owners, and does curation pay?

A grid of simulated federations, every run the product's own simulation
(``simulations.runner``, in-process backend) with 10 owners:

* datasets ``digits`` (MLP), ``breast_cancer`` (logistic) under the ``iid`` and
  ``dirichlet`` (alpha 0.3) partitions, and FedProx ``synthetic`` (1, 1)
  (logistic, one device per owner: benign heterogeneity, no partition to choose);
* corruptions: label noise at 10 % and 50 %, label flips (50 %), feature noise
  (one standard deviation), replay free riders and sign flips, on 20 % and 40 %
  of the owners (the same seeded owners for every kind);
* privacy ``none`` and ``dp_sgd`` at ε = 8 per owner;
* seeds 0, 1, 2.

Each cell (everything but the seed) runs, per seed:

* ``curated``: the curator (:data:`CURATOR`: first-order values, ``exclude`` policy);
* ``weighted``: the same curator with the ``weight`` policy (:data:`WEIGHTED`), in
  the cells the accuracy target is about (40 % bad owners on digits and breast
  cancer): does down-weighting train a better model than leaving owners out?
* ``clean``: FedAvg with the corrupted owners offline (their training requests
  fail, as a dropped SuperNode's would), on the same federation: what a perfect
  curator could reach. It depends only on which owners are corrupted, so it is
  shared by every corruption kind of a (dataset, partition, fraction, privacy, seed);
* ``fedavg`` and Flower's robust strategies ``krum``, ``multikrum``,
  ``fedmedian``, ``fedtrimmedavg``, each told the true number of bad owners
  (Krum's ``f``, MultiKrum keeps ``n - f``, the trimmed mean cuts the bad
  fraction from each end): their best case. By default FedAvg runs in every
  cell and the robust strategies in the cells the accuracy target is about
  (40 % bad owners on digits and breast cancer, with and without DP);
  ``--baselines all`` runs every baseline everywhere.

Per cell (mean over seeds): detection AUROC (corrupted owners are the
positives, lower = more suspect) of the owners' standing, the evidence the
``exclude`` policy decides on (credit and data-quality signals relative to each
round's participants, and the uphill record, ``fedcurate.curation.evidence``), after round 3 and at
the end, and of their cumulative credit (the values alone); the share of benign owners
excluded at the end (false exclusions) and of bad owners excluded; the largest
reward share of a free rider; final test accuracy and its gap to every
baseline. Then the estimator check (``simulations.bench_valuation``: GTG-Shapley
and the others against exact Shapley, with evaluation counts), a fairness check
(two owners holding identical data) and the encrypted first-order check
(``crypto=ckks`` against ``crypto=none``, same seed).

Prints one JSON line per cell as it completes, then the acceptance lines, and
writes ``docs/curator_benchmark.json`` and ``docs/curator_benchmark.md``
(``--quick``: ``docs/curator_benchmark_quick.*``; ``--docs DIR``: into ``DIR``,
also for a partial grid or without the checks, the report then saying which
command made it and that its acceptance lines cover the cells run). Every
finished run is cached under ``outputs/bench/curator/`` keyed by its overrides
(curated runs also by a fingerprint of the curation code and its config, docstrings
and comments left out), so an interrupted grid continues where it stopped and
baselines are computed once.

    fedcurate bench curator --quick                       # CI smoke grid, ~2 min
    fedcurate bench curator                               # the full grid (hours)
    fedcurate bench curator --cells 'digits/dirichlet/*' --seeds 0 1
    fedcurate bench curator --arms clean fedavg krum      # baselines only
    fedcurate bench curator --seeds 3 4 5 --cells 'digits/*/*/0.4/*' \
        'breast_cancer/*/*/0.4/*' --no-checks --docs docs/curator_heldout  # held-out seeds
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import functools
import hashlib
import json
import math
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import Error, Message, MessageType
from flwr.common.constant import ErrorCode
from omegaconf import OmegaConf
from scipy import stats  # type: ignore[import-untyped]
from sklearn.metrics import roc_auc_score

from fedcurate.config import Config, compose_config
from fedcurate.curation import ContributionLedger, Curator, ValidationEvaluator, evidence
from fedcurate.curation.evidence import History, Observation
from fedcurate.curation.ledger import STATE_VERSION as LEDGER_STATE_VERSION
from fedcurate.data import build_federation, owner_name
from fedcurate.data.corruption import corrupted_owners
from fedcurate.data.federation import Federation, OwnerData
from fedcurate.io import atomic_write_json, atomic_write_text
from fedcurate.models import build_model
from simulations import bench_valuation, curator_plots
from simulations.inprocess import InProcessGrid
from simulations.runner import PROJECT_DIR, run_simulation

# ---------------------------------------------------------------------------- grid

#: Dataset -> overrides (model and, for Synthetic, the curator's validation slice).
DATASETS: dict[str, list[str]] = {
    "digits": ["dataset=digits", "model=mlp"],
    "breast_cancer": ["dataset=breast_cancer", "model=logistic"],
    "synthetic": [
        "dataset=synthetic",
        "dataset.alpha=1.0",
        "dataset.beta=1.0",
        "dataset.validation_fraction=0.1",
        "model=logistic",
    ],
}
#: Partition -> overrides; Synthetic comes with its own devices (``natural``).
PARTITIONS: dict[str, list[str]] = {
    "iid": ["partition=iid"],
    "dirichlet": ["partition=dirichlet", "partition.alpha=0.3"],
    "natural": ["partition=natural"],
}
NATURAL_DATASETS = ("synthetic",)
CORRUPTIONS: dict[str, list[str]] = {
    "label_noise_10": ["corruption=label_noise", "corruption.rate=0.1"],
    "label_noise_50": ["corruption=label_noise", "corruption.rate=0.5"],
    "label_flip": ["corruption=label_flip", "corruption.rate=0.5"],
    "feature_noise": ["corruption=feature_noise", "corruption.scale=1.0"],
    "free_rider_replay": ["corruption=free_rider_replay"],
    "sign_flip": ["corruption=sign_flip", "corruption.scale=1.0"],
}
FRACTIONS = (0.2, 0.4)
#: Corruptions of the data (not of the update): what the encrypted evidence is for.
ENCRYPTED_CORRUPTIONS = ("label_noise_10", "label_noise_50", "label_flip", "feature_noise")
PRIVACY: dict[str, list[str]] = {
    "none": ["privacy=none"],
    "dp_sgd": ["privacy=dp_sgd", "privacy.epsilon=8.0"],
}
SEEDS = (0, 1, 2)
NUM_CLIENTS = 10
NUM_ROUNDS = 15
#: Owners' own evaluations are not needed: test accuracy is measured centrally.
COMMON = [f"num_clients={NUM_CLIENTS}", "fraction_train=1.0", "fraction_evaluate=0.0"]
#: The curator under test. first_order: one gradient pass per round (cheap enough
#: for every round of every run) and the only method that also works on encrypted
#: updates, so the numbers hold for both modes; exclude: the policy that acts.
CURATOR = ["curator=first_order", "curator.policy=exclude"]
#: The same curator with the ``weight`` policy (aggregation weights from mean credit,
#: floored and capped at an equal share; no owner barred, only screened updates left
#: out of their round), where the accuracy target is measured: which policy trains
#: the better model when 40 % of the owners are bad.
WEIGHTED = ["curator=first_order", "curator.policy=weight"]
#: Each curated arm's curator.
CURATED_ARMS = {"curated": CURATOR, "weighted": WEIGHTED}
ROBUST = ("krum", "multikrum", "fedmedian", "fedtrimmedavg")
BASELINES = ("clean", "fedavg", *ROBUST)
ARMS = (*CURATED_ARMS, *BASELINES)
#: Record key of each curated arm's accuracy gaps (baseline minus that arm).
GAP_KEYS = {arm: "gap" if arm == "curated" else f"gap_{arm}" for arm in CURATED_ARMS}
#: AUROC after this many rounds (how early the curator knows).
EARLY_ROUND = 3

# Acceptance targets (the issue's).
TARGET_AUROC_PLAIN = 0.97
TARGET_AUROC_DP = 0.90
TARGET_AUROC_NOISY_DIRICHLET = 0.90
TARGET_ACCURACY_GAP = 0.01
TARGET_FALSE_EXCLUSION_SYNTHETIC = 0.05
TARGET_TWIN_GAP = 0.10
#: Accuracy differences at most this small are ties: two runs that classify the same
#: number of test examples correctly can differ in the last bits of their mean over seeds.
ACCURACY_TIE = 1e-9
#: Confidence of the interval for a mean AUROC over seeds (see :func:`seed_spread`).
SEED_INTERVAL_CONFIDENCE = 0.95
#: Seeds over which the twin check's spread is also reported (the target uses the grid's).
TWIN_SPREAD_SEEDS = tuple(range(10))
TARGET_FREE_RIDER_SHARE = 0.01
TARGET_ENCRYPTED_RELATIVE = 1e-4


@dataclass(frozen=True)
class Cell:
    """Everything about an experiment but its seed."""

    dataset: str
    partition: str
    corruption: str
    fraction: float
    privacy: str

    @property
    def name(self) -> str:
        """``dataset/partition/corruption/fraction/privacy``, the ``--cells`` pattern target."""
        return "/".join(
            [self.dataset, self.partition, self.corruption, f"{self.fraction:g}", self.privacy]
        )

    @property
    def bad_owners(self) -> int:
        """How many of the owners are corrupted."""
        return round(self.fraction * NUM_CLIENTS)

    def overrides(self, seed: int, rounds: int) -> list[str]:
        """The experiment's overrides, without the arm's."""
        return [
            *COMMON,
            f"num_rounds={rounds}",
            *DATASETS[self.dataset],
            *PARTITIONS[self.partition],
            *CORRUPTIONS[self.corruption],
            f"corruption.fraction={self.fraction:g}",
            *PRIVACY[self.privacy],
            f"seed={seed}",
        ]


def full_grid() -> list[Cell]:
    """Every cell of the issue's grid, the cells without DP first (they are faster)."""
    cells = []
    for privacy in PRIVACY:
        for dataset in DATASETS:
            partitions = ["natural"] if dataset in NATURAL_DATASETS else ["iid", "dirichlet"]
            for partition in partitions:
                for corruption in CORRUPTIONS:
                    for fraction in FRACTIONS:
                        cells.append(Cell(dataset, partition, corruption, fraction, privacy))
    return cells


def quick_grid() -> list[Cell]:
    """A CI-sized smoke grid: two easy cells on non-IID digits."""
    return [
        Cell("digits", "dirichlet", "label_noise_50", 0.4, "none"),
        Cell("digits", "dirichlet", "free_rider_replay", 0.4, "none"),
    ]


def accuracy_target_cell(cell: Cell) -> bool:
    """Cells of the accuracy target: 40 % bad owners on digits or breast cancer."""
    return cell.dataset in ("digits", "breast_cancer") and cell.fraction == max(FRACTIONS)


def cell_of(record: Mapping[str, Any]) -> Cell:
    """The cell a :func:`cell_record` describes."""
    return Cell(*(record[field.name] for field in fields(Cell)))


def arms_of(cell: Cell, baselines: str) -> tuple[str, ...]:
    """The arms run in ``cell``.

    ``baselines="all"``: every arm everywhere. ``"targets"`` (the default):
    the curator, the clean-only run and plain FedAvg everywhere; the curator
    with the ``weight`` policy and the robust strategies in the cells of the
    accuracy target.
    """
    if baselines == "all" or accuracy_target_cell(cell):
        return ARMS
    return ("curated", "clean", "fedavg")


# ------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunSpec:
    """One simulation: overrides, and owners kept offline (the clean-only baseline)."""

    overrides: tuple[str, ...]
    offline: tuple[int, ...] = ()

    @property
    def curated(self) -> bool:
        """Whether the curator runs (its results then depend on the curation code)."""
        return any(o.startswith("curator=") and o != "curator=none" for o in self.overrides)


def arm_spec(
    cell: Cell, arm: str, seed: int, rounds: int, curator_overrides: Sequence[str] = ()
) -> RunSpec:
    """The run of ``arm`` in ``cell`` for ``seed`` (a curated arm with ``curator_overrides``)."""
    base = cell.overrides(seed, rounds)
    bad = cell.bad_owners
    extra: dict[str, list[str]] = {
        **{name: [*curator, *curator_overrides] for name, curator in CURATED_ARMS.items()},
        "fedavg": ["strategy=fedavg"],
        "krum": ["strategy=krum", f"strategy.num_malicious={bad}"],
        "multikrum": [
            "strategy=multikrum",
            f"strategy.num_malicious={bad}",
            f"strategy.num_to_select={NUM_CLIENTS - bad}",
        ],
        "fedmedian": ["strategy=fedmedian"],
        "fedtrimmedavg": ["strategy=fedtrimmedavg", f"strategy.trim_beta={cell.fraction:g}"],
    }
    if arm != "clean":
        return RunSpec(tuple(base + extra[arm]))
    # The clean-only run does not depend on the corruption kind: the corrupted owners
    # (a seeded draw from the fraction) never train. One kind stands for all.
    clean = replace(cell, corruption="label_noise_50").overrides(seed, rounds)
    config = compose_config(clean)
    offline = corrupted_owners(config.corruption, config.num_clients, config.seed)
    return RunSpec((*clean, "strategy=fedavg"), tuple(sorted(offline)))


def curation_fingerprint(project: Path = PROJECT_DIR) -> str:
    """Hash of the curation code, curator presets and config schema (the curator's defaults).

    Curated runs are redone when it changes. Each file, subpackages included,
    counts by its path in ``project`` and what can change a run (:func:`behaviour`),
    so editing a docstring or a comment keeps the cache.
    """
    digest = hashlib.sha256()
    roots = [project / "fedcurate" / "curation", project / "conf" / "curator"]
    sources = [p for root in roots for p in root.rglob("*") if p.suffix in {".py", ".yaml"}]
    for path in sorted([*sources, project / "fedcurate" / "config.py"]):
        digest.update(path.relative_to(project).as_posix().encode())
        digest.update(behaviour(path).encode())
    return digest.hexdigest()[:16]


#: Python nodes whose body may hold docstrings.
DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def behaviour(path: Path) -> str:
    """``path`` without docstrings, comments and layout.

    A YAML file counts by its data, a Python file by its syntax tree without the
    string statements (docstrings) of modules, classes and functions. The tree's
    dump depends on the Python version: a new interpreter recomputes the cache once.
    """
    text = path.read_text()
    if path.suffix == ".yaml":
        return json.dumps(OmegaConf.to_container(OmegaConf.create(text)), sort_keys=True)
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, DOCUMENTED):
            code = [statement for statement in node.body if not _is_string_statement(statement)]
            node.body = code or [ast.Pass()]
    return ast.dump(tree)


def _is_string_statement(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


class RunCache:
    """Finished runs' results on disk, one JSON file per run keyed by its overrides.

    Parameters
    ----------
    directory : Path
        Where the files live (created when needed).
    fingerprint : str
        :func:`curation_fingerprint`; a cached curated run with another one is stale.
    """

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = directory
        self.fingerprint = fingerprint

    def path(self, spec: RunSpec) -> Path:
        """The file of ``spec``."""
        key = json.dumps({"overrides": spec.overrides, "offline": spec.offline})
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"

    def get(self, spec: RunSpec) -> dict[str, Any] | None:
        """The cached result of ``spec``, or ``None`` when absent or stale."""
        path = self.path(spec)
        if not path.is_file():
            return None
        result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if spec.curated and result.get("fingerprint") != self.fingerprint:
            return None
        return result

    def put(self, spec: RunSpec, result: dict[str, Any]) -> None:
        """Store ``result`` for ``spec``."""
        stamped = {**result, "fingerprint": self.fingerprint if spec.curated else None}
        atomic_write_json(self.path(spec), stamped)


class OfflineOwnersGrid(InProcessGrid):
    """The in-process grid with some owners unable to train, as if their node were down.

    They still describe themselves (the run starts with its full roster); every
    training request to them gets the error reply a missing SuperNode gets, so
    the server records them as failed and aggregates the others.

    Parameters
    ----------
    *args, **kwargs
        Those of :class:`~simulations.inprocess.InProcessGrid`.
    offline_partitions : Iterable[int]
        Partition ids (owner indices) of the owners that never train.
    """

    def __init__(self, *args: Any, offline_partitions: Iterable[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        wanted = {int(p) for p in offline_partitions}
        self.offline_nodes = {
            node_id
            for node_id in self.get_node_ids()
            if int(self.context_of(node_id).node_config["partition-id"]) in wanted
        }

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Answer training requests to offline owners with an error; run the rest."""
        batch = list(messages)
        down = [self._offline_training(m) for m in batch]
        online = iter(super().push_messages([m for m, d in zip(batch, down, strict=True) if not d]))
        ids = []
        for message, is_down in zip(batch, down, strict=True):
            if not is_down:
                ids.append(next(online))
                continue
            message_id = self._stamp(message)
            reason = "offline: a corrupted owner, left out of the clean-only baseline"
            self._pending[message_id] = Message(
                Error(ErrorCode.NODE_UNAVAILABLE, reason), reply_to=message
            )
            ids.append(message_id)
        return ids

    def _offline_training(self, message: Message) -> bool:
        return (
            message.metadata.dst_node_id in self.offline_nodes
            and message.metadata.message_type == MessageType.TRAIN
        )


def run_with_offline_owners(
    config: Config, overrides: list[str], run_dir: Path, offline: Iterable[int]
) -> dict[str, Any]:
    """:func:`simulations.runner.run_simulation` with the ``offline`` owners down."""
    grid = functools.partial(OfflineOwnersGrid, offline_partitions=tuple(offline))
    return run_simulation(config, overrides, run_dir, grid_factory=grid)


def execute(spec: RunSpec, scratch: Path) -> dict[str, Any]:
    """Run ``spec`` in a scratch directory; keep what the benchmark reads."""
    # The HTML/PNG report is not read here and costs a large share of a small run's
    # time. Not part of the spec: the cache key stays that of the experiment.
    overrides = [*spec.overrides, "report=false"]
    config = compose_config(overrides)
    with tempfile.TemporaryDirectory(dir=scratch) as directory:
        run_dir = Path(directory)
        if spec.offline:
            summary = run_with_offline_owners(config, overrides, run_dir, spec.offline)
        else:
            summary = run_simulation(config, overrides, run_dir)
        ledger_path = run_dir / "ledger.json"
        ledger = json.loads(ledger_path.read_text()) if ledger_path.is_file() else None
    return compact_result(spec, summary, ledger)


def compact_result(
    spec: RunSpec, summary: Mapping[str, Any], ledger: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The parts of a run the benchmark reads (a few kB instead of a run directory)."""
    curator = summary.get("curator") or {}
    privacy = summary.get("privacy") or {}
    history = ledger_history(ledger)
    return {
        "overrides": list(spec.overrides),
        "offline": list(spec.offline),
        "status": summary["status"],
        "final_accuracy": summary["final"]["accuracy"],
        "corruption": summary["corruption"],
        "owners": [owner_name(i) for i in range(int(summary["num_clients"]))],
        "credit": dict((ledger or {}).get("cumulative", {})),
        # Kept so that other ways of weighing the evidence can be studied on cached runs.
        "observations": {name: [asdict(o) for o in obs] for name, obs in history.items()},
        "reward_shares": curator.get("reward_shares", {}),
        "excluded": sorted(curator.get("excluded", {})),
        "max_epsilon": privacy.get("max_epsilon"),
        "wall_seconds": summary["wall_seconds"],
    }


def ledger_history(ledger: Mapping[str, Any] | None) -> History:
    """Owner -> its observations, oldest first, from a run's ``ledger.json`` (none: empty)."""
    if not ledger:
        return {}
    restored = ContributionLedger()
    restored.load_state_dict({"version": LEDGER_STATE_VERSION, "rounds": ledger["rounds"]})
    return restored.history()


# ---------------------------------------------------------------------- metrics


def detection_auroc(scores: Mapping[str, float], corrupted: Iterable[str]) -> float | None:
    """AUROC of ranking corrupted owners below benign ones by score (``None``: one class)."""
    names = sorted(scores)
    bad = set(corrupted)
    labels = [name in bad for name in names]
    if all(labels) or not any(labels):
        return None
    return float(roc_auc_score(labels, [-scores[name] for name in names]))


def cumulative_credit(result: Mapping[str, Any]) -> dict[str, float]:
    """Owner -> its cumulative credit at the end of the run (the ledger's, values alone)."""
    return {name: float(credit) for name, credit in result["credit"].items()}


def mean_standing(result: Mapping[str, Any], rounds: int | None = None) -> dict[str, float]:
    """Owner -> the ledger's mean standing after its first ``rounds`` valued rounds (all: None)."""
    history = {
        name: [Observation(**observation) for observation in observations[:rounds]]
        for name, observations in result["observations"].items()
    }
    return evidence.mean_standing(history)


def mean_alignment(result: Mapping[str, Any], owners: Iterable[str]) -> float | None:
    """Mean descent alignment over the rounds of ``owners`` it was measured in (``None``: never).

    Owners are taken in sorted order: the sum then does not depend on the order
    of a set, so a rerun gives the same number to the last bit.
    """
    observations = result.get("observations", {})
    alignments = [
        o["alignment"]
        for name in sorted(owners)
        for o in observations.get(name, [])
        if o["alignment"] is not None
    ]
    return float(np.mean(alignments)) if alignments else None


def curated_metrics(result: Mapping[str, Any]) -> dict[str, float | None]:
    """Detection and exclusion numbers of one curated run."""
    corrupted = set(result["corruption"])
    benign = [name for name in result["owners"] if name not in corrupted]
    excluded = set(result["excluded"])
    shares = result["reward_shares"]
    return {
        "alignment_benign": mean_alignment(result, benign),
        "alignment_bad": mean_alignment(result, corrupted),
        "auroc_early": detection_auroc(mean_standing(result, EARLY_ROUND), corrupted),
        "auroc": detection_auroc(mean_standing(result), corrupted),
        "auroc_values": detection_auroc(cumulative_credit(result), corrupted),
        "benign_excluded": len(excluded & set(benign)) / len(benign) if benign else None,
        "bad_excluded": len(excluded & corrupted) / len(corrupted) if corrupted else None,
        "bad_reward_share_max": max((shares.get(n, 0.0) for n in corrupted), default=None),
    }


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """Mean of the values that exist (``None`` when none does)."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(present)) if present else None


def cell_record(
    cell: Cell, seeds: Sequence[int], results: Mapping[tuple[str, int], dict[str, Any]]
) -> dict[str, Any]:
    """Mean over seeds of every metric of ``cell``.

    Accuracy gaps are each baseline's accuracy minus a curated arm's, under that
    arm's :data:`GAP_KEYS` key (``gap``: the ``exclude`` policy's, ``gap_weighted``:
    the ``weight`` policy's), for each curated arm that ran in the cell.
    """
    record: dict[str, Any] = {"cell": cell.name, **vars(cell), "seeds": list(seeds)}
    curated_seeds = [s for s in seeds if ("curated", s) in results]
    per_seed = [curated_metrics(results[("curated", s)]) for s in curated_seeds]
    for key in (
        "auroc_early",
        "auroc",
        "auroc_values",
        "benign_excluded",
        "bad_excluded",
        "alignment_benign",
        "alignment_bad",
    ):
        record[key] = mean_or_none(m[key] for m in per_seed)
    record["auroc_by_seed"] = {
        str(seed): m["auroc"]
        for seed, m in zip(curated_seeds, per_seed, strict=True)
        if m["auroc"] is not None
    }
    if cell.corruption.startswith("free_rider"):
        record["free_rider_share_max"] = max(
            (m["bad_reward_share_max"] or 0.0 for m in per_seed), default=None
        )
    per_seed_accuracy = {
        arm: [results[(arm, s)]["final_accuracy"] for s in seeds]
        for arm in ARMS
        if all((arm, s) in results for s in seeds)
    }
    accuracy = {arm: mean_or_none(values) for arm, values in per_seed_accuracy.items()}
    record["accuracy"] = accuracy
    # How far one seed's final model is from another's: the noise under each mean.
    record["accuracy_seed_range"] = {
        arm: max(present) - min(present)
        for arm, values in per_seed_accuracy.items()
        if (present := [v for v in values if v is not None])
    }
    for curated_arm, key in GAP_KEYS.items():
        mine = accuracy.get(curated_arm)
        if mine is not None:
            record[key] = {
                arm: value - mine
                for arm, value in accuracy.items()
                if arm in BASELINES and value is not None
            }
    return record


# ------------------------------------------------------------------- acceptance


def acceptance(
    records: Sequence[Mapping[str, Any]], checks: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Each target with its measured number and PASS / MISS (``n/a``: not measured)."""

    def auroc_line(
        what: str, keep: Callable[[Mapping[str, Any]], bool], target: float
    ) -> dict[str, Any]:
        kept = [r for r in records if keep(r)]
        line = _line(what, mean_or_none(r["auroc"] for r in kept), ">=", target)
        return line | {"seed_spread": seed_spread(kept)}

    lines = [
        auroc_line(
            "mean detection AUROC, cells without DP",
            lambda r: r["privacy"] == "none",
            TARGET_AUROC_PLAIN,
        ),
        auroc_line(
            "mean detection AUROC, DP cells (ε = 8)",
            lambda r: r["privacy"] == "dp_sgd",
            TARGET_AUROC_DP,
        ),
        auroc_line(
            "mean detection AUROC, 10 %-noise dirichlet cells without DP",
            lambda r: (
                r["corruption"] == "label_noise_10"
                and r["partition"] == "dirichlet"
                and r["privacy"] == "none"
            ),
            TARGET_AUROC_NOISY_DIRICHLET,
        ),
        *_accuracy_lines(records),
        _line(
            "false exclusion of benign owners, synthetic(1,1) (mean over cells)",
            mean_or_none(r["benign_excluded"] for r in records if r["dataset"] == "synthetic"),
            "<=",
            TARGET_FALSE_EXCLUSION_SYNTHETIC,
        ),
        _line(
            "replay free rider's reward share (largest over cells and seeds)",
            max(
                (
                    r["free_rider_share_max"]
                    for r in records
                    if r.get("free_rider_share_max") is not None
                ),
                default=None,
            ),
            "<=",
            TARGET_FREE_RIDER_SHARE,
        ),
    ]
    return lines + list(checks.get("lines", []))


def seed_spread(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """How a mean AUROC over ``records`` varies from seed to seed.

    Each seed replicates the whole grid independently, so the grid means of the
    single seeds are independent draws of the measured mean: their spread, and
    a two-sided 95 % Student-t interval for the mean over seeds (clipped to
    [0, 1], where an AUROC lives), say how much of a target's margin (or miss)
    is seed noise. ``None`` with fewer than two seeds.
    """
    by_seed: dict[str, list[float]] = {}
    for record in records:
        for seed, value in record.get("auroc_by_seed", {}).items():
            by_seed.setdefault(seed, []).append(value)
    if len(by_seed) < 2:
        return None
    ordered = sorted(by_seed.items(), key=lambda item: int(item[0]))
    means = {seed: float(np.mean(values)) for seed, values in ordered}
    grid_means = list(means.values())
    centre, error = float(np.mean(grid_means)), float(stats.sem(grid_means))
    # Equal seed means have no spread (scipy's interval would be NaN at scale 0).
    interval = (
        stats.t.interval(SEED_INTERVAL_CONFIDENCE, df=len(means) - 1, loc=centre, scale=error)
        if error > 0.0
        else (centre, centre)
    )
    return {"grid_mean_by_seed": means, "interval": np.clip(interval, 0.0, 1.0).tolist()}


def _accuracy_lines(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """40 % bad owners on digits / breast cancer: near clean-only, above every robust strategy.

    One pair of lines per policy: ``exclude`` (the curated arm) and ``weight``
    (the weighted arm); ``n/a`` where that arm did not run.
    """
    target = [r for r in records if accuracy_target_cell(cell_of(r))]
    lines = []
    for arm, key in GAP_KEYS.items():
        gaps = [r[key] for r in target if r.get(key)]
        policy = next(o for o in CURATED_ARMS[arm] if o.startswith("curator.policy="))
        near_clean = [
            g["clean"] <= TARGET_ACCURACY_GAP + ACCURACY_TIE for g in gaps if "clean" in g
        ]
        robust_lead = [_robust_lead(g) for g in gaps if set(ROBUST) <= set(g)]
        worst_clean = max((g["clean"] for g in gaps if "clean" in g), default=None)
        lines += [
            _line(
                f"40 % bad, digits + breast cancer, {policy}: cells within 1 point of "
                f"clean-only (worst gap {_fmt(worst_clean)})",
                _fraction(near_clean),
                ">=",
                1.0,
            ),
            _line(
                f"40 % bad, digits + breast cancer, {policy}: cells above every robust strategy"
                f"{_robust_shortfall(robust_lead)}",
                _fraction([lead < 0.0 for lead in robust_lead]),
                ">=",
                1.0,
            ),
        ]
    return lines


def _robust_lead(gap: Mapping[str, float]) -> float:
    """How far the best robust strategy is ahead of the curated arm (0 for a tie)."""
    lead = max(gap[arm] for arm in ROBUST)
    return 0.0 if abs(lead) <= ACCURACY_TIE else lead


def _robust_shortfall(robust_lead: Sequence[float]) -> str:
    """Of the cells not above every robust strategy: how many tie, how far the rest trail."""
    behind = [lead for lead in robust_lead if lead > 0.0]
    tied = sum(lead == 0.0 for lead in robust_lead)
    if not behind and not tied:
        return ""
    trail = f", behind in {len(behind)} by at most {_fmt(max(behind))}" if behind else ""
    return f" (tied in {tied}{trail})"


def _fraction(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _line(what: str, measured: float | None, op: str, target: float) -> dict[str, Any]:
    if measured is None:
        verdict = "n/a"
    else:
        verdict = "PASS" if (measured >= target if op == ">=" else measured <= target) else "MISS"
    return {"target": what, "measured": measured, "goal": f"{op} {target:g}", "verdict": verdict}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 10**-digits or value == 0 else f"{value:.1e}"
    return str(value)


# ------------------------------------------------------- estimators, fairness, crypto


def estimator_check(seeds: Sequence[int], quick: bool) -> dict[str, Any]:
    """``simulations.bench_valuation`` over ``seeds``: estimators against exact Shapley."""
    scenarios = ["label_flip"] if quick else list(bench_valuation.SCENARIOS)
    rounds = 3 if quick else 10
    records: list[dict[str, Any]] = []
    for seed in seeds:
        records += bench_valuation.run(scenarios, rounds, seed, echo=False)
    summaries = bench_valuation.summarise(records)
    return {
        "scenarios": scenarios,
        "rounds": rounds,
        "seeds": list(seeds),
        "summaries": summaries,
        "verdict": bench_valuation.gtg_verdict(summaries),
    }


def twin_check(seed: int, rounds: int) -> dict[str, Any]:
    """Two owners holding identical data: their cumulative first-order values.

    Owner 1 is given owner 0's training data (its own shuffling seed still
    differs); every owner trains from the common global model for ``rounds``
    FedAvg rounds (``bench_valuation.simulate_rounds``), and the curator under
    test values each round. ``score_gap`` is the same gap for the sums of the
    twins' first-order scores: how far apart their updates themselves were,
    before the Shapley value of the FedAvg mean spreads them further.
    """
    overrides = [*COMMON, "dataset=digits", "partition=iid"]
    config = compose_config([*overrides, *CURATOR, f"seed={seed}"])
    federation = _with_twin(build_federation(config))
    template = build_model(config.model, federation.spec, config.seed)
    evaluator = ValidationEvaluator(template, federation.validation)
    curator = Curator(config.curator, template, federation.validation, config.train, config.seed)
    for simulated in bench_valuation.simulate_rounds(config, evaluator, rounds, federation):
        round_updates = simulated.updates
        curator.assess(
            simulated.round,
            round_updates.updates,
            round_updates.weights,
            round_updates.global_weights,
        )
    twins = (owner_name(0), owner_name(1))
    cumulative = curator.ledger.cumulative()
    values = [cumulative[name] for name in twins]
    scores = [sum(r.owners[name].score or 0.0 for r in curator.ledger.rounds) for name in twins]
    return {
        "seed": seed,
        "rounds": rounds,
        "values": values,
        "relative_gap": _relative_gap(*values),
        "score_gap": _relative_gap(*scores),
    }


def _relative_gap(first: float, second: float) -> float:
    return abs(first - second) / max(abs(first), abs(second))


def _with_twin(federation: Federation) -> Federation:
    """``federation`` with owner 1 holding owner 0's training data and no corruption."""
    owners = list(federation.clean_owners)
    owners[1] = OwnerData(1, owners[0].train, owners[1].test)
    return replace(federation, owners=tuple(owners), corruption={})


def encrypted_first_order_gap(run_root: Path, extra: Sequence[str] = ()) -> dict[str, Any]:
    """How far the values of a CKKS run are from those of the same run in plaintext.

    Both runs use ``curator=first_order`` and the same seed; the encrypted one
    scores owners on their ciphertexts through the curator node. The difference
    of each round is relative to that round's largest value (a value near 0
    has no relative precision of its own); the largest over rounds is reported.
    """
    base = ["num_clients=4", "num_rounds=3", "train.local_epochs=1", "curator=first_order"]
    values: dict[str, np.ndarray] = {}
    for crypto in ("none", "ckks"):
        overrides = [*base, *extra, f"crypto={crypto}"]
        run_dir = run_root / crypto
        run_simulation(compose_config(overrides), overrides, run_dir)
        ledger = json.loads((run_dir / "ledger.json").read_text())
        values[crypto] = np.array(
            [
                [float(owner["value"]) for _, owner in sorted(entry["owners"].items())]
                for entry in ledger["rounds"]
            ]
        )
    plain, encrypted = values["none"], values["ckks"]
    per_round = np.abs(encrypted - plain).max(axis=1) / np.abs(plain).max(axis=1)
    return {"values_compared": int(plain.size), "max_relative_difference": float(per_round.max())}


def encrypted_cells(quick: bool) -> list[Cell]:
    """Data corruptions of 20 % of the owners on digits and breast cancer, with and without DP."""
    cells = [
        c
        for c in full_grid()
        if c.dataset in ("digits", "breast_cancer")
        and c.corruption in ENCRYPTED_CORRUPTIONS
        and c.fraction == min(FRACTIONS)
    ]
    return cells[:1] if quick else cells


def encrypted_detection(
    seeds: Sequence[int], rounds: int, cache: RunCache, scratch: Path, quick: bool
) -> dict[str, Any]:
    """Detection under ``crypto=ckks``: the curator's evidence against credit alone.

    Each run is the curated arm with encrypted updates, where the curator's
    evidence is the credit plus the sharpening projection the server computes
    on the ciphertexts. Its AUROC (mean standing) is set against the AUROC of
    the same runs' cumulative credit: what the encrypted path had before.
    """
    rows: list[dict[str, Any]] = []
    for cell in encrypted_cells(quick):
        metrics = []
        for seed in seeds:
            spec = arm_spec(cell, "curated", seed, rounds)
            result = cached_run(RunSpec((*spec.overrides, "crypto=ckks")), cache, scratch)
            metrics.append(curated_metrics(result))
        rows.append(
            {
                "cell": cell.name,
                "privacy": cell.privacy,
                "auroc": mean_or_none(m["auroc"] for m in metrics),
                "auroc_credit": mean_or_none(m["auroc_values"] for m in metrics),
            }
        )
    return {
        "cells": rows,
        "summary": {
            privacy: {
                key: mean_or_none(r[key] for r in rows if r["privacy"] == privacy)
                for key in ("auroc", "auroc_credit")
            }
            for privacy in PRIVACY
        },
    }


def _gtg_line(verdict: Mapping[str, Any], utility: str) -> dict[str, Any]:
    """GTG-Shapley's target: Spearman with exact Shapley at <= 25 % of its evaluations."""
    measured = verdict.get(utility) or {}
    fraction = measured.get("evaluation_fraction_mean")
    line = _line(
        f"gtg_shapley Spearman with exact Shapley, {utility} utility, using "
        f"{_fmt(fraction)} of exact's evaluations (<= {bench_valuation.GTG_TARGET_FRACTION:g})",
        measured.get("spearman_mean"),
        ">=",
        bench_valuation.GTG_TARGET_SPEARMAN,
    )
    if fraction is not None and fraction > bench_valuation.GTG_TARGET_FRACTION:
        line["verdict"] = "MISS"
    return line


def extra_checks(
    seeds: Sequence[int], rounds: int, quick: bool, cache: RunCache, scratch: Path
) -> dict[str, Any]:
    """The estimator, fairness and encryption checks, with their acceptance lines."""
    estimators = estimator_check([0] if quick else seeds, quick)
    twin_seeds = sorted({*seeds, *([] if quick else TWIN_SPREAD_SEEDS)})
    by_seed = {seed: twin_check(seed, 3 if quick else NUM_ROUNDS) for seed in twin_seeds}
    twins = [by_seed[seed] for seed in seeds]
    spread = None if quick else twin_spread([by_seed[seed] for seed in TWIN_SPREAD_SEEDS])
    with tempfile.TemporaryDirectory() as directory:
        encrypted = encrypted_first_order_gap(Path(directory))
    encrypted["detection"] = encrypted_detection(seeds, rounds, cache, scratch, quick)
    lines = [
        *(_gtg_line(estimators["verdict"], utility) for utility in ("accuracy", "loss")),
        _line(
            "first_order under CKKS vs plaintext: largest difference of values, relative "
            "to the round's largest",
            encrypted["max_relative_difference"],
            "<=",
            TARGET_ENCRYPTED_RELATIVE,
        ),
        _line(
            "owners holding identical data: largest relative gap of their values",
            max(t["relative_gap"] for t in twins),
            "<=",
            TARGET_TWIN_GAP,
        ),
    ]
    return {
        "estimators": estimators,
        "twins": twins,
        "twin_spread": spread,
        "encrypted": encrypted,
        "lines": lines,
    }


def twin_spread(twins: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How the twins' value gap spreads over seeds (it is SGD noise: one seed says little)."""
    gaps = [t["relative_gap"] for t in twins]
    return {
        "seeds": [t["seed"] for t in twins],
        "median_gap": float(np.median(gaps)),
        "max_gap": max(gaps),
        "seeds_above_target": sum(gap > TARGET_TWIN_GAP for gap in gaps),
    }


# ------------------------------------------------------------------------ driver


def select_cells(cells: Sequence[Cell], patterns: Sequence[str] | None) -> list[Cell]:
    """Cells whose name matches any of the ``fnmatch`` ``patterns`` (all when none)."""
    if not patterns:
        return list(cells)
    return [c for c in cells if any(fnmatch.fnmatch(c.name, p) for p in patterns)]


def cached_run(spec: RunSpec, cache: RunCache, scratch: Path) -> dict[str, Any]:
    """The result of ``spec``, from the cache or freshly run (and then cached)."""
    result = cache.get(spec)
    if result is None:
        result = execute(spec, scratch)
        cache.put(spec, result)
    return result


def run_cell(
    cell: Cell,
    *,
    arms: Sequence[str],
    seeds: Sequence[int],
    rounds: int,
    cache: RunCache,
    scratch: Path,
    curator_overrides: Sequence[str] = (),
) -> dict[tuple[str, int], dict[str, Any]]:
    """Every (arm, seed) run of ``cell``, from the cache or freshly run."""
    return {
        (arm, seed): cached_run(
            arm_spec(cell, arm, seed, rounds, curator_overrides), cache, scratch
        )
        for arm in arms
        for seed in seeds
    }


def curator_override(text: str) -> str:
    """``--curator-override`` argument: a Hydra override of a ``curator.`` setting."""
    key, equals, _ = text.partition("=")
    if not key.startswith("curator.") or not equals:
        raise argparse.ArgumentTypeError(f"{text!r} is not curator.KEY=VALUE")
    return text


def render_markdown(report: Mapping[str, Any]) -> str:
    """``docs/curator_benchmark.md``: the cell table, the checks, the acceptance lines."""
    out = [
        "# Curator benchmark",
        "",
        f"Written by `{report['command']}`; raw "
        "numbers in the JSON file beside this one. The simulated runs took "
        f"{report['run_seconds'] / 3600:.1f} h of wall time on this machine (one process, "
        "shared cores), cached between invocations.",
        "",
        *_scope_note(report),
        "Setup:",
        "",
        f"- every run is the product's simulation (in-process backend): {NUM_CLIENTS} owners, "
        f"{report['rounds']} rounds, all owners train every round, no owner-side evaluation; "
        f"seeds {report['seeds']}; DP cells: DP-SGD at each owner, ε = 8 over the run;",
        f"- curator under test: `{' '.join(CURATOR)}` (first-order values cost one gradient "
        "pass per round and also work on encrypted updates; plaintext runs add data-quality "
        "signals and descent alignment to the policy's evidence);",
        "- clean: FedAvg with the corrupted owners offline (same federation and seed); "
        "fedavg: no curator; krum / multikrum / fedmedian / fedtrimmedavg: Flower's "
        "strategies told the true number of bad owners (their best case);",
        "- AUROC: corrupted owners (positives) against benign ones, lower = more suspect, by "
        f"the exclude policy's evidence, the owners' mean standing (after round {EARLY_ROUND} "
        "and at the end), and by cumulative credit alone (AUROC values);",
        "- benign / bad excl: share of benign / corrupted owners left out at the end;",
        f"- acc weight policy: the same curator with `{WEIGHTED[-1]}` (weights from mean "
        "credit, floored and capped; no owner barred), run where the accuracy target is "
        "measured;",
        "- Δarm: that baseline's final test accuracy minus the curated run's (negative = the "
        "curator is ahead); within 1 point of clean-only means Δclean <= 0.01.",
        "",
        "## Acceptance",
        "",
        "| target | measured | goal | verdict |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {a['target']} | {_fmt(a['measured'])} | {a['goal']} | {a['verdict']} |"
        for a in report["acceptance"]
    ]
    out += seed_spread_markdown(report["acceptance"])
    out += [f"\n![{name}]({name})" for name in report.get("plots", [])]
    out += exclusion_markdown(report["cells"])
    out += alignment_markdown(report["cells"])
    out += ["", "## Cells (mean over seeds)", ""]
    gap_arms = list(BASELINES)
    header = [
        "cell",
        f"AUROC@{EARLY_ROUND}",
        "AUROC",
        "AUROC values",
        "benign excl",
        "bad excl",
        "acc curated",
        "acc weight policy",
    ]
    out += ["| " + " | ".join(header + [f"Δ{arm}" for arm in gap_arms]) + " |"]
    out += ["|" + "---|" * (len(header) + len(gap_arms))]
    for r in report["cells"]:
        row = [
            r["cell"],
            _fmt(r["auroc_early"]),
            _fmt(r["auroc"]),
            _fmt(r["auroc_values"]),
            _fmt(r["benign_excluded"], 2),
            _fmt(r["bad_excluded"], 2),
            _fmt(r["accuracy"].get("curated")),
            _fmt(r["accuracy"].get("weighted")),
        ]
        row += [_fmt(r.get("gap", {}).get(arm)) for arm in gap_arms]
        out.append("| " + " | ".join(row) + " |")
    out += _estimator_markdown(report["checks"])
    out += _encrypted_detection_markdown(report["checks"], report["cells"])
    return "\n".join(out) + "\n"


def seed_spread_markdown(lines: Sequence[Mapping[str, Any]]) -> list[str]:
    """The AUROC targets seed by seed (see :func:`seed_spread`); nothing with one seed."""
    spread = [line for line in lines if line.get("seed_spread")]
    if not spread:
        return []
    out = [
        "",
        "Seed to seed: each seed replicates the grid independently; its grid mean, and a "
        f"{SEED_INTERVAL_CONFIDENCE * 100:g} % Student-t interval for the mean over seeds "
        "(clipped to [0, 1]):",
        "",
        "| target | grid mean by seed | interval |",
        "|---|---|---|",
    ]
    for line in spread:
        by_seed = line["seed_spread"]["grid_mean_by_seed"]
        seeds = ", ".join(f"{seed}: {_fmt(mean)}" for seed, mean in by_seed.items())
        low, high = line["seed_spread"]["interval"]
        out.append(f"| {line['target']} | {seeds} | {_fmt(low)} to {_fmt(high)} |")
    return out


def _scope_note(report: Mapping[str, Any]) -> list[str]:
    """A warning line when the report covers only part of the grid."""
    grid = len(full_grid())
    if report["quick"] or len(report["cells"]) >= grid:
        return []
    return [
        f"Partial grid: {len(report['cells'])} of its {grid} cells; every acceptance line "
        "below is over these cells only.",
        "",
    ]


def exclusion_markdown(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Who the exclude policy left out, by dataset and privacy (mean over cells)."""
    out = [
        "",
        "## Exclusions (mean over cells)",
        "",
        "| dataset | privacy | benign excl | bad excl (free riders and sign flips) | "
        "bad excl (data corruptions) |",
        "|---|---|---|---|---|",
    ]
    for dataset in DATASETS:
        for privacy in PRIVACY:
            cells = [r for r in records if (r["dataset"], r["privacy"]) == (dataset, privacy)]
            attacks = [r for r in cells if r["corruption"] in ("free_rider_replay", "sign_flip")]
            corrupted = [r for r in cells if r not in attacks]
            if not cells:
                continue
            out.append(
                f"| {dataset} | {privacy} | "
                f"{_fmt(mean_or_none(r['benign_excluded'] for r in cells))} | "
                f"{_fmt(mean_or_none(r['bad_excluded'] for r in attacks))} | "
                f"{_fmt(mean_or_none(r['bad_excluded'] for r in corrupted))} |"
            )
    return out


def alignment_markdown(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Descent alignment of honest and sign-flipped updates (mean over the sign-flip cells)."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for r in records:
        if r["corruption"] == "sign_flip" and r.get("alignment_bad") is not None:
            groups.setdefault((r["dataset"], r["partition"], r["privacy"]), []).append(r)
    if not groups:
        return []
    out = [
        "",
        "## Descent alignment in the sign-flip cells (mean over cells)",
        "",
        "`cos(Δ_i, -∇L_val)` over the owner-rounds it was measured in. DP noise pulls every "
        "update's alignment towards 0, but not its sign: the `exclude` policy suspends an "
        "owner whose record hurts and whose alignment is below 0 by a one-sided t-test.",
        "",
        "| dataset | partition | privacy | honest owners | sign flips |",
        "|---|---|---|---|---|",
    ]
    for (dataset, partition, privacy), cells in groups.items():
        out.append(
            f"| {dataset} | {partition} | {privacy} | "
            f"{_fmt(mean_or_none(r['alignment_benign'] for r in cells))} | "
            f"{_fmt(mean_or_none(r['alignment_bad'] for r in cells))} |"
        )
    return out


def _estimator_markdown(checks: Mapping[str, Any]) -> list[str]:
    """Estimators against exact Shapley, the twins and CKKS (nothing when not checked)."""
    if "estimators" not in checks:
        return []
    estimators = checks["estimators"]
    out = [
        "",
        "## Estimators vs exact Shapley (n = 10, `simulations/bench_valuation.py`)",
        "",
        f"Scenarios {estimators['scenarios']}, {estimators['rounds']} rounds each, seeds "
        f"{estimators['seeds']}; exact Shapley evaluates 1024 coalition models per round.",
        "",
        "| utility | method | Spearman | Pearson | evaluations | fraction of exact |",
        "|---|---|---|---|---|---|",
    ]
    for s in estimators["summaries"]:
        out.append(
            f"| {s['utility']} | {s['method']} | {_fmt(s['spearman_mean'])} | "
            f"{_fmt(s['pearson_mean'])} | {_fmt(s['evaluations_mean'], 1)} | "
            f"{_fmt(s['evaluation_fraction_mean'])} |"
        )
    twins = checks["twins"]
    encrypted = checks["encrypted"]
    out += [
        "",
        "## Fairness and encryption",
        "",
        "Identical data (owner 1 holds owner 0's training set, IID digits): "
        + "; ".join(
            f"seed {t['seed']}: values {_fmt(t['values'][0])} and {_fmt(t['values'][1])}, "
            f"gap {_fmt(t['relative_gap'])} (first-order scores: gap {_fmt(t['score_gap'])})"
            for t in twins
        )
        + ".",
        *_twin_spread_markdown(checks.get("twin_spread")),
        "",
        f"first_order under CKKS vs plaintext: {encrypted['values_compared']} values, largest "
        f"relative difference {encrypted['max_relative_difference']:.1e}.",
    ]
    return out


def _twin_spread_markdown(spread: Mapping[str, Any] | None) -> list[str]:
    if not spread:
        return []
    seeds = spread["seeds"]
    return [
        "",
        f"Over seeds {seeds[0]}-{seeds[-1]} the twins' gap has median "
        f"{_fmt(spread['median_gap'])} and maximum {_fmt(spread['max_gap'])}; "
        f"seeds above {TARGET_TWIN_GAP:g}: {spread['seeds_above_target']} of {len(seeds)}.",
    ]


def _encrypted_detection_markdown(
    checks: Mapping[str, Any], records: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Encrypted evidence, credit alone, and the plaintext curator on the same cells."""
    detection = checks.get("encrypted", {}).get("detection")
    if not detection:
        return []
    plaintext = {r["cell"]: r["auroc"] for r in records}
    out = [
        "",
        "## Detection with encrypted updates",
        "",
        "`crypto=ckks`, 20 % of the owners with data corruptions, digits and breast "
        "cancer. AUROC of the curator's evidence (credit and the sharpening projection "
        "computed on the ciphertexts), of credit alone in the same runs, and of the "
        "plaintext curator (credit, three data signals, descent alignment) in the grid.",
        "",
        "| cell | AUROC encrypted | AUROC credit alone | AUROC plaintext |",
        "|---|---|---|---|",
    ]
    for r in detection["cells"]:
        out.append(
            f"| {r['cell']} | {_fmt(r['auroc'])} | {_fmt(r['auroc_credit'])} | "
            f"{_fmt(plaintext.get(r['cell']))} |"
        )
    for privacy, m in detection["summary"].items():
        matching = [plaintext.get(r["cell"]) for r in detection["cells"] if r["privacy"] == privacy]
        out.append(
            f"| mean, privacy {privacy} | {_fmt(m['auroc'])} | {_fmt(m['auroc_credit'])} | "
            f"{_fmt(mean_or_none(matching))} |"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="fedcurate bench curator",
        description=__doc__.split("\n\n")[0],
        epilog="example: fedcurate bench curator --quick",
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized smoke grid (~2 min)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2")
    parser.add_argument("--cells", nargs="+", default=None, help="fnmatch patterns on cell names")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=None, help="default: all")
    parser.add_argument(
        "--baselines",
        choices=("targets", "all"),
        default="targets",
        help="where the baselines run (see the module doc)",
    )
    parser.add_argument("--rounds", type=int, default=None, help=f"default {NUM_ROUNDS}")
    parser.add_argument("--cache", type=Path, default=PROJECT_DIR / "outputs/bench/curator")
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="where the JSON and markdown go (default docs/, written only when the checks ran)",
    )
    parser.add_argument("--no-checks", action="store_true", help="skip estimator/fairness/crypto")
    parser.add_argument(
        "--curator-override",
        type=curator_override,
        nargs="+",
        default=[],
        metavar="curator.KEY=VALUE",
        help="curator settings of the curated arms, to compare one against the default",
    )
    args = parser.parse_args(argv)
    if args.curator_override and not args.no_checks:
        parser.error("--curator-override changes the grid's curated arms only: add --no-checks")
    torch.set_num_threads(1)
    started = time.perf_counter()
    seeds = args.seeds or ([0] if args.quick else list(SEEDS))
    rounds = args.rounds or (5 if args.quick else NUM_ROUNDS)
    cells = select_cells(quick_grid() if args.quick else full_grid(), args.cells)
    cache = RunCache(args.cache, curation_fingerprint())
    args.cache.mkdir(parents=True, exist_ok=True)
    records = []
    # Run -> its wall time; the clean-only run is shared by cells, counted once.
    run_seconds: dict[str, float] = {}
    for cell in cells:
        arms = [a for a in arms_of(cell, args.baselines) if not args.arms or a in args.arms]
        results = run_cell(
            cell,
            arms=arms,
            seeds=seeds,
            rounds=rounds,
            cache=cache,
            scratch=args.cache,
            curator_overrides=args.curator_override,
        )
        for result in results.values():
            key = json.dumps([result["overrides"], result["offline"]])
            run_seconds[key] = result["wall_seconds"]
        record = cell_record(cell, seeds, results)
        print(json.dumps(record), flush=True)
        records.append(record)
    checks = (
        {"lines": []}
        if args.no_checks
        else extra_checks(seeds, rounds, args.quick, cache, args.cache)
    )
    lines = acceptance(records, checks)
    for line in lines:
        print(json.dumps(line), flush=True)
    report = {
        "command": shlex.join(
            ["fedcurate", "bench", "curator", *(sys.argv[1:] if argv is None else argv)]
        ),
        "quick": args.quick,
        "seeds": seeds,
        "rounds": rounds,
        "curator": [*CURATOR, *args.curator_override],
        "wall_seconds": time.perf_counter() - started,
        "run_seconds": sum(run_seconds.values()),
        "acceptance": lines,
        "cells": records,
        "checks": {k: v for k, v in checks.items() if k != "lines"},
    }
    if args.docs is not None or not args.no_checks:
        docs = args.docs or PROJECT_DIR / "docs"
        stem = "curator_benchmark_quick" if args.quick else "curator_benchmark"
        report["plots"] = [p.name for p in curator_plots.draw(records, ROBUST, docs, stem)]
        atomic_write_json(docs / f"{stem}.json", report)
        atomic_write_text(docs / f"{stem}.md", render_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
