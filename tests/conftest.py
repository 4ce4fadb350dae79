"""Shared test setup: headless pygame and the location of the real data shipped beside the repo."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ISTAR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (Boxoban levels, official Sotopia profiles); skip if this checkout lacks it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data directory {SHARED_DATA} is absent (set ISTAR_SHARED_DATA)")
    return SHARED_DATA
