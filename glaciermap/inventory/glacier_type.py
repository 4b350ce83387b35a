"""Karakoram inventory analysis: glacier type from the accumulation-area ratio, multi-digitisation uncertainty.

* Glacier type (Karakoram paper Sec. 4.4, after Hewitt 2011 and Xie et al. 2023): the accumulation-area
  ratio ``AAR = accumulation area / glacier area``, the accumulation zone being the part of the glacier above
  the snow line (given as an elevation, e.g. from an albedo product) or covered by a snow mask; then
  Turkestan type for ``AAR <= 0.3``, Mustagh type for ``0.3 < AAR <= 0.6`` and Alpine type for ``AAR > 0.6``.
  The paper applies it to glaciers larger than 5 km2 (:data:`MIN_AREA_KM2`).
* Multi-digitisation uncertainty (Karakoram paper Sec. 3.3.3, the round-robin "multi-manual digitisation"
  after Paul et al. 2013): the mean of several independent digitisations of the same glaciers is the
  reference area of each glacier, and the uncertainty of the automated outline is the relative difference
  ``100 * (A_auto - mean(A_manual)) / mean(A_manual)`` (%), summarised over glaciers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from glaciermap.errors import ConfigError, InputError

GlacierType = Literal["Turkestan", "Mustagh", "Alpine"]
"""Glacier types by AAR (Karakoram paper Sec. 4.4)."""

TURKESTAN_MAX: Final[float] = 0.3
MUSTAGH_MAX: Final[float] = 0.6
"""AAR upper bounds of the Turkestan (<= 0.3) and Mustagh (<= 0.6) types; above: Alpine."""

MIN_AREA_KM2: Final[float] = 5.0
"""The paper types glaciers larger than 5 km2 only."""


def accumulation_area_ratio(
    glacier: npt.NDArray[np.bool_],
    *,
    elevation: npt.NDArray[np.floating] | None = None,
    snowline_m: float | None = None,
    snow: npt.NDArray[np.bool_] | None = None,
    pixel_area: npt.NDArray[np.floating] | float = 1.0,
) -> float:
    """Accumulation-area ratio of one glacier (Karakoram paper Sec. 4.4).

    Give either ``elevation`` and ``snowline_m`` (accumulation zone = glacier pixels at or above the snow
    line) or ``snow`` (accumulation zone = snow-covered glacier pixels).

    Args:
        glacier: ``(H, W)`` True on the glacier.
        elevation: ``(H, W)`` elevation in m (NaN = nodata, excluded from both areas).
        snowline_m: Snow-line altitude in m.
        snow: ``(H, W)`` True where the surface is snow (accumulation zone).
        pixel_area: Area of each pixel (any unit; a scalar or ``(H, W)`` for geographic grids).

    Returns:
        AAR in [0, 1].

    Raises:
        ConfigError: If neither or both ways of giving the snow line are used.
        InputError: If shapes differ or the glacier has no (valid) pixel.
    """
    by_elevation = elevation is not None or snowline_m is not None
    if by_elevation == (snow is not None) or (by_elevation and (elevation is None or snowline_m is None)):
        raise ConfigError(
            "give either elevation and snowline_m, or a snow mask, to delimit the accumulation zone"
        )
    g = np.asarray(glacier, dtype=bool)
    area = np.broadcast_to(np.asarray(pixel_area, dtype=np.float64), g.shape)
    if snow is not None:
        s = np.asarray(snow, dtype=bool)
        if s.shape != g.shape:
            raise InputError(f"snow mask {s.shape} and glacier {g.shape} differ; expected one grid")
        valid = g
        accumulation = g & s
    else:
        z = np.asarray(elevation, dtype=np.float64)
        if z.shape != g.shape:
            raise InputError(f"elevation {z.shape} and glacier {g.shape} differ; expected one grid")
        valid = g & np.isfinite(z)
        accumulation = valid & (z >= float(snowline_m))  # type: ignore[arg-type]
    total = float(area[valid].sum())
    if total <= 0:
        raise InputError(
            "the glacier has no valid pixel; expected glacier pixels with elevation or snow data"
        )
    return float(area[accumulation].sum()) / total


def glacier_type(aar: float) -> GlacierType:
    """Glacier type from its AAR: Turkestan (<= 0.3), Mustagh (0.3, 0.6], Alpine (> 0.6).

    Args:
        aar: Accumulation-area ratio in [0, 1].

    Returns:
        The type.

    Raises:
        InputError: If ``aar`` is not in [0, 1].
    """
    if not 0.0 <= aar <= 1.0:
        raise InputError(f"AAR is {aar!r}; expected a ratio in [0, 1]")
    if aar <= TURKESTAN_MAX:
        return "Turkestan"
    if aar <= MUSTAGH_MAX:
        return "Mustagh"
    return "Alpine"


def multi_digitisation_uncertainty(
    automated_km2: Mapping[str, float], digitisations_km2: Sequence[Mapping[str, float]]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Area difference of automated outlines against the mean of several manual digitisations.

    Karakoram paper Sec. 3.3.3 (round robin after Paul et al. 2013): for each glacier digitised by every
    interpreter, ``reference = mean of the manual areas`` and ``difference_pct = 100 * (automated - reference)
    / reference``; the spread of the manual areas (``manual_cv_pct``, their standard deviation over the mean)
    shows the interpreters' own uncertainty.

    Args:
        automated_km2: Glacier id -> area of the automated outline (km2).
        digitisations_km2: One mapping per interpreter: glacier id -> digitised area (km2).

    Returns:
        A table with one row per glacier (``glacier``, ``automated_km2``, ``reference_km2``,
        ``difference_km2``, ``difference_pct``, ``manual_cv_pct``), and a summary: ``n_glaciers``,
        ``total_difference_pct`` (difference of the summed areas), ``mean_abs_difference_pct`` and
        ``rms_difference_pct`` over glaciers.

    Raises:
        InputError: If fewer than two digitisations are given, no glacier is in all of them and the
            automated outlines, or a reference area is not positive.
    """
    if len(digitisations_km2) < 2:
        raise InputError(
            f"{len(digitisations_km2)} digitisation(s) given; expected at least two independent digitisations"
        )
    common = set(automated_km2)
    for d in digitisations_km2:
        common &= set(d)
    if not common:
        raise InputError(
            "no glacier id is in the automated outlines and in every digitisation; expected shared ids"
        )
    rows = []
    for gid in sorted(common):
        manual = np.array([float(d[gid]) for d in digitisations_km2])
        reference = float(manual.mean())
        if reference <= 0:
            raise InputError(
                f"glacier {gid!r}: mean digitised area is {reference:g} km2; expected a positive area"
            )
        auto = float(automated_km2[gid])
        rows.append(
            {
                "glacier": gid,
                "automated_km2": auto,
                "reference_km2": reference,
                "difference_km2": auto - reference,
                "difference_pct": 100.0 * (auto - reference) / reference,
                "manual_cv_pct": 100.0 * float(manual.std(ddof=1)) / reference,
            }
        )
    table = pd.DataFrame(rows)
    pct = table["difference_pct"].to_numpy()
    summary = {
        "n_glaciers": float(len(table)),
        "total_difference_pct": 100.0
        * float(table["difference_km2"].sum())
        / float(table["reference_km2"].sum()),
        "mean_abs_difference_pct": float(np.abs(pct).mean()),
        "rms_difference_pct": float(np.sqrt((pct**2).mean())),
    }
    return table, summary


def matched_areas(matches: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Areas per glacier of ours from the matches of :func:`~glaciermap.inventory.compare.compare_inventories`.

    A glacier of ours matched to several digitised polygons gets their summed area.

    Args:
        matches: ``Comparison.matches`` (``id_ours``, ``area_ours_km2``, ``area_ref_km2``).

    Returns:
        ``(ours, digitised)``: id of our glacier (as a string) -> its area, and -> the matched digitised area
        (km2).
    """
    ids = matches["id_ours"].astype(str)
    ours = dict(zip(ids, matches["area_ours_km2"].astype(float), strict=True))
    digitised = matches.assign(id_ours=ids).groupby("id_ours")["area_ref_km2"].sum()
    return ours, {str(k): float(v) for k, v in digitised.items()}
