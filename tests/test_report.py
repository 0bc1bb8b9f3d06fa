"""Reports: every plot is a real image, every number matches summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest

from fedcurate.config import compose_config
from fedcurate.reporting.compare import compare_runs
from fedcurate.reporting.report import fmt
from simulations.cli import SUSPECTS_TOLD, outcome_lines
from simulations.runner import run_simulation

ARGS = [
    "num_clients=4",
    "num_rounds=3",
    "train.local_epochs=1",
    "corruption=label_noise",
    "curator=first_order",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("report") / "run"
    run_simulation(compose_config(ARGS), ARGS, run_dir)
    return run_dir


def test_every_plot_is_a_non_empty_image(finished_run: Path) -> None:
    plots = sorted((finished_run / "plots").glob("*.png"))
    expected = {"accuracy_loss", "owner_accuracy", "bytes", "contributions", "rewards", "standing"}
    assert {p.stem for p in plots} >= expected
    for plot in plots:
        pixels = matplotlib.image.imread(plot)
        assert pixels.shape[0] > 100
        assert pixels.shape[1] > 100
        assert pixels.std() > 0.01, f"{plot.name} is blank"


def test_report_numbers_match_the_summary(finished_run: Path) -> None:
    summary = json.loads((finished_run / "summary.json").read_text())
    markdown = (finished_run / "report.md").read_text()
    assert f"| final test accuracy | {fmt(summary['final']['accuracy'])} |" in markdown
    assert f"| final test loss | {fmt(summary['final']['loss'])} |" in markdown
    assert f"| rounds completed | {summary['rounds_completed']} |" in markdown
    per_param = fmt(summary["communication"]["bytes_up_per_param"], 2)
    assert f"| bytes per parameter per update (up) | {per_param} |" in markdown
    # Plaintext: the curator runs in the server process, nothing crosses to a curator node.
    assert summary["communication"]["curator_bytes"] == 0
    assert "curator node" not in markdown
    for owner, kind in summary["corruption"].items():
        assert f"| {owner} | {kind} |" in markdown
    for image in ("accuracy_loss", "owner_accuracy", "bytes", "standing"):
        assert f"(plots/{image}.png)" in markdown
    curator = summary["curator"]
    assert len(curator["reward_shares"]) == 4
    for owner, share in curator["reward_shares"].items():
        credit, standing = fmt(curator["values"][owner]), fmt(curator["standing"][owner])
        assert f"| {owner} | {credit} | {fmt(share)} | {standing} |" in markdown


def test_the_run_story_names_the_curators_most_suspect_owners(finished_run: Path) -> None:
    summary = json.loads((finished_run / "summary.json").read_text())
    standing = json.loads((finished_run / "ledger.json").read_text())["standing"]
    assert summary["curator"]["standing"] == standing
    story = next(line for line in outcome_lines(summary, finished_run) if "most suspect" in line)
    named = [part.split()[0] for part in story.split(": ", 1)[1].split(", ")]
    assert named == sorted(standing, key=standing.__getitem__)[:SUSPECTS_TOLD]


def test_html_report_is_self_contained(finished_run: Path) -> None:
    page = (finished_run / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3
    assert "plots/" not in page


def test_compare_puts_runs_side_by_side(finished_run: Path, tmp_path: Path) -> None:
    result = compare_runs([finished_run, finished_run], tmp_path)
    assert len(result["table"].rows) == 2
    assert (tmp_path / "compare_accuracy.png").stat().st_size > 1000
