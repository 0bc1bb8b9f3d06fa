"""What the curator's bookkeeping costs per round as a run grows long.

Every round the curator extends its evidence log by the round's standings,
lets the policy decide from the whole log, and the server writes the ledger's
report to ``ledger.json``. This benchmark fills a ledger with ``rounds`` rounds
of ``owners`` owners (random values, data-quality signals and alignments, as
the first-order curator records them) and times, at its end, what one more
round costs:

* ``extend_s``: adding the round's standings to the log (what the curator does);
* ``rebuild_s``: recomputing every round's standings from the observations
  (what each round cost before the log kept them), side by side;
* ``decide_s``: the ``exclude`` policy's decision on the extended log;
* ``report_s``: the ledger's report as JSON text (``ledger.json``), each round
  serialised once and kept, as the server writes it every round.

Usage: ``fedcurate bench ledger [--quick]``; one JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from fedcurate.config import CuratorConfig
from fedcurate.curation.evidence import EvidenceLog
from fedcurate.curation.ledger import ContributionLedger, OwnerRecord, RoundRecord
from fedcurate.curation.policies import decide
from fedcurate.curation.quality import SIGNALS
from fedcurate.seeding import numpy_rng

#: Timings are the median of this many repeats.
REPEATS = 3


def synthetic_round(server_round: int, owners: int, seed: int) -> RoundRecord:
    """One round as the first-order curator records it, with random numbers."""
    rng = numpy_rng(seed, "bench_ledger", server_round)
    records = {}
    for index in range(owners):
        value = float(rng.normal(1.0, 1.0))
        records[f"owner-{index:03d}"] = OwnerRecord(
            value=value,
            relative=value,
            weight=1.0,
            included=True,
            reason="kept",
            score=value,
            signals={signal: float(rng.normal()) for signal in SIGNALS},
            alignment=float(rng.normal(0.3, 0.2)),
        )
    return RoundRecord(server_round, "first_order", "loss", 1, "", records)


def _seconds(work: Callable[[], object]) -> float:
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def measure(owners: int, rounds: int, seed: int = 0) -> dict[str, Any]:
    """Cost of round ``rounds + 1`` after ``rounds`` recorded rounds of ``owners`` owners."""
    ledger = ContributionLedger()
    for server_round in range(1, rounds + 1):
        ledger.record(synthetic_round(server_round, owners, seed))
    next_round = synthetic_round(rounds + 1, owners, seed).observations()
    history = ledger.history()
    extended = ledger.evidence.extended(next_round)
    weights = dict.fromkeys(next_round, 1.0)
    config = CuratorConfig()
    ledger.report_json()  # the rounds before this one were serialised when they were written
    extend_s = _seconds(lambda: ledger.evidence.extended(next_round))
    rebuild_s = _seconds(lambda: EvidenceLog.of(history))
    return {
        "bench": "ledger",
        "owners": owners,
        "rounds": rounds,
        "extend_s": extend_s,
        "rebuild_s": rebuild_s,
        "rebuild_over_extend": rebuild_s / extend_s,
        "decide_s": _seconds(lambda: decide("exclude", extended, weights, config)),
        "report_s": _seconds(ledger.report_json),
    }


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per (owners, rounds) case."""
    parser = argparse.ArgumentParser(
        prog="fedcurate bench ledger",
        description="Per-round cost of the curator's evidence log, policy and ledger report.",
        epilog="example: fedcurate bench ledger --quick",
    )
    parser.add_argument("--quick", action="store_true", help="10 and 50 owners, 30 rounds")
    args = parser.parse_args(argv)
    owners = (10, 50) if args.quick else (10, 200)
    rounds = (30,) if args.quick else (30, 300)
    for count in owners:
        for length in rounds:
            print(json.dumps(measure(count, length)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
