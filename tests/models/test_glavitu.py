"""GlaViTU: parameter counts of the reference (spec 1.8 / 10), shapes, heads, location encoding, dropout."""

from __future__ import annotations

import math

import pytest
import torch

from glaciermap.errors import ConfigError, InputError
from glaciermap.models import GLOBAL_REGION_CODES, GlaViTU, coordinate_vector, get_model, region_vector
from glaciermap.models.glavitu import count_trainable


def _inputs(
    modalities: dict[str, int], b: int = 2, h: int = 32, w: int = 32, seed: int = 0
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.rand(b, c, h, w, generator=g) for m, c in modalities.items()}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 10_024_516),  # Optical+DEM training model (with deep supervision)
        ({"deep_supervision": False}, 10_024_386),  # test model
        ({"modalities": {"optical": 6, "dem": 2, "thermal": 1}}, 10_070_660),
        ({"modalities": {"optical": 6, "dem": 2, "insar": 2}}, 10_071_236),
        ({"location_encoding": "region"}, 10_029_764),
        ({"location_encoding": "region", "deep_supervision": False}, 10_029_634),
        ({"location_encoding": "coordinates"}, 10_029_252),
        ({"location_encoding": "coordinates", "deep_supervision": False}, 10_029_122),
    ],
)
def test_trainable_parameter_counts_match_the_reference(kwargs: dict[str, object], expected: int) -> None:
    with torch.device("meta"):
        model = GlaViTU(**kwargs)  # type: ignore[arg-type]
    assert count_trainable(model) == expected
    # BN running statistics are buffers (Keras counts them): the Optical+DEM model has 7,552 of them.
    if not kwargs:
        stats = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
        assert count_trainable(model) + stats == 10_032_068


def test_each_extra_branch_adds_the_reference_count() -> None:
    with torch.device("meta"):
        base = count_trainable(GlaViTU({"optical": 6, "dem": 2}))
        one = count_trainable(GlaViTU({"optical": 6, "dem": 2, "thermal": 1}))
        two = count_trainable(GlaViTU({"optical": 6, "dem": 2, "sar": 2}))
    assert (one - base, two - base) == (46_144, 46_720)  # spec section 10


@pytest.mark.parametrize(
    ("modalities", "size"),
    [
        ({"optical": 6, "dem": 2}, (32, 32)),
        ({"optical": 6, "dem": 2}, (48, 80)),
        ({"optical": 6}, (16, 16)),
        ({"dem": 2, "thermal": 1}, (64, 32)),
        ({"optical": 6, "dem": 2, "thermal": 1, "sar": 2, "insar": 2}, (32, 48)),
    ],
)
def test_output_shapes_and_probabilities(modalities: dict[str, int], size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = GlaViTU(modalities, num_classes=3).eval()
    with torch.no_grad():
        logits = model(_inputs(modalities, 2, *size))
        probs = model.predict_proba(_inputs(modalities, 2, *size))
    assert set(logits) == {"out", "aux"}
    for key in ("out", "aux"):
        assert logits[key].shape == (2, 3, *size)
        torch.testing.assert_close(probs[key], torch.softmax(logits[key], dim=1))
        torch.testing.assert_close(probs[key].sum(dim=1), torch.ones(2, *size))
        assert bool((probs[key] >= 0).all())


def test_deep_supervision_off_returns_only_the_main_head_with_the_same_values() -> None:
    torch.manual_seed(0)
    with_ds = GlaViTU().eval()
    without = GlaViTU(deep_supervision=False).eval()
    state = {k: v for k, v in with_ds.state_dict().items() if not k.startswith("aux_head.")}
    without.load_state_dict(state, strict=True)
    x = _inputs(with_ds.modalities)
    with torch.no_grad():
        a, b = with_ds(x), without(x)
    assert set(a) == {"out", "aux"} and set(b) == {"out"}
    torch.testing.assert_close(a["out"], b["out"])
    assert not torch.allclose(a["aux"], a["out"])


def test_stacked_tensor_input_equals_dict_input() -> None:
    torch.manual_seed(0)
    model = GlaViTU().eval()
    x = _inputs(model.modalities)
    with torch.no_grad():
        a = model(x)["out"]
        b = model(torch.cat([x["optical"], x["dem"]], dim=1))["out"]
        c = model({**x, "thermal": torch.rand(2, 1, 32, 32)})["out"]  # extra modalities are ignored
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_region_encoding_changes_the_output_and_accepts_every_form() -> None:
    torch.manual_seed(0)
    model = GlaViTU(location_encoding="region").eval()
    assert model.location_size == 12 and model.region_codes == GLOBAL_REGION_CODES
    x = _inputs(model.modalities)
    alp = model.region_vector(["ALP", "ALP"])
    with torch.no_grad():
        out_alp = model(x, alp)["out"]
        out_hma = model(x, model.region_vector(["HMA", "HMA"]))["out"]
        out_unseen = model(x, model.region_vector([None, "unseen"]))["out"]
        out_default = model(x)["out"]  # no location: "unseen" (spec 9.2 item 10)
        out_index = model(x, torch.tensor([0, 0]))["out"]
        out_soft = model(x, torch.full((2, 12), 1 / 12))["out"]
    assert (out_alp - out_hma).abs().max() > 1e-3
    assert (out_alp - out_unseen).abs().max() > 1e-3
    assert (out_soft - out_unseen).abs().max() > 1e-4
    torch.testing.assert_close(out_unseen, out_default)
    torch.testing.assert_close(out_index, out_alp)


def test_region_vector_layout_and_errors() -> None:
    v = region_vector(["ALP", "SVAL", None])
    assert v.shape == (3, 12)
    assert v.argmax(1).tolist() == [0, 10, 11]
    torch.testing.assert_close(v.sum(1), torch.ones(3))
    with pytest.raises(InputError, match=r"'XYZ'.*ALP"):
        region_vector(["XYZ"])
    model = GlaViTU(location_encoding="region", region_codes=["B", "A"])
    assert model.location_size == 3 and model.hparams["region_codes"] == ["B", "A"]
    assert model.region_vector(["A"]).tolist() == [[0.0, 1.0, 0.0]]


def test_coordinate_encoding_uses_radians_and_changes_the_output() -> None:
    enc = coordinate_vector([30.0, 0.0], [90.0, -180.0])
    expected = torch.tensor([[0.5, math.sqrt(3) / 2, 1.0, 0.0], [0.0, 1.0, 0.0, -1.0]])
    torch.testing.assert_close(enc, expected, atol=1e-6, rtol=0)
    with pytest.raises(InputError, match="latitude"):
        coordinate_vector([91.0], [0.0])

    torch.manual_seed(0)
    model = GlaViTU(location_encoding="coordinates").eval()
    x = _inputs(model.modalities)
    alps = torch.tensor([[46.5, 8.0], [46.5, 8.0]])
    with torch.no_grad():
        out_alps = model(x, alps)["out"]
        out_encoded = model(x, coordinate_vector(alps[:, 0], alps[:, 1]))["out"]
        out_andes = model(x, torch.tensor([[-50.0, -73.0], [-50.0, -73.0]]))["out"]
    torch.testing.assert_close(out_alps, out_encoded)
    assert (out_alps - out_andes).abs().max() > 1e-3
    with pytest.raises(InputError, match="coordinate encoding"):
        model(x)
    with pytest.raises(InputError, match="coordinate encoding expects"):
        model(x, torch.zeros(2, 3))


def test_location_is_ignored_without_location_encoding() -> None:
    torch.manual_seed(0)
    model = GlaViTU().eval()
    x = _inputs(model.modalities)
    with torch.no_grad():
        torch.testing.assert_close(model(x)["out"], model(x, torch.rand(2, 2))["out"])


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = GlaViTU(location_encoding="region").train()
    x = _inputs(model.modalities, b=2, h=32, w=32)
    out = model(x, model.region_vector(["ALP", "NZ"]))
    weights = torch.randn_like(out["out"])
    (out["out"] * weights).sum().backward(retain_graph=True)
    (out["aux"] * weights).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert missing == []
    assert len(list(model.parameters())) > 300


def test_dropout_is_off_by_default_and_mc_dropout_switches_it_on() -> None:
    torch.manual_seed(0)
    model = GlaViTU(dropout=0.1)
    x = _inputs(model.modalities)
    with torch.no_grad():
        model.train()  # the reference trap: no dropout in training either
        torch.testing.assert_close(model(x)["out"], model(x)["out"])
        model.eval()
        a, b = model(x)["out"], model(x)["out"]
        torch.testing.assert_close(a, b)
        assert not model.mc_dropout
        model.set_mc_dropout(True)
        assert model.mc_dropout
        c, d = model(x)["out"], model(x)["out"]
        model.set_mc_dropout(False)
        e = model(x)["out"]
    assert (c - d).abs().max() > 1e-4 and (c - a).abs().max() > 1e-4
    torch.testing.assert_close(e, a)


def test_position_embedding_is_identity_at_384_and_interpolated_elsewhere() -> None:
    torch.manual_seed(0)
    model = GlaViTU()
    pos = model.setr.pos_embed
    assert pos.weight.shape == (576, 64) and pos.grid == 24
    assert pos.resized(24, 24) is pos.weight  # at 384 x 384 the reference's table, untouched
    with torch.no_grad():
        pos.weight.copy_(torch.arange(24.0).repeat_interleave(24)[:, None].expand(576, 64))  # row index ramp
    small = pos.resized(2, 3)  # a 32 x 48 input
    big = pos.resized(48, 48)  # a 768 x 768 input
    assert small.shape == (6, 64) and big.shape == (2304, 64)
    # A vertical ramp stays a vertical ramp: constant along rows, increasing down the grid.
    rows = big.reshape(48, 48, 64)[:, :, 0]
    torch.testing.assert_close(rows, rows[:, :1].expand(48, 48))
    assert bool((rows[1:, 0] >= rows[:-1, 0] - 1e-5).all())
    assert rows[0, 0] < 1.0 and rows[-1, 0] > 22.0


def test_input_errors_name_the_input() -> None:
    model = GlaViTU().eval()
    x = _inputs(model.modalities)
    with pytest.raises(InputError, match="missing modality dem"):
        model({"optical": x["optical"]})
    with pytest.raises(InputError, match="'dem': expected 2 channels, got 3"):
        model({"optical": x["optical"], "dem": torch.rand(2, 3, 32, 32)})
    with pytest.raises(InputError, match="multiples of 16, got 40 x 32"):
        model(_inputs(model.modalities, h=40))
    with pytest.raises(InputError, match="differ"):
        model({"optical": x["optical"], "dem": torch.rand(2, 2, 48, 32)})
    with pytest.raises(InputError, match=r"expected shape \(B, 8, H, W\)"):
        model(torch.rand(2, 7, 32, 32))
    region = GlaViTU(location_encoding="region").eval()
    with pytest.raises(InputError, match="region indices"):
        region(x, torch.tensor([0, 12]))
    with pytest.raises(InputError, match=r"\(2, 12\)"):
        region(x, torch.rand(2, 11))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"modalities": {"lidar": 1}}, "unknown modality 'lidar'"),
        ({"modalities": {"optical": 0}}, "positive number of channels"),
        ({"modalities": {}}, "non-empty"),
        ({"num_classes": 1}, "num_classes"),
        ({"location_encoding": "gps"}, "location_encoding"),
        ({"region_codes": ["A", "A"]}, "region_codes"),
        ({"dropout": 1.5}, "dropout"),
        ({"filters": 18, "num_heads": 4}, "num_heads dividing filters"),
        ({"transformer_depth": 0}, "transformer_depth"),
    ],
)
def test_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GlaViTU(**kwargs)  # type: ignore[arg-type]


def test_small_glavitu_widths_and_depths() -> None:
    """filters / transformer_depth / unet_depth shrink the architecture; a transformer block costs as computed."""
    small = dict(filters=16, transformer_depth=4, num_heads=4, unet_depth=3, img_size=128)
    model = GlaViTU(**small)  # type: ignore[arg-type]
    assert len(model.setr.blocks) == 4 and len(model.unet.encoders) == 3
    assert model.head.in_channels == 16 and model.setr.pos_embed.weight.shape == (8 * 8, 16)
    deeper = GlaViTU(**{**small, "transformer_depth": 5})  # type: ignore[arg-type]
    e, mlp = 16, 64  # pre-norm block: 2 layer norms, q/k/v/out projections, MLP E -> 4E -> E
    block = 2 * 2 * e + 4 * (e * e + e) + (e * mlp + mlp) + (mlp * e + e)
    assert count_trainable(deeper) - count_trainable(model) == block == 3280
    # 0.6 M against the authors' 10.0 M (examples/glavitu_small_calibrated.yaml)
    assert count_trainable(model) == 603_924
    out = model(_inputs({"optical": 6, "dem": 2}, h=64, w=64))
    assert out["out"].shape == out["aux"].shape == (2, 2, 64, 64)
    assert GlaViTU().hparams["filters"] == 64 and GlaViTU().hparams["transformer_depth"] == 12


def test_hparams_rebuild_the_same_model() -> None:
    model = GlaViTU(
        {"optical": 6, "thermal": 1}, 3, location_encoding="region", region_codes=["X", "Y"], filters=32
    )
    rebuilt = get_model(model.arch, **model.hparams)
    assert isinstance(rebuilt, GlaViTU)
    assert rebuilt.modalities == {"optical": 6, "thermal": 1} and rebuilt.num_classes == 3
    assert rebuilt.region_codes == ("X", "Y") and rebuilt.hparams["filters"] == 32
    rebuilt.load_state_dict(model.state_dict(), strict=True)


@pytest.mark.slow
def test_torch_compile_and_channels_last_match_eager() -> None:
    # Inductor on this 2-core CPU needs about 60 s to compile GlaViTU, so the test uses the aot_eager backend
    # (same Dynamo graph capture and AOTAutograd tracing, eager kernels).
    torch.manual_seed(0)
    model = GlaViTU().eval()
    x = _inputs(model.modalities, b=1, h=32, w=32)
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)(x)
        model_cl = model.to(memory_format=torch.channels_last)
        cl = model_cl({k: v.to(memory_format=torch.channels_last) for k, v in x.items()})
    for key in ("out", "aux"):
        torch.testing.assert_close(compiled[key], eager[key], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(cl[key], eager[key], atol=1e-4, rtol=1e-4)
