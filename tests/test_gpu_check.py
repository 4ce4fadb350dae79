"""scripts/gpu_check.sh, rehearsed on the CPU: every step the GPU machine will run starts and passes
(or skips, for the GPU-only tests), so a rarely lent GPU is not spent on a renamed flag."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def run_script(*args: str, out: Path, wheels: Path, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(out), "WHEELS": str(wheels), "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, check=False, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_rehearsal_runs_every_step_on_the_cpu(tmp_path):
    # A budget beyond the default's: a busy CI machine may take longer than a GPU machine would.
    finished = run_script("--rehearse", out=tmp_path, wheels=tmp_path / "no-wheels", GPU_CHECK_SECONDS="840")
    report = (tmp_path / "gpu_check.md").read_text()
    assert finished.returncode == 0, report
    rows = [line.split(" | ") for line in report.splitlines() if line.startswith("| ") and "---" not in line][1:]
    results = {row[0].lstrip("| "): row[1] for row in rows}
    assert results["istar-gym and its requirements import"] == "passed"
    assert results["cpu training resumed from its checkpoint (iteration 3)"] == "passed"
    assert results["two ranks share the GPU over Gloo, in lockstep"] == "skipped"  # needs a GPU
    assert not [name for name, result in results.items() if "FAILED" in result or "TIMED OUT" in result]
    assert results["throughput, tiny preset, env steps/s (median of 10 iterations)"].startswith("cpu ")


def test_wheels_for_another_python_fail_the_check_at_once_and_say_why(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "pygame-2.6.1-cp399-cp399-manylinux2014_x86_64.whl").write_bytes(b"")
    finished = run_script("--rehearse", out=tmp_path, wheels=wheels)
    report = (tmp_path / "gpu_check.md").read_text()
    assert finished.returncode == 1
    assert "| wheels from" in report and "FAILED" in report and "not a supported wheel" in report
    assert "build the check model" not in report  # stopped before the model and the training steps


def test_steps_past_the_checks_time_budget_are_reported_not_run(tmp_path):
    finished = run_script("--rehearse", out=tmp_path, wheels=tmp_path / "no-wheels", GPU_CHECK_SECONDS="0")
    report = (tmp_path / "gpu_check.md").read_text()
    assert finished.returncode == 1
    assert "| istar-gym and its requirements import | NOT RUN: the check's 0 s were spent |" in report


def test_an_unknown_option_prints_the_usage():
    finished = subprocess.run(["bash", str(SCRIPT), "--gpu"], check=False, capture_output=True, text=True, timeout=30)
    assert finished.returncode == 2 and "usage: bash scripts/gpu_check.sh" in finished.stderr
