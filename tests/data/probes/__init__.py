"""A callback for the DDP test: each rank writes the windows it trained on to ``DIR/rankN.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class RecordWindows(Callback):
    """Record ``batch["bounds"]`` of every training batch, per rank.

    Args:
        out_dir: Folder for ``rank0.json``, ``rank1.json``, ...
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.windows: list[list[float]] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.windows.extend(batch["bounds"].tolist())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "windows": self.windows}
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
