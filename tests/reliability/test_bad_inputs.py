"""The bad-input matrix: every command, each user mistake -> exit 2, one clear line, nothing new written.

Each case names the command line (built from a few shared fixtures), the exit status, the words the one-line
error must contain, and the folder whose contents must not change (the output location).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio

from glaciermap import cli
from glaciermap.synthetic.crevasses import generate_crevasse_world
from glaciermap.synthetic.generate import generate_scene
from tests.data.checkpoints import save_tiny_region_checkpoint, scene_stats
from tests.data.scenes import write_scene


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv(env)`` must exit ``status`` with ``words`` in stderr, leaving ``watch(env)`` as it was."""

    name: str
    argv: Callable[[dict[str, Path]], list[str]]
    words: tuple[str, ...]
    status: int = 2


def _listing(folder: Path) -> set[str]:
    """Every path below ``folder`` (hidden files included)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def _corrupt_a_tile(path: Path, row: int) -> None:
    """Rewrite ``path`` tiled and deflate-compressed, then overwrite the bytes of one tile of ``row``.

    The header and every other tile stay intact, so the file opens and the failure comes mid-run.
    """
    with rasterio.open(path) as src:
        data, profile = src.read(), src.profile
    profile.update(tiled=True, blockxsize=64, blockysize=64, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    with rasterio.open(path) as src:
        offset = int(src.get_tag_item(f"BLOCK_OFFSET_0_{row // 64}", "TIFF", bidx=1))
        size = int(src.get_tag_item(f"BLOCK_SIZE_0_{row // 64}", "TIFF", bidx=1))
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * size)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Shared inputs: a synthetic scene, a scaled-integer scene, a truncated GeoTIFF, files in the way."""
    root = tmp_path_factory.mktemp("bad")
    scene = generate_scene(root / "scene", size=(96, 96), seed=5)
    dn = write_scene(root / "dn", size=(64, 64), modalities=("optical", "dem"))
    with rasterio.open(dn / "optical.tif", "r+") as dst:  # reflectance stored as DN x 10000
        dst.write((dst.read() * 10000).astype(np.float32))
    corrupt = write_scene(root / "corrupt", size=(512, 512), modalities=("optical", "dem"))
    _corrupt_a_tile(corrupt / "optical.tif", row=300)
    blocker = root / "a_file.txt"
    blocker.write_text("not a folder")
    folder_gpkg = root / "folder.gpkg"
    folder_gpkg.mkdir()
    bad_ckpt = root / "bad.ckpt"
    bad_ckpt.write_bytes(b"not a checkpoint")
    crev = generate_crevasse_world(root / "crev", tiles=(2, 22), tile_size=(20, 24))
    small = write_scene(root / "small", size=(48, 64), modalities=("optical", "dem"), labels=False)
    region_ckpt = save_tiny_region_checkpoint(root / "region.ckpt", scene_stats(small))
    return {
        "crev": crev,
        "root": root,
        "scene": scene,
        "dn": dn,
        "corrupt": corrupt,
        "file": blocker,
        "folder_gpkg": folder_gpkg,
        "bad_ckpt": bad_ckpt,
        "small": small,
        "region_ckpt": region_ckpt,
        "out": root / "out",
    }


def _label(image: str, labels: str = "labels.csv", *extra: str) -> Callable[[dict[str, Path]], list[str]]:
    """``glaciermap label`` on ``crev/<image>`` (or ``root/<image>``) with the crevasse world's index."""
    return lambda e: [
        "label",
        "--image",
        str(e["crev"] / image if image == "pan.tif" else e["root"] / image),
        "--index",
        str(e["crev"] / "index.gpkg"),
        "--labels",
        str(e["out"] / labels if labels == "labels.csv" else e["file"] / labels),
        "--no-browser",
        *extra,
    ]


def _classify(e: dict[str, Path], ckpt: Path) -> list[str]:
    return ["classify", "--checkpoint", str(ckpt), "--image", str(e["scene"] / "optical.tif")]


def _map(*extra: str) -> Callable[[dict[str, Path]], list[str]]:
    return lambda e: ["map", "--model", "band-ratio", "--scene", str(e["scene"]), "--quiet", *extra]


WEIGHTS = Path(__file__).resolve().parents[2] / "glaciermap" / "weights" / "synthetic_cpu.safetensors"


def _calibrate(e: dict[str, Path], ckpt: str) -> list[str]:
    return ["calibrate", "--checkpoint", str(e[ckpt]), "--scenes", str(e["scene"])]


def _bias(*extra: str) -> Callable[[dict[str, Path]], list[str]]:
    """``map --bias-optimisation`` of the small scene with the tiny region-encoding checkpoint."""
    return lambda e: [
        *["map", "--checkpoint", str(e["region_ckpt"]), "--scene", str(e["small"]), "--quiet"],
        *["--bias-optimisation", "--out", str(e["out"]), *extra],
    ]


CASES = [
    Case(
        "map: --bias-optimisation with a model without region encoding",
        lambda e: [*_map("--bias-optimisation")(e), "--out", str(e["out"])],
        ("bias optimisation needs a region-encoding model", "'none'"),
    ),
    Case(
        "map: --bias-optimisation with --region",
        _bias("--region", "ALP"),
        ("bias optimisation chooses the region vector", "--region"),
    ),
    Case(
        "map: --bias-optimisation on too few valid windows",
        _bias("--window-size", "64"),
        ("1 window(s) of 64 px", "needs at least 2"),
    ),
    Case(
        "map: --backend onnxruntime in bf16",
        lambda e: [*_map("--backend", "onnxruntime", "--precision", "bf16")(e), "--out", str(e["out"])],
        ("backend 'onnxruntime' computes in float32",),
    ),
    Case("map: --out is a file", lambda e: [*_map()(e), "--out", str(e["file"])], ("is an existing file",)),
    Case(
        "map: --out under a file",
        lambda e: [*_map()(e), "--out", str(e["file"] / "sub")],
        ("lies under", "which is a file"),
    ),
    Case(
        "map: window larger than scene and model",
        lambda e: [*_map("--window-size", "100000")(e), "--out", str(e["out"])],
        ("window_size 100000", "larger than the scene"),
    ),
    Case(
        "map: reflectance as scaled integers",
        lambda e: [
            "map",
            "--model",
            "band-ratio",
            "--scene",
            str(e["dn"]),
            "--quiet",
            "--out",
            str(e["out"]),
        ],
        ("band 'blue'", "reflectance", "--no-range-check"),
    ),
    Case(
        "map: truncated GeoTIFF",
        lambda e: [
            "map",
            "--model",
            "band-ratio",
            "--scene",
            str(e["corrupt"]),
            "--quiet",
            "--no-range-check",
            "--window-size",
            "64",
            "--out",
            str(e["out"]),
        ],
        ("optical.tif", "cannot read rows", "corrupt or truncated"),
    ),
    Case(
        "map: missing checkpoint",
        lambda e: [
            "map",
            "--checkpoint",
            str(e["root"] / "none.ckpt"),
            "--scene",
            str(e["scene"]),
            "--out",
            str(e["out"]),
        ],
        ("none.ckpt", "not found"),
    ),
    Case(
        "map: checkpoint that is not one",
        lambda e: [
            "map",
            "--checkpoint",
            str(e["bad_ckpt"]),
            "--scene",
            str(e["scene"]),
            "--out",
            str(e["out"]),
        ],
        ("bad.ckpt", "not a readable"),
    ),
    Case(
        "inventory: --out is a folder",
        lambda e: [
            "inventory",
            "--classes",
            str(e["scene"] / "labels.tif"),
            "--dem",
            str(e["scene"] / "dem.tif"),
            "--out",
            str(e["folder_gpkg"]),
        ],
        ("existing folder",),
    ),
    Case(
        "inventory: --out under a file",
        lambda e: [
            "inventory",
            "--classes",
            str(e["scene"] / "labels.tif"),
            "--dem",
            str(e["scene"] / "dem.tif"),
            "--out",
            str(e["file"] / "x.gpkg"),
        ],
        ("lies under",),
    ),
    Case(
        "inventory: missing class raster",
        lambda e: [
            "inventory",
            "--classes",
            str(e["root"] / "no.tif"),
            "--dem",
            str(e["scene"] / "dem.tif"),
            "--out",
            str(e["out"] / "inv.gpkg"),
        ],
        ("no.tif", "not found"),
    ),
    Case("label: missing image", _label("no.tif"), ("no.tif", "file not found")),
    Case(
        "label: index made for another image",
        _label("scene/dem.tif"),
        ("tiles reach beyond", "expected the index made from this image"),
    ),
    Case("label: --labels under a file", _label("pan.tif", "sub.csv"), ("lies under", "which is a file")),
    Case("label: non-local host", _label("pan.tif", "labels.csv", "--host", "0.0.0.0"), ("--allow-remote",)),
    Case(
        "inventory: missing snow mask",
        lambda e: [
            "inventory",
            "--classes",
            str(e["scene"] / "labels.tif"),
            "--dem",
            str(e["scene"] / "dem.tif"),
            "--out",
            str(e["out"] / "inv.gpkg"),
            "--snow-mask",
            str(e["root"] / "no_snow.tif"),
        ],
        ("no_snow.tif", "snow mask not found"),
    ),
    Case(
        "prepare: missing co-registration reference",
        lambda e: [
            "prepare",
            "--optical",
            *[f"{b}={e['dn'] / 'optical.tif'}" for b in ("blue", "green", "red", "nir", "swir1", "swir2")],
            "--optical-scale",
            "0.0001",
            "--dem",
            str(e["dn"] / "dem.tif"),
            "--coregistration-reference",
            str(e["root"] / "no_ortho.tif"),
            "--out",
            str(e["out"] / "prepared"),
        ],
        ("no_ortho.tif",),
    ),
    Case("synth: --out is a file", lambda e: ["synth", "--out", str(e["file"])], ("is an existing file",)),
    Case("synth: size too small", lambda e: ["synth", "--out", str(e["out"]), "--size", "8", "8"], ("size",)),
    Case("demo: --out under a file", lambda e: ["demo", "--out", str(e["file"] / "d")], ("lies under",)),
    Case(
        "evaluate: --out is a file",
        lambda e: ["evaluate", "--pred", str(e["scene"]), "--ref", str(e["scene"]), "--out", str(e["file"])],
        ("is an existing file",),
    ),
    Case(
        "fit-band-ratio: --out is a folder",
        lambda e: ["fit-band-ratio", "--scenes", str(e["scene"]), "--out", str(e["folder_gpkg"])],
        ("existing folder",),
    ),
    Case(
        "calibrate: --out is a folder",
        lambda e: [*_calibrate(e, "bad_ckpt"), "--out", str(e["folder_gpkg"])],
        ("existing folder",),
    ),
    Case(
        "calibrate: --out is not .safetensors",
        lambda e: [*_calibrate(e, "bad_ckpt"), "--out", str(e["out"] / "w.ckpt")],
        ("expected a .safetensors file",),
    ),
    Case(
        "calibrate: checkpoint that is not one",
        lambda e: [*_calibrate(e, "bad_ckpt"), "--out", str(e["root"] / "w.safetensors")],
        ("bad.ckpt", "not a readable PyTorch checkpoint"),
    ),
    Case(
        "convert-keras: output under a file",
        lambda e: ["convert-keras", str(e["bad_ckpt"]), str(e["file"] / "w.safetensors")],
        ("lies under",),
    ),
    Case(
        "split: --out is a file",
        lambda e: ["split", "--image", str(e["scene"] / "labels.tif"), "--out", str(e["file"])],
        ("is an existing file",),
    ),
    Case(
        "split: a multi-band raster where one band is expected",
        lambda e: ["split", "--image", str(e["scene"] / "optical.tif"), "--out", str(e["out"])],
        ("optical.tif", "band"),
    ),
    Case(
        "synth-crevasses: --out under a file",
        lambda e: ["synth-crevasses", "--out", str(e["file"] / "c")],
        ("lies under",),
    ),
    Case(
        "prepare: --out is a file",
        lambda e: [
            "prepare",
            "--optical",
            str(e["scene"] / "optical.tif"),
            "--dem",
            str(e["scene"] / "dem.tif"),
            "--out",
            str(e["file"]),
        ],
        ("is an existing file",),
    ),
    Case(
        "prepare: a band file named after no band",
        lambda e: [
            "prepare",
            "--optical",
            str(e["scene"] / "optical.tif"),
            "--dem",
            str(e["root"] / "nodem.tif"),
            "--out",
            str(e["out"]),
        ],
        ("optical.tif", "cannot tell which band"),
    ),
    Case(
        "export-onnx: output is a folder",
        lambda e: ["export-onnx", str(WEIGHTS), str(e["folder_gpkg"])],
        ("existing folder",),
    ),
    Case(
        "export-onnx: classifier weights",
        lambda e: ["export-onnx", "crevasse_varionet_synthetic", str(e["out"] / "m.onnx")],
        ("crevasse_varionet_synthetic", "split-image classifier"),
    ),
    Case(
        "export-onnx: not a weights file",
        lambda e: ["export-onnx", str(e["bad_ckpt"]), str(e["out"] / "m.onnx")],
        ("bad.ckpt",),
    ),
    Case(
        "test: --ckpt_path is not a checkpoint",
        lambda e: [
            "test",
            "--config",
            str(Path(__file__).parents[2] / "examples" / "synthetic_cpu.yaml"),
            "--ckpt_path",
            str(e["bad_ckpt"]),
        ],
        ("--ckpt_path", "not a readable checkpoint"),
    ),
    Case(
        "test: --ckpt_path missing",
        lambda e: [
            "test",
            "--config",
            str(Path(__file__).parents[2] / "examples" / "synthetic_cpu.yaml"),
            "--ckpt_path",
            str(e["root"] / "gone.ckpt"),
        ],
        ("--ckpt_path", "file not found"),
    ),
    Case(
        "classify: --checkpoint missing",
        lambda e: [*_classify(e, e["root"] / "gone.ckpt"), "--out", str(e["out"])],
        ("--checkpoint", "file not found"),
    ),
    Case(
        "classify: --checkpoint not a checkpoint",
        lambda e: [*_classify(e, e["bad_ckpt"]), "--out", str(e["out"])],
        ("--checkpoint", "not readable"),
    ),
    Case(
        "classify: --out is a file",
        lambda e: [*_classify(e, e["bad_ckpt"]), "--out", str(e["file"])],
        ("is an existing file",),
    ),
    Case(
        "classify: --min-confidence above 1",
        lambda e: [*_classify(e, e["bad_ckpt"]), "--min-confidence", "2", "--out", str(e["out"])],
        ("--min-confidence 2.0", "[0, 1]"),
    ),
    Case(
        "classify: --checkpoint names segmentation weights",
        lambda e: [*_classify(e, Path("synthetic_cpu")), "--out", str(e["out"])],
        ("--checkpoint synthetic_cpu", "segmentation weights", "crevasse_varionet_synthetic"),
    ),
    Case(
        "classify: --threads negative",
        lambda e: [*_classify(e, e["bad_ckpt"]), "--threads", "-1", "--out", str(e["out"])],
        ("--threads -1", "positive"),
    ),
    Case(
        "classify: --equal without --export-confident",
        lambda e: [*_classify(e, e["bad_ckpt"]), "--equal", "--out", str(e["out"])],
        ("--equal", "--export-confident"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(
    case: Case, env: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(env["root"])  # LightningCLI would write config.yaml / lightning_logs here
    before = _listing(env["root"])
    status = cli.main(case.argv(env))
    err = capsys.readouterr().err.strip()
    assert status == case.status, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("glaciermap "), err
    for word in case.words:
        assert word in lines[0], lines[0]
    assert _listing(env["root"]) == before  # nothing new anywhere, no hidden temporary file either


def test_every_command_has_a_case() -> None:
    """A new command must join the matrix."""
    covered = {
        c.argv(
            {
                k: Path("/x")
                for k in (
                    *("root", "scene", "dn", "corrupt", "file", "folder_gpkg", "bad_ckpt", "out"),
                    *("small", "region_ckpt", "crev"),
                )
            }
        )[0]
        for c in CASES
    }
    commands = set(cli.COMMANDS) | {"test"}
    missing = commands - covered - {"models", "compare-inventory"}
    assert missing == set(), f"add bad-input cases for {sorted(missing)}"


def test_reusing_an_output_folder_removes_stale_outputs(env: dict[str, Path]) -> None:
    out = env["root"] / "reuse"
    assert cli.main([*_map("--probabilities", "--window-size", "32")(env), "--out", str(out)]) == 0
    assert (out / "probabilities.tif").is_file()
    assert cli.main([*_map("--window-size", "32")(env), "--out", str(out)]) == 0
    assert not (out / "probabilities.tif").exists()  # not this run's: removed, not left beside new outputs
    assert sorted(p.name for p in out.iterdir()) == [
        "classes.tif",
        "confidence.tif",
        "quicklook.png",
        "summary.json",
    ]


def test_a_folder_in_use_is_refused(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = env["root"] / "busy"
    out.mkdir()
    (out / ".glaciermap.lock").write_text(str(os.getppid()))  # a live process holds it
    assert cli.main([*_map("--window-size", "32")(env), "--out", str(out)]) == 2
    assert "in use by another glaciermap run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".glaciermap.lock"]
    (out / ".glaciermap.lock").write_text("999999999")  # its process is gone: taken over
    assert cli.main([*_map("--window-size", "32")(env), "--out", str(out)]) == 0
    assert not (out / ".glaciermap.lock").exists()
