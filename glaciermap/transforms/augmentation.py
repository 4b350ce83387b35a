"""Batched, on-device training augmentation (GlaViTU paper, Methods, "GlaViTU").

Geometric transforms are applied identically to every modality and to the mask of a sample; photometric ones
independently per modality ("feature group"). The paper names the transforms; their probabilities and
parameters are those of the authors' reference implementation:

| transform | probability | parameters |
|---|---|---|
| vertical flip | 0.5 | |
| horizontal flip | 0.5 | |
| rotation by k x 90 degrees, k in {1, 2, 3} | 0.75 | |
| crop and rescale | 0.5 | square side u x size, u ~ U[0.8, 1), resized back with nearest neighbour |
| gamma x <- sign(x) abs(x)^g, g ~ U[0.8, 1.2) per channel | 0.5 per modality | |
| occlusion: one rectangle up to half the patch per side set to 0 | 0.5 per modality | |
| per-channel shift ~ N(0, 0.025^2) | 0.5 per modality | |
| per-pixel noise ~ N(0, 0.005^2) | 0.5 per modality | |

The reference applied gamma to min-max normalised values in [0, 1]; on z-scored inputs we use the
sign-preserving form so that negative values stay finite (the reference set the resulting NaNs to 0).
Invalid pixels (mask == ``ignore_index``) keep their ignore label through every geometric transform.
"""

from __future__ import annotations

import torch
from kornia.geometry.transform import crop_and_resize
from torch import Tensor, nn


def _where(flag: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Per-sample select: ``a[i]`` where ``flag[i]`` else ``b[i]``."""
    return torch.where(flag.view(-1, *([1] * (a.dim() - 1))), a, b)


class GeometricAugmentation(nn.Module):
    """Random flips, 90-degree rotations and crop-and-rescale, shared by all modalities and the mask.

    Args:
        p_vflip: Probability of a vertical flip.
        p_hflip: Probability of a horizontal flip.
        p_rot90: Probability of a rotation by 90, 180 or 270 degrees (chosen uniformly).
        p_crop: Probability of crop-and-rescale.
        crop_range: Range of the crop side as a fraction of the patch side.
    """

    def __init__(
        self,
        p_vflip: float = 0.5,
        p_hflip: float = 0.5,
        p_rot90: float = 0.75,
        p_crop: float = 0.5,
        crop_range: tuple[float, float] = (0.8, 1.0),
    ) -> None:
        super().__init__()
        self.p_vflip = p_vflip
        self.p_hflip = p_hflip
        self.p_rot90 = p_rot90
        self.p_crop = p_crop
        self.crop_range = crop_range

    def forward(self, images: dict[str, Tensor], mask: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Augment a batch.

        Args:
            images: Modality -> tensor (B, C_m, H, W).
            mask: Integer target (B, H, W).

        Returns:
            The augmented images and mask (same shapes and dtypes).
        """
        b, h, w = mask.shape
        dev = mask.device
        # Stack everything on the channel axis so every sample gets one identical transform.
        names = list(images)
        sizes = [images[n].shape[1] for n in names]
        x = torch.cat([images[n] for n in names] + [mask.unsqueeze(1).to(images[names[0]].dtype)], dim=1)

        vflip = torch.rand(b, device=dev) < self.p_vflip
        x = _where(vflip, x.flip(-2), x)
        hflip = torch.rand(b, device=dev) < self.p_hflip
        x = _where(hflip, x.flip(-1), x)
        if h == w:  # rotations keep the shape only for square patches
            k = torch.where(
                torch.rand(b, device=dev) < self.p_rot90,
                torch.randint(1, 4, (b,), device=dev),
                torch.zeros(b, dtype=torch.long, device=dev),
            )
            rotated = x.clone()
            for kk in (1, 2, 3):
                sel = k == kk
                if bool(sel.any()):
                    rotated[sel] = torch.rot90(x[sel], kk, dims=(-2, -1))
            x = rotated
        crop = torch.rand(b, device=dev) < self.p_crop
        if bool(crop.any()):
            x = self._crop_and_rescale(x, crop)

        parts = torch.split(x, [*sizes, 1], dim=1)
        out = {n: p.contiguous() for n, p in zip(names, parts[:-1])}
        return out, parts[-1].squeeze(1).round().to(mask.dtype)

    def _crop_and_rescale(self, x: Tensor, selected: Tensor) -> Tensor:
        """Crop a random square (side u x min(H, W)) of the selected samples and resize it back (nearest)."""
        b, _, h, w = x.shape
        dev = x.device
        lo, hi = self.crop_range
        side = (torch.empty(b, device=dev).uniform_(lo, hi) * min(h, w)).floor().clamp(min=1)
        y0 = (torch.rand(b, device=dev) * (h - side + 1)).floor()
        x0 = (torch.rand(b, device=dev) * (w - side + 1)).floor()
        x1 = x0 + side - 1
        y1 = y0 + side - 1
        boxes = torch.stack(
            [
                torch.stack([x0, y0], -1),
                torch.stack([x1, y0], -1),
                torch.stack([x1, y1], -1),
                torch.stack([x0, y1], -1),
            ],
            dim=1,
        )
        idx = selected.nonzero().squeeze(1)
        out = x.clone()
        out[idx] = crop_and_resize(x[idx], boxes[idx], (h, w), mode="nearest", align_corners=True)
        return out


class PhotometricAugmentation(nn.Module):
    """Gamma, occlusion, channel shift and pixel noise, drawn independently per modality.

    Args:
        p_gamma: Probability of gamma correction per modality.
        gamma_range: Range of the per-channel exponent.
        p_occlusion: Probability of one occluding rectangle per modality.
        max_occlusion: Largest rectangle side as a fraction of the patch side (192 / 384 in the reference).
        p_shift: Probability of a per-channel constant shift per modality.
        shift_std: Standard deviation of the shift.
        p_noise: Probability of i.i.d. pixel noise per modality.
        noise_std: Standard deviation of the pixel noise.
    """

    def __init__(
        self,
        p_gamma: float = 0.5,
        gamma_range: tuple[float, float] = (0.8, 1.2),
        p_occlusion: float = 0.5,
        max_occlusion: float = 0.5,
        p_shift: float = 0.5,
        shift_std: float = 0.025,
        p_noise: float = 0.5,
        noise_std: float = 0.005,
    ) -> None:
        super().__init__()
        self.p_gamma = p_gamma
        self.gamma_range = gamma_range
        self.p_occlusion = p_occlusion
        self.max_occlusion = max_occlusion
        self.p_shift = p_shift
        self.shift_std = shift_std
        self.p_noise = p_noise
        self.noise_std = noise_std

    def forward(self, images: dict[str, Tensor]) -> dict[str, Tensor]:
        """Augment every modality of a batch; shapes and dtypes are kept."""
        return {name: self._one(x) for name, x in images.items()}

    def _one(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        dev = x.device
        lo, hi = self.gamma_range
        g = torch.empty(b, c, 1, 1, device=dev, dtype=x.dtype).uniform_(lo, hi)
        gamma = torch.sign(x) * x.abs().pow(g)
        x = _where(torch.rand(b, device=dev) < self.p_gamma, gamma, x)

        occ = torch.rand(b, device=dev) < self.p_occlusion
        rh = (torch.rand(b, device=dev) * self.max_occlusion * h).long()
        rw = (torch.rand(b, device=dev) * self.max_occlusion * w).long()
        y0 = (torch.rand(b, device=dev) * (h - rh + 1)).long()
        x0 = (torch.rand(b, device=dev) * (w - rw + 1)).long()
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        box = (
            (rows >= y0.view(b, 1, 1))
            & (rows < (y0 + rh).view(b, 1, 1))
            & (cols >= x0.view(b, 1, 1))
            & (cols < (x0 + rw).view(b, 1, 1))
            & occ.view(b, 1, 1)
        )
        x = x.masked_fill(box.unsqueeze(1), 0.0)

        shift = torch.randn(b, c, 1, 1, device=dev, dtype=x.dtype) * self.shift_std
        x = x + shift * (torch.rand(b, 1, 1, 1, device=dev) < self.p_shift)
        noise = torch.randn_like(x) * self.noise_std
        return x + noise * (torch.rand(b, 1, 1, 1, device=dev) < self.p_noise)


__all__ = ["GeometricAugmentation", "PhotometricAugmentation"]
