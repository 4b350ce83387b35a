"""Turn users' own imagery into scene folders (``glaciermap prepare``) and the Karakoram preprocessing helpers.

* :mod:`~glaciermap.prepare.bands`: band files picked by name, with their scale, offset and nodata;
* :mod:`~glaciermap.prepare.sentinel2`: Sentinel-2 L1C/L2A SAFE products (digital numbers to reflectance,
  including the processing-baseline 04.00 offset);
* :mod:`~glaciermap.prepare.landsat`: Landsat Collection 2 Level-1 and Level-2 products (MTL scale and offset);
* :mod:`~glaciermap.prepare.scene`: resampling onto the optical grid, slope, range checks, and the writer;
* :mod:`~glaciermap.prepare.karakoram`: LST from Landsat 8, pan-sharpening, co-registration check
  (Karakoram paper Sec. 3.1).
"""

from glaciermap.prepare.bands import BandFile, pick_band_files
from glaciermap.prepare.karakoram import (
    Coregistration,
    GramSchmidtStats,
    PansharpenMethod,
    brovey_pansharpen,
    check_coregistration,
    coregistration_offset,
    emissivity_from_ndvi,
    gram_schmidt_pansharpen,
    gram_schmidt_stats,
    land_surface_temperature,
    ndvi,
    pansharpen_files,
)
from glaciermap.prepare.landsat import LandsatProduct, read_landsat
from glaciermap.prepare.scene import PrepareInputs, prepare_scene
from glaciermap.prepare.sentinel2 import Sentinel2Product, read_sentinel2

__all__ = [
    "BandFile",
    "Coregistration",
    "GramSchmidtStats",
    "LandsatProduct",
    "PansharpenMethod",
    "PrepareInputs",
    "Sentinel2Product",
    "brovey_pansharpen",
    "check_coregistration",
    "coregistration_offset",
    "emissivity_from_ndvi",
    "gram_schmidt_pansharpen",
    "gram_schmidt_stats",
    "land_surface_temperature",
    "ndvi",
    "pansharpen_files",
    "pick_band_files",
    "prepare_scene",
    "read_landsat",
    "read_sentinel2",
]
