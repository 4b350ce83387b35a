"""CPU inference backends for scene mapping: PyTorch (default), ONNX Runtime, OpenVINO.

A backend turns a batch of normalised windows ``(B, C, S, S)`` into class probabilities ``(B, K, S, S)``;
everything around it (reading, normalisation, windows, blending, writing) is the same for all backends, so
they give the same maps up to the arithmetic of the runtimes (float32 everywhere: measured within 1e-5 of
PyTorch on GlaViTU, tested to 1e-4).

* ``"torch"``: the model itself (eager, optionally channels-last and bf16 autocast); any device.
* ``"onnxruntime"``: the network is exported once per predictor to ONNX
  (:func:`glaciermap.models.onnx.export_network`, batch dynamic, window size fixed, softmax included; kept in
  the cache of :mod:`glaciermap.inference.onnx_cache`, so later runs of the same network skip the export) and
  run by ONNX Runtime's CPU execution provider, float32. Needs the ``onnx`` extra.
* ``"openvino"``: the same ONNX graph compiled by OpenVINO for the CPU, float32 (``precision="bf16"``: its
  bf16 inference precision, checked against float32 on one window first, :func:`check_bf16_session`). Needs
  the ``openvino`` extra.

Both non-PyTorch backends run on the CPU with ``torch.get_num_threads()`` threads, in evaluation mode (no
Monte-Carlo dropout). Measured speeds are in ``benchmarks/RESULTS.md`` ("CPU backends").
"""

from __future__ import annotations

import contextlib
import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from glaciermap.errors import ConfigError
from glaciermap.inference import onnx_cache
from glaciermap.inference.options import Backend

__all__ = [
    "BACKEND_PACKAGES",
    "BF16_CHECK_TOLERANCE",
    "Backend",
    "WindowFunction",
    "check_backend",
    "check_bf16_session",
    "compile_backend",
]

BACKEND_PACKAGES: dict[str, tuple[str, str]] = {
    "onnxruntime": ("onnxruntime", "onnx"),
    "openvino": ("openvino", "openvino"),
}
"""Backend -> (Python package of its runtime, glaciermap extra that installs it with ``onnx`` for the export)."""

WindowFunction = Callable[[Tensor, Tensor | None], Tensor]
"""``(windows (B, C, S, S) float32, location or None) -> probabilities (B, K, S, S) float32`` on the CPU."""


def check_backend(backend: str, device: torch.device, precision: str, mc_passes: int) -> None:
    """Refuse a backend that cannot run the asked-for configuration, before any work.

    Args:
        backend: The backend name.
        device: The resolved compute device.
        precision: The resolved precision (``"32"`` or ``"bf16"``).
        mc_passes: Monte-Carlo dropout passes.

    Raises:
        ConfigError: If the backend is unknown, its package is not installed (naming the extra), it is asked
            to run on a GPU, with Monte-Carlo dropout, or (ONNX Runtime) in bf16.
    """
    if backend == "torch":
        return
    if backend not in BACKEND_PACKAGES:
        raise ConfigError(f"backend is {backend!r}; expected one of torch, {', '.join(BACKEND_PACKAGES)}")
    package, extra = BACKEND_PACKAGES[backend]
    for needed in (package, "onnx"):
        if importlib.util.find_spec(needed) is None:
            raise ConfigError(
                f"backend {backend!r} needs the {needed} package: pip install 'glaciermap[{extra}]' "
                "(or use backend torch)"
            )
    if device.type != "cpu":
        raise ConfigError(f"backend {backend!r} runs on the CPU; use device cpu (or auto), or backend torch")
    if mc_passes > 1:
        raise ConfigError(
            f"Monte-Carlo dropout needs backend torch (the {backend} graph is exported without dropout)"
        )
    if backend == "onnxruntime" and precision == "bf16":
        raise ConfigError(
            "backend 'onnxruntime' computes in float32; use precision 32 (or auto), or openvino"
        )


def compile_backend(
    backend: Backend,
    network: nn.Module,
    *,
    size: int,
    channels: int,
    location: Tensor | None,
    precision: str,
    threads: int | None = None,
) -> WindowFunction:
    """Export the network once and return the window function of an ONNX Runtime or OpenVINO session.

    The exported graph is kept in the cache of :mod:`glaciermap.inference.onnx_cache` (keyed by the network's
    class, source, structure and weights, the window size, channels and location shape), so later runs with the
    same network skip the export (2.7 s of the 3.2 s setup for GlaViTU full size on an idle 2-core CPU).

    Args:
        backend: ``"onnxruntime"`` or ``"openvino"``.
        network: The segmentation network (takes normalised windows), on the CPU.
        size: Window side in pixels.
        channels: Input channels.
        location: Example location input (batch first), or ``None`` for networks without one.
        precision: ``"32"``, or ``"bf16"`` (OpenVINO only).
        threads: Threads of the runtime (default ``torch.get_num_threads()``).

    Returns:
        The window function.

    Raises:
        ConfigError: If ``backend`` is not one of the two.
    """
    from glaciermap.models.onnx import OPSET, export_network

    if backend not in BACKEND_PACKAGES:
        raise ConfigError(f"backend is {backend!r}; expected onnxruntime or openvino")
    threads = threads or torch.get_num_threads()
    network = network.cpu()
    folder = onnx_cache.cache_dir()
    key = onnx_cache.graph_key(network, size=size, channels=channels, location=location, opset=OPSET)
    cached = onnx_cache.lookup(key, folder)
    run: WindowFunction | None = None
    if cached is not None:
        try:
            run = _session(backend, cached, threads, precision)
        except Exception:  # a graph the runtime cannot load is exported again
            with contextlib.suppress(OSError):
                cached.unlink(missing_ok=True)
    if run is None:
        with tempfile.TemporaryDirectory(prefix="glaciermap-backend-") as tmp:
            path = Path(tmp) / "network.onnx"
            export_network(network, path, size=size, channels=channels, location=location)
            onnx_cache.store(path, key, folder)
            run = _session(backend, path, threads, precision)
    if precision == "bf16":
        check_bf16_session(run, network, size=size, channels=channels, location=location, backend=backend)
    return run


BF16_CHECK_TOLERANCE = 0.2
"""Largest probability difference between a bf16 session and the float32 network on the check window
(:func:`check_bf16_session`); bf16 rounding moves GlaViTU's probabilities by about 0.02."""


def check_bf16_session(
    run: WindowFunction,
    network: nn.Module,
    *,
    size: int,
    channels: int,
    location: Tensor | None,
    backend: str,
) -> None:
    """Refuse a bf16 session whose probabilities differ from the float32 network's beyond bf16 rounding.

    OpenVINO's bf16 kernels are wrong for some layer shapes on CPUs with AMX (measured 2026-12-01: small GlaViTU,
    whose 16-channel patch embedding also trips oneDNN's bf16 convolution in PyTorch, mapped with probabilities
    up to 0.93 off and half the labels changed; ``benchmarks/RESULTS.md``, "Precision on a CPU with AMX"). One
    seeded standard-normal window (the scale of normalised bands) runs through the session and through the
    float32 network.

    Args:
        run: The bf16 window function.
        network: The network it was compiled from (float32, CPU).
        size: Window side.
        channels: Input channels.
        location: Example location input, or ``None``.
        backend: The backend's name, for the message.

    Raises:
        ConfigError: When the largest difference exceeds :data:`BF16_CHECK_TOLERANCE`.
    """
    x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0))
    where = None if location is None else location[:1].detach().cpu().float()
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        want = torch.softmax(network(x, where)["out"].float(), dim=1)
    diff = float((run(x, where) - want).abs().max())
    if not diff <= BF16_CHECK_TOLERANCE:
        raise ConfigError(
            f"{backend} bf16 on this CPU: probabilities of a test window differ from float32 by {diff:.2f} "
            f"(expected at most {BF16_CHECK_TOLERANCE}: a bf16 kernel of this CPU is wrong for a layer of this "
            "network); use precision 32 or the torch backend"
        )


def _session(backend: Backend, path: Path, threads: int, precision: str) -> WindowFunction:
    """The window function of ``backend`` running the graph at ``path`` (loaded fully before returning)."""
    if backend == "onnxruntime":
        return _onnxruntime(path, threads)
    return _openvino(path, threads, precision)


def _feeds(x: Tensor, location: Tensor | None) -> dict[str, Any]:
    feeds: dict[str, Any] = {"image": np.ascontiguousarray(x.detach().cpu().float().numpy())}
    if location is not None:
        feeds["location"] = np.ascontiguousarray(location.detach().cpu().float().numpy())
    return feeds


def _onnxruntime(path: Path, threads: int) -> WindowFunction:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(x: Tensor, location: Tensor | None) -> Tensor:
        return torch.from_numpy(session.run(["probabilities"], _feeds(x, location))[0])

    return run


def _openvino(path: Path, threads: int, precision: str) -> WindowFunction:
    import openvino as ov

    core = ov.Core()
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    request = compiled.create_infer_request()
    output = compiled.output("probabilities")

    def run(x: Tensor, location: Tensor | None) -> Tensor:
        result = request.infer(_feeds(x, location))
        return torch.from_numpy(np.array(result[output], dtype=np.float32, copy=True))

    return run
