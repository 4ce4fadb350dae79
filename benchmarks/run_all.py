"""Run every benchmark module, each in a fresh process, and write one report.

    python benchmarks/run_all.py            # defaults: every module, about 25 min on 2 CPU cores
    python benchmarks/run_all.py --quick    # smoke-sized, about 3 min (CI)
    python benchmarks/run_all.py --full     # paper-scale settings, for big machines and GPUs
    python benchmarks/run_all.py --only sokoban_throughput,prm_scaling

A benchmark is any ``benchmarks/<name>.py`` (not starting with ``_``) with
``run(quick: bool = False, full: bool = False) -> dict``; its docstring says what ``quick``, the
default and ``full`` measure (sizes, episodes, model, device). The dict holds

- ``title``: the heading of its section in the report;
- ``metrics``: flat ``{name: finite number}``, the machine-readable results;
- optionally ``table`` (rows of dicts), ``notes`` (what was measured and what a mode cuts) and
  ``plots`` (PNG paths, written under ``$ISTAR_BENCH_OUT``);
- optionally ``headline``: one row or a list of rows for the summary table that opens the report,
  each ``{"measure": str, "ours": number, "baseline": str, "baseline_value": number, "ratio": number}``.
  ``measure`` (units included, e.g. "reset 10x10 / 3 boxes, median ms") and ``ours`` are required;
  ``baseline`` names what ours is compared with (a peer package, the naive method, plain RLOO) and
  ``ratio`` says how many times better ours is (a peer's time over ours, ours' success over the
  baseline's), so above 1 is always better.

Each module runs in its own Python process, so its memory and import state are its own (a module
measuring peak RSS does not see a model the previous one loaded) and a crash or a timeout in one
is recorded in its section while the others still run. The report gives each module's wall and
CPU seconds (on a shared machine the first also counts other work's turns). Output goes to
``benchmarks/results/<timestamp>/`` (or ``--out``): ``results.json``, ``report.md``, the PNGs, one
log per module under ``logs/`` and, under ``warm_starts/``, the warm-started policies that several
modules share (built by the first that needs one); ``benchmarks/results/latest`` then points at the
newest default output directory.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
MODES = ("quick", "default", "full")
# Per-module wall-clock limit: a safety net far above each mode's budget, not the budget itself.
TIMEOUT_S = {"quick": 600, "default": 3600, "full": None}


def discover() -> list[str]:
    """Names of the benchmark modules, in alphabetical order."""
    return sorted(path.stem for path in BENCH_DIR.glob("*.py") if not path.stem.startswith("_") and path.stem != "run_all")


def run_module(name: str, mode: str, out: Path, timeout: float | None = None) -> dict:
    """Run one benchmark in a fresh Python process; a failure, crash or timeout is recorded in the
    result (``error``), not raised, so one broken module does not hide the others' numbers."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log, result_file = logs / f"{name}.log", logs / f"{name}.json"
    result_file.unlink(missing_ok=True)
    # ``-m`` from the repository root makes ``benchmarks`` (and the reference ``agents``) importable.
    command = [sys.executable, "-m", "benchmarks.run_all", "--child", name, "--child-result", str(result_file)]
    command += {"quick": ["--quick"], "default": [], "full": ["--full"]}[mode]
    start, cpu_start = time.perf_counter(), _children_cpu_seconds()
    with open(log, "w") as log_file:
        # A session of its own, so a timeout ends the module's helper processes (peer venvs) too.
        process = subprocess.Popen(
            command, cwd=REPO_DIR, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "ISTAR_BENCH_OUT": str(out)}, start_new_session=True
        )
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # also on Ctrl-C, which the module's own session does not receive
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    seconds = round(time.perf_counter() - start, 2)
    if result_file.exists():
        result = json.loads(result_file.read_text())
    elif timed_out:
        result = {"title": name, "error": f"timed out after {timeout:.0f} s (see --timeout)\n{_tail(log)}"}
    else:
        result = {"title": name, "error": f"process exited with code {process.returncode}\n{_tail(log)}"}
    if "error" not in result:
        problems = check_result(result)
        if problems:
            result["error"] = "result breaks the benchmark contract: " + "; ".join(problems)
    if not isinstance(result.get("title"), str):
        result["title"] = name
    result["seconds"] = seconds
    result["cpu_seconds"] = round(_children_cpu_seconds() - cpu_start, 2)
    return result


def check_result(result: dict) -> list[str]:
    """What in a module's result breaks the contract in this module's docstring (empty if nothing)."""
    problems = []
    if not isinstance(result.get("title"), str):
        problems.append("'title' must be a string")
    metrics = result.get("metrics")
    if not isinstance(metrics, dict):
        problems.append("'metrics' must be a dict of finite numbers")
    else:
        bad = [key for key, value in metrics.items() if not _is_finite_number(value)]
        if bad:
            problems.append(f"metrics {bad} are not finite numbers (leave out what was not measured)")
    for index, row in enumerate(headline_of(result)):
        if not isinstance(row, dict) or not isinstance(row.get("measure"), str) or "ours" not in row:
            problems.append(f"headline row {index} needs 'measure' (text) and 'ours' (a number): got {row!r}")
            continue
        bad = [key for key in ("ours", "baseline_value", "ratio") if key in row and not _is_finite_number(row[key])]
        if bad:
            problems.append(f"headline row {row['measure']!r}: {bad} are not finite numbers")
    return problems


def headline_of(result: dict) -> list:
    """A result's headline as a list of rows (it may give one row as a dict)."""
    headline = result.get("headline") or []
    return [headline] if isinstance(headline, dict) else list(headline)


def headline_rows(results: dict[str, dict]) -> list[dict]:
    """Every successful module's headline rows, in module order, each with ``benchmark``: its module."""
    return [{"benchmark": name, **row} for name, result in results.items() if "error" not in result for row in headline_of(result)]


def machine() -> dict:
    """What the numbers were measured on."""
    info = {"cpu": platform.processor() or None, "cores": len(os.sched_getaffinity(0)), "memory_gib": None}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), info["cpu"])
        with open("/proc/meminfo") as meminfo:
            info["memory_gib"] = round(int(meminfo.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch"] = torch.__version__
    except ImportError:
        info["gpu"], info["torch"] = None, None
    info["python"] = platform.python_version()
    info["platform"] = platform.platform()
    return info


def machine_line(info: dict) -> str:
    """One line naming the machine, for the report and the README."""
    return (
        f"Machine: {info.get('cpu') or 'unknown CPU'}, {info['cores']} cores, "
        f"{info.get('memory_gib') or '?'} GiB memory, GPU: {info.get('gpu') or 'none'}, "
        f"torch {info.get('torch') or 'not installed'}, Python {info['python']} ({info['platform']})"
    )


def write_report(out: Path, results: dict, meta: dict) -> Path:
    """``report.md``: a summary (machine, mode, time, headline table, module times), then one
    section per benchmark with its table, metrics, notes and plots."""
    failed = [name for name, result in results.items() if "error" in result]
    lines = [
        "# istar-gym benchmark report",
        "",
        "## Summary",
        "",
        machine_line(meta["machine"]),
        "",
        (
            f"Mode: {meta['mode']} (`{meta['command']}`; each section's notes say what this mode measures), "
            f"started {meta['started']}, {meta['seconds']:.0f} s in all; "
            f"{len(results)} modules, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}."
        ),
        "",
    ]
    headline = [
        {
            "benchmark": f"[{row['benchmark']}](#{_anchor(results[row['benchmark']]['title'])})",
            "measure": row["measure"],
            "istar-gym": row["ours"],
            "baseline": row.get("baseline", ""),
            "baseline value": row.get("baseline_value", ""),
            "ratio (>1: ours better)": row.get("ratio", ""),
        }
        for row in headline_rows(results)
    ]
    if headline:
        lines += ["### Headline", "", *_markdown_table(headline), ""]
    lines += ["### Modules", ""]
    lines += _markdown_table(
        [
            {
                "benchmark": f"[{result['title']}](#{_anchor(result['title'])})",
                "module": f"`benchmarks/{name}.py`",
                "seconds": result["seconds"],
                "CPU seconds": result["cpu_seconds"],
                "status": "failed" if "error" in result else "ok",
            }
            for name, result in results.items()
        ]
    ) + [""]
    if meta.get("summary_plot"):
        lines += [f"![speed-ups]({meta['summary_plot']})", ""]
    for name, result in results.items():
        lines += [f"## {result['title']}", "", f"`benchmarks/{name}.py`, {result['seconds']} s ({result['cpu_seconds']} CPU s).", ""]
        if "error" in result:
            lines += ["**Failed:**", "", "```", result["error"].strip(), "```", ""]
            continue
        if result.get("table"):
            lines += _markdown_table(result["table"]) + [""]
        if result.get("metrics"):
            lines += _markdown_table([{"metric": key, "value": value} for key, value in result["metrics"].items()]) + [""]
        if result.get("notes"):
            lines += [result["notes"], ""]
        for plot in result.get("plots", []):
            lines += [f"![{Path(plot).stem}]({Path(plot).name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def plot_speedups(out: Path, results: dict) -> Path | None:
    """One bar per headline ratio (ours over a peer, the fast path over the naive one, ...), log scale."""
    bars = {
        f"{row['measure']}\nvs {row.get('baseline', 'baseline')}": row["ratio"]
        for row in headline_rows(results)
        if _is_finite_number(row.get("ratio")) and row["ratio"] > 0
    }
    if not bars:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 0.6 * len(bars) + 1.2))
    axes.barh(list(bars), list(bars.values()), color="#4c72b0")
    axes.set_xscale("log")
    axes.axvline(1, color="grey", linewidth=1)
    axes.tick_params(axis="y", labelsize=8)
    axes.set_xlabel("ratio, ours over the baseline (x, log scale; above 1: ours better)")
    axes.invert_yaxis()
    figure.tight_layout()
    path = out / "speedups.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke-sized run (under 5 minutes)")
    size.add_argument("--full", action="store_true", help="paper-scale settings (big machines, GPUs)")
    parser.add_argument("--only", default="", help="comma-separated module names (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: results/<timestamp>)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=f"seconds one module may run before it is stopped and recorded as failed (default by mode: {TIMEOUT_S}; 0: no limit)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full" if args.full else "default"
    if args.child:
        return _child(args.child, mode, args.child_result)

    names = discover()
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}; available: {names}")
        names = wanted
    timeout = TIMEOUT_S[mode] if args.timeout is None else (args.timeout or None)
    started = datetime.now(UTC)
    out = (args.out or RESULTS_DIR / started.strftime("%Y%m%dT%H%M%SZ")).resolve()
    out.mkdir(parents=True, exist_ok=True)

    from tqdm import tqdm

    results = {}
    progress = tqdm(names, desc="benchmarks", unit="module")
    for name in progress:
        progress.set_postfix_str(name)
        results[name] = run_module(name, mode, out, timeout)
        for plot in results[name].get("plots", []):
            if Path(plot).exists() and Path(plot).parent.resolve() != out:
                shutil.copy(plot, out / Path(plot).name)
        if "plots" in results[name]:  # recorded relative to the output directory, which travels whole
            results[name]["plots"] = [Path(plot).name for plot in results[name]["plots"]]
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "mode": mode,
        "command": " ".join(["python benchmarks/run_all.py", *(sys.argv[1:] if argv is None else argv)]),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "machine": machine(),
    }
    speedups = plot_speedups(out, results)
    if speedups:
        meta["summary_plot"] = speedups.name
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    report = write_report(out, results, meta)
    if args.out is None:
        _point_latest(out)
    failed = [name for name, result in results.items() if "error" in result]
    print(f"wrote {report} and results.json" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _child(name: str, mode: str, result_file: Path) -> int:
    """Body of a module's own process: run it and leave its result (or its traceback) as JSON."""
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        if mode == "full" and "full" not in inspect.signature(module.run).parameters:
            raise TypeError(f"benchmarks/{name}.py: run() has no `full` keyword; define run(quick=False, full=False)")
        result = module.run(**({"quick": True} if mode == "quick" else {"full": True} if mode == "full" else {}))
        text = json.dumps(result, default=_jsonable)
    except Exception:  # noqa: BLE001 - reported in the output and the exit code
        text = json.dumps({"title": name, "error": traceback.format_exc(limit=8)})
    result_file.write_text(text)
    return 0


def _point_latest(out: Path) -> None:
    """``results/latest`` -> the newest output directory (replaced atomically)."""
    link = RESULTS_DIR / "latest"
    staging = RESULTS_DIR / f".latest-{os.getpid()}"
    staging.unlink(missing_ok=True)
    staging.symlink_to(out.name if out.parent == RESULTS_DIR.resolve() else out, target_is_directory=True)
    os.replace(staging, link)


def _markdown_table(rows: list[dict]) -> list[str]:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    return lines


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _anchor(title: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    kept = "".join(char for char in title.lower() if char.isalnum() or char in " -_")
    return kept.replace(" ", "-")


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _children_cpu_seconds() -> float:
    """CPU time of finished child processes (and theirs): on a shared machine, wall time also counts
    other processes' turns."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tail(log: Path, characters: int = 3000) -> str:
    return log.read_text(errors="replace")[-characters:] if log.exists() else ""


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
