"""The labelling tool (``glaciermap label``): label split-images in the browser, saved at every change.

* :class:`~glaciermap.labelling.store.LabelStore`: the label table on disk (locked, atomic, undo).
* :class:`~glaciermap.labelling.scene.Scene`: quick-look, footprints, tiles and vario curves of a scene.
* :func:`~glaciermap.labelling.server.create_app`: the Flask app (needs the ``label`` extra).

Names are imported lazily, so ``import glaciermap.labelling`` does not need Flask.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glaciermap.labelling.scene import Scene, read_predictions
    from glaciermap.labelling.server import LabellingService, create_app, safe_subfolder
    from glaciermap.labelling.store import LabelStore

__all__ = ["LabelStore", "LabellingService", "Scene", "create_app", "read_predictions", "safe_subfolder"]

_WHERE = {
    "LabelStore": "glaciermap.labelling.store",
    "Scene": "glaciermap.labelling.scene",
    "read_predictions": "glaciermap.labelling.scene",
    "LabellingService": "glaciermap.labelling.server",
    "create_app": "glaciermap.labelling.server",
    "safe_subfolder": "glaciermap.labelling.server",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module 'glaciermap.labelling' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
