"""Generate tiny fake Sentinel-2 L1C/L2A ``.SAFE`` products with the real naming, layout, CRS and dtype.

Tile T43SFA (UTM 43N, EPSG:32643), uint16 JPEG 2000 (lossless) band images, 10 m bands B02/B03/B04/B08 of
``SIZE`` px a side and 20 m bands B11/B12 (and B8A, B05, unused) of ``SIZE // 2``; ``MTD_MSIL2A.xml`` /
``MTD_MSIL1C.xml`` with ``PROCESSING_BASELINE``, the quantification value and the per-band
``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` elements (baseline >= 04.00 only), as in the real schema.

Reflectance of band ``b`` is ``REFLECTANCE[b] + 0.001 * row`` (row of the 10 m grid; 20 m bands use their own
rows). Stored DN = reflectance * 10000 - offset (offset -1000 from baseline 04.00, so DN = 10000 r + 1000).
DN 0 (nodata) in the top-left ``NODATA`` x ``NODATA`` px of B02.

Used by the tests at run time (``make_safe(tmp_path)``); ``python tests/data/sentinel2/make.py OUT`` writes one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

SIZE = 40
NODATA = 4
LEFT, TOP = 600000.0, 4000020.0
CRS = "EPSG:32643"
TILE = "T43SFA"
SENSING = "20230801T055641"
REFLECTANCE = {
    "B02": 0.30,
    "B03": 0.32,
    "B04": 0.34,
    "B08": 0.40,
    "B11": 0.10,
    "B12": 0.08,
    "B8A": 0.4,
    "B05": 0.3,
}
BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
RES = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B11": 20, "B12": 20, "B8A": 20, "B05": 20}


def metadata_xml(level: str, baseline: str, with_offsets: bool) -> str:
    """The product metadata (abridged real schema)."""
    with_offset = float(baseline) >= 4.0 and with_offsets
    if level == "L2A":
        quant = (
            '<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>'
            '<AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>'
            "</QUANTIFICATION_VALUES_LIST>"
        )
        offsets = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
        offsets = f"<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>" if with_offset else ""
        root = "n1:Level-2A_User_Product"
        ns = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"
    else:
        quant = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        offsets = "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>' for i in range(13))
        offsets = f"<Radiometric_Offset_List>{offsets}</Radiometric_Offset_List>" if with_offset else ""
        root = "n1:Level-1C_User_Product"
        ns = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns:n1="{ns}">\n<n1:General_Info><Product_Info>'
        "<PRODUCT_START_TIME>2023-08-01T05:56:41.024Z</PRODUCT_START_TIME>"
        f"<PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>"
        f"<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>"
        "<Datatake><SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME></Datatake></Product_Info>\n"
        f"<Product_Image_Characteristics>{quant}{offsets}</Product_Image_Characteristics>"
        f"</n1:General_Info>\n</{root}>\n"
    )


def make_safe(
    root: Path,
    *,
    level: str = "L2A",
    baseline: str = "05.09",
    skip: tuple[str, ...] = (),
    with_offsets: bool = True,
    driver: str = "JP2OpenJPEG",
    size: int = SIZE,
    row_step: float = 0.001,
    creation_options: dict[str, object] | None = None,
) -> Path:
    """Write a product under ``root`` and return its ``.SAFE`` folder.

    Args:
        root: Parent folder.
        level: ``"L2A"`` or ``"L1C"``.
        baseline: Processing baseline, e.g. ``"05.09"`` or ``"02.14"``.
        skip: Band ids not to write (a product with a missing band).
        with_offsets: Write the offset elements (baseline >= 04.00 only).
        driver: ``"JP2OpenJPEG"`` or ``"GTiff"`` (same ``.jp2`` names either way).
        size: Side of the 10 m bands, px (10,980 for a real tile: ``benchmarks/prepare_benchmark.py``).
        row_step: Reflectance added per row (keep ``row_step * size`` well under 1 for large sizes).
        creation_options: GDAL creation options (e.g. ``{"tiled": True, "compress": "deflate"}`` for GTiff).
    """
    n = baseline.replace(".", "")
    safe = root / f"S2A_MSI{level}_{SENSING}_N{n}_R091_{TILE}_20230801T093003.SAFE"
    granule = safe / "GRANULE" / f"{level}_{TILE}_A042345_20230801T060326" / "IMG_DATA"
    granule.mkdir(parents=True)
    (safe / f"MTD_MSI{level}.xml").write_text(metadata_xml(level, baseline, with_offsets))
    shift = 1000 if float(baseline) >= 4.0 else 0
    for band, res in RES.items():
        if band in skip:
            continue
        side = size * 10 // res
        rows = np.arange(side, dtype=np.float64)[:, None]
        reflectance = np.broadcast_to(REFLECTANCE[band] + row_step * rows, (side, side))
        dn = np.round(reflectance * 10000 + shift).astype(np.uint16)
        if band == "B02":
            dn[:NODATA, :NODATA] = 0
        folder = granule / f"R{res}m" if level == "L2A" else granule
        folder.mkdir(exist_ok=True)
        name = f"{TILE}_{SENSING}_{band}_{res}m.jp2" if level == "L2A" else f"{TILE}_{SENSING}_{band}.jp2"
        options = {"QUALITY": 100, "REVERSIBLE": "YES"} if driver == "JP2OpenJPEG" else {}
        options.update(creation_options or {})
        with rasterio.open(
            folder / name, "w", driver=driver, width=side, height=side, count=1, dtype="uint16", crs=CRS,
            transform=from_origin(LEFT, TOP, res, res), **options,
        ) as dst:  # fmt: skip
            dst.write(dn, 1)
    qi = safe / "GRANULE" / f"{level}_{TILE}_A042345_20230801T060326" / "QI_DATA"
    qi.mkdir()
    (qi / "MSK_CLASSI_B00.jp2").write_bytes(b"")  # a QI file that must not be taken for a band
    return safe


if __name__ == "__main__":
    print(make_safe(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
