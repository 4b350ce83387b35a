"""Coarse stage of the synthetic glacier world: terrain, flow routing, glaciers, debris, lakes, sea.

Everything that needs the whole scene at once is decided here, on a coarse grid of ``factor`` x ``factor``
pixels per cell (so at most :data:`MAX_COARSE_SIDE` cells a side whatever the scene size, which bounds memory).
The fine stage (:mod:`glaciermap.synthetic.render`) evaluates these fields at each pixel with a cubic
B-spline and adds pixel-scale detail. The physics (see ``docs/synthetic_world.md``):

1. Relief: a fractional Brownian surface plus a ridged component (sharp aretes), mapped through a hypsometric
   transform z = z_floor + (z_summit - z_floor) * Phi(h)**p (broad gentle valley floors, steep summits).
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
7. Proglacial lakes and tarns dammed on gentle ground, mostly near glacier fronts; in maritime presets land below sea level
   connected to the domain edge is sea, ice reaching it calves, and ice melange spreads from the fronts.
8. Cast shadows by ray marching towards the sun; thin cloud, lithology and seasonal-snow potential fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.special import ndtr

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
    lam = preset.relief_wavelength
    # the landscape is built on at least 0.6 lambda a side, so that a small scene is a window of it
    t_min = math.ceil(0.6 * lam / cell)
    tshape = (max(shape[0], t_min), max(shape[1], t_min))
    n_min = math.ceil(1.6 * lam / cell)
    gy = 16 * math.ceil(max(tshape[0], n_min) / 16)
    gx = 16 * math.ceil(max(tshape[1], n_min) / 16)
    crop = (slice(0, tshape[0]), slice(0, tshape[1]))
    massif = spectral_field((gy, gx), rng, cell, 4.0, lam)[crop]
    main = spectral_field((gy, gx), rng, cell, 4.0, lam / 4.0)[crop]
    trib = spectral_field((gy, gx), rng, cell, 4.0, lam / 10.0)[crop]
    rough = spectral_field((gy, gx), rng, cell, 3.0, lam / 20.0)[crop]

    def tan(deg: F64 | float) -> F64:
        out: F64 = np.tan(np.radians(deg))
        return out

    hill = tan(preset.hillslope + 5.0 * rough) * np.clip(1.0 + 0.3 * massif, 0.6, 1.6)

    def floor(field_: F64, half_width: float) -> F64:
        """1 on the floor of the valley along the zero line of ``field_``, 0 beyond ``half_width`` (m)."""
        line = np.zeros(field_.shape, dtype=bool)
        pos = field_ > 0
        line[:-1] |= pos[:-1] != pos[1:]
        line[:, :-1] |= pos[:, :-1] != pos[:, 1:]
        d = ndimage.distance_transform_edt(~line) * cell
        t = np.clip((d - 0.4 * half_width) / (0.6 * half_width), 0.0, 1.0)
        out: F64 = 1.0 - t * t * (3.0 - 2.0 * t)
        return out

    main_floor = floor(main, 0.5 * preset.valley_width)
    target = hill + (tan(preset.tributary_gradient) - hill) * floor(trib, 0.1 * preset.valley_width)
    target = target + (tan(preset.valley_gradient) - target) * main_floor
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
    dist, _ = MCP_Geometric(target * cell).find_costs([tuple(p) for p in np.argwhere(sources)])
    dist = ndimage.gaussian_filter(dist, 1.0)
    r0 = tshape[0] - shape[0] if preset.sea else (tshape[0] - shape[0]) // 2  # maritime: keep the coast
    c0 = (tshape[1] - shape[1]) // 2
    dist = dist[r0 : r0 + shape[0], c0 : c0 + shape[1]]
    target = target[r0 : r0 + shape[0], c0 : c0 + shape[1]]
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
    design: F64 = np.degrees(np.arctan(target * scale))
    return z, design


def slope_degrees(z: F64, cell: float) -> F64:
    """Slope (degrees) by central differences (one-sided at the edges).

    Args:
        z: Elevation (m), shape (H, W).
        cell: Grid spacing (m).

    Returns:
        Slope in degrees, shape (H, W).
    """
    gy, gx = np.gradient(z, cell)
    out: F64 = np.degrees(np.arctan(np.hypot(gx, gy)))
    return out


def _fill_depressions(z: F64, outlet: npt.NDArray[np.bool_]) -> F64:
    """Fill closed depressions by reconstruction by erosion from the outlets (module step 2)."""
    from skimage.morphology import reconstruction

    seed = np.where(outlet, z, z.max() + 1.0)
    filled: F64 = reconstruction(seed, z, method="erosion")
    return np.maximum(filled, z)


_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _neighbour(a: F64, dy: int, dx: int, fill: float) -> F64:
    """``a`` shifted so that out[i, j] = a[i + dy, j + dx] (``fill`` outside)."""
    out = np.full_like(a, fill)
    h, w = a.shape
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = a[
        max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)
    ]
    return out


def _drain_flats(filled: F64, outlet: npt.NDArray[np.bool_], rise: float = 1e-4) -> F64:
    """Give flats a gradient towards their spill cells (geodesic distance; Garbrecht and Martz 1997).

    Args:
        filled: Elevation with depressions filled (m).
        outlet: Cells that drain out of the domain.
        rise: Elevation added per cell of geodesic distance from the spill cell (m).

    Returns:
        The elevation with every flat draining to its spill cell.
    """
    from skimage.graph import MCP_Geometric

    lower = np.zeros(filled.shape, dtype=bool)
    for dy, dx in _OFFSETS:
        lower |= _neighbour(filled, dy, dx, np.inf) < filled
    flat = ~lower & ~outlet
    if not flat.any():
        return filled
    # cells of a flat region that touch a lower cell: a flat cell's equal-height neighbour with an exit
    equal_nb = np.zeros(filled.shape, dtype=bool)
    flat_level = np.where(flat, filled, np.nan)
    for dy, dx in _OFFSETS:
        equal_nb |= _neighbour(flat_level, dy, dx, np.nan) == filled
    spill = ~flat & equal_nb
    region = flat | spill
    costs = np.where(region, 1.0, np.inf)
    starts = np.argwhere(spill)
    if starts.size == 0:
        return filled
    mcp = MCP_Geometric(costs)
    dist, _ = mcp.find_costs([tuple(p) for p in starts])
    dist = np.where(np.isfinite(dist) & flat, dist, 0.0)
    return filled + rise * dist


def d8_receivers(z: F64, outlet: npt.NDArray[np.bool_], cell: float) -> I64:
    """Steepest-descent (D8) receiver of every cell (O'Callaghan and Mark 1984).

    Args:
        z: Routing elevation (m), shape (H, W).
        outlet: Cells that drain out of the domain (edge, sea); they get no receiver.
        cell: Grid spacing (m).

    Returns:
        Flat index of the receiver of every cell, -1 for outlets and pits, shape (H*W,).
    """
    h, w = z.shape
    best = np.zeros(z.shape)
    rec = np.full(z.shape, -1, dtype=np.int64)
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    for dy, dx in _OFFSETS:
        nb = _neighbour(z, dy, dx, np.inf)
        drop = (z - nb) / (cell * math.hypot(dy, dx))
        better = drop > best
        best = np.where(better, drop, best)
        rec = np.where(better, idx + dy * w + dx, rec)
    rec[outlet] = -1
    out: I64 = rec.ravel()
    return out


def topological_levels(rec: I64) -> list[I64]:
    """Group cells into levels so that every cell comes after all cells draining into it (Kahn's algorithm).

    Args:
        rec: Receiver of every cell (-1 for none), shape (N,).

    Returns:
        Index arrays, one per level, upstream first.
    """
    n = rec.size
    has = rec >= 0
    indeg = np.bincount(rec[has], minlength=n)
    frontier = np.flatnonzero(indeg == 0)
    levels: list[I64] = []
    while frontier.size:
        levels.append(frontier)
        r = rec[frontier]
        r = r[r >= 0]
        if r.size == 0:
            break
        u, cnt = np.unique(r, return_counts=True)
        indeg[u] -= cnt
        frontier = u[indeg[u] == 0]
    return levels


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


def _lakes(
    preset: RegionPreset,
    z: F64,
    ice: npt.NDArray[np.bool_],
    sea: npt.NDArray[np.bool_],
    margin: int,
    cell: float,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.bool_], F64]:
    """Proglacial lakes and tarns on gentle ice-free ground (module step 7).

    Lakes are dammed (moraines, bedrock sills): each is a disc of radius 60-250 m, with a ragged shore,
    around a seeded centre, flooded up to 2 m above the ground at the centre. Centres are drawn with
    probability proportional to gentle (< 8 degrees) ice-free ground below ELA + 200 m, five times more
    near glacier fronts (< 600 m), ``lake_density`` per km2 on average.

    Returns:
        (lake mask, water level in m where there is a lake).
    """
    lake = np.zeros(z.shape, dtype=bool)
    level = np.zeros_like(z)
    slope = slope_degrees(z, cell)
    ok = ~ice & ~sea & (slope < 8.0) & (z < preset.ela + 200.0)
    ok[:margin, :] = ok[-margin:, :] = ok[:, :margin] = ok[:, -margin:] = False
    if not ok.any() or preset.lake_density <= 0:
        return lake, level
    near = ndimage.distance_transform_edt(~ice) * cell < 600.0 if ice.any() else np.zeros_like(ok)
    weight = np.where(ok, 1.0 + 4.0 * near, 0.0).ravel()
    area_km2 = (z.shape[0] - 2 * margin) * (z.shape[1] - 2 * margin) * cell * cell / 1e6
    n = min(int(rng.poisson(preset.lake_density * area_km2)), int(ok.sum()))
    if n == 0:
        return lake, level
    centres: I64 = rng.choice(weight.size, size=n, replace=False, p=weight / weight.sum())
    radii = rng.uniform(60.0, 250.0, size=len(centres))
    wobble = rng.uniform(0.0, 2.0 * math.pi, size=(len(centres), 3))
    for k, (c, radius) in enumerate(zip(centres, radii, strict=True)):
        cy, cx = divmod(int(c), z.shape[1])
        rc = math.ceil(1.4 * radius / cell) + 1
        ys = slice(max(cy - rc, 0), min(cy + rc + 1, z.shape[0]))
        xs = slice(max(cx - rc, 0), min(cx + rc + 1, z.shape[1]))
        yy, xx = np.mgrid[ys, xs]
        ang = np.arctan2(yy - cy, xx - cx)
        shore = radius * (1.0 + 0.25 * np.sin(2 * ang + wobble[k, 0]) + 0.15 * np.sin(3 * ang + wobble[k, 1]))
        lvl = z[cy, cx] + 2.0
        disc = (np.hypot(yy - cy, xx - cx) * cell <= shore) & (z[ys, xs] <= lvl) & ok[ys, xs]
        lake[ys, xs] |= disc
        level[ys, xs] = np.where(disc, lvl, level[ys, xs])
    return lake, level


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
        nb = _neighbour(surface, dy, dx, -np.inf)
        shadow |= nb > surface + dist * tan_e
        step += max(1, step // 12)
    return shadow.astype(np.float64)


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
    if preset.sea:
        below, _ = ndimage.label(bed < 0.0)
        touching = np.unique(below[edge & (below > 0)])
        sea = np.isin(below, touching[touching > 0])
    else:
        sea = np.zeros(bed.shape, dtype=bool)
    outlet = edge | sea
    filled = _fill_depressions(bed, outlet)
    # closed depressions become gently sloping plains (1.5 %) draining to their spill points
    plain = _drain_flats(filled, outlet, rise=0.015 * cell)
    routing = _drain_flats(plain, outlet)
    rec = d8_receivers(routing, outlet, cell)
    levels = topological_levels(rec)
    geo = _glaciers(preset, plain, rec, levels, sea, design_slope, cell)
    ice = geo.ice
    glacier_id, n_glaciers = _glacier_ids(ice, geo.surface, h=25.0)
    if n_glaciers:
        _, (iy, ix) = ndimage.distance_transform_edt(glacier_id == 0, return_indices=True)
        id_fill = glacier_id[iy, ix]
    else:
        id_fill = glacier_id

    rng = np.random.default_rng([seed & 0xFFFFFFFF, 2])
    lake, lake_level = _lakes(preset, plain, ice, sea, margin, cell, rng)
    water = lake | sea
    surface = np.where(ice, geo.surface, np.where(sea, 0.0, np.where(lake, lake_level, plain)))
    if water.any():
        _, (wy, wx) = ndimage.distance_transform_edt(~water, return_indices=True)
        level_fill = np.where(sea, 0.0, lake_level)[wy, wx]
    else:
        level_fill = np.zeros_like(bed)
    # melange: calving flux from ice fronts touching the sea, spread by currents (step 7)
    melange = np.zeros_like(bed)
    if ice.any():
        dist_ice, (jy, jx) = ndimage.distance_transform_edt(~ice, return_indices=True)
        near_ice = dist_ice * cell
    else:
        near_ice = np.full(bed.shape, np.inf)
    if preset.sea and preset.melange > 0 and ice.any():
        front = ndimage.binary_dilation(ice, structure=np.ones((3, 3))) & sea
        strength = front * np.sqrt(np.maximum(geo.velocity[jy, jx], 1.0))
        near = ndimage.gaussian_filter(strength, 500.0 / cell) * (500.0 / cell) ** 2
        far = ndimage.gaussian_filter(strength, 1500.0 / cell) * (1500.0 / cell) ** 2
        dens = 1.0 - np.exp(-(near + 0.3 * far) / 8.0)
        melange = np.where(sea, preset.melange * dens, 0.0)
    az, el = sun
    shadow = _cast_shadow(surface, cell, az, el)
    if clouds:
        cloud_rng = np.random.default_rng([seed & 0xFFFFFFFF, 3])  # own stream: clouds change nothing else
        c = spectral_field(bed.shape, cloud_rng, cell, 3.0, 5000.0)
        cloud = np.clip((c - 0.45) * 0.6, 0.0, 0.7)
    else:
        cloud = np.zeros_like(bed)
    litho = ndtr(spectral_field(bed.shape, rng, cell, 2.6, 3000.0) * 1.3)
    # seasonal snow: high, shaded, concave terrain outside glaciers
    gy, gx = np.gradient(surface, cell)
    slope_r = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(-gx, gy)  # downslope direction, clockwise from north
    sun_az, sun_zen = math.radians(az), math.radians(90.0 - el)
    cos_i = np.cos(sun_zen) * np.cos(slope_r) + np.sin(sun_zen) * np.sin(slope_r) * np.cos(sun_az - aspect)
    concave = ndimage.gaussian_filter(surface, 300.0 / cell) - surface
    snow_elev = 1.0 / (1.0 + np.exp(-(surface - (preset.ela - 300.0)) / 120.0))
    patches = spectral_field(bed.shape, rng, cell, 2.5, 1200.0)
    shade = 1.0 - np.clip(cos_i / max(math.sin(math.radians(el)), 0.2), 0.0, 1.0)
    hollow = np.clip(concave / 60.0, 0.0, 1.0)
    snowpot = snow_elev * (0.25 + 0.35 * shade + 0.2 * hollow + 0.3 * patches) + preset.snow_patches - 0.25
    snowpot = np.where(ice | water, -1.0, snowpot)
    moraine = np.where(
        ~ice & ~water & (surface < preset.ela + 100.0), np.clip(1.0 - near_ice / 300.0, 0, 1), 0.0
    )

    fields = {
        "surface": surface,
        "ice": ice.astype(np.float64),
        "debris": geo.debris,
        "water": water.astype(np.float64),
        "sea": sea.astype(np.float64),
        "melange": melange,
        "velocity": geo.velocity,
        "shadow": shadow,
        "cloud": cloud,
        "litho": litho,
        "snowpot": snowpot,
        "moraine": moraine,
    }
    return CoarseWorld(
        factor=factor,
        margin=margin,
        cell=cell,
        fields={k: v.astype(np.float32) for k, v in fields.items()},
        glacier_id=id_fill.astype(np.int32),
        water_level=level_fill.astype(np.float32),
        n_glaciers=n_glaciers,
        sun_azimuth=az,
        sun_elevation=el,
    )
