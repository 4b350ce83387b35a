"""Transforms: normalisation (its statistics travel with the weights) and batched training augmentation.

* :mod:`~glaciermap.transforms.stats`: per-band statistics (:class:`NormStats`), merging and streaming them
  (numpy only: no torch);
* :mod:`~glaciermap.transforms.normalisation`: the :class:`Normalize` module (torch);
* :mod:`~glaciermap.transforms.augmentation`: on-device geometric and photometric augmentation (kornia).

The submodules are imported on first use of one of their names (PEP 562): normalisation statistics do not
pay kornia's (nor torch's) import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glaciermap.lazy import lazy_exports

if TYPE_CHECKING:
    from glaciermap.transforms.augmentation import GeometricAugmentation, PhotometricAugmentation
    from glaciermap.transforms.normalisation import Normalize
    from glaciermap.transforms.stats import ModalityStats, NormMethod, NormStats, RunningStats, merge_stats

_MODULES = {
    "augmentation": ("GeometricAugmentation", "PhotometricAugmentation"),
    "normalisation": ("Normalize",),
    "stats": ("ModalityStats", "NormMethod", "NormStats", "RunningStats", "merge_stats"),
}
__getattr__, __dir__ = lazy_exports(__name__, _MODULES, globals())

__all__ = [
    "GeometricAugmentation",
    "ModalityStats",
    "NormMethod",
    "NormStats",
    "Normalize",
    "PhotometricAugmentation",
    "RunningStats",
    "merge_stats",
]
