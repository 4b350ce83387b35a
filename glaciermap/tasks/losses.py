"""Segmentation losses that honour ``ignore_index``.

* :class:`FocalLoss`: the categorical focal loss of the GlaViTU paper (Methods, "GlaViTU": gamma 2, label
  smoothing 0.1); Lin et al. (2017).
* :class:`DiceLoss`: the soft Dice loss of the Karakoram paper, Eq. 3.
* :class:`CrossEntropyLoss`: plain cross-entropy (``torch.nn.functional.cross_entropy``).
* :class:`DeepSupervisionLoss`: ``aux_weight * loss(aux) + main_weight * loss(main)`` (0.5 / 1.0 in the
  authors' reference implementation).

Every loss takes logits ``(B, K, H, W)`` and an integer target ``(B, H, W)``; pixels equal to ``ignore_index``
contribute nothing (the authors' reference implementation has no masking; we deliberately mask nodata).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glaciermap.constants import IGNORE_INDEX

LossName = Literal["focal", "dice", "ce"]

_EPS = 1e-7  # keras.backend.epsilon(): the authors' reference implementation clips probabilities with it


def _one_hot_valid(target: Tensor, num_classes: int, ignore_index: int) -> tuple[Tensor, Tensor]:
    """One-hot encode ``target`` (B, H, W) -> (B, K, H, W) float and return the valid mask (B, H, W) bool."""
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(safe.long(), num_classes).permute(0, 3, 1, 2).to(torch.float32)
    return onehot, valid


class FocalLoss(nn.Module):
    """Categorical focal loss with label smoothing (GlaViTU paper, Methods, "GlaViTU"; Lin et al. 2017).

    Per valid pixel ``L = -sum_c (1 - p_c)^gamma * y_c * log(p_c)`` with ``p = clip(softmax(logits), 1e-7,
    1 - 1e-7)`` and ``y = onehot * (1 - s) + s / K`` (label smoothing ``s``), averaged over valid pixels.

    Args:
        gamma: Focusing parameter (2.0 in the reference).
        label_smoothing: Smoothing ``s`` of the one-hot target (0.1 in the paper's training command).
        ignore_index: Target value of pixels that are excluded.
    """

    def __init__(
        self, gamma: float = 2.0, label_smoothing: float = 0.0, ignore_index: int = IGNORE_INDEX
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean focal loss over the valid pixels of ``logits`` (B, K, H, W) and ``target`` (B, H, W)."""
        k = logits.shape[1]
        y, valid = _one_hot_valid(target, k, self.ignore_index)
        if self.label_smoothing > 0:
            y = y * (1.0 - self.label_smoothing) + self.label_smoothing / k
        p = torch.softmax(logits.float(), dim=1).clamp(_EPS, 1.0 - _EPS)
        per_pixel = -((1.0 - p) ** self.gamma * y * torch.log(p)).sum(dim=1)
        n = valid.sum()
        return (per_pixel * valid).sum() / n.clamp(min=1)


class DiceLoss(nn.Module):
    """Soft Dice loss, Eq. 3 of the Karakoram paper, averaged over all classes, background included.

    ``1 - 2 sum_i p_i g_i / (sum_i p_i + sum_i g_i)`` per class over the valid pixels of the batch, then the
    unweighted mean over the K classes (for the Karakoram target: background, clean ice and debris-covered ice;
    Eq. 3 is written for one class and the paper does not say how classes are combined), with a
    smoothing term ``smooth`` added to numerator and denominator so that a class absent from both prediction and
    target gives a loss of 0.

    Args:
        ignore_index: Target value of pixels that are excluded.
        smooth: Additive smoothing of numerator and denominator.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean Dice loss over classes for ``logits`` (B, K, H, W) and ``target`` (B, H, W)."""
        g, valid = _one_hot_valid(target, logits.shape[1], self.ignore_index)
        p = torch.softmax(logits.float(), dim=1) * valid.unsqueeze(1)
        g = g * valid.unsqueeze(1)
        dims = (0, 2, 3)
        inter = (p * g).sum(dims)
        denom = p.sum(dims) + g.sum(dims)
        dice = (2.0 * inter + self.smooth) / (denom + self.smooth)
        return 1.0 - dice.mean()


class CrossEntropyLoss(nn.Module):
    """Pixel-wise cross-entropy ignoring ``ignore_index`` (optionally label-smoothed).

    Args:
        label_smoothing: Label smoothing passed to ``torch.nn.functional.cross_entropy``.
        ignore_index: Target value of pixels that are excluded.
    """

    def __init__(self, label_smoothing: float = 0.0, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean cross-entropy over the valid pixels."""
        if not bool((target != self.ignore_index).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(
            logits.float(),
            target.long(),
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


def build_loss(
    name: LossName, label_smoothing: float = 0.0, gamma: float = 2.0, ignore_index: int = IGNORE_INDEX
) -> nn.Module:
    """Build a loss by name (``"focal"``, ``"dice"`` or ``"ce"``)."""
    if name == "focal":
        return FocalLoss(gamma=gamma, label_smoothing=label_smoothing, ignore_index=ignore_index)
    if name == "dice":
        return DiceLoss(ignore_index=ignore_index)
    if name == "ce":
        return CrossEntropyLoss(label_smoothing=label_smoothing, ignore_index=ignore_index)
    raise ValueError(f"unknown loss {name!r}; expected one of 'focal', 'dice', 'ce'")


class DeepSupervisionLoss(nn.Module):
    """Weighted sum over the main and the deep-supervision outputs (GlaViTU paper, Methods, "GlaViTU").

    Args:
        loss: The per-output loss.
        main_weight: Weight of the main head (1.0 in the reference).
        aux_weight: Weight of the deep-supervision head (0.5 in the reference).
    """

    def __init__(self, loss: nn.Module, main_weight: float = 1.0, aux_weight: float = 0.5) -> None:
        super().__init__()
        self.loss = loss
        self.main_weight = main_weight
        self.aux_weight = aux_weight

    def forward(self, main: Tensor, target: Tensor, aux: Tensor | None = None) -> Tensor:
        """``main_weight * loss(main) + aux_weight * loss(aux)``; ``aux`` may be None (no deep supervision)."""
        total: Tensor = self.main_weight * self.loss(main, target)
        if aux is not None and self.aux_weight:
            total = total + self.aux_weight * self.loss(aux, target)
        return total
