"""Fine stage of the synthetic glacier world: every modality of one window of pixels.

:class:`SceneRenderer` evaluates the coarse fields of :mod:`glaciermap.synthetic.terrain` at the
pixels of a window (cubic B-spline), adds pixel-scale detail from seeded coordinate noise, classifies the
surface and derives reflectance, elevation and slope, land-surface temperature, radar backscatter and
interferometric coherence, labels and glacier ids. Every value is a function of the absolute pixel
position only (the window is padded by a halo for slope and the thermal point-spread function), so windows
of any size tile the scene without seams. The physics and its limits are in ``docs/synthetic_world.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from glaciermap.constants import BACKGROUND, CLEAN_ICE, DEBRIS_ICE, IGNORE_INDEX, RASTER_NODATA
from glaciermap.synthetic.noise import (
    F32,
    F64,
    I64,
    PeriodicNoise,
    bspline_upsample,
    hash_uniforms,
    stream_key,
)
from glaciermap.synthetic.presets import RegionPreset
from glaciermap.synthetic.terrain import FIELD_NAMES, CoarseWorld

# Surface reflectance endmembers, bands blue, green, red, nir, swir1, swir2 (unitless). Values follow the
# USGS spectral library (Kokaly et al. 2017) resampled to Landsat/Sentinel-2 bands and the glacier spectra of
# Paul et al. (2016, Remote Sens. Environ. 175): snow and clean ice bright in the visible and dark in SWIR;
# debris and rock nearly identical (red/swir1 below 1).
SNOW = np.array([0.92, 0.91, 0.88, 0.78, 0.11, 0.08])
ICE_CLEAN = np.array([0.62, 0.57, 0.49, 0.33, 0.045, 0.035])
ICE_DIRTY = np.array([0.40, 0.37, 0.33, 0.24, 0.05, 0.04])
ROCK_LIGHT = np.array([0.15, 0.18, 0.22, 0.27, 0.32, 0.27])
ROCK_DARK = np.array([0.07, 0.085, 0.10, 0.13, 0.17, 0.14])
VEGETATION = np.array([0.035, 0.07, 0.045, 0.34, 0.17, 0.08])
WATER_CLEAR = np.array([0.045, 0.04, 0.025, 0.008, 0.004, 0.003])
WATER_TURBID = np.array([0.10, 0.13, 0.09, 0.03, 0.006, 0.004])
BRASH_ICE = np.array([0.72, 0.68, 0.60, 0.42, 0.05, 0.04])
CLOUD = np.array([0.72, 0.71, 0.70, 0.68, 0.55, 0.42])
# Atmosphere at sea level: path reflectance, two-way transmittance and diffuse (sky) fraction per band;
# Rayleigh scattering ~ lambda**-4 (path and sky light strongest in blue), scaled with pressure exp(-z/8 km).
PATH = np.array([0.085, 0.055, 0.032, 0.014, 0.003, 0.001])
TRANSMIT = np.array([0.78, 0.84, 0.88, 0.92, 0.95, 0.96])
DIFFUSE = np.array([0.26, 0.19, 0.14, 0.08, 0.04, 0.03])

SAR_INCIDENCE = 39.0
"""Radar incidence angle at the scene centre (degrees; Sentinel-1 IW mid-swath)."""
SAR_LOOK_AZIMUTH = {"asc": 78.0, "desc": 282.0}
"""Azimuth of the radar look direction (degrees): right-looking, heading about -12 / 192 degrees."""
THERMAL_RESOLUTION = 60.0
"""Native resolution (m) of the thermal band; the land-surface temperature is blurred to it."""

_NOISE_ELEV, _NOISE_EDGE, _NOISE_DEBRIS, _NOISE_ALBEDO, _JIT_Y, _JIT_X, _NOISE_SNOW, _NOISE_BERG = range(8)
_NOISE_TURBID, _NOISE_LITHO, _NOISE_CLIFF, _NOISE_POND = 8, 9, 10, 11


@dataclass
class WindowData:
    """Every raster of one window.

    Attributes:
        optical: TOA reflectance (6, h, w) float32.
        dem: Elevation (m) and slope (degrees), (2, h, w) float32.
        thermal: Land-surface temperature (K), (1, h, w) float32.
        sar: Backscatter sigma0 ascending and descending (linear), (2, h, w) float32.
        insar: Coherence ascending and descending (0..1), (2, h, w) float32.
        labels: Class ids (h, w) uint8 (0 background, 1 clean ice, 2 debris, 255 nodata/cloud).
        glaciers: Glacier id (h, w) uint32, 0 = none.
        valid: Pixels that are not nodata (h, w) bool.
    """

    optical: F32
    dem: F32
    thermal: F32
    sar: F32
    insar: F32
    labels: npt.NDArray[np.uint8]
    glaciers: npt.NDArray[np.uint32]
    valid: npt.NDArray[np.bool_]


def _smoothstep(x: F32, lo: float, hi: float) -> F32:
    t = np.clip((x - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0)
    out: F32 = (t * t * (np.float32(3.0) - np.float32(2.0) * t)).astype(np.float32)
    return out


Bool = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.floating[Any]]
"""Float arrays of a window: float32 at run time (numpy's stubs widen some float32 results)."""


@dataclass
class _Pixels:
    """A window padded by the halo: its pixel coordinates and the coarse fields evaluated at them.

    Attributes:
        rows: Absolute pixel rows, shape (h, 1).
        cols: Absolute pixel columns, shape (1, w).
        u: Coarse row coordinate of every row, shape (h,).
        v: Coarse column coordinate of every column, shape (w,).
        fld: The coarse fields (:data:`~glaciermap.synthetic.terrain.FIELD_NAMES`) at the pixels.
        n_alb: Albedo noise, shared by the snowline, ice dirt, debris lithology, vegetation and water
            temperature.
    """

    rows: I64
    cols: I64
    u: F64
    v: F64
    fld: dict[str, F32]
    n_alb: F32


@dataclass
class _Surface:
    """Surface classes of every pixel.

    Attributes:
        ice: Glacier ice (clean or debris-covered).
        water: Lakes and sea.
        sea: Sea.
        debris: Debris-covered ice.
        snow_patch: Seasonal snow on land.
        debris_frac: Debris fraction 0..1 (with pixel-scale noise).
        melange: Ice-melange density on the sea.
        brash: Fraction of brash ice and icebergs on the water.
    """

    ice: Bool
    water: Bool
    sea: Bool
    debris: Bool
    snow_patch: Bool
    debris_frac: Floats
    melange: Floats
    brash: Floats


@dataclass
class _Relief:
    """Elevation, slope, surface normal and illumination of every pixel.

    Attributes:
        z: Elevation (m).
        slope: Slope (degrees).
        nx: East component of the unit surface normal.
        ny: North component.
        nz: Up component.
        direct: Direct illumination relative to a flat surface (cast shadows included).
        sky: Sky-view fraction (diffuse illumination).
    """

    z: Floats
    slope: Floats
    nx: Floats
    ny: Floats
    nz: Floats
    direct: Floats
    sky: Floats


@dataclass
class _Cover:
    """Sub-pixel mixtures of the materials (fractions 0..1 unless stated).

    Attributes:
        litho: Rock lithology, dark (0) to light (1).
        moraine: Moraine (debris-coloured land) near the ice.
        veg: Vegetation below the tree line.
        snow_cover: Snow on the ice above the snowline.
        dirt: Dirt on bare ice below the ELA.
        f_debris: Debris cover of the ice (0 on ice cliffs and ponds).
        debris_litho: Lithology of the supraglacial debris.
        turbid: Turbidity of the water.
        pond: Supraglacial ponds on debris-covered ice (water, but labelled as ice).
    """

    litho: Floats
    moraine: Floats
    veg: Floats
    snow_cover: Floats
    dirt: Floats
    f_debris: Floats
    debris_litho: Floats
    turbid: Floats
    pond: Bool


def _by_class(surface: _Surface, pond: Bool, ice: Floats, water: Floats, land: Floats) -> Floats:
    """Per-pixel choice of the ice, water or land value (ponds take the water value)."""
    out: Floats = np.where(surface.ice & ~pond, ice, np.where(surface.water | pond, water, land))
    return out


class SceneRenderer:
    """Compute every raster of any window of a scene.

    Args:
        world: The coarse world of the scene.
        preset: Its region preset.
        pixel_size: Pixel size (m).
        seed: Scene seed.
        height: Scene rows (pixels).
        width: Scene columns (pixels).
        clouds: Whether thin cloud is drawn (the coarse cloud field is zero otherwise).
        nodata_stripes: Whether scan-line-corrector-off style nodata stripes are drawn.
    """

    def __init__(
        self,
        world: CoarseWorld,
        preset: RegionPreset,
        pixel_size: float,
        seed: int,
        height: int,
        width: int,
        clouds: bool,
        nodata_stripes: bool,
    ) -> None:
        self.world = world
        self.preset = preset
        self.pixel_size = float(pixel_size)
        self.seed = seed
        self.height = height
        self.width = width
        self.clouds = clouds
        self.nodata_stripes = nodata_stripes
        self.noise = PeriodicNoise(seed)
        self.smooth_noise = PeriodicNoise(seed + 1, beta=3.4, max_wavelength=64.0, periods=(509, 419))
        self.keys = {
            name: stream_key(seed, i) for i, name in enumerate(("optical", "sar", "insar", "thermal"))
        }
        sigma = THERMAL_RESOLUTION / self.pixel_size / 2.3548
        self.thermal_sigma = sigma if sigma > 0.5 else 0.0
        self.halo = 1 + (math.ceil(3.0 * sigma) if self.thermal_sigma else 0)
        az, el = math.radians(world.sun_azimuth), math.radians(world.sun_elevation)
        self.sun = (math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el))
        th = math.radians(SAR_INCIDENCE)
        self.radar = {
            k: (
                -math.sin(th) * math.sin(math.radians(a)),
                -math.sin(th) * math.cos(math.radians(a)),
                math.cos(th),
            )
            for k, a in SAR_LOOK_AZIMUTH.items()
        }

    def render(self, row0: int, col0: int, height: int, width: int) -> WindowData:
        """Compute all rasters of the window ``[row0:row0+height, col0:col0+width]``.

        Args:
            row0: First row (pixels).
            col0: First column (pixels).
            height: Window rows.
            width: Window columns.

        Returns:
            The window's rasters.
        """
        px = self._pixels(row0, col0, height, width)
        surface = self._surface_classes(px)
        relief = self._relief(px, surface)
        cover = self._cover(px, surface, relief)
        tau = np.clip(px.fld["cloud"], 0.0, 0.95) if self.clouds else None
        optical = self._optical(px, surface, relief, cover, tau)
        thermal = self._thermal(px, surface, relief, cover, tau)
        sar, insar = self._radar(px, surface, relief, cover)
        labels, glaciers = self._labels(px, surface)
        if tau is not None:
            labels = np.where(tau > 0.4, np.uint8(IGNORE_INDEX), labels)
        rasters = {"optical": optical, "dem": np.stack([relief.z, relief.slope]), "thermal": thermal[None]}
        return self._crop(px, height, width, {**rasters, "sar": sar, "insar": insar}, labels, glaciers)

    def _pixels(self, row0: int, col0: int, height: int, width: int) -> _Pixels:
        """Coordinates of the window padded by the halo, and the coarse fields there (cubic B-spline)."""
        w_ = self.world
        halo = self.halo
        rows = np.arange(row0 - halo, row0 + height + halo, dtype=np.int64)[:, None]
        cols = np.arange(col0 - halo, col0 + width + halo, dtype=np.int64)[None, :]
        f = w_.factor
        u = (rows[:, 0] + 0.5) / f - 0.5 + w_.margin
        v = (cols[0, :] + 0.5) / f - 0.5 + w_.margin
        fld = dict(zip(FIELD_NAMES, bspline_upsample(list(w_.stack), u, v), strict=True))
        return _Pixels(rows, cols, u, v, fld, self.noise.sample(_NOISE_ALBEDO, rows, cols))

    def _surface_classes(self, px: _Pixels) -> _Surface:
        """Ice, water, sea, debris, seasonal snow and ice melange, with pixel-scale ragged edges."""
        nz = self.noise.sample
        rows, cols, fld = px.rows, px.cols, px.fld
        n_edge = self.smooth_noise.sample(_NOISE_EDGE, rows, cols)
        ice_f = fld["ice"] + np.float32(0.11) * n_edge
        water_f = fld["water"] + np.float32(0.08) * n_edge
        wet = ice_f + water_f > 0.5  # ice and water meet without a strip of land (calving fronts)
        ice = (ice_f > 0.5) | (wet & (ice_f >= water_f))
        water = wet & ~ice
        sea = water & (fld["sea"] > 0.5)
        n_deb = self.smooth_noise.sample(_NOISE_DEBRIS, rows, cols)
        debris_frac = np.clip(fld["debris"] + np.float32(0.16) * n_deb, 0.0, 1.0)
        debris = ice & (debris_frac > 0.5)
        snow_patch = (fld["snowpot"] + np.float32(0.12) * nz(_NOISE_SNOW, rows, cols) > 0.5) & ~ice & ~water
        mel = np.where(sea, np.maximum(fld["melange"], 0.0), np.float32(0.0))
        bergs = _smoothstep(mel + np.float32(0.3) * nz(_NOISE_BERG, rows, cols), 0.55, 0.75)
        f_brash = np.clip(np.float32(0.55) * mel + np.float32(0.45) * bergs, 0.0, 1.0) * (mel > 0.03)
        return _Surface(ice, water, sea, debris, snow_patch, debris_frac, mel, f_brash)

    def _relief(self, px: _Pixels, surface: _Surface) -> _Relief:
        """Elevation with pixel-scale relief (flat water), slope, surface normal and illumination."""
        w_ = self.world
        ice, water, debris = surface.ice, surface.water, surface.debris
        # pixel-scale relief: rough rock, smooth undulating ice, hummocky debris, flat water
        px_m = np.float32(self.pixel_size)
        rough = np.where(ice | water, np.float32(0.0), np.float32(0.6) * px_m)
        undulate = np.where(ice, np.where(debris, np.float32(0.25), np.float32(0.15)), np.float32(0.3)) * px_m
        undulate = np.where(water, np.float32(0.0), undulate)
        z = px.fld["surface"] + rough * self.noise.sample(_NOISE_ELEV, px.rows, px.cols)
        z = z + undulate * self.smooth_noise.sample(0, px.rows, px.cols)
        iy = np.clip(np.rint(px.u), 0, w_.water_level.shape[0] - 1).astype(np.int64)
        ix = np.clip(np.rint(px.v), 0, w_.water_level.shape[1] - 1).astype(np.int64)
        z = np.where(water, w_.water_level[iy[:, None], ix[None, :]], z)  # water is flat
        gy, gx = np.gradient(z, self.pixel_size)  # gy: d/d(row) = towards south
        gy = gy.astype(np.float32)
        gx = gx.astype(np.float32)
        norm = np.sqrt(np.float32(1.0) + gx * gx + gy * gy)
        nx, ny, nzv = -gx / norm, gy / norm, np.float32(1.0) / norm  # east, north, up
        slope = np.degrees(np.arccos(nzv)).astype(np.float32)
        sx, sy, sz = self.sun
        cos_i = nx * np.float32(sx) + ny * np.float32(sy) + nzv * np.float32(sz)
        direct = (
            np.maximum(cos_i, 0.0) * (np.float32(1.0) - np.clip(px.fld["shadow"], 0.0, 1.0)) / np.float32(sz)
        )
        sky = (np.float32(1.0) + nzv) * np.float32(0.5)
        return _Relief(z, slope, nx, ny, nzv, direct, sky)

    def _cover(self, px: _Pixels, surface: _Surface, relief: _Relief) -> _Cover:
        """Material mixtures: lithology, moraine, vegetation, snow, dirt, debris, ice cliffs and ponds."""
        p = self.preset
        nz = self.noise.sample
        rows, cols, fld, n_alb, z = px.rows, px.cols, px.fld, px.n_alb, relief.z
        litho = np.clip(fld["litho"] + np.float32(0.12) * nz(_NOISE_LITHO, rows, cols), 0.0, 1.0)
        moraine = np.clip(fld["moraine"], 0.0, 1.0)
        if p.treeline is not None:
            veg = np.clip((np.float32(p.treeline) - z) / np.float32(250.0), 0.0, 1.0)
            veg = veg * np.clip((np.float32(42.0) - relief.slope) / np.float32(20.0), 0.0, 1.0)
            veg = veg * np.clip(np.float32(0.75) + np.float32(0.35) * n_alb, 0.0, 1.0)
        else:
            veg = np.zeros_like(z)
        snowline = np.float32(p.ela) + np.float32(40.0) * n_alb
        snow_cover = _smoothstep(z - snowline, -30.0, 30.0)
        dirt = np.clip((np.float32(p.ela) - z) / np.float32(0.5 * (p.ela - p.z_floor) + 1.0), 0.0, 1.0)
        dirt = np.clip(dirt + np.float32(0.1) * n_alb, 0.0, 1.0)
        f_debris = _smoothstep(surface.debris_frac, 0.3, 0.6)
        # debris-covered tongues are pitted with bare ice cliffs and supraglacial ponds (a few % each)
        cliff = surface.debris & (nz(_NOISE_CLIFF, rows, cols) > 1.9)
        pond = surface.debris & ~cliff & (nz(_NOISE_POND, rows, cols) > 2.1)
        f_debris = np.where(cliff | pond, np.float32(0.0), f_debris)
        debris_litho = np.clip(np.float32(0.45) + np.float32(0.15) * n_alb, 0.0, 1.0)
        turbid = np.where(
            surface.sea,
            np.clip(surface.melange * np.float32(2.0), 0.0, 1.0),
            np.clip(np.float32(0.6) + np.float32(0.3) * nz(_NOISE_TURBID, rows, cols), 0.0, 1.0),
        )
        return _Cover(litho, moraine, veg, snow_cover, dirt, f_debris, debris_litho, turbid, pond)

    def _optical(
        self, px: _Pixels, surface: _Surface, relief: _Relief, cover: _Cover, tau: Floats | None
    ) -> F32:
        """TOA reflectance of the six bands: surface mixture, illumination, path radiance, cloud, noise."""
        pressure = np.exp(-np.maximum(relief.z, 0.0) / np.float32(8000.0)).astype(np.float32)
        hh, ww = relief.z.shape
        optical = np.empty((6, hh, ww), dtype=np.float32)
        uo = hash_uniforms(px.rows, px.cols, self.keys["optical"], 2)
        sensor_noise = (uo[0] + uo[1] - np.float32(1.0)) * np.float32(0.006)
        for b in range(6):
            rho = _by_class(surface, cover.pond, *self._reflectances(b, surface, cover))
            illum = np.float32(1.0 - DIFFUSE[b]) * relief.direct + np.float32(DIFFUSE[b]) * relief.sky
            toa = np.float32(PATH[b]) * pressure + np.float32(TRANSMIT[b]) * rho * illum
            if tau is not None:
                toa = toa + (np.float32(CLOUD[b]) - toa) * tau
            optical[b] = np.clip(toa + sensor_noise * np.float32(1.0 - 0.5 * b / 5), 0.001, 1.6)
        return optical

    @staticmethod
    def _reflectances(b: int, surface: _Surface, cover: _Cover) -> tuple[Floats, Floats, Floats]:
        """Surface reflectance of band ``b`` of the ice, water and land mixtures (endmembers above)."""
        rock = np.float32(ROCK_DARK[b]) + np.float32(ROCK_LIGHT[b] - ROCK_DARK[b]) * cover.litho
        deb_mat = np.float32(0.95) * (
            np.float32(ROCK_DARK[b]) + np.float32(ROCK_LIGHT[b] - ROCK_DARK[b]) * cover.debris_litho
        )
        land = rock + (deb_mat - rock) * cover.moraine
        land = land + (np.float32(VEGETATION[b]) - land) * cover.veg
        land = np.where(surface.snow_patch, np.float32(0.9 * SNOW[b]), land)
        icev = np.float32(ICE_CLEAN[b]) + np.float32(ICE_DIRTY[b] - ICE_CLEAN[b]) * cover.dirt
        icev = icev + (np.float32(SNOW[b]) - icev) * cover.snow_cover
        icev = icev + (deb_mat - icev) * cover.f_debris
        wat = np.float32(WATER_CLEAR[b]) + np.float32(WATER_TURBID[b] - WATER_CLEAR[b]) * cover.turbid
        wat = wat + (np.float32(BRASH_ICE[b]) - wat) * surface.brash
        return icev, wat, land

    def _thermal(
        self, px: _Pixels, surface: _Surface, relief: _Relief, cover: _Cover, tau: Floats | None
    ) -> F32:
        """Land-surface temperature (K), blurred to the thermal band's resolution, with sensor noise."""
        p = self.preset
        z, direct, veg, f_debris = relief.z, relief.direct, cover.veg, cover.f_debris
        t_air = np.float32(p.t_air_sea_level) - np.float32(0.0065) * np.maximum(z, 0.0)
        t_rock = t_air + np.float32(3.0) + np.float32(11.0) * np.minimum(direct, 1.6)
        t_land = t_rock + (t_air + np.float32(2.0) + np.float32(4.0) * direct - t_rock) * veg
        t_land = np.where(surface.snow_patch, np.minimum(t_air, np.float32(273.15)) - np.float32(0.8), t_land)
        t_ice = np.minimum(t_air + np.float32(1.0), np.float32(273.15)) - np.float32(0.4)
        # supraglacial debris: conduction to the ice below keeps it cooler than rock, most where thin
        t_debris = t_rock - (np.float32(2.5) + np.float32(4.0) * (np.float32(1.0) - surface.debris_frac))
        t_ice = t_ice + (np.maximum(t_debris, np.float32(273.5)) - t_ice) * f_debris
        t_water = np.float32(276.5) + np.float32(1.5) * px.n_alb
        t_water = t_water + (np.float32(272.8) - t_water) * surface.brash
        lst = _by_class(surface, cover.pond, t_ice, t_water, t_land)
        if tau is not None:
            lst = lst + (np.float32(255.0) - lst) * tau
        if self.thermal_sigma:
            lst = ndimage.gaussian_filter(lst, self.thermal_sigma, mode="nearest", truncate=3.0)
        ut = hash_uniforms(px.rows, px.cols, self.keys["thermal"], 2)
        out: F32 = lst + (ut[0] + ut[1] - np.float32(1.0)) * np.float32(0.35)
        return out

    def _radar_classes(
        self, px: _Pixels, surface: _Surface, relief: _Relief, cover: _Cover
    ) -> tuple[Floats, Floats]:
        """Backscatter (sigma0, linear) and interferometric coherence of the surface, before topography."""
        vel = np.maximum(px.fld["velocity"], 0.0)
        veg, snow_patch, snow_cover, f_debris = (
            cover.veg,
            surface.snow_patch,
            cover.snow_cover,
            cover.f_debris,
        )
        sig_land = (
            np.float32(0.07) + np.float32(0.05) * (np.float32(1.0) - veg) + np.float32(0.02) * cover.litho
        )
        sig_land = np.where(snow_patch, np.float32(0.016), sig_land)
        sig_ice = np.float32(0.035) + (np.float32(0.012) - np.float32(0.035)) * snow_cover
        sig_ice = sig_ice + (np.float32(0.10) - sig_ice) * f_debris
        sig_water = np.float32(0.004) + (np.float32(0.30) - np.float32(0.004)) * surface.brash
        sig_cls = _by_class(surface, cover.pond, sig_ice, sig_water, sig_land)
        coh_land = np.float32(0.86) - np.float32(0.25) * np.clip(relief.slope / np.float32(60.0), 0.0, 1.0)
        coh_land = coh_land + (np.float32(0.35) - coh_land) * veg
        coh_land = np.where(snow_patch, np.float32(0.28), coh_land)
        coh_ice = np.float32(0.08) + np.float32(0.22) * np.exp(-vel / np.float32(15.0))
        coh_ice = coh_ice + (np.float32(0.12) - coh_ice) * snow_cover
        coh_deb = np.float32(0.2) + np.float32(0.22) * np.exp(-vel / np.float32(8.0))
        coh_ice = coh_ice + (coh_deb - coh_ice) * f_debris
        coh_water = np.float32(0.05) + np.float32(0.03) * surface.brash
        coh_cls = _by_class(surface, cover.pond, coh_ice, coh_water, coh_land)
        return sig_cls, coh_cls

    def _radar(self, px: _Pixels, surface: _Surface, relief: _Relief, cover: _Cover) -> tuple[F32, F32]:
        """Backscatter with topography and speckle, and coherence with layover, ascending and descending."""
        sig_cls, coh_cls = self._radar_classes(px, surface, relief, cover)
        hh, ww = relief.z.shape
        sar = np.empty((2, hh, ww), dtype=np.float32)
        insar = np.empty((2, hh, ww), dtype=np.float32)
        cos_th = np.float32(math.cos(math.radians(SAR_INCIDENCE)))
        for i, look in enumerate(("asc", "desc")):
            rx, ry, rz = self.radar[look]
            cos_loc = relief.nx * np.float32(rx) + relief.ny * np.float32(ry) + relief.nz * np.float32(rz)
            topo = (np.maximum(cos_loc, np.float32(0.02)) / cos_th) ** 2
            us = hash_uniforms(px.rows, px.cols, stream_key(self.seed, 100 + i), 4)
            speckle = -np.log(us[0] * us[1] * us[2] * us[3]) * np.float32(0.25)  # Gamma(L=4), mean 1
            sar[i] = np.clip(sig_cls * topo * speckle, 1e-4, 10.0)
            uc = hash_uniforms(px.rows, px.cols, stream_key(self.seed, 200 + i), 2)
            layover = np.clip((np.float32(0.15) - cos_loc) * np.float32(4.0), 0.0, 1.0)
            coh = coh_cls + (np.float32(0.2) - coh_cls) * layover
            coh = coh + (uc[0] + uc[1] - np.float32(1.0)) * np.float32(0.25) * (np.float32(1.0) - coh * coh)
            insar[i] = np.clip(coh, 0.01, 0.99)
        return sar, insar

    def _labels(self, px: _Pixels, surface: _Surface) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint32]]:
        """Class labels and glacier ids (the coarse id at a jittered position, so divides are not blocky)."""
        w_ = self.world
        nz = self.noise.sample
        ice = surface.ice
        labels = np.where(ice, np.where(surface.debris, DEBRIS_ICE, CLEAN_ICE), BACKGROUND).astype(np.uint8)
        jy = np.rint(px.u[:, None] + np.float32(0.45) * nz(_JIT_Y, px.rows, px.cols)).astype(np.int64)
        jx = np.rint(px.v[None, :] + np.float32(0.45) * nz(_JIT_X, px.rows, px.cols)).astype(np.int64)
        gid = w_.glacier_id[
            np.clip(jy, 0, w_.glacier_id.shape[0] - 1), np.clip(jx, 0, w_.glacier_id.shape[1] - 1)
        ]
        glaciers = np.where(ice, gid, 0).astype(np.uint32)
        return labels, glaciers

    def _crop(
        self,
        px: _Pixels,
        height: int,
        width: int,
        rasters: dict[str, F32],
        labels: npt.NDArray[np.uint8],
        glaciers: npt.NDArray[np.uint32],
    ) -> WindowData:
        """Crop the halo off every raster and write nodata under the scan-line stripes.

        Args:
            px: The padded window.
            height: Window rows.
            width: Window columns.
            rasters: ``optical``, ``dem``, ``thermal``, ``sar`` and ``insar``, (bands, h, w) with the halo.
            labels: Class labels with the halo.
            glaciers: Glacier ids with the halo.

        Returns:
            The window's rasters.
        """
        halo = self.halo
        c = (slice(halo, halo + height), slice(halo, halo + width))
        valid = np.ones((height, width), dtype=bool)
        if self.nodata_stripes:
            valid = ~self._stripes(px.rows[halo : halo + height], px.cols[:, halo : halo + width])
        out = WindowData(
            optical=rasters["optical"][:, c[0], c[1]],
            dem=rasters["dem"][:, c[0], c[1]].astype(np.float32),
            thermal=rasters["thermal"][:, c[0], c[1]].astype(np.float32),
            sar=rasters["sar"][:, c[0], c[1]],
            insar=rasters["insar"][:, c[0], c[1]],
            labels=labels[c],
            glaciers=glaciers[c],
            valid=valid,
        )
        if self.nodata_stripes:
            bad = ~valid
            for arr in (out.optical, out.dem, out.thermal, out.sar, out.insar):
                arr[:, bad] = RASTER_NODATA
            out.labels[bad] = IGNORE_INDEX
            out.glaciers[bad] = 0
        return out

    def _stripes(self, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Scan-line-corrector-off gaps: slanted stripes, absent at the centre, widening to the edges."""
        half = self.width / 2.0
        width_px = 4.0 * np.abs(cols - half) / half  # gap width in pixels, 0 at the centre
        phase = (rows + 0.14 * cols) % 34.0
        out: npt.NDArray[np.bool_] = phase < width_px
        return out
