"""Batched augmentation: masks follow images, probabilities are respected, values are bounded."""

from __future__ import annotations

import torch

from glaciermap.transforms.augmentation import GeometricAugmentation, PhotometricAugmentation


def _batch(b: int = 6, size: int = 16) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    mask = torch.randint(0, 3, (b, size, size), generator=g)
    mask[:, :2, :] = 255
    optical = torch.stack([mask.float(), torch.rand(b, size, size, generator=g)], dim=1)
    dem = mask.float().unsqueeze(1) * 10.0
    return {"optical": optical, "dem": dem}, mask


def test_geometric_keeps_images_and_mask_aligned() -> None:
    torch.manual_seed(0)
    images, mask = _batch()
    aug = GeometricAugmentation(p_vflip=0.5, p_hflip=0.5, p_rot90=0.75, p_crop=1.0)
    out, out_mask = aug(images, mask)
    assert out_mask.dtype == mask.dtype and out_mask.shape == mask.shape
    assert out["optical"].shape == images["optical"].shape and out["dem"].shape == images["dem"].shape
    torch.testing.assert_close(out["optical"][:, 0], out_mask.float())
    torch.testing.assert_close(out["dem"][:, 0], out_mask.float() * 10.0)
    assert set(out_mask.unique().tolist()) <= {0, 1, 2, 255}


def test_geometric_probability_one_is_exact_flip_and_zero_is_identity() -> None:
    images, mask = _batch()
    flip = GeometricAugmentation(p_vflip=1.0, p_hflip=0.0, p_rot90=0.0, p_crop=0.0)
    out, out_mask = flip(images, mask)
    torch.testing.assert_close(out_mask, mask.flip(-2))
    torch.testing.assert_close(out["optical"], images["optical"].flip(-2))
    none = GeometricAugmentation(0.0, 0.0, 0.0, 0.0)
    out, out_mask = none(images, mask)
    torch.testing.assert_close(out_mask, mask)
    torch.testing.assert_close(out["dem"], images["dem"])


def test_rotations_are_permutations_and_all_angles_occur() -> None:
    torch.manual_seed(1)
    b = 64
    mask = torch.arange(16).view(1, 4, 4).expand(b, 4, 4).clone()
    rot = GeometricAugmentation(0.0, 0.0, 1.0, 0.0)
    _, out = rot({"optical": mask.unsqueeze(1).float()}, mask)
    seen = set()
    for i in range(b):
        assert sorted(out[i].flatten().tolist()) == list(range(16))
        for k in (1, 2, 3):
            if torch.equal(out[i], torch.rot90(mask[i], k, dims=(-2, -1))):
                seen.add(k)
    assert seen == {1, 2, 3}


def test_photometric_identity_at_zero_probability_and_changes_otherwise() -> None:
    torch.manual_seed(2)
    images, _ = _batch()
    off = PhotometricAugmentation(p_gamma=0, p_occlusion=0, p_shift=0, p_noise=0)
    torch.testing.assert_close(off(images)["optical"], images["optical"])
    occl = PhotometricAugmentation(p_gamma=0, p_occlusion=1.0, max_occlusion=0.5, p_shift=0, p_noise=0)
    ones = {"x": torch.ones(32, 1, 16, 16)}
    out = occl(ones)["x"]
    zeros_per_sample = (out == 0).flatten(1).sum(1)
    assert int(zeros_per_sample.max()) <= 8 * 8 and int(zeros_per_sample.max()) > 0
    noisy = PhotometricAugmentation(p_gamma=1.0, p_occlusion=0, p_shift=1.0, p_noise=1.0)(images)
    diff = (noisy["dem"] - images["dem"]).abs()
    assert torch.isfinite(noisy["optical"]).all() and float(diff.max()) > 0
    # gamma keeps the sign of negative (z-scored) inputs
    neg = PhotometricAugmentation(p_gamma=1.0, p_occlusion=0, p_shift=0, p_noise=0)(
        {"x": -torch.ones(4, 2, 3, 3)}
    )
    assert (neg["x"] == -1).all()
