"""ONNX export of pretrained weights (normalisation included), checked with onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from glaciermap import cli
from glaciermap.errors import InputError
from glaciermap.models import get_model

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def test_export_onnx_command_matches_pytorch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synthetic_cpu.onnx"
    assert cli.main(["export-onnx", "synthetic_cpu", str(out)]) == 0
    assert "max |dp|" in capsys.readouterr().out and not list(tmp_path.glob("*partial*"))
    model = get_model("light_fusion_resunet", weights="synthetic_cpu")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (image,) = session.get_inputs()
    assert image.name == "image" and image.shape == ["batch", 11, "height", "width"]
    torch.manual_seed(0)
    for shape in [(1, 11, 64, 64), (3, 11, 48, 80)]:
        x = torch.rand(*shape)
        x[:, 6] *= 4000  # elevation in metres: the graph normalises raw values
        x[0, 2, 4, 4] = float("nan")
        with torch.no_grad():
            expected = torch.softmax(model(x)["out"], dim=1).numpy()
        got = session.run(["probabilities"], {"image": x.numpy()})[0]
        assert np.abs(got - expected).max() <= 1e-4
    graph = onnx.load(str(out))
    ops = {node.op_type for node in graph.graph.node}  # the folded inference copy was exported
    assert "BatchNormalization" not in ops and "ConvTranspose" in ops and "Resize" not in ops
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["model_type"] == "Segmentor"
    assert json.loads(props["class_names"]) == {"0": "background", "1": "clean_ice", "2": "debris_ice"}
    assert json.loads(props["glaciermap"])["bands"]["insar"] == ["coherence_asc", "coherence_desc"]


def test_export_onnx_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export-onnx", "nope", str(tmp_path / "x.onnx")]) == 2
    assert "neither a registered weights name" in capsys.readouterr().err
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    assert cli.main(["export-onnx", str(junk), str(tmp_path / "x.onnx")]) == 2
    assert "not a readable safetensors" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["export-onnx", "synthetic_cpu", str(blocker / "out.onnx"), "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert "lies under" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()


def test_verify_rejects_a_different_model(tmp_path: Path) -> None:
    from glaciermap.models.onnx import export_onnx, verify_onnx

    model = get_model("light_fusion_resunet", weights="synthetic_cpu")
    out = export_onnx(model, tmp_path / "m.onnx")
    with torch.no_grad():
        model.normaliser["dem"].shift.add_(2000.0)  # the graph kept the old normalisation
    with pytest.raises(InputError, match="differ by"):
        verify_onnx(model, out)


def test_glavitu_exports_with_its_fixed_size_sar_log_and_region_input(tmp_path: Path) -> None:
    from glaciermap.models import PretrainedModel
    from glaciermap.models.onnx import export_onnx, verify_onnx
    from glaciermap.transforms.normalisation import reference_norm_stats

    mods = {"optical": 6, "dem": 2, "sar": 2}
    net = get_model("glavitu", modalities=mods, num_classes=2, img_size=64, location_encoding="region")
    model = PretrainedModel.from_model(net, reference_norm_stats(list(mods)))
    out = export_onnx(model, tmp_path / "glavitu.onnx")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    image, location = session.get_inputs()
    assert image.shape == ["batch", 10, 64, 64] and location.name == "location"
    assert verify_onnx(model, out) <= 1e-4  # reference normalisation (SAR log10) inside the graph
