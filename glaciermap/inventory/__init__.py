"""Glacier inventories from class rasters: outlines, ice divides, RGI 7 attributes, uncertainty, comparison.

Modules, one job each (``docs/inventory.md``):

* :mod:`~glaciermap.inventory.inputs`: class raster and DEM on the class grid, pixel sizes in metres.
* :mod:`~glaciermap.inventory.filtering`: median filter, minimum area, sliver merging.
* :mod:`~glaciermap.inventory.divides`: ice divides (Kienholz flow-sheds, or copied from a reference).
* :mod:`~glaciermap.terrain`: slope and aspect.
* :mod:`~glaciermap.inventory.attributes`: per-glacier attributes (RGI 7 names).
* :mod:`~glaciermap.inventory.uncertainty`: buffer-method area uncertainty.
* :mod:`~glaciermap.inventory.polygonise`: raster regions to polygons.
* :mod:`~glaciermap.datasets.vectors`: reading outline files (ours, RGI 6, RGI 7).
* :mod:`~glaciermap.inventory.compare`: comparing two inventories.
* :mod:`~glaciermap.inventory.pipeline`: the whole workflow, :func:`build_inventory`.
"""

from glaciermap.datasets.vectors import read_outlines
from glaciermap.inventory.attributes import expand_hypsometry, glacier_attributes
from glaciermap.inventory.compare import Comparison, compare_inventories, write_comparison
from glaciermap.inventory.divides import DivideMethod, DivideParams, split_complex
from glaciermap.inventory.filtering import Complexes, median_filter_classes, merge_slivers, scan_complexes
from glaciermap.inventory.pipeline import GLACIER_COLUMNS, Inventory, build_inventory, write_inventory
from glaciermap.inventory.polygonise import iter_polygons, polygonise
from glaciermap.inventory.uncertainty import buffer_uncertainty_km2
from glaciermap.terrain import slope_aspect

__all__ = [
    "GLACIER_COLUMNS",
    "Comparison",
    "Complexes",
    "DivideMethod",
    "DivideParams",
    "Inventory",
    "buffer_uncertainty_km2",
    "build_inventory",
    "compare_inventories",
    "expand_hypsometry",
    "glacier_attributes",
    "iter_polygons",
    "median_filter_classes",
    "merge_slivers",
    "polygonise",
    "read_outlines",
    "scan_complexes",
    "slope_aspect",
    "split_complex",
    "write_comparison",
    "write_inventory",
]
