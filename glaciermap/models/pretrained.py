"""A pretrained model: the network plus everything needed to use it on raw data, as one object.

* :class:`PretrainedModel` is an ``nn.Module`` bundling a :class:`~glaciermap.models.base.SegmentationModel`
  with the bands it reads (per modality, in channel order), its normalisation (a ``normaliser`` submodule
  built from the :class:`~glaciermap.transforms.normalisation.NormStats` it was trained with, so
  ``PretrainedModel(raw)`` takes physical values), its class names, its location input (region codes,
  encoding), an optional confidence calibrator and its provenance.
* :func:`load_pretrained` reads either released weights (``.safetensors`` in the one glaciermap layout, see
  :mod:`glaciermap.models.hub`; written by training export, ``glaciermap convert-keras`` and
  :meth:`PretrainedModel.save_pretrained`) or a training checkpoint (``.ckpt`` of
  :class:`~glaciermap.tasks.segmentation.SegmentationTask`, read with ``torch.load(weights_only=True)``: no
  code in it is run). Both carry the same metadata block (``model``, ``model_hparams``, ``bands``,
  ``norm_stats``, ``class_names``, ``region_codes``, ``location_encoding``, ``calibrator``, ``provenance``).
* :meth:`PretrainedModel.from_pretrained` / :meth:`~PretrainedModel.save_pretrained` /
  :meth:`~PretrainedModel.push_to_hub` exchange models with a local folder or the Hugging Face Hub
  (safetensors only; never unpickled).

Calibration seam: a checkpoint may carry ``checkpoint["glaciermap"]["calibrator"]``, a JSON-like dict with a
``"kind"`` key. :func:`calibrator_from_dict` turns it into a :class:`Calibrator` through a registry
(:func:`register_calibrator` at run time, or a lazy ``"module:attribute"`` entry in
:data:`CALIBRATOR_KINDS`); the mapper applies it to the raw confidence of GlaViTU paper Eq. 3 and writes
the result as the calibrated confidence (Eq. 4 defines what a calibrator aims for). The kinds of
:mod:`glaciermap.calibration` (``krr``, ``temperature``, ``isotonic``) are registered; the authors' shipped
calibrators are ``krr`` entries (:func:`glavitu_calibrator`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from glaciermap.constants import BANDS, CLASS_NAMES, IMAGE_FILL, RASTER_NODATA
from glaciermap.errors import ConfigError, GlaciermapError, InputError
from glaciermap.io import load_error_detail
from glaciermap.models.base import ModelInputs, SegmentationModel
from glaciermap.transforms.normalisation import Normalize, NormStats

WEIGHTS_FILE = "model.safetensors"
"""File name of the weights in a :meth:`PretrainedModel.save_pretrained` folder or a hub repository."""


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


GLAVITU_CALIBRATORS = ("global", "global_insar", "regionencoding")
"""Names of the authors' shipped calibrators (``--calibrator`` of ``glaciermap convert-keras``)."""


def glavitu_calibrator(name: str) -> dict[str, Any]:
    """The metadata entry of one of the GlaViTU authors' shipped calibrators.

    The calibrator itself is :func:`glaciermap.calibration.get_calibrator` (the one owner of calibrators);
    this is its plain-JSON form for a weights file.

    Args:
        name: ``"global"``, ``"global_insar"`` or ``"regionencoding"``.

    Returns:
        ``{"kind": "krr", ...}`` (plain JSON; the weights' provenance records which one).

    Raises:
        ConfigError: If the name is unknown.
    """
    from glaciermap.calibration import get_calibrator

    if name not in GLAVITU_CALIBRATORS:
        raise ConfigError(f"calibrator {name!r} is unknown; expected one of {', '.join(GLAVITU_CALIBRATORS)}")
    return get_calibrator(f"glavitu_{name}").to_dict()


class PretrainedModel(nn.Module):
    """A network and everything needed to use it: raw physical values in, logits out.

    ``forward(inputs, location=None)`` normalises each modality with the model's statistics (the
    ``normaliser`` submodule), sets pixels that are NaN or :data:`~glaciermap.constants.RASTER_NODATA` in any
    band to :attr:`fill_value` (as the mapper does), then runs the network: ``{"out": logits (B, K, H, W)}``.
    The mapper normalises while reading and calls :attr:`model` directly.

    Args:
        model: The network (``model(inputs, location)`` -> ``{"out": logits}``); set to ``eval()``.
        bands: Band names read per modality, in the model's channel order.
        norm: Normalisation statistics the model was trained with, or ``None`` to feed raw values (the band
            ratio reads reflectance).
        class_names: Name of each output class (``("background", "glacier")`` or three classes).
        region_codes: The model's region codes (region encoding; the "unseen" slot comes after them).
        location_encoding: ``"none"``, ``"region"`` or ``"coordinates"``.
        calibrator: Confidence calibrator, if any.
        fill_value: Value of invalid and padding pixels after normalisation (the training datasets' value).
        info: Description written into the mapping summary (model name, checkpoint, version, ...).
        metadata: The file's full metadata block (empty for in-memory models).

    Raises:
        ConfigError: If bands, statistics or classes do not fit the model.
    """

    def __init__(
        self,
        model: SegmentationModel,
        bands: Mapping[str, Sequence[str]],
        norm: NormStats | None,
        class_names: Sequence[str],
        region_codes: Sequence[str] = (),
        location_encoding: str = "none",
        calibrator: Calibrator | None = None,
        fill_value: float = IMAGE_FILL,
        info: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.bands: dict[str, tuple[str, ...]] = {str(m): tuple(b) for m, b in bands.items()}
        self.class_names = tuple(class_names)
        self.region_codes = tuple(region_codes)
        self.location_encoding = location_encoding
        self.calibrator = calibrator
        self.fill_value = float(fill_value)
        self.info: dict[str, Any] = dict(info or {})
        self.metadata: dict[str, Any] = dict(metadata or {})
        channels = {m: len(b) for m, b in self.bands.items()}
        if channels != dict(model.modalities):
            raise ConfigError(f"bands {channels} do not match the model's inputs {dict(model.modalities)}")
        if len(self.class_names) != model.num_classes:
            raise ConfigError(
                f"{len(self.class_names)} class names for a model with {model.num_classes} classes"
            )
        self.norm = norm.select(self.bands) if norm is not None else None
        self.normaliser = nn.ModuleDict(
            {m: Normalize(s, self.norm.method) for m, s in self.norm.modalities.items()} if self.norm else {}
        )
        self.eval()

    @property
    def num_classes(self) -> int:
        """Number of output classes K."""
        return self.model.num_classes

    @property
    def modalities(self) -> dict[str, int]:
        """Ordered ``{modality: channels}`` of the network."""
        return dict(self.model.modalities)

    def normalise(self, inputs: ModelInputs) -> dict[str, Tensor]:
        """Normalise raw inputs and fill invalid pixels (NaN or nodata in any band of any modality).

        Args:
            inputs: ``{modality: (B, C_m, H, W)}`` raw values, or one stacked ``(B, sum C_m, H, W)`` tensor in
                :attr:`bands` order.

        Returns:
            ``{modality: (B, C_m, H, W)}`` normalised float32 tensors.

        Raises:
            InputError: If a modality is missing or has the wrong number of channels.
        """
        if isinstance(inputs, Tensor):
            sizes = [len(b) for b in self.bands.values()]
            if inputs.ndim != 4 or inputs.shape[1] != sum(sizes):
                raise InputError(
                    f"input of shape {tuple(inputs.shape)}: expected (B, {sum(sizes)}, H, W) with the bands "
                    f"{', '.join(b for names in self.bands.values() for b in names)}"
                )
            parts = dict(zip(self.bands, torch.split(inputs, sizes, dim=1)))
        else:
            missing = [m for m in self.bands if m not in inputs]
            if missing:
                raise InputError(
                    f"inputs lack modality {missing[0]!r}; the model reads {', '.join(self.bands)}"
                )
            parts = {m: inputs[m] for m in self.bands}
        bad: Tensor | None = None
        out: dict[str, Tensor] = {}
        for m, x in parts.items():
            x = x.float()
            invalid = (~torch.isfinite(x) | (x == RASTER_NODATA)).any(dim=1, keepdim=True)
            bad = invalid if bad is None else bad | invalid
            out[m] = self.normaliser[m](x) if m in self.normaliser else x
        assert bad is not None
        fill = torch.full((), self.fill_value, dtype=torch.float32, device=bad.device)
        return {m: torch.where(bad, fill, x) for m, x in out.items()}

    def forward(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        """Logits of raw inputs: ``{"out": (B, K, H, W)}`` (and ``"aux"`` if the network has the head)."""
        return dict(self.model(self.normalise(inputs), location))

    def predict_proba(self, inputs: ModelInputs, location: Tensor | None = None) -> Tensor:
        """Class probabilities ``(B, K, H, W)`` (softmax of the main logits) of raw inputs."""
        return torch.softmax(self(inputs, location)["out"], dim=1)

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
    ) -> PretrainedModel:
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
            The pretrained model.

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
            model=model,
            bands=bands,
            norm=norm,
            class_names=class_names,
            region_codes=tuple(getattr(model, "region_codes", ()) or ()),
            location_encoding=str(getattr(model, "location_encoding", "none")),
            calibrator=calibrator,
            info={"model": getattr(model, "arch", type(model).__name__), **(info or {})},
        )

    # ------------------------------------------------------------------------------------------------
    # The one released layout
    def to_metadata(self) -> dict[str, Any]:
        """The metadata block of this model (what :func:`load_pretrained` needs to rebuild it), as plain JSON.

        Raises:
            ConfigError: If the model has no normalisation statistics or a calibrator that cannot be
                written (one not built from a metadata entry).
        """
        from glaciermap import __version__

        if self.norm is None:
            raise ConfigError(
                "a model without normalisation statistics cannot be saved as pretrained weights"
            )
        calibrator = self.metadata.get("calibrator")
        if self.calibrator is not None and calibrator is None:
            raise ConfigError(
                f"calibrator {type(self.calibrator).__name__} was not built from a metadata entry; attach it "
                "with a {'kind': ...} entry (see register_calibrator) to save it"
            )
        provenance = dict(self.metadata.get("provenance") or {})
        provenance.setdefault("source", "training" if self.metadata else "in-memory")
        return {
            **self.metadata,
            "version": self.metadata.get("version", __version__),
            "model": str(
                self.metadata.get("model") or getattr(self.model, "arch", type(self.model).__name__)
            ),
            "model_hparams": dict(self.model.hparams),
            "modalities": list(self.bands),
            "bands": {m: list(b) for m, b in self.bands.items()},
            "norm_stats": self.norm.to_dict(),
            "target": self.metadata.get("target", "glacier" if self.num_classes == 2 else "classes"),
            "class_names": list(self.class_names),
            "region_codes": list(self.region_codes),
            "location_encoding": self.location_encoding,
            "calibrator": calibrator,
            "provenance": provenance,
        }

    def save_weights(self, path: str | os.PathLike[str]) -> Path:
        """Write the network's weights and :meth:`to_metadata` as one safetensors file (atomically)."""
        from glaciermap.models.hub import write_weights

        return write_weights(self.model.state_dict(), self.to_metadata(), path)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model.safetensors``, ``config.json`` (the metadata) and ``README.md`` (a generated card).

        Args:
            directory: Output folder (created).

        Returns:
            The folder.
        """
        from glaciermap.models.hub import model_card

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        meta = self.to_metadata()
        self.save_weights(out / WEIGHTS_FILE)
        (out / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        if not (out / "README.md").exists():
            (out / "README.md").write_text(model_card(meta, sha256=file_sha256(out / WEIGHTS_FILE)))
        return out

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        commit_message: str = "Upload glaciermap pretrained model",
        private: bool | None = None,
        token: str | None = None,
    ) -> Any:
        """Upload :meth:`save_pretrained`'s folder to a Hugging Face Hub model repository.

        Args:
            repo_id: ``"owner/name"``.
            revision: Branch to upload to.
            commit_message: Commit message.
            private: Create the repository as private if it does not exist.
            token: Hub token (default: the logged-in user's).

        Returns:
            What ``HfApi.upload_folder`` returns (the commit info).
        """
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=tmp,
                revision=revision,
                commit_message=commit_message,
                repo_type="model",
            )

    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_dir: str | os.PathLike[str],
        *,
        revision: str | None = None,
        filename: str = WEIGHTS_FILE,
        sha256: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        map_location: str | torch.device = "cpu",
    ) -> PretrainedModel:
        """Load from a local folder or file, or a Hugging Face Hub repository (safetensors only).

        A local folder (or ``.safetensors`` file) is used when it exists; otherwise ``repo_id_or_dir`` is a
        hub repository id and the file is fetched with ``huggingface_hub.hf_hub_download`` (which honours
        ``HF_HUB_OFFLINE`` and the local cache). The file's sha256 is checked against ``sha256``, else against
        the registry member with that repository, else against a ``<filename>.sha256`` file beside it.

        Args:
            repo_id_or_dir: Folder, ``.safetensors`` file, or ``"owner/name"``.
            revision: Hub revision (branch, tag or commit; pin a commit for released weights).
            filename: Weight file inside the folder or repository.
            sha256: Expected sha256 of the file.
            cache_dir: Hub cache folder (default: huggingface_hub's).
            map_location: Device to load on.

        Returns:
            The model, in ``eval()``.

        Raises:
            InputError: If the file cannot be found or fetched, its sha256 differs, or it is not glaciermap
                weights.
        """
        local = Path(repo_id_or_dir)
        if local.is_dir() or local.suffix == ".safetensors":
            path = local / filename if local.is_dir() else local
            if not path.is_file():
                raise InputError(f"{path}: not found; expected a folder written by save_pretrained")
        else:
            path = _hub_download(str(repo_id_or_dir), filename, revision, cache_dir)
            if sha256 is None:
                from glaciermap.models.weights import list_weights

                sha256 = next(
                    (
                        w.sha256
                        for w in list_weights()
                        if w.repo_id == str(repo_id_or_dir) and w.file == filename
                    ),
                    None,
                )
        if sha256 is None and path.with_name(path.name + ".sha256").is_file():
            sha256 = path.with_name(path.name + ".sha256").read_text().split()[0]
        if sha256 is not None:
            verify_sha256(path, sha256)
        return load_pretrained(path, map_location=map_location)


def _hub_download(
    repo_id: str, filename: str, revision: str | None, cache_dir: str | os.PathLike[str] | None
) -> Path:
    """``hf_hub_download`` with its errors turned into one :class:`InputError` line."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(
            hf_hub_download(
                repo_id, filename, revision=revision, cache_dir=None if cache_dir is None else Path(cache_dir)
            )
        )
    except LocalEntryNotFoundError:
        raise InputError(
            f"{repo_id}@{revision or 'main'}: {filename} is not a local folder and is not in the hub cache "
            "(offline, or the revision does not exist)"
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{repo_id}@{revision or 'main'}: cannot fetch {filename} ({first[:200]})") from None


def build_classifier(state: Mapping[str, Tensor], metadata: Mapping[str, Any], source: str) -> nn.Module:
    """A split-image classifier (VarioMLP / ResNet-18 / VarioNet) with its weights, in ``eval()``.

    Args:
        state: The network's state dict (no ``model.`` prefix).
        metadata: The ``glaciermap`` block (``task``, ``model``, ``model_kwargs``).
        source: File or name the weights came from (for messages).

    Returns:
        The model.

    Raises:
        InputError: If the metadata is not a split-image classifier's or the state does not fit the model.
    """
    from glaciermap.models.api import get_classifier

    if metadata.get("task") != "split_image_classification":
        raise InputError(f"{source}: not a split-image classifier (task {metadata.get('task')!r})")
    try:
        model = get_classifier(str(metadata["model"]), **dict(metadata.get("model_kwargs") or {}))
        model.load_state_dict(dict(state))
    except (ConfigError, KeyError, RuntimeError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{source}: the weights do not fit their classifier ({detail})") from None
    return model.eval()


def load_pretrained_classifier(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """A split-image classifier and its metadata from an exported ``.safetensors`` file.

    Args:
        path: Weights written by :func:`~glaciermap.models.hub.export_weights` from a
            :class:`~glaciermap.tasks.classification.SplitImageClassificationTask` checkpoint.

    Returns:
        The model (``eval()``) and the ``glaciermap`` metadata (class names, vario settings, ...).

    Raises:
        InputError: If the file is missing, unreadable or not a split-image classifier.
    """
    from glaciermap.models.hub import read_weights

    state, meta = read_weights(path)
    return build_classifier(state, meta, str(path)), meta


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected: str) -> None:
    """Check a file's sha256.

    Raises:
        InputError: If it differs (a corrupted or substituted file).
    """
    actual = file_sha256(path)
    if actual != expected.lower():
        raise InputError(
            f"{path}: sha256 {actual} does not match the expected {expected}; the file is corrupted or not the "
            "released one (delete it and download again)"
        )


def _read_checkpoint(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    if path.suffix == ".safetensors":  # released weights (glaciermap.models.hub)
        from glaciermap.models.hub import read_weights

        state, meta = read_weights(path)
        provenance = meta.get("provenance") or {}
        return {
            "state_dict": {f"model.{k}": v.to(map_location) for k, v in state.items()},
            "glaciermap": meta,
            "epoch": meta.get("epoch", provenance.get("epoch")),
            "global_step": meta.get("global_step", provenance.get("global_step")),
        }
    if not path.is_file():
        raise InputError(
            f"checkpoint {path} not found; expected a .ckpt written by 'glaciermap fit' or released .safetensors"
        )
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


def _parse_metadata(
    p: Path, meta: Mapping[str, Any]
) -> tuple[str, dict[str, Any], dict[str, tuple[str, ...]], tuple[str, ...]]:
    """``(model name, hyper-parameters, bands, class names)`` of a metadata block, checked.

    Raises:
        InputError: If a field is missing or malformed, or the normalisation statistics are absent.
    """
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
    return name, hparams, bands, class_names


def _rebuild_network(
    p: Path, name: str, hparams: Mapping[str, Any], state_dict: Mapping[str, Any]
) -> SegmentationModel:
    """The registered network ``name`` with the ``model.*`` weights of ``state_dict`` loaded strictly.

    Raises:
        InputError: If the model cannot be built or the weights do not fit it.
    """
    from glaciermap.models.api import get_model

    try:
        model = get_model(name, **hparams)
    except GlaciermapError as err:
        raise InputError(f"checkpoint {p}: cannot rebuild model {name!r}: {err}") from None
    state = {k.removeprefix("model."): v for k, v in state_dict.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise InputError(
            f"checkpoint {p}: weights do not fit model {name!r} ({str(err).splitlines()[0]})"
        ) from None
    return model


def _metadata_calibrator(p: Path, entry: Any, class_names: tuple[str, ...]) -> Calibrator | None:
    """The calibrator of a metadata block (``None`` if it has none), checked against the model's classes.

    Raises:
        InputError: If it is malformed or was fitted for other classes.
    """
    calibrator = calibrator_from_dict(entry, f"checkpoint {p}") if entry is not None else None
    check_classes = getattr(calibrator, "check_classes", None)
    if check_classes is not None:
        try:
            check_classes(class_names, f"checkpoint {p}")
        except GlaciermapError as err:
            raise InputError(str(err)) from None
    return calibrator


def load_pretrained(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> PretrainedModel:
    """Load released weights (``.safetensors``) or a training checkpoint (``.ckpt``) as a :class:`PretrainedModel`.

    Args:
        path: A ``.safetensors`` file in the glaciermap layout (training export, ``glaciermap convert-keras``,
            :meth:`PretrainedModel.save_pretrained`) or a ``.ckpt`` of ``SegmentationTask``.
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
    name, hparams, bands, class_names = _parse_metadata(p, meta)
    model = _rebuild_network(p, name, hparams, ckpt["state_dict"])
    norm = NormStats.from_dict(meta["norm_stats"])
    calibrator = _metadata_calibrator(p, meta.get("calibrator"), class_names)
    info = {
        "model": name,
        "checkpoint": str(p),
        "glaciermap_version": meta.get("version"),
        "target": meta.get("target"),
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
    }
    try:
        return PretrainedModel(
            model=model,
            bands=bands,
            norm=norm,
            class_names=class_names,
            region_codes=tuple(str(c) for c in meta.get("region_codes") or ()),
            location_encoding=str(meta.get("location_encoding") or "none"),
            calibrator=calibrator,
            info=info,
            metadata=dict(meta),
        ).to(map_location)
    except ConfigError as err:
        raise InputError(f"checkpoint {p}: inconsistent metadata: {err}") from None
