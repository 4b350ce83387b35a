"""Faults: SIGTERM, SIGINT and kill -9 in the middle of a run, and a disk that fills up.

After SIGTERM or SIGINT a command exits 143 / 130 with one line and leaves nothing behind: neither a final-named
file nor a hidden temporary one. After kill -9 nothing can clean up, but no final-named file appears (every
output is written under a temporary name and renamed at the end), so a killed run is never mistaken for a
finished one. The disk-full test mounts a 2 MB tmpfs and needs root; elsewhere it is skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from tests.data.scenes import write_scene

ROOT = Path(__file__).resolve().parents[2]
FINAL = {"classes.tif", "confidence.tif", "summary.json", "quicklook.png"}


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "glaciermap", *args], cwd=cwd, env=env, stderr=subprocess.PIPE, text=True
    )


def _wait_for_partial(folder: Path, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    """Wait until the run has started writing (a hidden temporary file exists in ``folder``)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"the run ended (status {proc.returncode}) before it could be interrupted: {err}")
        if folder.exists() and any(p.name.startswith(".") and ".stream-" in p.name for p in folder.iterdir()):
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the run did not start writing in time")


@pytest.fixture(scope="module")
def big_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scene large enough for a few seconds of mapping with the bundled model."""
    return write_scene(
        tmp_path_factory.mktemp("faults") / "scene",
        size=(1536, 1536),
        modalities=("optical", "dem", "thermal", "insar"),
        labels=False,
    )


def _map_args(scene: Path, out: Path) -> list[str]:
    weights = ROOT / "glaciermap" / "weights" / "synthetic_cpu.safetensors"
    flags = ["--quiet", "--batch-size", "1", "--no-range-check"]  # the test scene's values grow with its rows
    return ["map", "--checkpoint", str(weights), "--scene", str(scene), "--out", str(out), *flags]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_map_interrupted_cleans_up(big_scene: Path, tmp_path: Path, sig: int, status: int) -> None:
    out = tmp_path / "out"
    proc = _start(_map_args(big_scene, out), tmp_path)
    _wait_for_partial(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert len(err.strip().splitlines()) == 1 and ("terminated" in err or "interrupted" in err), err
    assert not out.exists() or list(out.iterdir()) == []  # nothing left, not even hidden files


@pytest.mark.slow
def test_map_killed_leaves_no_final_file(big_scene: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _start(_map_args(big_scene, out), tmp_path)
    _wait_for_partial(out, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (
        {p.name for p in out.iterdir()} & FINAL
    )  # only hidden temporaries, never a complete-looking file


def _class_raster(path: Path, size: int = 3000) -> Path:
    rng = np.random.default_rng(0)
    classes = np.zeros((size, size), np.uint8)
    for r, c in rng.integers(0, size - 40, (6000, 2)):
        classes[r : r + 30, c : c + 30] = 1
    profile = {
        "driver": "GTiff", "height": size, "width": size, "count": 1, "dtype": "uint8", "crs": "EPSG:32643",
        "transform": from_origin(500000, 4000000, 10, 10), "nodata": 255, "tiled": True,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(classes, 1)
    dem = path.with_name("dem.tif")
    profile.update(dtype="float32", nodata=-9999.0)
    with rasterio.open(dem, "w", **profile) as dst:
        rows = np.arange(size, dtype=np.float32)[:, None]
        dst.write(np.broadcast_to(4000.0 + rows, (size, size)).astype(np.float32), 1)
    return path


@pytest.mark.slow
def test_inventory_terminated_cleans_up(tmp_path: Path) -> None:
    classes = _class_raster(tmp_path / "classes.tif")
    out = tmp_path / "inv"
    out.mkdir()
    proc = _start(
        [
            "inventory",
            "--classes",
            str(classes),
            "--dem",
            str(tmp_path / "dem.tif"),
            "--out",
            str(out / "i.gpkg"),
        ],
        tmp_path,
    )
    time.sleep(3.0)
    if proc.poll() is not None:
        pytest.skip("the inventory finished before it could be interrupted on this machine")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert list(out.iterdir()) == []


def _tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_disk_full_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "scene", size=(1024, 1024), modalities=("optical",), labels=False)
    mount = tmp_path / "small"
    if not _tmpfs(mount, "128k"):  # the map's outputs take about 380 kB
        pytest.skip("needs root and tmpfs to simulate a full disk")
    try:
        out = mount / "out"
        proc = _start(
            [
                "map",
                "--model",
                "band-ratio",
                "--scene",
                str(scene),
                "--out",
                str(out),
                "--quiet",
                "--probabilities",
                "--no-range-check",
            ],
            tmp_path,
        )
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err
        # GDAL's libtiff layer may print its own "No space left on device" lines first; ours is the last line
        last = err.strip().splitlines()[-1]
        assert last.startswith("glaciermap map: error: no space left"), err
        assert "Traceback" not in err, err
        assert not out.exists() or list(out.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_read_only_output_is_refused(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "scene", size=(64, 64), modalities=("optical",), labels=False)
    mount = tmp_path / "ro"
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only file system")
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        pytest.skip("tmpfs cannot be mounted here")
    try:
        proc = _start(
            ["map", "--model", "band-ratio", "--scene", str(scene), "--out", str(mount / "out")], tmp_path
        )
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and "not writable" in err, err
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture(scope="module")
def crevasse_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic crevasse world of 2,760 split-images (about 15 s of classification on 2 cores).

    The 8 s interrupt must land mid-run: 1,200 split-images finished in 9 s once the vario function got faster.
    """
    from glaciermap.synthetic.crevasses import generate_crevasse_world

    return generate_crevasse_world(tmp_path_factory.mktemp("crevasse") / "world", seed=3, tiles=(60, 46))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_classify_interrupted_cleans_up(crevasse_scene: Path, tmp_path: Path, sig: int, status: int) -> None:
    out = tmp_path / "out"
    args = [
        "classify",
        "--checkpoint",
        "crevasse_varionet_synthetic",
        "--image",
        str(crevasse_scene / "pan.tif"),
    ]
    proc = _start([*args, "--out", str(out)], tmp_path)
    time.sleep(8.0)
    if proc.poll() is not None:
        pytest.skip("classify finished before it could be interrupted on this machine")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert len(err.strip().splitlines()) == 1 and ("terminated" in err or "interrupted" in err), err
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.slow
def test_classify_killed_leaves_no_final_file(crevasse_scene: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "classify",
        "--checkpoint",
        "crevasse_varionet_synthetic",
        "--image",
        str(crevasse_scene / "pan.tif"),
    ]
    proc = _start([*args, "--out", str(out)], tmp_path)
    time.sleep(8.0)
    if proc.poll() is not None:
        pytest.skip("classify finished before it could be killed on this machine")
    proc.kill()
    proc.communicate(timeout=60)
    final = {"tiles.gpkg", "classes.tif", "confidence.tif", "quicklook.png", "summary.json"}
    assert not out.exists() or not ({p.name for p in out.iterdir()} & final)


def _disk_full_run(args: list[str], out: Path, cwd: Path) -> None:
    """Run a command whose output goes to a full (tiny) tmpfs; one error line, nothing left behind."""
    proc = _start(args, cwd)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, err
    last = err.strip().splitlines()[-1]
    assert "no space left" in last and last.startswith("glaciermap "), err
    assert "Traceback" not in err, err
    assert not out.exists() or (out.is_dir() and list(out.iterdir()) == [])


@pytest.mark.slow
def test_disk_full_inventory_and_classify(tmp_path: Path, crevasse_scene: Path) -> None:
    classes = _class_raster(tmp_path / "classes.tif")
    mount = tmp_path / "tiny"
    if not _tmpfs(mount, "64k"):
        pytest.skip("needs root and tmpfs to simulate a full disk")
    try:
        inv = mount / "inv"
        inv.mkdir()
        args = [
            "inventory",
            "--classes",
            str(classes),
            "--dem",
            str(tmp_path / "dem.tif"),
            "--out",
            str(inv / "i.gpkg"),
        ]
        _disk_full_run(args, inv, tmp_path)
        out = mount / "classified"
        args = [
            "classify",
            "--checkpoint",
            "crevasse_varionet_synthetic",
            "--image",
            str(crevasse_scene / "pan.tif"),
        ]
        _disk_full_run([*args, "--out", str(out)], out, tmp_path)
    finally:
        subprocess.run(["umount", str(mount)], check=False)
