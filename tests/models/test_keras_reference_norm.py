"""Converted Keras weights record the GlaViTU reference normalisation they expect (reference notes 4.4)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from glaciermap.models.glavitu import GlaViTU
from glaciermap.models.keras import convert_keras_file, keras_layout, load_norm_stats, save_state_dict
from glaciermap.transforms.reference import REFERENCE_MINMAX
from tests.data.keras import to_keras as _to_keras
from tests.data.keras import write_group as _write_group


def _keras_file(path: Path, modalities: dict[str, int]) -> Path:
    torch.manual_seed(0)
    model = GlaViTU(modalities, location_encoding="coordinates", deep_supervision=False)
    state = model.state_dict()
    with h5py.File(path, "w") as f:
        groups = keras_layout(model)
        names = [*modalities, "location"]
        f.attrs["layer_names"] = np.array(names + [g.name for g in groups], dtype=object)
        for name in names:
            _write_group(f, name, [])
        for g in groups:
            slots = [
                (f"{g.name}/w{i}:0", _to_keras(state[s.key], s.kind, s.heads)) for i, s in enumerate(g.slots)
            ]
            _write_group(f, g.name, slots)
    return path


def test_converted_file_carries_reference_minmax(tmp_path: Path) -> None:
    layout = {"optical": 6, "thermal": 1}
    out = convert_keras_file(
        _keras_file(tmp_path / "w.h5", layout), tmp_path / "w.safetensors", layout,
        location_encoding="coordinates", deep_supervision=False,
    )  # fmt: skip
    norm = load_norm_stats(out)
    assert norm is not None and norm.method == "minmax" and list(norm.modalities) == ["optical", "thermal"]
    assert norm.modalities["thermal"].max == REFERENCE_MINMAX["thermal"][1]
    assert norm.modalities["optical"].min[0] == pytest.approx(-0.003735552541911602)


def test_files_without_norm_return_none(tmp_path: Path) -> None:
    path = save_state_dict({"w": torch.zeros(1)}, tmp_path / "x.safetensors", hparams={})
    assert load_norm_stats(path) is None
