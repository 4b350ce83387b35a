"""Cleaning a class raster before and after the ice divides: median filter, minimum area, slivers.

* :func:`median_filter_classes`: the optional median filter applied before vectorising (GlaViTU reference,
  ``glavitu-reference.md`` 5.1/5.8, the only smoothing of its outlines).
* :func:`label_complexes`: connected glacier regions (4-connectivity, as the polygoniser) screened by a
  minimum area (the Karakoram inventory kept glaciers >= 0.005 km2, Karakoram paper section 4.1; our
  default is 0.01 km2).
* :func:`merge_slivers`: the sliver filter of the authors' ice-divide code (``glavitu-reference.md`` 9.1):
  a part is a sliver if its area is < 1e5 m2, or < 2e5 m2 with compactness ``2 sqrt(pi A) / P < 0.5``;
  touching slivers are joined, and each group is merged into the non-sliver neighbour that shares the
  longest boundary with it (groups without such a neighbour stay as they are).

Everything works on rasters: for regions traced along pixel edges (as ``rasterio.features.shapes`` does)
the area is the sum of the pixel areas and the perimeter and shared boundary lengths are sums of pixel
edge lengths, exactly the values the vector code computes from the polygons.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.ndimage as ndi
import skimage.measure

from glaciermap.constants import BACKGROUND, CLEAN_ICE, DEBRIS_ICE, IGNORE_INDEX

FOUR_CONNECTED = ndi.generate_binary_structure(2, 1)
"""Structuring element of 4-connectivity (pixels sharing an edge)."""


def median_filter_classes(
    classes: npt.NDArray[np.uint8], size: int, strip_rows: int = 1024
) -> npt.NDArray[np.uint8]:
    """Median-filter a class map: first the glacier mask, then the debris mask inside the new glaciers.

    For a binary mask the median over an odd ``size x size`` window is the majority vote, computed here
    exactly from integer box sums. Nodata pixels (255) count as non-glacier in the windows and stay
    nodata. Processed in strips of ``strip_rows`` rows with a halo, so memory stays bounded.

    Args:
        classes: uint8 classes 0/1/2 with 255 nodata, shape (H, W).
        size: Odd window size in pixels (>= 3).
        strip_rows: Rows processed at a time.

    Returns:
        The filtered classes (a new array).
    """
    half = size // 2
    need = size * size // 2 + 1
    out = np.empty_like(classes)
    h = classes.shape[0]
    for r0 in range(0, h, strip_rows):
        r1 = min(h, r0 + strip_rows)
        a0, a1 = max(0, r0 - half), min(h, r1 + half)
        block = classes[a0:a1]
        glacier = _box_count((block == CLEAN_ICE) | (block == DEBRIS_ICE), size) >= need
        debris = _box_count(block == DEBRIS_ICE, size) >= need
        res = np.where(glacier, np.where(debris, DEBRIS_ICE, CLEAN_ICE), BACKGROUND).astype(np.uint8)
        res[block == IGNORE_INDEX] = IGNORE_INDEX
        out[r0:r1] = res[r0 - a0 : r0 - a0 + (r1 - r0)]
    return out


def _box_count(mask: npt.NDArray[np.bool_], size: int) -> npt.NDArray[np.uint16]:
    """Number of True pixels in the ``size x size`` window around every pixel (zero outside)."""
    ones = np.ones(size, dtype=np.uint16)
    m = mask.astype(np.uint16)
    m = ndi.correlate1d(m, ones, axis=0, mode="constant", cval=0)
    out: npt.NDArray[np.uint16] = ndi.correlate1d(m, ones, axis=1, mode="constant", cval=0)
    return out


def label_complexes(
    classes: npt.NDArray[np.uint8],
    row_area_m2: npt.NDArray[np.float64],
    min_area_km2: float,
    strip_rows: int = 1024,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]:
    """Label connected glacier regions (classes 1 and 2) and drop those smaller than a minimum area.

    Args:
        classes: uint8 classes, shape (H, W).
        row_area_m2: Ground area of a pixel of each row, m2, shape (H,).
        min_area_km2: Regions with a smaller area (km2) are removed.
        strip_rows: Rows processed at a time when measuring areas and relabelling.

    Returns:
        ``(labels, areas_km2)``: int32 labels 1..K of the kept regions (0 elsewhere), numbered in raster
        scan order of their first pixel, and their areas in km2 (``areas_km2[k - 1]`` for label k).
    """
    mask = (classes == CLEAN_ICE) | (classes == DEBRIS_ICE)
    labels = np.empty(classes.shape, dtype=np.int32)
    n = int(ndi.label(mask, structure=FOUR_CONNECTED, output=labels))
    del mask
    h = classes.shape[0]
    area = np.zeros(n + 1, dtype=np.float64)
    const = bool(np.all(row_area_m2 == row_area_m2[0]))
    for r0 in range(0, h, strip_rows):
        strip = labels[r0 : r0 + strip_rows]
        if const:
            area += np.bincount(strip.ravel(), minlength=n + 1) * float(row_area_m2[0])
        else:
            weights = np.repeat(row_area_m2[r0 : r0 + strip.shape[0]], strip.shape[1])
            area += np.bincount(strip.ravel(), weights=weights, minlength=n + 1)
    area /= 1e6
    keep = area >= min_area_km2
    keep[0] = False
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    for r0 in range(0, h, strip_rows):
        labels[r0 : r0 + strip_rows] = lut[labels[r0 : r0 + strip_rows]]
    return labels, area[keep]


def split_disconnected(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.int32]:
    """Give every 4-connected piece of every label its own label 1..n (0 stays background).

    Args:
        labels: Integer labels, shape (H, W).

    Returns:
        int32 labels in which each label is one 4-connected region.
    """
    out: npt.NDArray[np.int32] = skimage.measure.label(labels, background=0, connectivity=1).astype(np.int32)
    return out


def region_geometry(
    labels: npt.NDArray[np.integer],
    row_area_m2: npt.NDArray[np.float64],
    row_dx_m: npt.NDArray[np.float64],
    row_dy_m: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], dict[tuple[int, int], float]]:
    """Area, perimeter and shared boundary lengths of the regions of a label raster.

    Args:
        labels: Labels 0..n (0 background), shape (H, W).
        row_area_m2: Pixel area of each row, m2, shape (H,).
        row_dx_m: Pixel width of each row, m, shape (H,).
        row_dy_m: Pixel height of each row, m, shape (H,).

    Returns:
        ``(area_m2, perimeter_m, shared_m)``: arrays indexed by label (length n + 1; index 0 unused) and a
        dict mapping a label pair ``(u, v)`` with ``u < v`` to the length of their common boundary, m.
        Perimeters include the boundaries of holes and of the raster's edge.
    """
    lab = np.asarray(labels, dtype=np.int32)
    n = int(lab.max(initial=0))
    w = lab.shape[1]
    area: npt.NDArray[np.float64] = np.bincount(
        lab.ravel(), weights=np.repeat(row_area_m2, w), minlength=n + 1
    ).astype(np.float64)
    padded = np.pad(lab, 1)
    dx_rows = np.pad(np.asarray(row_dx_m, dtype=np.float64), 1, mode="edge")
    dy_rows = np.pad(np.asarray(row_dy_m, dtype=np.float64), 1, mode="edge")
    # Edges between vertically adjacent pixels are horizontal segments (length dx at that latitude);
    # edges between horizontally adjacent pixels are vertical segments (length dy of the row).
    up, down = padded[:-1, :], padded[1:, :]
    dx_edge = np.broadcast_to(((dx_rows[:-1] + dx_rows[1:]) / 2.0)[:, None], up.shape)
    left, right = padded[:, :-1], padded[:, 1:]
    dy_edge = np.broadcast_to(dy_rows[:, None], left.shape)
    u_parts, v_parts, len_parts = [], [], []
    for a, b, length in ((up, down, dx_edge), (left, right, dy_edge)):
        diff = a != b
        u_parts.append(a[diff])
        v_parts.append(b[diff])
        len_parts.append(length[diff])
    u = np.concatenate(u_parts)
    v = np.concatenate(v_parts)
    length = np.concatenate(len_parts)
    perimeter = np.asarray(
        np.bincount(u, weights=length, minlength=n + 1) + np.bincount(v, weights=length, minlength=n + 1),
        dtype=np.float64,
    )
    perimeter[0] = 0.0
    both = (u > 0) & (v > 0)
    lo = np.minimum(u[both], v[both]).astype(np.int64)
    hi = np.maximum(u[both], v[both]).astype(np.int64)
    codes = lo * (n + 1) + hi
    uniq, inv = np.unique(codes, return_inverse=True)
    sums = np.bincount(inv, weights=length[both])
    shared = {(int(c // (n + 1)), int(c % (n + 1))): float(s) for c, s in zip(uniq, sums)}
    return area, perimeter, shared


def compactness(
    area_m2: npt.NDArray[np.float64], perimeter_m: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Compactness ``2 sqrt(pi A) / P`` (1 for a disc, smaller for elongated shapes), spec 9.1.

    Args:
        area_m2: Areas, m2.
        perimeter_m: Perimeters, m.

    Returns:
        Compactness per entry (0 where the perimeter is 0).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        c = 2.0 * np.sqrt(np.pi * area_m2) / perimeter_m
    return np.where(perimeter_m > 0, c, 0.0)


def merge_slivers(
    labels: npt.NDArray[np.integer],
    row_area_m2: npt.NDArray[np.float64],
    row_dx_m: npt.NDArray[np.float64],
    row_dy_m: npt.NDArray[np.float64],
    area1_m2: float = 1e5,
    area2_m2: float = 2e5,
    min_compactness: float = 0.5,
) -> npt.NDArray[np.int32]:
    """Merge sliver regions into their neighbours, as the authors' ice-divide code does (spec 9.1).

    A region is a sliver if ``A < area1_m2`` or (``A < area2_m2`` and compactness ``< min_compactness``).
    Slivers that share a boundary form groups; each group joins the non-sliver region sharing the longest
    boundary with it. Groups touching no non-sliver region are kept as one region each.

    Args:
        labels: Regions of one glacier complex, 0 outside, shape (H, W).
        row_area_m2: Pixel area of each row, m2.
        row_dx_m: Pixel width of each row, m.
        row_dy_m: Pixel height of each row, m.
        area1_m2: Area below which every region is a sliver, m2.
        area2_m2: Area below which an elongated region is a sliver, m2.
        min_compactness: Compactness below which a region under ``area2_m2`` is a sliver.

    Returns:
        int32 labels 1..m after merging (consecutive, in order of the smallest original label).
    """
    lab = np.asarray(labels, dtype=np.int32)
    n = int(lab.max(initial=0))
    if n <= 1:
        return lab.copy()
    area, perim, shared = region_geometry(lab, row_area_m2, row_dx_m, row_dy_m)
    comp = compactness(area, perim)
    ids = np.arange(n + 1)
    present = area > 0
    sliver = present & ((area < area1_m2) | ((area < area2_m2) & (comp < min_compactness)))
    sliver[0] = False
    parent = ids.copy()

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    for (u, v), _ in shared.items():
        if sliver[u] and sliver[v]:
            ru, rv = find(u), find(v)
            if ru != rv:
                parent[max(ru, rv)] = min(ru, rv)
    contact: dict[int, dict[int, float]] = {}
    for (u, v), length in shared.items():
        if sliver[u] != sliver[v]:
            small, other = (u, v) if sliver[u] else (v, u)
            touching = contact.setdefault(find(small), {})
            touching[other] = touching.get(other, 0.0) + length
    target = ids.copy()
    for sid in np.flatnonzero(sliver):
        root = find(int(sid))
        best = contact.get(root, {})
        target[sid] = max(sorted(best), key=lambda k: best[k]) if best else root
    target[0] = 0
    uniq = np.unique(target[present | (ids == 0)])
    remap = np.zeros(n + 1, dtype=np.int32)
    remap[uniq] = np.arange(len(uniq), dtype=np.int32) if uniq[0] == 0 else np.arange(1, len(uniq) + 1)
    out: npt.NDArray[np.int32] = remap[target][lab]
    return out
