"""Normalisation statistics: z-score and min-max values, count-weighted merging, streaming, serialisation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from glaciermap.errors import ConfigError, InputError
from glaciermap.transforms.normalisation import (
    EPS,
    ModalityStats,
    Normalize,
    NormStats,
    RunningStats,
    merge_stats,
)


def stats_of(values: np.ndarray, bands: tuple[str, ...]) -> ModalityStats:
    """Exact statistics of ``(C, N)`` values."""
    return ModalityStats(
        bands=bands,
        mean=tuple(values.mean(1).tolist()),
        std=tuple(values.std(1).tolist()),
        min=tuple(values.min(1).tolist()),
        max=tuple(values.max(1).tolist()),
        count=values.shape[1],
    )


DEM = ModalityStats(
    bands=("elevation", "slope"),
    mean=(4000.0, 20.0),
    std=(500.0, 10.0),
    min=(3000.0, 0.0),
    max=(6000.0, 80.0),
    count=9,
)


def test_zscore_of_known_values() -> None:
    x = torch.tensor([[4500.0, 3000.0], [20.0, 40.0]]).view(2, 1, 2)
    out = Normalize(DEM, "zscore")(x)
    expected = torch.tensor([[1.0, -2.0], [0.0, 2.0]]).view(2, 1, 2)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)


def test_minmax_of_known_values_and_batched_input() -> None:
    x = torch.tensor([[6000.0, 3000.0], [40.0, 0.0]]).view(1, 2, 1, 2).repeat(3, 1, 1, 1)
    out = Normalize(DEM, "minmax")(x)
    expected = torch.tensor([[1.0, 0.0], [0.5, 0.0]]).view(1, 2, 1, 2).repeat(3, 1, 1, 1)
    assert out.shape == (3, 2, 1, 2)
    torch.testing.assert_close(out, expected)


def test_constant_band_does_not_divide_by_zero() -> None:
    flat = ModalityStats(bands=("thermal",), mean=(260.0,), std=(0.0,), min=(260.0,), max=(260.0,), count=4)
    x = torch.full((1, 2, 2), 261.0)
    for method in ("zscore", "minmax"):
        out = Normalize(flat, method)(x)  # type: ignore[arg-type]
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, torch.full((1, 2, 2), 1.0 / EPS))


def test_wrong_channel_count_is_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"no channel axis of 2 \(elevation, slope\)"):
        Normalize(DEM)(torch.zeros(3, 4, 4))


def test_merge_is_the_statistics_of_the_union() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(5.0, 2.0, size=(2, 100))
    b = rng.normal(-1.0, 0.5, size=(2, 37))
    bands = ("sar_asc", "sar_desc")
    merged = merge_stats(
        [NormStats({"sar": stats_of(a, bands)}), NormStats({"sar": stats_of(b, bands)})]
    ).modalities["sar"]
    union = np.concatenate([a, b], axis=1)
    np.testing.assert_allclose(merged.mean, union.mean(1), rtol=1e-12)
    np.testing.assert_allclose(merged.std, union.std(1), rtol=1e-12)
    np.testing.assert_allclose(merged.min, union.min(1))
    np.testing.assert_allclose(merged.max, union.max(1))
    assert merged.count == 137


def test_merge_ignores_scenes_without_valid_pixels_for_min_max() -> None:
    empty = ModalityStats(bands=("thermal",), mean=(0.0,), std=(0.0,), min=(0.0,), max=(0.0,), count=0)
    full = ModalityStats(bands=("thermal",), mean=(260.0,), std=(1.0,), min=(250.0,), max=(270.0,), count=10)
    merged = merge_stats([NormStats({"thermal": empty}), NormStats({"thermal": full})]).modalities["thermal"]
    assert merged == full


def test_merge_errors() -> None:
    with pytest.raises(ConfigError, match="no statistics to merge"):
        merge_stats([])
    other = ModalityStats(bands=("elevation",), mean=(1.0,), std=(1.0,), min=(0.0,), max=(2.0,), count=3)
    with pytest.raises(InputError, match="modality 'dem' has bands"):
        merge_stats([NormStats({"dem": DEM}), NormStats({"dem": other})])
    with pytest.raises(InputError, match="modality 'thermal' is missing"):
        merge_stats([NormStats({"dem": DEM}), NormStats({"dem": DEM, "thermal": other})])


def test_running_stats_streamed_in_blocks_match_numpy() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(100.0, 30.0, size=(3, 1000))
    running = RunningStats(3)
    for start in range(0, 1000, 170):
        running.update(values[:, start : start + 170])
    running.update(values[:, :0])
    result = running.result(("a", "b", "c"))
    np.testing.assert_allclose(result.mean, values.mean(1), rtol=1e-12)
    np.testing.assert_allclose(result.std, values.std(1), rtol=1e-10)
    np.testing.assert_allclose(result.min, values.min(1))
    assert result.count == 1000
    assert RunningStats(1).result(("a",)).count == 0


def test_round_trip_through_dict_json_and_file(tmp_path: Path) -> None:
    stats = NormStats({"dem": DEM}, method="minmax")
    assert NormStats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats
    stats.save(tmp_path / "norm.json")
    assert NormStats.load(tmp_path / "norm.json") == stats


def test_malformed_statistics_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="normalisation statistics are malformed"):
        NormStats.from_dict({"modalities": {"dem": {"bands": ["elevation"]}}})
    with pytest.raises(InputError, match="file not found"):
        NormStats.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InputError, match="not valid JSON"):
        NormStats.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="'mean' has 1 values; expected 2"):
        ModalityStats(bands=("a", "b"), mean=(1.0,), std=(1.0, 1.0), min=(0.0, 0.0), max=(1.0, 1.0), count=1)
    with pytest.raises(ConfigError, match="normalisation method is 'robust'"):
        NormStats({"dem": DEM}, method="robust")  # type: ignore[arg-type]


def test_select_bands_in_requested_order() -> None:
    stats = NormStats({"dem": DEM})
    selected = stats.select({"dem": ["slope", "elevation"]}).modalities["dem"]
    assert selected.bands == ("slope", "elevation")
    assert selected.mean == (20.0, 4000.0)
    with pytest.raises(ConfigError, match="no statistics for band 'red'"):
        stats.select({"dem": ["red"]})
    with pytest.raises(ConfigError, match="have no modality 'sar'"):
        stats.select({"sar": ["sar_asc"]})
