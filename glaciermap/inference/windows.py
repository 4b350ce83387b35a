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

Each window's class probabilities are multiplied by a weight ``w`` that is largest at the window centre and
the blended probability of a pixel is ``sum_k w_k p_k / sum_k w_k`` over the windows ``k`` that cover it (the
GlaViTU authors' reference implementation blends this way, with the Gaussian weight at 50 % overlap). Every
weight offered is separable, ``w(i, j) = g(i) g(j)``, so the denominator is the product of a row sum and a
column sum (:meth:`WindowGrid.weight_sums`) and never needs an accumulator of its own:

* ``"gaussian"``: ``g(u) = exp(-u^2 / 2)`` with ``u = linspace(-1, 1, S)``, hence
  ``w = exp(-r^2 / 2)``, ``r^2 = u^2 + v^2`` exactly as the GlaViTU authors' reference implementation (its
  constant factor cancels): 1 at the centre, 0.61 at the edge midpoints, 0.37 at the corners.
* ``"cosine"``: the Hann window ``g(i) = sin^2(pi (i + 0.5) / S)``, sampled at pixel centres so it is
  positive everywhere. At 50 % overlap the shifted windows sum to exactly one (``sin^2 + cos^2 = 1``), so
  interior pixels are a plain partition-of-unity blend.

* ``"crop"``: crop the centre. Each window contributes only its central ``stride`` pixels along each axis,
  ``g(i) = 1`` for ``a <= i < a + stride`` with ``a = floor((S - stride) / 2)``, else 0, so the central parts of
  neighbouring windows abut and every pixel takes the prediction of exactly one window (the one whose centre
  it is nearest), with no blending. The first window of an axis also keeps its part before the centre
  (``i < a``) and the last its part after it (``i >= a + stride``), so the edges of the padded scene are
  covered; a single window keeps all of it. At overlap 0 (``stride = S``) it is plain tiling. This weight is
  the only one that differs between windows (:meth:`AxisGrid.profile`); it is still separable.

Every pixel of the padded grid has a positive denominator: the Gaussian and cosine weights are positive at
every pixel, and the crop weights sum to exactly one everywhere.

Cost: each window is one forward pass of the model, so a scene costs about ``(1 / (1 - overlap))^2`` window
evaluations per pixel: 1 at overlap 0, 1.31 at 1/8, 1.78 at 1/4, 4 at 1/2 (plus the padding of the last
window row and column; :meth:`WindowGrid.evaluations_per_pixel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from glaciermap.errors import ConfigError

BlendWindow = Literal["gaussian", "cosine", "crop"]
"""Blending weight of a window (see the module docstring)."""

GridLayout = Literal["compact", "reference"]
"""How the padded size of the scene is chosen (see the module docstring)."""


WindowEdge = Literal["inner", "first", "last", "only"]
"""Position of a window along an axis, which the ``"crop"`` profile depends on."""


def window_profile(
    size: int, kind: BlendWindow = "gaussian", stride: int | None = None, edge: WindowEdge = "inner"
) -> npt.NDArray[np.float64]:
    """The 1-D weight profile ``g`` of a window; the 2-D weight is ``outer(g, g)``.

    Args:
        size: Window side S (pixels).
        kind: ``"gaussian"`` (``exp(-u^2/2)``, ``u = linspace(-1, 1, S)``; as in the GlaViTU authors' code),
            ``"cosine"`` (Hann, ``sin^2(pi (i + 0.5) / S)``) or ``"crop"`` (1 on the central ``stride``
            pixels ``[a, a + stride)``, ``a = floor((S - stride) / 2)``, else 0).
        stride: Step between windows (pixels, 1..S; default S); only ``"crop"`` depends on it.
        edge: Position of the window along its axis; only ``"crop"`` depends on it: the ``"first"`` window
            also keeps ``[0, a)``, the ``"last"`` also ``[a + stride, S)``, an ``"only"`` window everything.

    Returns:
        ``(S,)`` float64 weights, positive everywhere for ``"gaussian"`` and ``"cosine"``, 0 or 1 for
        ``"crop"``.

    Raises:
        ConfigError: If ``size`` is not positive, the stride is not in ``[1, S]`` or ``kind`` is unknown.
    """
    if size < 1:
        raise ConfigError(f"window size is {size}; expected a positive number of pixels")
    if kind == "crop":
        step = size if stride is None else stride
        if not 1 <= step <= size:
            raise ConfigError(f"window stride is {step} px; expected 1..{size} (the window size)")
        a = (size - step) // 2
        lo = 0 if edge in ("first", "only") else a
        hi = size if edge in ("last", "only") else a + step
        g = np.zeros(size, dtype=np.float64)
        g[lo:hi] = 1.0
        return g
    if kind == "gaussian":
        u = np.linspace(-1.0, 1.0, size) if size > 1 else np.zeros(1)
        return np.exp(-(u**2) / 2.0)
    if kind == "cosine":
        i = np.arange(size, dtype=np.float64)
        return np.sin(np.pi * (i + 0.5) / size) ** 2
    raise ConfigError(f"blending window is {kind!r}; expected one of {', '.join(get_args(BlendWindow))}")


def blend_weights(
    size: int, kind: BlendWindow = "gaussian", stride: int | None = None
) -> npt.NDArray[np.float32]:
    """The 2-D blending weight of a window away from the scene's edges.

    Args:
        size: Window side S (pixels).
        kind: See :func:`window_profile`.
        stride: Step between windows (``"crop"`` only; default S).

    Returns:
        ``(S, S)`` float32 weights ``w(i, j) = g(i) g(j)``; for ``"gaussian"`` ``w = exp(-r^2 / 2)``
        (as in the GlaViTU authors' reference implementation).
    """
    g = window_profile(size, kind, stride)
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

    def edge(self, k: int) -> WindowEdge:
        """Position of window ``k`` along the axis: ``"first"``, ``"last"``, ``"only"`` or ``"inner"``."""
        if self.count == 1:
            return "only"
        return "first" if k == 0 else "last" if k == self.count - 1 else "inner"

    def profile(self, k: int, kind: BlendWindow) -> npt.NDArray[np.float64]:
        """The 1-D weight profile of window ``k`` (:func:`window_profile` at this stride and edge).

        Args:
            k: Window index along the axis.
            kind: The window's weight profile.

        Returns:
            ``(S,)`` float64 weights.
        """
        return window_profile(self.size, kind, self.stride, self.edge(k))

    def weight_sum(self, kind: BlendWindow) -> npt.NDArray[np.float64]:
        """``sum_k g_k(x - start_k)`` at every padded position ``x`` (the 1-D blending denominator).

        Args:
            kind: The window's weight profile.

        Returns:
            ``(D,)`` float64, positive everywhere (exactly 1 for ``"crop"``).
        """
        out = np.zeros(self.padded, dtype=np.float64)
        for k, start in enumerate(self.starts):
            out[start : start + self.size] += self.profile(k, kind)
        return out

    def borders(self, kind: BlendWindow) -> list[int]:
        """Scene positions ``x`` where a window's weight starts or stops between pixels ``x - 1`` and ``x``.

        These are the lines where a seam can appear: the window edges for ``"gaussian"`` and ``"cosine"``,
        the lines where the central parts abut for ``"crop"``. Positions outside ``[1, length)`` (at or
        beyond the scene's edge) are left out.

        Args:
            kind: The window's weight profile.

        Returns:
            Sorted, distinct scene coordinates in ``[1, length)``.
        """
        found: set[int] = set()
        for k, start in enumerate(self.starts):
            g = np.concatenate([[0.0], self.profile(k, kind) > 0, [0.0]])
            for i in np.flatnonzero(np.diff(g) != 0):
                found.add(start + int(i) - self.pad_before)
        return sorted(x for x in found if 1 <= x < self.length)


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
        """The ``(S, S)`` blending weight of a window away from the edges (:func:`blend_weights`)."""
        return blend_weights(self.size, self.kind, self.stride)

    def window_weights(self, i: int, j: int) -> npt.NDArray[np.float32]:
        """The ``(S, S)`` blending weight of the window in row ``i``, column ``j`` of the grid.

        The same for every window except with ``"crop"``, whose windows at the scene's edges also keep
        their outer parts (:func:`window_profile`).

        Args:
            i: Window row.
            j: Window column.

        Returns:
            ``(S, S)`` float32 weights ``outer(g_i, g_j)``.
        """
        return np.outer(self.rows.profile(i, self.kind), self.cols.profile(j, self.kind)).astype(np.float32)

    def evaluations_per_pixel(self) -> float:
        """Window evaluations per scene pixel: ``count * S^2 / (height * width)``.

        About ``(1 / (1 - overlap))^2`` on a large scene (1, 1.31, 1.78 and 4 at overlap 0, 1/8, 1/4 and 1/2),
        more on a small one, whose padding is a larger share.
        """
        return self.count * self.size**2 / (self.rows.length * self.cols.length)

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
    stride = overlap_stride(size, overlap)
    window_profile(size, kind, min(stride, size))  # validates size and kind
    return WindowGrid(
        rows=axis_grid(height, size, stride, layout),
        cols=axis_grid(width, size, stride, layout),
        kind=kind,
    )
