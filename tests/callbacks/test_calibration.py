"""CalibrationCallback: a tiny CPU fit stores a calibrator that lowers the validation ECE in checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from glaciermap.calibration import (
    ExpectedIoU,
    IsotonicCalibrator,
    KernelRidgeCalibrator,
    TemperatureCalibrator,
    calibrator_from_dict,
)
from glaciermap.callbacks import CalibrationCallback
from glaciermap.errors import ConfigError, InputError
from glaciermap.inference import entropy_confidence, load_pretrained
from glaciermap.metrics.calibration import expected_calibration_error, negative_log_likelihood
from glaciermap.models.hub import export_weights
from glaciermap.tasks import SegmentationTask
from glaciermap.transforms.normalisation import ModalityStats, NormStats

BANDS = {"optical": ("blue", "green", "red", "nir", "swir1", "swir2"), "dem": ("elevation", "slope")}


class _Noisy(Dataset[dict[str, torch.Tensor]]):
    """8-band 32x32 patches; glacier where band 0 plus strong noise is positive (so accuracy < 1)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 8, 32, 32, generator=g)
        noise = torch.randn(n, 32, 32, generator=g)
        self.masks = (self.images[:, 0] + 0.8 * noise > 0).long()
        self.masks[:, :2] = 255  # ignored rows

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "mask": self.masks[i]}


def _stats() -> dict[str, Any]:
    mods = {
        m: ModalityStats(b, (0.0,) * len(b), (1.0,) * len(b), (-5.0,) * len(b), (5.0,) * len(b), 100)
        for m, b in BANDS.items()
    }
    return NormStats(mods).to_dict()


def _task(**kwargs: Any) -> SegmentationTask:
    args: dict[str, Any] = {
        "model": "light_fusion_resunet",
        "model_kwargs": {"filters": 4, "depth": 1},
        "loss": "ce",
        "label_smoothing": 0.0,
        "lr": 0.02,
        "schedule": "constant",
        "augment": False,
        "photometric": False,
        "norm_stats": _stats(),
    }
    args.update(kwargs)
    return SegmentationTask(**args)


def _fit(
    tmp_path: Path, callback: CalibrationCallback, epochs: int = 2
) -> tuple[SegmentationTask, DataLoader[Any]]:
    pl.seed_everything(0)
    task = _task()
    train = DataLoader(_Noisy(16, 0), batch_size=4, shuffle=True)
    val = DataLoader(_Noisy(8, 1), batch_size=4)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[callback],
    )
    trainer.fit(task, train, val)
    assert float(trainer.callback_metrics["val/ece_raw"]) == pytest.approx(callback.ece_raw)
    assert float(trainer.callback_metrics["val/ece_calibrated"]) == pytest.approx(callback.ece_calibrated)
    return task, val


def _val_pixels(task: SegmentationTask, val: DataLoader[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities (N, C), raw confidence and correctness of the valid validation pixels."""
    task.eval()
    probs, masks = [], []
    with torch.no_grad():
        for batch in val:
            probs.append(torch.softmax(task(batch["image"])["out"], dim=1))
            masks.append(batch["mask"])
    p = torch.cat(probs).permute(1, 0, 2, 3).numpy()  # (C, B, H, W)
    m = torch.cat(masks).numpy()
    valid = m != 255
    conf = entropy_confidence(p, axis=0)[valid]
    correct = (p.argmax(axis=0) == m)[valid]
    return p[:, valid].T, conf, correct


def test_krr_fit_is_stored_in_checkpoints_and_exported_weights(tmp_path: Path) -> None:
    cb = CalibrationCallback("krr")
    task, val = _fit(tmp_path, cb, epochs=1)  # one validation epoch: last.ckpt holds these weights
    assert isinstance(cb.calibrator, KernelRidgeCalibrator)
    assert cb.calibrator.class_names == ("background", "glacier")
    assert cb.ece_raw is not None and cb.ece_calibrated is not None
    assert cb.ece_calibrated <= cb.ece_raw and cb.ece_raw > 0.1
    # the logged ECE equals netcal's on the pixels themselves (before) and the exact value (after)
    _, conf, correct = _val_pixels(task, val)
    assert expected_calibration_error(conf, correct) == pytest.approx(cb.ece_raw, abs=1e-4)
    after = expected_calibration_error(cb.calibrator(conf), correct)
    assert after <= expected_calibration_error(conf, correct)
    assert after == pytest.approx(cb.ece_calibrated, abs=0.01)
    # IoU estimated without the reference (logged for two classes) equals the pixel-wise estimator
    probs, _, _ = _val_pixels(task, val)
    assert cb.iou_estimate is not None
    np.testing.assert_allclose(
        cb.iou_estimate, ExpectedIoU(2).update(probs.T, cb.calibrator(conf)).iou(), atol=2e-3
    )
    for k, name in enumerate(("background", "glacier")):
        assert float(task.trainer.callback_metrics[f"val/iou_estimated_{name}"]) == pytest.approx(
            cb.iou_estimate[k]
        )
    # this barely trained model puts most pixels near confidence 0, where accuracy is ~0.5: the authors'
    # (0, 0) anchor drags those down; the chance-level anchor calibrates them (see fit_kernel_ridge)
    chance = KernelRidgeCalibrator.fit(conf, correct, low_anchor=0.5)
    assert expected_calibration_error(chance(conf), correct) < 0.5 * after
    # the checkpoint carries it in its metadata block; load_pretrained and exported weights read it
    ckpt_path = tmp_path / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    assert ckpt["glaciermap"]["calibrator"] == cb.calibrator.to_dict()
    assert ckpt["callbacks"]  # the callback's own state (histogram, ECE) travels too
    grid = np.linspace(0, 1, 101)
    loaded = load_pretrained(ckpt_path).calibrator
    assert loaded is not None and np.allclose(loaded(grid), cb.calibrator(grid))
    weights = export_weights(ckpt_path, tmp_path / "w.safetensors")
    exported = load_pretrained(weights).calibrator
    assert exported is not None and np.allclose(exported(grid), cb.calibrator(grid))
    # the task restores it when loaded from the checkpoint
    restored = SegmentationTask.load_from_checkpoint(ckpt_path)
    assert restored.calibrator == cb.calibrator.to_dict()


def test_calibrator_for_other_classes_is_rejected(tmp_path: Path) -> None:
    cb = CalibrationCallback("krr")
    _fit(tmp_path, cb, epochs=1)
    ckpt_path = tmp_path / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    entry = ckpt["glaciermap"]["calibrator"]
    entry.update(num_classes=3, class_names=["background", "clean_ice", "debris_ice"])
    bad = tmp_path / "bad.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(InputError, match=r"calibrator fitted for classes \['background', 'clean_ice'"):
        load_pretrained(bad)
    entry.pop("dual_coef")
    entry.update(num_classes=2, class_names=None)
    torch.save(ckpt, bad)
    with pytest.raises(InputError, match=r"malformed.*dual_coef"):
        load_pretrained(bad)


@pytest.mark.parametrize(
    ("method", "kind"), [("temperature", TemperatureCalibrator), ("isotonic", IsotonicCalibrator)]
)
def test_other_methods(tmp_path: Path, method: str, kind: type) -> None:
    cb = CalibrationCallback(method, max_samples=3000)  # type: ignore[arg-type]
    task, val = _fit(tmp_path, cb, epochs=1)
    assert isinstance(cb.calibrator, kind)
    assert cb.ece_calibrated is not None and cb.ece_raw is not None
    assert cb.ece_calibrated <= cb.ece_raw
    assert task.calibrator is not None and isinstance(calibrator_from_dict(task.calibrator), kind)
    if method == "isotonic":
        # calibrated in-sample, the IoU estimated without the reference matches the measured IoU
        probs, _, _ = _val_pixels(task, val)
        masks = torch.cat([b["mask"] for b in val]).numpy()
        truth, pred = masks[masks != 255], probs.argmax(axis=1)
        measured = [((pred == k) & (truth == k)).sum() / ((pred == k) | (truth == k)).sum() for k in (0, 1)]
        assert cb.iou_estimate is not None
        np.testing.assert_allclose(cb.iou_estimate, measured, atol=0.02)
    if method == "temperature":
        # the temperature fitted on a 3000-pixel subsample lowers the NLL of all validation pixels
        probs, _, _ = _val_pixels(task, val)
        labels = torch.cat([b["mask"] for b in val]).numpy()
        labels = labels[labels != 255]
        assert isinstance(cb.calibrator, TemperatureCalibrator)
        scaled = cb.calibrator.apply_to_logits(np.log(probs), axis=1)
        assert cb.calibrator.temperature != pytest.approx(1.0, abs=0.05)
        assert negative_log_likelihood(scaled, labels) < negative_log_likelihood(probs, labels)


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="expected 'krr', 'temperature' or 'isotonic'"):
        CalibrationCallback("platt")  # type: ignore[arg-type]


def test_mc_dropout_training_keeps_dropout_on_in_training_only() -> None:
    torch.manual_seed(0)
    task = _task(model_kwargs={"filters": 4, "depth": 1, "dropout": 0.5}, mc_dropout_training=True)
    x = torch.randn(2, 8, 32, 32)
    task.train()
    a, b = task(x)["out"], task(x)["out"]
    assert not torch.allclose(a, b)
    task.eval()
    assert torch.equal(task(x)["out"], task(x)["out"])
    task.model.set_mc_dropout(True)  # MC inference samples the same layers
    assert not torch.allclose(task(x)["out"], task(x)["out"])
    plain = _task(model_kwargs={"filters": 4, "depth": 1, "dropout": 0.5})
    plain.train()
    assert torch.equal(plain(x)["out"], plain(x)["out"])  # reference parity: no dropout in training
    with pytest.raises(ConfigError, match="no dropout layer with a positive rate"):
        _task(model_kwargs={"filters": 4, "depth": 1, "dropout": 0.0}, mc_dropout_training=True)
