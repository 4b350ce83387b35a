"""bf16 on a CPU in the Lightning tasks: convolutions the CPU computes wrongly in bf16 run in float32."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from glaciermap.datasets.scene import collate_samples
from glaciermap.datasets.tile_benchmark import GlacierTileBenchmark
from glaciermap.errors import ConfigError
from glaciermap.models import cpu_bf16
from glaciermap.tasks import guard_trainer_bf16
from glaciermap.tasks.segmentation import SegmentationTask

DATA = Path(__file__).parents[1] / "data" / "tile_benchmark" / "tiles.hdf5"


def _flag_eight_channel_3x3(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this CPU's bf16 kernel is wrong for 3x3 convolutions over 8 input channels."""
    monkeypatch.setattr(
        cpu_bf16, "bf16_convolution_is_exact", lambda *shape: not (shape[0] == 8 and shape[2] == (3, 3))
    )


def _trainer(precision: str, device: str = "cpu") -> SimpleNamespace:
    return SimpleNamespace(precision=precision, strategy=SimpleNamespace(root_device=torch.device(device)))


def test_only_bf16_on_a_cpu_is_guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    _flag_eight_channel_3x3(monkeypatch)
    net = SegmentationTask(model="light_fusion_resunet", model_kwargs={"filters": 8}).model
    keys = list(net.state_dict())
    for trainer in (None, _trainer("32-true"), _trainer("bf16-mixed", "cuda")):
        assert guard_trainer_bf16(trainer, net) == []
    assert cpu_bf16.wrong_bf16_convolutions(net)  # the fake verdict does flag some of this network
    with pytest.raises(
        ConfigError, match=r"trainer.precision is bf16-true, but this CPU computes .* expected bf16"
    ):
        guard_trainer_bf16(_trainer("bf16-true"), net)
    with pytest.warns(UserWarning, match="run in float32"):
        guarded = guard_trainer_bf16(_trainer("bf16-mixed"), net)
    assert guarded == cpu_bf16.guard_cpu_bf16(net) and cpu_bf16.wrong_bf16_convolutions(net) == []
    assert list(net.state_dict()) == keys  # checkpoints keep their keys


def test_bf16_mixed_training_on_a_cpu_runs_the_flagged_convolutions_in_float32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _flag_eight_channel_3x3(monkeypatch)
    ds = GlacierTileBenchmark(DATA, patch_size=16, batch_size=2, mode="grid")
    loader = DataLoader(ds, batch_size=2, collate_fn=collate_samples)
    torch.manual_seed(0)
    task = SegmentationTask(model="light_fusion_resunet", model_kwargs={"filters": 8}, augment=False)
    dtypes: dict[str, set[torch.dtype]] = {"guarded": set(), "other": set()}
    for module in task.model.modules():
        if (
            isinstance(module, torch.nn.Conv2d)
            and module.kernel_size == (3, 3)
            and module.in_channels in (6, 8)
        ):
            kind = "guarded" if module.in_channels == 8 else "other"
            module.register_forward_hook(lambda m, i, o, kind=kind: dtypes[kind].add(o.dtype))  # type: ignore[misc]
    trainer = Trainer(fast_dev_run=1, accelerator="cpu", precision="bf16-mixed", logger=False,
                      default_root_dir=tmp_path, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    with pytest.warns(UserWarning, match="run in float32"):
        trainer.fit(task, train_dataloaders=loader, val_dataloaders=loader)
    assert dtypes == {"guarded": {torch.float32}, "other": {torch.bfloat16}}
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))


def test_bf16_on_a_cpu_where_it_is_no_faster_than_float32_warns_once_the_probe_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from glaciermap.inference import predictor

    calls: list[dict[str, object]] = []

    def probe(verdict: bool) -> None:
        def fake(**kwargs: object) -> bool:
            calls.append(kwargs)
            return verdict

        monkeypatch.setattr(predictor, "cpu_bf16_is_faster", fake)

    net = SegmentationTask(model="light_fusion_resunet", model_kwargs={"filters": 8}).model
    monkeypatch.setattr(cpu_bf16, "bf16_convolution_is_exact", lambda *shape: True)  # no layer to guard
    probe(False)  # emulated bf16, as on an AVX2 runner
    with pytest.warns(
        UserWarning, match=r"bf16-mixed on a CPU where .* no faster than float32.*expected 32-true"
    ):
        assert guard_trainer_bf16(_trainer("bf16-mixed"), net) == []
    # training runs contiguous tensors, and bf16 only has to be faster, not 2x: the probe is asked just that
    assert calls == [{"channels_last": False, "min_speedup": 1.0}]
    probe(True)  # native bf16 (AMX: a GlaViTU training step 1.6x faster)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert guard_trainer_bf16(_trainer("bf16-mixed"), net) == []
        assert guard_trainer_bf16(_trainer("32-true"), net) == []
        assert guard_trainer_bf16(_trainer("bf16-mixed", "cuda"), net) == []
    assert len(calls) == 2  # float32 and the GPU never probe
