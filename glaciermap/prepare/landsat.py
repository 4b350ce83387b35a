"""Landsat Collection 2 products: find the glaciermap bands and apply the MTL scale and offset.

Reads the product's ``*_MTL.txt`` (ODL ``GROUP = ... / KEY = value``) or ``*_MTL.json``:

* Level-2 (``L2SP``/``L2SR``): surface reflectance ``SR_Bn`` = DN * ``REFLECTANCE_MULT_BAND_n`` +
  ``REFLECTANCE_ADD_BAND_n`` (group ``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS``; 2.75e-5 and -0.2), surface
  temperature ``ST_B10`` (``ST_B6`` for TM/ETM+) = DN * ``TEMPERATURE_MULT_BAND_ST_B10`` +
  ``TEMPERATURE_ADD_BAND_ST_B10`` in K (USGS Landsat 8-9 Collection 2 Level 2 Science Product Guide, Sec. 4).
* Level-1 (``L1TP``/``L1GT``/``L1GS``): top-of-atmosphere reflectance ``(M * DN + A) / sin(sun elevation)``
  from ``LEVEL1_RADIOMETRIC_RESCALING`` and ``IMAGE_ATTRIBUTES.SUN_ELEVATION``; thermal brightness
  temperature ``K2 / ln(K1 / L + 1)`` with ``L = M_L * DN + A_L`` and ``LEVEL1_THERMAL_CONSTANTS``
  (USGS Landsat 8 Data Users Handbook Sec. 5.3 and 5.4).

DN 0 is the Collection 2 fill value (nodata). Band numbers follow the sensor (``SPACECRAFT_ID``): OLI/TIRS
(Landsat 8, 9), ETM+ (7), TM (4, 5); see :data:`~glaciermap.prepare.bands.SENSOR_BANDS`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glaciermap.constants import BANDS
from glaciermap.errors import InputError
from glaciermap.prepare.bands import SENSOR_BANDS, BandFile

_ODL = re.compile(r"^\s*(\w+)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True)
class LandsatProduct:
    """What :func:`read_landsat` found.

    Attributes:
        folder: The product folder.
        product_id: ``LANDSAT_PRODUCT_ID`` (e.g. ``LC08_L2SP_148035_20200810_20200918_02_T1``).
        level: ``"L1"`` (TOA reflectance, brightness temperature) or ``"L2"`` (surface reflectance and
            temperature).
        sensor: Key of :data:`~glaciermap.prepare.bands.SENSOR_BANDS` (``"landsat89"``, ...).
        date: ``DATE_ACQUIRED`` (``YYYY-MM-DD``).
        bands: Optical band files by canonical name (blue ... swir2).
        thermal: The thermal band file (K), or ``None`` where the product has none.
    """

    folder: Path
    product_id: str
    level: str
    sensor: str
    date: str | None
    bands: dict[str, BandFile] = field(default_factory=dict)
    thermal: BandFile | None = None


def parse_mtl(path: Path) -> dict[str, dict[str, str]]:
    """Parse an MTL file (text ODL or JSON) into ``{group: {key: value}}`` (innermost group names).

    Args:
        path: ``*_MTL.txt`` or ``*_MTL.json``.

    Returns:
        Values as strings (quotes removed), by group.

    Raises:
        InputError: If the file cannot be read.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not readable ({err}); expected a Landsat MTL file") from None
    groups: dict[str, dict[str, str]] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON ({err}); expected a Landsat MTL file") from None

        def walk(name: str, node: Any) -> None:
            for key, value in node.items():
                if isinstance(value, dict):
                    walk(key, value)
                else:
                    groups.setdefault(name, {})[key] = str(value)

        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object; expected a Landsat MTL file")
        walk("", data)
        return groups
    stack: list[str] = [""]
    for line in text.splitlines():
        m = _ODL.match(line)
        if m is None:
            continue
        key, value = m.group(1), m.group(2).strip('"')
        if key == "GROUP":
            stack.append(value)
        elif key == "END_GROUP":
            if len(stack) > 1:
                stack.pop()
        else:
            groups.setdefault(stack[-1], {})[key] = value
    return groups


def _float(groups: dict[str, dict[str, str]], group: str, key: str, path: Path) -> float:
    try:
        return float(groups[group][key])
    except (KeyError, ValueError):
        raise InputError(
            f"{path}: no {group}.{key}; expected it in a Landsat Collection 2 MTL file"
        ) from None


def _sensor(spacecraft: str, path: Path) -> str:
    number = spacecraft.rsplit("_", 1)[-1]
    sensors = {"8": "landsat89", "9": "landsat89", "7": "landsat7", "5": "landsat45", "4": "landsat45"}
    if number not in sensors:
        raise InputError(f"{path}: SPACECRAFT_ID is {spacecraft!r}; expected LANDSAT_4, 5, 7, 8 or 9")
    return sensors[number]


def _find_band(folder: Path, suffixes: tuple[str, ...]) -> Path | None:
    for suffix in suffixes:
        found = sorted(p for p in folder.iterdir() if p.name.upper().endswith(suffix.upper()))
        if found:
            return found[0]
    return None


def _find_mtl(root: Path) -> Path:
    """The product's MTL file (text first, else JSON)."""
    if not root.is_dir():
        raise InputError(f"{root}: folder not found; expected a Landsat Collection 2 product folder")
    mtl = sorted(root.glob("*_MTL.txt")) or sorted(root.glob("*_MTL.json"))
    if not mtl:
        raise InputError(
            f"{root}: no *_MTL.txt or *_MTL.json; expected a Landsat Collection 2 product folder"
        )
    return mtl[0]


def _optical_bands(
    root: Path, groups: dict[str, dict[str, str]], path: Path, level: str, ids: Mapping[str, str]
) -> dict[str, BandFile]:
    """The six optical bands with their reflectance scale and offset (Level-1: divided by sin(sun elevation))."""
    sin_sun = 1.0
    if level == "L1":
        sin_sun = math.sin(math.radians(_float(groups, "IMAGE_ATTRIBUTES", "SUN_ELEVATION", path)))
    group = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS" if level == "L2" else "LEVEL1_RADIOMETRIC_RESCALING"
    bands: dict[str, BandFile] = {}
    for name in BANDS["optical"]:
        n = ids[name][1:]
        suffix = f"_SR_B{n}.TIF" if level == "L2" else f"_B{n}.TIF"
        file = _find_band(root, (suffix,))
        if file is None:
            raise InputError(
                f"{root}: no *{suffix} ({name}, band {n}); expected every optical band of the product"
            )
        mult = _float(groups, group, f"REFLECTANCE_MULT_BAND_{n}", path)
        add = _float(groups, group, f"REFLECTANCE_ADD_BAND_{n}", path)
        bands[name] = BandFile(name=name, path=file, scale=mult / sin_sun, offset=add / sin_sun, nodata=0.0)
    return bands


def _thermal_band(
    root: Path, groups: dict[str, dict[str, str]], path: Path, level: str, sensor: str, n: str
) -> BandFile | None:
    """The thermal band in K: Level-2 surface temperature, or Level-1 radiance with the K1/K2 constants."""
    if level == "L2":
        file = _find_band(root, (f"_ST_B{n}.TIF",))
        if file is None:
            return None
        group = "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS"
        return BandFile(
            name="thermal",
            path=file,
            scale=_float(groups, group, f"TEMPERATURE_MULT_BAND_ST_B{n}", path),
            offset=_float(groups, group, f"TEMPERATURE_ADD_BAND_ST_B{n}", path),
            nodata=0.0,
            unit="K",
        )
    key = "6_VCID_1" if sensor == "landsat7" else n
    file = _find_band(root, (f"_B{key}.TIF",))
    if file is None:
        return None
    return BandFile(
        name="thermal",
        path=file,
        scale=_float(groups, "LEVEL1_RADIOMETRIC_RESCALING", f"RADIANCE_MULT_BAND_{key}", path),
        offset=_float(groups, "LEVEL1_RADIOMETRIC_RESCALING", f"RADIANCE_ADD_BAND_{key}", path),
        nodata=0.0,
        unit="K",
        k1=_float(groups, "LEVEL1_THERMAL_CONSTANTS", f"K1_CONSTANT_BAND_{key}", path),
        k2=_float(groups, "LEVEL1_THERMAL_CONSTANTS", f"K2_CONSTANT_BAND_{key}", path),
    )


def read_landsat(folder: str | Path) -> LandsatProduct:
    """Find the glaciermap bands of a Landsat Collection 2 product and their conversion to physical units.

    Args:
        folder: The product folder (the MTL file and the band GeoTIFFs side by side).

    Returns:
        The product.

    Raises:
        InputError: If the folder, the MTL file, an optical band file or a scale/offset entry is missing.
    """
    root = Path(folder)
    path = _find_mtl(root)
    groups = parse_mtl(path)
    contents = groups.get("PRODUCT_CONTENTS", {})
    attributes = groups.get("IMAGE_ATTRIBUTES", {})
    product_id = contents.get("LANDSAT_PRODUCT_ID", path.name.removesuffix("_MTL.txt"))
    level = "L2" if contents.get("PROCESSING_LEVEL", product_id).upper().find("L2") >= 0 else "L1"
    sensor = _sensor(attributes.get("SPACECRAFT_ID", ""), path)
    ids = SENSOR_BANDS[sensor]
    return LandsatProduct(
        folder=root,
        product_id=product_id,
        level=level,
        sensor=sensor,
        date=attributes.get("DATE_ACQUIRED"),
        bands=_optical_bands(root, groups, path, level, ids),
        thermal=_thermal_band(root, groups, path, level, sensor, ids["thermal"][1:]),
    )
