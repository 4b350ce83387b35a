"""Canonical names shared by every part of glaciermap.

One place for band names, modality keys, class ids and the scene-folder file layout, so that datasets,
models, writers and the inventory agree (see ``docs/glossary.md``).
"""

from __future__ import annotations

from typing import Final, Literal

Modality = Literal["optical", "dem", "thermal", "sar", "sar_cross", "insar"]
"""Fixed modality keys (conventions: Names)."""

MODALITIES: Final[tuple[Modality, ...]] = ("optical", "dem", "thermal", "sar", "sar_cross", "insar")

BANDS: Final[dict[str, tuple[str, ...]]] = {
    "optical": ("blue", "green", "red", "nir", "swir1", "swir2"),
    "dem": ("elevation", "slope"),
    "thermal": ("thermal",),
    "sar": ("sar_asc", "sar_desc"),
    "sar_cross": ("sar_cross_asc", "sar_cross_desc"),
    "insar": ("coherence_asc", "coherence_desc"),
}
"""Canonical band order of every modality; the band descriptions in the GeoTIFFs use these names.

``sar`` is co-polarised and ``sar_cross`` cross-polarised backscatter (ascending, descending), ``insar`` the
co-polarised InSAR coherence: the three SAR groups of the GlaViTU paper's SAR/InSAR track (the reference code's
``co_pol_sar``, ``cross_pol_sar`` and ``in_sar``)."""

SCENE_FILES: Final[dict[str, str]] = {
    "optical": "optical.tif",
    "dem": "dem.tif",
    "thermal": "thermal.tif",
    "sar": "sar.tif",
    "sar_cross": "sar_cross.tif",
    "insar": "insar.tif",
    "labels": "labels.tif",
}
"""File name of each raster inside a scene folder."""

SCENE_METADATA: Final[str] = "scene.json"
"""Name of the JSON metadata file of a scene folder."""

IGNORE_INDEX: Final[int] = 255
"""Label value for nodata, cloud and outside-scene pixels everywhere (datasets, losses, metrics, writers)."""

BACKGROUND: Final[int] = 0
CLEAN_ICE: Final[int] = 1
DEBRIS_ICE: Final[int] = 2

CLASS_NAMES: Final[dict[int, tuple[str, ...]]] = {
    2: ("background", "glacier"),
    3: ("background", "clean_ice", "debris_ice"),
}
"""Class names of the binary (glacier / not) and three-class targets."""

BAND_RANGES: Final[dict[str, tuple[float, float, str]]] = {
    **{b: (-0.2, 3.0, "top-of-atmosphere reflectance (0-1, not scaled integers)") for b in BANDS["optical"]},
    "elevation": (-500.0, 9000.0, "elevation in metres"),
    "slope": (0.0, 90.0, "slope in degrees"),
    "thermal": (150.0, 400.0, "brightness or land-surface temperature in kelvin"),
    "sar_asc": (0.0, 1000.0, "backscatter sigma0 in linear units (not dB)"),
    "sar_desc": (0.0, 1000.0, "backscatter sigma0 in linear units (not dB)"),
    "coherence_asc": (0.0, 1.0, "InSAR coherence (0-1)"),
    "coherence_desc": (0.0, 1.0, "InSAR coherence (0-1)"),
}
"""Physically plausible range and unit of every canonical band (generous: a scene outside it was almost
certainly stored in other units, e.g. reflectance as DN x 10000, temperature in degrees Celsius, SAR in dB)."""

RASTER_NODATA: Final[float] = -9999.0
"""Nodata value written into every float raster of a scene folder."""

UNSEEN: Final[str] = "unseen"
"""Name of the last slot of a region-encoding one-hot: a region the model has not seen (GlaViTU paper,
"Strategies")."""

IMAGE_FILL: Final[float] = 0.0
"""Value of invalid image pixels after normalisation, in training and in mapping alike (the band mean for
z-score, the minimum for min-max)."""
