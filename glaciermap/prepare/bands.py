"""Band files picked by name, and the sensor band numbers behind the canonical band names.

A :class:`BandFile` is one band of one raster plus the linear conversion of its stored values to physical
units (``value = stored * scale + offset``; stored ``nodata`` stays invalid). Readers of sensor products
(:mod:`~glaciermap.prepare.sentinel2`, :mod:`~glaciermap.prepare.landsat`) return them; loose files given on
the command line are matched to canonical names by :func:`pick_band_files`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from glaciermap.constants import BANDS
from glaciermap.errors import ConfigError, InputError

Sensor = Literal["sentinel2", "landsat89", "landsat7", "landsat45"]
"""Sensors whose band numbers :func:`pick_band_files` understands."""

SENSOR_BANDS: Final[dict[str, dict[str, str]]] = {
    "sentinel2": {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir1": "B11", "swir2": "B12"},
    "landsat89": {
        "blue": "B2",
        "green": "B3",
        "red": "B4",
        "nir": "B5",
        "swir1": "B6",
        "swir2": "B7",
        "thermal": "B10",
    },
    "landsat7": {
        "blue": "B1",
        "green": "B2",
        "red": "B3",
        "nir": "B4",
        "swir1": "B5",
        "swir2": "B7",
        "thermal": "B6",
    },
    "landsat45": {
        "blue": "B1",
        "green": "B2",
        "red": "B3",
        "nir": "B4",
        "swir1": "B5",
        "swir2": "B7",
        "thermal": "B6",
    },
}
"""Canonical band name -> sensor band id (Sentinel-2 MSI; Landsat 8/9 OLI/TIRS; 7 ETM+; 4/5 TM)."""


@dataclass(frozen=True)
class BandFile:
    """One band of a raster file and how to convert it to physical units.

    Attributes:
        name: Canonical band name (``blue``, ..., ``thermal``, ``elevation``).
        path: The raster file.
        band: 1-based band index in the file.
        scale: Multiplier of the stored values.
        offset: Added after scaling (``value = stored * scale + offset``).
        nodata: Stored value marking invalid pixels (``None``: the file's own nodata, if any).
        unit: Physical unit after conversion, for messages (``"reflectance"``, ``"K"``, ``"m"``).
        k1: Thermal constant K1 (W m-2 sr-1 um-1): when set with ``k2``, the scaled value is a radiance L
            converted to brightness temperature ``K2 / ln(K1 / L + 1)`` in K (Landsat Level-1 thermal bands,
            USGS Landsat 8 Data Users Handbook Sec. 5.3).
        k2: Thermal constant K2 (K).
    """

    name: str
    path: Path
    band: int = 1
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    unit: str = "reflectance"
    k1: float | None = None
    k2: float | None = None


def _id_pattern(band_id: str) -> re.Pattern[str]:
    """Regex finding a band id like ``B2``/``B02`` as a separate token of a file stem (not ``B20``)."""
    number = band_id[1:].lstrip("0")
    return re.compile(rf"(?:^|[_.\-])B0*{number}(?:$|[_.\-])", re.IGNORECASE)


def pick_band_files(
    items: Sequence[str],
    wanted: Sequence[str] = BANDS["optical"],
    *,
    sensor: Sensor | None = None,
    unit: str = "reflectance",
    scale: float = 1.0,
    offset: float = 0.0,
) -> dict[str, BandFile]:
    """Match loose band files to canonical band names.

    Each item is ``NAME=PATH`` (explicit), or a path whose file name contains a canonical band name as a
    token (``scene_blue.tif``) or, with ``sensor``, that sensor's band id (``..._B02.tif`` for Sentinel-2
    blue; ``..._B2.TIF`` for Landsat 8 blue).

    Args:
        items: Command-line items.
        wanted: Canonical names that must all be found, in order.
        sensor: Sensor whose band numbers to recognise.
        unit: Unit of the values after ``scale`` and ``offset``.
        scale: Multiplier applied to every file's values.
        offset: Added after scaling.

    Returns:
        Band files by canonical name, in ``wanted`` order.

    Raises:
        ConfigError: If ``sensor`` is unknown.
        InputError: If a file is missing, matches no or several names, a name is given twice, or a wanted
            band has no file.
    """
    ids: Mapping[str, str] = {}
    if sensor is not None:
        if sensor not in SENSOR_BANDS:
            raise ConfigError(f"sensor is {sensor!r}; expected one of {', '.join(SENSOR_BANDS)}")
        ids = SENSOR_BANDS[sensor]
    found: dict[str, BandFile] = {}
    for item in items:
        name: str | None = None
        if "=" in item and item.split("=", 1)[0] in wanted:
            name, raw = item.split("=", 1)
            path = Path(raw)
        else:
            path = Path(item)
            tokens = set(re.split(r"[_.\-]", path.stem.lower()))
            matches = [b for b in wanted if b in tokens]
            matches += [
                b for b in wanted if b in ids and b not in matches and _id_pattern(ids[b]).search(path.stem)
            ]
            if len(matches) != 1:
                hint = (
                    f" or {sensor} band ids ({', '.join(ids[b] for b in wanted if b in ids)})" if ids else ""
                )
                raise InputError(
                    f"{path}: cannot tell which band this is (matches {matches or 'nothing'}); expected NAME=PATH "
                    f"or a file name containing one of {', '.join(wanted)}{hint}"
                )
            name = matches[0]
        if not path.is_file():
            raise InputError(f"{path}: file not found; expected the {name} band as a GeoTIFF")
        if name in found:
            raise InputError(
                f"band {name!r} is given twice ({found[name].path} and {path}); expected one file each"
            )
        found[name] = BandFile(name=name, path=path, scale=scale, offset=offset, unit=unit)
    missing = [b for b in wanted if b not in found]
    if missing:
        raise InputError(
            f"no file for band {missing[0]!r}; expected one file for each of {', '.join(wanted)} "
            f"(got {', '.join(found) or 'none'})"
        )
    return {b: found[b] for b in wanted}
