"""Sentinel-2 L1C / L2A products: find the six glaciermap bands and convert digital numbers to reflectance.

Reflectance = (DN + offset) / quantification value (ESA Sentinel-2 Products Specification Document, L1C
"RADIO_ADD_OFFSET" and L2A "BOA_ADD_OFFSET"). From processing baseline 04.00 (products from 25 January 2022)
the stored DNs are shifted by +1000 so that negative reflectances survive; the product metadata carry the
offset (-1000) per band. Ignoring it makes every post-2022 reflectance 0.1 too high, which breaks multi-year
maps; this reader always applies the offsets found in ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` and refuses a
baseline >= 04.00 product whose metadata lack them. DN 0 is nodata.

The product may be a ``.SAFE`` folder or any folder holding the metadata file and the band images
(``GRANULE/*/IMG_DATA/[R10m|R20m|R60m/]T43SFA_20230801T055641_B02[_10m].jp2``; GeoTIFF copies with the same
names are accepted). Where a band exists at several resolutions the finest is used.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from glaciermap.constants import BANDS
from glaciermap.errors import InputError
from glaciermap.prepare.bands import SENSOR_BANDS, BandFile

BAND_IDS: Final[tuple[str, ...]] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
"""Sentinel-2 bands in the order of the metadata's ``band_id`` attribute (0 = B01, ..., 12 = B12)."""

OFFSET_BASELINE: Final[float] = 4.0
"""First processing baseline with the radiometric offset (04.00)."""

_IMAGE = re.compile(r"_(B\d[\dA])(?:_(\d+)m)?\.(?:jp2|tif|tiff)$", re.IGNORECASE)


@dataclass(frozen=True)
class Sentinel2Product:
    """What :func:`read_sentinel2` found.

    Attributes:
        folder: The product folder.
        level: ``"L1C"`` (top-of-atmosphere) or ``"L2A"`` (bottom-of-atmosphere) reflectance.
        baseline: Processing baseline (e.g. 5.09).
        quantification: Quantification value (10000).
        offsets: Additive offset per band id (``"B02": -1000.0``); 0 before baseline 04.00.
        date: Acquisition date ``YYYY-MM-DD`` from ``PRODUCT_START_TIME``, or ``None``.
        spacecraft: ``"Sentinel-2A"``, ``"Sentinel-2B"``, ... or ``None``.
        bands: Band files (with scale and offset) by canonical name: blue, green, red, nir, swir1, swir2.
    """

    folder: Path
    level: str
    baseline: float
    quantification: float
    offsets: dict[str, float]
    date: str | None
    spacecraft: str | None
    bands: dict[str, BandFile] = field(default_factory=dict)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _metadata_file(folder: Path) -> Path:
    found = sorted(folder.glob("MTD_MSIL*.xml")) or sorted(folder.glob("*/MTD_MSIL*.xml"))
    if not found:
        raise InputError(
            f"{folder}: no MTD_MSIL1C.xml or MTD_MSIL2A.xml; expected a Sentinel-2 .SAFE product folder"
        )
    return found[0]


def parse_metadata(path: Path) -> tuple[str, float, float, dict[str, float], str | None, str | None]:
    """Read level, baseline, quantification value, offsets, date and spacecraft from the product metadata.

    Args:
        path: ``MTD_MSIL1C.xml`` or ``MTD_MSIL2A.xml``.

    Returns:
        ``(level, baseline, quantification, offsets by band id, date, spacecraft)``.

    Raises:
        InputError: If the XML is unreadable, lacks the baseline or quantification value, or is baseline
            >= 04.00 without offsets.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise InputError(f"{path}: not readable XML ({err}); expected Sentinel-2 product metadata") from None
    values: dict[str, str] = {}
    offsets: dict[str, float] = {}
    for el in root.iter():
        name = _local(el.tag)
        text = (el.text or "").strip()
        if name in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):
            band_id = int(el.attrib.get("band_id", "-1"))
            if not 0 <= band_id < len(BAND_IDS):
                raise InputError(f"{path}: {name} has band_id {band_id}; expected 0-12")
            offsets[BAND_IDS[band_id]] = float(text)
        elif name in (
            "PROCESSING_BASELINE",
            "PROCESSING_LEVEL",
            "QUANTIFICATION_VALUE",
            "BOA_QUANTIFICATION_VALUE",
            "PRODUCT_START_TIME",
            "SPACECRAFT_NAME",
        ):
            values.setdefault(name, text)
    level = "L2A" if "2A" in values.get("PROCESSING_LEVEL", path.name) else "L1C"
    try:
        baseline = float(values["PROCESSING_BASELINE"])
    except (KeyError, ValueError):
        raise InputError(
            f"{path}: no PROCESSING_BASELINE; expected e.g. <PROCESSING_BASELINE>05.09<...>"
        ) from None
    q_key = "BOA_QUANTIFICATION_VALUE" if level == "L2A" else "QUANTIFICATION_VALUE"
    try:
        quantification = float(values[q_key])
    except (KeyError, ValueError):
        raise InputError(f"{path}: no {q_key}; expected the quantification value (10000)") from None
    if quantification <= 0:
        raise InputError(f"{path}: {q_key} is {quantification:g}; expected a positive value (10000)")
    if baseline >= OFFSET_BASELINE and not offsets:
        tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
        raise InputError(
            f"{path}: processing baseline {baseline:05.2f} but no {tag} values; products from baseline 04.00 "
            "store DN + 1000 and must list the -1000 offsets (converting without them biases reflectance by +0.1)"
        )
    start = values.get("PRODUCT_START_TIME")
    return (
        level,
        baseline,
        quantification,
        offsets,
        start[:10] if start else None,
        values.get("SPACECRAFT_NAME"),
    )


def read_sentinel2(folder: str | Path) -> Sentinel2Product:
    """Find the glaciermap optical bands of a Sentinel-2 product and their DN-to-reflectance conversion.

    Args:
        folder: The ``.SAFE`` folder (or a folder holding its metadata file and band images).

    Returns:
        The product, with :attr:`Sentinel2Product.bands` blue (B02), green (B03), red (B04), nir (B08),
        swir1 (B11), swir2 (B12); ``scale = 1 / quantification``, ``offset = band offset / quantification``,
        ``nodata = 0``.

    Raises:
        InputError: If the folder, metadata or a band image is missing.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: folder not found; expected a Sentinel-2 .SAFE product folder")
    meta = _metadata_file(root)
    level, baseline, quantification, offsets, date, spacecraft = parse_metadata(meta)
    images: dict[str, tuple[int, Path]] = {}
    for path in sorted(meta.parent.rglob("*")):
        m = _IMAGE.search(path.name)
        if m is None or "QI_DATA" in path.parts or "MSK_" in path.name:
            continue
        band, res = m.group(1).upper(), int(m.group(2) or 0)
        if band not in images or (res and (images[band][0] == 0 or res < images[band][0])):
            images[band] = (res, path)
    bands: dict[str, BandFile] = {}
    for name in BANDS["optical"]:
        band_id = SENSOR_BANDS["sentinel2"][name]
        if band_id not in images:
            raise InputError(
                f"{root}: no image of band {band_id} ({name}); expected GRANULE/*/IMG_DATA/...*_{band_id}*.jp2"
            )
        offset = offsets.get(band_id, 0.0)
        if baseline >= OFFSET_BASELINE and band_id not in offsets:
            raise InputError(
                f"{meta}: no offset for band {band_id} (band_id {BAND_IDS.index(band_id)}) at baseline "
                f"{baseline:05.2f}; expected one offset per band"
            )
        bands[name] = BandFile(
            name=name,
            path=images[band_id][1],
            scale=1.0 / quantification,
            offset=offset / quantification,
            nodata=0.0,
        )
    return Sentinel2Product(
        folder=root,
        level=level,
        baseline=baseline,
        quantification=quantification,
        offsets=offsets,
        date=date,
        spacecraft=spacecraft,
        bands=bands,
    )
