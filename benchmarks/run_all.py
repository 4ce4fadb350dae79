"""Run every benchmark module and write one report.

    python benchmarks/run_all.py            # defaults: every module, CPU-sized
    python benchmarks/run_all.py --quick    # a smoke-sized run (CI)
    python benchmarks/run_all.py --full     # paper-scale settings, for big machines and GPUs
    python benchmarks/run_all.py --only sokoban_throughput,prm_scaling

A benchmark is any ``benchmarks/<name>.py`` (not starting with ``_``) with
``run(quick: bool = False) -> dict`` (optionally also a ``full`` keyword). The dict holds a
``title``, flat numeric ``metrics``, and optionally a ``table`` (rows of dicts), ``notes`` and
``plots`` (PNG paths written under ``$ISTAR_BENCH_OUT``). Output goes to
``benchmarks/results/<timestamp>/`` as ``results.json``, ``report.md`` and the PNGs.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import platform
import shutil
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from tqdm import tqdm  # noqa: E402


def discover() -> list[str]:
    """Names of the benchmark modules, in alphabetical order."""
    return sorted(
        path.stem for path in BENCH_DIR.glob("*.py") if not path.stem.startswith("_") and path.stem != "run_all"
    )


def run_module(name: str, quick: bool, full: bool) -> dict:
    """Import and run one benchmark; a failure is recorded, not raised, so one broken module
    does not hide the others' numbers."""
    start = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        kwargs = {"quick": quick}
        if "full" in inspect.signature(module.run).parameters:
            kwargs["full"] = full
        result = module.run(**kwargs)
    except Exception:  # noqa: BLE001 - reported in the output and the exit code
        result = {"title": name, "error": traceback.format_exc(limit=8)}
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def machine() -> dict:
    """What the numbers were measured on."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), None)
        with open("/proc/meminfo") as meminfo:
            info["memory_gib"] = round(int(meminfo.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def write_report(out: Path, results: dict, meta: dict) -> Path:
    """``report.md``: one section per benchmark with its table, metrics, notes and plots."""
    lines = [
        "# istar-gym benchmark report",
        "",
        f"Run {meta['started']} ({meta['mode']} mode), {meta['seconds']:.0f} s in all.",
        "",
        "Machine: " + ", ".join(f"{key} {value}" for key, value in meta["machine"].items() if value is not None),
        "",
    ]
    if meta.get("summary_plot"):
        lines += [f"![speed-ups]({meta['summary_plot']})", ""]
    for name, result in results.items():
        lines += [f"## {result.get('title', name)}", "", f"`benchmarks/{name}.py`, {result['seconds']} s.", ""]
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
    """One bar chart of every ``*_speedup`` metric (ours over a peer, or fast path over slow), log scale."""
    bars = {
        f"{name}: {key.removesuffix('_speedup')}": value
        for name, result in results.items()
        for key, value in result.get("metrics", {}).items()
        if key.endswith("_speedup") and isinstance(value, (int, float)) and value > 0
    }
    if not bars:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 0.4 * len(bars) + 1.2))
    axes.barh(list(bars), list(bars.values()), color="#4c72b0")
    axes.set_xscale("log")
    axes.axvline(1, color="grey", linewidth=1)
    axes.set_xlabel("speed-up (x, log scale)")
    axes.invert_yaxis()
    figure.tight_layout()
    path = out / "speedups.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke-sized run (minutes)")
    size.add_argument("--full", action="store_true", help="paper-scale settings (big machines, GPUs)")
    parser.add_argument("--only", default="", help="comma-separated module names (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: results/<timestamp>)")
    args = parser.parse_args(argv)

    names = discover()
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}; available: {names}")
        names = wanted
    started = datetime.now(timezone.utc)
    out = args.out or BENCH_DIR / "results" / started.strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    os.environ["ISTAR_BENCH_OUT"] = str(out)
    mode = "quick" if args.quick else "full" if args.full else "default"

    results = {}
    progress = tqdm(names, desc="benchmarks", unit="module")
    for name in progress:
        progress.set_postfix_str(name)
        results[name] = run_module(name, quick=args.quick, full=args.full)
        for plot in results[name].get("plots", []):
            if Path(plot).parent.resolve() != out.resolve():
                shutil.copy(plot, out / Path(plot).name)
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "mode": mode,
        "seconds": (datetime.now(timezone.utc) - started).total_seconds(),
        "machine": machine(),
    }
    speedups = plot_speedups(out, results)
    if speedups:
        meta["summary_plot"] = speedups.name
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=_jsonable))
    report = write_report(out, results, meta)
    failed = [name for name, result in results.items() if "error" in result]
    print(f"wrote {report} and results.json" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _markdown_table(rows: list[dict]) -> list[str]:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    return lines


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
