"""Recipe options of the papers: Karakoram plateau schedule, fine-tuning checkpoint selection on val/loss."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.optim.lr_scheduler import ReduceLROnPlateau

from glaciermap.datasets.scene import collate_samples
from glaciermap.datasets.tile_benchmark import GlacierTileBenchmark
from glaciermap.tasks.schedules import build_plateau, build_schedule
from glaciermap.tasks.segmentation import SegmentationTask

ROOT = Path(__file__).parents[2]


def test_plateau_divides_by_ten_after_ten_flat_epochs() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-4)
    sched = build_plateau(opt)
    lrs = []
    for _ in range(13):
        sched.step(1.0)  # val/loss never improves after the first epoch
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[10] == pytest.approx(1e-4) and lrs[11] == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="build_plateau"):
        build_schedule(opt, "plateau", steps_per_epoch=4)


def test_task_with_plateau_and_val_loss_checkpoints() -> None:
    task = SegmentationTask(model="light_fusion_resunet", model_kwargs={"filters": 8}, augment=False,
                            schedule="plateau", checkpoint_monitor="val/loss")  # fmt: skip
    task._trainer = SimpleNamespace(max_epochs=200, estimated_stepping_batches=800)  # type: ignore[assignment]
    config = task.configure_optimizers()
    scheduler = config["lr_scheduler"]
    assert isinstance(scheduler["scheduler"], ReduceLROnPlateau) and scheduler["monitor"] == "val/loss"
    assert scheduler["interval"] == "epoch" and scheduler["scheduler"].factor == pytest.approx(0.1)
    checkpoint = next(c for c in task.configure_callbacks() if isinstance(c, ModelCheckpoint))
    assert checkpoint.monitor == "val/loss" and checkpoint.mode == "min"
    default = SegmentationTask(model="light_fusion_resunet", model_kwargs={"filters": 8})
    checkpoint = next(c for c in default.configure_callbacks() if isinstance(c, ModelCheckpoint))
    assert checkpoint.monitor == "val/iou_glacier" and checkpoint.mode == "max"


def test_example_configs_follow_the_papers() -> None:
    karakoram = yaml.safe_load((ROOT / "examples" / "karakoram_unet_cbam.yaml").read_text())
    assert karakoram["model"]["schedule"] == "plateau" and karakoram["model"]["loss"] == "dice"
    finetuning = yaml.safe_load((ROOT / "examples" / "glavitu_finetuning.yaml").read_text())
    assert finetuning["model"]["checkpoint_monitor"] == "val/loss"


@pytest.mark.slow
def test_region_encoding_validates_with_true_and_unseen_region(monkeypatch: pytest.MonkeyPatch) -> None:
    data = ROOT / "tests" / "data" / "tile_benchmark" / "tiles.hdf5"
    codes = ["ALP", "HMA", "SC"]
    ds = GlacierTileBenchmark(data, patch_size=32, mode="grid", region_codes=codes)
    batch = collate_samples([ds[0], ds[1]])
    assert batch["region"].tolist() == [0, 0]
    torch.manual_seed(0)
    task = SegmentationTask(model="glavitu", model_kwargs={"location_encoding": "region", "img_size": 32},
                            region_codes=codes, augment=False).eval()  # fmt: skip
    logged: dict[str, float] = {}
    monkeypatch.setattr(task, "log", lambda name, value, **_: logged.__setitem__(name, float(value)))
    monkeypatch.setattr(
        task, "log_dict", lambda values, **_: logged.update({k: float(v) for k, v in values.items()})
    )
    with torch.no_grad():
        task.validation_step(batch, 0)
    task.on_validation_epoch_end()
    assert 0.0 <= logged["val_unseen/iou_glacier"] <= 1.0 and 0.0 <= logged["val/iou_glacier"] <= 1.0
    assert logged["val_unseen/loss"] > 0 and logged["val_unseen/loss"] != logged["val/loss"]
