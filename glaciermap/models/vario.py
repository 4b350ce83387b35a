"""Split-image classifiers of GEOCLASS-image v2.0: VarioMLP, a 1-channel ResNet-18 and VarioNet.

Every classifier takes the split-image sample contract (``docs/glossary.md``) and returns logits::

    logits = model(image, vario)     # image (B, 1, H, W) float32, vario (B, 3 n) float32 -> (B, C)

VarioMLP ignores ``image``, ResNet-18 ignores ``vario``; VarioNet uses both and fuses its two sub-networks
(GEOCLASS paper Sec. 2.3; reference notes sections 4-6). :meth:`VarioNet.forward_details` also returns the
fusion weights ``alpha`` (VarioMLP) and ``beta`` (ResNet-18) of every sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock, ResNet

ResNetInput = Literal["raw", "normalised"]
"""``"raw"``: the reference's 0-255 full tile as fed by the v2.0 code; ``"normalised"``: the documented
resize to ``size`` pixels, division by 255 and normalisation with mean 0.485, std 0.229 (reference section 5)."""

FusionInput = Literal["softmax", "logits"]
"""What is fused: softmax probabilities (default) or raw logits (reference section 6.2)."""

FusionWeights = Literal["discrete", "eq6", "eq7"]
"""Discrete weights alpha, beta; or adaptive per-sample weights by Eq. 6 (CNN confidence) or Eq. 7
(symmetric) of the GEOCLASS paper (Sec. 2.3)."""


class VarioMLP(nn.Module):
    """Multi-layer perceptron over the vario feature vector (GEOCLASS paper Sec. 2.2; reference section 4).

    Hidden widths are multiples of the input length: ``int(k * in_features)`` for each ``k`` of
    ``hidden`` (``(5, 2)`` gives 159 -> 795 -> 318 -> C); every hidden layer is Linear + LeakyReLU(0.01).

    Args:
        in_features: Vario vector length ``3 n`` (159 for 53 lags).
        num_classes: Number of classes C.
        hidden: Width multipliers of the hidden layers.
    """

    def __init__(
        self, in_features: int = 159, num_classes: int = 11, hidden: Sequence[float] = (5, 2)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for k in hidden:
            layers += [nn.Linear(width, int(k * in_features)), nn.LeakyReLU(0.01)]
            width = int(k * in_features)
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)
        self.in_features, self.num_classes = in_features, num_classes

    def forward(self, image: Tensor | None, vario: Tensor) -> Tensor:
        """Logits of the vario vectors.

        Args:
            image: Unused (the common classifier signature).
            vario: (B, 3 n) or (B, 1, 3 n) vario features.

        Returns:
            (B, C) logits.
        """
        return self.net(vario.flatten(1))


class _NarrowResNet18(ResNet):
    """ResNet-18 with stage widths ``w, 2w, 4w, 8w`` (torchvision's layout and initialisation otherwise)."""

    def __init__(self, width: int, num_classes: int) -> None:
        self._width = width
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(8 * width, num_classes)

    def _make_layer(
        self, block: type[BasicBlock], planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        if planes == 64:  # the first stage: the stem's output has `width` channels
            self.inplanes = self._width
        return super()._make_layer(block, planes * self._width // 64, blocks, stride, dilate)  # type: ignore[arg-type]


class ResNet18(nn.Module):
    """ResNet-18 with a 1-channel 7x7 stem for panchromatic split-images (reference section 5).

    Built from torchvision's ``resnet18(weights=None)`` (Kaiming-normal fan-out convolutions, BN weight 1
    and bias 0, no zero-init residual) with its first convolution replaced by a 1-channel one.

    Args:
        num_classes: Number of classes C.
        input_mode: ``"raw"`` (0-255 tile at full size, the reference's behaviour) or ``"normalised"``
            (resize to ``size``, ``x / 255``, then ``(x - 0.485) / 0.229``).
        size: Resize target (rows, columns) of the normalised mode (the documentation's 224 x 224).
        width: Channels of the first stage (64: the standard ResNet-18; smaller values give a narrow variant
            with stage widths ``w, 2w, 4w, 8w``, e.g. 16 for the small CPU model bundled with glaciermap).
    """

    MEAN = 0.485
    STD = 0.229

    def __init__(
        self,
        num_classes: int = 11,
        input_mode: ResNetInput = "raw",
        size: tuple[int, int] = (224, 224),
        width: int = 64,
    ) -> None:
        super().__init__()
        net = (
            resnet18(weights=None, num_classes=num_classes)
            if width == 64
            else _NarrowResNet18(width, num_classes)
        )
        net.conv1 = nn.Conv2d(1, width, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.net = net
        self.input_mode: ResNetInput = input_mode
        self.size = (int(size[0]), int(size[1]))
        self.num_classes = num_classes

    def preprocess(self, image: Tensor) -> Tensor:
        """The input mode's preprocessing of (B, 1, H, W) 0-255 tiles."""
        if self.input_mode == "raw":
            return image
        x = F.interpolate(image, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return (x / 255.0 - self.MEAN) / self.STD

    def forward(self, image: Tensor, vario: Tensor | None = None) -> Tensor:
        """Logits of the split-images.

        Args:
            image: (B, 1, H, W) intensities on the 0-255 scale.
            vario: Unused (the common classifier signature).

        Returns:
            (B, C) logits.
        """
        return self.net(self.preprocess(image))


class ResidualBlock(nn.Module):
    """``y = ReLU(B(ReLU(A(x))) + P(x))`` with a learned skip projection P (reference section 6.3)."""

    def __init__(self, d_in: int, width: int) -> None:
        super().__init__()
        self.a, self.b, self.skip = nn.Linear(d_in, width), nn.Linear(width, width), nn.Linear(d_in, width)

    def forward(self, x: Tensor) -> Tensor:
        """(B, d_in) -> (B, width)."""
        return F.relu(self.b(F.relu(self.a(x))) + self.skip(x))


def confidence(logits: Tensor, batch_max: bool = False) -> Tensor:
    """Largest softmax probability per sample, detached (GEOCLASS paper Sec. 2.3).

    Args:
        logits: (B, C) logits.
        batch_max: Reference (legacy) behaviour: one maximum over the whole batch tensor.

    Returns:
        (B, 1) confidences in [0, 1] (all equal with ``batch_max``).
    """
    p = logits.detach().softmax(dim=1)
    if batch_max:
        return p.max().expand(p.shape[0], 1)
    return p.max(dim=1, keepdim=True).values


def adaptive_weights(
    z_vario: Tensor, z_resnet: Tensor, rule: Literal["eq6", "eq7"], batch_max: bool = False
) -> tuple[Tensor, Tensor]:
    """Adaptive fusion weights (alpha for VarioMLP, beta for ResNet-18) of GEOCLASS paper Sec. 2.3.

    Eq. 6: ``beta = c_R``, ``alpha = 1 - c_R``. Eq. 7: ``beta = (c_R + 1 - c_V) / 2``, ``alpha = 1 - beta``,
    with ``c`` the largest softmax probability of each sub-network. The weights are constants (detached).

    Args:
        z_vario: (B, C) VarioMLP logits.
        z_resnet: (B, C) ResNet-18 logits.
        rule: ``"eq6"`` or ``"eq7"``.
        batch_max: Legacy: confidences from the maximum over the whole batch (reference section 14.5).

    Returns:
        ``(alpha, beta)``, each (B, 1).
    """
    c_r = confidence(z_resnet, batch_max)
    beta = c_r if rule == "eq6" else 0.5 * (c_r + 1.0 - confidence(z_vario, batch_max))
    return 1.0 - beta, beta


class VarioNet(nn.Module):
    """VarioNet: fusion of VarioMLP and ResNet-18 and a residual MLP head (GEOCLASS paper Sec. 2.3).

    ``f = alpha g(z_V) + beta g(z_R)`` (g softmax or identity), then residual blocks of widths 64, 128, ...
    and a linear output layer (reference sections 6.2-6.3). The vario vector is multiplied by
    ``vario_scale`` (the reference's division by 10, section 3.2) before VarioMLP.

    Args:
        vario_features: Vario vector length ``3 n``.
        num_classes: Number of classes C.
        hidden: VarioMLP width multipliers.
        input_mode: ResNet-18 input mode.
        size: ResNet-18 resize target of the normalised mode.
        width: ResNet-18 first-stage width (64 standard).
        fusion: ``"discrete"``, ``"eq6"`` or ``"eq7"``.
        fusion_input: ``"softmax"`` or ``"logits"``.
        alpha: Initial VarioMLP weight (discrete fusion).
        beta: Initial ResNet-18 weight (discrete fusion).
        learn_fusion_weights: Discrete weights are trainable parameters (reference) or fixed buffers.
        legacy_batch_max: Adaptive confidences from the batch-wide maximum (reference quirk).
        num_blocks: Residual blocks of the head.
        vario_scale: Factor applied to the vario vector.
    """

    def __init__(
        self,
        vario_features: int = 159,
        num_classes: int = 11,
        hidden: Sequence[float] = (5, 2),
        input_mode: ResNetInput = "raw",
        size: tuple[int, int] = (224, 224),
        width: int = 64,
        fusion: FusionWeights = "discrete",
        fusion_input: FusionInput = "softmax",
        alpha: float = 0.45,
        beta: float = 0.55,
        learn_fusion_weights: bool = True,
        legacy_batch_max: bool = False,
        num_blocks: int = 1,
        vario_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.vario_mlp = VarioMLP(vario_features, num_classes, hidden)
        self.resnet = ResNet18(num_classes, input_mode, size, width)
        weights = torch.tensor([alpha, beta], dtype=torch.float32)
        if learn_fusion_weights:
            self.fusion_weights = nn.Parameter(weights)
        else:
            self.register_buffer("fusion_weights", weights)
        widths = [num_classes] + [64 * (i + 1) for i in range(num_blocks)]
        self.blocks = nn.Sequential(*(ResidualBlock(a, b) for a, b in pairwise(widths)))
        self.out = nn.Linear(widths[-1], num_classes)
        self.fusion: FusionWeights = fusion
        self.fusion_input: FusionInput = fusion_input
        self.legacy_batch_max = legacy_batch_max
        self.vario_scale = vario_scale
        self.num_classes = num_classes
        self.frozen = False
        self.frozen_train_mode = False

    def freeze_subnetworks(self, frozen: bool = True, train_mode: bool = False) -> None:
        """Freeze (stage 1) or release (stage 2) VarioMLP and ResNet-18 (reference section 6.4).

        Args:
            frozen: Stop gradients of both sub-networks.
            train_mode: Legacy: keep frozen sub-networks in training mode (their BatchNorm statistics keep
                updating); by default they stay in eval mode while frozen.
        """
        for p in [*self.vario_mlp.parameters(), *self.resnet.parameters()]:
            p.requires_grad_(not frozen)
        self.frozen, self.frozen_train_mode = frozen, train_mode
        self.train(self.training)

    def train(self, mode: bool = True) -> VarioNet:
        """Set the training mode; frozen sub-networks stay in eval mode unless ``train_mode`` was asked."""
        super().train(mode)
        if self.frozen and not self.frozen_train_mode:
            self.vario_mlp.eval()
            self.resnet.eval()
        return self

    def forward_details(self, image: Tensor, vario: Tensor) -> dict[str, Tensor]:
        """Logits and the fusion weights of every sample.

        Args:
            image: (B, 1, H, W) intensities on the 0-255 scale.
            vario: (B, 3 n) vario features (unscaled; ``vario_scale`` is applied here).

        Returns:
            ``logits`` (B, C), ``alpha`` (B, 1) and ``beta`` (B, 1).
        """
        z_v = self.vario_mlp(None, vario * self.vario_scale)
        z_r = self.resnet(image)
        if self.fusion == "discrete":
            alpha = self.fusion_weights[0].expand(z_v.shape[0], 1)
            beta = self.fusion_weights[1].expand(z_v.shape[0], 1)
        else:
            alpha, beta = adaptive_weights(z_v, z_r, self.fusion, self.legacy_batch_max)
        g_v, g_r = (z_v.softmax(1), z_r.softmax(1)) if self.fusion_input == "softmax" else (z_v, z_r)
        fused = alpha * g_v + beta * g_r
        return {"logits": self.out(self.blocks(fused)), "alpha": alpha, "beta": beta}

    def forward(self, image: Tensor, vario: Tensor) -> Tensor:
        """(B, C) logits (see :meth:`forward_details`)."""
        return self.forward_details(image, vario)["logits"]
