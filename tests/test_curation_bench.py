"""The curator benchmark's own machinery: baselines, metrics, verdicts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fedcurate.config import compose_config
from fedcurate.data.corruption import corrupted_owners
from simulations.bench_curator import (
    ROBUST,
    Cell,
    RunCache,
    acceptance,
    alignment_markdown,
    arm_spec,
    arms_of,
    behaviour,
    cell_of,
    cell_record,
    curation_fingerprint,
    detection_auroc,
    exclusion_markdown,
    main,
    mean_alignment,
    render_markdown,
    run_with_offline_owners,
    seed_spread,
    seed_spread_markdown,
    twin_check,
)


def test_the_clean_only_run_is_shared_by_every_corruption_kind() -> None:
    flips = arm_spec(Cell("digits", "iid", "label_flip", 0.4, "none"), "clean", seed=1, rounds=5)
    riders = arm_spec(
        Cell("digits", "iid", "free_rider_replay", 0.4, "none"), "clean", seed=1, rounds=5
    )
    assert flips == riders
    config = compose_config(list(flips.overrides))
    assert set(flips.offline) == set(corrupted_owners(config.corruption, 10, 1))
    assert len(flips.offline) == 4
    assert not flips.curated
    curated = arm_spec(Cell("digits", "iid", "label_flip", 0.4, "none"), "curated", 1, 5)
    assert curated.curated


def test_robust_strategies_know_the_number_of_bad_owners() -> None:
    cell = Cell("breast_cancer", "dirichlet", "sign_flip", 0.2, "dp_sgd")
    multikrum = arm_spec(cell, "multikrum", seed=0, rounds=5).overrides
    assert "strategy.num_malicious=2" in multikrum
    assert "strategy.num_to_select=8" in multikrum
    assert "privacy=dp_sgd" in multikrum


def test_offline_owners_never_train(tmp_path: Path) -> None:
    overrides = [
        "num_clients=4",
        "num_rounds=2",
        "train.local_epochs=1",
        "fraction_evaluate=0.0",
        "corruption=label_flip",
        "corruption.owners=[1]",
    ]
    summary = run_with_offline_owners(compose_config(overrides), overrides, tmp_path, [1])
    assert summary["status"] == "completed"
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        assert "owner-001" in record["failed"]
        assert sorted(record["replied"]) == ["owner-000", "owner-002", "owner-003"]


def test_detection_auroc_ranks_corrupted_owners_low() -> None:
    scores = {"a": 1.0, "b": 0.5, "c": -1.0, "d": 0.7}
    assert detection_auroc(scores, {"c"}) == 1.0
    assert detection_auroc(scores, {"a"}) == 0.0
    assert detection_auroc(scores, set()) is None


def test_the_cache_redoes_curated_runs_when_the_curation_code_changes(tmp_path: Path) -> None:
    spec = arm_spec(Cell("digits", "iid", "label_flip", 0.2, "none"), "curated", 0, 5)
    RunCache(tmp_path, "old").put(spec, {"final_accuracy": 0.9})
    assert RunCache(tmp_path, "old").get(spec) == {"final_accuracy": 0.9, "fingerprint": "old"}
    assert RunCache(tmp_path, "new").get(spec) is None
    baseline = arm_spec(Cell("digits", "iid", "label_flip", 0.2, "none"), "fedavg", 0, 5)
    RunCache(tmp_path, "old").put(baseline, {"final_accuracy": 0.8})
    assert RunCache(tmp_path, "new").get(baseline) is not None


def test_the_fingerprint_follows_code_in_subpackages_but_not_docstrings(tmp_path: Path) -> None:
    policy = tmp_path / "fedcurate" / "curation" / "policies" / "weight.py"
    policy.parent.mkdir(parents=True)
    (tmp_path / "conf" / "curator").mkdir(parents=True)
    (tmp_path / "fedcurate" / "config.py").write_text("FLOOR = 0.1\n")
    policy.write_text('"""Weights."""\nCAP = 1.0\n')
    before = curation_fingerprint(tmp_path)
    policy.write_text('"""Weights from credit."""\n# capped\nCAP = 1.0\n')
    assert curation_fingerprint(tmp_path) == before
    policy.write_text('"""Weights from credit."""\nCAP = 2.0\n')
    assert curation_fingerprint(tmp_path) != before


def _record(dataset: str, privacy: str, auroc: float, gap_clean: float) -> dict[str, object]:
    return {
        "dataset": dataset,
        "partition": "natural" if dataset == "synthetic" else "dirichlet",
        "corruption": "label_noise_10",
        "fraction": 0.4,
        "privacy": privacy,
        "auroc": auroc,
        "benign_excluded": 0.0,
        "gap": {
            "clean": gap_clean,
            **dict.fromkeys(("krum", "multikrum", "fedmedian", "fedtrimmedavg"), -0.1),
        },
    }


def test_acceptance_says_pass_miss_and_not_measured() -> None:
    records = [
        _record("digits", "none", 0.99, 0.005),
        _record("breast_cancer", "none", 0.95, 0.02),
        _record("synthetic", "none", 0.97, 0.0),
    ]
    lines = {line["target"].split(" (")[0]: line for line in acceptance(records, {})}
    plain = lines["mean detection AUROC, cells without DP"]
    assert plain["measured"] == pytest.approx((0.99 + 0.95 + 0.97) / 3)
    assert plain["verdict"] == "PASS"
    assert lines["mean detection AUROC, DP cells"]["verdict"] == "n/a"
    near_clean = {k.split(", ")[2].split(":")[0]: v for k, v in lines.items() if "1 point" in k}
    assert near_clean["curator.policy=exclude"]["measured"] == 0.5
    assert near_clean["curator.policy=exclude"]["verdict"] == "MISS"
    assert near_clean["curator.policy=weight"]["verdict"] == "n/a"


def test_acceptance_of_a_baselines_only_grid_is_not_measured() -> None:
    record = _record("digits", "none", 0.0, 0.0) | {
        "corruption": "free_rider_replay",
        "auroc": None,
        "benign_excluded": None,
        "free_rider_share_max": None,
    }
    records = [record, record | {"fraction": 0.2}]
    lines = {line["target"].split(" (")[0]: line for line in acceptance(records, {})}
    assert lines["replay free rider's reward share"]["verdict"] == "n/a"
    assert lines["mean detection AUROC, cells without DP"]["verdict"] == "n/a"


def test_a_partial_grid_without_checks_is_reported_as_such() -> None:
    record = _record("digits", "none", 0.9, 0.0) | {
        "cell": "digits/dirichlet/label_noise_10/0.4/none",
        "auroc_early": 0.8,
        "auroc_values": 0.7,
        "bad_excluded": 0.5,
        "accuracy": {"curated": 0.9, "clean": 0.9},
    }
    command = "fedcurate bench curator --seeds 3 --cells 'digits/*' --no-checks --docs out"
    report = {
        "command": command,
        "quick": False,
        "seeds": [3],
        "rounds": 15,
        "run_seconds": 60.0,
        "acceptance": acceptance([record], {}),
        "cells": [record],
        "checks": {},
    }
    markdown = render_markdown(report)
    assert f"Written by `{command}`" in markdown
    assert "Partial grid: 1 of its 120 cells" in markdown
    assert "| digits/dirichlet/label_noise_10/0.4/none | 0.800 | 0.900 | 0.700 |" in markdown
    assert "Estimators vs exact Shapley" not in markdown
    assert "![" not in markdown
    with_plots = render_markdown(report | {"plots": ["curator_benchmark_auroc.png"]})
    assert "![curator_benchmark_auroc.png](curator_benchmark_auroc.png)" in with_plots


def test_the_exclusion_table_separates_attacks_from_data_corruptions() -> None:
    def cell(corruption: str, benign: float, bad: float) -> dict[str, object]:
        record = _record("digits", "none", 1.0, 0.0) | {"corruption": corruption}
        return record | {"benign_excluded": benign, "bad_excluded": bad}

    records = [cell("sign_flip", 0.1, 1.0), cell("label_noise_10", 0.0, 0.2)]
    rows = [line for line in exclusion_markdown(records) if line.startswith("| digits")]
    assert rows == ["| digits | none | 0.050 | 1.000 | 0.200 |"]


def test_the_alignment_table_contrasts_honest_and_flipped_updates() -> None:
    def observed(*alignments: float | None) -> list[dict[str, float | None]]:
        return [{"alignment": a} for a in alignments]

    result = {"observations": {"h": observed(0.06, 0.04, None), "f": observed(-0.05, -0.07)}}
    assert mean_alignment(result, ["h"]) == pytest.approx(0.05)
    assert mean_alignment(result, ["f"]) == pytest.approx(-0.06)
    assert mean_alignment({"observations": {"h": observed(None)}}, ["h"]) is None

    def cell(corruption: str, privacy: str, bad: float | None) -> dict[str, object]:
        record = _record("digits", privacy, 1.0, 0.0) | {"corruption": corruption}
        return record | {"alignment_benign": 0.05, "alignment_bad": bad}

    records = [
        cell("sign_flip", "dp_sgd", -0.04),
        cell("sign_flip", "dp_sgd", -0.06),
        cell("label_flip", "dp_sgd", 0.02),
        cell("sign_flip", "none", None),
    ]
    rows = [line for line in alignment_markdown(records) if line.startswith("| digits")]
    assert rows == ["| digits | dirichlet | dp_sgd | 0.050 | -0.050 |"]
    assert alignment_markdown(records[2:]) == []


def test_each_policy_gets_its_own_accuracy_verdicts() -> None:
    robust = ("krum", "multikrum", "fedmedian", "fedtrimmedavg")
    record = _record("digits", "none", 0.99, 0.02)
    record["gap_weighted"] = {"clean": 0.0, **dict.fromkeys(robust, 0.01)}
    lines = {line["target"].split(" (")[0]: line for line in acceptance([record], {})}
    prefix = "40 % bad, digits + breast cancer, curator.policy="
    near_clean = "cells within 1 point of clean-only"
    above = "cells above every robust strategy"
    assert lines[f"{prefix}exclude: {near_clean}"]["verdict"] == "MISS"
    assert lines[f"{prefix}weight: {near_clean}"]["verdict"] == "PASS"
    assert lines[f"{prefix}exclude: {above}"]["measured"] == 1.0
    assert lines[f"{prefix}weight: {above}"]["measured"] == 0.0
    weight_above = next(
        t for t in (x["target"] for x in acceptance([record], {})) if "weight: " + above in t
    )
    assert weight_above.endswith("(tied in 0, behind in 1 by at most 0.010)")


def test_a_tie_with_a_robust_strategy_is_not_above_it() -> None:
    record = _record("digits", "none", 0.99, 0.0)
    # Equal accuracies whose means over seeds differ in the last bit tie as well.
    for rounding in (0.0, -1.1e-16, 1.1e-16):
        record["gap"] = {
            "clean": 0.0,
            "krum": -0.02,
            "multikrum": rounding,
            "fedmedian": -0.01,
            "fedtrimmedavg": -0.01,
        }
        line = next(x for x in acceptance([record], {}) if "exclude: cells above" in x["target"])
        assert line["measured"] == 0.0
        assert line["target"].endswith("(tied in 1)")


def test_the_weight_policy_runs_where_the_accuracy_target_is_measured() -> None:
    target = Cell("breast_cancer", "iid", "sign_flip", 0.4, "dp_sgd")
    assert cell_of(cell_record(target, [], {})) == target
    assert {"weighted", *ROBUST} <= set(arms_of(target, "targets"))
    other = arms_of(replace(target, fraction=0.2), "targets")
    assert "fedavg" in other
    assert not {"weighted", *ROBUST} & set(other)
    spec = arm_spec(target, "weighted", seed=0, rounds=5)
    assert spec.curated
    assert "curator.policy=weight" in spec.overrides


def test_curator_overrides_change_the_curated_arms_only(tmp_path: Path) -> None:
    """What ``--curator-override`` compares: the same grid, another curator setting."""
    cell = Cell("digits", "iid", "label_flip", 0.4, "dp_sgd")
    setting = ("curator.warmup_floor=0.1",)
    for arm in ("curated", "weighted"):
        spec = arm_spec(cell, arm, 0, 5, setting)
        assert spec.overrides == (*arm_spec(cell, arm, 0, 5).overrides, *setting)
        compose_config(list(spec.overrides))
    for arm in ("clean", *ROBUST):
        assert arm_spec(cell, arm, 0, 5, setting) == arm_spec(cell, arm, 0, 5)
    with pytest.raises(SystemExit):
        main(["--no-checks", "--curator-override", "strategy=krum"])
    with pytest.raises(SystemExit):
        main(["--cache", str(tmp_path), "--curator-override", "curator.warmup_floor=0.1"])


def test_a_cell_reports_how_far_apart_its_seeds_end() -> None:
    cell = Cell("digits", "dirichlet", "label_noise_10", 0.4, "none")
    results = {
        ("clean", 0): {"final_accuracy": 0.84},
        ("clean", 1): {"final_accuracy": 0.88},
        ("fedavg", 0): {"final_accuracy": 0.90},
    }
    record = cell_record(cell, [0, 1], results)
    assert record["accuracy"] == {"clean": pytest.approx(0.86)}
    assert record["accuracy_seed_range"] == {"clean": pytest.approx(0.04)}


def test_the_twin_check_tells_update_noise_from_its_amplification() -> None:
    """Twins' updates differ by SGD noise; the Shapley value of the mean spreads that further."""
    twins = twin_check(seed=1, rounds=3)
    assert all(value > 0.0 for value in twins["values"])
    assert 0.0 < twins["score_gap"] < twins["relative_gap"] / 2


def test_the_cache_fingerprint_ignores_docstrings_comments_and_layout(tmp_path: Path) -> None:
    code = tmp_path / "policy.py"
    code.write_text('"""Module."""\n\n\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    reference = behaviour(code)
    code.write_text(
        '"""Reworded."""\n\ndef f(x):\n    """Other."""\n    # why\n    return (x + 1)\n'
    )
    assert behaviour(code) == reference
    code.write_text('"""Module."""\n\n\ndef f(x):\n    """Doc."""\n    return x + 2\n')
    assert behaviour(code) != reference
    code.write_text('def f(x):\n    """Doc only."""\n')
    assert "Pass" in behaviour(code)
    preset = tmp_path / "curator.yaml"
    preset.write_text("# comment\nname: exclude\nweight_floor: 0.1\n")
    reference = behaviour(preset)
    preset.write_text("weight_floor: 0.10  # reworded\nname: exclude\n")
    assert behaviour(preset) == reference
    preset.write_text("name: exclude\nweight_floor: 0.2\n")
    assert behaviour(preset) != reference


def test_a_mean_auroc_comes_with_its_seed_to_seed_spread() -> None:
    records = [
        _record("digits", "none", 0.9, 0.0) | {"auroc_by_seed": {"0": 0.8, "1": 1.0}},
        _record("breast_cancer", "none", 0.8, 0.0) | {"auroc_by_seed": {"0": 0.7, "1": 0.9}},
    ]
    spread = seed_spread(records)
    assert spread is not None
    assert spread["grid_mean_by_seed"] == {"0": pytest.approx(0.75), "1": pytest.approx(0.95)}
    low, high = spread["interval"]
    # Two seeds: mean 0.85, standard error 0.1, t(0.975, df = 1) = 12.706: clipped.
    assert (low, high) == (0.0, 1.0)
    three_seeds = [{"auroc_by_seed": {"0": 0.80, "1": 0.90, "2": 0.85}}]
    spread = seed_spread(three_seeds)
    assert spread is not None
    many = seed_spread([{"auroc_by_seed": {str(s): 0.9 for s in (10, 2, 1)}}])
    assert many is not None
    assert list(many["grid_mean_by_seed"]) == ["1", "2", "10"]
    assert many["interval"] == [pytest.approx(0.9), pytest.approx(0.9)]
    low, high = spread["interval"]
    # Standard error 0.05 / sqrt(3), t(0.975, df = 2) = 4.303.
    assert low == pytest.approx(0.85 - 4.303 * 0.05 / 3**0.5, abs=1e-4)
    assert high == pytest.approx(0.85 + 4.303 * 0.05 / 3**0.5, abs=1e-4)
    assert seed_spread([records[0] | {"auroc_by_seed": {"0": 0.8}}]) is None
    lines = acceptance(records, {})
    markdown = "\n".join(seed_spread_markdown(lines))
    assert "| mean detection AUROC, cells without DP | 0: 0.750, 1: 0.950 |" in markdown
