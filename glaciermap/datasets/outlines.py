"""Scene + glacier outlines: rasterise RGI 6/7 or GLIMS polygons onto a scene grid and train or evaluate on it.

This is how the GlaViTU paper's independent-acquisition test data are built ("Data": reference outlines from
GLIMS, RGI and regional inventories over independently acquired scenes): any scene folder becomes a labelled
dataset once outlines are burned onto its grid.

* :func:`read_outlines` reads a shapefile or GeoPackage (any CRS), checks it, and reprojects it to the scene's
  CRS. GLIMS files with a ``line_type`` column are understood: ``glac_bound`` polygons are glacier,
  ``intrnl_rock`` polygons are burned back to non-glacier and ``debris_cov`` polygons are debris.
* :func:`rasterise_outlines` burns them with :func:`rasterio.features.rasterize` (a pixel is inside when its
  centre is): 0 background, 1 glacier (clean ice), 2 debris-covered ice where an optional debris layer covers
  glacier pixels. Interior rings (nunataks) of the polygons stay non-glacier.

  These two and :func:`write_outline_labels` live in the torch-free
  :mod:`glaciermap.datasets.outline_labels` and are re-exported here.
* :class:`SceneOutlinesDataset`: a :class:`~glaciermap.datasets.scene.SceneDataset` whose ``labels.tif`` is
  the rasterised outlines, written once to a cache folder (the scene folder is never modified).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

from glaciermap.constants import SCENE_FILES
from glaciermap.datasets.outline_labels import (
    GLIMS_DEBRIS,
    GLIMS_GLACIER,
    GLIMS_ROCK,
    rasterise_outlines,
    read_outlines,
    write_outline_labels,
)
from glaciermap.datasets.scene import ImageFormat, SceneDataset, Target
from glaciermap.datasets.scene_folder import LABELS, inspect_raster, inspect_scene
from glaciermap.transforms.stats import NormStats

__all__ = [
    "GLIMS_DEBRIS",
    "GLIMS_GLACIER",
    "GLIMS_ROCK",
    "SceneOutlinesDataset",
    "rasterise_outlines",
    "read_outlines",
    "write_outline_labels",
]


def _cache_key(*paths: Path | None) -> str:
    digest = hashlib.sha256()
    for p in paths:
        if p is None:
            continue
        digest.update(str(p.resolve()).encode())
        for f in sorted(p.parent.glob(p.stem + ".*")) if p.suffix == ".shp" else [p]:
            if not f.exists():
                continue  # reported by read_outlines
            st = f.stat()
            digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class SceneOutlinesDataset(SceneDataset):
    """A scene folder labelled by glacier outlines rasterised onto its grid (GlaViTU paper, "Data").

    Items are those of :class:`~glaciermap.datasets.scene.SceneDataset` (the sample contract); the labels come
    from the outlines instead of ``labels.tif`` (which, if present, is not read).

    Args:
        folder: The scene folder.
        outlines: Glacier outlines (shapefile/GeoPackage, RGI 6/7 or GLIMS, any CRS).
        modalities: Modalities to read, in channel order.
        debris: Optional debris-cover polygons; glacier pixels inside them become class 2.
        layer: Layer of ``outlines``.
        cache_dir: Where the rasterised labels are kept (default: a ``glaciermap-outlines`` folder in the
            system temporary directory); reused while the scene and vector files are unchanged.
        bands: Optional band subsets by modality.
        target: ``"binary"`` or ``"classes"`` (use ``"classes"`` with a debris layer).
        region_codes: Known region codes, in index order.
        norm: Statistics, ``"scene"`` or ``None`` (see :class:`~glaciermap.datasets.scene.SceneDataset`).
        image_format: ``"stacked"`` or ``"per_modality"``.

    Raises:
        InputError: If the scene or the outlines are unusable, or the outlines miss the scene.
    """

    def __init__(
        self,
        folder: str | Path,
        outlines: str | Path,
        modalities: Sequence[str] = ("optical", "dem"),
        *,
        debris: str | Path | None = None,
        layer: str | None = None,
        cache_dir: str | Path | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        target: Target = "binary",
        region_codes: Sequence[str] = (),
        norm: NormStats | Literal["scene"] | None = "scene",
        image_format: ImageFormat = "stacked",
    ) -> None:
        scene = inspect_scene(folder, list(modalities), labels="ignore")
        cache = (
            Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "glaciermap-outlines"
        )
        scene_key = _cache_key(*(info.path for info in scene.rasters.values()))
        key = _cache_key(Path(outlines), Path(debris) if debris is not None else None)
        layer_key = hashlib.sha256((layer or "").encode()).hexdigest()[:8]
        labels_path = cache / f"{scene.name}-{scene_key}-{key}-{layer_key}" / SCENE_FILES[LABELS]
        if not labels_path.is_file():
            write_outline_labels(scene, outlines, labels_path, debris=debris, layer=layer)
        info = inspect_raster(labels_path, "1 band uint8 labels", count=1, names=None)
        scene = replace(scene, rasters={**scene.rasters, LABELS: info})
        self.labels_path = labels_path
        super().__init__(
            folder,
            modalities,
            bands=bands,
            target=target,
            labels="required",
            region_codes=region_codes,
            norm=norm,
            image_format=image_format,
            scene=scene,
        )
