"""The synthetic world's held-out scenes: the default reference of ``glaciermap evaluate``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from glaciermap.io import default_cache_dir, write_json

HELDOUT_SCENES: tuple[tuple[str, str, int], ...] = (
    ("heldout-karakoram", "karakoram", 90_001),
    ("heldout-svalbard", "svalbard", 90_002),
    ("heldout-alaska", "alaska", 90_003),
)
"""(folder name, preset, seed) of the synthetic held-out scenes, one per preset (seeds not used for training)."""
HELDOUT_SIZE: tuple[int, int] = (512, 512)
"""Size (rows, columns) of each held-out scene (10 m pixels)."""
HELDOUT_VERSION = 1
"""Bump to regenerate cached held-out scenes after a generator change."""


def default_reference(
    cache_dir: str | os.PathLike[str] | None = None, size: tuple[int, int] | None = None
) -> Path:
    """The synthetic world's held-out scenes, generated once into a cache.

    One scene per preset (karakoram / HMA, svalbard / SVAL, alaska / AWA) with the fixed seeds of
    :data:`HELDOUT_SCENES`, at 10 m, written to
    ``<cache_dir>/heldout-v<HELDOUT_VERSION>-<hash of the generator version>-<rows>x<cols>/`` (a new generator
    version regenerates them).
    A ``heldout.json`` written after the last scene marks the set complete; a later call reuses it.

    Args:
        cache_dir: The cache root; default :func:`default_cache_dir`.
        size: Scene size (rows, columns); default :data:`HELDOUT_SIZE`.

    Returns:
        The directory of scene folders.
    """
    from glaciermap.synthetic.generate import GENERATOR_VERSION, generate_scene

    size = size or HELDOUT_SIZE
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    generator = hashlib.sha256(GENERATOR_VERSION.encode()).hexdigest()[:8]
    out = root / f"heldout-v{HELDOUT_VERSION}-{generator}-{size[0]}x{size[1]}"
    marker = out / "heldout.json"
    if marker.is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name, preset, seed in HELDOUT_SCENES:
        generate_scene(out / name, preset=preset, size=size, seed=seed, pixel_size=10.0)
    record = {
        "version": HELDOUT_VERSION,
        "generator_version": GENERATOR_VERSION,
        "size": list(size),
        "scenes": [list(s) for s in HELDOUT_SCENES],
    }
    write_json(marker, record)
    return out
