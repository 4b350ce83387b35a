"""Tests of the directional vario function (GEOCLASS reference notes sections 2 and 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import glaciermap.transforms.vario as vario_module
from glaciermap.errors import ConfigError, InputError
from glaciermap.transforms.vario import (
    DefaultRotateVario,
    RandomRotateVario,
    ScaleVario,
    VarioFeatures,
    directional_vario,
    scale_to_uint8,
    uint8_scale_max,
    vario_features,
    vario_lags,
)


def naive_vario(z: np.ndarray, height_width: tuple[int, int], legacy: bool = False) -> np.ndarray:
    """The definition, tile by tile and lag by lag, in float64 (or the uint8 wrap-around)."""
    lags = vario_lags(*height_width)
    out = np.zeros((4, lags.n_lags))
    for k in range(4):
        rows, cols = lags.region[k]
        zk = z[:rows, :cols]
        for i in range(lags.counts[k]):
            dr, dc = (int(v) for v in lags.displacements[k, i])
            r, c = zk.shape
            if k == 3:
                a, b = zk[0 : r - dr, dc:c], zk[dr:r, 0 : c - dc]
            else:
                a, b = zk[0 : r - dr, 0 : c - dc], zk[dr:r, dc:c]
            if legacy:
                terms = (a.astype(np.uint8) - b.astype(np.uint8)) ** 2  # wraps modulo 256 in uint8
                out[k, i] = terms.sum(dtype=np.int64) / terms.size
            else:
                out[k, i] = ((a.astype(np.float64) - b) ** 2).mean()
    return out


def test_lag_scheme_201_by_268() -> None:
    lags = vario_lags(201, 268)
    assert lags.method == "345" and lags.n_lags == 53 and lags.feature_length == 159
    assert lags.displacements[0, :3, 0].tolist() == [1, 4, 7] and lags.displacements[0, -1, 0] == 157
    assert lags.displacements[1, :3, 1].tolist() == [1, 5, 9] and lags.displacements[1, -1, 1] == 209
    assert lags.displacements[2, -1].tolist() == [157, 209]
    portrait = vario_lags(268, 201)
    assert portrait.displacements[0, 1, 0] == 5 and portrait.displacements[1, 1, 1] == 4
    assert [vario_lags(201, 268, t).n_lags for t in (1.0, 0.5, 0.27)] == [67, 33, 18]
    with pytest.raises(ConfigError, match="53 lags"):
        vario_lags(201, 268, 0.8, n_lags=33)


def test_worked_examples_ramps_and_checkerboard() -> None:
    cols = torch.arange(268, dtype=torch.float64).expand(201, 268).clone()
    v = directional_vario(cols, dtype=torch.float64)
    lag = 1 + 4 * torch.arange(53, dtype=torch.float64)
    assert torch.equal(v[0], torch.zeros(53, dtype=torch.float64))
    for row in (1, 2, 3):
        torch.testing.assert_close(v[row], lag**2, rtol=1e-9, atol=1e-9)
    rows = torch.arange(201, dtype=torch.float64)[:, None].expand(201, 268).clone()
    v = directional_vario(rows, dtype=torch.float64)
    lag = 1 + 3 * torch.arange(53, dtype=torch.float64)
    torch.testing.assert_close(v[0], lag**2, rtol=1e-9, atol=1e-9)
    assert float(v[1].abs().max()) < 1e-9
    torch.testing.assert_close(v[2], lag**2, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(v[3], lag**2, rtol=1e-9, atol=1e-9)
    r, c = np.meshgrid(np.arange(201), np.arange(268), indexing="ij")
    board = torch.from_numpy(((r // 4 + c // 4) % 2) * 100.0)
    v = directional_vario(board, dtype=torch.float64)
    np.testing.assert_allclose(v[0, :4].numpy(), [2500, 10000, 2525.8, 4973.8], atol=0.05)
    np.testing.assert_allclose(v[1, :4].numpy(), [2471.9, 7528.5, 2471.0, 7529.4], atol=0.05)
    assert vario_features(v).shape == (159,)


@pytest.mark.parametrize("shape", [(201, 268), (268, 201), (30, 40), (48, 48), (37, 90)])
def test_batched_equals_loop(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    tiles = rng.integers(0, 256, (3, *shape)).astype(np.uint8)
    batched = directional_vario(torch.from_numpy(tiles), dtype=torch.float64)
    for i in range(3):
        np.testing.assert_allclose(batched[i].numpy(), naive_vario(tiles[i], shape), rtol=1e-10, atol=1e-8)
    # float32 (default) stays within 1e-4 relative on random tiles
    single = directional_vario(torch.from_numpy(tiles))
    assert single.dtype == torch.float32
    np.testing.assert_allclose(single.numpy(), batched.numpy(), rtol=1e-4, atol=1e-2)


def test_generic_fallback_sizes() -> None:
    lags = vario_lags(64, 64)
    assert lags.method == "generic" and lags.n_lags == 17  # floor(0.8 * 64 / 3)
    assert lags.displacements[0, :3, 0].tolist() == [1, 4, 7]  # step floor(0.8 * 64 / 17) = 3
    assert lags.displacements[2, 1].tolist() == [3, 3]  # round(4 / sqrt 2)
    assert lags.region[0] == (64, 64)
    wide = vario_lags(40, 100)
    assert wide.region == ((40, 40), (40, 40), (40, 40), (40, 40))
    with pytest.raises(ConfigError, match="does not fit"):
        vario_lags(20, 30, n_lags=40)


def test_legacy_uint8_wraparound() -> None:
    pair = torch.tensor([[10, 30, 10, 30]] * 4, dtype=torch.uint8)  # 4 x 4: generic scheme
    v = directional_vario(pair, mode="legacy_uint8", n_lags=1, lag_threshold=0.8)
    assert float(v[1, 0]) == 144.0  # (30 - 10)**2 = 400 -> 400 mod 256
    assert float(directional_vario(pair.double(), n_lags=1)[1, 0]) == 400.0
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (60, 80)).astype(np.uint8)
    legacy = directional_vario(torch.from_numpy(small), mode="legacy_uint8", dtype=torch.float64)
    np.testing.assert_allclose(legacy.numpy(), naive_vario(small, (60, 80), legacy=True), rtol=1e-12)
    tile = rng.integers(0, 256, (201, 268)).astype(np.uint8)
    first = directional_vario(torch.from_numpy(tile), mode="legacy_uint8", directions=(0,))[0, 0]
    assert 90 < float(first) < 125  # about 106 (reference notes 2.6) vs about 10,900 exact
    exact = directional_vario(torch.from_numpy(tile), directions=(0,))
    assert 10_000 < float(exact[0, 0]) < 12_000
    with pytest.raises(InputError, match="uint8"):
        directional_vario(torch.from_numpy(tile).float(), mode="legacy_uint8")


def test_nodata_masked_variant() -> None:
    rng = np.random.default_rng(1)
    tile = torch.from_numpy(rng.normal(size=(30, 40)))
    valid = torch.ones(30, 40, dtype=torch.bool)
    torch.testing.assert_close(
        directional_vario(tile, valid=valid, dtype=torch.float64),
        directional_vario(tile, dtype=torch.float64),
    )
    corrupt = tile.clone()
    corrupt[5:9, 10:20] = 1e6
    valid[5:9, 10:20] = False
    masked = directional_vario(corrupt, valid=valid, dtype=torch.float64)
    # N-S lag 1 by hand: pairs with both pixels valid only
    a, b = corrupt[:-1], corrupt[1:]
    both = valid[:-1] & valid[1:]
    expected = ((b - a) ** 2)[both].mean()
    assert float(masked[0, 0]) == pytest.approx(float(expected))
    assert float(masked.max()) < 100  # the corrupt block never enters
    none_valid = directional_vario(tile, valid=torch.zeros(30, 40, dtype=torch.bool))
    assert bool(torch.isnan(none_valid[:, : vario_lags(30, 40).counts[0]]).all())


def test_feature_order_rotation_and_scaling() -> None:
    v = torch.arange(4 * 5, dtype=torch.float32).reshape(4, 5)
    assert DefaultRotateVario()(v).tolist() == list(range(15))
    gen = torch.Generator().manual_seed(0)
    seen = {tuple(RandomRotateVario(gen)(v)[[0, 5, 10]].tolist()) for _ in range(200)}
    assert seen == {(0, 5, 10), (5, 0, 10), (0, 5, 15), (5, 0, 15)}
    assert ScaleVario()(torch.tensor([10.0])).item() == pytest.approx(1.0)
    image = torch.rand(1, 30, 40) * 255
    features = VarioFeatures()(image)
    assert features.shape == (3 * vario_lags(30, 40).n_lags,)
    torch.testing.assert_close(features, vario_features(directional_vario(image[0])))


def test_uint8_intensity_scaling() -> None:
    values = np.array([0, 0, 100, 200, 300, 400], dtype=np.float64)
    legacy = uint8_scale_max(values, nodata=0, mask_nodata=False)
    masked = uint8_scale_max(values, nodata=0)
    assert legacy == pytest.approx(min(values.mean() + 4 * values.std(), 400))
    assert masked == pytest.approx(400.0)  # mean + 4 std of the valid pixels exceeds their maximum
    q = scale_to_uint8(np.array([0.0, 1.0, 200.0, 1000.0]), 400.0)
    assert q.tolist() == [0, 1, 128, 255]  # ceil(255 * DN / M), clipped at 255
    with pytest.raises(InputError):
        uint8_scale_max(np.zeros(5), nodata=0)


@pytest.mark.parametrize("directions", [(0, 1, 2), (3, 2), (1,)])
def test_chunks_reuse_the_workspace(directions: tuple[int, ...]) -> None:
    """Chunks of 2 (the last one shorter) reuse one set of buffers and give the one-chunk result."""
    rng = np.random.default_rng(5)
    tiles = torch.from_numpy(rng.integers(0, 256, (5, 30, 40)).astype(np.uint8))
    whole = directional_vario(tiles, directions=directions, dtype=torch.float64, chunk_size=16)
    chunked = directional_vario(tiles, directions=directions, dtype=torch.float64, chunk_size=2)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-9)
    for i in range(5):
        expected = naive_vario(tiles[i].numpy(), (30, 40))[list(directions)]
        np.testing.assert_allclose(chunked[i].numpy(), expected, rtol=1e-10, atol=1e-8)


def test_worker_threads_give_the_same_result() -> None:
    """Runs of chunks featurised by two threads, each with its own buffers, equal one thread's result."""
    rng = np.random.default_rng(6)
    tiles = torch.from_numpy(rng.integers(0, 256, (7, 30, 40)).astype(np.uint8))
    one = directional_vario(tiles, chunk_size=2, dtype=torch.float64)
    two = directional_vario(tiles, chunk_size=2, workers=2, dtype=torch.float64)
    assert torch.equal(one, two)
    masked = torch.ones(7, 30, 40, dtype=torch.bool)
    masked[:, :3] = False
    torch.testing.assert_close(
        directional_vario(tiles, valid=masked, chunk_size=3, workers=3),
        directional_vario(tiles, valid=masked, chunk_size=3),
    )
    with pytest.raises(ConfigError, match="workers 0"):
        directional_vario(tiles, workers=0)


@pytest.mark.parametrize("shape", [(201, 268), (268, 201), (30, 40)])
def test_uint8_tiles_take_the_exact_int8_product_path(
    shape: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """uint8 tiles on a CPU go through int8 matrix products (``torch._int_mm``) and are exact."""
    rng = np.random.default_rng(7)
    tiles = rng.integers(0, 256, (3, *shape)).astype(np.uint8)
    calls: list[int] = []
    original = torch._int_mm

    def counting(*args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "_int_mm", counting)
    exact = directional_vario(torch.from_numpy(tiles), dtype=torch.float64, chunk_size=2)
    assert len(calls) == 3 * 4  # one product per tile and direction
    for i in range(3):
        np.testing.assert_allclose(exact[i].numpy(), naive_vario(tiles[i], shape), rtol=1e-12, atol=1e-9)
    calls.clear()
    directional_vario(torch.from_numpy(tiles).float(), dtype=torch.float64)
    assert calls == []  # float tiles keep the float path


def test_int8_path_is_exact_on_smooth_bright_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bright low-contrast tile: the int8 path stays exact in float32, the mean-centred float32 path not."""
    tile = np.full((201, 268), 230, dtype=np.uint8)
    tile[::2] += 3
    tile[:, ::5] -= 1
    expected = naive_vario(tile, (201, 268))
    fast = directional_vario(torch.from_numpy(tile))
    assert fast.dtype == torch.float32
    np.testing.assert_allclose(fast.numpy(), expected, rtol=1e-6, atol=1e-6)
    monkeypatch.setattr(vario_module, "INTEGER_PRODUCTS", False)
    float_path = directional_vario(torch.from_numpy(tile)).numpy()
    assert not np.allclose(float_path, expected, rtol=1e-6, atol=1e-6)
