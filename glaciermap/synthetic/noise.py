"""Seeded noise and interpolation that can be evaluated at any pixel of a scene, one window at a time.

Everything here is a pure function of the absolute pixel coordinates (and the seed), never of the window
that asks for it, so a scene written window by window is identical to one computed in a single piece and
window seams are invisible:

* :func:`hash_uniforms`: counter-based white noise (SplitMix64 finaliser of the pixel index; Steele, Lea and
  Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014) for sensor noise and speckle;
* :class:`PeriodicNoise`: fractal (1/f**beta) noise from spectral synthesis on two periodic tiles with
  coprime periods (the sum repeats only after their product), sampled by index, for sub-coarse detail;
* :func:`spectral_field`: spectral synthesis of a large field (terrain, clouds) on the coarse grid;
* :func:`bspline_upsample`: separable uniform cubic B-spline evaluation of a coarse grid at pixel centres,
  with a fixed order of operations so every pixel gets the same bits whatever the window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_ROWMUL = np.uint64(0xD1B54A32D192ED03)


def _splitmix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64 finaliser (Steele et al. 2014), applied element-wise (wrapping uint64 arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def stream_key(seed: int, stream: int) -> int:
    """A 64-bit key for one named random stream of one seed.

    Args:
        seed: Scene seed.
        stream: Stream number (one per use, so the streams are independent).

    Returns:
        The key, an int in [0, 2**64).
    """
    x = np.array([(seed & 0xFFFFFFFF) * 1_000_003 + stream], dtype=np.uint64)
    return int(_splitmix(_splitmix(x))[0])


def hash_uniforms(rows: I64, cols: I64, key: int, count: int) -> list[F32]:
    """Counter-based uniform noise in (0, 1) for every pixel, ``count`` (1..4) values per pixel.

    One 64-bit hash per pixel is split into four 16-bit uniforms.

    Args:
        rows: Absolute pixel rows, shape (h, 1) (may be negative for halos).
        cols: Absolute pixel columns, shape (1, w).
        key: Stream key from :func:`stream_key`.
        count: Number of independent uniforms wanted (at most 4).

    Returns:
        ``count`` float32 arrays of shape (h, w), values in (0, 1).
    """
    with np.errstate(over="ignore"):
        x = rows.astype(np.uint64) * _ROWMUL ^ cols.astype(np.uint64) * _GOLDEN ^ np.uint64(key)
        h = _splitmix(x)
    out: list[F32] = []
    for i in range(count):
        bits = (h >> np.uint64(16 * i)) & np.uint64(0xFFFF)
        out.append(
            ((bits.astype(np.float32) + np.float32(0.5)) * np.float32(1.0 / 65536.0)).astype(np.float32)
        )
    return out


def spectral_field(
    shape: tuple[int, int],
    rng: np.random.Generator,
    cell: float,
    beta: float,
    max_wavelength: float,
    min_wavelength: float = 0.0,
) -> F64:
    """Gaussian random field with a power-law spectrum, by spectral synthesis (FFT filtering of white noise).

    The amplitude spectrum is ``k**(-beta/2)`` between the wavenumbers of ``max_wavelength`` and
    ``min_wavelength`` (fractional Brownian surfaces: Voss, "Fractals in nature", in *The Science of Fractal
    Images*, 1988, eq. 1.52). The field is periodic over ``shape``; callers crop a part of a larger grid when
    they need an aperiodic field.

    Args:
        shape: Grid shape (rows, cols).
        rng: Random generator (consumed).
        cell: Grid spacing (m).
        beta: Spectral exponent (2 = rough, 3 = smooth).
        max_wavelength: Longest wavelength kept (m); longer ones are flattened to this level.
        min_wavelength: Shortest wavelength kept (m).

    Returns:
        Field of the given shape, zero mean and unit standard deviation (float64).
    """
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0], d=cell)[:, None]
    fx = np.fft.rfftfreq(shape[1], d=cell)[None, :]
    k = np.hypot(fy, fx)
    k_lo = 1.0 / max_wavelength
    amp = np.maximum(k, k_lo) ** (-beta / 2.0)
    if min_wavelength > 0:
        amp = amp * np.exp(-((k * min_wavelength) ** 2))
    amp[0, 0] = 0.0
    field = np.fft.irfft2(np.fft.rfft2(white) * amp, s=shape)
    std = float(field.std())
    return (field - field.mean()) / (std if std > 0 else 1.0)


class PeriodicNoise:
    """Fractal noise defined at every integer pixel coordinate, from two periodic tiles.

    ``value(r, c) = (A[r mod Pa, c mod Pa] + B[r mod Pb, c mod Pb]) / sqrt(2)`` with coprime periods Pa, Pb,
    so the pattern repeats only every Pa * Pb pixels. Field number ``k`` reads the tiles at an offset (and
    transposed for odd ``k``) so the fields are mutually independent at the tiles' correlation length.

    Args:
        seed: Scene seed.
        beta: Spectral exponent of the tiles.
        max_wavelength: Longest wavelength in the tiles (pixels).
        periods: The two tile periods (pixels).
    """

    def __init__(
        self,
        seed: int,
        beta: float = 2.2,
        max_wavelength: float = 48.0,
        periods: tuple[int, int] = (512, 433),
    ) -> None:
        rng = np.random.default_rng([seed & 0xFFFFFFFF, 7_001])
        self.tiles: list[F32] = [
            spectral_field((p, p), rng, 1.0, beta, max_wavelength, min_wavelength=1.0).astype(np.float32)
            for p in periods
        ]
        self.periods = periods
        self.offsets = rng.integers(0, 2**20, size=(64, 4))

    def sample(self, k: int, rows: I64, cols: I64) -> F32:
        """Noise field ``k`` at the given pixels.

        Args:
            k: Field number (0..63).
            rows: Absolute pixel rows, shape (h, 1).
            cols: Absolute pixel columns, shape (1, w).

        Returns:
            Noise of shape (h, w), about zero mean and unit variance (float32).
        """
        off = self.offsets[k]
        r, c = (cols, rows) if k % 2 else (rows, cols)
        a, b = self.tiles
        pa, pb = self.periods
        va = a[(r + off[0]) % pa, (c + off[1]) % pa]
        vb = b[(r + off[2]) % pb, (c + off[3]) % pb]
        out: F32 = ((va + vb) * np.float32(0.70710678)).astype(np.float32)
        return out


def bspline_weights(coord: F64) -> tuple[I64, list[F32]]:
    """Uniform cubic B-spline weights for fractional grid coordinates.

    Args:
        coord: Coordinates in grid units (cell centres at integers), any shape.

    Returns:
        (i0, [w0, w1, w2, w3]): the taps are at i0 - 1 .. i0 + 2.
    """
    i0 = np.floor(coord).astype(np.int64)
    t = (coord - i0).astype(np.float32)
    t2 = t * t
    t3 = t2 * t
    sixth = np.float32(1.0 / 6.0)
    w0 = (np.float32(1.0) - t) ** 3 * sixth
    w1 = (np.float32(3.0) * t3 - np.float32(6.0) * t2 + np.float32(4.0)) * sixth
    w2 = (np.float32(-3.0) * t3 + np.float32(3.0) * t2 + np.float32(3.0) * t + np.float32(1.0)) * sixth
    w3 = t3 * sixth
    return i0, [w0, w1, w2, w3]


def bspline_upsample(grids: Sequence[F32], row_coord: F64, col_coord: F64) -> list[F32]:
    """Evaluate coarse grids at fine pixel centres with a separable uniform cubic B-spline.

    The B-spline (not interpolating; a C2-smooth approximation of the grid) gives continuous slopes, so
    there are no facets at coarse-cell edges. Rows are combined first, then columns, always in the same
    order, so a pixel's value does not depend on the window it is computed in.

    Args:
        grids: Coarse fields, each of shape (Hc, Wc), float32.
        row_coord: Coarse row coordinate of each fine row, shape (h,); must stay within 1..Hc-3.
        col_coord: Coarse column coordinate of each fine column, shape (w,); within 1..Wc-3.

    Returns:
        One float32 array of shape (h, w) per grid.
    """
    ri, rw = bspline_weights(row_coord)
    ci, cw = bspline_weights(col_coord)
    c_lo = int(ci.min()) - 1
    c_hi = int(ci.max()) + 3
    cols_local = ci - c_lo
    out: list[F32] = []
    for g in grids:
        sub = g[:, c_lo:c_hi]
        rowmix = rw[0][:, None] * sub[ri - 1] + rw[1][:, None] * sub[ri]
        rowmix = rowmix + rw[2][:, None] * sub[ri + 1]
        rowmix = rowmix + rw[3][:, None] * sub[ri + 2]
        val = cw[0][None, :] * rowmix[:, cols_local - 1] + cw[1][None, :] * rowmix[:, cols_local]
        val = val + cw[2][None, :] * rowmix[:, cols_local + 1]
        val = val + cw[3][None, :] * rowmix[:, cols_local + 2]
        out.append(val.astype(np.float32, copy=False))
    return out
