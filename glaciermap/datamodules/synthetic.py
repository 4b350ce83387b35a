"""A scene data module over the synthetic glacier world, generated on first use.

Scenes are named ``"PRESET:SEED"`` (e.g. ``"karakoram:1"``); :meth:`SyntheticDataModule.prepare_data` writes
each missing one to ``ROOT/PRESET-sSEED-HxW`` with :func:`glaciermap.synthetic.generate.generate_scene` (into a
temporary folder renamed when complete, so an interrupted run never leaves a scene that looks finished), then
everything else is :class:`~glaciermap.datamodules.scenes.SceneDataModule`. Configs that use it run anywhere
without a download step.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glaciermap.datamodules.scenes import SceneDataModule
from glaciermap.datasets.scene_folder import is_scene_folder
from glaciermap.errors import ConfigError


def parse_spec(spec: str) -> tuple[str, int]:
    """Split a ``"PRESET:SEED"`` scene name.

    Args:
        spec: Preset name and non-negative integer seed separated by a colon.

    Returns:
        ``(preset, seed)``.

    Raises:
        ConfigError: If the name is not of that form or the preset is unknown.
    """
    from glaciermap.synthetic.presets import PRESETS

    preset, sep, seed = spec.partition(":")
    if not sep or not seed.isdigit():
        raise ConfigError(f"synthetic scene {spec!r}: expected 'PRESET:SEED', e.g. 'karakoram:1'")
    if preset not in PRESETS:
        raise ConfigError(
            f"synthetic scene {spec!r}: unknown preset {preset!r}; expected one of {', '.join(PRESETS)}"
        )
    return preset, int(seed)


class SyntheticDataModule(SceneDataModule):
    """:class:`SceneDataModule` whose scenes are synthetic-world scenes generated on demand.

    Args:
        root: Folder that caches the generated scenes.
        train: Training scenes as ``"PRESET:SEED"``.
        val: Validation scenes.
        test: Test scenes (held out: seeds not used for training).
        predict: Prediction scenes.
        scene_size: ``(height, width)`` of every scene in pixels.
        pixel_size: Pixel size in metres.
        **kwargs: Every other :class:`SceneDataModule` argument (modalities, target, patch_size, ...).

    Raises:
        ConfigError: If a scene name is malformed or the same scene is in the training and a held-out split.
    """

    def __init__(
        self,
        root: str = "data/synthetic",
        train: Sequence[str] = ("karakoram:1", "karakoram:2", "svalbard:3", "alaska:4"),
        val: Sequence[str] = ("karakoram:101",),
        test: Sequence[str] = ("karakoram:201",),
        predict: Sequence[str] = (),
        scene_size: tuple[int, int] = (512, 512),
        pixel_size: float = 10.0,
        **kwargs: Any,
    ) -> None:
        self.root = Path(root)
        self.scene_size = (int(scene_size[0]), int(scene_size[1]))
        self.pixel_size = float(pixel_size)
        self.specs: dict[str, list[tuple[str, int]]] = {
            "train": [parse_spec(s) for s in train],
            "val": [parse_spec(s) for s in val],
            "test": [parse_spec(s) for s in test],
            "predict": [parse_spec(s) for s in predict],
        }
        leaked = set(self.specs["train"]) & (set(self.specs["val"]) | set(self.specs["test"]))
        if leaked:
            names = ", ".join(f"{p}:{s}" for p, s in sorted(leaked))
            raise ConfigError(f"synthetic scenes {names} are both training and held-out scenes")
        folders = {split: [self.folder(p, s) for p, s in specs] for split, specs in self.specs.items()}
        super().__init__(
            train_scenes=folders["train"],
            val_scenes=folders["val"],
            test_scenes=folders["test"],
            predict_scenes=folders["predict"],
            **kwargs,
        )

    @property
    def region_codes(self) -> tuple[str, ...]:
        """Known region codes: as given, else the sorted codes of the training presets (no scene is read)."""
        if self._region_codes is None:
            from glaciermap.synthetic.presets import PRESETS

            self._region_codes = tuple(sorted({PRESETS[p].region_code for p, _ in self.specs["train"]}))
        return self._region_codes

    def folder(self, preset: str, seed: int) -> Path:
        """The cache folder of one scene."""
        h, w = self.scene_size
        return self.root / f"{preset}-s{seed}-{h}x{w}"

    def prepare_data(self) -> None:
        """Generate every scene that is not in the cache yet (called once per node by Lightning)."""
        from glaciermap.synthetic.generate import generate_scene

        for preset, seed in sorted({spec for specs in self.specs.values() for spec in specs}):
            final = self.folder(preset, seed)
            if is_scene_folder(final):
                continue
            tmp = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
            try:
                generate_scene(
                    tmp, preset=preset, size=self.scene_size, seed=seed, pixel_size=self.pixel_size
                )
                if final.exists():  # an incomplete folder from elsewhere: replace it
                    shutil.rmtree(final)
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp)
