"""A tiny synthetic crevasse world shared by the classification tests (generated, not committed).

``tiny_world(folder)`` writes 22 x 4 split-images of 30 x 40 pixels (88 tiles, all 11 classes, vario vectors
of length 24 at the default lag threshold 0.8) with :func:`glaciermap.synthetic.crevasses.generate_crevasse_world`.
"""

from __future__ import annotations

from pathlib import Path

from glaciermap.synthetic.crevasses import generate_crevasse_world

TILES = (22, 4)
TILE_SIZE = (30, 40)
VARIO_FEATURES = 24


def tiny_world(folder: Path, seed: int = 1) -> Path:
    """Write the tiny world into ``folder`` and return it."""
    return generate_crevasse_world(folder, seed=seed, tiles=TILES, tile_size=TILE_SIZE)
