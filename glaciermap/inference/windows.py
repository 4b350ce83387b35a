"""The sliding-window grid over a scene and the blending weights of overlapping windows.

A scene of ``H x W`` pixels is covered by square windows of side ``S`` (the model's input size) that start
every ``stride = round(S * (1 - overlap))`` pixels on a padded grid. The padding is split evenly between the
two sides of each axis (the extra pixel, if any, after), so every window lies inside the padded scene and the
windows cover it completely, scenes smaller than one window included. Two layouts fix the padded size ``D``
of an axis of length ``d``:

* ``"compact"`` (default): the fewest windows, ``n = max(1, ceil((d - S) / stride) + 1)`` and
  ``D = (n - 1) * stride + S``.
* ``"reference"``: the padding of the GlaViTU authors' reference implementation,
  ``D = S * (floor(d / S) + 1)`` (always at least one extra window multiple), lengthened to the next
  ``(n - 1) * stride + S`` when the stride does not divide ``D - S``. The reference demo scene,
  1808 x 2001 px, is padded to 1920 x 2304 px and covered by 9 x 11 = 99 windows at ``S = 384``, 50 % overlap.

Each window's class probabilities are multiplied by a smooth weight ``w`` that is largest at the window
centre and the blended probability of a pixel is ``sum_k w_k p_k / sum_k w_k`` over the windows ``k`` that
cover it (the GlaViTU authors' reference implementation blends this way, at 50 % overlap). Both weights
offered are separable, ``w(i, j) = g(i) g(j)``, so the denominator is the product of a row sum and a column
sum (:meth:`WindowGrid.weight_sums`) and never needs an accumulator of its own:

* ``"gaussian"``: ``g(u) = exp(-u^2 / 2)`` with ``u = linspace(-1, 1, S)``, hence
  ``w = exp(-r^2 / 2)``, ``r^2 = u^2 + v^2`` exactly as the GlaViTU authors' reference implementation (its
  constant factor cancels): 1 at the centre, 0.61 at the edge midpoints, 0.37 at the corners.
* ``"cosine"``: the Hann window ``g(i) = sin^2(pi (i + 0.5) / S)``, sampled at pixel centres so it is
  positive everywhere. At 50 % overlap the shifted windows sum to exactly one (``sin^2 + cos^2 = 1``), so
  interior pixels are a plain partition-of-unity blend.

Both weights are positive at every pixel, so every pixel of the padded grid has a positive denominator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from glaciermap.errors import ConfigError

BlendWindow = Literal["gaussian", "cosine"]
"""Blending weight of a window (see the module docstring)."""

GridLayout = Literal["compact", "reference"]
"""How the padded size of the scene is chosen (see the module docstring)."""


def window_profile(size: int, kind: BlendWindow = "gaussian") -> npt.NDArray[np.float64]:
    """The 1-D weight profile ``g`` of a window; the 2-D weight is ``outer(g, g)``.

    Args:
        size: Window side S (pixels).
        kind: ``"gaussian"`` (``exp(-u^2/2)``, ``u = linspace(-1, 1, S)``; as in the GlaViTU authors' code) or
            ``"cosine"`` (Hann, ``sin^2(pi (i + 0.5) / S)``).

    Returns:
        ``(S,)`` positive float64 weights.

    Raises:
        ConfigError: If ``size`` is not positive or ``kind`` is unknown.
    """
    if size < 1:
        raise ConfigError(f"window size is {size}; expected a positive number of pixels")
    if kind == "gaussian":
        u = np.linspace(-1.0, 1.0, size) if size > 1 else np.zeros(1)
        return np.exp(-(u**2) / 2.0)
    if kind == "cosine":
        i = np.arange(size, dtype=np.float64)
        return np.sin(np.pi * (i + 0.5) / size) ** 2
    raise ConfigError(f"blending window is {kind!r}; expected one of {', '.join(get_args(BlendWindow))}")


def blend_weights(size: int, kind: BlendWindow = "gaussian") -> npt.NDArray[np.float32]:
    """The 2-D blending weight of a window.

    Args:
        size: Window side S (pixels).
        kind: See :func:`window_profile`.

    Returns:
        ``(S, S)`` float32 weights ``w(i, j) = g(i) g(j)``; for ``"gaussian"`` ``w = exp(-r^2 / 2)``
        (as in the GlaViTU authors' reference implementation).
    """
    g = window_profile(size, kind)
    return np.outer(g, g).astype(np.float32)


@dataclass(frozen=True)
class AxisGrid:
    """Windows along one axis.

    Attributes:
        length: Scene length d (pixels).
        padded: Padded length D (pixels).
        pad_before: Padding before the scene (pixels); the scene occupies ``[pad_before, pad_before + d)``.
        count: Number of windows n.
        stride: Step between window starts (pixels).
        size: Window side S (pixels).
    """

    length: int
    padded: int
    pad_before: int
    count: int
    stride: int
    size: int

    @property
    def pad_after(self) -> int:
        """Padding after the scene (pixels)."""
        return self.padded - self.length - self.pad_before

    @property
    def starts(self) -> list[int]:
        """Window starts in padded coordinates: ``0, stride, ..., (n - 1) * stride``."""
        return [k * self.stride for k in range(self.count)]

    def weight_sum(self, kind: BlendWindow) -> npt.NDArray[np.float64]:
        """``sum_k g(x - start_k)`` at every padded position ``x`` (the 1-D blending denominator).

        Args:
            kind: The window's weight profile.

        Returns:
            ``(D,)`` float64, positive everywhere.
        """
        g = window_profile(self.size, kind)
        out = np.zeros(self.padded, dtype=np.float64)
        for start in self.starts:
            out[start : start + self.size] += g
        return out


def axis_grid(length: int, size: int, stride: int, layout: GridLayout = "compact") -> AxisGrid:
    """Windows along one axis of ``length`` pixels (see the module docstring for the layouts).

    Args:
        length: Scene length d (pixels, >= 1).
        size: Window side S (pixels).
        stride: Step between windows (pixels, 1..S).
        layout: ``"compact"`` or ``"reference"``.

    Returns:
        The axis grid.

    Raises:
        ConfigError: If a size is not positive, the stride is not in ``[1, S]`` or the layout is unknown.
    """
    if length < 1 or size < 1:
        raise ConfigError(f"axis of {length} px with windows of {size} px; expected positive sizes")
    if not 1 <= stride <= size:
        raise ConfigError(f"window stride is {stride} px; expected 1..{size} (the window size)")
    if layout == "compact":
        count = max(1, math.ceil((length - size) / stride) + 1)
    elif layout == "reference":
        minimum = size * (length // size + 1)
        count = math.ceil((minimum - size) / stride) + 1
    else:
        raise ConfigError(f"grid layout is {layout!r}; expected one of {', '.join(get_args(GridLayout))}")
    padded = (count - 1) * stride + size
    return AxisGrid(
        length=length,
        padded=padded,
        pad_before=(padded - length) // 2,
        count=count,
        stride=stride,
        size=size,
    )


def overlap_stride(size: int, overlap: float) -> int:
    """The window stride for a fractional overlap: ``max(1, round(S * (1 - overlap)))``.

    Args:
        size: Window side S (pixels).
        overlap: Fraction of a window shared with its neighbour, in ``[0, 1)``.

    Returns:
        The stride (pixels).

    Raises:
        ConfigError: If ``overlap`` is not in ``[0, 1)``.
    """
    if not (isinstance(overlap, int | float) and 0.0 <= overlap < 1.0):
        raise ConfigError(f"overlap is {overlap!r}; expected a fraction in [0, 1) (0.5 = 50 % overlap)")
    return max(1, round(size * (1.0 - overlap)))


@dataclass(frozen=True)
class WindowGrid:
    """The windows of a scene: one :class:`AxisGrid` per axis.

    Attributes:
        rows: Grid along the rows (height).
        cols: Grid along the columns (width).
        kind: Blending weight profile.
    """

    rows: AxisGrid
    cols: AxisGrid
    kind: BlendWindow = "gaussian"

    @property
    def size(self) -> int:
        """Window side S (pixels)."""
        return self.rows.size

    @property
    def stride(self) -> int:
        """Step between windows (pixels)."""
        return self.rows.stride

    @property
    def count(self) -> int:
        """Number of windows."""
        return self.rows.count * self.cols.count

    @property
    def padded_shape(self) -> tuple[int, int]:
        """``(D_rows, D_cols)`` of the padded scene (pixels)."""
        return (self.rows.padded, self.cols.padded)

    def weights(self) -> npt.NDArray[np.float32]:
        """The ``(S, S)`` blending weight of every window (:func:`blend_weights`)."""
        return blend_weights(self.size, self.kind)

    def weight_sums(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The blending denominator as ``(row_sum (D_rows,), col_sum (D_cols,))``.

        The denominator of padded pixel ``(y, x)`` is ``row_sum[y] * col_sum[x]`` because the weights are
        separable: ``sum_k g(y - y_k) g(x - x_k) = (sum_i g(y - y_i)) (sum_j g(x - x_j))`` over the full
        grid of window starts.

        Returns:
            The two 1-D sums, positive everywhere.
        """
        return self.rows.weight_sum(self.kind), self.cols.weight_sum(self.kind)


def window_grid(
    height: int,
    width: int,
    size: int,
    overlap: float = 0.5,
    *,
    kind: BlendWindow = "gaussian",
    layout: GridLayout = "compact",
) -> WindowGrid:
    """The sliding-window grid of a ``height x width`` scene.

    Args:
        height: Scene rows (pixels).
        width: Scene columns (pixels).
        size: Window side S (pixels).
        overlap: Fraction of a window shared with its neighbour, in ``[0, 1)`` (0.5: stride S / 2).
        kind: Blending weight profile (:data:`BlendWindow`).
        layout: Padded-size rule (:data:`GridLayout`).

    Returns:
        The grid.

    Raises:
        ConfigError: If a size, the overlap, the kind or the layout is invalid.

    Example:
        >>> g = window_grid(1808, 2001, 384, 0.5, layout="reference")
        >>> g.padded_shape, g.rows.count * g.cols.count, (g.rows.pad_before, g.cols.pad_before)
        ((1920, 2304), 99, (56, 151))
    """
    window_profile(size, kind)  # validates size and kind
    stride = overlap_stride(size, overlap)
    return WindowGrid(
        rows=axis_grid(height, size, stride, layout),
        cols=axis_grid(width, size, stride, layout),
        kind=kind,
    )
