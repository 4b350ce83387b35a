"""The interface every glaciermap segmentation model shares.

All models (GlaViTU and the baselines) subclass :class:`SegmentationModel` so that a training task, the scene
predictor and the model registry treat them alike:

* ``model.modalities``: ordered ``{modality: channels}`` the model was built for (the order of the fusion
  branches, or of the channels of the stacked image for single-input models);
* ``model.num_classes``: number of output classes K;
* ``model.hparams``: the constructor arguments, JSON-serialisable, so ``get_model(model.arch, **model.hparams)``
  rebuilds the same architecture (checkpoints store it);
* ``model(inputs, location=None)`` returns a dict of **logits**: ``"out"`` (B, K, H, W) and, for models with a
  deep-supervision head that is enabled, ``"aux"`` (B, K, H, W). Losses use the logits; inference and parity
  tests use :meth:`SegmentationModel.predict_proba` (softmax over the class axis);
* ``model.set_mc_dropout(True)`` makes every dropout layer sample even in ``eval()`` (Monte-Carlo dropout).

``inputs`` is either a dict ``{modality: (B, C_m, H, W)}`` (extra keys are ignored) or one stacked tensor
(B, sum C_m, H, W) with the modalities in ``model.modalities`` order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from glaciermap.constants import MODALITIES
from glaciermap.errors import ConfigError, InputError
from glaciermap.models.blocks import MCDropout

if TYPE_CHECKING:
    from glaciermap.models.pretrained import PretrainedModel

ModelInputs = Tensor | Mapping[str, Tensor]
"""What a model's ``forward`` accepts: a modality dict or one stacked image (see module docstring)."""


def validate_modalities(modalities: Mapping[str, int]) -> dict[str, int]:
    """Check a ``{modality: channels}`` layout and return it as a plain, ordered dict.

    Args:
        modalities: Modality key (one of ``optical, dem, thermal, sar, sar_cross, insar``) -> number of channels (>= 1).

    Returns:
        The same layout as a ``dict`` (order preserved).

    Raises:
        ConfigError: If it is empty, a key is not a known modality or a channel count is not a positive int.
    """
    if not isinstance(modalities, Mapping) or not modalities:
        raise ConfigError(
            f"modalities: expected a non-empty mapping {{modality: channels}}, got {modalities!r}"
        )
    out: dict[str, int] = {}
    for name, channels in modalities.items():
        if name not in MODALITIES:
            raise ConfigError(
                f"modalities: unknown modality {name!r}; expected one of {', '.join(MODALITIES)}"
            )
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ConfigError(
                f"modalities[{name!r}]: expected a positive number of channels, got {channels!r}"
            )
        out[name] = channels
    return out


class SegmentationModel(nn.Module):
    """Base class of the glaciermap segmentation models (see the module docstring for the contract).

    Args:
        modalities: Ordered ``{modality: channels}`` layout of the inputs.
        num_classes: Number of output classes K (>= 2).

    Raises:
        ConfigError: If ``modalities`` or ``num_classes`` is invalid.
    """

    arch: ClassVar[str] = ""
    """Registry name that rebuilds this class with ``get_model(arch, **hparams)``."""
    size_multiple: ClassVar[int] = 16
    """Input height and width must be multiples of this."""

    @classmethod
    def from_pretrained(
        cls, repo_id_or_dir: str | os.PathLike[str], *, revision: str | None = None, **kwargs: Any
    ) -> PretrainedModel:
        """Load pretrained weights of this architecture (a local folder or file, or a hub repository).

        Same as :meth:`glaciermap.models.pretrained.PretrainedModel.from_pretrained`, checking that the
        network is an instance of this class.

        Args:
            repo_id_or_dir: Folder, ``.safetensors`` file, or ``"owner/name"`` on the Hugging Face Hub.
            revision: Hub revision (pin a commit for released weights).
            **kwargs: ``filename``, ``sha256``, ``cache_dir``, ``map_location``.

        Returns:
            The :class:`~glaciermap.models.pretrained.PretrainedModel` (its ``model`` is the network).

        Raises:
            InputError: If the weights cannot be loaded or are of another architecture.
        """
        from glaciermap.models.pretrained import PretrainedModel

        pretrained = PretrainedModel.from_pretrained(repo_id_or_dir, revision=revision, **kwargs)
        if not isinstance(pretrained.model, cls):
            raise InputError(
                f"{repo_id_or_dir}: the weights are a {type(pretrained.model).__name__}, not a {cls.__name__}"
            )
        return pretrained

    def __init__(self, modalities: Mapping[str, int], num_classes: int) -> None:
        super().__init__()
        self.modalities: dict[str, int] = validate_modalities(modalities)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ConfigError(f"num_classes: expected an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.hparams: dict[str, Any] = {}

    @property
    def in_channels(self) -> int:
        """Total number of input channels (sum over modalities)."""
        return sum(self.modalities.values())

    def check_inputs(self, inputs: ModelInputs) -> dict[str, Tensor]:
        """Validate the inputs and return them as an ordered modality dict.

        Args:
            inputs: ``{modality: (B, C_m, H, W)}`` or a stacked (B, sum C_m, H, W) tensor.

        Returns:
            ``{modality: (B, C_m, H, W)}`` in ``self.modalities`` order.

        Raises:
            InputError: If a modality is missing, a tensor is not 4-D floating point, a channel count differs
                from the configured one, batch or spatial sizes disagree, or H, W are not multiples of
                ``size_multiple``.
        """
        if isinstance(inputs, Tensor):
            if inputs.ndim != 4 or inputs.shape[1] != self.in_channels:
                raise InputError(
                    f"input image: expected shape (B, {self.in_channels}, H, W) for modalities "
                    f"{self.modalities}, got {tuple(inputs.shape)}"
                )
            parts = torch.split(inputs, list(self.modalities.values()), dim=1)
            tensors = dict(zip(self.modalities, parts))
        elif isinstance(inputs, Mapping):
            missing = [m for m in self.modalities if m not in inputs]
            if missing:
                raise InputError(
                    f"inputs: missing modality {', '.join(missing)}; the model expects {self.modalities} "
                    f"(got {sorted(inputs)})"
                )
            tensors = {m: inputs[m] for m in self.modalities}
        else:
            raise InputError(f"inputs: expected a dict of tensors or a tensor, got {type(inputs).__name__}")
        shape: tuple[int, ...] | None = None
        for name, x in tensors.items():
            channels = self.modalities[name]
            if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise InputError(f"input {name!r}: expected a float tensor (B, {channels}, H, W), got {got}")
            if x.shape[1] != channels:
                raise InputError(f"input {name!r}: expected {channels} channels, got {x.shape[1]}")
            b, _, h, w = x.shape
            if shape is None:
                shape = (b, h, w)
                if h % self.size_multiple or w % self.size_multiple or h == 0 or w == 0:
                    raise InputError(
                        f"input {name!r}: height and width must be positive multiples of "
                        f"{self.size_multiple}, got {h} x {w} (pad the image, e.g. with the sliding-window "
                        "predictor)"
                    )
            elif (b, h, w) != shape:
                raise InputError(
                    f"input {name!r}: batch and spatial size {(b, h, w)} differ from the other modalities' {shape}"
                )
        return tensors

    def stack_inputs(self, inputs: ModelInputs) -> Tensor:
        """Validate the inputs and concatenate them along channels in ``self.modalities`` order.

        Args:
            inputs: See :meth:`check_inputs`.

        Returns:
            The stacked image (B, sum C_m, H, W).
        """
        tensors = self.check_inputs(inputs)
        return torch.cat(list(tensors.values()), dim=1)

    def predict_proba(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        """Run the model and turn every output head's logits into class probabilities.

        Args:
            inputs: See :meth:`check_inputs`.
            location: Location input, for models that use one (ignored otherwise).

        Returns:
            The same keys as ``forward`` (``"out"`` and possibly ``"aux"``), each (B, K, H, W) probabilities
            summing to one over the class axis.
        """
        return {key: torch.softmax(value, dim=1) for key, value in self(inputs, location).items()}

    def set_mc_dropout(self, enabled: bool) -> None:
        """Switch Monte-Carlo dropout on or off.

        When on, every dropout layer of the model samples a new mask on each forward pass, in ``train()`` and
        ``eval()`` mode alike. When off, the dropout layers behave as the model's own convention says
        (see :class:`~glaciermap.models.blocks.MCDropout`).

        Args:
            enabled: Whether dropout is forced on.
        """
        for module in self.modules():
            if isinstance(module, MCDropout):
                module.mc_enabled = bool(enabled)

    @property
    def mc_dropout(self) -> bool:
        """Whether Monte-Carlo dropout is switched on (see :meth:`set_mc_dropout`)."""
        return any(m.mc_enabled for m in self.modules() if isinstance(m, MCDropout))
