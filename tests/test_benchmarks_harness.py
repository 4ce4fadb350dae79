"""`benchmarks/run_all.py` discovers modules, runs them and writes a report whose numbers come from the run."""

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import run_all  # noqa: E402


def test_discovery_finds_every_benchmark_module_and_skips_private_ones():
    names = run_all.discover()
    assert "sokoban_throughput" in names
    assert "run_all" not in names and not any(name.startswith("_") for name in names)


def test_unknown_module_is_refused_with_the_available_names(capsys):
    with pytest.raises(SystemExit):
        run_all.main(["--only", "no_such_benchmark"])
    assert "sokoban_throughput" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_sokoban_run_writes_json_and_report_with_measured_numbers(tmp_path):
    assert run_all.main(["--quick", "--only", "sokoban_throughput", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    sokoban = results["results"]["sokoban_throughput"]
    assert "error" not in sokoban
    assert results["meta"]["mode"] == "quick" and results["meta"]["machine"]["cpus"] >= 1
    metrics = sokoban["metrics"]
    assert metrics["reset_6x6_1_median_ms"] > 0 and metrics["image_steps_per_s"] > 0
    assert all(math.isfinite(value) for value in metrics.values())
    report = (tmp_path / "report.md").read_text()
    assert "Sokoban throughput" in report and str(metrics["image_steps_per_s"]) in report
    has_speedups = any(key.endswith("_speedup") for key in metrics)  # absent only if the peer could not install
    assert (tmp_path / "speedups.png").exists() == has_speedups
