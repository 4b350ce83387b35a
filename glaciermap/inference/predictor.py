"""Streaming sliding-window prediction of a whole scene, with bounded memory.

:class:`ScenePredictor` turns a scene folder into a stream of :class:`Strip` s, full-width bands of rows of
blended class probabilities, top to bottom. The scene is processed one row of windows at a time
(:mod:`glaciermap.inference.windows` defines the grid):

1. A background thread reads each input row of the padded scene exactly once (:mod:`~.source`); the rows of
   the current row of windows live in a ring buffer of ``S`` rows (``S`` = window size) and full width on the
   compute device, so each input pixel is also copied to the device once.
2. The windows of that row are cut from the buffer, batched, predicted (optionally with test-time
   augmentation and Monte-Carlo dropout), multiplied by the blending weight and added into an accumulator of
   ``S`` rows x full width x ``K`` classes on the compute device.
3. The first ``stride`` rows of the accumulator receive no further contribution: they are divided by the
   blending denominator (separable, see :meth:`~.windows.WindowGrid.weight_sums`), cropped to the scene
   and yielded; the accumulator shifts up by ``stride`` rows.

Peak memory is therefore ``O(S x width x (C + K))``, independent of the scene's height; a
20,000-pixel-wide scene with 8 input channels, 2 classes and ``S = 384`` needs about 0.5 GB of buffers.

The windows are predicted by an inference copy of the model made for each scene
(:func:`~glaciermap.models.folding.fold_for_inference`: batch norm folded into the convolutions, the same
function with less work); the model itself is not moved or switched to evaluation mode.

On CUDA the model runs under ``torch.autocast(dtype=torch.bfloat16)``; on a CPU in float32, or in bf16 where the
CPU computes it natively and a short probe finds it clearly faster (:func:`auto_bf16`), or on request; tensors
are channels-last by default (measured faster on the CPU too). On an x86 CPU with AVX2 but no AVX-512 the float32 3x3
convolutions are Winograd convolutions on contiguous tensors instead (option ``convolution``,
:mod:`glaciermap.models.winograd`). Probabilities and the accumulator are float32 on every device, so CPU and GPU
give the same numbers up to the precision of the model's arithmetic.

Monte-Carlo dropout (``mc_passes = N > 1``): every window is predicted ``N`` times with dropout switched on
(:meth:`~glaciermap.models.base.SegmentationModel.set_mc_dropout`); the mean of the ``N`` softmax outputs
is blended (GlaViTU paper, "Monte-Carlo dropout": "the average softmax scores among all forward passes") and
their spread is reported as ``sqrt(sum_k w_k var_k / sum_k w_k)``, the blended per-window variance over
passes (population variance, per class).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from pyproj import CRS, Transformer
from torch import Tensor, nn

from glaciermap.constants import UNSEEN
from glaciermap.datasets.scene_folder import SceneInfo, check_value_ranges, inspect_scene
from glaciermap.errors import ConfigError
from glaciermap.inference.backends import WindowFunction, check_backend, compile_backend
from glaciermap.inference.options import MapOptions
from glaciermap.inference.source import Prefetcher, SceneReader
from glaciermap.inference.tta import tta_predict
from glaciermap.inference.windows import WindowGrid, window_grid
from glaciermap.models.base import SegmentationModel
from glaciermap.models.blocks import MCDropout
from glaciermap.models.cpu_bf16 import guard_cpu_bf16
from glaciermap.models.folding import fold_for_inference
from glaciermap.models.pretrained import PretrainedModel
from glaciermap.models.winograd import cpu_prefers_winograd, use_winograd, wide_enough, winograd_available

DEFAULT_WINDOW = 384
"""Window side used when the model does not state one (384, the GlaViTU paper's patch size)."""


@dataclass
class Strip:
    """Blended predictions of a band of full-width scene rows.

    Attributes:
        row: First scene row of the strip.
        probabilities: ``(K, h, W)`` float32 class probabilities (sum to one per pixel).
        invalid: ``(h, W)`` True where an input pixel is nodata/NaN in any modality.
        spread: ``(K, h, W)`` float32 Monte-Carlo standard deviation per class, or ``None``.
    """

    row: int
    probabilities: npt.NDArray[np.float32]
    invalid: npt.NDArray[np.bool_]
    spread: npt.NDArray[np.float32] | None = None


@dataclass
class SceneStream:
    """The strips of one scene (iterate once) and what produced them.

    Attributes:
        scene: The validated scene.
        grid: The window grid.
        device: The compute device.
        precision: ``"32"`` or ``"bf16"``.
        channels_last: Whether channels-last tensors were used.
        convolution: How the 3x3 convolutions were computed, ``"direct"`` or ``"winograd"``.
        location: Description of the location input (``{"region": ...}`` / ``{"coordinates": ...}``).
        mc_passes: Monte-Carlo dropout passes per window (strips carry a spread when > 1).
        tta: Whether test-time augmentation was used.
        strips: The strip iterator.
        uncertain_below: Confidence below which pixels are marked uncertain (``uncertain.tif``), or ``None``.
        thumbnail: Raw optical bands subsampled for the quick-look, set when iteration ends (``(6, h, w)``, NaN
            outside SWIR1/NIR/red), or ``None``.
        stats: Filled while iterating: ``windows`` (predicted), ``skipped_windows`` (without a valid pixel),
            ``forward_passes``, ``batches``, ``seconds`` (from the first strip asked for to the last).
        attachments: More text files for the output folder (name -> content, e.g. ``region_vector.json``),
            written atomically together with the maps.
        extra_summary: More items for ``summary.json`` (e.g. ``bias_optimisation``).
    """

    scene: SceneInfo
    grid: WindowGrid
    device: torch.device
    precision: str
    channels_last: bool
    location: dict[str, Any]
    mc_passes: int
    tta: bool
    strips: Iterator[Strip]
    uncertain_below: float | None = None
    thumbnail: npt.NDArray[np.float32] | None = None
    stats: dict[str, float] = field(default_factory=dict)
    convolution: str = "direct"
    attachments: dict[str, str] = field(default_factory=dict)
    extra_summary: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Strip]:
        """Iterate the strips."""
        return self.strips

    def close(self) -> None:
        """Stop early: release the reader thread and the rasters."""
        close = getattr(self.strips, "close", None)
        if close is not None:
            close()


QUICKLOOK_SIDE = 1024
"""Longest side of the quick-look (pixels); larger scenes are subsampled for it."""


def thumbnail_step(height: int, width: int, side: int = QUICKLOOK_SIDE) -> int:
    """Integer subsampling step that brings the longer side of a scene to at most ``side`` pixels.

    Args:
        height: Scene rows.
        width: Scene columns.
        side: Longest side wanted.

    Returns:
        The step (>= 1).
    """
    return max(1, -(-max(height, width) // side))


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else is passed to :class:`torch.device`.

    Args:
        device: ``"auto"`` or a device string.

    Returns:
        The device.

    Raises:
        ConfigError: If the string is not a device or CUDA is asked for but not available.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device is {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} asked for, but no CUDA device is available; use 'cpu' or 'auto'"
        )
    return dev


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX-512 BF16 instructions).

    Without them, bf16 autocast on a CPU is emulated and measured several times slower than float32 (9x for
    GlaViTU on a 2-core AVX2 runner), so ``precision="auto"`` keeps float32 there.

    Args:
        cpuinfo: Text of ``/proc/cpuinfo`` (read when ``None``; other systems: no native bf16 assumed).

    Returns:
        True if the CPU flags include ``amx_bf16`` or ``avx512_bf16``.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"amx_bf16", "avx512_bf16"})


@functools.cache
def cpu_bf16_is_faster(channels_last: bool = True, min_speedup: float = 2.0) -> bool:
    """A short probe: is bf16 autocast clearly faster than float32 on this CPU, in the layout mapping uses?

    Checked only where the CPU flags promise native bf16 (:func:`cpu_has_native_bf16`): flags alone are not
    enough (a virtual machine may expose AVX-512 BF16 and still run bf16 convolutions slower than float32, as
    measured on the project's runner). Two small convolutions on a 96 x 96 batch, in the memory layout the
    network will run in, run alternately in float32 and bf16 seven times; bf16 is chosen only when the median
    ratio of their times reaches ``min_speedup`` (native bf16 hardware is several times faster, so a noisy,
    loaded machine does not flip the choice). The layout matters: on a CPU with AMX the probe measured 4.3x in
    channels-last but only 1.7x in the contiguous layout, while GlaViTU mapped 2.3-3.0x faster in bf16
    (channels-last, ``benchmarks/RESULTS.md``, "Precision on a CPU with AMX"). Once per process and layout,
    about a quarter of a second. Where bf16 is emulated (the flags are there but the kernels are not, as with
    oneDNN capped at AVX2: bf16 9x slower) the probe stops at the first pair of timings that shows bf16 more
    than twice as slow (and ``min_speedup`` above that): 0.3 s instead of 5 s per layout there.

    Args:
        channels_last: Probe with channels-last tensors (the mapping default) instead of contiguous ones.
        min_speedup: Smallest median ratio of float32 to bf16 time that selects bf16.

    Returns:
        Whether bf16 is clearly faster.
    """
    if not cpu_has_native_bf16():
        return False
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3, padding=1)
    ).eval()
    x = torch.randn(2, 32, 96, 96, generator=gen)
    if channels_last:
        net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def timed(bf16: bool) -> float:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            t0 = time.perf_counter()
            net(x)
            return time.perf_counter() - t0

    timed(False), timed(True)  # warm-up
    ratios = []
    for _ in range(7):
        ratios.append(timed(False) / max(timed(True), 1e-9))
        if ratios[-1] < min(0.5, min_speedup):  # bf16 more than twice as slow: emulated, no need to go on
            return False
    return sorted(ratios)[len(ratios) // 2] >= min_speedup


CPU_BATCH_SIZE: Final[int] = 1
"""Default windows per forward pass on a CPU: batch 1 mapped GlaViTU 1.09x faster than batch 8 on an idle 2-core
machine (benchmarks/RESULTS.md, "CPU backends", 2026-12-01) and 1.06-1.09x on issue 20's runner, with 1.2 GB
less peak memory; ONNX Runtime and OpenVINO gain nothing from batch 8 either."""

GPU_BATCH_SIZE: Final[int] = 8
"""Default windows per forward pass on a GPU, which needs batches to fill its cores."""


def default_batch_size(device: torch.device) -> int:
    """Windows per forward pass when the options leave it open.

    :data:`CPU_BATCH_SIZE` on a CPU, else :data:`GPU_BATCH_SIZE`.

    Args:
        device: The resolved device.

    Returns:
        The batch size.
    """
    return CPU_BATCH_SIZE if device.type == "cpu" else GPU_BATCH_SIZE


FLOAT32_LAYERS_KEY: Final[str] = "float32_layers"
"""``summary.json`` key: the convolutions mapped in float32 because this CPU computes their shape wrongly in bf16
(:mod:`glaciermap.models.cpu_bf16`); absent when there are none."""

CPU_BF16_ENV: Final[str] = "GLACIERMAP_CPU_BF16"
"""Environment variable: ``off`` keeps ``precision="auto"`` in float32 on every CPU (maps identical across
machines, as the test suite needs); ``auto`` (the default) lets :func:`cpu_bf16_is_faster` decide."""


def auto_bf16(device: torch.device, channels_last: bool = True) -> bool:
    """Whether ``precision="auto"`` maps in bf16 on ``device``: on CUDA, and on CPUs where bf16 is faster.

    Args:
        device: The resolved device.
        channels_last: Whether the network runs on channels-last tensors (the layout the CPU probe uses).

    Returns:
        Whether to use bf16 autocast.

    Raises:
        ConfigError: If ``$GLACIERMAP_CPU_BF16`` is neither ``auto`` nor ``off``.
    """
    if device.type == "cuda":
        return True
    setting = os.environ.get(CPU_BF16_ENV, "auto").strip().lower() or "auto"
    if setting not in ("auto", "off"):
        raise ConfigError(
            f"{CPU_BF16_ENV} is {setting!r}; expected 'auto' (probe the CPU) or 'off' (float32)"
        )
    return device.type == "cpu" and setting == "auto" and cpu_bf16_is_faster(channels_last)


def resolve_convolution(
    setting: str, device: torch.device, precision: str, backend: str, model: nn.Module | None = None
) -> str:
    """How the 3x3 convolutions are computed for option ``convolution`` (:data:`~.options.Convolution`).

    Winograd (:mod:`glaciermap.models.winograd`) computes float32 convolutions of the torch backend on a CPU;
    ``"auto"`` chooses it there where :func:`~glaciermap.models.winograd.cpu_prefers_winograd` (AVX2, no AVX-512) and
    most of the model's 3x3 layers are wide (:func:`~glaciermap.models.winograd.wide_enough`), and direct
    convolutions everywhere else.

    Args:
        setting: ``"auto"``, ``"direct"`` or ``"winograd"``.
        device: The resolved device.
        precision: The resolved precision (``"32"`` or ``"bf16"``).
        backend: The backend.
        model: The network (``None``: its widths are not checked).

    Returns:
        ``"direct"`` or ``"winograd"``.

    Raises:
        ConfigError: If ``"winograd"`` is asked for where it cannot run.
    """
    if setting == "direct":
        return "direct"
    fits = device.type == "cpu" and precision == "32" and backend == "torch"
    if setting == "winograd":
        if not fits:
            raise ConfigError(
                f"convolution is 'winograd' but the windows run on {device.type} in precision {precision} with "
                f"backend {backend}; Winograd computes float32 on the CPU with backend torch (use auto or direct)"
            )
        if not winograd_available():
            raise ConfigError(
                "convolution is 'winograd' but this torch build or CPU has no working NNPACK; use auto or direct"
            )
        return "winograd"
    wide = model is None or wide_enough(model)
    return "winograd" if fits and wide and cpu_prefers_winograd() else "direct"


def default_window_size(mapping: PretrainedModel) -> int:
    """The model's training input size (``hparams["img_size"]``), else 384, rounded up to ``size_multiple``.

    Args:
        mapping: The mapping model.

    Returns:
        The window side (pixels).
    """
    size = int(mapping.model.hparams.get("img_size", DEFAULT_WINDOW))
    multiple = int(getattr(mapping.model, "size_multiple", 1))
    return -(-size // multiple) * multiple


class ScenePredictor:
    """Predicts scenes with a :class:`~glaciermap.models.pretrained.PretrainedModel`, strip by strip.

    Args:
        mapping: The model with its preprocessing.
        options: Mapping options.

    Raises:
        ConfigError: If an option is invalid for this model (window size not a multiple of the model's
            ``size_multiple``, Monte-Carlo dropout on a model without dropout, unknown region, ...).
    """

    def __init__(self, mapping: PretrainedModel, options: MapOptions | None = None) -> None:
        options = options or MapOptions()
        options.validate()
        self.mapping = mapping
        self.model = mapping.model
        self.backend = options.backend
        self.device = resolve_device(
            "cpu" if self.backend != "torch" and options.device == "auto" else options.device
        )
        multiple = int(getattr(self.model, "size_multiple", 1))
        size = options.window_size if options.window_size is not None else default_window_size(mapping)
        if size % multiple:
            raise ConfigError(
                f"window_size is {size}; the model {type(self.model).__name__} needs a multiple of {multiple}"
            )
        self.batch_size = options.batch_size or default_batch_size(self.device)
        self.options = replace(options, window_size=size, batch_size=self.batch_size)
        if options.mc_passes > 1 and not any(isinstance(m, MCDropout) for m in self.model.modules()):
            raise ConfigError(
                f"mc_passes is {options.mc_passes} but {type(self.model).__name__} has no dropout layer for "
                "Monte-Carlo dropout; use mc_passes 0"
            )
        self.channels_last = bool(options.channels_last) and self.backend == "torch"
        auto = (
            options.precision == "auto"
            and self.backend == "torch"
            and options.convolution != "winograd"  # asked for: a float32 algorithm, so auto means float32
            and auto_bf16(self.device, self.channels_last)
        )
        self.precision = "bf16" if options.precision == "bf16" or auto else "32"
        check_backend(self.backend, self.device, self.precision, options.mc_passes)
        self.convolution = resolve_convolution(
            options.convolution, self.device, self.precision, self.backend, self.model
        )
        if self.convolution == "winograd":
            self.channels_last = False  # NNPACK takes contiguous tensors (glaciermap.models.winograd)
        self._sessions: dict[tuple[Any, ...], WindowFunction] = {}
        self._net: nn.Module | None = None
        self.float32_layers: list[str] = []
        """Convolutions of the inference copy run in float32 under CPU bf16 (:func:`guard_cpu_bf16`)."""
        if mapping.location_encoding == "region":
            self._check_region_vector()
        elif options.bias_optimisation:
            raise ConfigError(
                "bias optimisation needs a region-encoding model; this model's location encoding is "
                f"{mapping.location_encoding!r} (train one with model_kwargs.location_encoding: region)"
            )
        elif options.region is not None or options.region_vector is not None:
            raise ConfigError(
                f"a region was given but the model's location encoding is {mapping.location_encoding!r}; "
                "region and region vector are only for region-encoding models"
            )

    # ------------------------------------------------------------------------------------------------
    # Location input
    def _check_region_vector(self) -> None:
        vec = self.options.region_vector
        size = len(self.mapping.region_codes) + 1
        if vec is None:
            region = self.options.region
            if region is not None and region != UNSEEN and region not in self.mapping.region_codes:
                raise ConfigError(
                    f"region {region!r} is not one of the model's regions "
                    f"{', '.join(self.mapping.region_codes) or '(none)'}; use one of them or {UNSEEN!r}"
                )
            return
        arr = np.asarray(vec, dtype=np.float64)
        if arr.shape != (size,) or not np.all(np.isfinite(arr)):
            raise ConfigError(
                f"region vector has shape {arr.shape}; expected {size} finite numbers (one per region "
                f"{', '.join(self.mapping.region_codes)}, then {UNSEEN!r})"
            )

    def region_location(self, scene: SceneInfo) -> tuple[Tensor, str]:
        """The ``(L,)`` region vector for a scene and a description of it.

        Args:
            scene: The scene (its ``region`` is used unless a region or vector is given in the options).

        Returns:
            ``(vector, description)``: a one-hot (or the given soft) vector and the region it stands for.
        """
        codes = self.mapping.region_codes
        if self.options.region_vector is not None:
            return torch.tensor(list(self.options.region_vector), dtype=torch.float32), "vector"
        region = self.options.region if self.options.region is not None else scene.region
        vec = torch.zeros(len(codes) + 1, dtype=torch.float32)
        if region in codes:
            vec[codes.index(region)] = 1.0
            return vec, region
        vec[len(codes)] = 1.0
        return vec, UNSEEN

    def _window_coordinates(self, scene: SceneInfo, grid: WindowGrid) -> npt.NDArray[np.float32]:
        """Latitude and longitude (degrees) of every window centre, ``(rows, cols, 2)``."""
        half = grid.size / 2.0
        cols = np.array([s + half - grid.cols.pad_before for s in grid.cols.starts], dtype=np.float64)
        rows = np.array([s + half - grid.rows.pad_before for s in grid.rows.starts], dtype=np.float64)
        cc, rr = np.meshgrid(cols, rows)
        t = scene.transform
        x = t.c + t.a * cc + t.b * rr
        y = t.f + t.d * cc + t.e * rr
        to_wgs84 = Transformer.from_crs(scene.crs, CRS.from_epsg(4326), always_xy=True)
        lon, lat = to_wgs84.transform(x, y)
        return np.stack([lat, lon], axis=-1).astype(np.float32)

    # ------------------------------------------------------------------------------------------------
    # Prediction of window batches
    def adopt_backend(self, other: ScenePredictor) -> None:
        """Share the backend sessions of ``other`` (same model): each shape is exported and compiled once."""
        if other.mapping is self.mapping:
            self._sessions = other._sessions

    def _forward(self, x: Tensor, location: Tensor | None) -> Tensor:
        """Softmax probabilities (B, K, S, S), float32, of one batch of windows."""
        if self.backend != "torch":
            key = (
                self.backend,
                self.precision,
                tuple(x.shape[1:]),
                None if location is None else location.shape[1:],
            )
            if key not in self._sessions:
                self._sessions[key] = compile_backend(
                    self.backend,
                    self.network(),
                    size=x.shape[-1],
                    channels=x.shape[1],
                    location=location,
                    precision=self.precision,
                )
            return self._sessions[key](x, location)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        ):
            logits = self.network()(x, location)["out"]
        return torch.softmax(logits.float(), dim=1)

    def predict_windows(self, x: Tensor, location: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Probabilities of a batch of windows, with TTA and Monte-Carlo dropout as configured.

        Args:
            x: Normalised windows ``(B, C, S, S)`` on the compute device.
            location: Location input ``(B, L)`` or ``(B, 2)``, or ``None``.

        Returns:
            ``(mean (B, K, S, S), variance (B, K, S, S) or None)``: the mean over Monte-Carlo passes (a
            single pass without MC dropout) and the population variance over passes (MC only).
        """
        passes = max(1, self.options.mc_passes)

        def one(batch: Tensor) -> Tensor:
            return self._forward(batch, location)

        mean: Tensor | None = None
        m2: Tensor | None = None
        for n in range(1, passes + 1):
            p = tta_predict(one, x) if self.options.tta else one(x)
            if mean is None:
                mean = p
                m2 = torch.zeros_like(p) if passes > 1 else None
                continue
            # Welford's update: exactly zero variance when every pass agrees.
            delta = p - mean
            mean = mean + delta / n
            assert m2 is not None
            m2 = m2 + delta * (p - mean)
        assert mean is not None
        var = m2 / passes if m2 is not None else None
        return mean, var

    # ------------------------------------------------------------------------------------------------
    # Scenes
    def grid(self, scene: SceneInfo) -> WindowGrid:
        """The window grid of a scene with the configured size, overlap, window and layout."""
        size = self.options.window_size
        assert size is not None
        self._check_window_size(scene, size)
        return window_grid(
            scene.height,
            scene.width,
            size,
            self.options.overlap,
            kind=self.options.window,
            layout=self.options.layout,
        )

    def _check_window_size(self, scene: SceneInfo, size: int) -> None:
        """Bound the window by the scene and by memory before anything is allocated.

        A window larger than the scene only pads it, so it is refused unless it is the model's own training
        size; and the buffers of one row of windows (input ring, accumulators, one batch) must fit in half of
        the machine's memory.

        Raises:
            ConfigError: Naming the window size, the scene size or the memory needed.
        """
        longest = max(scene.height, scene.width)
        native = default_window_size(self.mapping)
        multiple = int(getattr(self.model, "size_multiple", 1))
        fitting = max(native, -(-longest // multiple) * multiple)
        if size > fitting:
            raise ConfigError(
                f"window_size {size} is larger than the scene ({scene.height} x {scene.width} px) and than the "
                f"model's {native}; expected at most {fitting}"
            )
        channels = sum(len(b) for b in self.mapping.bands.values())
        classes = self.mapping.num_classes * (2 if self.options.mc_passes > 1 else 1)
        width = scene.width + 2 * size
        need = 4 * size * (width * (channels + classes) + self.batch_size * size * (channels + 8 * classes))
        total = _physical_memory()
        if total and need > total // 2:
            raise ConfigError(
                f"window_size {size} with batch_size {self.batch_size} needs about {need / 2**30:.1f} GiB "
                f"for a {scene.width} px wide scene, more than half of this machine's {total / 2**30:.1f} GiB; "
                "use a smaller window or batch"
            )

    def stream(self, scene_dir: str | os.PathLike[str]) -> SceneStream:
        """Validate a scene folder and return its stream of blended strips.

        The scene is validated here (an :class:`~glaciermap.errors.InputError` names a missing band, a
        wrong grid, a scene that is nodata everywhere, ...); prediction happens while iterating.

        Args:
            scene_dir: The scene folder (the rasters of the model's modalities and ``scene.json``).

        Returns:
            The stream.

        Raises:
            InputError: If the scene folder is not what the model needs.
        """
        # The scan for "no valid pixel at all" would read the whole scene once more; it is done while mapping
        # instead (windows without valid pixels are skipped, and the writer raises if nothing was valid).
        scene = inspect_scene(
            Path(scene_dir), list(self.mapping.bands), labels="ignore", check_valid_pixels=False
        )
        if self.options.check_ranges:
            check_value_ranges(scene, self.mapping.bands)
        grid = self.grid(scene)
        location: dict[str, Any] = {}
        if self.mapping.location_encoding == "region":
            vec, name = self.region_location(scene)
            location = {"encoding": "region", "region": name, "vector": [round(float(v), 6) for v in vec]}
        elif self.mapping.location_encoding == "coordinates":
            location = {"encoding": "coordinates", "source": "window centres (degrees, EPSG:4326)"}
        stream = SceneStream(
            scene=scene,
            grid=grid,
            device=self.device,
            precision=self.precision,
            channels_last=self.channels_last,
            convolution=self.convolution,
            location=location,
            mc_passes=self.options.mc_passes,
            tta=self.options.tta,
            strips=iter(()),
            uncertain_below=self.options.uncertain_below,
        )
        stream.strips = self._strips(scene, grid, stream)
        return stream

    @contextlib.contextmanager
    def model_mode(self, mc: bool) -> Iterator[None]:
        """A fresh inference copy of the model on the compute device for the duration.

        The copy (:meth:`network`) is in evaluation mode with batch norm folded into the convolutions
        (:func:`~glaciermap.models.folding.fold_for_inference`), channels-last where asked and Monte-Carlo
        dropout switched on exactly when ``mc`` is (torch's generator then seeded by the options' ``seed``).
        The model itself is never modified: not its device, mode, memory format nor dropout state.

        Args:
            mc: Switch Monte-Carlo dropout on.

        Yields:
            Nothing; :meth:`network` is ready inside the block.
        """
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # the mapping generator may run in a worker thread
        self._net = self._inference_copy(mc)
        if mc and self.options.seed is not None:
            torch.manual_seed(self.options.seed)
        try:
            yield
        finally:
            self._net = None

    def network(self) -> nn.Module:
        """The inference copy of the model that predicts the windows (see :meth:`model_mode`).

        Inside :meth:`model_mode` the copy made on entry; outside it, one made on first use and kept, without
        Monte-Carlo dropout.
        """
        if self._net is None:
            self._net = self._inference_copy(mc=False)
        return self._net

    def _inference_copy(self, mc: bool) -> nn.Module:
        net = fold_for_inference(self.model).to(self.device)
        if self.device.type == "cpu" and self.precision == "bf16" and self.backend == "torch":
            self.float32_layers = guard_cpu_bf16(net)  # convolutions this CPU gets wrong in bf16
        if self.convolution == "winograd":
            use_winograd(net)
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        if isinstance(net, SegmentationModel):
            net.set_mc_dropout(mc)
        return net

    def _locations(self, scene: SceneInfo, grid: WindowGrid) -> Callable[[int, list[int]], Tensor | None]:
        """The location input of the windows ``cols`` of window row ``i`` (coordinates or region vector)."""
        mapping, dev = self.mapping, self.device
        coords = self._window_coordinates(scene, grid) if mapping.location_encoding == "coordinates" else None
        region = self.region_location(scene)[0] if mapping.location_encoding == "region" else None

        def location(i: int, cols: list[int]) -> Tensor | None:
            if coords is not None:
                return torch.from_numpy(coords[i, cols]).to(dev)
            if region is not None:
                return region.to(dev).expand(len(cols), -1)
            return None

        return location

    def _strips(self, scene: SceneInfo, grid: WindowGrid, stream: SceneStream) -> Iterator[Strip]:
        """The generator behind :meth:`stream` (see the module docstring for the algorithm)."""
        stats, opts, size = stream.stats, self.options, grid.size
        mc = opts.mc_passes > 1
        reader = SceneReader(
            scene,
            self.mapping.bands,
            self.mapping.norm,
            self.mapping.fill_value,
            pad_top=grid.rows.pad_before,
            pad_left=grid.cols.pad_before,
            padded_width=grid.cols.padded,
            thumbnail_step=thumbnail_step(scene.height, scene.width),
        )
        ring = RingAccumulator(
            grid, scene.height, scene.width, reader.channels, self.mapping.num_classes, mc, self.device
        )
        location = self._locations(scene, grid)
        bounds = [(0, size)] + [
            ((i - 1) * grid.stride + size, i * grid.stride + size) for i in range(1, grid.rows.count)
        ]
        stats.update(windows=0.0, skipped_windows=0.0, forward_passes=0.0, batches=0.0)
        passes = max(1, opts.mc_passes) * (8 if opts.tta else 1)
        start_time = time.perf_counter()
        chunks = Prefetcher(reader.chunks(bounds), opts.prefetch)
        try:
            with self.model_mode(mc):
                if self.float32_layers:
                    stream.extra_summary[FLOAT32_LAYERS_KEY] = list(self.float32_layers)
                for i, (image, bad) in enumerate(chunks):
                    ring.push(i, image, bad)
                    active = ring.active_windows()
                    stats["skipped_windows"] += grid.cols.count - len(active)
                    for b0 in range(0, len(active), self.batch_size):
                        cols = active[b0 : b0 + self.batch_size]
                        with torch.no_grad():
                            mean, var = self.predict_windows(ring.windows(cols), location(i, cols))
                            ring.add(i, cols, mean, var)
                        stats["windows"] += len(cols)
                        stats["batches"] += 1
                        stats["forward_passes"] += len(cols) * passes
                    strip = ring.finish_row(i)
                    if strip is not None:
                        yield strip
                stream.thumbnail = reader.thumbnail()
        finally:
            stats["infinite_pixels"] = float(reader.infinite_pixels)
            chunks.close()
            stats["seconds"] = time.perf_counter() - start_time


class RingAccumulator:
    """The rolling state of :meth:`ScenePredictor.stream`: input rows and blended sums of one row of windows.

    An input ring buffer of ``S`` rows (window size) x padded width x ``C`` channels and an accumulator of
    ``S`` rows x padded width x ``K`` classes (plus the same for the Monte-Carlo variance), all on the compute
    device. After window row ``i`` is added, its first ``stride`` rows receive no further contribution:
    :meth:`finish_row` divides them by the separable blending denominator, crops them to the scene, and
    shifts the accumulator up by ``stride`` rows.

    Args:
        grid: The window grid.
        height: Scene rows.
        width: Scene columns.
        channels: Input channels.
        classes: Output classes.
        mc: Also accumulate the Monte-Carlo variance.
        device: The compute device.
    """

    def __init__(
        self,
        grid: WindowGrid,
        height: int,
        width: int,
        channels: int,
        classes: int,
        mc: bool,
        device: torch.device,
    ) -> None:
        size, padded = grid.size, grid.cols.padded
        self.grid, self.height, self.width = grid, height, width
        self.buf = torch.empty((channels, size, padded), dtype=torch.float32, device=device)
        self.invalid = np.empty((size, padded), dtype=bool)
        self.acc = torch.zeros((classes, size, padded), dtype=torch.float32, device=device)
        self.acc_var = torch.zeros_like(self.acc) if mc else None
        self.device = device
        self._weights: dict[tuple[str, str], Tensor] = {}
        row_sum, col_sum = grid.weight_sums()
        self.row_sum = row_sum
        self.col_norm = col_sum[grid.cols.pad_before : grid.cols.pad_before + width]

    def push(self, i: int, image: npt.NDArray[np.float32], bad: npt.NDArray[np.bool_]) -> None:
        """Add the input rows that complete window row ``i`` (the whole first window height for ``i = 0``)."""
        keep = self.grid.size - self.grid.stride
        rows = torch.from_numpy(image).to(self.buf.device, non_blocking=True)
        if i == 0:
            self.buf.copy_(rows)
            self.invalid[...] = bad
        else:
            self.buf[:, :keep] = self.buf[:, self.grid.stride :].clone()
            self.buf[:, keep:] = rows
            self.invalid[:keep] = self.invalid[self.grid.stride :]
            self.invalid[keep:] = bad

    def active_windows(self) -> list[int]:
        """Columns of the windows of this row with at least one valid pixel.

        Windows without a single valid pixel are skipped: every pixel they cover is written as nodata, so
        their contribution could never be seen.
        """
        size, starts = self.grid.size, self.grid.cols.starts
        return [
            j for j in range(self.grid.cols.count) if not self.invalid[:, starts[j] : starts[j] + size].all()
        ]

    def windows(self, cols: list[int]) -> Tensor:
        """``(B, C, S, S)`` input windows of the given columns, cut from the ring buffer."""
        size, starts = self.grid.size, self.grid.cols.starts
        return torch.stack([self.buf[:, :, starts[j] : starts[j] + size] for j in cols])

    def weight(self, i: int, j: int) -> Tensor:
        """The blending weight of window ``(i, j)`` on the device (one tensor per kind of edge, cached)."""
        key = (self.grid.rows.edge(i), self.grid.cols.edge(j))
        if key not in self._weights:
            self._weights[key] = torch.from_numpy(self.grid.window_weights(i, j)).to(self.device)
        return self._weights[key]

    def add(self, i: int, cols: list[int], mean: Tensor, var: Tensor | None) -> None:
        """Add the weighted predictions (``(B, K, S, S)``) of the windows ``cols`` of row ``i``."""
        size, starts = self.grid.size, self.grid.cols.starts
        for k, j in enumerate(cols):
            c, w = starts[j], self.weight(i, j)
            self.acc[:, :, c : c + size] += w * mean[k]
            if self.acc_var is not None and var is not None:
                self.acc_var[:, :, c : c + size] += w * var[k]

    def finish_row(self, i: int) -> Strip | None:
        """The blended scene rows completed by window row ``i`` (``None`` if all are padding); then shift."""
        grid, size, stride = self.grid, self.grid.size, self.grid.stride
        last = i == grid.rows.count - 1
        pad_top, pad_left = grid.rows.pad_before, grid.cols.pad_before
        done, top = (size if last else stride), i * stride
        lo, hi = max(0, pad_top - top), min(done, pad_top + self.height - top)
        strip = None
        if lo < hi:
            norm = (self.row_sum[top + lo : top + hi, None] * self.col_norm[None, :]).astype(np.float32)
            cols = slice(pad_left, pad_left + self.width)
            probs = (self.acc[:, lo:hi, cols].cpu().numpy() / norm).astype(np.float32, copy=False)
            spread = None
            if self.acc_var is not None:
                spread = np.sqrt(np.maximum(self.acc_var[:, lo:hi, cols].cpu().numpy() / norm, 0.0))
            strip = Strip(
                row=top + lo - pad_top,
                probabilities=probs,
                invalid=self.invalid[lo:hi, cols].copy(),
                spread=spread,
            )
        if not last:
            keep = size - stride
            for acc in (self.acc, self.acc_var):
                if acc is not None:
                    acc[:, :keep] = acc[:, stride:].clone()
                    acc[:, keep:] = 0.0
        return strip


def _physical_memory() -> int:
    """Bytes of physical memory of this machine (0 if unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0
