"""Transforms: normalisation (its statistics travel with the weights) and batched training augmentation.

* :mod:`~glaciermap.transforms.normalisation`: per-band statistics (:class:`NormStats`), merging them over
  scenes, and the :class:`Normalize` module.
* :mod:`~glaciermap.transforms.augmentation`: on-device geometric and photometric augmentation (kornia).

The submodules are imported on first use of one of their names (PEP 562): normalisation statistics do not
pay kornia's import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glaciermap.transforms.augmentation import GeometricAugmentation, PhotometricAugmentation
    from glaciermap.transforms.normalisation import (
        ModalityStats,
        Normalize,
        NormMethod,
        NormStats,
        RunningStats,
        merge_stats,
    )

_MODULES = {
    "augmentation": ("GeometricAugmentation", "PhotometricAugmentation"),
    "normalisation": ("ModalityStats", "NormMethod", "NormStats", "Normalize", "RunningStats", "merge_stats"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import the submodule of a public name on first use (PEP 562)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, including the public names not imported yet."""
    return sorted(set(globals()) | set(__all__))


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
