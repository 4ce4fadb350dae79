"""Peer packages run in their own virtual environments, so their pins never touch ours.

A peer that cannot be installed (no network, a broken release) yields None and a printed note;
the benchmark then reports our numbers alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent / ".peers"


def peer_python(name: str, requirements: list[str]) -> Path | None:
    """The Python of a venv with ``requirements`` installed (created once, then reused)."""
    root = PEERS_DIR / name
    python = root / "bin" / "python"
    marker = root / "installed.json"
    if marker.exists() and json.loads(marker.read_text()) == requirements:
        return python
    try:
        venv.create(root, with_pip=True, clear=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
            check=True, capture_output=True, text=True, timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        print(f"note: peer {name} ({' '.join(requirements)}) could not be installed: {detail.strip()[-300:]}", file=sys.stderr)
        return None
    marker.write_text(json.dumps(requirements))
    return python


def run_peer(python: Path, script: str, params: dict, timeout: float = 1800) -> dict | None:
    """Run ``script`` (Python source printing one JSON line last) under ``python`` with ``params``."""
    try:
        done = subprocess.run(
            [str(python), "-c", script, json.dumps(params)],
            check=True, capture_output=True, text=True, timeout=timeout,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        print(f"note: peer run failed: {(getattr(error, 'stderr', '') or str(error)).strip()[-300:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])
