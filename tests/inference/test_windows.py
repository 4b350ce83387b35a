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


@pytest.mark.parametrize(
    ("length", "size", "stride"), [(200, 32, 24), (200, 32, 28), (101, 32, 16), (100, 32, 32)]
)
def test_crop_window_is_a_partition_of_unity_with_abutting_centres(
    length: int, size: int, stride: int
) -> None:
    """Every padded pixel takes exactly one window; inner windows keep only their central ``stride`` pixels."""
    axis = axis_grid(length, size, stride)
    np.testing.assert_array_equal(axis.weight_sum("crop"), np.ones(axis.padded))
    a = (size - stride) // 2
    for k in range(1, axis.count - 1):
        assert np.flatnonzero(axis.profile(k, "crop")).tolist() == list(range(a, a + stride))
    assert axis.profile(0, "crop")[:a].all() and axis.profile(axis.count - 1, "crop")[a + stride :].all()


def test_crop_window_of_a_scene_smaller_than_one_window_keeps_all_of_it() -> None:
    g = window_grid(20, 50, 64, 0.25, kind="crop")
    assert g.count == 1
    np.testing.assert_array_equal(g.window_weights(0, 0), np.ones((64, 64), dtype=np.float32))
    rows, cols = g.weight_sums()
    np.testing.assert_array_equal(rows, 1.0)
    np.testing.assert_array_equal(cols, 1.0)


def test_crop_window_borders_are_where_the_centres_meet() -> None:
    g = window_grid(100, 100, 32, 0.25, kind="crop")  # stride 24, a = 4
    assert g.rows.borders("crop") == [x - g.rows.pad_before for x in (28, 52, 76)]
    assert g.rows.borders("gaussian") == sorted(
        {s - g.rows.pad_before for s in g.rows.starts[1:]}
        | {s + 32 - g.rows.pad_before for s in g.rows.starts[:-1]}
    )


def test_crop_at_no_overlap_is_plain_tiling() -> None:
    g = window_grid(64, 64, 32, 0.0, kind="crop")
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(g.window_weights(i, j), 1.0)


@pytest.mark.parametrize(
    ("overlap", "factor"), [(0.0, 1.0), (0.125, (8 / 7) ** 2), (0.25, (4 / 3) ** 2), (0.5, 4.0)]
)
def test_evaluations_per_pixel_approach_the_overlap_factor(overlap: float, factor: float) -> None:
    g = window_grid(20_000, 20_000, 384, overlap)
    assert g.evaluations_per_pixel() == pytest.approx(factor, rel=0.04)  # plus the padding of the last window


@pytest.mark.parametrize("kind", ["gaussian", "cosine", "crop"])
def test_per_window_weights_sum_to_the_separable_denominator(kind: str) -> None:
    g = window_grid(70, 90, 32, 0.25, kind=kind)  # type: ignore[arg-type]
    brute = np.zeros(g.padded_shape)
    for i, y in enumerate(g.rows.starts):
        for j, x in enumerate(g.cols.starts):
            brute[y : y + g.size, x : x + g.size] += g.window_weights(i, j)
    rows, cols = g.weight_sums()
    np.testing.assert_allclose(rows[:, None] * cols[None, :], brute, rtol=1e-6)
    assert brute.min() > 0


def test_blend_is_an_alias_of_window_on_the_command_line() -> None:
    import argparse

    from glaciermap.inference.options import add_arguments, from_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = ["--overlap", "0.25", "--blend", "crop"]
    assert (
        from_arguments(parser.parse_args(args)).window,
        from_arguments(parser.parse_args(args)).overlap,
    ) == (
        "crop",
        0.25,
    )
    assert from_arguments(parser.parse_args(["--window", "cosine"])).window == "cosine"
    with pytest.raises(SystemExit):
        parser.parse_args(["--blend", "box"])


def test_default_windows_are_one_eighth_overlap_cosine_and_the_reference_setting_is_available() -> None:
    """The default chosen by benchmarks/overlap_study.py; --overlap 0.5 --blend gaussian is the GlaViTU code's."""
    import argparse

    from glaciermap.inference.options import MapOptions, add_arguments, from_arguments

    default = MapOptions()
    assert (default.overlap, default.window) == (0.125, "cosine")
    assert overlap_stride(384, default.overlap) == 336
    assert window_grid(20_000, 20_000, 384, default.overlap).evaluations_per_pixel() == pytest.approx(
        (8 / 7) ** 2, rel=0.04
    )
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parity = from_arguments(parser.parse_args(["--overlap", "0.5", "--blend", "gaussian"]))
    assert (parity.overlap, parity.window) == (0.5, "gaussian")
    grid = window_grid(1152, 1152, 384, parity.overlap, kind=parity.window)
    assert grid.count == 25  # the anchor scene: 25 windows at 50 %
