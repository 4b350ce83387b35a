"""Small IO helpers shared by every writer and reader.

* :func:`atomic_output` writes to a temporary name beside the final one and renames it only when the
  block succeeds, so an interrupted run never leaves a file that looks complete (conventions:
  Geospatial correctness).
* :func:`open_raster` opens a raster and turns rasterio's errors into an :class:`~glaciermap.errors.InputError`
  naming the file.
* :func:`check_output_dir` / :func:`check_output_file` reject an output location that cannot work (an
  existing file where a folder is expected or the reverse, a path under a file, a read-only place) with one
  clear line, before any work is done; :func:`atomic_outputs` renames several files as one.
* :func:`output_lock` keeps two runs from writing into one output folder at once.
* :func:`default_cache_dir` is where generated data and exported graphs are cached (``$GLACIERMAP_CACHE``).
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


def default_cache_dir() -> Path:
    """Where generated data and exported graphs are cached: ``$GLACIERMAP_CACHE`` or ``~/.cache/glaciermap``."""
    env = os.environ.get("GLACIERMAP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "glaciermap"


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


def _existing_ancestor(path: Path) -> Path:
    """The nearest existing path among ``path`` and its parents."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_writable_place(path: Path, what: str, start: Path) -> None:
    """Raise unless the nearest existing path among ``start`` and its parents is a writable folder."""
    anc = _existing_ancestor(start)
    if not anc.is_dir():
        raise InputError(f"{what} {path} lies under {anc}, which is a file; expected a folder there")
    if not os.access(anc, os.W_OK):
        raise InputError(f"{what} {path}: {anc} is not writable (permission denied or read-only file system)")


def check_output_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Check that ``path`` can be (or is) an output folder; nothing is created.

    Args:
        path: The output folder.
        what: How the user named it (the option), for messages.

    Returns:
        The path.

    Raises:
        InputError: If it is an existing file, lies under a file, or cannot be written.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{what} {p} is an existing file; expected a folder (new or existing)")
    _check_writable_place(p, what, p)
    return p


def check_output_file(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Check that ``path`` can be written as a file; nothing is created.

    Args:
        path: The output file.
        what: How the user named it (the option), for messages.

    Returns:
        The path.

    Raises:
        InputError: If it is an existing folder, lies under a file, or cannot be written.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {p} is an existing folder; expected a file name")
    _check_writable_place(p, what, p.parent)
    return p


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike[str]) -> Iterator[list[Path]]:
    """Like :func:`atomic_output` for several files that belong together: all are renamed, or none.

    Every final name is checked before the block runs; if a rename still fails, the files already renamed
    are removed again (their earlier versions restored), so no mix of old and new outputs is left.

    Args:
        *paths: The final file names.

    Yields:
        The temporary paths, in the same order.

    Raises:
        InputError: If a final name is an existing folder or cannot be written.
    """
    finals = [check_output_file(p, "output") for p in paths]
    with contextlib.ExitStack() as stack:
        temps = [stack.enter_context(_temporary(f)) for f in finals]
        yield temps
        _commit(list(zip(temps, finals, strict=True)))


@contextlib.contextmanager
def _temporary(final: Path) -> Iterator[Path]:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.partial-{uuid.uuid4().hex[:8]}{final.suffix}")
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        for aux in tmp.parent.glob(tmp.name + ".*"):
            aux.unlink()


def _commit(pairs: list[tuple[Path, Path]]) -> None:
    """Rename every ``tmp -> final``; on failure undo the renames already done."""
    backups: list[tuple[Path, Path | None]] = []
    try:
        for tmp, final in pairs:
            backup = None
            if final.exists():
                backup = final.with_name(f".{final.name}.previous-{uuid.uuid4().hex[:8]}")
                os.replace(final, backup)
            backups.append((final, backup))
            os.replace(tmp, final)
    except BaseException:
        for final, backup in reversed(backups):
            with contextlib.suppress(OSError):
                if final.exists():
                    final.unlink()
                if backup is not None:
                    os.replace(backup, final)
        raise
    for _, backup in backups:
        if backup is not None:
            with contextlib.suppress(OSError):
                backup.unlink()


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str], what: str = "--out") -> Iterator[Path]:
    """Hold ``folder/.glaciermap.lock`` while writing into ``folder``.

    A lock left by a process that no longer runs (killed) is taken over.

    Args:
        folder: The output folder (created if needed).
        what: How the user named it, for messages.

    Yields:
        The lock file.

    Raises:
        InputError: If another running glaciermap process holds the folder.
    """
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    lock = d / ".glaciermap.lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _lock_owner(lock)
            if pid is not None and pid != os.getpid() and _alive(pid):
                raise InputError(
                    f"{what} {d} is in use by another glaciermap run (process {pid}); wait for it to finish or "
                    "choose another folder"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise InputError(
            f"{what} {d}: cannot take the lock {lock.name}; expected a folder only this run writes"
        )
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _lock_owner(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip() or "0") or None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_error_detail(err: BaseException) -> str:
    """A short reason why ``torch.load`` or safetensors could not read a file, for one-line errors."""
    text = str(err).strip()
    if not text:
        return type(err).__name__
    if (
        text.startswith("Weights only load failed")
        or "Unsupported operand" in text
        or "invalid load key" in text
    ):
        return "not a PyTorch checkpoint, or one that holds code rather than only tensors"
    return text.splitlines()[0][:160]


def write_vector(frame: Any, path: str | os.PathLike[str], layer: str) -> None:
    """Write a GeoDataFrame layer to a GeoPackage, turning OGR's errors into one clear error.

    GDAL/OGR reports a full disk as an SQLite or feature error; when the file's file system has (almost) no
    free space left, the error becomes ``OSError(ENOSPC)`` (the command line says "no space left"), otherwise
    an :class:`~glaciermap.errors.InputError` naming the file.

    Args:
        frame: The GeoDataFrame.
        path: The GeoPackage (usually a temporary name from :func:`atomic_output`).
        layer: The layer name.

    Raises:
        OSError: With ``errno.ENOSPC`` when the disk is full.
        InputError: For any other failure of the driver.
    """
    import errno
    import shutil

    try:
        frame.to_file(path, layer=layer, driver="GPKG")
    except OSError:
        raise  # already an operating-system error (the command line names it)
    except Exception as err:  # pyogrio and fiona raise their own error classes
        folder = Path(path).parent
        try:
            full = shutil.disk_usage(folder).free < 4 * 1024 * 1024
        except OSError:
            full = False
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: cannot write layer {layer!r} ({detail})") from None
