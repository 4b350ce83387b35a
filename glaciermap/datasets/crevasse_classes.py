"""Crevasse and glacier-surface class schemes of GEOCLASS-image (v2 with 11 classes, v1 with 6).

* :class:`CrevasseClassV2`: the 11 glacier surface types of the GEOCLASS-image v2.0 paper (Sec. 5.1 and
  Fig. 5). The enum value is the model's output index (0 ... 10, in the paper's Fig. 5 order, which numbers
  the classes 1 ... 11: ``paper_number = value + 1``).
* :class:`CrevasseClassV1`: the six simplified classes of GEOCLASS-image v1.0 (VarioCNN), with the ids of the
  reference's 6-class configuration (reference notes, section 11).
* :data:`V2_TO_V1` / :data:`V1_TO_V2`: the mapping between them (v2 is finer; each v2 class falls in one v1
  class, our reading of the class definitions in the paper's Sec. 2.3 and 5.1).

Every member carries its ``display_name`` (the paper's wording), ``reference_name`` (the name in the
reference's configuration ``class_enum``), ``reference_index`` (its position in that list, which is the
sub-folder number of the reference's image-folder export, reference notes section 9.2) and ``colour``
(hex, matplotlib ``tab20`` at ``reference_index``; the reference paints classes with ``tab20`` unless a
custom list is given, reference notes section 9.4 and 12).

The v2.0-era configuration holds 13 names (:data:`REFERENCE_CLASS_ENUM_V2`): ``Other`` (0) and
``Crevasse Under Snow`` (10) are not among the paper's 11 classes, and it lists Multigenerational (7) before
Multidirectional (8) while the paper's Fig. 5 numbers Multidirectional 7 and Multigenerational 8. We follow
the paper for the enum order and keep the reference's positions in ``reference_index``.
"""

from __future__ import annotations

import enum
from typing import Final

from glaciermap.errors import InputError

TAB20: Final[tuple[str, ...]] = (
    "#1f77b4",
    "#aec7e8",
    "#ff7f0e",
    "#ffbb78",
    "#2ca02c",
    "#98df8a",
    "#d62728",
    "#ff9896",
    "#9467bd",
    "#c5b0d5",
    "#8c564b",
    "#c49c94",
    "#e377c2",
    "#f7b6d2",
    "#7f7f7f",
    "#c7c7c7",
    "#bcbd22",
    "#dbdb8d",
    "#17becf",
    "#9edae5",
)
"""matplotlib's ``tab20`` colours, in order (hex)."""

REFERENCE_CLASS_ENUM_V2: Final[tuple[str, ...]] = (
    "Other",
    "Undisturbed Snow",
    "Slow Moving Ice",
    "Shear",
    "Parallel",
    "Parallel Shear",
    "Subordinate Shear",
    "Multigenerational",
    "Multidirectional",
    "Chaos",
    "Crevasse Under Snow",
    "Melt",
    "Sea Ice",
)
"""The 13-entry ``class_enum`` of the reference's v2.0-era configurations (reference notes, section 11)."""

REFERENCE_CLASS_ENUM_V1: Final[tuple[str, ...]] = (
    "Undisturbed Snow",
    "One Directional",
    "Multidirectional",
    "Shear",
    "Chaos",
    "Other",
)
"""The ``class_enum`` of the reference's 6-class (v1.0, VarioCNN) configuration (reference notes, section 11)."""


class _SchemeMixin:
    """Attributes and look-ups shared by both schemes (mixed into the IntEnums)."""

    display_name: str
    reference_name: str
    reference_index: int

    @property
    def colour(self) -> str:
        """Hex colour: matplotlib ``tab20`` at the class's position in the reference's ``class_enum``."""
        return TAB20[self.reference_index % len(TAB20)]


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


class CrevasseClassV2(_SchemeMixin, enum.IntEnum):
    """The 11 glacier surface classes of GEOCLASS-image v2.0 (paper Sec. 5.1, Fig. 5); value = model index."""

    UNDISTURBED_SNOW = 0
    SLOW_MOVING_ICE = 1
    SHEAR = 2
    PARALLEL = 3
    PARALLEL_SHEAR = 4
    SUBORDINATE_SHEAR = 5
    MULTIDIRECTIONAL = 6
    MULTIGENERATIONAL = 7
    CHAOS = 8
    MELT = 9
    SEA_ICE = 10

    @property
    def paper_number(self) -> int:
        """The class number in the paper's Fig. 5 (1 ... 11)."""
        return int(self) + 1

    @classmethod
    def parse(cls, value: str | int) -> CrevasseClassV2:
        """Look a class up by id, member name, paper wording or reference name (case and spacing ignored).

        Args:
            value: ``3``, ``"3"``, ``"PARALLEL_SHEAR"``, ``"parallel with shear"`` or ``"Parallel Shear"``.

        Returns:
            The class.

        Raises:
            InputError: If nothing matches; the message lists the valid names.
        """
        return _parse(cls, value)  # type: ignore[return-value]

    @classmethod
    def from_reference_index(cls, index: int) -> CrevasseClassV2:
        """The class at ``index`` of the reference's 13-entry ``class_enum`` (:data:`REFERENCE_CLASS_ENUM_V2`).

        Args:
            index: Position in the reference's list (e.g. a folder number of its image-folder export).

        Returns:
            The class.

        Raises:
            InputError: For ``Other`` (0), ``Crevasse Under Snow`` (10) or an index outside 0 ... 12, which
                have no counterpart among the paper's 11 classes.
        """
        for member in cls:
            if member.reference_index == index:
                return member
        raise InputError(
            f"reference class index {index}: has no counterpart among the 11 v2 classes "
            f"(expected one of {sorted(m.reference_index for m in cls)})"
        )


class CrevasseClassV1(_SchemeMixin, enum.IntEnum):
    """The six simplified classes of GEOCLASS-image v1.0 (reference notes, section 11); value = reference id."""

    UNDISTURBED_SNOW = 0
    ONE_DIRECTIONAL = 1
    MULTIDIRECTIONAL = 2
    SHEAR = 3
    CHAOS = 4
    OTHER = 5

    @classmethod
    def parse(cls, value: str | int) -> CrevasseClassV1:
        """Look a class up by id, member name or reference name (case and spacing ignored).

        Args:
            value: ``1``, ``"ONE_DIRECTIONAL"`` or ``"One Directional"``.

        Returns:
            The class.

        Raises:
            InputError: If nothing matches; the message lists the valid names.
        """
        return _parse(cls, value)  # type: ignore[return-value]


_V2_NAMES: Final[dict[CrevasseClassV2, tuple[str, str]]] = {
    CrevasseClassV2.UNDISTURBED_SNOW: ("Undisturbed Snow", "Undisturbed Snow"),
    CrevasseClassV2.SLOW_MOVING_ICE: ("Slow Moving Ice", "Slow Moving Ice"),
    CrevasseClassV2.SHEAR: ("Shear", "Shear"),
    CrevasseClassV2.PARALLEL: ("Parallel", "Parallel"),
    CrevasseClassV2.PARALLEL_SHEAR: ("Parallel with Shear", "Parallel Shear"),
    CrevasseClassV2.SUBORDINATE_SHEAR: ("Subordinate Shear", "Subordinate Shear"),
    CrevasseClassV2.MULTIDIRECTIONAL: ("Multidirectional", "Multidirectional"),
    CrevasseClassV2.MULTIGENERATIONAL: ("Multigenerational", "Multigenerational"),
    CrevasseClassV2.CHAOS: ("Chaos", "Chaos"),
    CrevasseClassV2.MELT: ("Melt Streams and Ponds", "Melt"),
    CrevasseClassV2.SEA_ICE: ("Sea Ice", "Sea Ice"),
}
for _member, (_display, _ref) in _V2_NAMES.items():
    _member.display_name = _display
    _member.reference_name = _ref
    _member.reference_index = REFERENCE_CLASS_ENUM_V2.index(_ref)
for _v1 in CrevasseClassV1:
    _v1.reference_name = REFERENCE_CLASS_ENUM_V1[int(_v1)]
    _v1.display_name = _v1.reference_name
    _v1.reference_index = int(_v1)


def _parse(cls: type[CrevasseClassV2] | type[CrevasseClassV1], value: str | int) -> enum.IntEnum:
    members: list[_SchemeMixin] = [m for m in cls]
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
        for m in members:
            if int(m) == number:  # type: ignore[call-overload]
                return m  # type: ignore[return-value]
    else:
        key = _normalise(value)
        for m in members:
            if key in {_normalise(m.name), _normalise(m.display_name), _normalise(m.reference_name)}:  # type: ignore[attr-defined]
                return m  # type: ignore[return-value]
    names = ", ".join(m.name.lower() for m in cls)
    raise InputError(
        f"class {value!r}: unknown {cls.__name__} class (expected an id 0-{len(members) - 1} or one of {names})"
    )


V2_TO_V1: Final[dict[CrevasseClassV2, CrevasseClassV1]] = {
    CrevasseClassV2.UNDISTURBED_SNOW: CrevasseClassV1.UNDISTURBED_SNOW,
    CrevasseClassV2.SLOW_MOVING_ICE: CrevasseClassV1.OTHER,
    CrevasseClassV2.SHEAR: CrevasseClassV1.SHEAR,
    CrevasseClassV2.PARALLEL: CrevasseClassV1.ONE_DIRECTIONAL,
    CrevasseClassV2.PARALLEL_SHEAR: CrevasseClassV1.ONE_DIRECTIONAL,
    CrevasseClassV2.SUBORDINATE_SHEAR: CrevasseClassV1.SHEAR,
    CrevasseClassV2.MULTIDIRECTIONAL: CrevasseClassV1.MULTIDIRECTIONAL,
    CrevasseClassV2.MULTIGENERATIONAL: CrevasseClassV1.MULTIDIRECTIONAL,
    CrevasseClassV2.CHAOS: CrevasseClassV1.CHAOS,
    CrevasseClassV2.MELT: CrevasseClassV1.OTHER,
    CrevasseClassV2.SEA_ICE: CrevasseClassV1.OTHER,
}
"""Each v2 class's v1 class: one-directional crevasse fields (parallel, with or without shear) become
"One Directional", the two shear types "Shear", crossing crevasse sets "Multidirectional", and the smooth or
water-based surfaces other than snow "Other" (our reading of the paper's Sec. 2.3 and 5.1)."""

V1_TO_V2: Final[dict[CrevasseClassV1, tuple[CrevasseClassV2, ...]]] = {
    v1: tuple(v2 for v2, target in V2_TO_V1.items() if target is v1) for v1 in CrevasseClassV1
}
"""The v2 classes that each v1 class splits into (the preimage of :data:`V2_TO_V1`)."""


def v2_to_v1(label: int | CrevasseClassV2) -> CrevasseClassV1:
    """Coarsen a v2 label to the v1 scheme (:data:`V2_TO_V1`).

    Args:
        label: A v2 class or its id (0 ... 10).

    Returns:
        The v1 class.

    Raises:
        InputError: If ``label`` is not a v2 id.
    """
    return V2_TO_V1[CrevasseClassV2.parse(int(label))]
