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

On CUDA the model runs under ``torch.autocast(dtype=torch.bfloat16)``, on the CPU in float32 (bf16 on
request); tensors are channels-last by default (measured faster on the CPU too). Probabilities and the
accumulator are float32 on every device, so CPU and GPU give the same numbers up to the precision of the
model's arithmetic.

Monte-Carlo dropout (``mc_passes = N > 1``): every window is predicted ``N`` times with dropout switched on
(:meth:`~glaciermap.models.base.SegmentationModel.set_mc_dropout`); the mean of the ``N`` softmax outputs
is blended (GlaViTU paper, "Monte-Carlo dropout": "the average softmax scores among all forward passes") and
their spread is reported as ``sqrt(sum_k w_k var_k / sum_k w_k)``, the blended per-window variance over
passes (population variance, per class).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
import torch
from pyproj import CRS, Transformer
from torch import Tensor

from glaciermap.datasets.scene_folder import SceneInfo, inspect_scene
from glaciermap.errors import ConfigError
from glaciermap.inference.checkpoint import MappingModel
from glaciermap.inference.source import Prefetcher, SceneReader
from glaciermap.inference.tta import tta_predict
from glaciermap.inference.windows import BlendWindow, GridLayout, WindowGrid, window_grid
from glaciermap.models.blocks import MCDropout

Precision = Literal["auto", "32", "bf16"]
"""Arithmetic of the model: ``"auto"`` (bf16 autocast on CUDA, float32 elsewhere), ``"32"`` or ``"bf16"``."""

DEFAULT_WINDOW = 384
"""Window side used when the model does not state one (GlaViTU reference spec 5.1)."""

UNSEEN = "unseen"
"""Region name of the "unseen" slot of region encoding."""


@dataclass(frozen=True)
class MapOptions:
    """How a scene is mapped.

    Attributes:
        window_size: Window side S in pixels (default: the model's ``img_size`` hyper-parameter, else 384);
            a multiple of the model's ``size_multiple``.
        overlap: Fraction of a window shared with its neighbour, in ``[0, 1)`` (default 0.5).
        window: Blending weight, ``"gaussian"`` (GlaViTU) or ``"cosine"`` (Hann).
        layout: Padded grid, ``"compact"`` (fewest windows) or ``"reference"`` (the GlaViTU code's).
        batch_size: Windows per forward pass.
        tta: Average the eight dihedral transforms of every window (GlaViTU reference spec 5.2).
        mc_passes: Monte-Carlo dropout passes per window (0 or 1: a single deterministic pass).
        seed: Seed of the global torch random generator for Monte-Carlo dropout (``None``: not seeded).
        device: ``"auto"`` (CUDA if available, else CPU) or a torch device string.
        precision: See :data:`Precision`.
        channels_last: Use channels-last tensors (default; measured faster on CPU and the usual choice on GPU).
        region: Region code for region-encoding models (default: the scene's ``region`` if the model knows
            it, else ``"unseen"``).
        region_vector: Soft region vector (length = number of region codes + 1) for region-encoding models,
            e.g. from bias optimisation; overrides ``region``.
        prefetch: Row chunks read ahead by the reader thread.
    """

    window_size: int | None = None
    overlap: float = 0.5
    window: BlendWindow = "gaussian"
    layout: GridLayout = "compact"
    batch_size: int = 8
    tta: bool = False
    mc_passes: int = 0
    seed: int | None = 0
    device: str = "auto"
    precision: Precision = "auto"
    channels_last: bool = True
    region: str | None = None
    region_vector: Sequence[float] | None = None
    prefetch: int = 2

    def validate(self) -> None:
        """Check every option.

        Raises:
            ConfigError: Naming the first invalid option and what was expected.
        """
        if self.window not in get_args(BlendWindow):
            raise ConfigError(
                f"window is {self.window!r}; expected one of {', '.join(get_args(BlendWindow))}"
            )
        if self.layout not in get_args(GridLayout):
            raise ConfigError(f"layout is {self.layout!r}; expected one of {', '.join(get_args(GridLayout))}")
        if self.precision not in get_args(Precision):
            raise ConfigError(
                f"precision is {self.precision!r}; expected one of {', '.join(get_args(Precision))}"
            )
        for name in ("batch_size", "prefetch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} is {value!r}; expected a positive integer")
        if isinstance(self.mc_passes, bool) or not isinstance(self.mc_passes, int) or self.mc_passes < 0:
            raise ConfigError(f"mc_passes is {self.mc_passes!r}; expected 0 (off) or a number of passes")
        if self.window_size is not None and (
            isinstance(self.window_size, bool)
            or not isinstance(self.window_size, int)
            or self.window_size < 1
        ):
            raise ConfigError(f"window_size is {self.window_size!r}; expected a positive number of pixels")
        if not (isinstance(self.overlap, int | float) and 0.0 <= self.overlap < 1.0):
            raise ConfigError(f"overlap is {self.overlap!r}; expected a fraction in [0, 1) (0.5 = 50 %)")


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
        location: Description of the location input (``{"region": ...}`` / ``{"coordinates": ...}``).
        mc_passes: Monte-Carlo dropout passes per window (strips carry a spread when > 1).
        tta: Whether test-time augmentation was used.
        strips: The strip iterator.
        thumbnail: Raw optical bands subsampled for the quick-look, set when iteration ends (``(6, h, w)``, NaN
            outside SWIR1/NIR/red), or ``None``.
        stats: Filled while iterating: ``windows`` (predicted), ``skipped_windows`` (without a valid pixel),
            ``forward_passes``, ``batches``, ``seconds`` (from the first strip asked for to the last).
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
    thumbnail: npt.NDArray[np.float32] | None = None
    stats: dict[str, float] = field(default_factory=dict)

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


def default_window_size(mapping: MappingModel) -> int:
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
    """Predicts scenes with a :class:`~glaciermap.inference.checkpoint.MappingModel`, strip by strip.

    Args:
        mapping: The model with its preprocessing.
        options: Mapping options.

    Raises:
        ConfigError: If an option is invalid for this model (window size not a multiple of the model's
            ``size_multiple``, Monte-Carlo dropout on a model without dropout, unknown region, ...).
    """

    def __init__(self, mapping: MappingModel, options: MapOptions | None = None) -> None:
        options = options or MapOptions()
        options.validate()
        self.mapping = mapping
        self.model = mapping.model
        self.device = resolve_device(options.device)
        multiple = int(getattr(self.model, "size_multiple", 1))
        size = options.window_size if options.window_size is not None else default_window_size(mapping)
        if size % multiple:
            raise ConfigError(
                f"window_size is {size}; the model {type(self.model).__name__} needs a multiple of {multiple}"
            )
        self.options = replace(options, window_size=size)
        if options.mc_passes > 1 and not any(isinstance(m, MCDropout) for m in self.model.modules()):
            raise ConfigError(
                f"mc_passes is {options.mc_passes} but {type(self.model).__name__} has no dropout layer for "
                "Monte-Carlo dropout; use mc_passes 0"
            )
        bf16 = options.precision == "bf16" or (options.precision == "auto" and self.device.type == "cuda")
        self.precision = "bf16" if bf16 else "32"
        self.channels_last = bool(options.channels_last)
        if mapping.location_encoding == "region":
            self._check_region_vector()
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
    def _forward(self, x: Tensor, location: Tensor | None) -> Tensor:
        """Softmax probabilities (B, K, S, S), float32, of one batch of windows."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        ):
            logits = self.model(x, location)["out"]
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
        return window_grid(
            scene.height,
            scene.width,
            size,
            self.options.overlap,
            kind=self.options.window,
            layout=self.options.layout,
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
            location=location,
            mc_passes=self.options.mc_passes,
            tta=self.options.tta,
            strips=iter(()),
        )
        stream.strips = self._strips(scene, grid, stream)
        return stream

    def _strips(self, scene: SceneInfo, grid: WindowGrid, stream: SceneStream) -> Iterator[Strip]:
        """The generator behind :meth:`stream` (see the module docstring for the algorithm)."""
        stats = stream.stats
        mapping, opts, dev = self.mapping, self.options, self.device
        size, stride = grid.size, grid.stride
        n_rows, n_cols = grid.rows.count, grid.cols.count
        width, pad_top, pad_left = scene.width, grid.rows.pad_before, grid.cols.pad_before
        classes = mapping.num_classes
        mc = opts.mc_passes > 1

        reader = SceneReader(
            scene,
            mapping.bands,
            mapping.norm,
            mapping.fill_value,
            pad_top=pad_top,
            pad_left=pad_left,
            padded_width=grid.cols.padded,
            thumbnail_step=thumbnail_step(scene.height, scene.width),
        )
        bounds = [(0, size)] + [((i - 1) * stride + size, i * stride + size) for i in range(1, n_rows)]
        row_sum, col_sum = grid.weight_sums()
        col_norm = col_sum[pad_left : pad_left + width]
        weight = torch.from_numpy(grid.weights()).to(dev)
        coords = self._window_coordinates(scene, grid) if mapping.location_encoding == "coordinates" else None
        region = self.region_location(scene)[0] if mapping.location_encoding == "region" else None

        if dev.type == "cuda":
            torch.cuda.set_device(
                dev
            )  # this generator may run in a worker thread: make dev its current device
        was_training, was_mc = self.model.training, bool(getattr(self.model, "mc_dropout", False))
        self.model.to(dev).eval()
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if mc:
            self.model.set_mc_dropout(True)
            if opts.seed is not None:
                torch.manual_seed(opts.seed)
        # The input ring buffer lives on the compute device: each input row is copied there once.
        buf = torch.empty((reader.channels, size, grid.cols.padded), dtype=torch.float32, device=dev)
        invalid = np.empty((size, grid.cols.padded), dtype=bool)
        acc = torch.zeros((classes, size, grid.cols.padded), dtype=torch.float32, device=dev)
        acc_var = torch.zeros_like(acc) if mc else None
        stats.update(windows=0.0, skipped_windows=0.0, forward_passes=0.0, batches=0.0)
        col_starts = grid.cols.starts
        start_time = time.perf_counter()
        chunks = Prefetcher(reader.chunks(bounds), opts.prefetch)
        try:
            for i, (image, bad) in enumerate(chunks):
                keep = size - stride
                rows = torch.from_numpy(image).to(dev, non_blocking=True)
                if i == 0:
                    buf.copy_(rows)
                    invalid[...] = bad
                else:
                    buf[:, :keep] = buf[:, stride:].clone()
                    buf[:, keep:] = rows
                    invalid[:keep] = invalid[stride:]
                    invalid[keep:] = bad
                # Windows without a single valid pixel are skipped: every pixel they cover is written as
                # nodata, so their contribution could never be seen.
                active = [
                    j for j in range(n_cols) if not invalid[:, col_starts[j] : col_starts[j] + size].all()
                ]
                stats["skipped_windows"] += n_cols - len(active)
                for b0 in range(0, len(active), opts.batch_size):
                    cols = active[b0 : b0 + opts.batch_size]
                    starts = [col_starts[j] for j in cols]
                    x = torch.stack([buf[:, :, c : c + size] for c in starts])
                    location: Tensor | None = None
                    if coords is not None:
                        location = torch.from_numpy(coords[i, cols]).to(dev)
                    elif region is not None:
                        location = region.to(dev).expand(len(cols), -1)
                    with torch.no_grad():
                        mean, var = self.predict_windows(x, location)
                        for k, c in enumerate(starts):
                            acc[:, :, c : c + size] += weight * mean[k]
                            if acc_var is not None and var is not None:
                                acc_var[:, :, c : c + size] += weight * var[k]
                    stats["windows"] += len(cols)
                    stats["batches"] += 1
                    stats["forward_passes"] += len(cols) * max(1, opts.mc_passes) * (8 if opts.tta else 1)
                done = stride if i < n_rows - 1 else size
                top = i * stride
                lo, hi = max(0, pad_top - top), min(done, pad_top + scene.height - top)
                if lo < hi:
                    norm = (row_sum[top + lo : top + hi, None] * col_norm[None, :]).astype(np.float32)
                    cols_slice = slice(pad_left, pad_left + width)
                    probs = (acc[:, lo:hi, cols_slice].cpu().numpy() / norm).astype(np.float32, copy=False)
                    spread = None
                    if acc_var is not None:
                        spread = np.sqrt(np.maximum(acc_var[:, lo:hi, cols_slice].cpu().numpy() / norm, 0.0))
                    yield Strip(
                        row=top + lo - pad_top,
                        probabilities=probs,
                        invalid=invalid[lo:hi, cols_slice].copy(),
                        spread=spread,
                    )
                if i < n_rows - 1:
                    acc[:, :keep] = acc[:, stride:].clone()
                    acc[:, keep:] = 0.0
                    if acc_var is not None:
                        acc_var[:, :keep] = acc_var[:, stride:].clone()
                        acc_var[:, keep:] = 0.0
            stream.thumbnail = reader.thumbnail()
        finally:
            chunks.close()
            if mc:
                self.model.set_mc_dropout(was_mc)
            self.model.train(was_training)
            stats["seconds"] = time.perf_counter() - start_time
