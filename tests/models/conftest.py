"""Shared helpers of the model tests: where the GlaViTU parity fixtures live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURE_H5 = "glavitu-optical-dem-random.weights.h5"
FIXTURE_IO = "glavitu-optical-dem-random.io.npz"


def shared_fixture_dir() -> Path:
    """``$GLACIERMAP_SHARED/fixtures``, else ``../shared/fixtures`` beside the repository root."""
    env = os.environ.get("GLACIERMAP_SHARED")
    base = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared"
    return base / "fixtures"


@pytest.fixture(scope="session")
def keras_fixture() -> tuple[Path, Path]:
    """Paths of the random-weight Keras ``.h5`` of GlaViTU (Optical+DEM) and its input/output ``.npz``."""
    d = shared_fixture_dir()
    h5, io = d / FIXTURE_H5, d / FIXTURE_IO
    if not (h5.is_file() and io.is_file()):
        pytest.skip(f"GlaViTU Keras fixtures not found in {d} (set GLACIERMAP_SHARED to the shared folder)")
    return h5, io
