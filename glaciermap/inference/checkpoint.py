"""What a scene is mapped with: a model plus the preprocessing and classes it was trained with.

* :class:`MappingModel` bundles a :class:`~glaciermap.models.base.SegmentationModel` with the bands it reads,
  the normalisation statistics it was trained with, its class names, its location input (region codes,
  encoding) and an optional confidence calibrator.
* :func:`load_checkpoint` builds one from a training checkpoint (``.ckpt`` of
  :class:`~glaciermap.tasks.segmentation.SegmentationTask`): the model is rebuilt from
  ``checkpoint["glaciermap"]`` (``model``, ``model_hparams``, ``bands``, ``norm_stats``, ``class_names``,
  ``region_codes``, ``location_encoding``) and the weights are the ``model.*`` entries of ``state_dict``.
  The file is read with ``torch.load(weights_only=True)``: no code in it is run.

Calibration seam: a checkpoint may carry ``checkpoint["glaciermap"]["calibrator"]``, a JSON-like dict with a
``"kind"`` key. :func:`calibrator_from_dict` turns it into a :class:`Calibrator` through a registry
(:func:`register_calibrator` at run time, or a lazy ``"module:attribute"`` entry in
:data:`CALIBRATOR_KINDS`); the mapper applies it to the raw confidence of GlaViTU paper Eq. 3 and writes
the result as the calibrated confidence (Eq. 4 defines what a calibrator aims for).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch

from glaciermap.constants import BANDS, CLASS_NAMES, IMAGE_FILL
from glaciermap.errors import ConfigError, GlaciermapError, InputError
from glaciermap.io import load_error_detail
from glaciermap.models.base import SegmentationModel
from glaciermap.transforms.normalisation import NormStats


@runtime_checkable
class Calibrator(Protocol):
    """Maps raw confidence (GlaViTU paper Eq. 3) to calibrated confidence (Eq. 4), element-wise."""

    def __call__(self, confidence: npt.NDArray[np.float32]) -> npt.NDArray[np.floating[Any]]:
        """Calibrate.

        Args:
            confidence: Raw confidence in ``[0, 1]``, any shape.

        Returns:
            Calibrated confidence, same shape, in ``[0, 1]``.
        """
        ...


CalibratorFactory = Callable[[Mapping[str, Any]], Calibrator]
"""Builds a calibrator from its checkpoint entry (the dict with ``"kind"``)."""

CALIBRATOR_KINDS: dict[str, str] = {
    kind: "glaciermap.calibration:calibrator_from_dict" for kind in ("krr", "temperature", "isotonic")
}
"""Calibrator kind -> ``"module:attribute"`` of its factory, imported only when a checkpoint needs it."""

_REGISTERED: dict[str, CalibratorFactory] = {}


def register_calibrator(kind: str, factory: CalibratorFactory) -> None:
    """Register a calibrator kind at run time.

    Args:
        kind: The value of ``"kind"`` in the checkpoint entry.
        factory: Builds the calibrator from the entry.
    """
    _REGISTERED[kind] = factory


def calibrator_from_dict(entry: Mapping[str, Any], source: str = "checkpoint") -> Calibrator:
    """Build the calibrator described by a checkpoint entry.

    Args:
        entry: ``{"kind": ..., <parameters>}``.
        source: Where the entry comes from, for messages.

    Returns:
        The calibrator.

    Raises:
        InputError: If the entry has no known ``"kind"`` or its factory rejects it.
    """
    kind = entry.get("kind") if isinstance(entry, Mapping) else None
    known = sorted({*_REGISTERED, *CALIBRATOR_KINDS})
    if not isinstance(kind, str) or kind not in known:
        raise InputError(
            f"{source}: calibrator kind {kind!r} is unknown; expected one of {', '.join(known) or '(none registered)'}"
        )
    factory = _REGISTERED.get(kind)
    if factory is None:
        module_name, _, attr = CALIBRATOR_KINDS[kind].partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
    try:
        calibrator = factory(entry)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"{source}: calibrator {kind!r} is malformed ({type(err).__name__}: {err})"
        ) from None
    return calibrator


@dataclass
class MappingModel:
    """A model and everything needed to map a scene with it.

    Attributes:
        model: The network (``model(inputs, location)`` -> ``{"out": logits (B, K, H, W)}``), in ``eval()``.
        bands: Band names read per modality, in the model's channel order.
        norm: Normalisation statistics the model was trained with, or ``None`` to feed raw values (the band
            ratio reads reflectance).
        class_names: Name of each output class (``("background", "glacier")`` or three classes).
        region_codes: The model's region codes (region encoding; the "unseen" slot comes after them).
        location_encoding: ``"none"``, ``"region"`` or ``"coordinates"``.
        calibrator: Confidence calibrator, if any.
        fill_value: Value of invalid and padding pixels after normalisation (the training datasets' value).
        info: Description written into the mapping summary (model name, checkpoint, version, ...).
        metadata: The checkpoint's full ``checkpoint["glaciermap"]`` dict (empty for in-memory models).
    """

    model: SegmentationModel
    bands: dict[str, tuple[str, ...]]
    norm: NormStats | None
    class_names: tuple[str, ...]
    region_codes: tuple[str, ...] = ()
    location_encoding: str = "none"
    calibrator: Calibrator | None = None
    fill_value: float = IMAGE_FILL
    info: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check that bands, statistics and classes agree with the model."""
        channels = {m: len(b) for m, b in self.bands.items()}
        if channels != dict(self.model.modalities):
            raise ConfigError(
                f"bands {channels} do not match the model's inputs {dict(self.model.modalities)}"
            )
        if len(self.class_names) != self.model.num_classes:
            raise ConfigError(
                f"{len(self.class_names)} class names for a model with {self.model.num_classes} classes"
            )
        if self.norm is not None:
            self.norm = self.norm.select(self.bands)

    @property
    def num_classes(self) -> int:
        """Number of output classes K."""
        return self.model.num_classes

    @classmethod
    def from_model(
        cls,
        model: SegmentationModel,
        norm: NormStats | None,
        *,
        bands: Mapping[str, Sequence[str]] | None = None,
        class_names: Sequence[str] | None = None,
        calibrator: Calibrator | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> MappingModel:
        """Wrap an in-memory model.

        Args:
            model: The model (set to ``eval()``).
            norm: Statistics to normalise with (``None``: raw values).
            bands: Bands per modality (default: the first ``C_m`` canonical bands of each of the model's
                modalities, i.e. all of them for full-band models).
            class_names: Class names (default: the standard names for 2 or 3 classes).
            calibrator: Optional confidence calibrator.
            info: Description for the summary.

        Returns:
            The mapping model.

        Raises:
            ConfigError: If bands, statistics or classes do not fit the model.
        """
        if bands is None:
            bands = {m: BANDS[m][:c] for m, c in model.modalities.items()}
        if class_names is None:
            if model.num_classes not in CLASS_NAMES:
                raise ConfigError(f"no default class names for {model.num_classes} classes; pass class_names")
            class_names = CLASS_NAMES[model.num_classes]
        return cls(
            model=model.eval(),
            bands={m: tuple(b) for m, b in bands.items()},
            norm=norm,
            class_names=tuple(class_names),
            region_codes=tuple(getattr(model, "region_codes", ()) or ()),
            location_encoding=str(getattr(model, "location_encoding", "none")),
            calibrator=calibrator,
            info={"model": getattr(model, "arch", type(model).__name__), **(info or {})},
        )


def _read_checkpoint(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    if path.suffix == ".safetensors":  # released weights (glaciermap.models.hub.export_weights)
        from glaciermap.models.hub import read_weights

        state, meta = read_weights(path)
        return {
            "state_dict": {f"model.{k}": v.to(map_location) for k, v in state.items()},
            "glaciermap": meta,
            "epoch": meta.get("epoch"),
            "global_step": meta.get("global_step"),
        }
    if not path.is_file():
        raise InputError(f"checkpoint {path} not found; expected a .ckpt written by 'glaciermap fit'")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle, zip and torch errors alike mean "not a readable checkpoint"
        raise InputError(
            f"checkpoint {path} is not a readable PyTorch checkpoint ({load_error_detail(err)}); expected a .ckpt "
            "written by 'glaciermap fit'"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise InputError(f"checkpoint {path} has no 'state_dict'; expected a Lightning checkpoint")
    if not isinstance(ckpt.get("glaciermap"), Mapping):
        raise InputError(
            f"checkpoint {path} has no 'glaciermap' metadata (model, bands, normalisation statistics); "
            "expected a checkpoint of glaciermap's SegmentationTask"
        )
    return ckpt


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> MappingModel:
    """Load a :class:`~glaciermap.tasks.segmentation.SegmentationTask` checkpoint for mapping.

    Args:
        path: The ``.ckpt`` file, or released weights (``.safetensors`` from
            :func:`glaciermap.models.hub.export_weights`).
        map_location: Device to load the weights on.

    Returns:
        The model (in ``eval()``) with its bands, statistics, classes, location input and calibrator.

    Raises:
        InputError: If the file is missing, unreadable, lacks the metadata or statistics, or its weights do
            not fit the model it names.
    """
    p = Path(path)
    ckpt = _read_checkpoint(p, map_location)
    meta: Mapping[str, Any] = ckpt["glaciermap"]
    try:
        name = str(meta["model"])
        hparams = dict(meta["model_hparams"])
        bands = {str(m): tuple(str(b) for b in names) for m, names in dict(meta["bands"]).items()}
        class_names = tuple(str(c) for c in meta["class_names"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"checkpoint {p}: metadata is missing or malformed ({type(err).__name__}: {err}); expected "
            "model, model_hparams, bands and class_names"
        ) from None
    if meta.get("norm_stats") is None:
        raise InputError(
            f"checkpoint {p} carries no normalisation statistics ('norm_stats'); expected a checkpoint saved "
            "during or after fitting, when the data module's statistics are recorded"
        )
    from glaciermap.models import get_model

    try:
        model = get_model(name, **hparams)
    except GlaciermapError as err:
        raise InputError(f"checkpoint {p}: cannot rebuild model {name!r}: {err}") from None
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise InputError(
            f"checkpoint {p}: weights do not fit model {name!r} ({str(err).splitlines()[0]})"
        ) from None
    norm = NormStats.from_dict(meta["norm_stats"])
    entry = meta.get("calibrator")
    calibrator = calibrator_from_dict(entry, f"checkpoint {p}") if entry is not None else None
    check_classes = getattr(calibrator, "check_classes", None)
    if check_classes is not None:
        try:
            check_classes(class_names, f"checkpoint {p}")
        except GlaciermapError as err:
            raise InputError(str(err)) from None
    info = {
        "model": name,
        "checkpoint": str(p),
        "glaciermap_version": meta.get("version"),
        "target": meta.get("target"),
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
    }
    try:
        return MappingModel(
            model=model.eval(),
            bands=bands,
            norm=norm,
            class_names=class_names,
            region_codes=tuple(str(c) for c in meta.get("region_codes") or ()),
            location_encoding=str(meta.get("location_encoding") or "none"),
            calibrator=calibrator,
            info=info,
            metadata=dict(meta),
        )
    except ConfigError as err:
        raise InputError(f"checkpoint {p}: inconsistent metadata: {err}") from None
