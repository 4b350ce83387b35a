"""Split-image classification task: every crevasse example config through ``glaciermap fit``, two stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import pytest
import torch
import yaml

from glaciermap.cli import main
from glaciermap.datamodules import SplitImageDataModule
from glaciermap.models import VarioNet
from glaciermap.tasks import SplitImageClassificationTask
from tests.data.crevasse_world import VARIO_FEATURES, tiny_world

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIGS = sorted(p.name for p in EXAMPLES.glob("crevasse_*.yaml"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic crevasse world (88 tiles)."""
    return tiny_world(tmp_path_factory.mktemp("crev") / "world")


def _shrink(config: Path, world: Path, out: Path) -> Path:
    """A copy of an example config on the tiny world, writing under ``out``, without sub-network weights."""
    cfg: dict[str, Any] = yaml.safe_load(config.read_text())
    cfg["data"]["init_args"]["root"] = str(world)
    cfg["trainer"]["default_root_dir"] = str(out)
    cfg["trainer"]["logger"]["init_args"]["save_dir"] = str(out)
    for cb in cfg["trainer"].get("callbacks", []):
        cb["init_args"]["dirpath"] = str(out / "checkpoints")
    args = cfg["model"]["init_args"]
    kwargs = args["model_kwargs"]
    for key in ("in_features", "vario_features"):
        if key in kwargs:
            kwargs[key] = VARIO_FEATURES
    args["vario_mlp_ckpt"] = args["resnet_ckpt"] = None
    path = out / config.name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_all_four_examples_exist() -> None:
    assert CONFIGS == [
        "crevasse_resnet18.yaml",
        "crevasse_variomlp.yaml",
        "crevasse_varionet_adaptive.yaml",
        "crevasse_varionet_discrete.yaml",
    ]


@pytest.mark.parametrize("name", CONFIGS)
def test_example_config_fast_dev_run(name: str, world: Path, tmp_path: Path) -> None:
    config = _shrink(EXAMPLES / name, world, tmp_path)
    assert main(["fit", "--config", str(config), "--trainer.fast_dev_run", "1"]) == 0
    assert main(["test", "--config", str(config), "--trainer.fast_dev_run", "1"]) == 0


def test_two_stage_varionet_and_checkpoint_metadata(world: Path, tmp_path: Path) -> None:
    task = SplitImageClassificationTask(
        model="varionet_eq6",
        model_kwargs={"vario_features": VARIO_FEATURES, "hidden": [1]},
        stage1_epochs=1,
        lr=1e-3,
        fine_lr=1e-4,
        vario_settings={"lag_threshold": 0.8},
    )
    model = task.model
    assert isinstance(model, VarioNet) and model.frozen
    frozen = {n: p.detach().clone() for n, p in model.resnet.named_parameters()}
    data = SplitImageDataModule(root=world, batch_size=8, intensity="uint8")
    trainer = L.Trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        enable_checkpointing=False,
    )

    class Probe(L.Callback):
        seen: ClassVar[list[tuple[bool, float]]] = []

        def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *a: object) -> None:
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            Probe.seen.append((model.resnet.training, lr))
            if trainer.current_epoch == 0:  # stage 1: sub-networks unchanged
                for n, p in model.resnet.named_parameters():
                    assert torch.equal(p, frozen[n])

    trainer.callbacks.append(Probe())
    trainer.fit(task, datamodule=data)
    assert Probe.seen == [(False, 1e-3), (False, 1e-3), (True, 1e-4), (True, 1e-4)]
    assert all(p.requires_grad for p in model.parameters())
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    meta = torch.load(path, map_location="cpu", weights_only=True)["glaciermap"]
    assert meta["model"] == "varionet_eq6" and meta["input_mode"] == "raw"
    assert meta["class_names"][0] == "undisturbed_snow" and len(meta["class_names"]) == 11
    assert meta["vario"] == {"lag_threshold": 0.8}
    out = task.predict_details(torch.rand(3, 1, 30, 40) * 255, torch.rand(3, VARIO_FEATURES))
    assert out["label"].shape == (3,) and out["beta"].shape == (3,)
    assert ((out["confidence"] > 0) & (out["confidence"] <= 1)).all()


def test_confusion_matrix_figure_goes_to_a_figure_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorBoard gets the shared confusion figure (glaciermap.visualisation.confusion_figure) with counts."""
    figures: list[tuple[str, Any]] = []

    class Experiment:
        def add_figure(self, tag: str, fig: Any, step: int) -> None:
            figures.append((tag, [t.get_text() for t in fig.axes[0].texts]))

    class Logger:
        experiment = Experiment()

    monkeypatch.setattr(SplitImageClassificationTask, "logger", property(lambda self: Logger()))
    task = SplitImageClassificationTask(model="vario_mlp", model_kwargs={"in_features": VARIO_FEATURES})
    confusion = torch.zeros(11, 11, dtype=torch.int64)
    confusion[0, 0], confusion[3, 4] = 5, 2
    task._log_confusion_figure("val", confusion)
    assert figures == [("val/confusion_matrix", ["5", "2"])]
