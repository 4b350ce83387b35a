"""Window grid (padding, coverage, layouts) and blending weights."""

from __future__ import annotations

import numpy as np
import pytest

from glaciermap.errors import ConfigError
from glaciermap.inference.windows import (
    axis_grid,
    blend_weights,
    overlap_stride,
    window_grid,
    window_profile,
)


def test_reference_layout_matches_the_glavitu_demo_scene() -> None:
    """Spec 10: the 1808 x 2001 demo scene is padded to 1920 x 2304 (pads 56 / 151) and has 99 windows."""
    g = window_grid(1808, 2001, 384, 0.5, layout="reference")
    assert g.padded_shape == (1920, 2304)
    assert (g.rows.pad_before, g.cols.pad_before) == (56, 151)
    assert (g.rows.count, g.cols.count, g.count) == (9, 11, 99)
    assert g.stride == 192


def test_compact_layout_uses_fewer_windows_and_covers_the_scene() -> None:
    g = window_grid(1808, 2001, 384, 0.5)
    assert g.padded_shape == (1920, 2112)
    assert g.count == 9 * 10
    for axis, length in ((g.rows, 1808), (g.cols, 2001)):
        covered = np.zeros(axis.padded, dtype=int)
        for s in axis.starts:
            covered[s : s + axis.size] += 1
        assert covered.min() >= 1  # every padded pixel, hence every scene pixel, is in a window
        assert axis.starts[-1] + axis.size == axis.padded
        assert 0 <= axis.pad_before <= axis.pad_after <= axis.pad_before + 1
        assert axis.pad_before + length + axis.pad_after == axis.padded


@pytest.mark.parametrize(
    ("length", "size", "stride", "count", "padded"),
    [
        (20, 64, 32, 1, 64),  # smaller than one window
        (64, 64, 32, 1, 64),  # exactly one window
        (65, 64, 32, 2, 96),
        (101, 32, 24, 4, 104),  # stride not dividing the window
        (100, 32, 32, 4, 128),  # no overlap
    ],
)
def test_axis_grid_counts(length: int, size: int, stride: int, count: int, padded: int) -> None:
    axis = axis_grid(length, size, stride)
    assert (axis.count, axis.padded) == (count, padded)
    assert axis.pad_before == (padded - length) // 2


def test_reference_layout_with_a_stride_that_does_not_divide_the_window() -> None:
    axis = axis_grid(100, 32, 24, "reference")  # minimum 32 * 4 = 128, then (n - 1) * 24 + 32 >= 128
    assert axis.padded >= 128 and (axis.padded - 32) % 24 == 0
    assert axis.count == (axis.padded - 32) // 24 + 1


def test_gaussian_weight_values_of_the_reference() -> None:
    """Spec 5.1: w = exp(-r^2/2) on linspace(-1, 1): centre 1, edge midpoints 0.61, corners 0.37."""
    w = blend_weights(5, "gaussian")
    assert w[2, 2] == pytest.approx(1.0)
    assert w[0, 2] == pytest.approx(np.exp(-0.5), rel=1e-6)
    assert w[2, 4] == pytest.approx(np.exp(-0.5), rel=1e-6)
    assert w[0, 0] == pytest.approx(np.exp(-1.0), rel=1e-6)
    u = np.linspace(-1, 1, 384)
    full = np.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / 2)
    np.testing.assert_allclose(blend_weights(384), full, rtol=1e-6)


def test_cosine_window_is_positive_and_a_partition_of_unity_at_half_overlap() -> None:
    g = window_profile(32, "cosine")
    assert g.min() > 0
    axis = axis_grid(200, 32, 16)
    sums = axis.weight_sum("cosine")
    interior = sums[16 : axis.padded - 16]
    np.testing.assert_allclose(interior, 1.0, atol=1e-12)


@pytest.mark.parametrize("kind", ["gaussian", "cosine"])
def test_separable_weight_sums_equal_the_sum_of_the_2d_weights(kind: str) -> None:
    g = window_grid(70, 90, 32, 0.5, kind=kind)  # type: ignore[arg-type]
    brute = np.zeros(g.padded_shape)
    w = g.weights().astype(np.float64)
    for y in g.rows.starts:
        for x in g.cols.starts:
            brute[y : y + g.size, x : x + g.size] += w
    rows, cols = g.weight_sums()
    np.testing.assert_allclose(rows[:, None] * cols[None, :], brute, rtol=1e-6)
    assert brute.min() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"overlap": 1.0}, "overlap"),
        ({"overlap": -0.1}, "overlap"),
        ({"kind": "box"}, "blending window"),
        ({"layout": "tight"}, "layout"),
        ({"size": 0}, "window size"),
    ],
)
def test_invalid_grid_options_raise_config_errors(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"height": 50, "width": 50, "size": 32, "overlap": 0.5}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        window_grid(**args)  # type: ignore[arg-type]


def test_overlap_stride() -> None:
    assert overlap_stride(384, 0.5) == 192
    assert overlap_stride(384, 0.0) == 384
    assert overlap_stride(10, 0.99) == 1
