"""``fedcurate bench all --only``: rerun some sections, keep the others as they were."""

from __future__ import annotations

import json
from pathlib import Path

from simulations import bench_all


def test_rerunning_one_benchmark_keeps_the_other_sections(tmp_path: Path) -> None:
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    earlier = {"bench": "dp", "mode": "hooks", "seconds_per_epoch": 0.25}
    (bench_dir / "dp.jsonl").write_text(json.dumps(earlier) + "\n")
    run = {"seconds": 19.0, "date": "2026-11-29 04:47 UTC", "quick": False}
    (bench_dir / bench_all.RUNS_FILE).write_text(json.dumps({"dp": run}))

    assert bench_all.main(["--only", "ledger", "--quick", "--docs", str(tmp_path)]) == 0

    markdown = (tmp_path / "benchmarks.md").read_text()
    assert "`fedcurate bench dp` (19 s on 2026-11-29 04:47 UTC)" in markdown
    assert "| dp | hooks | 0.25 |" in markdown
    assert markdown.index("DP-SGD epoch cost") < markdown.index("Curator bookkeeping")
    runs = json.loads((bench_dir / bench_all.RUNS_FILE).read_text())
    assert runs["dp"] == run
    assert runs["ledger"]["quick"] is True
    assert ", --quick)" in markdown
    ledger = [json.loads(line) for line in (bench_dir / "ledger.jsonl").read_text().splitlines()]
    assert [(line["owners"], line["rounds"]) for line in ledger] == [(10, 30), (50, 30)]
