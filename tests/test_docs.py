"""The documentation site builds with ``mkdocs build --strict`` and holds an API page per subpackage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: API page -> a name its reference must contain (from the docstrings, so an empty page fails).
API_PAGES = {
    "core": "glaciermap.errors",
    "raster": "RasterGrid",
    "transforms": "NormStats",
    "metrics": "ConfusionMatrix",
    "datasets": "SceneDataset",
    "synthetic": "generate_scene",
    "models": "GlaViTU",
    "inference": "map_scene",
    "baselines": "BandRatio",
    "datamodules": "SceneDataModule",
    "callbacks": "Throughput",
    "tasks": "SegmentationTask",
    "inventory": "build_inventory",
    "evaluation": "evaluate",
}


def test_every_subpackage_has_an_api_page() -> None:
    """Each subpackage of ``glaciermap`` (and ``raster``) is listed in the API reference."""
    packages = {p.parent.name for p in (ROOT / "glaciermap").glob("*/*.py")} - {"commands", "weights"}
    pages = {p.stem for p in (ROOT / "docs" / "api").glob("*.md")}
    assert packages <= pages, f"no API page for {sorted(packages - pages)}"
    assert set(API_PAGES) <= pages


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` succeeds offline and writes the user guide and the API pages."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    assert (site / "index.html").is_file()
    for page in ("mapping", "inventory", "api"):
        assert (site / page / "index.html").is_file(), page
    for page, name in API_PAGES.items():
        html = (site / "api" / page / "index.html").read_text(encoding="utf-8")
        assert name in html, f"api/{page} does not document {name}"
    models = (site / "api" / "models" / "index.html").read_text(encoding="utf-8")
    assert 'id="glaciermap.models.GlaViTU"' in models
    # offline: the theme must not pull fonts from Google at view time either
    assert "fonts.googleapis.com" not in (site / "index.html").read_text(encoding="utf-8")
