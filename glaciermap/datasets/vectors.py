"""Reading glacier outline files (ours, RGI 6, RGI 7 or any GLIMS-like inventory).

Field names differ between inventories; :data:`ID_FIELDS` and :data:`AREA_FIELDS` list the ones
recognised, in order of preference (ours ``glac_id``, RGI 7 ``rgi_id``, RGI 6 ``RGIId``, GLIMS
``glac_id``/``GLIMS_ID``...).
"""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from glaciermap.errors import InputError

ID_FIELDS: tuple[str, ...] = ("glac_id", "rgi_id", "RGIId", "RGI_Id", "GLIMSId", "GLIMS_ID", "glims_id", "id")
"""Glacier identifier columns, in order of preference (ours, RGI 7, RGI 6, GLIMS, generic)."""

AREA_FIELDS: tuple[str, ...] = ("area_km2", "Area", "AREA", "area")
"""Area columns in km2 (ours and RGI 7, RGI 6, GLIMS), in order of preference."""

OUTLINE_SUFFIXES: tuple[str, ...] = (".gpkg", ".shp", ".geojson", ".json", ".fgb")
"""File types accepted for outlines."""


def read_outlines(path: str | os.PathLike[str], what: str, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read glacier outlines, keeping polygons only.

    Args:
        path: A GeoPackage, shapefile, GeoJSON or FlatGeobuf.
        what: What the file is (for error messages), e.g. ``"reference inventory"``.
        layer: Layer of a multi-layer file (default: the ``glaciers`` layer of a GeoPackage that has one,
            otherwise the first layer).

    Returns:
        The polygons with their attributes, index reset.

    Raises:
        InputError: If the file is missing, unreadable, has no CRS or holds no polygons.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found (expected the {what} as .gpkg or .shp)")
    if p.suffix.lower() not in OUTLINE_SUFFIXES:
        raise InputError(f"{p}: unsupported file type {p.suffix!r} for the {what} (expected .gpkg or .shp)")
    try:
        if layer is None and p.suffix.lower() == ".gpkg":
            import pyogrio

            names = [str(n) for n in pyogrio.list_layers(p)[:, 0]]
            layer = "glaciers" if "glaciers" in names else None
        gdf = gpd.read_file(p, layer=layer)
    except Exception as err:  # pyogrio raises several error types for broken files
        raise InputError(f"{p}: could not read the {what}: {err}") from None
    if gdf.crs is None:
        raise InputError(f"{p}: the {what} has no CRS (expected georeferenced outlines)")
    if len(gdf):
        kinds = shapely.get_type_id(gdf.geometry.values)
        gdf = gdf[(kinds == 3) | (kinds == 6)]  # Polygon, MultiPolygon
    if len(gdf) == 0:
        raise InputError(f"{p}: the {what} holds no polygons (expected glacier outlines)")
    return gdf.reset_index(drop=True)


def find_field(gdf: pd.DataFrame, candidates: tuple[str, ...]) -> str | None:
    """The first of ``candidates`` present among the columns of ``gdf`` (None if none is).

    Args:
        gdf: A table.
        candidates: Column names in order of preference.

    Returns:
        The column name or None.
    """
    for name in candidates:
        if name in gdf.columns:
            return name
    return None
