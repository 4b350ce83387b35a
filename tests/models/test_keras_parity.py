"""Converted Keras weights reproduce the authors' TensorFlow GlaViTU (fixture in ../shared/fixtures).

The fixture (see its README) holds random weights of the authors' Optical+DEM training model in the Keras-2
HDF5 layout, a (2, C, 384, 384) input and the probabilities Keras produced for both heads. Tolerance from the
README: max abs difference of probabilities <= 1e-4 (two correct float32 implementations differ by ~2e-5),
plus the stricter log-probability check <= 5e-4.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from glaciermap.cli import COMMANDS
from glaciermap.commands import convert_keras as convert_command
from glaciermap.models import GlaViTU
from glaciermap.models.glavitu import count_trainable
from glaciermap.models.keras import convert_keras_weights
from glaciermap.models.pretrained import load_pretrained


@pytest.mark.slow
def test_converted_weights_reproduce_keras_outputs(keras_fixture: tuple[Path, Path]) -> None:
    h5, io_path = keras_fixture
    io = np.load(io_path)
    model = GlaViTU({"optical": 6, "dem": 2}, num_classes=2)
    assert count_trainable(model) == int(io["n_trainable_params"]) == 10_024_516
    model.load_state_dict(convert_keras_weights(h5, {"optical": 6, "dem": 2}), strict=True)
    model.eval()

    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    try:
        with torch.inference_mode():
            probs = model.predict_proba(
                {"optical": torch.from_numpy(io["optical"]), "dem": torch.from_numpy(io["dem"])}
            )
    finally:
        torch.set_num_threads(threads)

    for key, ref_key in (("out", "main_probs"), ("aux", "deep_supervision_probs")):
        ref = torch.from_numpy(io[ref_key])
        assert probs[key].shape == ref.shape == (2, 2, 384, 384)
        max_abs = float((probs[key] - ref).abs().max())
        max_log = float((probs[key].clamp_min(1e-30).log() - ref.log()).abs().max())
        assert max_abs <= 1e-4, f"{key}: max |p_torch - p_keras| = {max_abs:.3g}"
        assert max_log <= 5e-4, f"{key}: max |log p_torch - log p_keras| = {max_log:.3g}"


@pytest.mark.slow
def test_convert_keras_command_writes_a_loadable_safetensors(
    keras_fixture: tuple[Path, Path], tmp_path: Path
) -> None:
    h5, _ = keras_fixture
    assert COMMANDS["convert-keras"] == "glaciermap.commands.convert_keras"
    parser = argparse.ArgumentParser()
    convert_command.add_arguments(parser)
    out = tmp_path / "glavitu.safetensors"
    args = parser.parse_args([str(h5), str(out), "--modalities", "optical:6", "dem:2"])
    assert convert_command.main(args) == 0
    assert out.is_file() and not list(tmp_path.glob(".*partial*"))

    from safetensors.torch import load_file

    state = load_file(str(out))
    model = GlaViTU({"optical": 6, "dem": 2})
    model.load_state_dict(state, strict=True)
    # The file rebuilds its own model from the metadata, with the fixture's values (output bias centred in
    # the fixture's README: [-0.0928795, 34.278988]).
    rebuilt = load_pretrained(out).model
    assert isinstance(rebuilt, GlaViTU) and not rebuilt.training
    assert rebuilt.modalities == {"optical": 6, "dem": 2} and rebuilt.aux_head is not None
    torch.testing.assert_close(rebuilt.head.bias, torch.tensor([-0.0928795, 34.278988]))
    torch.testing.assert_close(rebuilt.state_dict()["unet.out.weight"], state["unet.out.weight"])
    # Converting the inference model drops the deep-supervision head.
    args = parser.parse_args([str(h5), str(tmp_path / "test.safetensors"), "--no-deep-supervision"])
    assert convert_command.main(args) == 0
    GlaViTU(deep_supervision=False).load_state_dict(
        load_file(str(tmp_path / "test.safetensors")), strict=True
    )
