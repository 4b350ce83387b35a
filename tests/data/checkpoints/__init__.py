"""Stand-in models, scenes and a tiny checkpoint for the scene-mapping tests.

* :class:`PointwiseModel`: a fixed 1x1 convolution, exactly translation-, flip- and rotation-equivariant, so a
  blended sliding-window prediction must equal the model applied to the whole scene at once.
* :class:`ConvModel`: a 3x3 convolution with replicate padding (optionally a non-symmetric kernel and
  Monte-Carlo dropout), translation-equivariant away from window borders and constant on constant input.
* :func:`scene_stats`: normalisation statistics of the ``tests.data.scenes`` scenes.
* :func:`save_tiny_checkpoint`: a real Lightning checkpoint of ``SegmentationTask`` (light fusion ResUNet),
  written without any training step.
* :func:`save_tiny_region_checkpoint`: the same with a tiny region-encoding model (``light_region_resunet``),
  for bias optimisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import rasterio
import torch
from torch import Tensor, nn

from glaciermap.constants import BANDS, SCENE_FILES
from glaciermap.datasets.scene_folder import invalid_pixels
from glaciermap.models.base import ModelInputs, SegmentationModel
from glaciermap.models.blocks import MCDropout
from glaciermap.transforms.normalisation import Normalize, NormStats

MODALITIES: dict[str, int] = {"optical": 6, "dem": 2}


def random_batch_norm_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm of ``model`` non-trivial statistics and affine parameters, in place.

    Fresh batch norms (mean 0, variance 1, weight 1, bias 0) are almost the identity, so folding them
    into a convolution would pass a test even if the fold ignored them.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)  # type: ignore[union-attr]
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))  # type: ignore[union-attr]
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.4 * torch.rand(n, generator=g) - 0.2)
    return model


class CallLog(list[Tensor | None]):
    """The location inputs a test model was called with, shared with its copies.

    Mapping predicts with an inference copy of the model (``glaciermap.models.folding``); a deep copy of the
    model keeps this same log, so the test reads the calls of the copy from the original.
    """

    def __deepcopy__(self, memo: dict[int, object]) -> CallLog:
        return self


class PointwiseModel(SegmentationModel):
    """``logits = W x + b`` per pixel, with fixed weights (seeded)."""

    arch: ClassVar[str] = "pointwise_test"
    size_multiple: ClassVar[int] = 16

    def __init__(
        self, modalities: Mapping[str, int] | None = None, num_classes: int = 2, seed: int = 0
    ) -> None:
        super().__init__(dict(modalities or MODALITIES), num_classes)
        self.conv = nn.Conv2d(self.in_channels, num_classes, 1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=g))
        self.locations = CallLog()

    def forward(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        self.locations.append(None if location is None else location.detach().cpu().clone())
        return {"out": self.conv(self.stack_inputs(inputs))}


class ConvModel(SegmentationModel):
    """3x3 convolution (replicate padding) -> optional MC dropout -> 1x1 convolution."""

    arch: ClassVar[str] = "conv_test"
    size_multiple: ClassVar[int] = 16

    def __init__(
        self, num_classes: int = 2, dropout: float = 0.0, symmetric: bool = True, seed: int = 0
    ) -> None:
        super().__init__(dict(MODALITIES), num_classes)
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(self.in_channels, 8, 3, padding=1, padding_mode="replicate")
        self.drop = MCDropout(dropout, spatial=False)
        self.head = nn.Conv2d(8, num_classes, 1)
        with torch.no_grad():
            w = torch.randn(self.conv.weight.shape, generator=g) * 0.3
            if symmetric:  # invariant under the 8 dihedral transforms of the kernel
                w = sum(torch.rot90(w, k, (2, 3)) for k in range(4))
                w = (w + torch.flip(w, (3,))) / 8
            self.conv.weight.copy_(w)
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=g) * 0.1)
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=g))
            self.head.bias.copy_(torch.randn(self.head.bias.shape, generator=g) * 0.1)

    def forward(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        return {"out": self.head(self.drop(torch.tanh(self.conv(self.stack_inputs(inputs)))))}


def scene_stats(folder: Path, modalities: tuple[str, ...] = ("optical", "dem")) -> NormStats:
    """Statistics from a scene folder's ``stats.json`` (z-score)."""
    import json

    raw = json.loads((folder / "stats.json").read_text())
    return NormStats.from_dict(
        {
            "method": "zscore",
            "modalities": {m: {"bands": list(BANDS[m]), **raw[m]} for m in modalities},
        }
    )


def normalised_scene(folder: Path, stats: NormStats, fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The whole scene as the mapper sees it: ``(image (C, H, W) normalised and filled, invalid (H, W))``."""
    parts, invalid = [], None
    for m in stats.modalities:
        with rasterio.open(folder / SCENE_FILES[m]) as src:
            data = src.read().astype(np.float32)
            bad = invalid_pixels(data, src.nodata)
        invalid = bad if invalid is None else invalid | bad
        parts.append(Normalize(stats.modalities[m], stats.method)(torch.from_numpy(data)).numpy())
    assert invalid is not None
    image = np.concatenate(parts)
    image[:, invalid] = fill
    return image, invalid


def whole_scene_probabilities(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """Softmax of ``model`` applied to the whole ``(C, H, W)`` image at once (pointwise models only)."""
    with torch.no_grad():
        logits = model.conv(torch.from_numpy(image)[None])  # type: ignore[operator]
    return torch.softmax(logits, dim=1)[0].numpy()


def read(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """All bands of a raster and its profile."""
    with rasterio.open(path) as src:
        return src.read(), dict(src.profile)


def write_constant_scene(folder: Path, size: tuple[int, int], value: float = 0.25) -> Path:
    """An all-valid scene (optical + dem) whose every band holds ``value``, with matching ``stats.json``."""
    from tests.data.scenes import write_scene

    write_scene(folder, size=size, modalities=("optical", "dem"), labels=False, stats=False)
    import json

    entry = {}
    for m in ("optical", "dem"):
        path = folder / SCENE_FILES[m]
        with rasterio.open(path, "r+") as dst:
            dst.write(np.full((dst.count, dst.height, dst.width), value, dtype=np.float32))
            n = dst.count
        entry[m] = {"mean": [value] * n, "std": [1.0] * n, "min": [value] * n, "max": [value] * n, "count": 1}
    (folder / "stats.json").write_text(json.dumps(entry))
    return folder


def save_tiny_checkpoint(path: Path, stats: NormStats, *, dropout: float = 0.1, seed: int = 0) -> Path:
    """Save an untrained ``SegmentationTask(model="light_fusion_resunet")`` as a Lightning checkpoint."""
    from lightning.pytorch import Trainer

    from glaciermap.tasks.segmentation import SegmentationTask

    torch.manual_seed(seed)
    task = SegmentationTask(
        model="light_fusion_resunet",
        model_kwargs={"dropout": dropout},
        modalities=("optical", "dem"),
        norm_stats=stats.to_dict(),
    )
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.strategy.connect(task)
    trainer.save_checkpoint(path)
    return path


def save_tiny_region_checkpoint(
    path: Path, stats: NormStats, *, regions: tuple[str, ...] = ("ALP", "SVAL"), seed: int = 0
) -> Path:
    """Save an untrained region-encoding ``SegmentationTask(model="light_region_resunet")`` checkpoint.

    Tiny (8 filters, depth 1); the region encoder's weights are scaled by 3 so the region vector visibly
    changes the predictions (bias optimisation then lowers the entropy within a few steps).
    """
    from lightning.pytorch import Trainer

    from glaciermap.tasks.segmentation import SegmentationTask

    torch.manual_seed(seed)
    task = SegmentationTask(
        model="light_region_resunet",
        model_kwargs={"location_encoding": "region", "filters": 8, "depth": 1},
        modalities=("optical", "dem"),
        region_codes=regions,
        norm_stats=stats.to_dict(),
    )
    with torch.no_grad():
        for p in task.model.location_encoder.parameters():
            p.mul_(3.0)
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.strategy.connect(task)
    trainer.save_checkpoint(path)
    return path
