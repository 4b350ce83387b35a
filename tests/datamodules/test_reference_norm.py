"""SceneDataModule with the named GlaViTU reference normalisation (reference notes 4.4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from glaciermap.datamodules.scenes import SceneDataModule
from glaciermap.errors import ConfigError
from glaciermap.transforms.reference import REFERENCE_MINMAX
from tests.data.scenes import band_values, write_scene

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_reference_norm_values(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "a", modalities=("optical", "dem"))
    dm = SceneDataModule(train_scenes=[folder], val_scenes=[folder], modalities=["optical", "dem"], patch_size=32,
                         batch_size=2, samples_per_epoch=2, norm="glavitu_reference", seed=0, num_workers=0)  # fmt: skip
    stats = dm.norm_stats
    assert stats is not None and stats.method == "minmax"
    assert stats.modalities["dem"].max == REFERENCE_MINMAX["dem"][1]
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    lo, hi = REFERENCE_MINMAX["optical"][0][0], REFERENCE_MINMAX["optical"][1][0]
    raw = batch["image"][0, 0, :, 0].double() * (hi - lo) + lo  # undo the reference min-max
    rows = ((raw - 0.1) / 0.01).round()
    assert raw.tolist() == pytest.approx((0.1 + 0.01 * rows).tolist(), abs=1e-6)  # band 0 = 0.1 + 0.01 row
    assert (rows.diff() == 1).all() and 0 <= rows.min() and rows.max() < 64
    assert float(band_values("optical", 64, 64)[0, 0, 0]) == pytest.approx(0.1)


def test_reference_norm_refuses_sar(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "a", modalities=("optical", "sar"))
    dm = SceneDataModule(
        train_scenes=[folder], modalities=["optical", "sar"], patch_size=32, norm="glavitu_reference"
    )
    with pytest.raises(ConfigError, match="log10 step"):
        _ = dm.norm_stats


@pytest.mark.parametrize(
    "name", ["global", "regional", "finetuning", "region_encoding", "coordinate_encoding"]
)
def test_glavitu_examples_use_reference_minmax(name: str) -> None:
    config = yaml.safe_load((EXAMPLES / f"glavitu_{name}.yaml").read_text())
    assert config["data"]["init_args"]["norm"] == "glavitu_reference"
