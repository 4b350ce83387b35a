"""How visible the window borders of a sliding-window map are: the seam score.

A map assembled from windows can show *seams*: lines where the value jumps because the window that decides a
pixel changes there (a window starts, stops, or hands over to its neighbour), not because the scene changes.
The seam score compares the jump between neighbouring pixels across those lines with the jump everywhere
else. For each pair of 4-neighbours ``(a, b)`` with both pixels valid, the jump is

* ``|v_a - v_b|`` for a real-valued map (e.g. a probability or a confidence),
* ``(1/2) sum_k |p_{k,a} - p_{k,b}|`` for a ``(K, H, W)`` stack of class probabilities (the total variation
  distance, in ``[0, 1]``),
* ``1`` if the classes differ else ``0`` for an integer class map (the fraction of class changes).

A pair is a *border pair* when it straddles a border line: the horizontal pair ``(y, x - 1)``, ``(y, x)`` when
``x`` is one of ``col_borders``, the vertical pair ``(y - 1, x)``, ``(y, x)`` when ``y`` is one of
``row_borders``. The score is

    ratio = mean jump over border pairs / mean jump over all other pairs

1 when the borders cannot be told apart from the rest of the map, above 1 when the map jumps at them. Real
edges (glacier outlines) cross border lines too, so the ratio of a seam-free map is close to, not exactly, 1;
``excess`` (the difference of the two means) gives the size of the jump in the map's own units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from glaciermap.errors import InputError

__all__ = ["SeamScore", "seam_score"]


@dataclass(frozen=True)
class SeamScore:
    """Jumps between neighbouring pixels across window borders and elsewhere.

    Attributes:
        border: Mean jump over the border pairs.
        interior: Mean jump over every other valid pair.
        ratio: ``border / interior`` (1.0 when both are 0; ``inf`` when only ``interior`` is 0).
        excess: ``border - interior``.
        border_pairs: Valid border pairs counted.
        interior_pairs: Valid other pairs counted.
    """

    border: float
    interior: float
    ratio: float
    excess: float
    border_pairs: int
    interior_pairs: int


def _jumps(values: npt.NDArray[np.generic], axis: int) -> npt.NDArray[np.float64]:
    """Jump between each pixel and its neighbour before it along ``axis`` (-1: columns, -2: rows)."""
    a = np.moveaxis(values, axis, -1)
    lo, hi = a[..., :-1], a[..., 1:]
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        jump = (lo != hi).astype(np.float64)
    else:
        jump = np.abs(hi.astype(np.float64) - lo.astype(np.float64))
    if values.ndim == 3:
        jump = 0.5 * jump.sum(axis=0)
    return np.moveaxis(jump, -1, axis)


def _border_mask(n_pairs: int, borders: Sequence[int], length: int) -> npt.NDArray[np.bool_]:
    """Which of the ``length - 1`` pairs along an axis straddle a border (pair ``x - 1`` is ``(x - 1, x)``)."""
    mask = np.zeros(n_pairs, dtype=bool)
    for x in borders:
        if not 1 <= int(x) < length:
            raise InputError(f"border at {x}; expected a position between pixels, in [1, {length - 1}]")
        mask[int(x) - 1] = True
    return mask


def seam_score(
    values: npt.ArrayLike,
    row_borders: Sequence[int],
    col_borders: Sequence[int],
    valid: npt.ArrayLike | None = None,
) -> SeamScore:
    """The seam score of a map (see the module docstring for the definition).

    Args:
        values: ``(H, W)`` map (float: absolute difference; integer or bool: class change) or ``(K, H, W)``
            class probabilities (total variation distance).
        row_borders: Rows ``y`` of horizontal border lines (between rows ``y - 1`` and ``y``), in
            ``[1, H)``, e.g. :meth:`glaciermap.inference.windows.AxisGrid.borders` of the grid's rows.
        col_borders: Columns ``x`` of vertical border lines (between columns ``x - 1`` and ``x``), in
            ``[1, W)``.
        valid: ``(H, W)`` True where a pixel counts (default: every pixel); a pair counts when both do.

    Returns:
        The score.

    Raises:
        InputError: If the shapes disagree, a border is outside the map, or no valid pair lies on a border or
            off one.
    """
    v = np.asarray(values)
    if v.ndim not in (2, 3) or min(v.shape[-2:]) < 2:
        raise InputError(f"map of shape {v.shape}; expected (H, W) or (K, H, W) with H, W >= 2")
    h, w = v.shape[-2:]
    ok = np.ones((h, w), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if ok.shape != (h, w):
        raise InputError(f"valid mask of shape {ok.shape}; expected the map's ({h}, {w})")
    sums = np.zeros(2)
    counts = np.zeros(2, dtype=np.int64)
    for axis, borders, length in ((-1, col_borders, w), (-2, row_borders, h)):
        jump = _jumps(v, axis)
        both = np.moveaxis(np.moveaxis(ok, axis, -1)[..., :-1] & np.moveaxis(ok, axis, -1)[..., 1:], -1, axis)
        on = _border_mask(length - 1, borders, length)
        on = on[None, :] if axis == -1 else on[:, None]
        for k, select in enumerate((both & on, both & ~on)):
            sums[k] += float(jump[select].sum())
            counts[k] += int(select.sum())
    if counts.min() == 0:
        which = "on a window border" if counts[0] == 0 else "off the window borders"
        raise InputError(f"no valid pair of neighbouring pixels {which}; the seam score needs both")
    border, interior = sums / counts
    if interior > 0:
        ratio = border / interior
    else:
        ratio = 1.0 if border == 0 else float("inf")
    return SeamScore(
        border=float(border),
        interior=float(interior),
        ratio=float(ratio),
        excess=float(border - interior),
        border_pairs=int(counts[0]),
        interior_pairs=int(counts[1]),
    )
