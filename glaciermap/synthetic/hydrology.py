"""Hydrology of the coarse synthetic world: depressions, flats, D8 flow routing and lakes.

:func:`glaciermap.synthetic.terrain.build_coarse_world` routes ice and water with these functions (its
module steps 2 and 7, see ``docs/synthetic_world.md``):

* :func:`fill_depressions`: closed depressions are filled by morphological reconstruction (Soille,
  *Morphological Image Analysis*, 2004, sec. 6.3.4);
* :func:`drain_flats`: flats get a gradient along their geodesic distance to the spill point (Garbrecht and
  Martz 1997);
* :func:`d8_receivers`: every cell drains to the steepest of its eight neighbours (D8; O'Callaghan and
  Mark 1984);
* :func:`topological_levels`: cells grouped so that every cell comes after all cells draining into it
  (Kahn's algorithm, vectorised level by level);
* :func:`lakes`: proglacial lakes and tarns dammed on gentle ice-free ground.

:func:`neighbour` (a shifted grid) and :func:`slope_degrees` are the grid helpers they share with the
terrain.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from glaciermap.synthetic.noise import F64, I64
from glaciermap.synthetic.presets import RegionPreset


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


_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
"""Offsets (dy, dx) of the eight neighbours of a cell, in the order D8 ties are broken."""


def neighbour(a: F64, dy: int, dx: int, fill: float) -> F64:
    """``a`` shifted so that out[i, j] = a[i + dy, j + dx] (``fill`` outside)."""
    out = np.full_like(a, fill)
    h, w = a.shape
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = a[
        max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)
    ]
    return out


def fill_depressions(z: F64, outlet: npt.NDArray[np.bool_]) -> F64:
    """Fill closed depressions by reconstruction by erosion from the outlets (terrain module step 2)."""
    from skimage.morphology import reconstruction

    seed = np.where(outlet, z, z.max() + 1.0)
    filled: F64 = reconstruction(seed, z, method="erosion")
    return np.maximum(filled, z)


def drain_flats(filled: F64, outlet: npt.NDArray[np.bool_], rise: float = 1e-4) -> F64:
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
        lower |= neighbour(filled, dy, dx, np.inf) < filled
    flat = ~lower & ~outlet
    if not flat.any():
        return filled
    # cells of a flat region that touch a lower cell: a flat cell's equal-height neighbour with an exit
    equal_nb = np.zeros(filled.shape, dtype=bool)
    flat_level = np.where(flat, filled, np.nan)
    for dy, dx in _OFFSETS:
        equal_nb |= neighbour(flat_level, dy, dx, np.nan) == filled
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
        nb = neighbour(z, dy, dx, np.inf)
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


def lakes(
    preset: RegionPreset,
    z: F64,
    ice: npt.NDArray[np.bool_],
    sea: npt.NDArray[np.bool_],
    margin: int,
    cell: float,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.bool_], F64]:
    """Proglacial lakes and tarns on gentle ice-free ground (terrain module step 7).

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
