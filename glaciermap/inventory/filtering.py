"""Cleaning a class raster before and after the ice divides: median filter, minimum area, slivers.

* :func:`median_filter_classes`: the optional median filter applied before vectorising (GlaViTU reference,
  ``glavitu-reference.md`` 5.1/5.8, the only smoothing of its outlines).
* :func:`scan_complexes`: connected glacier regions (4-connectivity, as the polygoniser) of a raster
  scanned strip by strip (union-find across strip borders), screened by a minimum area (the Karakoram
  inventory kept glaciers >= 0.005 km2, Karakoram paper section 4.1; our default is 0.01 km2).
* :func:`merge_slivers`: the sliver filter of the authors' ice-divide code (``glavitu-reference.md`` 9.1):
  a part is a sliver if its area is < 1e5 m2, or < 2e5 m2 with compactness ``2 sqrt(pi A) / P < 0.5``;
  touching slivers are joined, and each group is merged into the non-sliver neighbour that shares the
  longest boundary with it (groups without such a neighbour stay as they are).

Everything works on rasters: for regions traced along pixel edges (as ``rasterio.features.shapes`` does)
the area is the sum of the pixel areas and the perimeter and shared boundary lengths are sums of pixel
edge lengths, exactly the values the vector code computes from the polygons.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.ndimage as ndi
import scipy.sparse
import scipy.sparse.csgraph
import skimage.measure

from glaciermap.constants import BACKGROUND, CLEAN_ICE, DEBRIS_ICE, IGNORE_INDEX

FOUR_CONNECTED = ndi.generate_binary_structure(2, 1)
"""Structuring element of 4-connectivity (pixels sharing an edge)."""

_COUNT_ROWS = 128
"""Rows of a strip counted at a time by :func:`scan_complexes`."""


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


@dataclass(frozen=True)
class Complexes:
    """Glacier complexes (connected glacier regions) kept by the minimum-area screening.

    Complex ``k`` (1..K) is row ``k - 1`` of every array; complexes are numbered in raster-scan order of
    their first pixel (as :func:`scipy.ndimage.label` numbers regions).

    Attributes:
        bbox: ``(row0, row1, col0, col1)`` of each complex's bounding box (ends exclusive), int64 (K, 4).
        seed: ``(row, col)`` of each complex's first pixel in raster-scan order, int64 (K, 2): the complex
            is the connected glacier region through it.
        area_km2: Area of each complex, km2, float64 (K,).
    """

    bbox: npt.NDArray[np.int64]
    seed: npt.NDArray[np.int64]
    area_km2: npt.NDArray[np.float64]

    def __len__(self) -> int:
        """Number of items."""
        return len(self.area_km2)


def scan_complexes(
    strips: Iterable[tuple[int, npt.NDArray[np.uint8]]],
    row_area_m2: npt.NDArray[np.float64],
    min_area_km2: float,
) -> Complexes:
    """Find the connected glacier regions (classes 1 and 2, 4-connectivity) of a raster scanned in strips.

    Each strip is labelled on its own; regions that touch across a strip border are joined afterwards
    (connected components of the graph of touching strip regions, i.e. union-find). Only the previous
    strip's last row of labels and one small record per strip region are kept, and strip regions that
    are smaller than ``min_area_km2`` without touching a strip border are dropped at once, so memory does
    not grow with the raster. The result equals labelling the whole raster at once.

    Args:
        strips: ``(row0, classes)`` of consecutive full-width strips, top to bottom (uint8 classes).
        row_area_m2: Ground area of a pixel of each row of the raster, m2, shape (H,).
        min_area_km2: Regions with a smaller area (km2) are dropped.

    Returns:
        The kept :class:`Complexes`.
    """
    const_area = float(row_area_m2[0]) if np.all(row_area_m2 == row_area_m2[0]) else None
    records: list[npt.NDArray[np.float64]] = []  # per kept strip region: area, r0, r1, c0, c1, seed r, c
    edges: list[npt.NDArray[np.int64]] = []  # pairs of strip regions touching across a strip border
    n_ids = 0
    next_row = 0
    last_ids: npt.NDArray[np.int64] | None = None
    for r0, strip in strips:
        if r0 != next_row:
            raise ValueError(f"strips must be consecutive: expected row {next_row}, got {r0}")
        h, w = strip.shape
        next_row = r0 + h
        labels = np.empty(strip.shape, dtype=np.int32)
        m = int(
            ndi.label((strip == CLEAN_ICE) | (strip == DEBRIS_ICE), structure=FOUR_CONNECTED, output=labels)
        )
        if m == 0:
            last_ids = None
            continue
        area = np.zeros(m + 1, dtype=np.float64)
        for a in range(0, h, _COUNT_ROWS):  # bincount copies its input to int64: bound that copy
            part = labels[a : a + _COUNT_ROWS].ravel()
            if const_area is None:
                rows = row_area_m2[r0 + a : r0 + min(h, a + _COUNT_ROWS)]
                area += np.bincount(part, weights=np.repeat(rows, w), minlength=m + 1)
            else:
                area += np.bincount(part, minlength=m + 1)
        if const_area is not None:
            area *= const_area
        keep = area / 1e6 >= min_area_km2
        keep[labels[0]] = True  # regions on a strip border may continue in the next strip
        keep[labels[-1]] = True
        keep[0] = False
        local = np.flatnonzero(keep)
        ids = np.zeros(m + 1, dtype=np.int64)
        ids[local] = np.arange(n_ids, n_ids + len(local))
        n_ids += len(local)
        objects = ndi.find_objects(labels)
        rec = np.empty((len(local), 7), dtype=np.float64)
        for i, lab in enumerate(local):
            rows, cols = objects[lab - 1]
            first = rows.start
            col = cols.start + int(np.argmax(labels[first, cols] == lab))
            rec[i] = (area[lab], r0 + rows.start, r0 + rows.stop, cols.start, cols.stop, r0 + first, col)
        records.append(rec)
        top = labels[0]
        if last_ids is not None:
            both = (top > 0) & (last_ids >= 0)
            if both.any():
                pairs = np.stack([last_ids[both], ids[top[both]]], axis=1)
                edges.append(np.unique(pairs, axis=0))
        bottom = labels[-1]
        last_ids = np.where(bottom > 0, ids[bottom], -1)
    return _join_strip_regions(records, edges, n_ids, min_area_km2)


def _join_strip_regions(
    records: list[npt.NDArray[np.float64]], edges: list[npt.NDArray[np.int64]], n: int, min_area_km2: float
) -> Complexes:
    """Join strip regions that touch into complexes, screen them by area and number them in scan order."""
    if n == 0:
        return Complexes(np.zeros((0, 4), np.int64), np.zeros((0, 2), np.int64), np.zeros(0, np.float64))
    rec = np.concatenate(records)
    pairs = np.concatenate(edges) if edges else np.zeros((0, 2), dtype=np.int64)
    graph = scipy.sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    n_comp, comp = scipy.sparse.csgraph.connected_components(graph, directed=False)
    # Strip regions are numbered in scan order (strip by strip, and within a strip as ndimage numbers
    # them), so the smallest number in a complex is the region holding its first pixel.
    first = np.full(n_comp, n, dtype=np.int64)
    np.minimum.at(first, comp, np.arange(n))
    area = np.bincount(comp, weights=rec[:, 0], minlength=n_comp) / 1e6
    lo = np.full((n_comp, 2), np.inf)
    hi = np.full((n_comp, 2), -np.inf)
    np.minimum.at(lo, comp, rec[:, [1, 3]])
    np.maximum.at(hi, comp, rec[:, [2, 4]])
    kept = np.flatnonzero(area >= min_area_km2)
    kept = kept[np.argsort(first[kept], kind="stable")]
    bbox = np.stack([lo[kept, 0], hi[kept, 0], lo[kept, 1], hi[kept, 1]], axis=1).astype(np.int64)
    seed = rec[first[kept]][:, 5:7].astype(np.int64)
    return Complexes(bbox, seed, area[kept])


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
    """Compactness ``2 sqrt(pi A) / P`` (1 for a disc, smaller for elongated shapes).

    The authors' ice-divide code finds elongated slivers with it (:func:`merge_slivers`).

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
    """Merge sliver regions into their neighbours, as the authors' ice-divide code does.

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
