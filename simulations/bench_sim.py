"""Simulation speed: in-process backend vs Flower's engine vs a pure PyTorch loop.

All three do the same work in one run: the same owners, the same seeded local
training (``fedcurate.training.train_local``), FedAvg weighted by example
counts, a central evaluation every round and each owner's evaluation whenever
the experiment evaluates on owners. The pure loop is the physical limit: only
the training and evaluation themselves, no messages and no Flower at all.

Usage: ``python -m simulations.bench_sim [--owners 10 50] [--rounds 20] [--quick]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedcurate.config import Config, compose_config
from fedcurate.data import build_federation, owner_name
from fedcurate.models import ParamLayout, build_model, load_record, model_to_record
from fedcurate.seeding import numpy_rng, torch_generator
from fedcurate.training import evaluate, train_local
from simulations.runner import run_simulation

# Rendering the report is post-processing, not federated work: off on every arm.
BASE = ["privacy=none", "crypto=none", "curator=none", "corruption=none", "report=false"]


def pure_pytorch(config: Config) -> dict[str, Any]:
    """The same experiment as a plain loop over owners; returns accuracy and seconds."""
    start = time.perf_counter()
    federation = build_federation(config)
    model = build_model(config.model, federation.spec, config.seed)
    global_record = model_to_record(model)
    layout = ParamLayout.of(global_record)
    names = [owner_name(o.index) for o in federation.owners]
    for server_round in range(1, config.num_rounds + 1):
        sampled = _sample(config, names, server_round, "sample-train")
        total, weights = np.zeros(layout.size), 0
        for name in sorted(sampled):
            owner = federation.owners[names.index(name)]
            load_record(model, global_record)
            result = train_local(
                model,
                owner.train,
                config.train,
                generator=torch_generator(config.seed, "train", name, server_round),
            )
            total = total + layout.flatten(model_to_record(model)) * result.num_examples
            weights += result.num_examples
        global_record = layout.unflatten(total / weights)
        load_record(model, global_record)
        central = evaluate(model, federation.test)
        evaluate(model, federation.validation)  # the server's model selection does this too
        due = server_round % config.evaluate_every == 0 or server_round == config.num_rounds
        if config.fraction_evaluate > 0 and due:
            for name in _sample(config, names, server_round, "sample-eval"):
                evaluate(model, federation.owners[names.index(name)].test)
    return {"accuracy": central.accuracy, "seconds": time.perf_counter() - start}


def _sample(config: Config, names: list[str], server_round: int, purpose: str) -> list[str]:
    fraction = config.fraction_train if purpose == "sample-train" else config.fraction_evaluate
    count = min(len(names), max(1, round(fraction * len(names))))
    rng = numpy_rng(config.seed, purpose, server_round)
    return sorted(str(n) for n in rng.choice(sorted(names), size=count, replace=False))


def backend_run(overrides: list[str], backend: str, out: Path) -> dict[str, Any]:
    """Wall time and final accuracy of one ``fedcurate simulate`` run."""
    args = [*overrides, f"backend={backend}"]
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        summary = run_simulation(compose_config(args), args, out / backend)
    return {"accuracy": summary["final"]["accuracy"], "seconds": time.perf_counter() - start}


def measure(owners: int, rounds: int, with_flower: bool) -> dict[str, Any]:
    """One side-by-side measurement at ``owners`` owners."""
    overrides = [*BASE, f"num_clients={owners}", f"num_rounds={rounds}"]
    config = compose_config(overrides)
    build_federation(config)  # data preparation is shared; time only the federated work
    with tempfile.TemporaryDirectory() as tmp:
        line: dict[str, Any] = {"bench": "sim", "owners": owners, "rounds": rounds}
        line["pure_pytorch"] = pure_pytorch(config)
        line["inprocess"] = backend_run(overrides, "inprocess", Path(tmp))
        if with_flower:
            line["flower"] = backend_run(overrides, "flower", Path(tmp))
    pure, inprocess = line["pure_pytorch"]["seconds"], line["inprocess"]["seconds"]
    line["inprocess_over_pure"] = inprocess / pure
    line["same_accuracy"] = line["pure_pytorch"]["accuracy"] == line["inprocess"]["accuracy"]
    if with_flower:
        line["flower_over_inprocess"] = line["flower"]["seconds"] / inprocess
        line["same_accuracy"] &= line["flower"]["accuracy"] == line["inprocess"]["accuracy"]
    return line


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per federation size."""
    parser = argparse.ArgumentParser(
        prog="fedcurate bench sim",
        description="Wall time of one experiment on each backend and as a pure PyTorch loop.",
        epilog="example: fedcurate bench sim --owners 10 50 --rounds 20",
    )
    parser.add_argument("--owners", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--flower-max-owners",
        type=int,
        default=50,
        help="skip Flower's engine above this size (it polls per message)",
    )
    parser.add_argument("--quick", action="store_true", help="10 owners, 5 rounds")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sizes, rounds = ([10], 5) if args.quick else (args.owners, args.rounds)
    for owners in sizes:
        print(json.dumps(measure(owners, rounds, owners <= args.flower_max_owners)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
