"""Exported weights: safetensors with the checkpoint's metadata, read back exactly; bad files are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glaciermap.errors import InputError
from glaciermap.models.hub import bundled_weights, export_weights, read_weights
from glaciermap.tasks import SegmentationTask


def _checkpoint(path: Path) -> SegmentationTask:
    task = SegmentationTask(model="light_fusion_resunet", model_kwargs={"filters": 8}, target="classes")
    ckpt = {
        "state_dict": task.state_dict(),
        "glaciermap": task.metadata(),
        "optimizer_states": [{"huge": torch.zeros(1000)}],
        "epoch": 3,
        "global_step": 42,
    }
    torch.save(ckpt, path)
    return task


def test_export_and_read_round_trip(tmp_path: Path) -> None:
    task = _checkpoint(tmp_path / "a.ckpt")
    out = export_weights(tmp_path / "a.ckpt", tmp_path / "w.safetensors")
    state, meta = read_weights(out)
    assert set(state) == set(task.model.state_dict())
    for key, value in task.model.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    assert meta["model"] == "light_fusion_resunet"
    assert meta["class_names"] == ["background", "clean_ice", "debris_ice"]
    assert meta["model_hparams"]["filters"] == 8
    assert (meta["epoch"], meta["global_step"]) == (3, 42)
    assert not list(tmp_path.glob("*.partial-*"))


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_weights(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="not a readable safetensors"):
        read_weights(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(InputError, match="no glaciermap metadata"):
        read_weights(tmp_path / "plain.safetensors")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(InputError, match="SegmentationTask"):
        export_weights(tmp_path / "other.ckpt", tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
    with pytest.raises(InputError, match="no bundled weights 'nope'"):
        bundled_weights("nope")
