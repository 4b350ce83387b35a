"""Karakoram preprocessing helpers (Karakoram paper Sec. 3.1): LST, pan-sharpening, co-registration check.

* :func:`land_surface_temperature`: LST from a Landsat 8 TIRS band-10 brightness temperature with a surface
  emissivity derived from NDVI. The paper retrieves LST "using a radiative-transfer approach. Red,
  near-infrared, and thermal-infrared bands were used to estimate vegetation cover, surface emissivity, and
  thermal radiance, from which LST was derived using the inverse Planck function (Ermida et al., 2020)". Here:
  NDVI from red and NIR; fractional vegetation cover ``FVC = ((NDVI - NDVI_bare) / (NDVI_veg - NDVI_bare))^2``
  clipped to [0, 1] (Carlson and Ripley 1997, with Ermida et al.'s NDVI_bare = 0.2, NDVI_veg = 0.86);
  emissivity ``eps = FVC * eps_veg + (1 - FVC) * eps_bare``; and either the emissivity-corrected inverse
  Planck ``LST = Tb / (1 + (lambda * Tb / rho) * ln(eps))`` (Artis and Carnahan 1982; lambda = 10.895 um,
  rho = h c / k = 1.4388e-2 m K), or, when the atmospheric coefficients of the statistical mono-window
  algorithm are given (they depend on total column water vapour; Ermida et al. 2020, statistical mono-window:
  ``LST = A * Tb / eps + B / eps + C``), that form.
* :func:`brovey_pansharpen` and :func:`pansharpen_files`: the Brovey transform
  ``MS_i' = MS_i * PAN / I`` with ``I`` the weighted mean of the multispectral bands, after bilinear
  resampling of the multispectral bands to the panchromatic grid (Gillespie et al. 1987). The paper fused 5.8 m
  ZY-3 multispectral with the 2.1 m nadir panchromatic band to 2 m without naming the method; Brovey is the
  simple ratio method, preserves the multispectral band ratios (so NDSI-type indices) exactly, and needs no
  statistics, unlike Gram-Schmidt.
* :func:`coregistration_offset` and :func:`check_coregistration`: the shift between two images of one
  grid by phase cross-correlation (scikit-image ``phase_cross_correlation``, upsampled to 1/10 px), to check
  that "all optical, thermal, and topographic layers were ... spatially co-registered" (Sec. 3.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.io
import rasterio.windows
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from glaciermap.constants import RASTER_NODATA
from glaciermap.errors import ConfigError, InputError
from glaciermap.io import atomic_output, open_raster

NDVI_BARE = 0.2
NDVI_VEG = 0.86
"""NDVI of bare ground and of full vegetation cover for the FVC scaling (Ermida et al. 2020)."""

EMISSIVITY_VEG = 0.99
EMISSIVITY_BARE = 0.97
"""Band-10 emissivity of vegetation and of bare rock/debris (defaults; ice and snow are ~0.99)."""

TIRS_B10_WAVELENGTH_M = 10.895e-6
"""Effective wavelength of Landsat 8 TIRS band 10 (m)."""

RHO_M_K = 1.4388e-2
"""h c / k_B (m K), the second radiation constant."""

FloatArray = npt.NDArray[np.floating]


def ndvi(red: FloatArray, nir: FloatArray) -> npt.NDArray[np.float64]:
    """Normalised difference vegetation index ``(NIR - red) / (NIR + red)``; NaN where the sum is 0.

    Args:
        red: Red reflectance (Landsat 8 OLI band 4).
        nir: Near-infrared reflectance (OLI band 5).

    Returns:
        NDVI in [-1, 1].
    """
    r = np.asarray(red, dtype=np.float64)
    n = np.asarray(nir, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (n - r) / (n + r)
    out[~np.isfinite(out)] = np.nan
    return out


def emissivity_from_ndvi(
    index: FloatArray,
    *,
    eps_veg: float = EMISSIVITY_VEG,
    eps_bare: float = EMISSIVITY_BARE,
    ndvi_bare: float = NDVI_BARE,
    ndvi_veg: float = NDVI_VEG,
) -> npt.NDArray[np.float64]:
    """Surface emissivity from NDVI through the fractional vegetation cover (Karakoram paper Sec. 3.1).

    ``FVC = clip((NDVI - NDVI_bare) / (NDVI_veg - NDVI_bare), 0, 1)^2`` and
    ``eps = FVC * eps_veg + (1 - FVC) * eps_bare`` (Ermida et al. 2020).

    Args:
        index: NDVI.
        eps_veg: Emissivity of full vegetation.
        eps_bare: Emissivity of bare ground (rock, debris).
        ndvi_bare: NDVI of bare ground.
        ndvi_veg: NDVI of full vegetation.

    Returns:
        Emissivity (unitless, in ``[min(eps), max(eps)]``), NaN where NDVI is NaN.
    """
    fvc = np.clip((np.asarray(index, dtype=np.float64) - ndvi_bare) / (ndvi_veg - ndvi_bare), 0.0, 1.0) ** 2
    return fvc * eps_veg + (1.0 - fvc) * eps_bare


def land_surface_temperature(
    red: FloatArray,
    nir: FloatArray,
    brightness_temperature: FloatArray,
    *,
    smw_coefficients: tuple[float, float, float] | None = None,
    eps_veg: float = EMISSIVITY_VEG,
    eps_bare: float = EMISSIVITY_BARE,
) -> npt.NDArray[np.float32]:
    """Land-surface temperature (K) from Landsat 8 red, NIR and band-10 brightness temperature.

    Karakoram paper Sec. 3.1 (after Ermida et al. 2020): emissivity from NDVI (:func:`emissivity_from_ndvi`),
    then either ``LST = Tb / (1 + (lambda Tb / rho) ln eps)`` (Artis and Carnahan 1982; no atmospheric
    correction) or, with ``smw_coefficients = (A, B, C)``, ``LST = A Tb / eps + B / eps + C`` (Ermida et al.
    2020, statistical mono-window form; coefficients for the scene's water vapour).

    Args:
        red: Red reflectance (OLI band 4), any shape.
        nir: NIR reflectance (OLI band 5), same shape.
        brightness_temperature: TIRS band-10 top-of-atmosphere brightness temperature in K, same shape
            (Landsat Level-1 ``K2 / ln(K1 / L + 1)``, see :mod:`glaciermap.prepare.landsat`).
        smw_coefficients: ``(A, B, C)`` of the statistical mono-window algorithm, or ``None``.
        eps_veg: Emissivity of full vegetation.
        eps_bare: Emissivity of bare ground.

    Returns:
        LST in K (float32), NaN where an input is NaN.

    Raises:
        InputError: If the shapes differ or the brightness temperature is not in K (median outside 150-350).
    """
    tb = np.asarray(brightness_temperature, dtype=np.float64)
    if np.shape(red) != tb.shape or np.shape(nir) != tb.shape:
        raise InputError(
            f"red {np.shape(red)}, nir {np.shape(nir)} and brightness temperature {tb.shape} differ; expected "
            "the three bands on one grid"
        )
    finite = tb[np.isfinite(tb)]
    if finite.size and not 150.0 <= float(np.median(finite)) <= 350.0:
        raise InputError(
            f"brightness temperature has median {float(np.median(finite)):g}; expected kelvin (150-350 K)"
        )
    eps = emissivity_from_ndvi(ndvi(red, nir), eps_veg=eps_veg, eps_bare=eps_bare)
    if smw_coefficients is not None:
        a, b, c = smw_coefficients
        lst = a * tb / eps + b / eps + c
    else:
        lst = tb / (1.0 + (TIRS_B10_WAVELENGTH_M * tb / RHO_M_K) * np.log(eps))
    return lst.astype(np.float32)


def brovey_pansharpen(
    ms: FloatArray, pan: FloatArray, weights: Sequence[float] | None = None
) -> npt.NDArray[np.float32]:
    """Brovey pan-sharpening of multispectral bands already resampled to the panchromatic grid.

    ``MS_i' = MS_i * PAN / I`` with ``I = sum_i w_i MS_i / sum_i w_i`` (Gillespie et al. 1987).

    Args:
        ms: ``(C, H, W)`` multispectral reflectance on the pan grid.
        pan: ``(H, W)`` panchromatic reflectance.
        weights: Weight of each band in the intensity (default: equal).

    Returns:
        ``(C, H, W)`` sharpened bands (float32); NaN where the intensity is 0 or an input is NaN.

    Raises:
        InputError: If the shapes do not match or the weights are not one per band.
    """
    m = np.asarray(ms, dtype=np.float64)
    p = np.asarray(pan, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != p.shape:
        raise InputError(f"multispectral {m.shape} and pan {p.shape} differ; expected (C, H, W) and (H, W)")
    intensity = np.tensordot(_weights(m, weights), m, axes=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = m * (p / intensity)[None]
    out[~np.isfinite(out)] = np.nan
    return out.astype(np.float32)


@dataclass(frozen=True)
class GramSchmidtStats:
    """Scene statistics of Gram-Schmidt pan-sharpening (so that strips of one scene share them).

    Attributes:
        weights: Normalised intensity weights, one per band.
        intensity_mean: Mean of the simulated pan ``I``.
        intensity_std: Standard deviation of ``I``.
        pan_mean: Mean of the panchromatic band.
        pan_std: Standard deviation of the panchromatic band.
        gains: ``cov(MS_k, I) / var(I)`` per band.
    """

    weights: tuple[float, ...]
    intensity_mean: float
    intensity_std: float
    pan_mean: float
    pan_std: float
    gains: tuple[float, ...]


def _weights(m: npt.NDArray[np.float64], weights: Sequence[float] | None) -> npt.NDArray[np.float64]:
    w = np.ones(m.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (m.shape[0],) or w.sum() <= 0:
        raise InputError(
            f"weights {list(w)} do not match {m.shape[0]} bands; expected one positive weight each"
        )
    return w / w.sum()


def gram_schmidt_stats(
    ms: FloatArray, pan: FloatArray, weights: Sequence[float] | None = None
) -> GramSchmidtStats:
    """Statistics of :func:`gram_schmidt_pansharpen` over the pixels valid in every band and the pan.

    Args:
        ms: ``(C, H, W)`` multispectral reflectance on the pan grid (a decimated read is enough).
        pan: ``(H, W)`` panchromatic reflectance.
        weights: Weight of each band in the simulated pan (default: equal).

    Returns:
        The statistics.

    Raises:
        InputError: If the shapes differ, the weights do not match, or fewer than two pixels are valid or
            the simulated pan or the pan is constant.
    """
    m = np.asarray(ms, dtype=np.float64)
    p = np.asarray(pan, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != p.shape:
        raise InputError(f"multispectral {m.shape} and pan {p.shape} differ; expected (C, H, W) and (H, W)")
    w = _weights(m, weights)
    ok = np.isfinite(m).all(axis=0) & np.isfinite(p)
    bands, pv = m[:, ok], p[ok]
    intensity = w @ bands
    if intensity.size < 2 or intensity.std() == 0 or pv.std() == 0:
        raise InputError(
            "the multispectral intensity or the pan is constant or empty; expected image texture"
        )
    centred = intensity - intensity.mean()
    gains = (bands - bands.mean(axis=1, keepdims=True)) @ centred / (centred @ centred)
    return GramSchmidtStats(
        weights=tuple(w.tolist()),
        intensity_mean=float(intensity.mean()),
        intensity_std=float(intensity.std()),
        pan_mean=float(pv.mean()),
        pan_std=float(pv.std()),
        gains=tuple(gains.tolist()),
    )


def gram_schmidt_pansharpen(
    ms: FloatArray,
    pan: FloatArray,
    weights: Sequence[float] | None = None,
    stats: GramSchmidtStats | None = None,
) -> npt.NDArray[np.float32]:
    """Gram-Schmidt pan-sharpening (Laben & Brower 2000) of bands already resampled to the pan grid.

    The simulated low-resolution pan ``I = sum_k w_k MS_k`` is the first Gram-Schmidt component; the pan,
    matched to its mean and standard deviation (``P' = (P - mean P) std I / std P + mean I``), replaces it, and
    the inverse transform gives ``MS_k' = MS_k + g_k (P' - I)`` with ``g_k = cov(MS_k, I) / var(I)``: only the
    first component changes, so the inverse transform reduces to this gain form (Aiazzi et al. 2007, Eq. 4).
    Unlike Brovey, band ratios are not kept, but each band's mean is, and the added detail is scaled by
    how much the band follows the intensity.

    Args:
        ms: ``(C, H, W)`` multispectral reflectance on the pan grid.
        pan: ``(H, W)`` panchromatic reflectance.
        weights: Weight of each band in ``I`` (default: equal; ignored with ``stats``).
        stats: Scene statistics (:func:`gram_schmidt_stats`); default: computed from these arrays.

    Returns:
        ``(C, H, W)`` sharpened bands (float32); NaN where an input is NaN.

    Raises:
        InputError: If the shapes differ (or see :func:`gram_schmidt_stats`).
    """
    m = np.asarray(ms, dtype=np.float64)
    p = np.asarray(pan, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != p.shape:
        raise InputError(f"multispectral {m.shape} and pan {p.shape} differ; expected (C, H, W) and (H, W)")
    st = stats if stats is not None else gram_schmidt_stats(m, p, weights)
    if len(st.gains) != m.shape[0]:
        raise InputError(f"statistics of {len(st.gains)} bands for {m.shape[0]} bands; expected one scene's")
    intensity = np.tensordot(np.asarray(st.weights), m, axes=1)
    matched = (p - st.pan_mean) * (st.intensity_std / st.pan_std) + st.intensity_mean
    out = m + np.asarray(st.gains)[:, None, None] * (matched - intensity)[None]
    out[~np.isfinite(out)] = np.nan
    return out.astype(np.float32)


PansharpenMethod = Literal["brovey", "gram_schmidt"]
"""Pan-sharpening methods: Brovey (Gillespie et al. 1987) and Gram-Schmidt (Laben & Brower 2000)."""


def _decimated_stats(
    vrt: WarpedVRT, pan: rasterio.DatasetReader, weights: Sequence[float] | None, max_side: int = 1024
) -> GramSchmidtStats:
    """Gram-Schmidt statistics of the whole scene from a read at most ``max_side`` px a side (GDAL average)."""
    factor = max(1.0, max(pan.height, pan.width) / max_side)
    shape = (max(2, round(pan.height / factor)), max(2, round(pan.width / factor)))
    m = vrt.read(out_shape=(vrt.count, *shape), resampling=Resampling.average, masked=True)
    p = pan.read(1, out_shape=shape, resampling=Resampling.average, masked=True)
    return gram_schmidt_stats(
        m.astype(np.float64).filled(np.nan), p.astype(np.float64).filled(np.nan), weights
    )


def pansharpen_files(
    ms_path: str | Path,
    pan_path: str | Path,
    out: str | Path,
    *,
    weights: Sequence[float] | None = None,
    block_rows: int = 512,
    method: PansharpenMethod = "brovey",
) -> Path:
    """Pan-sharpen a multispectral GeoTIFF to the grid of a panchromatic GeoTIFF, strip by strip.

    The multispectral bands are warped onto the pan grid bilinearly (GDAL), then :func:`brovey_pansharpen`
    or :func:`gram_schmidt_pansharpen` is applied (Gram-Schmidt with scene statistics from a decimated read,
    :func:`gram_schmidt_stats`, so every strip uses the same ones); the output keeps the pan grid (CRS,
    transform) and is written atomically with nodata :data:`~glaciermap.constants.RASTER_NODATA`.

    Args:
        ms_path: Multispectral reflectance (e.g. ZY-3 MUX, 4 bands, 5.8 m).
        pan_path: Panchromatic reflectance (e.g. ZY-3 NAD, 2.1 m; or a 2 m resampling of it).
        out: Output GeoTIFF (e.g. ``*_ms.tif`` for :class:`~glaciermap.datasets.karakoram.KarakoramZY3`).
        weights: Intensity weights per band (default equal).
        block_rows: Rows per strip.
        method: ``"brovey"`` or ``"gram_schmidt"``.

    Returns:
        ``out``.

    Raises:
        ConfigError: If ``block_rows`` is not positive or ``method`` is unknown.
        InputError: If a file is unreadable or lacks a CRS.
    """
    if block_rows <= 0:
        raise ConfigError(f"block_rows is {block_rows}; expected a positive number of rows")
    if method not in ("brovey", "gram_schmidt"):
        raise ConfigError(f"method is {method!r}; expected 'brovey' or 'gram_schmidt'")
    out_path = Path(out)
    with open_raster(pan_path, "panchromatic band") as pan, open_raster(ms_path, "multispectral bands") as ms:
        if pan.crs is None or ms.crs is None:
            raise InputError(
                f"{pan_path if pan.crs is None else ms_path} has no CRS; expected georeferenced rasters"
            )
        with (
            WarpedVRT(
                ms,
                crs=pan.crs,
                transform=pan.transform,
                width=pan.width,
                height=pan.height,
                resampling=Resampling.bilinear,
                dtype="float32",
            ) as vrt,
            atomic_output(out_path) as tmp,
        ):
            stats = _decimated_stats(vrt, pan, weights) if method == "gram_schmidt" else None
            profile = {"driver": "GTiff", "count": ms.count, "dtype": "float32", "nodata": RASTER_NODATA}
            profile.update(height=pan.height, width=pan.width, crs=pan.crs, transform=pan.transform)
            with rasterio.open(tmp, "w", tiled=True, compress="deflate", **profile) as dst:
                dst.descriptions = ms.descriptions
                _write_sharpened(vrt, pan, dst, stats, weights, block_rows)
    return out_path


def _write_sharpened(
    vrt: WarpedVRT,
    pan: rasterio.DatasetReader,
    dst: rasterio.io.DatasetWriter,
    stats: GramSchmidtStats | None,
    weights: Sequence[float] | None,
    block_rows: int,
) -> None:
    """Sharpen strip by strip: Gram-Schmidt with the scene ``stats``, else Brovey."""
    for row in range(0, pan.height, block_rows):
        window = rasterio.windows.Window(0, row, pan.width, min(block_rows, pan.height - row))
        m = vrt.read(window=window, masked=True).astype(np.float64).filled(np.nan)
        p = pan.read(1, window=window, masked=True).astype(np.float64).filled(np.nan)
        sharp = (
            gram_schmidt_pansharpen(m, p, stats=stats)
            if stats is not None
            else brovey_pansharpen(m, p, weights)
        )
        dst.write(np.where(np.isfinite(sharp), sharp, RASTER_NODATA).astype(np.float32), window=window)


@dataclass(frozen=True)
class Coregistration:
    """Result of :func:`coregistration_offset`.

    Attributes:
        shift_px: ``(dy, dx)`` in pixels that registers ``moving`` onto ``reference`` (scikit-image sign
            convention: shift ``moving`` by this to align it).
        shift_m: ``(dy, dx)`` in metres (pixel size times shift), or ``None`` without a pixel size.
        error: scikit-image's translation-invariant normalised RMS error (0 = perfect match).
    """

    shift_px: tuple[float, float]
    shift_m: tuple[float, float] | None
    error: float

    @property
    def magnitude_px(self) -> float:
        """Length of the shift in pixels."""
        return math.hypot(*self.shift_px)


def coregistration_offset(
    reference: FloatArray, moving: FloatArray, *, pixel_size: float | None = None, upsample: int = 10
) -> Coregistration:
    """Shift between two images of one grid by phase cross-correlation (Karakoram paper Sec. 3.1 check).

    NaNs are replaced by each image's mean before the correlation; use comparable layers (e.g. the NIR band
    of two acquisitions, or a hillshade and a panchromatic band).

    Args:
        reference: ``(H, W)`` reference image.
        moving: ``(H, W)`` image to test.
        pixel_size: Pixel size in m, to report the shift in metres.
        upsample: Sub-pixel precision ``1 / upsample`` px.

    Returns:
        The shift.

    Raises:
        InputError: If the shapes differ, an image is constant, or it is smaller than 8x8 px.
    """
    from skimage.registration import phase_cross_correlation

    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(moving, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(f"images of shape {a.shape} and {b.shape}; expected two (H, W) images on one grid")
    if min(a.shape) < 8:
        raise InputError(f"images of shape {a.shape} are too small; expected at least 8x8 px")
    filled = []
    for name, img in (("reference", a), ("moving", b)):
        ok = np.isfinite(img)
        if not ok.any() or np.nanstd(img) == 0:
            raise InputError(f"{name} image is constant or all nodata; expected texture to correlate")
        filled.append(np.where(ok, img, np.nanmean(img)))
    shift, error, _ = phase_cross_correlation(filled[0], filled[1], upsample_factor=upsample)
    dy, dx = float(shift[0]), float(shift[1])
    metres = (dy * pixel_size, dx * pixel_size) if pixel_size is not None else None
    return Coregistration(shift_px=(dy, dx), shift_m=metres, error=float(error))


def check_coregistration(
    reference: FloatArray, moving: FloatArray, *, tolerance_px: float = 0.5, what: str = "layers"
) -> Coregistration:
    """Raise if two images of one grid are shifted by more than ``tolerance_px``.

    Args:
        reference: ``(H, W)`` reference image.
        moving: ``(H, W)`` image to test.
        tolerance_px: Largest acceptable shift in pixels.
        what: Name of the pair, for the message.

    Returns:
        The measured shift (within tolerance).

    Raises:
        InputError: If the shift exceeds the tolerance (or see :func:`coregistration_offset`).
    """
    result = coregistration_offset(reference, moving)
    if result.magnitude_px > tolerance_px:
        dy, dx = result.shift_px
        raise InputError(
            f"{what} are shifted by dy={dy:+.1f}, dx={dx:+.1f} px ({result.magnitude_px:.1f} px); expected "
            f"co-registered layers (<= {tolerance_px:g} px, Karakoram paper Sec. 3.1)"
        )
    return result
