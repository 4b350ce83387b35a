"""The directional vario function of GEOCLASS-image (VarioMLP / VarioNet features), batched in torch.

Definition (first-order vario function, GEOCLASS reference notes section 2.2; Herzfeld and Zahner 2001 as
cited in the GEOCLASS-image v2.0 paper, Sec. 4.1): for a tile ``z`` of ``R x C`` pixels and an integer
displacement ``d = (dr, dc)``::

    v(d) = 1 / N(d) * sum over all pairs (p, p + d) inside the tile of (z(p + d) - z(p))**2

with ``N(d) = (R - |dr|) (C - |dc|)`` the number of pairs (no factor 1/2, as in the reference code).

Four directional series (reference notes section 2.2): 0 N-S ``(1 + a i, 0)``, 1 E-W ``(0, 1 + b i)``,
2 diagonal ``(1 + a i, 1 + b i)`` (pairs ``z(r + dr, c + dc)`` vs ``z(r, c)``) and 3 anti-diagonal (pairs
``z(r, c + dc)`` vs ``z(r + dr, c)``), with the 3-4-5 steps ``a = 3, b = 4`` for a landscape tile whose
sides are in the ratio 3:4 (201 x 268, whose diagonal is 335 = 5 x 67) and ``a = 4, b = 3`` for a portrait
tile (paper Sec. 3.1: "every lag step would relate to a pixel"). Lag counts (lag threshold ``t``, default
0.8): ``n_NS = floor(t R / a)``, ``n_EW = floor(t C / b)``, ``n_diag = floor(t floor(sqrt(R^2 + C^2)) / 5)``;
the output width is their maximum and shorter series are zero-padded on the right (reference notes
section 2.2). For 201 x 268 and t = 0.8 that is 53 lags per direction.

Any other tile size uses the reference's generic fallback (reference notes section 2.3): ``m`` = the shorter
side, ``n`` lags ``1, 1 + s, ...`` with ``s = floor(t m / n)`` (at least 1), N-S over all rows of the first
``m`` columns, E-W and both diagonals over the top-left ``m x m`` square, diagonals at 45 degrees with
``round(h / sqrt(2))`` pixels per axis. Unlike the reference, square tiles work (the reference crashes).
The reference only recognises exactly 201 x 268 / 268 x 201 for the 3-4-5 scheme; we use it for every
3:4 tile (``3k x 4k``), which has the same geometry.

Three arithmetic modes:

* ``"float"`` (default): exact to the definition. The fast path for 3-4-5 tiles without nodata writes
  ``N v(d) = A(d) + B(d) - 2 S(d)`` with ``A``, ``B`` sums of squares over the two pair rectangles (from
  prefix sums) and ``S`` the lag products, computed as matrix products of the tile's pixels regrouped
  along lines of the lag direction (one batched GEMM per direction, ``K^2 L`` multiply-adds for ``K``
  lag positions and ``L`` lines: 3.6 M for N-S and E-W, 7.2 M for a diagonal of a 201 x 268 tile, against
  about 1.7 M and 1.1 M for the pair sums done lag by lag, but at matrix-product speed). Tiles are
  mean-centred first; in float32 the relative error is about ``1e-7 * variance / v(d)`` (use ``dtype=torch.float64`` where smooth
  tiles need more). uint8 tiles on a CPU take an exact integer variant: ``z - 128`` as int8, the products
  as int8 matrix products with int32 accumulation (``torch._int_mm``, about twice the float32 rate), the
  sums of squares in int32/int64, and only the final division in float64; its one rounding is the cast to
  ``dtype`` (:data:`INTEGER_PRODUCTS` switches it off).
* ``"legacy_uint8"``: the reference's uint8 arithmetic (reference notes section 2.6): differences and
  squares wrap modulo 256, so each term is ``(dz**2) mod 256``; input must be uint8.
* a validity mask (``valid``) selects the masked variant of reference notes section 2.4: ``N(d)`` counts only
  pairs with both pixels valid (``NaN`` where no pair is valid).

Feature vector and augmentation (reference notes section 3): :func:`vario_features` concatenates
``[N-S, E-W, diagonal]`` (length ``3 n``); :class:`RandomRotateVario` draws one of ``[NS, EW, D1]``,
``[EW, NS, D1]``, ``[NS, EW, D2]``, ``[EW, NS, D2]`` with probability 1/4 each; :class:`ScaleVario` multiplies
by 0.1 as VarioNet does (reference notes section 3.2). Intensity preparation (reference notes section 2.1):
:func:`uint8_scale_max` and :func:`scale_to_uint8`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from glaciermap.errors import ConfigError, InputError

VarioMode = Literal["float", "legacy_uint8"]
"""Arithmetic of the vario function: exact float, or the reference's uint8 wrap-around (section 2.6)."""

VarioMethod = Literal["345", "generic"]
"""Lag scheme: the 3-4-5 steps (3:4 tiles) or the generic fallback (any other size)."""

DEFAULT_LAG_THRESHOLD = 0.8
"""Default lag threshold ``t`` (reference notes section 2.2)."""

DIRECTIONS: tuple[str, ...] = ("ns", "ew", "diagonal", "antidiagonal")
"""Row names of the vario output, in order."""


@dataclass(frozen=True)
class VarioLags:
    """The lag scheme of one tile size.

    Attributes:
        method: ``"345"`` or ``"generic"``.
        height: Tile rows ``R``.
        width: Tile columns ``C``.
        displacements: ``(4, n, 2)`` int64 ``(dr, dc)`` per direction and lag, in pixels; for the
            anti-diagonal the pairs are ``z(r, c + dc)`` vs ``z(r + dr, c)``. Padded lags repeat the last
            valid one (their values are set to 0).
        counts: Number of valid lags per direction (the rest of the row is zero-padded).
        region: ``(rows, cols)`` of the top-left sub-region each direction is computed on (the whole tile
            for 3-4-5; the generic fallback's ``R x m`` / ``m x m``).
    """

    method: VarioMethod
    height: int
    width: int
    displacements: npt.NDArray[np.int64]
    counts: tuple[int, int, int, int]
    region: tuple[tuple[int, int], ...]

    @property
    def n_lags(self) -> int:
        """Width of the output (lags per direction after padding)."""
        return int(self.displacements.shape[1])

    @property
    def feature_length(self) -> int:
        """Length of the default feature vector ``[NS, EW, diagonal]`` (``3 n``)."""
        return 3 * self.n_lags


def _is_345(height: int, width: int) -> bool:
    return height != width and 4 * min(height, width) == 3 * max(height, width)


@functools.lru_cache(maxsize=64)
def vario_lags(
    height: int, width: int, lag_threshold: float = DEFAULT_LAG_THRESHOLD, n_lags: int | None = None
) -> VarioLags:
    """The lags of the directional vario function for one tile size (reference notes sections 2.2, 2.3).

    Args:
        height: Tile rows ``R``.
        width: Tile columns ``C``.
        lag_threshold: Fraction ``t`` of the tile extent the lags span (0 < t <= 1).
        n_lags: Lags per direction. For 3:4 tiles it must be ``None`` or equal the computed width (the
            reference's ``vario_num_lag`` check, which v2.0 omits); for other sizes ``None`` means
            ``floor(t m / 3)`` with ``m`` the shorter side (53 for ``m = 201``).

    Returns:
        The lag scheme.

    Raises:
        ConfigError: For a non-positive size, a threshold outside (0, 1], an ``n_lags`` that does not match
            the 3-4-5 width, or lags that do not fit in the tile.
    """
    if height < 2 or width < 2:
        raise ConfigError(f"tile size {height} x {width}: expected at least 2 x 2 pixels")
    if not 0.0 < lag_threshold <= 1.0:
        raise ConfigError(f"lag_threshold {lag_threshold}: expected a value in (0, 1]")
    if _is_345(height, width):
        step_r, step_c = (3, 4) if height < width else (4, 3)
        n_ns = math.floor(lag_threshold * height / step_r)
        n_ew = math.floor(lag_threshold * width / step_c)
        n_diag = math.floor(lag_threshold * math.floor(math.hypot(height, width)) / 5)
        n = max(n_ns, n_ew, n_diag)
        if n_lags is not None and n_lags != n:
            raise ConfigError(
                f"n_lags {n_lags}: a {height} x {width} tile with lag threshold {lag_threshold} has {n} lags "
                f"per direction (the VarioMLP input length is 3 x {n} = {3 * n})"
            )
        if n < 1:
            raise ConfigError(f"tile size {height} x {width}: too small for lag threshold {lag_threshold}")
        i = np.arange(n)
        counts = (
            n_ns,
            n_ew,
            min(n_ns, n_ew, n_diag) if n_diag else 0,
            min(n_ns, n_ew, n_diag) if n_diag else 0,
        )
        dr = 1 + step_r * np.minimum(i, max(n_ns, 1) - 1)
        dc = 1 + step_c * np.minimum(i, max(n_ew, 1) - 1)
        dd = np.minimum(i, max(counts[2], 1) - 1)
        disp = np.zeros((4, n, 2), dtype=np.int64)
        disp[0, :, 0] = dr
        disp[1, :, 1] = dc
        disp[2, :, 0] = disp[3, :, 0] = 1 + step_r * dd
        disp[2, :, 1] = disp[3, :, 1] = 1 + step_c * dd
        whole = (height, width)
        return VarioLags("345", height, width, disp, counts, (whole, whole, whole, whole))
    m = min(height, width)
    n = max(1, math.floor(lag_threshold * m / 3)) if n_lags is None else n_lags
    if n < 1:
        raise ConfigError(f"n_lags {n_lags}: expected a positive number of lags")
    step = max(1, math.floor(lag_threshold * m / n))
    h = 1 + step * np.arange(n)
    diag = np.rint(h / math.sqrt(2.0)).astype(np.int64)
    if h[-1] >= m or diag[-1] < 1:
        raise ConfigError(
            f"n_lags {n}: the largest lag {int(h[-1])} px does not fit a {height} x {width} tile "
            f"(expected lags below the shorter side {m})"
        )
    disp = np.zeros((4, n, 2), dtype=np.int64)
    disp[0, :, 0] = h
    disp[1, :, 1] = h
    disp[2, :, 0] = disp[2, :, 1] = diag
    disp[3, :, 0] = disp[3, :, 1] = diag
    return VarioLags("generic", height, width, disp, (n, n, n, n), ((height, m), (m, m), (m, m), (m, m)))


def _pair_slices(dr: int, dc: int, anti: bool) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices ``(first, second)`` of a tile such that pairs are ``(tile[first], tile[second])``."""
    first_r, second_r = slice(0, -dr if dr else None), slice(dr, None)
    if anti:
        return (first_r, slice(dc, None)), (second_r, slice(0, -dc if dc else None))
    return (first_r, slice(0, -dc if dc else None)), (second_r, slice(dc, None))


def _vario_direct(
    z: Tensor,
    lags: VarioLags,
    mode: VarioMode,
    valid: Tensor | None,
    directions: Sequence[int],
    dtype: torch.dtype,
) -> Tensor:
    """Lag by lag over the batch (legacy, masked and generic paths). ``z``: (B, R, C)."""
    out = torch.zeros(z.shape[0], len(directions), lags.n_lags, dtype=dtype, device=z.device)
    zi = z.to(torch.int32) if mode == "legacy_uint8" else z.to(dtype)
    for row, k in enumerate(directions):
        rows, cols = lags.region[k]
        zk = zi[:, :rows, :cols]
        vk = None if valid is None else valid[:, :rows, :cols]
        for i in range(lags.counts[k]):
            dr, dc = (int(x) for x in lags.displacements[k, i])
            (r1, c1), (r2, c2) = _pair_slices(dr, dc, anti=k == 3)
            diff = zk[:, r2, c2] - zk[:, r1, c1]
            if mode == "legacy_uint8":
                term = (diff * diff) & 255  # (dz mod 256)**2 mod 256 == dz**2 mod 256
                if vk is None:
                    out[:, row, i] = term.sum(dim=(1, 2), dtype=torch.int64).to(dtype) / float(
                        term[0].numel()
                    )
                    continue
                sq = term.to(dtype)
            else:
                sq = diff * diff
            if vk is None:
                out[:, row, i] = sq.mean(dim=(1, 2))
            else:
                both = vk[:, r2, c2] & vk[:, r1, c1]
                n_pairs = both.sum(dim=(1, 2)).to(dtype)
                total = torch.where(both, sq, torch.zeros((), dtype=sq.dtype, device=sq.device)).sum(
                    dim=(1, 2)
                )
                out[:, row, i] = torch.where(n_pairs > 0, total / n_pairs.clamp_min(1), torch.nan)
    return out


SUPERDIAGONAL_GROUPS = 3
"""Row groups of the lag-product matrix: only its band above the diagonal is needed, so group ``g`` of the
positions is multiplied with the positions from its own first one on (about 2/3 of the full product)."""


def _superdiagonal_sums(x: Tensor, y: Tensor, count: int) -> Tensor:
    """``S(i) = sum_l sum_k y[k + i, l] x[k, l]`` for ``x, y`` of shape ``(B, K, L)`` (K positions, L lines).

    The batched matrix product ``prod = x y^T`` (``prod[k, k'] = sum over lines of x[k] y[k']``) is needed
    only on its first ``count`` superdiagonals: the positions are cut into :data:`SUPERDIAGONAL_GROUPS` row
    groups, and group ``[a, e)`` (``n`` rows) is multiplied with positions ``[a, a + m)``,
    ``m = min(K, e - 1 + count) - a``, only. Each block is copied into a buffer with ``count`` zero columns on
    the right (row pitch ``p = m + count``); read with row pitch ``p + 1``, row ``j`` of that buffer starts at
    the block's entry ``(j, j)``, so its first ``count`` values are the superdiagonal entries ``(j, j + i)``
    (zero where ``j + i >= m``), and the sums are plain column sums of a non-overlapping strided view.
    """
    b, k, _ = x.shape
    total: Tensor | None = None
    size = -(-k // SUPERDIAGONAL_GROUPS)
    for a in range(0, k, size):
        e = min(k, a + size)
        rows, cols = e - a, min(k, e - 1 + count) - a
        pitch = cols + count
        padded = x.new_empty(b, rows, pitch)
        padded[:, :, cols:].zero_()
        torch.bmm(x[:, a:e], y[:, a : a + cols].transpose(1, 2), out=padded[:, :, :cols])
        view = padded.as_strided((b, rows, count), (rows * pitch, pitch + 1, 1))
        part = view.sum(dim=1)
        total = part if total is None else total.add_(part)
    assert total is not None
    return total


@functools.lru_cache(maxsize=32)
def _column_masks(width: int, dc: tuple[int, ...], dtype: torch.dtype, device: str) -> tuple[Tensor, Tensor]:
    """``(left, right)`` 0/1 masks ``(count, width)``: columns ``c < width - dc_i`` and ``c >= dc_i``."""
    cols = torch.arange(width, device=device)[None, :]
    lag = torch.tensor(dc, device=device)[:, None]
    return (cols < width - lag).to(dtype), (cols >= lag).to(dtype)


def _pair_row_sums(sq: Tensor, step_r: int, count: int) -> tuple[Tensor, Tensor, Tensor]:
    """Column sums of the squared (centred) tile ``sq`` over the pair rows of the diagonal lags and all rows.

    Returns ``(top, bottom, all)``: ``(B, count, C)`` sums over the top and the bottom ``R - dr_i`` rows,
    and ``(B, C)`` over all rows.

    For the diagonal lags ``dr_i = 1 + step_r i`` of a tile of ``R = step_r K`` rows: the top rows
    ``[0, R - dr_i)`` are the first ``K - i`` row blocks less row ``R - 1 - step_r i``; the bottom rows
    ``[dr_i, R)`` are all rows less the first ``i`` blocks and row ``step_r i`` (prefix sums over blocks of
    ``step_r`` rows, so the running sum is ``step_r`` times shorter than over rows). ``top`` is returned in
    reversed lag order (its row ``j`` is lag ``count - 1 - j``), which keeps every operand a strided view.
    """
    b, h, w = sq.shape
    k = h // step_r
    block = sq[:, 0::step_r].clone()
    for j in range(1, step_r):
        block.add_(sq[:, j::step_r])
    blocks = sq.new_empty(b, k + 1, w)
    blocks[:, 0].zero_()
    torch.cumsum(block, dim=1, dtype=block.dtype, out=blocks[:, 1:])  # rows [0, step_r j)
    first = k - count + 1  # top rows of lag count - 1 ... 0: blocks first ... k, less rows step_r j - 1
    top = blocks[:, first:] - sq[:, step_r * first - 1 :: step_r]
    bottom = blocks[:, k:] - blocks[:, :count] - sq[:, 0 : step_r * count : step_r]
    return top, bottom, blocks[:, k]


def _diagonal_series(
    top: Tensor, bottom: Tensor, s: Tensor, disp: npt.NDArray[np.int64], height: int, anti: bool
) -> Tensor:
    """``v(d) = (A(d) + B(d) - 2 S(d)) / N(d)`` for diagonal displacements ``(count, 2)`` (``dr, dc >= 1``).

    ``A`` and ``B`` are the sums of squares of the (centred) tile over the two pair rectangles, which touch
    the tile's corners: masked sums over columns of the column sums ``top`` and ``bottom``
    (:func:`_pair_row_sums`) of a tile of ``height`` rows. For the anti-diagonal the pairs are
    ``z(r, c + dc)`` vs ``z(r + dr, c)``.
    """
    w = top.shape[2]
    dc = tuple(int(c) for c in disp[:, 1])
    left, right = _column_masks(w, dc, top.dtype, str(top.device))
    left_r, right_r = _column_masks(w, dc[::-1], top.dtype, str(top.device))  # for top (reversed order)
    if anti:  # rows [0, h - dr) x cols [dc, w), and rows [dr, h) x cols [0, w - dc)
        a, bb = (top * right_r).sum(-1).flip(-1), (bottom * left).sum(-1)
    else:  # rows [0, h - dr) x cols [0, w - dc), and rows [dr, h) x cols [dc, w)
        a, bb = (top * left_r).sum(-1).flip(-1), (bottom * right).sum(-1)
    n_pairs = torch.from_numpy((height - disp[:, 0]) * (w - disp[:, 1])).to(top.device)
    return _divide(a + bb - 2 * s, n_pairs)


def _divide(total: Tensor, n_pairs: Tensor) -> Tensor:
    """``max(total / n_pairs, 0)``; integer sums (exact) are divided in float64."""
    num = total if total.is_floating_point() else total.to(torch.float64)
    return (num / n_pairs.to(num.dtype)).clamp_min(0.0)


def _axis_series(line_sq: Tensor, s: Tensor, lag: npt.NDArray[np.int64], other: int) -> Tensor:
    """``v(d)`` along one axis from the sums of squares per line ``(B, n)`` and the lag products ``S``.

    The pairs of lag ``d`` span the first and the last ``n - d`` lines; each line has ``other`` pixels.
    """
    b, n = line_sq.shape
    cum = line_sq.new_zeros(b, n + 1)
    torch.cumsum(line_sq, dim=1, out=cum[:, 1:])
    lag_t = torch.from_numpy(lag).to(line_sq.device)
    first, last = cum[:, n - lag_t], cum[:, n].unsqueeze(1) - cum[:, lag_t]
    return _divide(first + last - 2 * s, (n - lag_t) * other)


def _block_views(
    t: Tensor, k: int, rows: int, pitch: int, skew: int, contiguous: bool = False
) -> tuple[Tensor, Tensor]:
    """``(x, y)`` views ``(B, k, rows * pitch)`` of a buffer with row pitch ``pitch``.

    Position ``p`` is the block of ``rows`` rows starting at row ``rows * p`` (shifted ``skew`` elements
    further per position); ``y`` starts one row lower (and one column right when ``skew``). With
    ``contiguous`` the lines are ``rows * pitch + skew`` long, so each tile's ``(k, line)`` matrix is
    contiguous (the extra ``skew`` elements must fall on zero padding).
    """
    line = rows * pitch + (skew if contiguous else 0)
    size, stride = (t.shape[0], k, line), (t.stride(0), rows * pitch + skew, 1)
    first = t.as_strided(size, stride, t.storage_offset())
    return first, t.as_strided(size, stride, t.storage_offset() + pitch + (1 if skew else 0))


class _GemmWorkspace:
    """Buffers of the fast path, allocated once per call and reused chunk after chunk.

    Only their zero borders (the extra line of the N-S and E-W buffers, the left padding and the two bottom
    rows of the skewed diagonal buffers) are written here, once; each chunk overwrites the tile area.
    """

    def __init__(
        self,
        batch: int,
        lags: VarioLags,
        directions: Sequence[int],
        dtype: torch.dtype,
        device: torch.device,
        out_dtype: torch.dtype | None = None,
    ) -> None:
        h, w = lags.height, lags.width
        self.out_dtype = dtype if out_dtype is None else out_dtype
        self.step_r, self.step_c = (3, 4) if h < w else (4, 3)
        self.k = h // self.step_r
        self.integer = dtype == torch.int8
        # the integer path reads contiguous diagonal lines, ``step_c`` longer: one more step of padding
        self.pad = self.step_c * (self.k if self.integer else self.k - 1)
        self.ns = self._lines(batch, h, w, dtype, device)
        self.sq = torch.empty(batch, h, w, dtype=torch.int32 if self.integer else dtype, device=device)
        # int8 products of one tile (one spare tile: the superdiagonal view of the last one runs past it)
        self.prod = (
            torch.empty(batch + 1, self.k, self.k, dtype=torch.int32, device=device) if self.integer else None
        )
        self.ew = self._lines(batch, w, h, dtype, device) if 1 in directions else None
        self.skew = self._skewed(batch, h, w, dtype, device) if 2 in directions else None
        self.flip = self._skewed(batch, h, w, dtype, device) if 3 in directions else None
        self.diagonal = 2 in directions or 3 in directions

    @staticmethod
    def _lines(batch: int, n: int, m: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """``(batch, n + 1, m)`` with a zero last line."""
        buf = torch.empty(batch, n + 1, m, dtype=dtype, device=device)
        buf[:, n].zero_()
        return buf

    def _skewed(self, batch: int, h: int, w: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """``(batch, h + 3, pad + w)`` with zero left padding and three zero rows below."""
        buf = torch.empty(batch, h + 3, self.pad + w, dtype=dtype, device=device)
        buf[:, :, : self.pad].zero_()
        buf[:, h:].zero_()
        return buf


def _centre_and_squares(z: Tensor, ws: _GemmWorkspace) -> tuple[Tensor, Tensor]:
    """The tiles written into the N-S buffer, centred, and their squares.

    Float: minus the tile mean. Integer path (uint8 tiles): ``z - 128`` as int8 (exact), squares in int32.
    """
    b, h, _ = z.shape
    centre = ws.ns[:b, :h]
    sq = ws.sq[:b]
    if ws.integer:
        torch.bitwise_xor(z, 128, out=centre.view(torch.uint8))  # z - 128 in two's complement
        sq.copy_(centre)
        return centre, sq.mul_(sq)
    centre.copy_(z)
    centre.sub_(centre.mean(dim=(1, 2), keepdim=True))
    return centre, torch.mul(centre, centre, out=sq)


@functools.lru_cache(maxsize=8)
def _band_mask(k: int, count: int, device: str) -> Tensor:
    """``(k, count)`` int32: 1 where ``j + i < k`` (superdiagonal ``i`` has an entry in row ``j``)."""
    j = torch.arange(k, device=device)[:, None]
    i = torch.arange(count, device=device)[None, :]
    return (j + i < k).to(torch.int32)


def _lag_products(x: Tensor, y: Tensor, count: int, ws: _GemmWorkspace) -> Tensor:
    """``S(i)`` (:func:`_superdiagonal_sums`); on the integer path exact int64 from int8 products.

    The integer path multiplies each tile's int8 ``(K, L)`` matrices with ``torch._int_mm`` (int32
    accumulation: ``|S| <= L * 128**2 < 2**31``), which on a CPU runs about twice as fast as the float32
    batched product, then sums the first ``count`` superdiagonals of the ``(K, K)`` product through a
    strided view (row pitch ``K + 1``) masked to the band.
    """
    if not ws.integer:
        return _superdiagonal_sums(x, y, count)
    assert ws.prod is not None
    b, k, _ = x.shape
    prod = ws.prod
    for t in range(b):
        torch._int_mm(x[t], y[t].transpose(0, 1), out=prod[t])
    band = prod.as_strided((b, k, count), (k * k, k + 1, 1), prod.storage_offset())
    return (band * _band_mask(k, count, str(prod.device))).sum(dim=1)


def _vario_gemm(z: Tensor, lags: VarioLags, directions: Sequence[int], ws: _GemmWorkspace) -> Tensor:
    """Fast path for 3-4-5 tiles without nodata (module docstring). ``z``: (B, R, C).

    Float workspaces mean-centre the tiles and use batched float products; an int8 workspace (uint8 tiles on
    a CPU) uses ``z - 128`` and exact integer products and sums (:func:`_lag_products`).

    The lag products ``S(d)`` become superdiagonals of one batched matrix product per direction, with both
    operands strided views of one zero-padded copy of the centred tiles (no gather):

    * N-S: position ``k`` = row block ``step_r k ... step_r k + step_r - 1``, the line index runs over the
      rows of the block and the columns; the partner view starts one row lower, so superdiagonal ``i``
      pairs rows ``r`` and ``r + 1 + step_r i``.
    * diagonal: the same, with every block shifted ``step_c`` columns further right per position (row pitch
      padded by ``step_c (K - 1)`` zero columns on the left), so superdiagonal ``i`` pairs ``(r, c)`` and
      ``(r + 1 + step_r i, c + 1 + step_c i)``;
    * E-W: N-S on the transposed tile; anti-diagonal: the diagonal of the tile flipped upside down.
    """
    b, h, w = z.shape
    k, pad = ws.k, ws.pad
    centre, sq = _centre_and_squares(z, ws)
    count_d = lags.counts[2]
    if ws.diagonal and count_d:
        top, bottom, column_sums = _pair_row_sums(sq, ws.step_r, count_d)
    else:
        top, bottom, column_sums = sq, sq, sq.sum(dim=1)
    out = z.new_empty(b, len(directions), lags.n_lags, dtype=ws.out_dtype)
    for row, direction in enumerate(directions):
        count = lags.counts[direction]
        out[:, row, count:] = 0.0
        if count == 0:
            continue
        disp = lags.displacements[direction, :count]
        if direction == 0:
            x, y = _block_views(ws.ns[:b], k, ws.step_r, w, 0)
            v = _axis_series(sq.sum(dim=2), _lag_products(x, y, count, ws), disp[:, 0].copy(), w)
        elif direction == 1:
            assert ws.ew is not None
            ws.ew[:b, :w].copy_(centre.transpose(1, 2))
            x, y = _block_views(ws.ew[:b], w // ws.step_c, ws.step_c, h, 0)
            v = _axis_series(column_sums, _lag_products(x, y, count, ws), disp[:, 1].copy(), h)
        else:
            buf = ws.skew if direction == 2 else ws.flip
            assert buf is not None
            buf[:b, :h, pad:] = centre if direction == 2 else centre.flip(1)
            x, y = _block_views(buf[:b], k, ws.step_r, pad + w, ws.step_c, contiguous=ws.integer)
            s = _lag_products(x, y, count, ws)
            v = _diagonal_series(top, bottom, s, disp, h, direction == 3)
        out[:, row, :count] = v
    return out


def _integer_path(z: Tensor) -> bool:
    """Whether the exact int8 product path applies: uint8 tiles on a CPU with ``torch._int_mm``."""
    return (
        z.dtype == torch.uint8 and z.device.type == "cpu" and INTEGER_PRODUCTS and hasattr(torch, "_int_mm")
    )


INTEGER_PRODUCTS = True
"""Use int8 matrix products for uint8 tiles on a CPU (exact; set False to force the float path)."""


def _worker_bounds(n: int, chunk_size: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous tile ranges, whole chunks each, for ``workers`` threads (at least one range)."""
    if chunk_size < 1 or workers < 1:
        raise ConfigError(f"chunk_size {chunk_size}, workers {workers}: expected positive integers")
    chunks = -(-n // chunk_size)
    per = -(-chunks // workers) if chunks else 1
    return [(a * chunk_size, min(n, (a + per) * chunk_size)) for a in range(0, max(chunks, 1), per)]


def _vario_range(
    z: Tensor,
    valid: Tensor | None,
    lags: VarioLags,
    mode: VarioMode,
    directions: tuple[int, ...],
    dtype: torch.dtype,
    chunk_size: int,
    start: int,
    stop: int,
) -> list[Tensor]:
    """The vario function of tiles ``start:stop``, chunk by chunk (one workspace for the whole range)."""
    parts = []
    workspace: _GemmWorkspace | None = None
    for a in range(start, stop, chunk_size):
        e = min(stop, a + chunk_size)
        zc = z[a:e]
        if mode == "float" and valid is None and lags.method == "345":
            if workspace is None:
                work = torch.int8 if _integer_path(z) else dtype
                size = min(chunk_size, stop - start)
                workspace = _GemmWorkspace(size, lags, directions, work, z.device, dtype)
            parts.append(_vario_gemm(zc, lags, directions, workspace))
        else:
            parts.append(
                _vario_direct(zc, lags, mode, None if valid is None else valid[a:e], directions, dtype)
            )
    return parts


def directional_vario(
    tiles: Tensor,
    lag_threshold: float = DEFAULT_LAG_THRESHOLD,
    n_lags: int | None = None,
    mode: VarioMode = "float",
    valid: Tensor | None = None,
    directions: Sequence[int] = (0, 1, 2, 3),
    dtype: torch.dtype = torch.float32,
    chunk_size: int = 16,
    workers: int = 1,
) -> Tensor:
    """The directional vario function of a batch of tiles (reference notes section 2; module docstring).

    Args:
        tiles: ``(B, R, C)``, ``(B, 1, R, C)`` or ``(R, C)`` tile values (any real dtype; uint8 for
            ``"legacy_uint8"``), on CPU or GPU.
        lag_threshold: Lag threshold ``t`` (default 0.8).
        n_lags: Lags per direction (see :func:`vario_lags`).
        mode: ``"float"`` (exact) or ``"legacy_uint8"`` (the reference's wrap-around, section 2.6).
        valid: Optional boolean mask of valid pixels, same shape as ``tiles``: the masked variant
            (section 2.4), ``N(d)`` counts only pairs with both pixels valid; ``NaN`` where none is.
        directions: Which rows to compute (0 N-S, 1 E-W, 2 diagonal, 3 anti-diagonal), in output order.
        dtype: Floating dtype of the computation and the result.
        chunk_size: Tiles per batched step (bounds the temporaries).
        workers: Threads that featurise runs of chunks concurrently (torch releases the GIL). On a CPU the
            operations on a chunk are small, so ``torch.set_num_threads(1)`` with one worker per core
            scales better than torch's intra-op threads (``benchmarks/vario_benchmark.py``).

    Returns:
        ``(B, len(directions), n)`` mean squared differences in squared tile units (``(len(directions), n)``
        for a 2-D input); padded lags are 0.

    Raises:
        InputError: For a tensor of the wrong rank, a ``valid`` of another shape, or non-uint8 input in
            legacy mode.
        ConfigError: For an unknown mode, direction or an invalid lag scheme (:func:`vario_lags`).
    """
    if mode not in ("float", "legacy_uint8"):
        raise ConfigError(f"mode {mode!r}: expected 'float' or 'legacy_uint8'")
    if any(k not in (0, 1, 2, 3) for k in directions):
        raise ConfigError(f"directions {tuple(directions)}: expected indices 0-3 ({', '.join(DIRECTIONS)})")
    single = tiles.dim() == 2
    z = tiles.unsqueeze(0) if single else tiles
    if z.dim() == 4 and z.shape[1] == 1:
        z = z[:, 0]
    if z.dim() != 3:
        raise InputError(f"tiles of shape {tuple(tiles.shape)}: expected (B, R, C), (B, 1, R, C) or (R, C)")
    m = None
    if valid is not None:
        m = valid.unsqueeze(0) if valid.dim() == 2 else valid
        if m.dim() == 4 and m.shape[1] == 1:
            m = m[:, 0]
        if m.shape != z.shape:
            raise InputError(
                f"valid of shape {tuple(valid.shape)}: expected the tiles' shape {tuple(tiles.shape)}"
            )
        m = m.to(torch.bool)
    if mode == "legacy_uint8" and z.dtype != torch.uint8:
        raise InputError(f"tiles of dtype {z.dtype}: the legacy_uint8 mode expects uint8 tiles (0-255)")
    lags = vario_lags(int(z.shape[1]), int(z.shape[2]), lag_threshold, n_lags)
    bounds = _worker_bounds(int(z.shape[0]), chunk_size, workers)
    args = (z, m, lags, mode, tuple(directions), dtype, chunk_size)
    if len(bounds) > 1:
        with ThreadPoolExecutor(max_workers=len(bounds)) as pool:
            parts = [p for ps in pool.map(lambda b: _vario_range(*args, *b), bounds) for p in ps]
    else:
        parts = [p for b in bounds for p in _vario_range(*args, *b)]
    out = torch.cat(parts) if parts else torch.zeros(0, len(directions), lags.n_lags, dtype=dtype)
    return out[0] if single else out


def vario_features(vario: Tensor, order: Sequence[int] = (0, 1, 2)) -> Tensor:
    """Flatten directional series into the feature vector (reference notes section 3.1).

    Args:
        vario: ``(..., 4, n)`` output of :func:`directional_vario` (all four rows).
        order: Rows to concatenate; the default ``[N-S, E-W, diagonal]`` is the reference's validation and
            test order ("default rotate").

    Returns:
        ``(..., len(order) * n)``.
    """
    return vario[..., list(order), :].flatten(-2)


ROTATIONS: tuple[tuple[int, int, int], ...] = ((0, 1, 2), (1, 0, 2), (0, 1, 3), (1, 0, 3))
"""The four row orders of the rotation augmentation (reference notes section 3.3)."""


class VarioFeatures(nn.Module):
    """Image tile -> default vario feature vector ``[N-S, E-W, diagonal]`` (reference notes section 3.1).

    Args:
        lag_threshold: Lag threshold ``t``.
        mode: Vario arithmetic (``"float"`` or ``"legacy_uint8"``).
        all_directions: Return the four rows ``(4, n)`` instead of the flat vector (for
            :class:`RandomRotateVario`).
    """

    def __init__(
        self,
        lag_threshold: float = DEFAULT_LAG_THRESHOLD,
        mode: VarioMode = "float",
        all_directions: bool = False,
    ) -> None:
        super().__init__()
        self.lag_threshold = lag_threshold
        self.mode: VarioMode = mode
        self.all_directions = all_directions

    def forward(self, image: Tensor) -> Tensor:
        """Args: image ``(1, R, C)``, ``(R, C)`` or a batch ``(B, 1, R, C)``. Returns the features (float32)."""
        v = directional_vario(image, self.lag_threshold, mode=self.mode)
        if image.dim() == 3 and image.shape[0] == 1:
            v = v[0]
        return v if self.all_directions else vario_features(v)


class DefaultRotateVario(nn.Module):
    """``(..., 4, n)`` -> ``[N-S, E-W, diagonal]`` flattened (the reference's validation/test order, section 3.1)."""

    def forward(self, vario: Tensor) -> Tensor:
        """Args: vario ``(..., 4, n)``. Returns ``(..., 3 n)``."""
        return vario_features(vario, ROTATIONS[0])


class RandomRotateVario(nn.Module):
    """Rotation augmentation of the vario rows (reference notes section 3.3), redrawn on every call.

    With probability 1/4 each: ``[NS, EW, D1]``, ``[EW, NS, D1]``, ``[NS, EW, D2]``, ``[EW, NS, D2]``
    (mimics 90-degree rotations and mirroring of the tile).

    Args:
        generator: Optional random generator (seeded for reproducible draws).
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, vario: Tensor) -> Tensor:
        """Args: vario ``(4, n)``. Returns ``(3 n,)`` in the drawn order."""
        choice = int(torch.randint(4, (1,), generator=self.generator).item())
        return vario_features(vario, ROTATIONS[choice])


class ScaleVario(nn.Module):
    """Multiply vario features by a constant (VarioNet divides by 10, reference notes section 3.2).

    Args:
        factor: The multiplier (default 0.1; 1.0 for standalone VarioMLP, which uses raw values).
    """

    def __init__(self, factor: float = 0.1) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, vario: Tensor) -> Tensor:
        """Args: vario of any shape. Returns ``vario * factor``."""
        return vario * self.factor


def uint8_scale_max(sample: npt.ArrayLike, nodata: float | None = None, mask_nodata: bool = True) -> float:
    """The 8-bit scaling constant ``M = mean + 4 std`` of a subsample, or its maximum if smaller (section 2.1).

    Args:
        sample: Pixel values (the reference uses every 10th row and column of the whole raster; see
            :func:`glaciermap.datasets.split_index.scale_max_of_raster` for a streamed version).
        nodata: The raster's nodata value (NaN is always treated as nodata when masking).
        mask_nodata: Exclude nodata from the statistics (default). ``False`` keeps the reference's
            behaviour, where nodata pixels (zeros) enter mean and std (reference notes section 14.16).

    Returns:
        ``M`` in the units of ``sample``.

    Raises:
        InputError: If no valid pixel is left.
    """
    values = np.asarray(sample, dtype=np.float64).ravel()
    if mask_nodata:
        keep = np.isfinite(values)
        if nodata is not None and not np.isnan(nodata):
            keep &= values != nodata
        values = values[keep]
    if values.size == 0:
        raise InputError("intensity statistics: no valid pixel in the subsample (expected some data)")
    m = float(values.mean() + 4.0 * values.std())
    return min(m, float(values.max()))


def scale_to_uint8(values: Tensor | npt.NDArray[np.generic], scale_max: float) -> Tensor:
    """The reference's 8-bit intensities ``ceil(min(255, 255 DN / M))`` (reference notes section 2.1).

    Args:
        values: Raw values (DN or reflectance), any shape.
        scale_max: ``M`` from :func:`uint8_scale_max`.

    Returns:
        uint8 tensor of the same shape (negative values and NaN become 0).

    Raises:
        InputError: If ``scale_max`` is not positive.
    """
    if not scale_max > 0:
        raise InputError(f"intensity scale {scale_max}: expected a positive mean + 4 std")
    t = torch.as_tensor(values).to(torch.float64)
    q = torch.ceil(torch.clamp(255.0 * t / scale_max, max=255.0))
    return torch.nan_to_num(q, nan=0.0).clamp_min(0.0).to(torch.uint8)


def iter_chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of ``size`` covering ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
