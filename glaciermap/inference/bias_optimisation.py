"""Inference-time bias optimisation of the region vector (GlaViTU paper, "Strategies", Eqs. 1-2).

A region-encoding model takes a region vector ``softmax(r)`` next to the image. On a scene from a region it
has not seen, the GlaViTU paper adapts the model by choosing the 12 logits ``r`` that minimise the mean
normalised entropy of its predictions over the scene, the network itself frozen:

    Eq. 1:  (1 / N) sum_i  - sum_c p_ic(r) log_C p_ic(r)  ->  min over r
    Eq. 2:  p_i(r) = f(I_i, exp(r) / sum_j exp(r_j))

(the paper writes the sum; its code minimises the mean, which has the same minimiser). The scene is then
mapped with ``softmax(r)`` instead of a one-hot (``MapOptions(region_vector=...)``).

Two procedures minimise the same objective (invalid pixels, nodata or outside the scene, excluded in both):

* ``"fast"`` (default): ``windows`` valid windows (at least ``min_valid`` of their pixels valid) are drawn
  from the scene's non-overlapping window grid with a seeded reservoir sample, read once, and the
  activations that do not depend on ``r`` (the fusion block output, ``model.forward_features``) are computed
  once and cached. Every step then runs only the rest of the network (``model.forward_head``) on the cached
  features, with full-batch Adam (learning rate 1.0) on the logits. A step that raises the entropy above
  the best so far is rejected: the logits and Adam's moments go back to the best point's and the step is
  retried with half the learning rate (a backtracking line search along Adam's direction, so the entropy
  of the accepted steps never rises). It stops when the accepted entropy has fallen by less than
  ``tolerance`` over ``patience`` accepted steps, when rejections have halved the learning rate below
  ``lr_floor`` (:data:`FAST_LR_FLOOR`), or after ``steps`` updates (rejected ones included), and returns
  the logits of the lowest entropy seen. On CUDA it runs under bf16 autocast with channels-last tensors.
* ``"authors"``: the authors' notebook (GlaViTU reference 5.7): logits initialised to ones, Adam learning
  rate 1e-4, batches of 8 random crops of the window size from the whole scene, epochs of
  ``round(H * W / S^2 / 8)`` batches, at most 100 epochs, early stop once the squared L2 change of the logits
  over an epoch stays below 1e-8 for 5 epochs in a row. The whole scene is held in memory.

The network is frozen throughout: ``eval()`` (batch normalisation uses its running statistics), every
parameter's ``requires_grad`` off, Monte-Carlo dropout off; all three are restored afterwards and no weight
or buffer changes.

Example:
    >>> mapping = load_pretrained("region_model.ckpt")
    >>> vector = optimise_region(mapping, "scenes/new_region", windows=32, steps=50, seed=0)
    >>> vector.save("maps/new_region/region_vector.json")
    >>> map_scene(mapping, "scenes/new_region", "maps/new_region", region_vector=vector.probabilities)
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from glaciermap.errors import ConfigError, InputError
from glaciermap.inference.heap import retained_heap
from glaciermap.inference.predictor import DEFAULT_WINDOW, auto_bf16, resolve_device
from glaciermap.inference.source import SceneReader
from glaciermap.inference.windows import window_grid
from glaciermap.io import atomic_output
from glaciermap.models.base import SegmentationModel
from glaciermap.models.cpu_bf16 import guard_cpu_bf16
from glaciermap.models.folding import fold_for_inference
from glaciermap.models.pretrained import PretrainedModel

Procedure = Literal["fast", "authors"]
"""How Eq. 1 is minimised: ``"fast"`` (cached features, few steps) or ``"authors"`` (GlaViTU reference 5.7)."""

BoPrecision = Literal["auto", "32", "bf16"]
"""Arithmetic of the network: ``"auto"`` (bf16 autocast on CUDA, float32 elsewhere), ``"32"`` or ``"bf16"``."""

UNSEEN: Final[str] = "unseen"
"""Name of the last slot of the region vector."""

Init = Literal["uniform", "unseen"]
"""Start of the fast procedure: the uniform vector (as the authors) or (almost) the "unseen" one-hot."""

UNSEEN_INIT: Final[float] = 8.0
"""Logit of the "unseen" slot (others 0) for ``init="unseen"``: weight 0.996 with 12 slots, 0.999 with 4."""

FAST_LR: Final[float] = 1.0
"""Adam learning rate of the fast procedure (converges in tens of steps, see docs/strategies.md)."""

FAST_LR_FLOOR: Final[float] = 1e-3
"""Fast procedure: stop when rejected steps have halved the learning rate below this (Adam moves each logit
by about the learning rate per step, so below 1e-3 the vector changes by less than 0.1 % per step; the
authors' procedure moves each logit by at most 1e-4 per step)."""

AUTHORS_LR: Final[float] = 1e-4
"""Adam learning rate of the authors' procedure (GlaViTU paper, "Strategies"; reference 5.7)."""

AUTHORS_BATCH: Final[int] = 8
"""Crops per batch of the authors' procedure."""

AUTHORS_MAX_EPOCHS: Final[int] = 100
"""Epoch limit of the authors' procedure."""

AUTHORS_CHANGE: Final[float] = 1e-8
"""Early stop of the authors' procedure: squared L2 change of the logits over an epoch below this ..."""

AUTHORS_PATIENCE: Final[int] = 5
"""... for this many consecutive epochs."""

FORMAT: Final[str] = "glaciermap.region_vector/1"
"""Value of the ``format`` key of ``region_vector.json``."""


# ----------------------------------------------------------------------------------------------------
# The result
@dataclass(frozen=True)
class RegionVector:
    """An optimised region vector and how it was obtained.

    Attributes:
        logits: The optimised logits r, one per slot (GlaViTU paper Eq. 2).
        region_codes: Slot names: the model's region codes, then ``"unseen"``.
        entropy_trace: Mean normalised entropy (GlaViTU paper Eq. 1, in [0, 1]) per step (fast: on the
            sampled windows, entry 0 before the first update) or per epoch (authors: mean over the epoch's
            batches).
        steps: Adam updates made.
        seconds: Wall time of the optimisation, reading the scene included.
        procedure: ``"fast"`` or ``"authors"``.
        windows: Windows the fast procedure optimised on (authors: crops drawn in all).
        window_size: Window / crop side S (pixels).
        seed: Seed of the window sample / crops.
        lr: Adam learning rate.
        device: Device the optimisation ran on.
        precision: ``"32"`` or ``"bf16"``.
        scene: Scene name (folder name), if known.
        extra: Timings of the fast procedure's stages: ``read_seconds`` (sampling and reading the windows),
            ``cache_seconds`` (location-free features), ``optimise_seconds`` (the Adam steps).
        rejected_steps: Fast: indices into ``entropy_trace`` of the steps that raised the entropy above the
            best so far and were undone (the learning rate halved each time).
        lr_trace: Fast: learning rate of each update (entry k made trace entry k + 1).
        lr_floor: Fast: the procedure stops when rejections halve the learning rate below this.
        stop_reason: Fast: ``"tolerance"`` (the accepted entropy fell by less than the tolerance over
            ``patience`` accepted steps), ``"lr_floor"`` or ``"steps"`` (the update limit).
    """

    logits: tuple[float, ...]
    region_codes: tuple[str, ...]
    entropy_trace: tuple[float, ...]
    steps: int
    seconds: float
    procedure: str = "fast"
    windows: int = 0
    window_size: int = 0
    seed: int | None = None
    lr: float = FAST_LR
    device: str = "cpu"
    precision: str = "32"
    scene: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    rejected_steps: tuple[int, ...] = ()
    lr_trace: tuple[float, ...] = ()
    lr_floor: float | None = None
    stop_reason: str = ""

    @property
    def probabilities(self) -> tuple[float, ...]:
        """The region vector softmax(r) (GlaViTU paper Eq. 2), what the model is fed; sums to one."""
        r = np.asarray(self.logits, dtype=np.float64)
        e = np.exp(r - r.max())
        return tuple(float(v) for v in e / e.sum())

    @property
    def entropy(self) -> float:
        """Entropy of the returned vector (fast: lowest accepted trace entry; authors: last epoch's).

        Rejected steps of the fast procedure are above the best so far, so this is also the trace's minimum.
        """
        if not self.entropy_trace:
            return math.nan
        if self.procedure != "fast":
            return self.entropy_trace[-1]
        rejected = set(self.rejected_steps)
        return min(v for i, v in enumerate(self.entropy_trace) if i not in rejected)

    def summary(self) -> dict[str, Any]:
        """The record for a mapping's ``summary.json`` (numbers rounded to 6 decimals).

        Returns:
            ``procedure``, ``region_codes``, ``vector`` (softmax(r)), ``logits``, ``entropy_initial`` (first
            trace entry: the uniform vector's entropy for ``"fast"``), ``entropy`` (the returned vector's),
            ``entropy_trace``, ``steps``, ``windows``, ``window_size``, ``seed``, ``lr``, ``seconds``,
            ``device``, ``precision``, ``rejected_steps``, ``lr_trace``, ``lr_floor``, ``stop_reason``.
        """
        return {
            "procedure": self.procedure,
            "region_codes": list(self.region_codes),
            "vector": [round(v, 6) for v in self.probabilities],
            "logits": [round(v, 6) for v in self.logits],
            "entropy_initial": round(self.entropy_trace[0], 6) if self.entropy_trace else None,
            "entropy": round(self.entropy, 6) if self.entropy_trace else None,
            "entropy_trace": [round(v, 6) for v in self.entropy_trace],
            "steps": self.steps,
            "windows": self.windows,
            "window_size": self.window_size,
            "seed": self.seed,
            "lr": self.lr,
            "seconds": round(self.seconds, 3),
            "device": self.device,
            "precision": self.precision,
            "rejected_steps": list(self.rejected_steps),
            "lr_trace": [float(f"{v:.6g}") for v in self.lr_trace],
            "lr_floor": self.lr_floor,
            "stop_reason": self.stop_reason,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the content of ``region_vector.json``).

        Returns:
            Every field, plus ``probabilities`` and ``region_vector`` (both softmax(r); the latter is the key
            ``glaciermap map --region-vector FILE`` reads), ``entropy`` and ``format``.
        """
        out = asdict(self)
        out["logits"] = [float(v) for v in self.logits]
        out["region_codes"] = list(self.region_codes)
        out["entropy_trace"] = [float(v) for v in self.entropy_trace]
        out["rejected_steps"] = [int(v) for v in self.rejected_steps]
        out["lr_trace"] = [float(v) for v in self.lr_trace]
        out["probabilities"] = list(self.probabilities)
        out["region_vector"] = list(self.probabilities)  # the key `glaciermap map --region-vector` reads
        out["entropy"] = self.entropy
        return {"format": FORMAT, **out}

    def to_json(self) -> str:
        """Strict JSON (``allow_nan=False``), indented.

        Raises:
            ValueError: If a number is not finite.
        """
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (temporary name, then rename).

        Args:
            path: Output file (``region_vector.json``).

        Returns:
            The path written.
        """
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(out) as tmp:
            tmp.write_text(self.to_json())
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "region vector") -> RegionVector:
        """Rebuild from :meth:`to_dict` output, checking every field.

        Args:
            data: The decoded JSON.
            source: Where it comes from, for messages.

        Returns:
            The region vector.

        Raises:
            InputError: If a field is missing or malformed.
        """
        if not isinstance(data, dict):
            raise InputError(f"{source}: expected a JSON object with 'logits' and 'region_codes'")
        logits, codes = data.get("logits"), data.get("region_codes")
        if (
            not isinstance(logits, list)
            or len(logits) < 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in logits)
            or not all(math.isfinite(float(v)) for v in logits)
        ):
            raise InputError(f"{source}: 'logits' must be a list of at least 2 finite numbers")
        if (
            not isinstance(codes, list)
            or len(codes) != len(logits)
            or not all(isinstance(c, str) for c in codes)
            or not codes
            or codes[-1] != UNSEEN
        ):
            raise InputError(
                f"{source}: 'region_codes' must list {len(logits)} region codes ending with {UNSEEN!r}"
            )
        trace = data.get("entropy_trace", [])
        if not isinstance(trace, list) or not all(
            isinstance(v, int | float) and math.isfinite(float(v)) for v in trace
        ):
            raise InputError(f"{source}: 'entropy_trace' must be a list of finite numbers")
        rejected, rates = data.get("rejected_steps", []), data.get("lr_trace", [])
        if not isinstance(rejected, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(trace) for v in rejected
        ):
            raise InputError(f"{source}: 'rejected_steps' must be a list of indices into 'entropy_trace'")
        if not isinstance(rates, list) or not all(
            isinstance(v, int | float) and math.isfinite(float(v)) for v in rates
        ):
            raise InputError(f"{source}: 'lr_trace' must be a list of finite numbers")
        try:
            return cls(
                logits=tuple(float(v) for v in logits),
                region_codes=tuple(codes),
                entropy_trace=tuple(float(v) for v in trace),
                steps=int(data.get("steps", 0)),
                seconds=float(data.get("seconds", 0.0)),
                procedure=str(data.get("procedure", "fast")),
                windows=int(data.get("windows", 0)),
                window_size=int(data.get("window_size", 0)),
                seed=None if data.get("seed") is None else int(data["seed"]),
                lr=float(data.get("lr", FAST_LR)),
                device=str(data.get("device", "cpu")),
                precision=str(data.get("precision", "32")),
                scene=str(data.get("scene", "")),
                extra=dict(data.get("extra") or {}),
                rejected_steps=tuple(rejected),
                lr_trace=tuple(float(v) for v in rates),
                lr_floor=None if data.get("lr_floor") is None else float(data["lr_floor"]),
                stop_reason=str(data.get("stop_reason", "")),
            )
        except (TypeError, ValueError) as err:
            raise InputError(f"{source}: malformed field ({err})") from None

    @classmethod
    def from_json(cls, text: str, source: str = "region vector") -> RegionVector:
        """Parse :meth:`to_json` output (strict: NaN and Infinity are rejected).

        Args:
            text: The JSON text.
            source: Where it comes from, for messages.

        Returns:
            The region vector.

        Raises:
            InputError: If the text is not valid JSON or a field is malformed.
        """

        def reject(token: str) -> float:
            raise ValueError(f"{token} is not valid JSON")

        try:
            data = json.loads(text, parse_constant=reject)
        except ValueError as err:
            raise InputError(f"{source}: not valid JSON ({err})") from None
        return cls.from_dict(data, source)

    def check_model(self, region_codes: Sequence[str]) -> None:
        """Check that this vector was made for a model with these region codes.

        Args:
            region_codes: The model's region codes (without ``"unseen"``).

        Raises:
            ConfigError: If the slots differ.
        """
        expected = (*region_codes, UNSEEN)
        if tuple(self.region_codes) != expected:
            raise ConfigError(
                f"region vector slots {', '.join(self.region_codes)} do not match the model's "
                f"{', '.join(expected)}; optimise it again for this model"
            )


def load_region_vector(
    path: str | os.PathLike[str], region_codes: Sequence[str] | None = None
) -> RegionVector:
    """Read a ``region_vector.json`` written by :meth:`RegionVector.save`.

    Args:
        path: The file.
        region_codes: The model's region codes; when given, the vector's slots must match them.

    Returns:
        The region vector.

    Raises:
        InputError: If the file is missing, unreadable or malformed (one line naming the file).
        ConfigError: If its slots do not match ``region_codes``.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"region vector {p}: cannot be read ({type(err).__name__})") from None
    vector = RegionVector.from_json(text, f"region vector {p}")
    if region_codes is not None:
        vector.check_model(region_codes)
    return vector


# ----------------------------------------------------------------------------------------------------
# The objective
def normalised_entropy(logits: Tensor) -> Tensor:
    """Per-pixel normalised Shannon entropy ``-sum_c p_c log_C p_c`` (GlaViTU paper Eq. 1).

    Computed from the log-softmax, so ``p log p`` is exactly 0 where ``p`` underflows.

    Args:
        logits: (B, C, H, W) class logits, C >= 2.

    Returns:
        (B, H, W) float32 entropies in [0, 1].
    """
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(dim=1) / math.log(logits.shape[1])


def mean_entropy(logits: Tensor, invalid: Tensor | None = None) -> Tensor:
    """Mean normalised entropy over the valid pixels: the objective of GlaViTU paper Eq. 1.

    Args:
        logits: (B, C, H, W) class logits.
        invalid: (B, H, W) True where a pixel is nodata or outside the scene (excluded), or ``None``.

    Returns:
        Scalar float32 tensor.
    """
    h = normalised_entropy(logits)
    if invalid is None:
        return h.mean()
    valid = ~invalid
    return (h * valid).sum() / valid.sum().clamp_min(1)


# ----------------------------------------------------------------------------------------------------
# Reading windows
@dataclass
class SceneWindows:
    """Windows of a scene as the model sees them (normalised, fill value at invalid pixels).

    Attributes:
        image: (N, C, H, W) float32 windows (H = W = S for sampled windows; the whole scene for
            :func:`read_scene`), channels in the model's band order.
        invalid: (N, H, W) True where a pixel is nodata or outside the scene.
        candidates: Windows of the scene that qualified (valid share >= ``min_valid``) before sampling.
        name: Scene name.
        fill_value: Value of invalid pixels in ``image`` (used to pad crops).
    """

    image: Tensor
    invalid: Tensor
    candidates: int = 0
    name: str = ""
    fill_value: float = 0.0

    def __post_init__(self) -> None:
        """Check the shapes.

        Raises:
            InputError: If ``image`` is not (N, C, H, W) or ``invalid`` not (N, H, W).
        """
        if self.image.ndim != 4 or self.invalid.shape != (self.image.shape[0], *self.image.shape[2:]):
            raise InputError(
                f"scene windows: expected image (N, C, H, W) and invalid (N, H, W), got "
                f"{tuple(self.image.shape)} and {tuple(self.invalid.shape)}"
            )
        if not self.candidates:
            self.candidates = int(self.image.shape[0])

    @property
    def count(self) -> int:
        """Number of windows N."""
        return int(self.image.shape[0])


def _reader(mapping: PretrainedModel, scene_dir: str | os.PathLike[str], size: int) -> tuple[Any, Any, Any]:
    from glaciermap.datasets.scene_folder import inspect_scene

    scene = inspect_scene(Path(scene_dir), list(mapping.bands), labels="ignore", check_valid_pixels=False)
    grid = window_grid(scene.height, scene.width, size, 0.0)
    reader = SceneReader(
        scene,
        mapping.bands,
        mapping.norm,
        mapping.fill_value,
        pad_top=grid.rows.pad_before,
        pad_left=grid.cols.pad_before,
        padded_width=grid.cols.padded,
    )
    return scene, grid, reader


def sample_windows(
    mapping: PretrainedModel,
    scene_dir: str | os.PathLike[str],
    *,
    windows: int,
    window_size: int,
    seed: int = 0,
    min_valid: float = 0.5,
) -> SceneWindows:
    """A seeded random sample of the scene's valid windows, read in one pass with bounded memory.

    The scene is cut into non-overlapping windows of side S (padded and centred as for mapping, layout
    ``"compact"``). A window qualifies when at least ``min_valid`` of its pixels are valid (nodata, NaN and
    padding are not); ``windows`` of them are kept by reservoir sampling (algorithm R) with
    ``numpy.random.default_rng(seed)``, so the sample depends only on the scene and the seed. Only one row
    of windows and the sample are in memory at a time.

    Args:
        mapping: The model with its bands and statistics.
        scene_dir: The scene folder.
        windows: Windows to keep (N).
        window_size: Window side S (pixels).
        seed: Seed of the sample.
        min_valid: Least valid share of a qualifying window, in (0, 1].

    Returns:
        The sampled windows (fewer than ``windows`` when fewer qualify), in scene order.

    Raises:
        InputError: If the scene folder is not what the model needs.
    """
    scene, grid, reader = _reader(mapping, scene_dir, window_size)
    rng = np.random.default_rng(seed)
    size = window_size
    kept: list[tuple[int, npt.NDArray[np.float32], npt.NDArray[np.bool_]]] = []
    seen = 0
    try:
        for i, start in enumerate(grid.rows.starts):
            image, invalid = reader.read(start, start + size)
            for j, col in enumerate(grid.cols.starts):
                bad = invalid[:, col : col + size]
                if 1.0 - float(bad.mean()) < min_valid:
                    continue
                item = (i * grid.cols.count + j, image[:, :, col : col + size].copy(), bad.copy())
                if len(kept) < windows:
                    kept.append(item)
                else:
                    k = int(rng.integers(0, seen + 1))
                    if k < windows:
                        kept[k] = item
                seen += 1
    finally:
        reader.close()
    kept.sort(key=lambda t: t[0])
    if not kept:
        channels = reader.channels
        return SceneWindows(
            torch.empty((0, channels, size, size)),
            torch.empty((0, size, size), dtype=torch.bool),
            0,
            scene.name,
            mapping.fill_value,
        )
    return SceneWindows(
        image=torch.from_numpy(np.stack([k[1] for k in kept])),
        invalid=torch.from_numpy(np.stack([k[2] for k in kept])),
        candidates=seen,
        name=scene.name,
        fill_value=mapping.fill_value,
    )


def read_scene(mapping: PretrainedModel, scene_dir: str | os.PathLike[str]) -> SceneWindows:
    """The whole scene as one "window" of its own size, for the authors' procedure (held in memory).

    Args:
        mapping: The model with its bands and statistics.
        scene_dir: The scene folder.

    Returns:
        A :class:`SceneWindows` whose single image is the (1, C, H, W) scene and whose ``invalid`` is
        (1, H, W).

    Raises:
        InputError: If the scene folder is not what the model needs.
    """
    from glaciermap.datasets.scene_folder import inspect_scene

    scene = inspect_scene(Path(scene_dir), list(mapping.bands), labels="ignore", check_valid_pixels=False)
    reader = SceneReader(
        scene,
        mapping.bands,
        mapping.norm,
        mapping.fill_value,
        pad_top=0,
        pad_left=0,
        padded_width=scene.width,
    )
    try:
        image, invalid = reader.read(0, scene.height)
    finally:
        reader.close()
    return SceneWindows(
        torch.from_numpy(image)[None], torch.from_numpy(invalid)[None], 1, scene.name, mapping.fill_value
    )


# ----------------------------------------------------------------------------------------------------
# The frozen network
@contextmanager
def frozen(model: SegmentationModel) -> Iterator[SegmentationModel]:
    """Freeze a model for bias optimisation and restore it afterwards.

    Inside the block the model is in ``eval()`` (batch normalisation uses its running statistics), every
    parameter has ``requires_grad=False`` (so no weight gradient is ever computed) and Monte-Carlo dropout
    is off. The previous mode, flags and dropout state are restored on exit; weights and buffers are
    never written.

    Args:
        model: The network.

    Yields:
        The same model.
    """
    was_training = model.training
    was_mc = bool(getattr(model, "mc_dropout", False))
    flags = [p.requires_grad for p in model.parameters()]
    try:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        if was_mc:
            model.set_mc_dropout(False)
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        if was_mc:
            model.set_mc_dropout(True)
        model.train(was_training)


def split_forward(
    model: SegmentationModel,
) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor], Tensor], bool]:
    """The model's forward pass as "location-free features" and "the rest".

    Models with ``forward_features(inputs)`` and ``forward_head(features, location)`` (GlaViTU,
    ``light_region_resunet``) are split there, so the features can be cached; any other model is run whole
    (nothing cached: the "features" are the inputs).

    Args:
        model: The network.

    Returns:
        ``(features(x) -> F, head(F, location) -> logits "out", cached)``.
    """
    ff = getattr(model, "forward_features", None)
    fh = getattr(model, "forward_head", None)
    if callable(ff) and callable(fh):
        return (lambda x: ff(x)), (lambda f, loc: fh(f, loc)["out"]), True
    return (lambda x: x), (lambda f, loc: model(f, loc)["out"]), False


def region_slots(model: SegmentationModel) -> tuple[str, ...]:
    """The slot names of a region-encoding model: its region codes, then ``"unseen"``.

    Args:
        model: The network.

    Returns:
        The slot names.

    Raises:
        ConfigError: If the model has no region encoding.
    """
    encoding = getattr(model, "location_encoding", "none")
    if encoding != "region":
        raise ConfigError(
            f"bias optimisation needs a region-encoding model; {type(model).__name__} has location encoding "
            f"{encoding!r} (train one with model_kwargs.location_encoding: region)"
        )
    return (*tuple(getattr(model, "region_codes", ())), UNSEEN)


# ----------------------------------------------------------------------------------------------------
# The optimisation
def _device_setup(
    device: str | torch.device, precision: BoPrecision, channels_last: bool = False
) -> tuple[torch.device, bool]:
    """The device, and whether to run under bf16 autocast.

    bf16: asked for, or ``auto`` where :func:`~glaciermap.inference.predictor.auto_bf16` finds it (CUDA; CPUs
    where bf16 is faster in the layout ``channels_last``).
    """
    if precision not in get_args(BoPrecision):
        raise ConfigError(f"precision is {precision!r}; expected one of {', '.join(get_args(BoPrecision))}")
    dev = resolve_device(device)
    bf16 = precision == "bf16" or (precision == "auto" and auto_bf16(dev, channels_last))
    return dev, bf16


def _inference_copy(net: SegmentationModel, dev: torch.device, bf16: bool) -> SegmentationModel:
    """A folded inference copy of ``net``; the model itself is not moved or changed.

    With bf16 on a CPU, the convolutions that this CPU computes wrongly in bf16 run in float32
    (:func:`guard_cpu_bf16`).
    """
    copy = fold_for_inference(net)
    if bf16 and dev.type == "cpu":
        guard_cpu_bf16(copy)
    return copy


def _check_int(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} is {value!r}; expected an integer >= {least}")


def scene_entropy(
    model: PretrainedModel | SegmentationModel,
    windows: SceneWindows,
    vector: Sequence[float] | Tensor,
    *,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    precision: BoPrecision = "auto",
) -> float:
    """Mean normalised entropy (GlaViTU paper Eq. 1) of the model's predictions on windows, for a vector.

    Used to compare procedures on the same pixels (e.g. every valid window of a scene).

    Args:
        model: The region-encoding model (or its mapping model).
        windows: The windows (see :func:`sample_windows`).
        vector: (L,) region vector (probabilities, not logits).
        batch_size: Windows per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        precision: See :data:`BoPrecision`.

    Returns:
        The entropy over all valid pixels of the windows, in [0, 1].

    Raises:
        ConfigError: If the model has no region encoding.
    """
    net = model.model if isinstance(model, PretrainedModel) else model
    region_slots(net)
    dev, bf16 = _device_setup(device, precision)
    net = _inference_copy(net, dev, bf16)
    vec = torch.as_tensor(vector, dtype=torch.float32).to(dev)
    total, count = 0.0, 0
    with frozen(net), torch.no_grad():
        net.to(dev)
        for b0 in range(0, windows.count, batch_size):
            x = windows.image[b0 : b0 + batch_size].to(dev)
            bad = windows.invalid[b0 : b0 + batch_size].to(dev)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
                logits = net(x, vec.expand(x.shape[0], -1))["out"]
            h = normalised_entropy(logits)
            total += float((h * ~bad).sum())
            count += int((~bad).sum())
    return total / max(count, 1)


def optimise_region(
    model: PretrainedModel | SegmentationModel,
    scene: str | os.PathLike[str] | SceneWindows,
    *,
    procedure: Procedure = "fast",
    windows: int = 32,
    steps: int = 50,
    lr: float | None = None,
    seed: int = 0,
    window_size: int | None = None,
    batch_size: int = 8,
    min_valid: float = 0.5,
    min_windows: int = 2,
    tolerance: float = 1e-4,
    patience: int = 5,
    max_epochs: int = AUTHORS_MAX_EPOCHS,
    device: str | torch.device = "auto",
    precision: BoPrecision = "auto",
    channels_last: bool | None = None,
    init: Init = "uniform",
    lr_floor: float = FAST_LR_FLOOR,
) -> RegionVector:
    """Inference-time bias optimisation: the region vector that minimises the scene's mean entropy.

    Minimises GlaViTU paper Eq. 1 over the logits r of Eq. 2 with the network frozen (see the module
    docstring for both procedures). Map the scene afterwards with ``region_vector=result.probabilities``.

    Args:
        model: A region-encoding model: a :class:`PretrainedModel` (needed when ``scene`` is a folder: it knows
            the bands and statistics) or a bare :class:`SegmentationModel` with ``scene`` as windows.
        scene: A scene folder, or windows already read (:class:`SceneWindows`, e.g. from
            :func:`sample_windows`; for ``"authors"`` its windows are the images crops are drawn from).
        procedure: ``"fast"`` or ``"authors"`` (GlaViTU reference 5.7).
        windows: Fast: valid windows sampled from the scene and optimised on (all of them at every step).
        steps: Fast: most Adam updates (rejected ones included).
        lr: Adam learning rate (default 1.0 fast, 1e-4 authors).
        seed: Seed of the window sample (fast) or of the random crops (authors).
        window_size: Window / crop side S in pixels (default: the model's ``img_size``, else 384; a multiple
            of 16).
        batch_size: Windows per forward pass (fast: memory only, the gradient is over all windows; authors:
            crops per batch, 8 in the reference).
        min_valid: Fast: least valid share of a sampled window, in (0, 1].
        min_windows: Fast: fewest qualifying windows the scene must have.
        tolerance: Fast: stop when the entropy of the accepted steps fell by less than this over ``patience``
            accepted steps (a step that raises the entropy above the best so far is rejected: undone and
            retried from the best point with half the learning rate; rejected steps never count here).
        patience: Fast: see ``tolerance``.
        max_epochs: Authors: epoch limit (100).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        precision: ``"auto"`` (bf16 autocast on CUDA, and on a CPU where it is faster in the layout used:
            :func:`~glaciermap.inference.predictor.auto_bf16`), ``"32"`` or ``"bf16"``.
        init: Fast: start from the uniform vector (``"uniform"``, as the authors) or from logit
            :data:`UNSEEN_INIT` on the "unseen" slot (``"unseen"``: almost its one-hot), so the result is
            never worse on the sampled windows than that start.
        channels_last: Channels-last tensors (default: on CUDA, and on a CPU in bf16, where GlaViTU took 1.1-1.3
            s per window-step against 3.0-3.3 s contiguous and 4.9-5.9 s in float32 on a CPU with AMX; in float32
            on the CPU they were measured several times slower for this small-batch workload).
        lr_floor: Fast: stop when rejected steps have halved the learning rate below this
            (:data:`FAST_LR_FLOOR`; 0: never, e.g. for a fixed amount of work); ``steps`` counts rejected
            updates too.

    Returns:
        The optimised :class:`RegionVector` (slots: the model's region codes, then ``"unseen"``).

    Raises:
        ConfigError: If the model has no region encoding, or an argument is invalid.
        InputError: If the scene folder is not what the model needs, or it has fewer than ``min_windows``
            windows with at least ``min_valid`` valid pixels.
    """
    # Lightning runs prediction hooks under inference mode: gradients (w.r.t. r only) must be re-enabled.
    # Freed activations stay in the heap for the next step (glaciermap.inference.heap; host memory only).
    with torch.inference_mode(False), torch.enable_grad(), retained_heap():
        return _optimise_region(
            model,
            scene,
            procedure=procedure,
            windows=windows,
            steps=steps,
            lr=lr,
            seed=seed,
            window_size=window_size,
            batch_size=batch_size,
            min_valid=min_valid,
            min_windows=min_windows,
            tolerance=tolerance,
            patience=patience,
            max_epochs=max_epochs,
            device=device,
            precision=precision,
            channels_last=channels_last,
            init=init,
            lr_floor=lr_floor,
        )


def _optimise_region(
    model: PretrainedModel | SegmentationModel,
    scene: str | os.PathLike[str] | SceneWindows,
    *,
    procedure: Procedure,
    windows: int,
    steps: int,
    lr: float | None,
    seed: int,
    window_size: int | None,
    batch_size: int,
    min_valid: float,
    min_windows: int,
    tolerance: float,
    patience: int,
    max_epochs: int,
    device: str | torch.device,
    precision: BoPrecision,
    channels_last: bool | None,
    init: Init,
    lr_floor: float,
) -> RegionVector:
    start = time.perf_counter()
    net = model.model if isinstance(model, PretrainedModel) else model
    slots = region_slots(net)
    _check_arguments(
        procedure, init, windows, steps, batch_size, min_windows, patience, max_epochs, min_valid
    )
    rate = _learning_rate(procedure, lr)
    if not (math.isfinite(lr_floor) and lr_floor >= 0):
        raise ConfigError(f"lr_floor is {lr_floor!r}; expected a learning rate >= 0 (0: no floor)")
    size = _window_size(net, window_size)
    dev, bf16 = _device_setup(device, precision, channels_last is not False)
    if channels_last is None:  # on the CPU channels-last only pays in bf16 (measured, see the docstring)
        channels_last = dev.type == "cuda" or bf16
    data = _scene_data(model, scene, procedure, windows, size, seed, min_valid)
    read_seconds = time.perf_counter() - start
    timings: dict[str, float] = {}
    run: _FastRun | None = None
    net = _inference_copy(net, dev, bf16)
    with frozen(net):
        net.to(dev)
        if channels_last:
            net.to(memory_format=torch.channels_last)
        if procedure == "fast":
            _check_windows(data, size, min_valid, min_windows)
            logits, run = _fast(
                net,
                data,
                len(slots),
                dev,
                bf16,
                channels_last,
                (rate, tolerance, patience, steps, lr_floor),
                batch_size,
                timings,
                UNSEEN_INIT if init == "unseen" else 0.0,
            )
            trace, done, used = run.trace, len(run.rates), data.count
        else:
            logits, trace, done, used = _authors(
                net, data, len(slots), dev, bf16, channels_last, rate, size, batch_size, seed, max_epochs
            )
    return RegionVector(
        logits=tuple(float(v) for v in logits),
        region_codes=slots,
        entropy_trace=tuple(trace),
        steps=done,
        seconds=time.perf_counter() - start,
        procedure=procedure,
        windows=used,
        window_size=size,
        seed=seed,
        lr=rate,
        device=str(dev),
        precision="bf16" if bf16 else "32",
        scene=data.name,
        extra={"read_seconds": round(read_seconds, 3), **{k: round(v, 3) for k, v in timings.items()}},
        rejected_steps=() if run is None else tuple(run.rejected),
        lr_trace=() if run is None else tuple(run.rates),
        lr_floor=None if run is None else lr_floor,
        stop_reason="" if run is None else run.stop,
    )


def _check_arguments(
    procedure: Any,
    init: Any,
    windows: Any,
    steps: Any,
    batch_size: Any,
    min_windows: Any,
    patience: Any,
    max_epochs: Any,
    min_valid: Any,
) -> None:
    """Stage 1: every argument of :func:`optimise_region` that does not depend on the model or scene."""
    if init not in get_args(Init):
        raise ConfigError(f"init is {init!r}; expected one of {', '.join(get_args(Init))}")
    if procedure not in get_args(Procedure):
        raise ConfigError(f"procedure is {procedure!r}; expected one of {', '.join(get_args(Procedure))}")
    for name, value, least in (
        ("windows", windows, 1),
        ("steps", steps, 0),
        ("batch_size", batch_size, 1),
        ("min_windows", min_windows, 1),
        ("patience", patience, 1),
        ("max_epochs", max_epochs, 1),
    ):
        _check_int(name, value, least)
    if not 0.0 < min_valid <= 1.0:
        raise ConfigError(f"min_valid is {min_valid!r}; expected a fraction in (0, 1]")


def _learning_rate(procedure: Procedure, lr: float | None) -> float:
    """The Adam learning rate: ``lr``, else the procedure's default (1.0 fast, 1e-4 authors)."""
    rate = (FAST_LR if procedure == "fast" else AUTHORS_LR) if lr is None else float(lr)
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"lr is {lr!r}; expected a positive learning rate")
    return rate


def _window_size(net: SegmentationModel, window_size: int | None) -> int:
    """The window / crop side: ``window_size`` (a multiple of the model's), else its ``img_size`` rounded up."""
    multiple = int(getattr(net, "size_multiple", 1))
    size = window_size or int(getattr(net, "hparams", {}).get("img_size", DEFAULT_WINDOW))
    size = -(-size // multiple) * multiple
    if window_size is not None and window_size % multiple:
        raise ConfigError(f"window_size is {window_size}; the model needs a multiple of {multiple}")
    return size


def _scene_data(
    model: PretrainedModel | SegmentationModel,
    scene: str | os.PathLike[str] | SceneWindows,
    procedure: Procedure,
    windows: int,
    size: int,
    seed: int,
    min_valid: float,
) -> SceneWindows:
    """Stage 2: the windows to optimise on (fast: a seeded sample; authors: the whole scene)."""
    if isinstance(scene, SceneWindows):
        return scene
    if not isinstance(model, PretrainedModel):
        raise ConfigError(
            "a scene folder needs a PretrainedModel (bands and statistics); wrap the network with "
            "PretrainedModel.from_model(model, norm_stats) or pass SceneWindows"
        )
    if procedure == "fast":
        return sample_windows(model, scene, windows=windows, window_size=size, seed=seed, min_valid=min_valid)
    return read_scene(model, scene)


def _check_windows(data: SceneWindows, size: int, min_valid: float, min_windows: int) -> None:
    """Fast procedure: the scene must have at least ``min_windows`` qualifying windows."""
    if data.candidates < min_windows or data.count == 0:
        raise InputError(
            f"scene {data.name or '(windows)'}: {data.candidates} window(s) of {size} px with at least "
            f"{min_valid:.0%} valid pixels; bias optimisation needs at least {min_windows} "
            "(use a smaller window size or a scene with more valid pixels)"
        )


def _to_device(x: Tensor, dev: torch.device, channels_last: bool) -> Tensor:
    x = x.to(dev, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def _cache_features(
    net: SegmentationModel,
    data: SceneWindows,
    dev: torch.device,
    bf16: bool,
    channels_last: bool,
    batch_size: int,
) -> tuple[list[tuple[Tensor, Tensor]], int]:
    """The location-free features of every window, batch by batch, with their invalid masks."""
    features, _, _ = split_forward(net)
    cache: list[tuple[Tensor, Tensor]] = []
    with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
        for b0 in range(0, data.count, batch_size):
            x = _to_device(data.image[b0 : b0 + batch_size], dev, channels_last)
            cache.append((features(x), data.invalid[b0 : b0 + batch_size].to(dev)))
    return cache, sum(int((~bad).sum()) for _, bad in cache)


def _objective(
    head: Callable[[Tensor, Tensor], Tensor],
    cache: list[tuple[Tensor, Tensor]],
    n_valid: int,
    logits: Tensor,
    dev: torch.device,
    bf16: bool,
    grad: bool,
) -> float:
    """GlaViTU paper Eq. 1 over the cached windows for ``softmax(logits)``.

    With ``grad``, its gradient w.r.t. the logits is accumulated into ``logits.grad``, batch by batch.
    """
    total = 0.0
    for f, bad in cache:
        with torch.set_grad_enabled(grad):
            vec = torch.softmax(logits, dim=0).expand(f.shape[0], -1)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
                out = head(f, vec)
            part = (normalised_entropy(out) * ~bad).sum()
            if grad:
                (part / n_valid).backward()
        total += float(part.detach())
    return total / n_valid


@dataclass
class _FastRun:
    """What the fast procedure's loop records (see :class:`RegionVector`)."""

    trace: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    accepted: list[float] = field(default_factory=list)
    stop: str = "steps"


def _fast(
    net: SegmentationModel,
    data: SceneWindows,
    slots: int,
    dev: torch.device,
    bf16: bool,
    channels_last: bool,
    control: tuple[float, float, int, int, float],
    batch_size: int,
    timings: dict[str, float],
    unseen_logit: float,
) -> tuple[list[float], _FastRun]:
    """Full-batch Adam on cached features with an objective-preserving step control.

    ``control`` is (learning rate, tolerance, patience, steps, learning-rate floor). A step whose entropy is
    above the best so far is rejected: the logits go back to the best point, Adam's moments are reset and
    the step is retried from there with the best point's gradient and half the learning rate. With fresh
    moments Adam's first step is ``-lr * sign(gradient)`` (up to its epsilon), a descent direction, so
    halving finds a step that lowers the entropy unless the best point is (nearly) stationary; keeping or
    restoring the old moments can keep a direction that is not a descent one (measured: on alaska:301 it
    halved the learning rate to the floor from an entropy of 0.3688, the reset reached a lower one). Stops
    when the learning rate falls below the floor, when the accepted (best) entropy fell by less than the
    tolerance over ``patience`` accepted steps, or after ``steps`` updates.

    Returns:
        The best logits and the run's record.
    """
    lr, tolerance, patience, steps, floor = control
    _, head, _ = split_forward(net)
    t0 = time.perf_counter()
    cache, n_valid = _cache_features(net, data, dev, bf16, channels_last, batch_size)
    timings["cache_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    logits = torch.zeros(slots, device=dev)
    logits[-1] = unseen_logit
    logits.requires_grad_(True)
    optimiser = torch.optim.Adam([logits], lr=lr)
    run = _FastRun()
    best_logits, best_grad = logits.detach().clone(), torch.zeros_like(logits)
    for step in range(steps + 1):
        optimiser.zero_grad(set_to_none=True)
        entropy = _objective(head, cache, n_valid, logits, dev, bf16, grad=step < steps)
        run.trace.append(entropy)
        if not run.accepted or entropy <= run.accepted[-1]:
            run.accepted.append(entropy)
            best_logits = logits.detach().clone()
            best_grad = torch.zeros_like(logits) if logits.grad is None else logits.grad.detach().clone()
            n = len(run.accepted) - 1
            if n >= patience and run.accepted[n - patience] - entropy < tolerance:
                run.stop = "tolerance"
                break
        else:  # the step raised Eq. 1: undo it and retry from the best point with half the step
            run.rejected.append(step)
            lr *= 0.5
            if lr < floor:
                run.stop = "lr_floor"
                break
            with torch.no_grad():
                logits.copy_(best_logits)
            optimiser = torch.optim.Adam([logits], lr=lr)
            logits.grad = best_grad.clone()
        if step == steps:
            break
        for group in optimiser.param_groups:
            group["lr"] = lr
        optimiser.step()
        run.rates.append(lr)
    timings["optimise_seconds"] = time.perf_counter() - t0
    return best_logits.cpu().tolist(), run


def _authors(
    net: SegmentationModel,
    data: SceneWindows,
    slots: int,
    dev: torch.device,
    bf16: bool,
    channels_last: bool,
    lr: float,
    size: int,
    batch_size: int,
    seed: int,
    max_epochs: int,
) -> tuple[list[float], list[float], int, int]:
    """The authors' procedure (GlaViTU reference 5.7); returns (logits, epoch losses, updates, crops)."""
    features, head, _ = split_forward(net)
    rng = np.random.default_rng(seed)
    heights = [int(data.invalid.shape[1])] * data.count
    widths = [int(data.invalid.shape[2])] * data.count
    areas = np.array([h * w for h, w in zip(heights, widths, strict=True)], dtype=np.float64)
    per_epoch = max(1, round(float(areas.sum()) / size**2 / batch_size))
    logits = torch.ones(slots, device=dev, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=lr)
    trace: list[float] = []
    calm, done, crops = 0, 0, 0
    for _ in range(max_epochs):
        before = logits.detach().clone()
        losses = []
        for _ in range(per_epoch):
            images, bads = [], []
            for _ in range(batch_size):
                k = int(rng.choice(data.count, p=areas / areas.sum()))
                y = int(rng.integers(0, max(0, heights[k] - size) + 1))
                x = int(rng.integers(0, max(0, widths[k] - size) + 1))
                img = data.image[k, :, y : y + size, x : x + size]
                bad = data.invalid[k, y : y + size, x : x + size]
                ph, pw = size - img.shape[1], size - img.shape[2]
                if ph or pw:  # a scene smaller than a crop: pad as the mapper does
                    img = torch.nn.functional.pad(img, (0, pw, 0, ph), value=data.fill_value)
                    bad = torch.nn.functional.pad(bad, (0, pw, 0, ph), value=True)
                images.append(img)
                bads.append(bad)
            crops += batch_size
            x_b = _to_device(torch.stack(images), dev, channels_last)
            bad_b = torch.stack(bads).to(dev)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
                with torch.no_grad():
                    f = features(x_b)
                out = head(f, torch.softmax(logits, dim=0).expand(x_b.shape[0], -1))
            loss = mean_entropy(out, bad_b)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            done += 1
            losses.append(float(loss.detach()))
        trace.append(float(np.mean(losses)))
        change = float(((logits.detach() - before) ** 2).sum())
        calm = calm + 1 if change < AUTHORS_CHANGE else 0
        if calm >= AUTHORS_PATIENCE:
            break
    return logits.detach().cpu().tolist(), trace, done, crops


__all__ = [
    "Init",
    "Procedure",
    "RegionVector",
    "SceneWindows",
    "frozen",
    "load_region_vector",
    "mean_entropy",
    "normalised_entropy",
    "optimise_region",
    "read_scene",
    "region_slots",
    "sample_windows",
    "scene_entropy",
    "split_forward",
]
