"""Label proposals for a site's unlabelled rows, with calibrated confidences.

The global model labels each unlabelled row; its logits are divided by a
temperature fitted on the site's own labelled rows
(:mod:`fedcurate.quality.calibration`), so a proposal's confidence is an honest
estimate of how often such proposals are right. A reviewer reads the CSV:
one line per unlabelled row with the proposal, its confidence and the next
most likely labels.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedcurate.data.sites import UNLABELLED
from fedcurate.evaluation import softmax
from fedcurate.io import atomic_write_text
from fedcurate.quality.calibration import TemperatureCalibration, calibrate_temperature

#: Alternatives listed after the proposed label.
NUM_ALTERNATIVES = 3


@dataclass(frozen=True)
class LabelProposal:
    """The proposed label of one unlabelled row and the runners-up."""

    row: int
    label: int
    confidence: float
    alternatives: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Annotation:
    """Proposals for every unlabelled row and the calibration behind their confidences."""

    proposals: tuple[LabelProposal, ...]
    calibration: TemperatureCalibration

    @property
    def expected_accuracy(self) -> float | None:
        """Mean calibrated confidence: the share of proposals expected to be right."""
        if not self.proposals:
            return None
        return float(np.mean([p.confidence for p in self.proposals]))


def propose_labels(probabilities: np.ndarray, rows: np.ndarray) -> tuple[LabelProposal, ...]:
    """The most probable label of each row and up to ``NUM_ALTERNATIVES`` runners-up."""
    ranked = np.argsort(-probabilities, axis=1, kind="stable")
    proposals = []
    for row, order, p in zip(rows, ranked, probabilities, strict=True):
        alternatives = tuple((int(k), float(p[k])) for k in order[1 : 1 + NUM_ALTERNATIVES])
        proposals.append(LabelProposal(int(row), int(order[0]), float(p[order[0]]), alternatives))
    return tuple(proposals)


def annotate(
    logits: np.ndarray, labels: np.ndarray, num_folds: int = 5, seed: int = 0
) -> Annotation:
    """Propose labels for the rows labelled ``UNLABELLED``, calibrated on the others.

    Parameters
    ----------
    logits : np.ndarray
        ``(n, C)`` the global model's logits for every row of the site file.
    labels : np.ndarray
        ``(n,)`` given labels, ``UNLABELLED`` (-1) where there is none.
    num_folds : int
        Folds of the cross-fitted calibration check.
    seed : int
        Seeds the folds.
    """
    labelled = labels != UNLABELLED
    calibration = calibrate_temperature(logits[labelled], labels[labelled], num_folds, seed)
    unlabelled_rows = np.flatnonzero(~labelled)
    probabilities = softmax(logits[unlabelled_rows], calibration.temperature)
    return Annotation(propose_labels(probabilities, unlabelled_rows), calibration)


def write_proposals_csv(path: Path, proposals: tuple[LabelProposal, ...]) -> Path:
    """One line per row: ``row, proposed_label, confidence, alternative_k, confidence_k...``.

    ``row`` is the 0-based index of the data row in the site file.
    """
    header = ["row", "proposed_label", "confidence"]
    for k in range(1, NUM_ALTERNATIVES + 1):
        header += [f"alternative_{k}", f"confidence_{k}"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for proposal in proposals:
        cells: list[object] = [proposal.row, proposal.label, f"{proposal.confidence:.4f}"]
        for label, confidence in proposal.alternatives:
            cells += [label, f"{confidence:.4f}"]
        cells += [""] * (len(header) - len(cells))
        writer.writerow(cells)
    return atomic_write_text(path, out.getvalue())
