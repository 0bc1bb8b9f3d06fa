"""The ``fedcurate`` command line.

``fedcurate simulate [OVERRIDES...]`` is a Hydra application (multirun ``-m``,
``--cfg job``, ``hydra.run.dir=...`` all work); the other commands are argparse
subcommands that each say what they do and show an example with ``--help``.
"""

from __future__ import annotations

import os

# Flower reads this when first imported: never phone home from a site or from CI.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fedcurate.config import (
    ConfigError,
    compose_config,
    conf_dir,
    parse_overrides,
    register_schemas,
    to_config,
)
from fedcurate.reporting import RunOutputs

register_schemas()

SIMULATE_HELP = """\
usage: fedcurate simulate [OVERRIDES...] [-m] [--cfg job] [hydra.run.dir=DIR]

Run a local federated simulation configured by Hydra overrides.

examples:
  fedcurate simulate                                   # the default experiment
  fedcurate simulate num_rounds=5 strategy=fedprox     # override anything in conf/
  fedcurate simulate -m seed=0,1,2                     # a multirun sweep
  fedcurate simulate resume=outputs/2026-11-28/12-00-00  # continue a stopped run

config groups: dataset partition model strategy privacy crypto curator corruption experiment
"""
#: How many of the lowest-standing owners the end-of-run story names.
SUSPECTS_TOLD = 3


def _simulate_job(cfg: DictConfig) -> float:
    """One Hydra job: compose, run, print the outcome."""
    from simulations.runner import run_simulation

    config = to_config(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    if config.resume:
        run_dir = Path(config.resume)
        extra = [o for o in overrides if not o.startswith("resume=")]
        overrides = RunOutputs(run_dir).read_overrides() + extra
        config = compose_config(overrides)
    summary = run_simulation(config, overrides, run_dir)
    _print_outcome(summary, run_dir)
    accuracy = summary["final"]["accuracy"]
    return float(accuracy) if accuracy is not None else float("nan")


def _print_outcome(summary: dict[str, Any], run_dir: Path) -> None:
    """What happened, in a few lines a person reads at the end of a run."""
    print("\n".join(outcome_lines(summary, run_dir)))


def outcome_lines(summary: dict[str, Any], run_dir: Path) -> list[str]:
    """The end-of-run story: accuracy, privacy, curation, encryption, where the report is."""
    final, best = summary["final"], summary["best"]
    lines = [
        f"test accuracy {_num(final['accuracy'])} after {summary['rounds_completed']} rounds "
        f"({summary['status']}); model selected on {best['selected_by']} at round "
        f"{best['round']}: test accuracy {_num(best['accuracy'])}"
    ]
    privacy = summary.get("privacy")
    if privacy and privacy["mechanism"] == "central_dp":
        lines.append(
            f"privacy: client-level DP at the server, ε = {_num(privacy['epsilon'], 2)} of "
            f"{privacy['budget']:g} (δ = {privacy['delta']:.0e}, noise multiplier "
            f"{privacy['noise_multiplier']:.2f})"
        )
    elif privacy:
        owners = privacy["owners"]
        stopped = [o for o, e in owners.items() if e.get("stopped_on_budget")]
        lines.append(
            f"privacy: DP-SGD, each owner spent ε ≤ {_num(privacy['max_epsilon'], 2)} of its "
            f"budget {privacy['budget']:g} (δ ≤ {max(e['delta'] for e in owners.values()):.0e}); "
            f"stopped on budget: {', '.join(stopped) or 'none'}"
        )
    curator = summary.get("curator")
    if curator:
        excluded = curator["excluded"]
        told = "; ".join(f"{o}: {why}" for o, why in excluded.items()) or "nobody"
        lines.append(f"curator ({curator['method']}, policy {curator['policy']}) excluded {told}")
        lowest = sorted((curator.get("standing") or {}).items(), key=lambda item: item[1])
        if lowest:
            named = ", ".join(f"{o} {standing:+.2f}" for o, standing in lowest[:SUSPECTS_TOLD])
            lines.append(f"curator's most suspect owners (lowest mean standing): {named}")
    timing = summary.get("timing") or {}
    if "encrypt" in timing:
        lines.append(
            f"encryption: CKKS, {_num(summary['communication']['bytes_up_per_param'], 1)} "
            f"bytes/param up; encrypt {timing['encrypt']:.1f}s, aggregate "
            f"{timing.get('aggregate', 0.0):.1f}s, decrypt {timing.get('decrypt', 0.0):.1f}s "
            f"vs local training {timing['train']:.1f}s (summed over owners)"
        )
    if summary.get("corruption"):
        lines.append(f"simulated corruption (ground truth): {summary['corruption']}")
    lines.append(f"wall time {summary['wall_seconds']:.1f}s; report: {run_dir / 'report.html'}")
    return lines


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def simulate(argv: list[str]) -> int:
    """``fedcurate simulate``: hand the arguments to Hydra."""
    if argv and argv[0] in ("-h", "--help"):
        print(SIMULATE_HELP)
        return 0
    resume = next((a.split("=", 1)[1] for a in argv if a.startswith("resume=")), None)
    if resume:
        # The resumed run writes into its own directory; Hydra keeps its files out of it.
        argv = [*argv, f"hydra.run.dir={resume}", "hydra.output_subdir=null"]
    job = hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(
        _simulate_job
    )
    saved = sys.argv
    sys.argv = ["fedcurate simulate", *argv]
    try:
        job()
    finally:
        sys.argv = saved
    return 0


def _check(argv: list[str]) -> int:
    """``fedcurate check-config``: validate overrides without running anything."""
    parser = argparse.ArgumentParser(
        prog="fedcurate check-config",
        description="Compose and validate a configuration, print it, run nothing.",
        epilog="example: fedcurate check-config strategy=fedprox num_rounds=50",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides")
    args = parser.parse_args(argv)
    from omegaconf import OmegaConf

    config = compose_config(parse_overrides(args.overrides))
    print(OmegaConf.to_yaml(OmegaConf.structured(config)))
    return 0


def _report(argv: list[str]) -> int:
    """``fedcurate report RUN_DIR``: re-render a run's report and plots."""
    parser = argparse.ArgumentParser(
        prog="fedcurate report",
        description="Re-render report.md, report.html and plots/*.png of a finished run.",
        epilog="example: fedcurate report outputs/2026-11-28/12-00-00",
    )
    parser.add_argument("run_dir", type=_run_dir, help="a fedcurate run directory")
    args = parser.parse_args(argv)
    from fedcurate.reporting.report import render_report

    markdown, page = render_report(args.run_dir)
    print(f"report: {markdown}\npage:   {page}")
    return 0


def _compare(argv: list[str]) -> int:
    """``fedcurate compare RUN_DIR...``: finished runs side by side."""
    parser = argparse.ArgumentParser(
        prog="fedcurate compare",
        description="Compare finished runs: a table and overlaid accuracy curves.",
        epilog="example: fedcurate compare multirun/2026-11-28/12-00-00/* --out compare/",
    )
    parser.add_argument("run_dirs", type=_run_dir, nargs="+", help="fedcurate run directories")
    parser.add_argument("--out", type=Path, default=Path("compare"), help="output directory")
    args = parser.parse_args(argv)
    from fedcurate.reporting.compare import compare_runs

    result = compare_runs(args.run_dirs, args.out)
    print(Path(result["markdown"]).read_text())
    return 0


def _run_dir(text: str) -> Path:
    path = Path(text)
    if not (path / "summary.json").is_file():
        raise argparse.ArgumentTypeError(f"{path}: not a finished run (no summary.json)")
    return path


def _lazy(module: str, function: str = "main") -> Callable[[list[str]], int]:
    """A command implemented by ``module.function(argv)``, imported only when run."""

    def command(argv: list[str]) -> int:
        import importlib

        result: int = getattr(importlib.import_module(module), function)(argv)
        return result

    return command


_tune = _lazy("simulations.tune")


BENCHMARKS = {
    "all": "every benchmark below; writes docs/benchmarks.md",
    "sim": "in-process vs Flower engine vs pure PyTorch wall time",
    "dp": "DP-SGD vs non-private epoch time per grad-sample mode",
    "he": "CKKS presets vs NVIDIA FLARE's: bytes/param, time, error",
    "valuation": "valuation estimators vs exact Shapley",
    "fedprox": "FedProx vs FedAvg on Synthetic(1,1), paper protocol",
    "scale": "wall time and peak memory vs owners and model size",
    "quality": "label-error detection and annotation on a site's data",
    "privacy": "test accuracy under per-owner DP-SGD at ε = 8 and ε = 3",
    "overhead": "wall time of the quick start with DP, CKKS and the curator added one by one",
    "ledger": "per-round cost of the curator's bookkeeping as a run grows long",
    "curator": "detection AUROC, exclusions and accuracy vs robust strategies",
}


def _bench(argv: list[str]) -> int:
    """``fedcurate bench NAME [ARGS...]``: one benchmark, JSON lines on stdout."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        listing = "\n".join(f"  {name:<10} {what}" for name, what in BENCHMARKS.items())
        print(f"usage: fedcurate bench NAME [ARGS...]\n\nbenchmarks:\n{listing}\n")
        print("example: fedcurate bench sim --quick; 'fedcurate bench NAME --help' for more.")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    import importlib

    module = importlib.import_module(f"simulations.bench_{argv[0]}")
    result: int = module.main(argv[1:])
    return result


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "simulate": (simulate, "run a local federated simulation (Hydra overrides)"),
    "check-config": (_check, "validate a configuration without running it"),
    "report": (_report, "re-render a run's report.md, report.html and plots"),
    "compare": (_compare, "put finished runs side by side"),
    "tune": (_tune, "tune hyperparameters with Optuna (hpo=NAME, resumable)"),
    "keys": (_lazy("simulations.keys_cmd"), "provision and inspect CKKS, TLS and node keys"),
    "audit-privacy": (_lazy("simulations.audit_cmd"), "audit an owner's DP-SGD against its ε"),
    "evaluate": (
        _lazy("simulations.owner_tools", "evaluate_main"),
        "evaluate a run's best or final model: per-class metrics, calibration, fairness",
    ),
    "inspect-data": (
        _lazy("simulations.owner_tools", "inspect_data_main"),
        "data owner: find likely label errors, duplicates, outliers (stays local)",
    ),
    "annotate": (
        _lazy("simulations.owner_tools", "annotate_main"),
        "data owner: propose calibrated labels for unlabelled rows (stays local)",
    ),
    "select": (
        _lazy("simulations.select_runs", "select_main"),
        "rank finished runs by validation metric and name the best, with its privacy cost",
    ),
    "deploy-local": (
        _lazy("simulations.deploy_local"),
        "deploy on this machine: SuperLink, SuperNodes and the ServerApp as processes",
    ),
    "bench": (_bench, "run a benchmark ('fedcurate bench' lists them)"),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``fedcurate COMMAND ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(len(name) for name in COMMANDS)
        listing = "\n".join(f"  {n:<{width}}  {h}" for n, (_, h) in COMMANDS.items())
        print(f"usage: fedcurate COMMAND [ARGS...]\n\ncommands:\n{listing}\n")
        print("example: fedcurate simulate num_rounds=5\n'fedcurate COMMAND --help' for more.")
        unknown = bool(argv) and argv[0] not in ("-h", "--help")
        if unknown:
            print(f"\nerror: unknown command '{argv[0]}'", file=sys.stderr)
        return 2 if unknown else 0
    command, _ = COMMANDS[argv[0]]
    try:
        return command(argv[1:])
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
