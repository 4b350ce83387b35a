"""Per-glacier metrics: matching outlines, detection scores by size class, area deviations.

Matching rule (GlaViTU paper, "Accuracy assessment"): a predicted glacier ``P`` matches a reference glacier
``R`` when their intersection is *more than* half of each of them::

    area(P ∩ R) > f · area(P)   and   area(P ∩ R) > f · area(R),   f = 0.5

Both inequalities are strict: an intersection of exactly 50% of either outline is no match. Because the
intersection must exceed half of each outline, a glacier can satisfy the rule with at most one glacier of a
set of non-overlapping glaciers (two such intersections would add up to more than the whole outline).
One-to-many therefore never matches more than one: a predicted outline covering two reference glaciers
matches the one holding more than half of its area, or none. Only when a layer's outlines overlap each
other can several candidates pass; pairs are then taken greedily by decreasing intersection area, each
glacier used at most once, so the matching is always one-to-one.

Detection scores (GlaViTU Eqs. 7-9, with T the reference and P the detected glaciers): precision = matched
predicted / all predicted, recall = matched reference / all reference, F1 = 2 |T ∩ P| / (|T| + |P|).
By size class, a predicted glacier falls in the class of its own area and a reference glacier in the class
of its own area, and F1 of a class counts the matched glaciers of both sides,
``F1_c = (matched_pred_c + matched_ref_c) / (n_pred_c + n_ref_c)``, which is Eq. 9 when both glaciers of
every matched pair fall in the same class. Size classes (km2, each interval closed on the left) are
``< 0.1``, ``0.1-0.5``, ``0.5-1``, ``1-5`` and ``> 5``.

Area deviation of a matched pair (GlaViTU Eq. 10): ΔA = A_pred - A_ref (km2) and δA = ΔA / A_ref.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from glaciermap.errors import InputError
from glaciermap.metrics.boundary import DEFAULT_SPACING_M, Polis, polis

M2_PER_KM2: float = 1e6

SIZE_CLASS_EDGES_KM2: tuple[float, ...] = (0.1, 0.5, 1.0, 5.0)
"""Inner edges of the size classes (km2); a glacier of exactly an edge's area is in the upper class."""
SIZE_CLASSES: tuple[str, ...] = ("<0.1", "0.1-0.5", "0.5-1", "1-5", ">5")
"""Size-class labels, smallest first."""
MATCH_FRACTION: float = 0.5
"""The intersection must be more than this fraction of both outlines (GlaViTU paper)."""


def size_class(area_km2: npt.ArrayLike) -> npt.NDArray[np.str_]:
    """Size class of each glacier area.

    Args:
        area_km2: Glacier areas (km2).

    Returns:
        One label of :data:`SIZE_CLASSES` per area.
    """
    idx = np.searchsorted(
        np.asarray(SIZE_CLASS_EDGES_KM2), np.asarray(area_km2, dtype=np.float64), side="right"
    )
    return np.asarray(SIZE_CLASSES)[idx]


def area_deviation(
    pred_area: npt.ArrayLike, ref_area: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Absolute and relative area deviation (GlaViTU Eq. 10).

    Args:
        pred_area: Predicted glacier areas (any unit, e.g. km2).
        ref_area: Reference glacier areas (same unit and shape).

    Returns:
        ``(ΔA, δA)``: ``A_pred - A_ref`` in the input unit, and ``(A_pred - A_ref) / A_ref`` (unitless; NaN
        where ``A_ref`` is 0).
    """
    p = np.asarray(pred_area, dtype=np.float64)
    r = np.asarray(ref_area, dtype=np.float64)
    delta = p - r
    rel = np.full(delta.shape, np.nan)
    np.divide(delta, r, out=rel, where=r != 0)
    return delta, rel


def detection_scores(n_pred: int, n_ref: int, tp_pred: int, tp_ref: int) -> dict[str, float]:
    """Precision, recall and F1 of glacier detection (GlaViTU Eqs. 7-9 on glacier counts).

    Args:
        n_pred: Number of predicted glaciers.
        n_ref: Number of reference glaciers.
        tp_pred: Number of predicted glaciers that match a reference one.
        tp_ref: Number of reference glaciers that match a predicted one.

    Returns:
        ``precision`` (NaN with no prediction), ``recall`` (NaN with no reference) and ``f1``
        ``(tp_pred + tp_ref) / (n_pred + n_ref)`` (NaN when both are empty).
    """
    nan = float("nan")
    return {
        "precision": tp_pred / n_pred if n_pred else nan,
        "recall": tp_ref / n_ref if n_ref else nan,
        "f1": (tp_pred + tp_ref) / (n_pred + n_ref) if n_pred + n_ref else nan,
    }


def _polygons(frame: gpd.GeoDataFrame | gpd.GeoSeries, what: str) -> gpd.GeoSeries:
    """The non-empty polygon geometries of a layer (index kept: it identifies the glaciers)."""
    if not isinstance(frame, gpd.GeoDataFrame | gpd.GeoSeries):
        raise InputError(f"{what}: expected a GeoDataFrame of glacier outlines, got {type(frame).__name__}")
    geoms = frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame
    keep = ~(geoms.isna() | geoms.is_empty)
    geoms = geoms[keep]
    bad = ~geoms.geom_type.isin(["Polygon", "MultiPolygon"])
    if bad.any():
        raise InputError(
            f"{what}: expected Polygon or MultiPolygon outlines, found {sorted(set(geoms.geom_type[bad]))}"
        )
    invalid = ~geoms.is_valid
    if invalid.any():
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid].to_numpy())
    return geoms


def _common_projected_crs(pred: gpd.GeoSeries, ref: gpd.GeoSeries) -> tuple[gpd.GeoSeries, gpd.GeoSeries]:
    """Both layers in one projected CRS (the reference's, or its UTM zone when it is geographic)."""
    if pred.crs is None or ref.crs is None:
        which = "prediction" if pred.crs is None else "reference"
        raise InputError(f"match_glaciers: the {which} outlines have no CRS; expected a projected CRS in m")
    target = ref.crs
    if target.is_geographic:
        if len(ref) == 0 and len(pred) == 0:
            return pred, ref
        target = (ref if len(ref) else pred).estimate_utm_crs()
    return pred.to_crs(target), ref.to_crs(target)


@dataclass(frozen=True)
class GlacierMatching:
    """Result of :func:`match_glaciers`.

    Attributes:
        pred: Predicted outlines (the non-empty polygons of the input, its index kept, projected CRS in m).
        ref: Reference outlines (the non-empty polygons of the input, its index kept, same CRS).
        pairs: One row per matched pair: ``pred`` and ``ref`` (positions, as for ``iloc``, in :attr:`pred` /
            :attr:`ref`; ``pred_id`` and ``ref_id`` are their index labels),
            ``intersection_km2``, ``pred_area_km2``, ``ref_area_km2``, ``delta_area_km2`` and
            ``rel_delta_area`` (GlaViTU Eq. 10), ``size_class`` (of the reference glacier).
        fraction: The matching fraction f used.
    """

    pred: gpd.GeoSeries
    ref: gpd.GeoSeries
    pairs: pd.DataFrame
    fraction: float

    @property
    def pred_area_km2(self) -> npt.NDArray[np.float64]:
        """Area of every predicted glacier (km2)."""
        return np.asarray(self.pred.area, dtype=np.float64) / M2_PER_KM2

    @property
    def ref_area_km2(self) -> npt.NDArray[np.float64]:
        """Area of every reference glacier (km2)."""
        return np.asarray(self.ref.area, dtype=np.float64) / M2_PER_KM2

    @property
    def pred_matched(self) -> npt.NDArray[np.bool_]:
        """Whether each predicted glacier matches a reference one."""
        out = np.zeros(len(self.pred), dtype=bool)
        out[self.pairs["pred"].to_numpy(dtype=np.int64)] = True
        return out

    @property
    def ref_matched(self) -> npt.NDArray[np.bool_]:
        """Whether each reference glacier matches a predicted one."""
        out = np.zeros(len(self.ref), dtype=bool)
        out[self.pairs["ref"].to_numpy(dtype=np.int64)] = True
        return out

    def polis(self, spacing: float = DEFAULT_SPACING_M) -> list[Polis]:
        """PoLiS (GlaViTU Eq. 11) of every matched pair.

        Args:
            spacing: Boundary sampling interval (m).

        Returns:
            One :class:`~glaciermap.metrics.boundary.Polis` per row of :attr:`pairs`, in that order.
        """
        return [
            polis(self.pred.iloc[i], self.ref.iloc[j], spacing)
            for i, j in zip(self.pairs["pred"], self.pairs["ref"])
        ]

    def detection(self, by_size_class: bool = True) -> pd.DataFrame:
        """Detection precision, recall and F1, overall and by size class.

        Args:
            by_size_class: Also give one row per size class (see the module docstring for the rule).

        Returns:
            Rows ``size_class`` (``"all"`` then the classes), columns ``n_pred``, ``n_ref``, ``tp_pred``,
            ``tp_ref``, ``precision``, ``recall``, ``f1``.
        """
        return detection_table(
            self.pred_area_km2, self.pred_matched, self.ref_area_km2, self.ref_matched, by_size_class
        )


def detection_table(
    pred_area_km2: npt.ArrayLike,
    pred_matched: npt.ArrayLike,
    ref_area_km2: npt.ArrayLike,
    ref_matched: npt.ArrayLike,
    by_size_class: bool = True,
) -> pd.DataFrame:
    """Detection scores from per-glacier areas and match flags (pooled over any number of scenes).

    Args:
        pred_area_km2: Area of each predicted glacier (km2).
        pred_matched: Whether each predicted glacier is matched.
        ref_area_km2: Area of each reference glacier (km2).
        ref_matched: Whether each reference glacier is matched.
        by_size_class: Also give one row per size class.

    Returns:
        As :meth:`GlacierMatching.detection`.
    """
    pa = np.asarray(pred_area_km2, dtype=np.float64)
    pm = np.asarray(pred_matched, dtype=bool)
    ra = np.asarray(ref_area_km2, dtype=np.float64)
    rm = np.asarray(ref_matched, dtype=bool)
    pc, rc = size_class(pa), size_class(ra)
    groups: Sequence[str] = ("all", *SIZE_CLASSES) if by_size_class else ("all",)
    rows: list[dict[str, Any]] = []
    for group in groups:
        psel = np.ones(pa.shape, bool) if group == "all" else pc == group
        rsel = np.ones(ra.shape, bool) if group == "all" else rc == group
        counts = {
            "n_pred": int(psel.sum()),
            "n_ref": int(rsel.sum()),
            "tp_pred": int((pm & psel).sum()),
            "tp_ref": int((rm & rsel).sum()),
        }
        rows.append({"size_class": group, **counts, **detection_scores(**counts)})
    return pd.DataFrame(rows)


def match_glaciers(
    pred: gpd.GeoDataFrame | gpd.GeoSeries,
    ref: gpd.GeoDataFrame | gpd.GeoSeries,
    fraction: float = MATCH_FRACTION,
    min_area_km2: float = 0.0,
) -> GlacierMatching:
    """Match predicted glacier outlines to reference ones (GlaViTU paper's rule, see the module docstring).

    Args:
        pred: Predicted glacier outlines, one (Multi)Polygon per glacier, with a CRS.
        ref: Reference glacier outlines, one (Multi)Polygon per glacier, with a CRS. Both layers are brought
            to the reference's CRS (its UTM zone when it is geographic) so areas are in m2.
        fraction: The intersection must be strictly more than this fraction of both outlines (0.5 in the
            paper; below 0.5 several candidates can pass and the greedy one-to-one step decides).
        min_area_km2: Outlines (of either layer) smaller than this are left out before matching (km2).

    Returns:
        The matched pairs with their areas and area deviations (Eq. 10), and the projected outlines.
        Rows with a missing or empty geometry, or smaller than ``min_area_km2``, are left out.

    Raises:
        InputError: If a layer is not a GeoDataFrame of polygons or has no CRS, or ``fraction`` is not in
            (0, 1), or ``min_area_km2`` is negative.
    """
    if not 0.0 < fraction < 1.0:
        raise InputError(f"match_glaciers: fraction must be in (0, 1), got {fraction}")
    if not min_area_km2 >= 0:
        raise InputError(f"match_glaciers: min_area_km2 must be >= 0, got {min_area_km2}")
    p, r = _common_projected_crs(_polygons(pred, "prediction"), _polygons(ref, "reference"))
    if min_area_km2 > 0:
        p = p[p.area >= min_area_km2 * M2_PER_KM2]
        r = r[r.area >= min_area_km2 * M2_PER_KM2]
    pa = np.asarray(p.area, dtype=np.float64)
    ra = np.asarray(r.area, dtype=np.float64)
    if len(p) and len(r):
        ip, ir = r.sindex.query(p, predicate="intersects")
    else:
        ip = ir = np.zeros(0, dtype=np.int64)
    inter = np.asarray(
        shapely.area(shapely.intersection(p.to_numpy()[ip], r.to_numpy()[ir])), dtype=np.float64
    )
    ok = (inter > fraction * pa[ip]) & (inter > fraction * ra[ir])
    ip, ir, inter = ip[ok], ir[ok], inter[ok]
    used_p: set[int] = set()
    used_r: set[int] = set()
    keep: list[int] = []
    for k in np.argsort(-inter, kind="stable"):  # only matters when a layer's outlines overlap each other
        if int(ip[k]) not in used_p and int(ir[k]) not in used_r:
            used_p.add(int(ip[k]))
            used_r.add(int(ir[k]))
            keep.append(int(k))
    sel = np.asarray(sorted(keep, key=lambda k: (ir[k], ip[k])), dtype=np.int64)
    pair_pred = ip[sel].astype(np.int64)
    pair_ref = ir[sel].astype(np.int64)
    pred_km2 = pa[pair_pred] / M2_PER_KM2
    ref_km2 = ra[pair_ref] / M2_PER_KM2
    delta, rel = area_deviation(pred_km2, ref_km2)
    pairs = pd.DataFrame(
        {
            "pred": pair_pred,
            "ref": pair_ref,
            "pred_id": np.asarray(p.index)[pair_pred],
            "ref_id": np.asarray(r.index)[pair_ref],
            "intersection_km2": inter[sel] / M2_PER_KM2,
            "pred_area_km2": pred_km2,
            "ref_area_km2": ref_km2,
            "delta_area_km2": delta,
            "rel_delta_area": rel,
            "size_class": size_class(ref_km2),
        }
    )
    return GlacierMatching(pred=p, ref=r, pairs=pairs, fraction=fraction)
