"""Tests of the GEOCLASS class schemes (reference notes section 11)."""

from __future__ import annotations

import pytest

from glaciermap.datasets.crevasse_classes import (
    REFERENCE_CLASS_ENUM_V2,
    TAB20,
    V1_TO_V2,
    V2_TO_V1,
    CrevasseClassV1,
    CrevasseClassV2,
    v2_to_v1,
)
from glaciermap.errors import InputError


def test_v2_scheme_names_ids_colours() -> None:
    assert len(CrevasseClassV2) == 11
    assert [int(c) for c in CrevasseClassV2] == list(range(11))
    assert CrevasseClassV2.SHEAR.paper_number == 3 and CrevasseClassV2.SEA_ICE.paper_number == 11
    assert CrevasseClassV2.MELT.reference_name == "Melt" and CrevasseClassV2.MELT.reference_index == 11
    assert CrevasseClassV2.MELT.display_name == "Melt Streams and Ponds"
    assert CrevasseClassV2.MULTIGENERATIONAL.reference_index == 7
    assert CrevasseClassV2.MULTIDIRECTIONAL.reference_index == 8
    assert CrevasseClassV2.UNDISTURBED_SNOW.colour == TAB20[1]
    assert len({c.colour for c in CrevasseClassV2}) == 11
    for c in CrevasseClassV2:
        assert REFERENCE_CLASS_ENUM_V2[c.reference_index] == c.reference_name


def test_parse_by_id_and_names() -> None:
    assert CrevasseClassV2.parse(4) is CrevasseClassV2.PARALLEL_SHEAR
    assert CrevasseClassV2.parse("4") is CrevasseClassV2.PARALLEL_SHEAR
    assert CrevasseClassV2.parse("parallel with shear") is CrevasseClassV2.PARALLEL_SHEAR
    assert CrevasseClassV2.parse("Parallel Shear") is CrevasseClassV2.PARALLEL_SHEAR
    assert CrevasseClassV2.parse("sea_ice") is CrevasseClassV2.SEA_ICE
    assert CrevasseClassV1.parse("One Directional") is CrevasseClassV1.ONE_DIRECTIONAL
    with pytest.raises(InputError, match="'crevasse soup': unknown CrevasseClassV2"):
        CrevasseClassV2.parse("crevasse soup")
    with pytest.raises(InputError, match="unknown"):
        CrevasseClassV2.parse(11)


def test_reference_index_and_v1_mapping() -> None:
    assert CrevasseClassV2.from_reference_index(12) is CrevasseClassV2.SEA_ICE
    with pytest.raises(InputError, match="no counterpart"):
        CrevasseClassV2.from_reference_index(10)  # Crevasse Under Snow
    assert v2_to_v1(CrevasseClassV2.PARALLEL) is CrevasseClassV1.ONE_DIRECTIONAL
    assert v2_to_v1(5) is CrevasseClassV1.SHEAR
    assert set(V2_TO_V1) == set(CrevasseClassV2)
    assert sum(len(v) for v in V1_TO_V2.values()) == 11
    assert V1_TO_V2[CrevasseClassV1.MULTIDIRECTIONAL] == (
        CrevasseClassV2.MULTIDIRECTIONAL,
        CrevasseClassV2.MULTIGENERATIONAL,
    )
    assert [c.reference_name for c in CrevasseClassV1] == [
        "Undisturbed Snow",
        "One Directional",
        "Multidirectional",
        "Shear",
        "Chaos",
        "Other",
    ]
