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
  tiles need more).
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


def _superdiagonal_sums(x: Tensor, y: Tensor, count: int) -> Tensor:
    """``S(i) = sum_l sum_k y[k + i, l] x[k, l]`` for ``x, y`` of shape ``(B, K, L)`` (K positions, L lines).

    One batched matrix product ``prod = x y^T`` (``prod[k, k'] = sum over lines of x[k] y[k']``), then the
    sums of its first ``count`` superdiagonals, read through a strided view of ``prod`` padded by ``count``
    zero columns (element ``(k, i)`` of the view is ``prod[k, k + i]``).
    """
    b, k, _ = x.shape
    padded = x.new_zeros(b, k, k + count)
    padded[:, :, :k] = torch.bmm(x, y.transpose(1, 2))
    view = padded.as_strided((b, k, count), (k * (k + count), k + count + 1, 1))
    return view.sum(dim=1)


def _padded_buffer(b: int, h: int, pitch: int, pad: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(b, h + 2, pitch)`` buffer whose left ``pad`` columns and last two rows are zero.

    The rest is filled by the caller.
    """
    buf = torch.empty(b, h + 2, pitch, dtype=dtype, device=device)
    buf[:, :, :pad].zero_()
    buf[:, h:].zero_()
    return buf


def _diagonal_series(sq: Tensor, s: Tensor, disp: npt.NDArray[np.int64], anti: bool) -> Tensor:
    """``v(d) = (A(d) + B(d) - 2 S(d)) / N(d)`` for diagonal displacements ``(count, 2)`` (``dr, dc >= 1``).

    ``A`` and ``B`` are the sums of squares of the (centred) tile over the two pair rectangles, which touch
    the tile's corners: column prefix sums of ``sq`` ``(B, R, C)`` are taken once, read at the few columns
    the rectangles need, and summed down the rows. For the anti-diagonal the pairs are
    ``z(r, c + dc)`` vs ``z(r + dr, c)``.
    """
    b, h, w = sq.shape
    count = disp.shape[0]
    dr = torch.from_numpy(disp[:, 0]).to(sq.device)
    dc = torch.from_numpy(disp[:, 1]).to(sq.device)
    cols = torch.cat([w - dc, dc, torch.tensor([w], device=sq.device)])  # all >= 1
    prefix = sq.cumsum(2).index_select(2, cols - 1)  # (B, R, 2 count + 1): sums over columns [0, col)
    q = torch.zeros(b, h + 1, prefix.shape[2], dtype=sq.dtype, device=sq.device)
    q[:, 1:] = prefix.cumsum(1)  # q[:, r, j]: sum over rows [0, r) and columns [0, cols[j])
    ja, jd, jw = torch.arange(count), torch.arange(count, 2 * count), torch.full((count,), 2 * count)
    ja, jd, jw = ja.to(sq.device), jd.to(sq.device), jw.to(sq.device)

    def rect(r0: Tensor | int, r1: Tensor | int, j: Tensor) -> Tensor:
        r0t = torch.as_tensor(r0, device=sq.device).expand(count)
        r1t = torch.as_tensor(r1, device=sq.device).expand(count)
        return q[:, r1t, j] - q[:, r0t, j]

    if anti:  # rows [0, h - dr) x cols [dc, w), and rows [dr, h) x cols [0, w - dc)
        a = rect(0, h - dr, jw) - rect(0, h - dr, jd)
        bb = rect(dr, h, ja)
    else:  # rows [0, h - dr) x cols [0, w - dc), and rows [dr, h) x cols [dc, w)
        a = rect(0, h - dr, ja)
        bb = rect(dr, h, jw) - rect(dr, h, jd)
    n_pairs = ((h - dr) * (w - dc)).to(sq.dtype)
    return ((a + bb - 2.0 * s) / n_pairs).clamp_min(0.0)


def _vario_gemm(z: Tensor, lags: VarioLags, directions: Sequence[int], dtype: torch.dtype) -> Tensor:
    """Fast float path for 3-4-5 tiles without nodata (module docstring). ``z``: (B, R, C).

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
    step_r, step_c = (3, 4) if h < w else (4, 3)
    k = h // step_r
    pad = step_c * (k - 1)
    pitch = pad + w
    buf = _padded_buffer(b, h, pitch, pad, dtype, z.device)
    centre = buf[:, :h, pad:]
    centre.copy_(z)
    centre.sub_(centre.mean(dim=(1, 2), keepdim=True))
    sq = centre.square()
    out = torch.zeros(b, len(directions), lags.n_lags, dtype=dtype, device=z.device)

    def views(t: Tensor, step: int, row_pitch: int, skew: int) -> tuple[Tensor, Tensor]:
        size, stride = (b, k, step * row_pitch), (t.stride(0), step * row_pitch + skew, 1)
        first = t.as_strided(size, stride, t.storage_offset())
        return first, t.as_strided(size, stride, t.storage_offset() + row_pitch + (1 if skew else 0))

    def axis_series(line_sq: Tensor, s: Tensor, lag: npt.NDArray[np.int64], other: int) -> Tensor:
        # sums of squares of the first and the last (n - lag) lines along the lag axis
        cum = torch.zeros(b, line_sq.shape[1] + 1, dtype=dtype, device=z.device)
        cum[:, 1:] = line_sq.cumsum(1)
        n = line_sq.shape[1]
        lag_t = torch.from_numpy(lag).to(z.device)
        first, last = cum[:, n - lag_t], cum[:, n].unsqueeze(1) - cum[:, lag_t]
        return ((first + last - 2.0 * s) / ((n - lag_t) * other).to(dtype)).clamp_min(0.0)

    flipped: Tensor | None = None
    for row, direction in enumerate(directions):
        count = lags.counts[direction]
        if count == 0:
            continue
        disp = lags.displacements[direction, :count]
        if direction in (0, 1):
            # unpadded copy (transposed for E-W) so that the lines are contiguous
            src = centre if direction == 0 else centre.transpose(1, 2)
            step = step_r if direction == 0 else step_c
            lines = torch.empty(b, src.shape[1] + 1, src.shape[2], dtype=dtype, device=z.device)
            lines[:, -1].zero_()
            lines[:, :-1].copy_(src)
            x, y = views(lines, step, src.shape[2], 0)
            line_sq = sq.sum(dim=2) if direction == 0 else sq.sum(dim=1)
            lag = disp[:, direction].copy()
            v = axis_series(line_sq, _superdiagonal_sums(x, y, count), lag, src.shape[2])
        else:
            if direction == 3:
                if flipped is None:
                    flipped = _padded_buffer(b, h, pitch, pad, dtype, z.device)
                    flipped[:, :h, pad:] = centre.flip(1)
                x, y = views(flipped, step_r, pitch, step_c)
            else:
                x, y = views(buf, step_r, pitch, step_c)
            v = _diagonal_series(sq, _superdiagonal_sums(x, y, count), disp, direction == 3)
        out[:, row, :count] = v.to(dtype)
    return out


def directional_vario(
    tiles: Tensor,
    lag_threshold: float = DEFAULT_LAG_THRESHOLD,
    n_lags: int | None = None,
    mode: VarioMode = "float",
    valid: Tensor | None = None,
    directions: Sequence[int] = (0, 1, 2, 3),
    dtype: torch.dtype = torch.float32,
    chunk_size: int = 16,
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
    parts = []
    for start in range(0, z.shape[0], chunk_size):
        zc = z[start : start + chunk_size]
        mc = None if m is None else m[start : start + chunk_size]
        if mode == "float" and mc is None and lags.method == "345":
            parts.append(_vario_gemm(zc, lags, directions, dtype))
        else:
            parts.append(_vario_direct(zc, lags, mode, mc, directions, dtype))
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
