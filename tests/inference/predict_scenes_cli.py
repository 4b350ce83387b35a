"""LightningCLI over the scene-mapping classes, as a module Lightning's DDP launcher can re-run (``python -m``)."""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from glaciermap.inference.lightning import SceneMappingDataModule, SceneMappingTask

if __name__ == "__main__":
    LightningCLI(SceneMappingTask, SceneMappingDataModule, save_config_callback=None)
