"""Class raster -> polygons, for the inventory: :func:`iter_polygons` and :func:`polygonise`.

Both live in :mod:`glaciermap.vector` (the base layer, so that mapping can vectorise its uncertain regions
too); this module keeps their inventory names.
"""

from __future__ import annotations

from glaciermap.vector import iter_polygons, polygonise

__all__ = ["iter_polygons", "polygonise"]
