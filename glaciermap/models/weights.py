"""The weights registry: every released set of weights, with what it reads, predicts and was trained on.

torchvision/torchgeo-style: one :class:`Weights` record per file (name, kind, architecture, file, sha256, hub
repository and pinned revision, modalities and bands, normalisation, classes, regions, metrics, licence,
paper, training data, model card). Two kinds of members:

* ``"segmentation"`` (glacier mapping): ``get_model(name, weights=...)`` in :mod:`glaciermap.models.api`;
  :meth:`Weights.load` returns the :class:`~glaciermap.models.pretrained.PretrainedModel`;
* ``"classifier"`` (split-image crevasse classification, GEOCLASS-image v2.0):
  ``get_classifier(name, weights=...)``; :meth:`Weights.load_classifier` returns the ``nn.Module`` and its
  metadata (class names, vario settings), and ``glaciermap classify --checkpoint NAME`` reads it by name.

:func:`list_weights` and :func:`get_weight` list and find both. Bundled files come from the package folder,
the others from the Hugging Face Hub at the pinned revision; both are sha256-checked.

Only weights whose file exists are listed (no placeholder hashes or revisions); ``docs/models.md`` describes
how a release adds a member. Each member has a model card in ``model_cards/<name>.md`` whose front matter
:func:`check_card` checks against the record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from glaciermap.errors import ConfigError, InputError

if TYPE_CHECKING:
    from torch import nn

    from glaciermap.models.pretrained import PretrainedModel

WeightsKind = Literal["segmentation", "classifier"]
"""``"segmentation"``: a glacier-mapping network; ``"classifier"``: a split-image crevasse classifier."""

CARDS_DIR = Path(__file__).resolve().parents[2] / "model_cards"
"""Folder of the model cards (in a source checkout)."""


@dataclass(frozen=True)
class Weights:
    """One released set of weights.

    Attributes:
        name: Registry name (``get_weight(name)``).
        model: Architecture registry name (``get_model(model)``).
        file: Weight file name (in the package's ``weights/`` folder when ``repo_id`` is ``None``).
        sha256: sha256 of the file.
        repo_id: Hugging Face Hub repository, or ``None`` for weights bundled in the package.
        revision: Pinned hub revision (a commit), or ``None`` for bundled weights.
        bands: Bands read per modality, in channel order.
        normalisation: Normalisation method (``zscore``, ``minmax``, ``reference``); the statistics are in
            the file.
        classes: Class names, in output order.
        regions: Region codes the model was trained on.
        metrics: Headline metrics (name -> value) and where they were measured (``"measured_on"``).
        licence: Licence of the weights (Hugging Face licence id).
        paper: Paper the model follows.
        trained_on: Training data, in a few words (says so when synthetic only).
        card: Model card file name in ``model_cards/``.
        kind: ``"segmentation"`` (:meth:`load`) or ``"classifier"`` (:meth:`load_classifier`); ``model``
            names an architecture of ``list_models()`` or of ``list_classifiers()`` accordingly.
    """

    name: str
    model: str
    file: str
    sha256: str
    repo_id: str | None
    revision: str | None
    bands: dict[str, tuple[str, ...]]
    normalisation: str
    classes: tuple[str, ...]
    regions: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    licence: str = "apache-2.0"
    paper: str = ""
    trained_on: str = ""
    card: str = ""
    kind: WeightsKind = "segmentation"

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality keys, in branch order."""
        return tuple(self.bands)

    def path(self) -> Path:
        """Local path of the file: the bundled file, or the hub download (cached, sha256-checked).

        Raises:
            InputError: If the file cannot be found or fetched or its sha256 differs.
        """
        from glaciermap.models.pretrained import _hub_download, verify_sha256

        if self.repo_id is None:
            from glaciermap.models.hub import BUNDLED_DIR

            path = BUNDLED_DIR / self.file
            if not path.is_file():
                raise InputError(
                    f"weights {self.name!r}: bundled file {path} is missing (broken installation)"
                )
        else:
            path = _hub_download(self.repo_id, self.file, self.revision, None)
        verify_sha256(path, self.sha256)
        return path

    def load(self, map_location: str = "cpu") -> PretrainedModel:
        """The pretrained model (network, normalisation, classes, calibrator).

        Raises:
            InputError: See :meth:`path`.
            ConfigError: For classifier weights (use :meth:`load_classifier`).
        """
        from glaciermap.models.pretrained import load_pretrained

        if self.kind != "segmentation":
            raise ConfigError(
                f"weights {self.name!r} are a split-image classifier; load them with load_classifier() or "
                f"get_classifier({self.model!r}, weights={self.name!r})"
            )
        return load_pretrained(self.path(), map_location=map_location)

    def load_classifier(self) -> tuple[nn.Module, dict[str, Any]]:
        """The split-image classifier (``eval()``) and its metadata (class names, vario settings).

        Raises:
            InputError: See :meth:`path`; also if the file's architecture is not the record's.
            ConfigError: For segmentation weights (use :meth:`load`).
        """
        from glaciermap.models.pretrained import load_pretrained_classifier

        if self.kind != "classifier":
            raise ConfigError(f"weights {self.name!r} are a segmentation model; load them with load()")
        model, meta = load_pretrained_classifier(self.path())
        if meta.get("model") != self.model:
            raise InputError(
                f"weights {self.name!r}: the file holds a {meta.get('model')!r}, the registry says {self.model!r}"
            )
        return model, meta

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON."""
        return {
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "file": self.file,
            "sha256": self.sha256,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "modalities": list(self.modalities),
            "bands": {m: list(b) for m, b in self.bands.items()},
            "normalisation": self.normalisation,
            "classes": list(self.classes),
            "regions": list(self.regions),
            "metrics": dict(self.metrics),
            "licence": self.licence,
            "paper": self.paper,
            "trained_on": self.trained_on,
            "card": self.card,
        }


_GLAVITU_PAPER = (
    "Maslov et al., Globally scalable glacier mapping by deep learning, Nat. Commun. 16:43 (2025)"
)

_GEOCLASS_PAPER = "GEOCLASS-image v2.0 crevasse classification (2025): VarioNet, Sec. 2.3, Eq. 7"
_CREVASSE_CLASSES = (
    "undisturbed_snow",
    "slow_moving_ice",
    "shear",
    "parallel",
    "parallel_shear",
    "subordinate_shear",
    "multidirectional",
    "multigenerational",
    "chaos",
    "melt",
    "sea_ice",
)

WEIGHTS: dict[str, Weights] = {
    w.name: w
    for w in (
        Weights(
            name="synthetic_cpu",
            model="light_fusion_resunet",
            file="synthetic_cpu.safetensors",
            sha256="dd60848551482fd9e9f6f0faf75f66c4ab3751e18c3c22a706163f7c92769a0a",
            repo_id=None,
            revision=None,
            bands={
                "optical": ("blue", "green", "red", "nir", "swir1", "swir2"),
                "dem": ("elevation", "slope"),
                "thermal": ("thermal",),
                "insar": ("coherence_asc", "coherence_desc"),
            },
            normalisation="zscore",
            classes=("background", "clean_ice", "debris_ice"),
            regions=("AWA", "HMA", "SVAL"),
            metrics={
                "glacier_iou": 0.971,
                "clean_ice_iou": 0.955,
                "debris_iou": 0.898,
                "measured_on": "held-out synthetic scene karakoram:201, 512 x 512 px, every pixel",
            },
            licence="apache-2.0",
            paper=_GLAVITU_PAPER + " (baseline family: the authors' LightFusionResUNet)",
            trained_on="the synthetic glacier world only (examples/synthetic_cpu.yaml); never a real scene",
            card="synthetic_cpu.md",
        ),
        Weights(
            name="crevasse_varionet_synthetic",
            kind="classifier",
            model="varionet_eq7",
            file="crevasse_varionet_synthetic.safetensors",
            sha256="9a808515b2be5306b58635ef90a49fd7f9de5fde9f81a75647e63713293f764c",
            repo_id=None,
            revision=None,
            bands={"optical": ("pan",)},
            normalisation="reference",
            classes=_CREVASSE_CLASSES,
            metrics={
                "accuracy": 0.875,
                "measured_on": "unseen synthetic crevasse scene (seed 2026, 120 split-images of 201 x 268 px; "
                "glaciermap demo --crevasses); seeds 7 and 99: 0.942 and 0.850",
            },
            licence="apache-2.0",
            paper=_GEOCLASS_PAPER,
            trained_on="four synthetic crevasse scenes (seeds 0-3, examples/train_crevasse_model.py); never a real "
            "scene",
            card="crevasse_varionet_synthetic.md",
        ),
    )
}
"""Every registered set of weights, by name."""


def list_weights(model: str | None = None, kind: WeightsKind | None = None) -> list[Weights]:
    """Registered weights, in registry order.

    Args:
        model: Only the weights of this architecture.
        kind: Only the weights of this kind.

    Returns:
        The records.
    """
    return [
        w
        for w in WEIGHTS.values()
        if (model is None or w.model == model) and (kind is None or w.kind == kind)
    ]


def get_weight(name: str) -> Weights:
    """The record of one set of weights.

    Raises:
        ConfigError: If the name is unknown.
    """
    if name not in WEIGHTS:
        raise ConfigError(f"weights {name!r}: unknown; available weights: {', '.join(WEIGHTS) or 'none'}")
    return WEIGHTS[name]


def _front_matter(path: Path) -> dict[str, Any]:
    """The YAML front matter of a model card."""
    import yaml

    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---" not in text[4:]:
        raise InputError(f"model card {path}: no YAML front matter ('---' block at the top)")
    try:
        data = yaml.safe_load(text[4 : text.index("\n---", 4)])
    except yaml.YAMLError as err:
        raise InputError(
            f"model card {path}: front matter is not valid YAML ({str(err).splitlines()[0]})"
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"model card {path}: front matter is not a mapping")
    return data


CARD_KEYS = ("library_name", "license", "tags", "pipeline_tag", "datasets", "metrics")
"""Hugging Face card keys every card's front matter must have."""


def check_card(path: str | os.PathLike[str], weights: Weights | None = None) -> Weights:
    """Check a model card's front matter against its registry record.

    The front matter must have the Hugging Face keys (:data:`CARD_KEYS`) and a ``glaciermap`` block with
    ``name``, ``bands``, ``classes`` and ``sha256`` equal to the record's.

    Args:
        path: The card (``model_cards/<name>.md``).
        weights: The record (default: the one named in the card).

    Returns:
        The record.

    Raises:
        InputError: If the card lacks a key or disagrees with the record (one line naming the field).
    """
    p = Path(path)
    data = _front_matter(p)
    missing = [k for k in CARD_KEYS if k not in data]
    block = data.get("glaciermap")
    if missing or not isinstance(block, dict):
        raise InputError(f"model card {p}: front matter lacks {', '.join(missing) or 'the glaciermap block'}")
    w = weights or get_weight(str(block.get("name")))
    card = {
        "name": block.get("name"),
        "sha256": str(block.get("sha256")),
        "bands": json.loads(json.dumps(block.get("bands"))),
        "classes": list(block.get("classes") or []),
    }
    expected = {
        "name": w.name,
        "sha256": w.sha256,
        "bands": {m: list(b) for m, b in w.bands.items()},
        "classes": list(w.classes),
    }
    for key, value in expected.items():
        if card[key] != value:
            raise InputError(f"model card {p}: {key} is {card[key]!r} but weights {w.name!r} have {value!r}")
    return w
