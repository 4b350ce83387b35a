"""Coarse stage of the synthetic glacier world: terrain, glaciers, debris, sea, sun and sky.

Everything that needs the whole scene at once is decided here, on a coarse grid of ``factor`` x ``factor``
pixels per cell (so at most :data:`MAX_COARSE_SIDE` cells a side whatever the scene size, which bounds
memory). The flow routing and the lakes (steps 2 and 7) are in :mod:`glaciermap.synthetic.hydrology`. The
fine stage (:mod:`glaciermap.synthetic.render`) evaluates these fields at each pixel with a cubic B-spline
and adds pixel-scale detail. The physics (see ``docs/synthetic_world.md``):

1. Relief: a target slope (gentle valley floors along the zero lines of smooth random fields, steep
   hillslopes) integrated from the valley mouths as a cost distance (the eikonal equation
   |grad z| = tan(slope); Sethian, *Level Set Methods*, 1999, ch. 8), then scaled and shifted so that the
   preset's share of the scene lies above the ELA (:func:`_relief`).
2. Depressions are filled (morphological reconstruction; Soille, *Morphological Image Analysis*, 2004,
   sec. 6.3.4), flats are drained along their geodesic distance to the spill point, and ice and water are
   routed down the steepest of the eight neighbours (D8; O'Callaghan and Mark 1984).
3. Mass balance b(z) = min(db/dz * (z - ELA), b_max) (linear balance gradient; Cuffey and Paterson,
   *The Physics of Glaciers*, 2010, sec. 4.4) is accumulated downstream as an ice flux
   Q_out = max(0, Q_in + b * area). Above the ELA every cell of moderate slope holds ice; below it, ice
   survives only while the incoming flux exceeds the ablation over the tongue's area (width W(Q)).
   Steep accumulation cells shed their snow to the cells below (avalanche nourishment).
4. Tongues are widened to W(Q) = 1 km * sqrt(Q / 1e7 m3/a) and filled to an ice surface of thickness
   H(Q) = 100 m * (Q / 1e6 m3/a)**0.3 that falls off laterally; the ice surface is smoothed, and rock that
   stands out of it is a nunatak.
5. Debris: steep ice-free rock walls supply debris that travels with the ice and melts out in the ablation
   zone: the cover grows with the square root of the rock-wall share of the catchment and with the depth
   below the ELA (full cover 300 m below it); debris reduces ablation (Ostrem 1959), so the flux is routed
   a second time and debris-covered tongues reach lower.
   Debris is kept on gentle surfaces (the Karakoram paper: 68 % of debris below 10 degrees of slope).
6. Glaciers are split at ice divides by a marker watershed of the ice surface from its h-minima (the
   termini), the approach of Kienholz et al. (2013) used by GlaViTU.
7. Proglacial lakes and tarns dammed on gentle ground, mostly near glacier fronts; in maritime presets land
   below sea level connected to the domain edge is sea, ice reaching it calves, and ice melange spreads from
   the fronts.
8. Cast shadows by ray marching towards the sun; thin cloud, lithology and seasonal-snow potential fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.special import ndtr

from glaciermap.synthetic.hydrology import (
    d8_receivers,
    drain_flats,
    fill_depressions,
    lakes,
    neighbour,
    slope_degrees,
    topological_levels,
)
from glaciermap.synthetic.noise import F32, F64, I64, spectral_field
from glaciermap.synthetic.presets import RegionPreset

MAX_COARSE_SIDE = 1536
"""Largest number of coarse cells along a side of the scene; sets the coarse factor of big scenes."""
MIN_FACTOR = 4
"""Smallest number of pixels per coarse cell."""
MIN_CELL = 20.0
"""Smallest coarse cell (m): metre-scale pixels share one landscape model at 20 m."""
FIELD_NAMES: tuple[str, ...] = (
    "surface",
    "ice",
    "debris",
    "water",
    "sea",
    "melange",
    "velocity",
    "shadow",
    "cloud",
    "litho",
    "snowpot",
    "moraine",
)
"""Coarse fields that the fine stage interpolates, in this order."""

_STEEP_ACCUMULATION = 45.0  # degrees: steeper accumulation cells shed snow (avalanches) and stay rock
_ROCKWALL = 33.0  # degrees: ice-free cells steeper than this supply debris
_LATERAL_SURFACE_SLOPE = math.tan(math.radians(2.0))


@dataclass
class CoarseWorld:
    """The coarse fields of one scene.

    Attributes:
        factor: Pixels per coarse cell along each axis.
        margin: Coarse cells of margin around the scene (ice can flow in from outside the scene).
        cell: Coarse cell size (m).
        fields: Float32 fields of shape (Hc, Wc), keyed by :data:`FIELD_NAMES` (surface in m, ice/debris/
            water/sea/melange/shadow/litho/moraine fractions 0..1, velocity in m/a, cloud optical
            depth 0..1, snowpot a seasonal-snow potential).
        glacier_id: Id of the nearest glacier for every coarse cell (int32, 0 only where there is no glacier
            at all), so fine ice pixels at glacier margins always find their glacier.
        water_level: Water surface elevation (m) of the nearest lake or sea cell for every coarse cell
            (float32), so that water pixels are exactly flat.
        n_glaciers: Number of glacier ids in the domain.
        sun_azimuth: Degrees clockwise from north.
        sun_elevation: Degrees above the horizon.
    """

    factor: int
    margin: int
    cell: float
    fields: dict[str, F32]
    glacier_id: npt.NDArray[np.int32]
    water_level: F32
    n_glaciers: int
    sun_azimuth: float
    sun_elevation: float
    stack: F32 = field(init=False)

    def __post_init__(self) -> None:
        """Check the fields."""
        self.stack = np.stack([self.fields[n] for n in FIELD_NAMES]).astype(np.float32)


def coarse_layout(height: int, width: int, pixel_size: float) -> tuple[int, int, float, int, int]:
    """Coarse grid geometry of a scene.

    Args:
        height: Scene rows (pixels).
        width: Scene columns (pixels).
        pixel_size: Pixel size (m).

    Returns:
        (factor, margin, cell, Hc, Wc): pixels per cell, margin in cells, cell size (m), grid shape.
    """
    factor = max(
        MIN_FACTOR, math.ceil(MIN_CELL / pixel_size), math.ceil(max(height, width) / MAX_COARSE_SIDE)
    )
    cell = factor * pixel_size
    margin = max(6, math.ceil(1500.0 / cell) + 3)
    hc = math.ceil(height / factor) + 2 * margin
    wc = math.ceil(width / factor) + 2 * margin
    return factor, margin, cell, hc, wc


def _tan(deg: F64 | float) -> F64:
    """Tangent of an angle in degrees."""
    out: F64 = np.tan(np.radians(deg))
    return out


def _valley_floor(field_: F64, half_width: float, cell: float) -> F64:
    """1 on the floor of the valley along the zero line of ``field_``, 0 beyond ``half_width`` (m).

    Args:
        field_: A smooth random field whose zero lines are the valley axes.
        half_width: Half-width of the valley floor (m); the floor fades out from 0.4 to 1 times it.
        cell: Grid spacing (m).

    Returns:
        The valley-floor weight 0..1 (smoothstep of the distance to the zero line).
    """
    line = np.zeros(field_.shape, dtype=bool)
    pos = field_ > 0
    line[:-1] |= pos[:-1] != pos[1:]
    line[:, :-1] |= pos[:, :-1] != pos[:, 1:]
    d = ndimage.distance_transform_edt(~line) * cell
    t = np.clip((d - 0.4 * half_width) / (0.6 * half_width), 0.0, 1.0)
    out: F64 = 1.0 - t * t * (3.0 - 2.0 * t)
    return out


@dataclass
class _ReliefFields:
    """The random fields of the relief on the landscape's domain (``tshape``), all standard normal.

    Attributes:
        massif: Massif field at wavelength lambda (modulates the hillslope gradient; interior base levels).
        main: Main valley network: valleys along its zero lines (wavelength lambda / 4).
        trib: Tributary valleys along its zero lines (wavelength lambda / 10).
        rough: Rough noise on the hillslope gradient (wavelength lambda / 20).
    """

    massif: F64
    main: F64
    trib: F64
    rough: F64


def _relief_fields(
    preset: RegionPreset, tshape: tuple[int, int], cell: float, rng: np.random.Generator
) -> _ReliefFields:
    """Draw the relief's random fields on a grid of at least 1.6 lambda (a multiple of 16) a side.

    Args:
        preset: Region preset (its ``relief_wavelength`` is lambda).
        tshape: Shape of the landscape's domain (cells); the fields are cropped to it.
        cell: Grid spacing (m).
        rng: The relief's random generator (the fields are drawn in a fixed order).

    Returns:
        The four fields.
    """
    lam = preset.relief_wavelength
    n_min = math.ceil(1.6 * lam / cell)
    gy = 16 * math.ceil(max(tshape[0], n_min) / 16)
    gx = 16 * math.ceil(max(tshape[1], n_min) / 16)
    crop = (slice(0, tshape[0]), slice(0, tshape[1]))
    massif = spectral_field((gy, gx), rng, cell, 4.0, lam)[crop]
    main = spectral_field((gy, gx), rng, cell, 4.0, lam / 4.0)[crop]
    trib = spectral_field((gy, gx), rng, cell, 4.0, lam / 10.0)[crop]
    rough = spectral_field((gy, gx), rng, cell, 3.0, lam / 20.0)[crop]
    return _ReliefFields(massif, main, trib, rough)


def _target_slope(preset: RegionPreset, fields: _ReliefFields, cell: float) -> tuple[F64, F64]:
    """Prescribed gradient (tangent of the slope): gentle valley floors, moderate tributaries, steep hills.

    Args:
        preset: Region preset (hillslope, tributary and valley gradients, valley width).
        fields: The relief's random fields.
        cell: Grid spacing (m).

    Returns:
        (target gradient, main valley-floor weight 0..1).
    """
    hill = _tan(preset.hillslope + 5.0 * fields.rough) * np.clip(1.0 + 0.3 * fields.massif, 0.6, 1.6)
    main_floor = _valley_floor(fields.main, 0.5 * preset.valley_width, cell)
    trib_floor = _valley_floor(fields.trib, 0.1 * preset.valley_width, cell)
    target = hill + (_tan(preset.tributary_gradient) - hill) * trib_floor
    target = target + (_tan(preset.valley_gradient) - target) * main_floor
    return target, main_floor


def _base_levels(
    preset: RegionPreset, tshape: tuple[int, int], main_floor: F64, massif: F64
) -> npt.NDArray[np.bool_]:
    """Outlets of the landscape: valley mouths on its edge (only the southern edge for maritime presets).

    Args:
        preset: Region preset (``sea``: maritime).
        tshape: Shape of the landscape's domain (cells).
        main_floor: Main valley-floor weight.
        massif: Massif field (inland presets also drain to valley floors where it is low).

    Returns:
        The cells from which the cost distance is measured (the whole edge if no valley reaches it).
    """
    edge = np.zeros(tshape, dtype=bool)
    if preset.sea:
        edge[-1, :] = True
    else:
        edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    valley = main_floor > 0.99
    sources = edge & valley
    if not preset.sea:  # interior base levels keep relief bounded on big scenes
        sources |= valley & (massif < -1.2)
    if not sources.any():
        sources = edge
    return sources


def _hypsometry(preset: RegionPreset, dist: F64, margin: int) -> tuple[F64, float]:
    """Elevation (m) from the cost distance, scaled and shifted so the preset's share lies above the ELA.

    Args:
        preset: Region preset (ELA, accumulation-area share, elevation range, sea fraction).
        dist: Cost distance to the outlets on the scene's coarse grid.
        margin: Coarse cells of margin around the scene (left out of the quantiles).

    Returns:
        (elevation in m, scale from cost distance to elevation).
    """
    core = dist[margin:-margin, margin:-margin]
    if preset.sea:  # the lowest part of the scene is sea (fjords) and the preset's share is above the ELA
        q_sea = float(np.quantile(core, preset.sea_fraction))
        q_ela = float(np.quantile(core, 1.0 - preset.accumulation_area))
        scale = preset.ela / max(q_ela - q_sea, 1.0)
        z: F64 = (dist - q_sea) * scale
    else:  # relief towards the preset's, then shifted so that the preset's share lies above the ELA
        scale = float(
            np.clip((preset.z_summit - preset.z_floor) / max(np.quantile(core, 0.995), 1.0), 0.8, 1.4)
        )
        z = dist * scale
        z = z + (
            preset.ela - float(np.quantile(z[margin:-margin, margin:-margin], 1.0 - preset.accumulation_area))
        )
    return z, scale


def _relief(
    preset: RegionPreset, shape: tuple[int, int], margin: int, cell: float, seed: int
) -> tuple[F64, F64]:
    """Bed elevation (m) from a prescribed-slope (eikonal) construction (module step 1).

    A target slope is set everywhere: gentle along a main valley network (the zero lines of a smooth
    random field, wavelength lambda / 4), moderate along tributaries (zero lines at lambda / 10) and steep on
    hillslopes (modulated by a massif field at lambda and rough noise). The elevation is the cost distance to
    the outlets (valley mouths on the edge of a domain of at least 0.6 lambda a side, of which the scene
    is a window; only the southern edge for maritime presets, whose valleys then drown into fjords) with
    that slope as local cost, i.e. the viscosity solution of the
    eikonal equation |grad z| = tan(slope(x)) (Sethian, *Level Set Methods*, 1999, ch. 8; solved on the
    8-neighbour grid with Dijkstra's algorithm). Every cell drains to an outlet (no pits), crests are sharp
    where the fronts meet and valley floors are gentle: a hydrologically consistent mountain landscape.

    Returns:
        (elevation in m, design slope in degrees): the design slope does not flatten as cells grow, so
        slope thresholds stay meaningful on the coarse grids of big scenes.
    """
    from skimage.graph import MCP_Geometric

    rng = np.random.default_rng([seed & 0xFFFFFFFF, 1])
    # the landscape is built on at least 0.6 lambda a side, so that a small scene is a window of it
    t_min = math.ceil(0.6 * preset.relief_wavelength / cell)
    tshape = (max(shape[0], t_min), max(shape[1], t_min))
    fields = _relief_fields(preset, tshape, cell, rng)
    target, main_floor = _target_slope(preset, fields, cell)
    sources = _base_levels(preset, tshape, main_floor, fields.massif)
    dist, _ = MCP_Geometric(target * cell).find_costs([tuple(p) for p in np.argwhere(sources)])
    dist = ndimage.gaussian_filter(dist, 1.0)
    r0 = tshape[0] - shape[0] if preset.sea else (tshape[0] - shape[0]) // 2  # maritime: keep the coast
    c0 = (tshape[1] - shape[1]) // 2
    dist = dist[r0 : r0 + shape[0], c0 : c0 + shape[1]]
    target = target[r0 : r0 + shape[0], c0 : c0 + shape[1]]
    z, scale = _hypsometry(preset, dist, margin)
    design: F64 = np.degrees(np.arctan(target * scale))
    return z, design


def ice_width(q: F64, cell: float) -> F64:
    """Glacier width W(Q) = 1 km * sqrt(Q / 1e7 m3/a), at least one cell and at most 4 km (module step 4)."""
    out: F64 = np.clip(1000.0 * np.sqrt(np.maximum(q, 0.0) / 1e7), cell, 4000.0)
    return out


def ice_thickness(q: F64) -> F64:
    """Ice thickness H(Q) = 100 m * (Q / 1e6 m3/a)**0.3, 15..600 m (module step 4)."""
    out: F64 = np.clip(100.0 * (np.maximum(q, 0.0) / 1e6) ** 0.3, 15.0, 600.0)
    return out


@dataclass
class _Flux:
    q: F64  # outgoing ice flux (m3 w.e./a)
    q_peak: F64  # largest flux upstream on the path (m3 w.e./a)
    thread: npt.NDArray[np.bool_]  # cells on which ice flows
    debris_frac: F64  # fraction of upstream cells that are debris-supplying rock walls


def _route_ice(
    levels: list[I64],
    rec: I64,
    b: F64,
    steep: npt.NDArray[np.bool_],
    rockwall: npt.NDArray[np.bool_],
    debris: F64,
    cell: float,
) -> _Flux:
    """Route the mass balance downstream (module steps 3 and 5); one pass over the topological levels."""
    n = rec.size
    area = cell * cell
    q_in = np.zeros(n)
    peak_in = np.zeros(n)
    up_in = np.zeros(n)
    rw_in = np.zeros(n)
    q = np.zeros(n)
    peak = np.zeros(n)
    thread = np.zeros(n, dtype=bool)
    frac = np.zeros(n)
    bf = b.ravel()
    steep_f = steep.ravel()
    rw_f = rockwall.ravel().astype(np.float64)
    melt_factor = 1.0 - 0.7 * debris.ravel()  # debris insulation (Ostrem 1959)
    for lev in levels:
        qi = q_in[lev]
        bl = bf[lev]
        acc = bl > 0
        width = ice_width(qi, cell)
        own = np.where(acc, bl * area, bl * melt_factor[lev] * cell * width)
        tot = qi + own
        qo = np.maximum(tot, 0.0)
        q[lev] = qo
        thread[lev] = (tot > 0) & ~steep_f[lev]
        pk = np.maximum(peak_in[lev], qo)
        peak[lev] = pk
        ups = up_in[lev] + 1.0
        rws = rw_in[lev] + rw_f[lev]
        frac[lev] = rws / ups
        r = rec[lev]
        ok = r >= 0
        r = r[ok]
        if r.size:
            np.add.at(q_in, r, qo[ok])
            np.maximum.at(peak_in, r, pk[ok])
            np.add.at(up_in, r, ups[ok])
            np.add.at(rw_in, r, rws[ok])
    shape = b.shape
    return _Flux(q.reshape(shape), peak.reshape(shape), thread.reshape(shape), frac.reshape(shape))


def _normalized_smooth(values: F64, weight: F64, sigma: float) -> F64:
    """Gaussian average of ``values`` over the cells where ``weight`` > 0 (normalised convolution)."""
    num = ndimage.gaussian_filter(values * weight, sigma)
    den = ndimage.gaussian_filter(weight, sigma)
    out: F64 = num / np.maximum(den, 1e-9)
    return out


@dataclass
class _Glaciers:
    ice: npt.NDArray[np.bool_]
    surface: F64
    debris: F64
    velocity: F64


def _glaciers(
    preset: RegionPreset,
    bed: F64,
    rec: I64,
    levels: list[I64],
    sea: npt.NDArray[np.bool_],
    design_slope: F64,
    cell: float,
) -> _Glaciers:
    """Ice extent, surface, debris cover and velocity (module steps 3 to 5)."""
    slope = slope_degrees(bed, cell)
    # cells coarser than the 40 m the thresholds were set for flatten the slopes: lean on the design slope
    w_design = float(np.clip((cell - 40.0) / 100.0, 0.0, 1.0))
    slope = slope + w_design * (np.maximum(slope, design_slope) - slope)
    b = np.minimum(preset.mb_gradient * (bed - preset.ela), preset.mb_max)
    steep = slope > _STEEP_ACCUMULATION
    rockwall = slope > _ROCKWALL
    # longitudinal slope of each flow step (degrees): debris stays on gentle tongues
    w = bed.shape[1]
    idx = np.arange(bed.size)
    ok = rec >= 0
    r = np.where(ok, rec, idx)
    step = np.hypot(r // w - idx // w, r % w - idx % w) * cell
    drop = bed.ravel() - bed.ravel()[r]
    along = np.degrees(np.arctan(np.where(ok, drop / np.maximum(step, cell), 0.0))).reshape(bed.shape)
    debris = np.zeros_like(bed)
    geo = _Glaciers(np.zeros(bed.shape, dtype=bool), bed, debris, np.zeros_like(bed))
    for _ in range(2):  # second pass: debris insulation lengthens the tongues
        flux = _route_ice(levels, rec, b, steep, rockwall & ~geo.ice, debris, cell)
        geo = _extent(preset, bed, flux, sea, along, cell)
        debris = geo.debris
    return geo


def _extent(
    preset: RegionPreset, bed: F64, flux: _Flux, sea: npt.NDArray[np.bool_], along: F64, cell: float
) -> _Glaciers:
    """Widen the flow threads into glaciers, build the ice surface and the debris cover (steps 4 and 5)."""
    thread = flux.thread & ~sea
    if not thread.any():
        zero = np.zeros_like(bed)
        return _Glaciers(np.zeros(bed.shape, dtype=bool), bed.copy(), zero, zero.copy())
    dist, (iy, ix) = ndimage.distance_transform_edt(~thread, return_indices=True)
    q_n = flux.q[iy, ix]
    width_n = ice_width(q_n, cell)
    h_n = ice_thickness(q_n)
    s_n = bed[iy, ix] + h_n - dist * cell * _LATERAL_SURFACE_SLOPE
    lateral = (dist * cell <= width_n) & (bed <= s_n) & ~sea
    ice = thread | lateral
    surf0 = np.where(ice, np.maximum(s_n, bed + 1.0), bed)
    smooth = _normalized_smooth(surf0, ice.astype(np.float64), max(1.0, 150.0 / cell))
    nunatak = ice & (bed > smooth + 25.0)
    ice &= ~nunatak
    ice = ndimage.binary_opening(ice, iterations=1) | thread & ~nunatak
    surface = np.where(ice, np.maximum(smooth, bed + 1.0), bed)
    # debris: rock-wall share of the catchment, melting out progressively below the ELA (step 5)
    below = np.clip((preset.ela - 30.0 - surface) / 270.0, 0.0, 1.0)
    gentle = np.clip((10.0 - ndimage.gaussian_filter(along, 1.0)) / 5.0, 0.0, 1.0)
    supply = preset.debris_supply * np.sqrt(flux.debris_frac) * gentle
    cover = np.where(ice, np.clip(3.5 * supply[iy, ix] * below, 0.0, 1.0), 0.0)
    cover = np.where(ice, ndimage.gaussian_filter(cover, 1.0), 0.0)
    # surface velocity: flux over cross-section, parabolic across the glacier
    q_w = np.maximum(q_n, 0.0) / 0.9  # m3 ice per year
    v_centre = q_w / np.maximum(width_n * h_n, 1.0) * 1.25
    across = np.clip(1.0 - (dist * cell / np.maximum(0.5 * width_n, cell)) ** 2, 0.1, 1.0)
    velocity = np.where(ice, v_centre * across, 0.0)
    return _Glaciers(ice, surface, cover, velocity)


def _glacier_ids(ice: npt.NDArray[np.bool_], surface: F64, h: float) -> tuple[npt.NDArray[np.int32], int]:
    """Split the ice into glaciers at ice divides: watershed of the surface from its h-minima (step 6)."""
    from skimage.morphology import h_minima
    from skimage.segmentation import watershed

    if not ice.any():
        return np.zeros(ice.shape, dtype=np.int32), 0
    top = float(surface.max()) + 10.0 * h + 1.0
    img = np.where(ice, surface, top)
    minima = h_minima(img, h) & ice
    markers, n = ndimage.label(minima, structure=np.ones((3, 3)))
    labels = watershed(img, markers, mask=ice, connectivity=2)
    # components without a marker (cannot happen for connected ice, but be safe): label them separately
    orphan = ice & (labels == 0)
    if orphan.any():
        extra, k = ndimage.label(orphan, structure=np.ones((3, 3)))
        labels = np.where(orphan, extra + n, labels)
        n += k
    return labels.astype(np.int32), int(n)


def _cast_shadow(surface: F64, cell: float, azimuth: float, elevation: float) -> F64:
    """Cast shadow (1 = shadowed) by marching from each cell towards the sun (step 8)."""
    h, w = surface.shape
    tan_e = math.tan(math.radians(max(elevation, 1.0)))
    d_row = -math.cos(math.radians(azimuth))
    d_col = math.sin(math.radians(azimuth))
    relief = float(surface.max() - surface.min())
    max_steps = min(int(relief / (tan_e * cell)) + 1, int(math.hypot(h, w)))
    shadow = np.zeros(surface.shape, dtype=bool)
    step = 1
    while step <= max_steps:
        dy, dx = round(step * d_row), round(step * d_col)
        dist = math.hypot(dy, dx) * cell
        nb = neighbour(surface, dy, dx, -np.inf)
        shadow |= nb > surface + dist * tan_e
        step += max(1, step // 12)
    return shadow.astype(np.float64)


def _sea(preset: RegionPreset, bed: F64, edge: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Sea: land below sea level connected to the domain edge (maritime presets only, module step 7).

    Args:
        preset: Region preset (``sea``: maritime).
        bed: Bed elevation (m).
        edge: The domain's edge cells.

    Returns:
        The sea mask (all False for inland presets).
    """
    if not preset.sea:
        return np.zeros(bed.shape, dtype=bool)
    below, _ = ndimage.label(bed < 0.0)
    touching = np.unique(below[edge & (below > 0)])
    sea: npt.NDArray[np.bool_] = np.isin(below, touching[touching > 0])
    return sea


def _routing(bed: F64, outlet: npt.NDArray[np.bool_], cell: float) -> tuple[F64, I64, list[I64]]:
    """Fill the depressions, drain the flats and route every cell to its D8 receiver (module step 2).

    Args:
        bed: Bed elevation (m).
        outlet: Cells that drain out of the domain (edge, sea).
        cell: Grid spacing (m).

    Returns:
        (plain, receivers, levels): the bed with closed depressions turned into plains, the D8 receiver of
        every cell (:func:`~glaciermap.synthetic.hydrology.d8_receivers`) and the topological levels.
    """
    filled = fill_depressions(bed, outlet)
    # closed depressions become gently sloping plains (1.5 %) draining to their spill points
    plain = drain_flats(filled, outlet, rise=0.015 * cell)
    routing = drain_flats(plain, outlet)
    rec = d8_receivers(routing, outlet, cell)
    return plain, rec, topological_levels(rec)


def _nearest_glacier(glacier_id: npt.NDArray[np.int32], n_glaciers: int) -> npt.NDArray[np.int32]:
    """The id of the nearest glacier at every cell (unchanged if there is no glacier)."""
    if not n_glaciers:
        return glacier_id
    _, (iy, ix) = ndimage.distance_transform_edt(glacier_id == 0, return_indices=True)
    out: npt.NDArray[np.int32] = glacier_id[iy, ix]
    return out


@dataclass
class _Water:
    """Lakes and sea, and the surface they make with the ice and the land.

    Attributes:
        mask: Lake or sea cells.
        surface: Surface elevation (m): ice surface, sea level 0, lake level or the drained plain.
        level: Water level (m) of the nearest lake or sea cell, at every cell.
    """

    mask: npt.NDArray[np.bool_]
    surface: F64
    level: F64


def _water(
    preset: RegionPreset,
    plain: F64,
    geo: _Glaciers,
    sea: npt.NDArray[np.bool_],
    margin: int,
    cell: float,
    rng: np.random.Generator,
) -> _Water:
    """Add the lakes (:func:`~glaciermap.synthetic.hydrology.lakes`) to the sea and build the surface.

    Args:
        preset: Region preset.
        plain: Bed with drained depressions (m).
        geo: The glaciers.
        sea: Sea cells.
        margin: Coarse cells of margin (no lake centre there).
        cell: Grid spacing (m).
        rng: The scene's generator for lakes, lithology and snow patches (lakes draw first).

    Returns:
        The water.
    """
    lake, lake_level = lakes(preset, plain, geo.ice, sea, margin, cell, rng)
    water = lake | sea
    surface = np.where(geo.ice, geo.surface, np.where(sea, 0.0, np.where(lake, lake_level, plain)))
    if water.any():
        _, (wy, wx) = ndimage.distance_transform_edt(~water, return_indices=True)
        level_fill = np.where(sea, 0.0, lake_level)[wy, wx]
    else:
        level_fill = np.zeros_like(plain)
    return _Water(water, surface, level_fill)


def _melange(preset: RegionPreset, geo: _Glaciers, sea: npt.NDArray[np.bool_], cell: float) -> F64:
    """Ice melange: calving flux from ice fronts touching the sea, spread by currents (module step 7).

    Args:
        preset: Region preset (``sea`` and ``melange`` density).
        geo: The glaciers (extent and velocity).
        sea: Sea cells.
        cell: Grid spacing (m).

    Returns:
        Melange fraction 0..1 on the sea, 0 elsewhere.
    """
    if not (preset.sea and preset.melange > 0 and geo.ice.any()):
        return np.zeros_like(geo.surface)
    _, (jy, jx) = ndimage.distance_transform_edt(~geo.ice, return_indices=True)
    front = ndimage.binary_dilation(geo.ice, structure=np.ones((3, 3))) & sea
    strength = front * np.sqrt(np.maximum(geo.velocity[jy, jx], 1.0))
    near = ndimage.gaussian_filter(strength, 500.0 / cell) * (500.0 / cell) ** 2
    far = ndimage.gaussian_filter(strength, 1500.0 / cell) * (1500.0 / cell) ** 2
    dens = 1.0 - np.exp(-(near + 0.3 * far) / 8.0)
    out: F64 = np.where(sea, preset.melange * dens, 0.0)
    return out


def _cloud(shape: tuple[int, int], seed: int, cell: float, clouds: bool) -> F64:
    """Thin-cloud optical depth 0..0.7 from its own random stream (zero without clouds, module step 8)."""
    if not clouds:
        return np.zeros(shape)
    cloud_rng = np.random.default_rng([seed & 0xFFFFFFFF, 3])  # own stream: clouds change nothing else
    c = spectral_field(shape, cloud_rng, cell, 3.0, 5000.0)
    out: F64 = np.clip((c - 0.45) * 0.6, 0.0, 0.7)
    return out


def _snow_potential(
    preset: RegionPreset,
    surface: F64,
    covered: npt.NDArray[np.bool_],
    sun: tuple[float, float],
    cell: float,
    rng: np.random.Generator,
) -> F64:
    """Seasonal-snow potential: high, shaded, concave terrain outside glaciers and water (module step 8).

    Args:
        preset: Region preset (ELA, ``snow_patches``).
        surface: Surface elevation (m).
        covered: Ice or water cells (potential -1).
        sun: (azimuth, elevation) in degrees.
        cell: Grid spacing (m).
        rng: The scene's generator (draws the patch field).

    Returns:
        The potential; the fine stage draws snow where it exceeds 0.5 (with noise).
    """
    az, el = sun
    gy, gx = np.gradient(surface, cell)
    slope_r = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(-gx, gy)  # downslope direction, clockwise from north
    sun_az, sun_zen = math.radians(az), math.radians(90.0 - el)
    cos_i = np.cos(sun_zen) * np.cos(slope_r) + np.sin(sun_zen) * np.sin(slope_r) * np.cos(sun_az - aspect)
    concave = ndimage.gaussian_filter(surface, 300.0 / cell) - surface
    snow_elev = 1.0 / (1.0 + np.exp(-(surface - (preset.ela - 300.0)) / 120.0))
    patches = spectral_field(surface.shape, rng, cell, 2.5, 1200.0)
    shade = 1.0 - np.clip(cos_i / max(math.sin(math.radians(el)), 0.2), 0.0, 1.0)
    hollow = np.clip(concave / 60.0, 0.0, 1.0)
    snowpot = snow_elev * (0.25 + 0.35 * shade + 0.2 * hollow + 0.3 * patches) + preset.snow_patches - 0.25
    out: F64 = np.where(covered, -1.0, snowpot)
    return out


def _moraine(preset: RegionPreset, geo: _Glaciers, water: _Water, cell: float) -> F64:
    """Moraine: ice-free land within 300 m of the ice and below ELA + 100 m (fraction 0..1)."""
    if geo.ice.any():
        near_ice = ndimage.distance_transform_edt(~geo.ice) * cell
    else:
        near_ice = np.full(geo.ice.shape, np.inf)
    out: F64 = np.where(
        ~geo.ice & ~water.mask & (water.surface < preset.ela + 100.0),
        np.clip(1.0 - near_ice / 300.0, 0, 1),
        0.0,
    )
    return out


def build_coarse_world(
    preset: RegionPreset,
    height: int,
    width: int,
    pixel_size: float,
    seed: int,
    sun: tuple[float, float],
    clouds: bool,
) -> CoarseWorld:
    """Run the coarse stage for one scene.

    Args:
        preset: Region preset.
        height: Scene rows (pixels).
        width: Scene columns (pixels).
        pixel_size: Pixel size (m).
        seed: Scene seed.
        sun: (azimuth, elevation) in degrees.
        clouds: Whether to make a thin-cloud field (otherwise the cloud field is zero).

    Returns:
        The coarse world.
    """
    factor, margin, cell, hc, wc = coarse_layout(height, width, pixel_size)
    bed, design_slope = _relief(preset, (hc, wc), margin, cell, seed)
    edge = np.zeros(bed.shape, dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    sea = _sea(preset, bed, edge)
    plain, rec, levels = _routing(bed, edge | sea, cell)
    geo = _glaciers(preset, plain, rec, levels, sea, design_slope, cell)
    glacier_id, n_glaciers = _glacier_ids(geo.ice, geo.surface, h=25.0)
    # one generator for lakes, lithology and snow patches, drawn in this order
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 2])
    water = _water(preset, plain, geo, sea, margin, cell, rng)
    litho = ndtr(spectral_field(bed.shape, rng, cell, 2.6, 3000.0) * 1.3)
    snowpot = _snow_potential(preset, water.surface, geo.ice | water.mask, sun, cell, rng)
    fields = {
        "surface": water.surface,
        "ice": geo.ice.astype(np.float64),
        "debris": geo.debris,
        "water": water.mask.astype(np.float64),
        "sea": sea.astype(np.float64),
        "melange": _melange(preset, geo, sea, cell),
        "velocity": geo.velocity,
        "shadow": _cast_shadow(water.surface, cell, *sun),
        "cloud": _cloud(bed.shape, seed, cell, clouds),
        "litho": litho,
        "snowpot": snowpot,
        "moraine": _moraine(preset, geo, water, cell),
    }
    return CoarseWorld(
        factor=factor,
        margin=margin,
        cell=cell,
        fields={k: v.astype(np.float32) for k, v in fields.items()},
        glacier_id=_nearest_glacier(glacier_id, n_glaciers).astype(np.int32),
        water_level=water.level.astype(np.float32),
        n_glaciers=n_glaciers,
        sun_azimuth=sun[0],
        sun_elevation=sun[1],
    )
