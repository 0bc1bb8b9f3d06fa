"""Curation: contribution valuation, policies and the contribution ledger.

The ServerApp talks to :class:`Curator` only (see :mod:`fedcurate.curation.curator`);
the pieces are usable on their own:

* :mod:`~fedcurate.curation.games`: coalition games over named owners,
  coalition models of a round (cached, counted evaluations);
* estimators: :mod:`~fedcurate.curation.exact` (exact Shapley / Banzhaf),
  :mod:`~fedcurate.curation.gtg` (GTG-Shapley), :mod:`~fedcurate.curation.loo`,
  :mod:`~fedcurate.curation.banzhaf` (MSR), :mod:`~fedcurate.curation.first_order`,
  :mod:`~fedcurate.curation.fltrust`;
* :mod:`~fedcurate.curation.methods`: the ``curator.name`` registry;
* :mod:`~fedcurate.curation.free_riding`: updates made of public information
  (zero, replays of recent global changes) earn no positive credit;
* :mod:`~fedcurate.curation.quality`: data-quality signals of an update (label
  quality, sharpening, breadth), plaintext only;
* :mod:`~fedcurate.curation.evidence`: each owner's per-round standing, the
  evidence the ``exclude`` policy weighs;
* :mod:`~fedcurate.curation.policies`: the ``curator.policy`` registry;
* :mod:`~fedcurate.curation.ledger`: per-round records, credit, reward shares.
"""

from fedcurate.curation.curator import Curator, Decision
from fedcurate.curation.evaluator import UTILITIES, ValidationEvaluator, ValidationScore
from fedcurate.curation.games import CoalitionGame, CoalitionModels
from fedcurate.curation.ledger import ContributionLedger, relative_values
from fedcurate.curation.methods import (
    SCALAR_METHODS,
    VALUATION_METHODS,
    Valuation,
    ValuationContext,
)
from fedcurate.curation.policies import POLICIES
from fedcurate.curation.rounds import RoundUpdates

__all__ = [
    "POLICIES",
    "SCALAR_METHODS",
    "UTILITIES",
    "VALUATION_METHODS",
    "CoalitionGame",
    "CoalitionModels",
    "ContributionLedger",
    "Curator",
    "Decision",
    "RoundUpdates",
    "ValidationEvaluator",
    "ValidationScore",
    "Valuation",
    "ValuationContext",
    "relative_values",
]
