"""``glaciermap fit|validate|test|predict``: LightningCLI.

* ``fit``, ``validate``, ``test``: the segmentation task over a scene data module. The data module's
  modalities, bands and target are linked to the task's, and its region codes (by default the sorted codes of
  the training scenes) are passed to the model when both are built, so a config states them once.
* ``fit``, ``validate``, ``test`` with a config whose ``model.class_path`` is
  :class:`~glaciermap.tasks.classification.SplitImageClassificationTask`: split-image classification over a
  :class:`~glaciermap.datamodules.split_images.SplitImageDataModule` (``examples/crevasse_*.yaml``).
* ``predict``: maps whole scenes with a checkpoint (:mod:`glaciermap.tasks.mapping`, :mod:`glaciermap.datamodules.mapping`): scenes are sharded
  across devices and nodes and each is written once by the prediction writer (``examples/predict_scenes.yaml``).

Everything after the sub-command is LightningCLI's own syntax (``--config FILE``, ``--print_config``,
``--trainer.max_epochs 5``, ``--model.loss dice``, ...). ``seed_everything`` defaults to 0.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from glaciermap.datamodules.scenes import SceneDataModule
from glaciermap.errors import InputError
from glaciermap.io import load_error_detail
from glaciermap.tasks.segmentation import SegmentationTask

SUBCOMMANDS: tuple[str, ...] = ("fit", "validate", "test", "predict")
"""Sub-commands handed to LightningCLI."""


class GlaciermapCLI(LightningCLI):
    """LightningCLI with the data module's settings linked to the task's."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link modalities, bands, target and region codes from ``data`` to ``model``."""
        parser.link_arguments("data.init_args.modalities", "model.modalities")
        parser.link_arguments("data.init_args.bands", "model.bands")
        parser.link_arguments("data.init_args.target", "model.target")
        parser.link_arguments("data.region_codes", "model.region_codes", apply_on="instantiate")


def _option_values(argv: Sequence[str], name: str) -> list[str]:
    """Values of ``--name VALUE`` and ``--name=VALUE`` in ``argv``."""
    values = []
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith(name + "="):
            values.append(arg.split("=", 1)[1])
    return values


def check_checkpoint_arguments(argv: Sequence[str]) -> None:
    """Check ``--ckpt_path`` before LightningCLI starts, so a wrong path is one line and writes nothing.

    ``"last"``, ``"best"``, ``"hpc"`` and ``"registry"`` are Lightning's own names and are left to it.

    Args:
        argv: The command's arguments.

    Raises:
        InputError: If the file is missing or is not a readable checkpoint.
    """
    import torch

    for value in _option_values(argv, "--ckpt_path"):
        if value in ("last", "best", "hpc", "registry", "null", "None"):
            continue
        path = Path(value)
        expected = "expected a .ckpt written by 'glaciermap fit'"
        if not path.is_file():
            raise InputError(f"--ckpt_path {path}: file not found; {expected}")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # unpickling, zip and torch errors alike
            detail = load_error_detail(err)
            raise InputError(
                f"--ckpt_path {path} is not a readable checkpoint ({detail}); {expected}"
            ) from None
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
            raise InputError(f"--ckpt_path {path} holds no 'state_dict'; {expected}")


def is_classification(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for the split-image classification task.

    True when a ``--config`` file's ``model`` (or ``--model``) names
    :class:`~glaciermap.tasks.classification.SplitImageClassificationTask` as its ``class_path``.

    Args:
        argv: The command's arguments.

    Returns:
        True for the classification task.
    """
    import yaml

    for value in _option_values(argv, "--model"):
        if value.endswith("SplitImageClassificationTask"):
            return True
    for value in _option_values(argv, "--config") + _option_values(argv, "-c"):
        try:
            config = yaml.safe_load(Path(value).read_text())
        except (OSError, yaml.YAMLError):
            continue  # LightningCLI reports it
        model = config.get("model") if isinstance(config, dict) else None
        if isinstance(model, dict) and str(model.get("class_path", "")).endswith(
            "SplitImageClassificationTask"
        ):
            return True
    return False


def run(argv: Sequence[str]) -> int:
    """Run LightningCLI with ``argv`` (starting with the sub-command); returns the exit status."""
    check_checkpoint_arguments(argv)
    # LightningCLI warns when given the process's own arguments explicitly.
    args = None if list(argv) == sys.argv[1:] else list(argv)
    if argv and argv[0] != "predict" and is_classification(argv):
        from glaciermap.datamodules.split_images import SplitImageDataModule
        from glaciermap.tasks.classification import SplitImageClassificationTask

        LightningCLI(
            SplitImageClassificationTask,
            SplitImageDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            args=args,
        )
        return 0
    if argv and argv[0] == "predict":
        from glaciermap.datamodules.mapping import SceneMappingDataModule
        from glaciermap.tasks.mapping import SceneMappingTask

        LightningCLI(
            SceneMappingTask,
            SceneMappingDataModule,
            seed_everything_default=0,
            save_config_callback=None,
            args=args,
        )
        return 0
    GlaciermapCLI(
        SegmentationTask,
        SceneDataModule,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        args=args,
        auto_configure_optimizers=False,
    )
    return 0
