"""The GlaViTU reference min-max normalisation (reference notes 4.4)."""

from __future__ import annotations

import math

import pytest
import torch

from glaciermap.errors import ConfigError
from glaciermap.transforms.normalisation import Normalize
from glaciermap.transforms.reference import (
    REFERENCE_MINMAX,
    ReferenceNormalize,
    reference_band_names,
    reference_stats,
)


def test_constants_are_the_published_ones() -> None:
    assert REFERENCE_MINMAX["optical"][1] == (2.0468, 2.1253, 2.2303, 2.6781, 2.1246, 2.1602)
    assert REFERENCE_MINMAX["dem"] == ((-103.29675627387357, 0.0), (8349.427068840781, 88.97835244066131))
    assert REFERENCE_MINMAX["sar"][0] == (-6.0, -6.0)
    assert reference_band_names("cross_pol_sar") == ("cross_pol_asc", "cross_pol_desc")


def test_minmax_values_optical_and_dem() -> None:
    stats = reference_stats(["optical", "dem"])
    assert stats.method == "minmax"
    x = torch.tensor([8349.427068840781, -103.29675627387357]).view(2, 1, 1)
    y = Normalize(stats.modalities["dem"].select(["elevation"]), "minmax")(x[:1])
    assert y.item() == pytest.approx(1.0)
    y = ReferenceNormalize("dem", ["elevation"])(x[1:])
    assert y.item() == pytest.approx(0.0, abs=1e-6)
    slope = ReferenceNormalize("dem")(torch.tensor([1000.0, 44.48917622033065]).view(2, 1, 1))
    assert slope[1].item() == pytest.approx(0.5, rel=1e-6)


def test_sar_is_log10_first() -> None:
    norm = ReferenceNormalize("sar")
    x = torch.tensor([0.0, 0.01]).view(2, 1, 1)  # asc sigma0 = 0 -> -6 -> 0; desc 0.01 -> ~-2
    y = norm(x)
    assert y[0].item() == pytest.approx(0.0, abs=1e-6)
    expected = (math.log10(0.01 + 1e-6) + 6.0) / (15.635085643187638 + 6.0)
    assert y[1].item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(0.185, abs=0.005)  # reference notes: [-2, 0] -> [0.19, 0.28]


def test_errors() -> None:
    with pytest.raises(ConfigError, match="no constants for 'pan'"):
        reference_stats(["pan"])
    with pytest.raises(ConfigError, match="not a band of 'dem'"):
        ReferenceNormalize("dem", ["thermal"])
    with pytest.raises(ConfigError, match="no channel axis of 6"):
        ReferenceNormalize("optical")(torch.zeros(2, 4, 4))
