"""The retained heap during training: a task on a CPU keeps freed memory in the process, and hands it back."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from glaciermap.callbacks import RetainedHeap
from glaciermap.datasets.scene import collate_samples
from glaciermap.datasets.tile_benchmark import GlacierTileBenchmark
from glaciermap.inference import heap
from glaciermap.tasks.segmentation import SegmentationTask
from tests.data.heap import RESTORE_CALLS, RETAIN_CALLS, recording_libc

DATA = Path(__file__).resolve().parents[1] / "data" / "tile_benchmark" / "tiles.hdf5"


def _task_and_loader() -> tuple[SegmentationTask, DataLoader]:  # type: ignore[type-arg]
    ds = GlacierTileBenchmark(DATA, patch_size=16, batch_size=2, mode="grid")
    torch.manual_seed(0)
    task = SegmentationTask(model="light_fusion_resunet", model_kwargs={"filters": 8}, augment=False)
    return task, DataLoader(ds, batch_size=2, collate_fn=collate_samples)


def _trainer(tmp_path: Path) -> Trainer:
    return Trainer(fast_dev_run=2, accelerator="cpu", logger=False, default_root_dir=tmp_path,
                   enable_progress_bar=False, enable_model_summary=False)  # fmt: skip


def test_a_task_trains_and_validates_on_a_cpu_inside_the_retained_heap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(heap.CPU_HEAP_ENV, raising=False)
    libc = recording_libc(monkeypatch)
    task, loader = _task_and_loader()
    seen: dict[str, list[int]] = {"train": [], "val": []}
    task.model.register_forward_pre_hook(
        lambda module, args: seen["train" if task.training else "val"].append(len(libc.calls))
    )
    trainer = _trainer(tmp_path)
    trainer.fit(task, train_dataloaders=loader, val_dataloaders=loader)
    # every forward pass, training and validation, ran with the allocator set to retain; restored at the end
    assert seen["train"] and seen["val"] and set(seen["train"] + seen["val"]) == {len(RETAIN_CALLS)}
    assert libc.calls == RETAIN_CALLS + RESTORE_CALLS
    callback = next(c for c in trainer.callbacks if isinstance(c, RetainedHeap))  # the task brought it
    assert callback.active is False


def test_a_failing_step_hands_the_memory_back_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(heap.CPU_HEAP_ENV, raising=False)
    libc = recording_libc(monkeypatch)
    task, loader = _task_and_loader()

    def fail(*args: object) -> None:
        raise RuntimeError("boom")

    task.model.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="boom"):
        _trainer(tmp_path).fit(task, train_dataloaders=loader)
    assert (
        libc.calls == RETAIN_CALLS + RESTORE_CALLS
    )  # Lightning skips teardown on failure: on_exception did it


def test_off_the_cpu_or_switched_off_it_leaves_the_allocator_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = recording_libc(monkeypatch)
    monkeypatch.delenv(heap.CPU_HEAP_ENV, raising=False)
    gpu = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("meta")))  # any device but a CPU
    callback = RetainedHeap()
    callback.setup(gpu, None, "fit")  # type: ignore[arg-type]
    assert callback.active is False
    callback.teardown(gpu, None, "fit")  # type: ignore[arg-type]
    monkeypatch.setenv(heap.CPU_HEAP_ENV, "system")
    cpu = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")))
    callback.setup(cpu, None, "fit")  # type: ignore[arg-type]
    assert callback.active is False
    callback.teardown(cpu, None, "fit")  # type: ignore[arg-type]
    assert libc.calls == []
