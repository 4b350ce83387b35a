"""Generate tiny fake Landsat 8 Collection 2 products (L2SP and L1TP) with the real naming, MTL and dtype.

Path/row 148/035 (Karakoram), UTM 43N (EPSG:32643), 30 m, uint16 GeoTIFFs ``LC08_..._SR_B1.TIF`` ...
``_SR_B7.TIF`` and ``_ST_B10.TIF`` (Level-2) or ``_B1.TIF`` ... ``_B7.TIF``, ``_B10.TIF`` (Level-1), and the
``_MTL.txt`` (ODL) with the real groups and keys. DN 0 is fill.

Level-2: reflectance ``REFLECTANCE[b]`` = DN * 2.75e-5 - 0.2; surface temperature ``ST_K`` = DN * 0.00341802 +
149.0. Level-1: TOA reflectance = (DN * 2e-5 - 0.1) / sin(SUN_ELEVATION); brightness temperature from
``K2 / ln(K1 / L + 1)``, L = DN * 3.342e-4 + 0.1.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

SIZE = 14
LEFT, TOP = 600000.0, 4000020.0
CRS = "EPSG:32643"
SUN_ELEVATION = 55.0
REFLECTANCE = {1: 0.30, 2: 0.31, 3: 0.33, 4: 0.35, 5: 0.42, 6: 0.12, 7: 0.09}
ST_K = 268.0
K1, K2 = 774.8853, 1321.0789
ML, AL = 3.342e-4, 0.1


def mtl(product: str, level: str, skip_key: str | None) -> str:
    """The MTL text (abridged real ODL)."""
    lines = ["GROUP = LANDSAT_METADATA_FILE", "  GROUP = PRODUCT_CONTENTS",
             f'    LANDSAT_PRODUCT_ID = "{product}"', f'    PROCESSING_LEVEL = "{level}"', "  END_GROUP = PRODUCT_CONTENTS",
             "  GROUP = IMAGE_ATTRIBUTES", '    SPACECRAFT_ID = "LANDSAT_8"', '    SENSOR_ID = "OLI_TIRS"',
             "    DATE_ACQUIRED = 2020-08-10", f"    SUN_ELEVATION = {SUN_ELEVATION}", "  END_GROUP = IMAGE_ATTRIBUTES"]  # fmt: skip
    if level == "L2SP":
        lines.append("  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")
        for b in range(1, 8):
            lines += [
                f"    REFLECTANCE_MULT_BAND_{b} = 2.75E-05",
                f"    REFLECTANCE_ADD_BAND_{b} = -0.200000",
            ]
        lines += ["  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS",
                  "  GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS",
                  "    TEMPERATURE_MULT_BAND_ST_B10 = 0.00341802", "    TEMPERATURE_ADD_BAND_ST_B10 = 149.0",
                  "  END_GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS"]  # fmt: skip
    lines.append("  GROUP = LEVEL1_RADIOMETRIC_RESCALING")
    lines += [f"    RADIANCE_MULT_BAND_10 = {ML}", f"    RADIANCE_ADD_BAND_10 = {AL}"]
    for b in range(1, 8):  # Level-1 values; in Level-2 MTLs the same keys exist here too (not to be used)
        lines += [f"    REFLECTANCE_MULT_BAND_{b} = 2.0000E-05", f"    REFLECTANCE_ADD_BAND_{b} = -0.100000"]
    lines += ["  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING", "  GROUP = LEVEL1_THERMAL_CONSTANTS",
              f"    K1_CONSTANT_BAND_10 = {K1}", f"    K2_CONSTANT_BAND_10 = {K2}",
              "  END_GROUP = LEVEL1_THERMAL_CONSTANTS", "END_GROUP = LANDSAT_METADATA_FILE", "END"]  # fmt: skip
    if skip_key is not None:
        lines = [line for line in lines if skip_key not in line]
    return "\n".join(lines) + "\n"


def write(path: Path, dn: np.ndarray) -> None:
    """Write one uint16 band GeoTIFF with fill value 0."""
    with rasterio.open(
        path, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="uint16", crs=CRS,
        transform=from_origin(LEFT, TOP, 30, 30), nodata=0,
    ) as dst:  # fmt: skip
        dst.write(dn, 1)


def make_landsat(
    root: Path, *, level: str = "L2SP", skip: tuple[int, ...] = (), skip_key: str | None = None
) -> Path:
    """Write a product folder under ``root`` and return it.

    Args:
        root: Parent folder.
        level: ``"L2SP"`` or ``"L1TP"``.
        skip: Band numbers not to write.
        skip_key: Drop MTL lines containing this text (a product with incomplete metadata).
    """
    product = f"LC08_{level}_148035_20200810_20200918_02_T1"
    folder = root / product
    folder.mkdir(parents=True)
    (folder / f"{product}_MTL.txt").write_text(mtl(product, level, skip_key))
    sin_sun = math.sin(math.radians(SUN_ELEVATION))
    for b, r in REFLECTANCE.items():
        if b in skip:
            continue
        if level == "L2SP":
            dn = np.full((SIZE, SIZE), round((r + 0.2) / 2.75e-5), dtype=np.uint16)
            name = f"{product}_SR_B{b}.TIF"
        else:
            dn = np.full((SIZE, SIZE), round((r * sin_sun + 0.1) / 2e-5), dtype=np.uint16)
            name = f"{product}_B{b}.TIF"
        dn[0, 0] = 0
        write(folder / name, dn)
    if level == "L2SP":
        write(
            folder / f"{product}_ST_B10.TIF",
            np.full((SIZE, SIZE), round((ST_K - 149.0) / 0.00341802), np.uint16),
        )
    else:
        radiance = K1 / (math.exp(K2 / ST_K) - 1.0)
        write(folder / f"{product}_B10.TIF", np.full((SIZE, SIZE), round((radiance - AL) / ML), np.uint16))
    return folder


if __name__ == "__main__":
    print(make_landsat(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
