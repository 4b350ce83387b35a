"""``torch.hub`` entry points: ``torch.hub.load("glaciermap/glaciermap", "synthetic_cpu")``.

Each builder returns a :class:`glaciermap.models.pretrained.PretrainedModel` (raw physical values in,
``{"out": logits}`` out) when it loads weights, or a randomly initialised network otherwise. The package
itself (``pip install glaciermap``) must be importable.
"""

from __future__ import annotations

from typing import Any

dependencies = ["torch", "safetensors", "huggingface_hub"]


def synthetic_cpu(pretrained: bool = True, **kwargs: Any) -> Any:
    """Light fusion ResUNet trained on the synthetic glacier world only (bundled weights ``synthetic_cpu``).

    Args:
        pretrained: Load the bundled weights (``False``: a random network of the same architecture).
        **kwargs: Architecture arguments (only without weights).
    """
    from glaciermap.models import get_model

    if pretrained:
        return get_model("light_fusion_resunet", weights="synthetic_cpu")
    return get_model("light_fusion_resunet", **{"filters": 16, "depth": 3, "num_classes": 3, **kwargs})


def glavitu(weights: str | None = None, **kwargs: Any) -> Any:
    """GlaViTU (Maslov et al., Nat. Commun. 16:43, 2025).

    Args:
        weights: A registered weights name (``glaciermap models list``), or ``None`` for a random network.
        **kwargs: Architecture arguments (only without weights), e.g. ``modalities``, ``num_classes``.
    """
    from glaciermap.models import get_model

    return get_model("glavitu", weights=weights) if weights else get_model("glavitu", **kwargs)


def from_pretrained(repo_id_or_dir: str, revision: str | None = None, **kwargs: Any) -> Any:
    """Any glaciermap pretrained weights from a folder or a Hugging Face Hub repository (pinned revision)."""
    from glaciermap.models.pretrained import PretrainedModel

    return PretrainedModel.from_pretrained(repo_id_or_dir, revision=revision, **kwargs)


def crevasse_varionet_synthetic(pretrained: bool = True, **kwargs: Any) -> Any:
    """VarioNet (GEOCLASS-image v2.0, Eq. 7) trained on the synthetic crevasse world only (bundled weights).

    Args:
        pretrained: Load the bundled weights (``False``: a random network of the same architecture).
        **kwargs: Architecture arguments (only without weights).

    Returns:
        The split-image classifier, ``model(image, vario) -> (B, 11)`` logits.
    """
    from glaciermap.models import get_classifier

    if pretrained:
        return get_classifier("varionet_eq7", weights="crevasse_varionet_synthetic")
    return get_classifier("varionet_eq7", **kwargs)
