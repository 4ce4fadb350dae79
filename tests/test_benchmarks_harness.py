"""`benchmarks/run_all.py`: discovery, the helpers behind the report, a failing module kept in its own
section, and one real ``--quick`` run of every module whose JSON and report come from that run."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import run_all

WELL_FORMED = {
    "title": "Sokoban throughput",
    "metrics": {"steps_per_s": 1000.0, "resets": 20},
    "headline": {"measure": "steps/s", "ours": 1000.0, "baseline": "peer", "baseline_value": 10.0, "ratio": 100.0},
}


# --- helpers, cheaply -------------------------------------------------------------------------------


def test_discovery_finds_every_benchmark_module_and_skips_private_ones():
    names = run_all.discover()
    assert "sokoban_throughput" in names
    assert "run_all" not in names and not any(name.startswith("_") for name in names)


def test_unknown_module_is_refused_with_the_available_names(capsys):
    with pytest.raises(SystemExit):
        run_all.main(["--only", "no_such_benchmark"])
    assert "sokoban_throughput" in capsys.readouterr().err


def test_a_well_formed_result_meets_the_contract():
    assert run_all.check_result(WELL_FORMED) == []


def test_a_non_finite_metric_breaks_the_contract_and_is_named():
    problems = run_all.check_result({**WELL_FORMED, "metrics": {"fine": 1.0, "broken": float("nan"), "text": "1"}})
    assert len(problems) == 1 and "broken" in problems[0] and "text" in problems[0] and "fine" not in problems[0]


def test_a_headline_row_without_a_measure_breaks_the_contract():
    problems = run_all.check_result({**WELL_FORMED, "headline": [{"ours": 1.0}]})
    assert problems and "headline row 0" in problems[0]


def test_headline_gathers_rows_of_successful_modules_in_order_and_skips_failed_ones():
    results = {
        "a": {**WELL_FORMED, "title": "A bench", "headline": [{"measure": "x", "ours": 1.0}, {"measure": "y", "ours": 2.0}]},
        "b": {"title": "B bench", "error": "Traceback ...", "headline": {"measure": "z", "ours": 3.0}},
        "c": {**WELL_FORMED, "title": "C bench"},
    }
    rows = run_all.headline_rows(results)
    assert [(row["benchmark"], row["measure"]) for row in rows] == [("a", "x"), ("a", "y"), ("c", "steps/s")]
    assert rows[2]["ratio"] == 100.0 and rows[2]["baseline"] == "peer"


def test_report_summary_links_each_headline_row_to_its_module_section(tmp_path):
    results = {"a": {**WELL_FORMED, "title": "A bench", "seconds": 1.0, "cpu_seconds": 0.5, "headline": {"measure": "x, ms", "ours": 2.5}}}
    meta = {"machine": run_all.machine(), "mode": "default", "command": "python benchmarks/run_all.py", "started": "2026-01-01T00:00:00+00:00", "seconds": 1.0}
    report = run_all.write_report(tmp_path, results, meta).read_text()
    assert "| [a](#a-bench) | x, ms | 2.5 |  |  |  |" in report  # no baseline: empty cells
    assert "\n## A bench\n" in report and report.index("### Headline") < report.index("## A bench")


def test_markdown_table_has_one_column_per_key_and_escapes_pipes():
    lines = run_all._markdown_table([{"a": 1.23456, "b": "x|y"}, {"c": float("nan")}])
    assert lines[0] == "| a | b | c |" and lines[1] == "|---|---|---|"
    assert lines[2] == "| 1.235 | x\\|y |  |" and lines[3] == "|  |  | nan |"


def test_anchor_matches_the_heading_link_github_makes():
    assert run_all._anchor("WebShop: construction, step and search latency") == "webshop-construction-step-and-search-latency"


def test_machine_line_names_cpu_cores_memory_gpu_and_torch():
    line = run_all.machine_line(run_all.machine())
    assert line.startswith("Machine: ") and f"{len(os.sched_getaffinity(0))} cores" in line
    assert "GiB memory" in line and "GPU: " in line and "torch " in line


def test_a_module_that_fails_is_recorded_with_its_traceback(tmp_path):
    result = run_all.run_module("no_such_benchmark", "quick", tmp_path)
    assert "ModuleNotFoundError" in result["error"] and "benchmarks.no_such_benchmark" in result["error"]
    assert result["title"] == "no_such_benchmark" and result["seconds"] >= 0
    assert (tmp_path / "logs" / "no_such_benchmark.log").exists()


def test_a_module_over_its_time_limit_is_stopped_and_recorded(tmp_path):
    result = run_all.run_module("sokoban_throughput", "quick", tmp_path, timeout=0.001)  # no Python starts this fast
    assert result["error"].startswith("timed out after")


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode 'fast'"):
        run_all.run_module("sokoban_throughput", "fast", tmp_path)


def test_latest_points_at_the_newest_output_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "RESULTS_DIR", tmp_path)
    for stamp in ("20260101T000000Z", "20260102T000000Z"):
        (tmp_path / stamp).mkdir()
        run_all._point_latest(tmp_path / stamp)
        assert (tmp_path / "latest").resolve() == (tmp_path / stamp).resolve()
    assert os.readlink(tmp_path / "latest") == "20260102T000000Z"  # relative, so the folder can move


def test_the_sokoban_warm_start_is_built_once_per_report_and_reused(tmp_path, monkeypatch):
    """Four modules start from it; under run_all the later ones reuse the first's, which changes no
    number only because building it is deterministic: a fresh build has the same bytes."""
    from benchmarks.repro_sokoban import sokoban_warm_start

    monkeypatch.setenv("ISTAR_BENCH_OUT", str(tmp_path / "report"))
    shared = sokoban_warm_start(tmp_path / "module-a", quick=True)
    weights = (shared / "model.safetensors").read_bytes()
    built = (shared / "model.safetensors").stat().st_mtime_ns
    assert sokoban_warm_start(tmp_path / "module-b", quick=True) == shared == tmp_path / "report" / "warm_starts" / "sokoban-quick"
    assert (shared / "model.safetensors").stat().st_mtime_ns == built  # reused, not rebuilt

    monkeypatch.delenv("ISTAR_BENCH_OUT")
    own = sokoban_warm_start(tmp_path / "module-c", quick=True)  # outside run_all: the module's own, built afresh
    assert own == tmp_path / "module-c" / "sokoban-quick"
    assert (own / "model.safetensors").read_bytes() == weights


def test_each_training_comparison_runs_by_default_a_subset_of_its_full_rows():
    """The default rows are names of the dict --full runs, so that a renamed or mistyped row fails here, not
    at the end of a long default run."""
    from benchmarks import istar_variants, repro_sokoban, repro_webshop

    for default, rows in (
        (repro_sokoban.DEFAULT_ROWS, repro_sokoban.VARIANTS),
        (repro_webshop.DEFAULT_ROWS, repro_webshop.VARIANTS),
        (istar_variants.DEFAULT_VARIANTS, istar_variants.VARIANTS),
    ):
        assert set(default) < set(rows) and len(set(default)) == len(default)
    assert repro_sokoban.VARIANTS[repro_sokoban.TUNED_ROW] == {"algo": "rloo", "istar": True, **repro_sokoban.TUNED_ISTAR}
    assert repro_sokoban.TUNED_ROW in repro_sokoban.DEFAULT_ROWS


@pytest.mark.parametrize("learners", [["rloo"], ["sb3 ppo"], ["rloo", "sb3 ppo", "rloo v0.2"]])
def test_learning_sokoban_refuses_a_learner_set_without_a_pair_or_with_an_unknown_name(learners):
    from benchmarks import learning_sokoban

    with pytest.raises(ValueError, match="choose from"):
        learning_sokoban.run(quick=True, learners=learners)


@pytest.mark.parametrize("cores", [0, os.cpu_count() + 1])
def test_learning_sokoban_refuses_more_cores_per_run_than_the_machine_has(cores):
    from benchmarks import learning_sokoban

    with pytest.raises(ValueError, match=f"cores_per_run={cores}: use 1 to"):
        learning_sokoban.run(quick=True, learners=["rloo", "sb3 ppo"], cores_per_run=cores)


def test_learning_sokoban_refuses_a_run_without_groups():
    from benchmarks import learning_sokoban

    with pytest.raises(ValueError, match="groups_per_process=0: use at least 1"):
        learning_sokoban.run(quick=True, learners=["rloo", "sb3 ppo"], groups_per_process=0)


def test_learning_sokoban_reads_each_curve_at_the_checkpoint_itself():
    # One learner evaluated at 0, 50 and 100 s, the other at 0, 40 and 70 s: at 60 s each is read
    # between its evaluations around 60 s, not at its last one before (50 s against 40 s), and a
    # checkpoint past a curve's end takes its last evaluation.
    from benchmarks import learning_sokoban

    def run(*points):
        return [{"train_seconds_total": t, "env_steps_total": 10 * t, "eval_success": v} for t, v in points]

    every_50 = learning_sokoban._summarise("a", [run((0, 0.0), (50, 0.5), (100, 0.6))], [60, 120])
    every_30 = learning_sokoban._summarise("b", [run((0, 0.0), (40, 0.2), (70, 0.8))], [60, 120])
    assert math.isclose(every_50["success_at_60s_mean"], 0.52) and math.isclose(every_50["success_at_120s_mean"], 0.6)
    assert math.isclose(every_30["success_at_60s_mean"], 0.6) and math.isclose(every_30["success_at_120s_mean"], 0.8)


def test_repro_webshop_refuses_an_unknown_variant():
    from benchmarks import repro_webshop

    with pytest.raises(ValueError, match="variants=\\['rlooo'\\]: choose from rloo"):
        repro_webshop.run(quick=True, variants=["rlooo"])


def test_a_module_run_alone_takes_its_options_and_writes_its_result(tmp_path, monkeypatch):
    from benchmarks._training import run_alone

    def run(quick: bool = False, full: bool = False, budget: int | None = None) -> dict:
        return {"title": "t", "metrics": {"budget": budget, "full": full, "out": os.environ["ISTAR_BENCH_OUT"]}}

    monkeypatch.delenv("ISTAR_BENCH_OUT", raising=False)
    result = run_alone("demo", run, {"budget": int}, ["--full", "--budget", "60000", "--out", str(tmp_path / "out")])
    assert result["metrics"] == {"budget": 60000, "full": True, "out": str(tmp_path / "out")}
    assert json.loads((tmp_path / "out" / "demo.json").read_text()) == result
    with pytest.raises(SystemExit):
        run_alone("demo", run, {"budget": int}, ["--quick", "--full", "--out", str(tmp_path)])


def test_the_trainer_before_the_learning_fix_runs_from_the_history_beside_todays(tmp_path):
    """train_throughput's baseline: the old commit's own code, preset and warm start, measured here,
    as a median of its iterations and as a whole run (env steps over seconds of iterations)."""
    from benchmarks import train_throughput

    run = train_throughput._v01_code_run(tmp_path, iterations=3, threads=2)
    if run is None:
        pytest.skip(f"this checkout lacks the git history holding {train_throughput.V01_COMMIT[:7]} (a shallow clone or an installed copy)")
    episodes, records = run
    assert episodes == 64 and len(records) == 3
    median = train_throughput._row("tiny", train_throughput.V01_VARIANT, episodes, records)
    assert median["measured"] == "median of 2 iterations" and median["env_steps_per_s"] > 0 and median["s_per_iteration"] > 0
    whole = train_throughput._whole_run_row("tiny", "whole", episodes, records)
    assert whole["env_steps"] == sum(record["env_steps"] for record in records) == records[-1]["env_steps_total"]
    assert whole["env_steps_per_s"] == pytest.approx(whole["env_steps"] / sum(record["time_iteration"] for record in records))
    assert (tmp_path / "code" / "agents" / "train.py").exists() and (tmp_path / "run" / "metrics.jsonl").exists()


def test_the_clean_sft_placeholder_becomes_the_unflattened_warm_start(tiny_policy, tmp_path):
    from benchmarks.repro_sokoban import CLEAN_SFT, sokoban_config

    config = sokoban_config(tiny_policy, tmp_path / "run", 0, 1_000, 0, 0, istar=True, prm_model=CLEAN_SFT)
    clean = Path(config.prm_model)
    assert clean == tiny_policy.with_name(tiny_policy.name + "-clean") and (clean / "config.json").is_file()
    assert sokoban_config(tiny_policy, tmp_path / "again", 0, 1_000, 0, 0, istar=True, prm_model=CLEAN_SFT).prm_model == str(clean)


# --- one real quick run of every module --------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``python benchmarks/run_all.py --quick`` once for this file (it costs minutes)."""
    out = tmp_path_factory.mktemp("bench-quick")
    done = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--quick", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=3600, check=False
    )
    data = json.loads((out / "results.json").read_text())
    return {"returncode": done.returncode, "output": done.stdout + done.stderr, "out": out, **data, "report": (out / "report.md").read_text()}


def test_quick_run_gives_every_module_a_result_and_none_fails(quick_run):
    assert set(quick_run["results"]) == set(run_all.discover())
    failed = {name: result["error"][-2000:] for name, result in quick_run["results"].items() if "error" in result}
    assert failed == {}
    assert quick_run["returncode"] == 0, quick_run["output"][-3000:]


def test_quick_run_metrics_are_finite_numbers(quick_run):
    for name, result in quick_run["results"].items():
        assert result["metrics"], name
        bad = {key: value for key, value in result["metrics"].items() if not isinstance(value, (int, float)) or not math.isfinite(value)}
        assert bad == {}, name


def test_quick_run_report_opens_with_the_machine_and_mode(quick_run):
    meta = quick_run["meta"]
    assert meta["mode"] == "quick" and meta["seconds"] > 0 and meta["machine"]["cores"] >= 1
    summary = quick_run["report"].split("\n## ", 2)[1]
    assert summary.startswith("Summary") and run_all.machine_line(meta["machine"]) in summary
    assert "Mode: quick" in summary


def test_quick_run_report_has_a_section_per_module_with_its_own_numbers(quick_run):
    report = quick_run["report"]
    for name, result in quick_run["results"].items():
        assert f"\n## {result['title']}\n" in report, name
        key, value = next(iter(result["metrics"].items()))
        assert f"| {key} | {run_all._cell(value)} |" in report, name


def test_quick_run_headline_rows_reach_the_summary_table(quick_run):
    rows = run_all.headline_rows(quick_run["results"])
    assert rows, "no module gave a headline"
    headline = quick_run["report"].split("### Headline", 1)[1].split("\n## ", 1)[0]
    for row in rows:
        assert f"| {row['measure']} | {run_all._cell(row['ours'])} |" in headline


def test_quick_run_keeps_every_plot_in_its_output_directory(quick_run):
    plots = [plot for result in quick_run["results"].values() for plot in result.get("plots", [])]
    assert plots and all(Path(plot).name == plot for plot in plots)  # names inside the output directory
    for plot in plots:
        assert (quick_run["out"] / plot).stat().st_size > 0
        assert f"]({plot})" in quick_run["report"]
