"""``glaciermap calibrate`` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glaciermap import cli
from glaciermap.inference import load_pretrained
from tests.data.checkpoints import save_tiny_checkpoint, scene_stats
from tests.data.scenes import write_scene


@pytest.fixture(autouse=True)
def only_this_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register just the command under test."""
    monkeypatch.setattr(cli, "COMMANDS", {"calibrate": "glaciermap.commands.calibrate"})


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny checkpoint and a folder of two labelled scenes plus a held-out one."""
    root = tmp_path_factory.mktemp("calibrate")
    stats_scene = write_scene(root / "stats", size=(16, 16), modalities=("optical", "dem"), labels=False)
    ckpt = save_tiny_checkpoint(root / "tiny.ckpt", scene_stats(stats_scene))
    for name, size in (("a", (48, 48)), ("b", (40, 56))):
        write_scene(root / "cal" / name, size=size, modalities=("optical", "dem"))
    held = write_scene(root / "held", size=(48, 40), modalities=("optical", "dem"))
    return {"root": root, "ckpt": ckpt, "cal": root / "cal", "held": held}


def test_calibrate_prints_ece_and_writes_weights(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The table shows ECE before and after; the weights and the report carry the calibrator."""
    out, report = setup["root"] / "w.safetensors", setup["root"] / "report.json"
    argv = ["calibrate", "--checkpoint", str(setup["ckpt"]), "--scenes", str(setup["cal"])]
    argv += ["--heldout", str(setup["held"]), "--method", "isotonic", "--out", str(out)]
    assert cli.main([*argv, "--report", str(report), "--window-size", "32", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "ECE_100" in text and "calibration" in text and "heldout" in text
    data = json.loads(report.read_text())
    assert data["ece"]["calibration"]["after"] < data["ece"]["calibration"]["before"]
    assert [s["scene"] for s in data["scenes"]] == ["a", "b", "held"]
    mapping = load_pretrained(out)
    assert mapping.calibrator is not None and mapping.calibrator.to_dict()["kind"] == "isotonic"  # type: ignore[attr-defined]
    assert mapping.metadata["calibration"]["scenes"] == ["a", "b"]


def test_bad_inputs(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """No labels, wrong method, out a folder or not .safetensors: exit 2 and one line."""
    bare = write_scene(setup["root"] / "bare", size=(32, 32), modalities=("optical", "dem"), labels=False)
    base = ["calibrate", "--checkpoint", str(setup["ckpt"]), "--window-size", "32", "--device", "cpu"]
    cases = [
        (["--scenes", str(bare), "--out", str(setup["root"] / "x.safetensors")], "has no labels.tif"),
        (["--scenes", str(bare), "--out", str(setup["root"] / "x.ckpt")], "expected a .safetensors"),
        (["--scenes", str(setup["cal"]), "--out", str(setup["root"])], "--out"),
    ]
    for extra, words in cases:
        assert cli.main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as exc:
        cli.main(
            [*base, "--scenes", str(bare), "--method", "platt", "--out", str(setup["root"] / "y.safetensors")]
        )
    assert exc.value.code == 2
    assert "invalid choice: 'platt'" in capsys.readouterr().err
    assert not (setup["root"] / "x.safetensors").exists()
