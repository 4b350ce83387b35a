"""``glaciermap map`` end to end: band ratio and a checkpoint, several scenes, and bad input (status 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from glaciermap import cli
from glaciermap.baselines import band_ratio_classes
from glaciermap.synthetic.generate import generate_scene
from tests.data.checkpoints import save_tiny_checkpoint, scene_stats
from tests.data.scenes import write_scene


@pytest.fixture(autouse=True)
def only_this_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register just the command under test (keeps the test independent of the others' modules)."""
    monkeypatch.setattr(cli, "COMMANDS", {"map": "glaciermap.commands.map"})


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic glacier scene (odd size, nodata stripes)."""
    return generate_scene(
        tmp_path_factory.mktemp("synth") / "karakoram", size=(90, 130), seed=3, nodata_stripes=True
    )


def test_map_band_ratio_scene(synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    status = cli.main(
        ["map", "--model", "band-ratio", "--scene", str(synthetic), "--out", str(out), "--window-size", "64"]
    )
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "classes.tif",
        "confidence.tif",
        "quicklook.png",
        "summary.json",
    ]
    expected = band_ratio_classes(synthetic)
    with rasterio.open(out / "classes.tif") as src, rasterio.open(synthetic / "optical.tif") as ref:
        np.testing.assert_array_equal(src.read(1), expected)
        assert (src.crs, src.transform, src.shape) == (ref.crs, ref.transform, ref.shape)
    with rasterio.open(out / "confidence.tif") as src:
        conf = src.read(1)
    assert (conf[expected == 255] == -9999).all()
    np.testing.assert_allclose(conf[expected != 255], 1.0, atol=3e-5)  # a hard rule is fully confident
    summary = json.loads((out / "summary.json").read_text())
    assert summary["area_km2"]["glacier"] == pytest.approx((expected == 1).sum() * 1e-4)
    assert summary["region"] == "HMA" and summary["model"]["model"] == "band_ratio"
    assert summary["km2_per_s"] > 0 and summary["seconds"] > 0
    printed = capsys.readouterr().out
    assert "karakoram: glacier" in printed and "km2/s" in printed


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ckpt")
    stats_scene = write_scene(root / "stats", size=(16, 16), modalities=("optical", "dem"), labels=False)
    return save_tiny_checkpoint(root / "tiny.ckpt", scene_stats(stats_scene))


def test_map_checkpoint_over_a_folder_of_scenes(checkpoint: Path, tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    for name, size in (("a", (40, 48)), ("b", (56, 33))):
        write_scene(scenes / name, size=size, modalities=("optical", "dem"), labels=False)
    ckpt = checkpoint
    out = tmp_path / "maps"
    status = cli.main(
        [
            "map",
            "--checkpoint",
            str(ckpt),
            "--scene",
            str(scenes),
            "--out",
            str(out),
            "--window-size",
            "32",
            "--probabilities",
            "--no-quicklook",
            "--quiet",
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    for name, size in (("a", (40, 48)), ("b", (56, 33))):
        with rasterio.open(out / name / "probabilities.tif") as src:
            probs = src.read()
        assert probs.shape == (2, *size)
        np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["model"]["checkpoint"] == str(ckpt) and summary["options"]["write_probabilities"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--overlap", "1.5"], "overlap is 1.5"),
        (["--window-size", "0"], "window_size is 0"),
        (["--band-ratio-thresholds", "t.json"], None),  # thresholds file missing
        (["--region-vector", "missing.json"], "--region-vector"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str | None
) -> None:
    out = tmp_path / "out"
    args = ["map", "--model", "band-ratio", "--scene", str(synthetic), "--out", str(out), "--quiet", *extra]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glaciermap map: error:") and len(err.splitlines()) == 1
    assert message is None or message in err
    assert not out.exists() or not any(out.iterdir())


def test_scene_without_the_checkpoint_modalities(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    optical_only = write_scene(
        tmp_path / "optical_only", size=(32, 32), modalities=("optical",), labels=False
    )
    out = tmp_path / "out"
    args = [
        "map",
        "--checkpoint",
        str(checkpoint),
        "--scene",
        str(optical_only),
        "--out",
        str(out),
        "--quiet",
    ]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "has no dem.tif" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_corrupt_checkpoint(synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_text("not a checkpoint")
    assert (
        cli.main(["map", "--checkpoint", str(bad), "--scene", str(synthetic), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err


def test_bf16_run_names_its_precision_and_the_layers_kept_in_float32(
    checkpoint: Path,
    synthetic: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from glaciermap.models import cpu_bf16

    monkeypatch.setattr(cpu_bf16, "bf16_convolution_is_exact", lambda *shape: False)  # every kernel "wrong"
    out = tmp_path / "out"
    argv = ["map", "--checkpoint", str(checkpoint), "--scene", str(synthetic), "--out", str(out)]
    assert cli.main([*argv, "--window-size", "32", "--device", "cpu", "--precision", "bf16"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["precision"] == "bf16" and summary["float32_layers"]
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    names = summary["float32_layers"]
    assert "km2/s, bf16)" in printed and len(names) > 3
    assert (
        f"karakoram: {', '.join(names[:3])} and {len(names) - 3} more (summary.json) ran in float32"
        in printed
    )
