"""Small IO helpers shared by every writer and reader.

* :func:`atomic_output` writes to a temporary name beside the final one and renames it only when the
  block succeeds, so an interrupted run never leaves a file that looks complete (conventions:
  Geospatial correctness).
* :func:`open_raster` opens a raster and turns rasterio's errors into an :class:`~glaciermap.errors.InputError`
  naming the file.
* :func:`json_text` / :func:`write_json` write strict JSON (no ``NaN`` or ``Infinity``, which are not JSON):
  numpy scalars and arrays become numbers and lists, and a float that is not finite becomes ``null``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import rasterio
from rasterio.errors import RasterioIOError

from glaciermap.errors import InputError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block ends without error.

    The temporary name keeps the final suffix (``.tif``, ``.gpkg``) so drivers chosen by extension work.
    On error the temporary file is removed and the exception propagates; an existing file at ``path`` is
    left untouched.

    Args:
        path: The final file name.

    Yields:
        The temporary path to write to.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.partial-{uuid.uuid4().hex[:8]}{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
        for aux in tmp.parent.glob(tmp.name + ".*"):  # sidecars such as .aux.xml or .ovr
            aux.unlink()


def open_raster(path: str | os.PathLike[str], what: str = "raster") -> Any:
    """Open a raster for reading, naming the file in any error.

    Args:
        path: The raster file.
        what: What the file is expected to hold, used in the error message (e.g. ``"optical bands"``).

    Returns:
        An open ``rasterio`` dataset (use it as a context manager).

    Raises:
        InputError: If the file does not exist or is not a raster rasterio can read.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found (expected a GeoTIFF with the {what})")
    try:
        return rasterio.open(p)
    except RasterioIOError as err:
        raise InputError(f"{p}: not a readable raster (expected a GeoTIFF with the {what}): {err}") from None


def _plain(value: Any) -> Any:
    """``value`` with numpy types as Python ones and non-finite floats as ``None`` (recursively)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):  # numpy scalars and arrays
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def json_text(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` (see the module docstring), ending with a newline.

    Args:
        obj: Dicts, lists, strings, numbers, booleans, ``None``, numpy values and paths.
        indent: Indentation (``None``: one line).

    Returns:
        The JSON text.
    """
    return json.dumps(_plain(obj), indent=indent, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> Path:
    """Write strict JSON atomically (:func:`json_text`, :func:`atomic_output`).

    Args:
        path: The file to write.
        obj: The content.
        indent: Indentation.

    Returns:
        The path written.
    """
    text = json_text(obj, indent=indent)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
