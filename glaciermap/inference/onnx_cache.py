"""A cache of the ONNX graphs that the CPU backends (ONNX Runtime, OpenVINO) run.

Exporting GlaViTU full size to ONNX takes about 2.7 s on an idle 2-core CPU, against 0.5 s for OpenVINO to
compile the graph, and every ``glaciermap map --backend onnxruntime|openvino`` run exported it again. The
graph depends only on the network (its class, structure and weights), the window size, the input channels and
the shape of the location input, so it is kept under a key made of those:

* :func:`graph_key`: the SHA-256 of the network's class, its source files, ``repr`` (layer structure and
  hyper-parameters), every state-dict tensor (name, dtype, shape, bytes), the window size, channels, location
  shape, ONNX opset and torch version;
* the cache folder is ``$GLACIERMAP_ONNX_CACHE``, else ``onnx/`` under :func:`glaciermap.io.default_cache_dir`
  (``$GLACIERMAP_CACHE`` or ``~/.cache/glaciermap``); ``GLACIERMAP_ONNX_CACHE=off`` turns it off;
* an entry is ``<key>.onnx`` plus ``<key>.json`` holding the graph's size and SHA-256, both written atomically;
  :func:`lookup` returns the graph only when both agree with the file, so a truncated or altered graph is
  exported again, never run;
* at most :data:`MAX_ENTRIES` graphs are kept (least recently used go first).

The cache is an optimisation: a folder that cannot be written only means every run exports again.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import shutil
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from glaciermap.io import atomic_output, default_cache_dir, write_json

__all__ = ["CACHE_ENV", "MAX_ENTRIES", "cache_dir", "graph_key", "lookup", "store"]

CACHE_ENV = "GLACIERMAP_ONNX_CACHE"
"""Environment variable: the cache folder, or ``off`` (also ``0``, ``false``, ``no``) for no cache."""

MAX_ENTRIES = 8
"""Most graphs kept (GlaViTU full size is 40 MB each)."""

FORMAT = 1
"""Bump when the export changes in a way the key does not see."""

_OFF = {"off", "0", "false", "no"}


def cache_dir() -> Path | None:
    """The cache folder, or ``None`` when ``$GLACIERMAP_ONNX_CACHE`` turns the cache off."""
    env = os.environ.get(CACHE_ENV)
    if env is not None and env.strip().lower() in _OFF:
        return None
    return Path(env) if env else default_cache_dir() / "onnx"


def _source_digest(network: nn.Module) -> str:
    """SHA-256 of the source files of the network's class and of every module class inside it."""
    h = hashlib.sha256()
    files = set()
    for module in network.modules():
        for cls in type(module).__mro__:
            if cls.__module__.split(".")[0] != "glaciermap":
                continue
            try:
                files.add(inspect.getsourcefile(sys.modules[cls.__module__]) or "")
            except (KeyError, TypeError):
                continue
    for name in sorted(f for f in files if f):
        h.update(Path(name).read_bytes())
    return h.hexdigest()


def graph_key(network: nn.Module, *, size: int, channels: int, location: Tensor | None, opset: int) -> str:
    """The cache key of a network's exported graph.

    Args:
        network: The network to export.
        size: Window side in pixels.
        channels: Input channels.
        location: Example location input (its shape after the batch counts), or ``None``.
        opset: ONNX opset of the export.

    Returns:
        A hexadecimal SHA-256.
    """
    h = hashlib.sha256()
    about = {
        "format": FORMAT,
        "class": f"{type(network).__module__}.{type(network).__qualname__}",
        "repr": repr(network),
        "size": size,
        "channels": channels,
        "location": None if location is None else list(location.shape[1:]),
        "opset": opset,
        "torch": torch.__version__,
        "source": _source_digest(network),
    }
    h.update(json.dumps(about, sort_keys=True).encode())
    for name, tensor in network.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def lookup(key: str, folder: Path | None) -> Path | None:
    """The cached graph of ``key`` if present and intact (size and SHA-256 as recorded), else ``None``.

    A hit marks the entry as recently used.
    """
    if folder is None:
        return None
    graph, record = folder / f"{key}.onnx", folder / f"{key}.json"
    try:
        meta = json.loads(record.read_text())
        if graph.stat().st_size != meta["bytes"] or _digest(graph) != meta["sha256"]:
            return None
        os.utime(graph)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return graph


def store(graph: Path, key: str, folder: Path | None) -> bool:
    """Copy an exported graph into the cache (atomically) and drop the least recently used beyond the limit.

    Returns:
        Whether it was stored (``False`` when the cache is off or its folder cannot be written).
    """
    if folder is None:
        return False
    try:  # the graph first: until its record is renamed in too, lookup() finds no entry
        with atomic_output(folder / f"{key}.onnx") as tmp:
            shutil.copyfile(graph, tmp)
            meta = {"bytes": tmp.stat().st_size, "sha256": _digest(tmp)}
        write_json(folder / f"{key}.json", meta, indent=None)
    except OSError:
        return False
    _evict(folder)
    return True


def _evict(folder: Path) -> None:
    try:
        graphs = [p for p in folder.glob("*.onnx") if not p.name.startswith(".")]  # not others' temporaries
        graphs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in graphs[MAX_ENTRIES:]:
        for path in (old, old.with_suffix(".json")):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
