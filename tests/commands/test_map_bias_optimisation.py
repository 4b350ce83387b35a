"""``glaciermap map --bias-optimisation`` and ``--region-vector region_vector.json`` end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from glaciermap import cli
from glaciermap.inference.bias_optimisation import load_region_vector, optimise_region
from glaciermap.models.pretrained import load_pretrained
from tests.data.checkpoints import save_tiny_region_checkpoint, scene_stats
from tests.data.scenes import write_scene


@pytest.fixture(autouse=True)
def only_this_command(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register just the command under test; one torch thread (the machine is shared)."""
    monkeypatch.setattr(cli, "COMMANDS", {"map": "glaciermap.commands.map"})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 64 x 96 scene and an untrained tiny region-encoding checkpoint (regions ALP, SVAL)."""
    root = tmp_path_factory.mktemp("bo")
    scene = write_scene(root / "scene", size=(64, 96), modalities=("optical", "dem"), labels=False)
    ckpt = save_tiny_region_checkpoint(root / "region.ckpt", scene_stats(scene))
    return {"root": root, "scene": scene, "ckpt": ckpt}


def _map(env: dict[str, Path], out: Path, *extra: str) -> int:
    argv = ["map", "--checkpoint", str(env["ckpt"]), "--scene", str(env["scene"]), "--out", str(out)]
    return cli.main([*argv, "--window-size", "32", "--no-quicklook", "--quiet", *extra])


def _classes(out: Path) -> np.ndarray:
    with rasterio.open(out / "classes.tif") as src:
        return src.read(1)


def test_bias_optimisation_writes_the_vector_and_its_trace(env: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "bo"
    assert _map(env, out, "--bias-optimisation", "--bo-windows", "4", "--bo-steps", "5", "--seed", "1") == 0
    saved = load_region_vector(out / "region_vector.json", ("ALP", "SVAL"))
    expected = optimise_region(
        load_pretrained(env["ckpt"]), env["scene"], windows=4, steps=5, seed=1, window_size=32, device="cpu"
    )
    assert saved.logits == pytest.approx(expected.logits, abs=1e-6)
    assert saved.windows == 4 and saved.window_size == 32 and saved.seed == 1 and saved.steps <= 5
    assert saved.entropy < saved.entropy_trace[0]
    summary = json.loads((out / "summary.json").read_text())
    record = summary["bias_optimisation"]
    assert record["file"] == "region_vector.json" and record["steps"] == saved.steps
    assert record["vector"] == [round(v, 6) for v in saved.probabilities]
    assert record["entropy_trace"] == [round(v, 6) for v in saved.entropy_trace]
    assert summary["location"]["region"] == "vector"
    assert summary["location"]["vector"] == pytest.approx(saved.probabilities, abs=1e-6)
    assert "region_vector.json" in summary["outputs"]
    assert not list(out.glob(".*partial*"))


def test_bo_lr_floor_reaches_the_optimisation_and_its_record(env: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "floor"
    argv = ("--bias-optimisation", "--bo-windows", "4", "--bo-steps", "20", "--bo-lr-floor", "0.3")
    assert _map(env, out, *argv) == 0
    expected = optimise_region(
        load_pretrained(env["ckpt"]),
        env["scene"],
        windows=4,
        steps=20,
        lr_floor=0.3,
        window_size=32,
        device="cpu",
    )
    saved = load_region_vector(out / "region_vector.json", ("ALP", "SVAL"))
    assert saved.lr_floor == 0.3 and saved.logits == pytest.approx(expected.logits, rel=1e-5, abs=1e-6)
    assert saved.stop_reason == expected.stop_reason and saved.lr_trace == expected.lr_trace
    record = json.loads((out / "summary.json").read_text())["bias_optimisation"]
    assert record["lr_floor"] == 0.3 and record["stop_reason"] == expected.stop_reason


def test_region_vector_file_reproduces_the_map(env: dict[str, Path], tmp_path: Path) -> None:
    first, again = tmp_path / "bo", tmp_path / "again"
    assert _map(env, first, "--bias-optimisation", "--bo-windows", "4", "--bo-steps", "5") == 0
    assert _map(env, again, "--region-vector", str(first / "region_vector.json")) == 0
    np.testing.assert_array_equal(_classes(again), _classes(first))
    with rasterio.open(first / "confidence.tif") as a, rasterio.open(again / "confidence.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
    one, two = (json.loads((p / "summary.json").read_text()) for p in (first, again))
    assert two["bias_optimisation"]["reused"] is True
    assert two["bias_optimisation"]["file"] == str(first / "region_vector.json")
    assert two["bias_optimisation"]["vector"] == one["bias_optimisation"]["vector"]
    assert not (again / "region_vector.json").exists()
    # mapping the first folder again without bias optimisation removes the stale region_vector.json
    assert _map(env, first) == 0
    assert not (first / "region_vector.json").exists()
    assert "bias_optimisation" not in json.loads((first / "summary.json").read_text())


def test_a_plain_list_is_recorded_as_reused(env: dict[str, Path], tmp_path: Path) -> None:
    vector = tmp_path / "v.json"
    vector.write_text("[0.25, 0.25, 0.5]")
    assert _map(env, tmp_path / "out", "--region-vector", str(vector)) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["bias_optimisation"] == {"file": str(vector), "reused": True, "vector": [0.25, 0.25, 0.5]}
    assert summary["location"]["vector"] == [0.25, 0.25, 0.5]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--region", "ALP"), "do not also give a region"),
        (("--window-size", "96"), "bias optimisation needs at least 2"),
        (("--bo-lr-floor", "-1"), "bo_lr_floor is -1.0; expected a learning rate >= 0"),
        (("--bo-lr-floor", "nan"), "bo_lr_floor is nan; expected a learning rate >= 0"),
    ],
)
def test_bad_bias_optimisation_requests_exit_2_writing_nothing(
    env: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    words: str,
) -> None:
    out = tmp_path / "out"
    assert _map(env, out, "--bias-optimisation", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not out.exists()


def test_a_region_vector_for_another_model_is_refused(
    env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "bo"
    assert _map(env, first, "--bias-optimisation", "--bo-windows", "2", "--bo-steps", "1") == 0
    data = json.loads((first / "region_vector.json").read_text())
    data["region_codes"] = ["XX", "YY", "unseen"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    assert _map(env, tmp_path / "out", "--region-vector", str(other)) == 2
    assert "do not match the model's" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
