"""Keras HDF5 converter: location-encoding layout, layout conversions, and clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from glaciermap.commands import convert_keras as convert_command
from glaciermap.errors import ConfigError, InputError
from glaciermap.models import GlaViTU
from glaciermap.models.keras import convert_keras_file, convert_keras_weights, keras_layout
from tests.data.keras import to_keras as _to_keras
from tests.data.keras import write_group as _write_group

LOCATION_GROUP = "location_encoding_block"


def _location_arrays(size: int, seed: int = 3) -> list[tuple[str, np.ndarray]]:
    """Arrays of a Keras location-encoding block (spec 1.4) in Keras' order: trainable first, then BN stats."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    p = LOCATION_GROUP
    return [
        (f"{p}/dense_33/kernel:0", rng.normal(0, 0.3, (size, 64)).astype(f32)),
        (f"{p}/dense_33/bias:0", rng.normal(0, 0.1, 64).astype(f32)),
        (f"{p}/batch_normalization_21/gamma:0", rng.uniform(0.8, 1.2, 64).astype(f32)),
        (f"{p}/batch_normalization_21/beta:0", rng.normal(0, 0.1, 64).astype(f32)),
        (f"{p}/dense_34/kernel:0", rng.normal(0, 0.2, (64, 64)).astype(f32)),
        (f"{p}/dense_34/bias:0", rng.normal(0, 0.1, 64).astype(f32)),
        (f"{p}/batch_normalization_22/gamma:0", rng.uniform(0.8, 1.2, 64).astype(f32)),
        (f"{p}/batch_normalization_22/beta:0", rng.normal(0, 0.1, 64).astype(f32)),
        (f"{p}/batch_normalization_21/moving_mean:0", rng.normal(0, 0.1, 64).astype(f32)),
        (f"{p}/batch_normalization_21/moving_variance:0", rng.uniform(0.5, 1.5, 64).astype(f32)),
        (f"{p}/batch_normalization_22/moving_mean:0", rng.normal(0, 0.1, 64).astype(f32)),
        (f"{p}/batch_normalization_22/moving_variance:0", rng.uniform(0.5, 1.5, 64).astype(f32)),
    ]


def _with_location_block(fixture_h5: Path, out: Path, size: int) -> list[tuple[str, np.ndarray]]:
    """Copy the fixture and insert a location-encoding block before the fusion block (spec section 8)."""
    arrays = _location_arrays(size)
    with h5py.File(fixture_h5, "r") as src, h5py.File(out, "w") as dst:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in src.attrs["layer_names"]]
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for name in names:
            src.copy(src[name], dst, name=name)
        _write_group(dst, "location", [])
        _write_group(dst, LOCATION_GROUP, arrays)
        i = names.index("fusion_block")
        dst.attrs["layer_names"] = np.array(
            [*names[:i], "location", LOCATION_GROUP, *names[i:]], dtype=object
        )
    return arrays


def _keras_location_block(v: np.ndarray, arrays: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """The Keras block in inference mode, written out in numpy: Dense -> BN -> LeakyReLU(0.3), twice."""
    a = [x for _, x in arrays]
    (k1, b1, g1, be1, k2, b2, g2, be2, m1, v1, m2, v2) = a

    def bn_lrelu(x: np.ndarray, g: np.ndarray, b: np.ndarray, m: np.ndarray, var: np.ndarray) -> np.ndarray:
        y = g * (x - m) / np.sqrt(var + 1e-3) + b
        return np.where(y > 0, y, 0.3 * y)

    h = bn_lrelu(v @ k1 + b1, g1, be1, m1, v1)
    return bn_lrelu(h @ k2 + b2, g2, be2, m2, v2)


@pytest.mark.slow
def test_region_encoding_file_converts_with_the_location_block_first(
    keras_fixture: tuple[Path, Path], tmp_path: Path
) -> None:
    h5, _ = keras_fixture
    synthetic = tmp_path / "glavitu_regionencoding_weights.h5"
    arrays = _with_location_block(h5, synthetic, 12)
    state = convert_keras_weights(synthetic, {"optical": 6, "dem": 2}, location_encoding="region")
    plain = convert_keras_weights(h5, {"optical": 6, "dem": 2})

    a = dict(arrays)
    p = LOCATION_GROUP
    torch.testing.assert_close(
        state["location_encoder.fc1.weight"], torch.from_numpy(a[f"{p}/dense_33/kernel:0"].T)
    )
    torch.testing.assert_close(
        state["location_encoder.bn2.running_var"],
        torch.from_numpy(a[f"{p}/batch_normalization_22/moving_variance:0"]),
    )
    for key, value in plain.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)

    model = GlaViTU(location_encoding="region").eval()
    model.load_state_dict(state, strict=True)
    v = model.region_vector(["ALP", "HMA", None])
    with torch.no_grad():
        encoded = model.location_encoder(v)  # type: ignore[misc]
    np.testing.assert_allclose(
        encoded.numpy(), _keras_location_block(v.numpy(), arrays), rtol=1e-5, atol=1e-5
    )

    # Without location_encoding the file is refused with a hint, not silently mis-loaded.
    with pytest.raises(InputError, match=r"location_encoding_block.*location_encoding='region'"):
        convert_keras_weights(synthetic, {"optical": 6, "dem": 2})
    # A coordinate-encoding model expects a (4, 64) first kernel: the error names the layer and array.
    with pytest.raises(
        InputError, match=r"layer 'location_encoding_block' array 0 .*\(12, 64\), expected \(4, 64\)"
    ):
        convert_keras_weights(synthetic, {"optical": 6, "dem": 2}, location_encoding="coordinates")


def test_round_trip_of_a_coordinate_model_without_deep_supervision(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GlaViTU({"optical": 6, "thermal": 1}, location_encoding="coordinates", deep_supervision=False)
    with torch.no_grad():
        for buf_name, buf in model.named_buffers():
            if "running" in buf_name:
                buf.uniform_(0.5, 1.5)
    state = model.state_dict()
    path = tmp_path / "coords.h5"
    with h5py.File(path, "w") as f:
        groups = keras_layout(model)
        f.attrs["layer_names"] = np.array(
            ["optical", "thermal", "location"] + [g.name for g in groups], dtype=object
        )
        for name in ("optical", "thermal", "location"):
            _write_group(f, name, [])
        for g in groups:
            _write_group(
                f,
                g.name,
                [
                    (f"{g.name}/w{i}:0", _to_keras(state[s.key], s.kind, s.heads))
                    for i, s in enumerate(g.slots)
                ],
            )
    assert [g.name for g in groups] == [
        "location_encoding_block",
        "fusion_block",
        "SETR",
        "ResUNet",
        "output",
    ]
    converted = convert_keras_weights(
        path, {"optical": 6, "thermal": 1}, location_encoding="coordinates", deep_supervision=False
    )
    assert converted.keys() == state.keys()
    for key, value in state.items():
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(converted[key], value, rtol=0, atol=0, msg=key)
    # An inference-model file has no deep-supervision head: asking for one is a clear error.
    with pytest.raises(InputError, match="no deep-supervision head"):
        convert_keras_weights(path, {"optical": 6, "thermal": 1}, location_encoding="coordinates")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"modalities": {"optical": 6}}, r"2 fusion branches taking \[6, 2\] channels.*\[6\]"),
        ({"modalities": {"dem": 2, "optical": 6}}, r"taking \[6, 2\] channels.*asks for \[2, 6\]"),
        ({"location_encoding": "region"}, r"expected 6 layers with weights .* the file has 5"),
        ({"num_classes": 3}, r"layer 'deepsupervision' array 0 .* \(64, 2\), expected \(64, 3\)"),
    ],
)
def test_mismatched_layout_is_a_clear_error(
    keras_fixture: tuple[Path, Path], kwargs: dict[str, object], match: str
) -> None:
    h5, _ = keras_fixture
    with pytest.raises(InputError, match=match):
        convert_keras_weights(h5, **kwargs)  # type: ignore[arg-type]


def test_unrecognised_or_corrupt_files_are_clear_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "weights.h5"
    garbage.write_bytes(b"this is not an HDF5 file" * 100)
    with pytest.raises(InputError, match=r"weights\.h5: not a readable HDF5 file"):
        convert_keras_weights(garbage)
    not_keras = tmp_path / "other.h5"
    with h5py.File(not_keras, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(InputError, match=r"other\.h5: not a Keras-2 HDF5 weights file"):
        convert_keras_weights(not_keras)
    with pytest.raises(InputError, match=r"missing\.h5: file not found"):
        convert_keras_weights(tmp_path / "missing.h5")
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.attrs["layer_names"] = np.array(["optical"], dtype=object)
        _write_group(f, "optical", [])
    with pytest.raises(InputError, match="holds no weights"):
        convert_keras_weights(empty)


def test_truncated_fixture_is_a_clear_error_and_writes_nothing(
    keras_fixture: tuple[Path, Path], tmp_path: Path
) -> None:
    h5, _ = keras_fixture
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(h5.read_bytes()[:2_000_000])
    out = tmp_path / "out.safetensors"
    with pytest.raises(InputError, match=r"truncated\.h5"):
        convert_keras_file(truncated, out)
    assert list(tmp_path.iterdir()) == [truncated]


def test_command_rejects_bad_modalities_before_reading(tmp_path: Path) -> None:
    assert convert_command.parse_modalities(["optical:6", "dem:2"]) == {"optical": 6, "dem": 2}
    with pytest.raises(ConfigError, match="NAME:CHANNELS"):
        convert_command.parse_modalities(["optical6"])
    with pytest.raises(ConfigError, match="given twice"):
        convert_command.parse_modalities(["dem:2", "dem:2"])


def test_cli_reports_bad_input_in_one_line_with_status_2(
    keras_fixture: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from glaciermap.cli import main

    h5, _ = keras_fixture
    out = tmp_path / "out.safetensors"
    assert main(["convert-keras", str(h5), str(out), "--modalities", "optical:6"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glaciermap convert-keras: error: ") and "fusion branches" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["convert-keras", str(h5), str(out), "--modalities", "lidar:3"]) == 2
    assert "unknown modality 'lidar'" in capsys.readouterr().err
    assert not out.exists()
