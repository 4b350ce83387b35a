"""SceneDataModule with the named GlaViTU reference normalisation (reference notes 4.4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from glaciermap.datamodules.scenes import SceneDataModule
from glaciermap.transforms.reference import REFERENCE_MINMAX
from tests.data.scenes import BASE, ROW_STEP, band_values, write_scene

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_reference_norm_values(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "a", modalities=("optical", "dem"))
    dm = SceneDataModule(train_scenes=[folder], val_scenes=[folder], modalities=["optical", "dem"], patch_size=32,
                         batch_size=2, samples_per_epoch=2, norm="glavitu_reference", seed=0, num_workers=0)  # fmt: skip
    stats = dm.norm_stats
    assert stats is not None and stats.method == "reference"  # = min-max without SAR bands
    assert stats.modalities["dem"].max == REFERENCE_MINMAX["dem"][1]
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    lo, hi = REFERENCE_MINMAX["optical"][0][0], REFERENCE_MINMAX["optical"][1][0]
    raw = batch["image"][0, 0, :, 0].double() * (hi - lo) + lo  # undo the reference min-max
    rows = ((raw - 0.1) / 0.01).round()
    assert raw.tolist() == pytest.approx((0.1 + 0.01 * rows).tolist(), abs=1e-6)  # band 0 = 0.1 + 0.01 row
    assert (rows.diff() == 1).all() and 0 <= rows.min() and rows.max() < 64
    assert float(band_values("optical", 64, 64)[0, 0, 0]) == pytest.approx(0.1)


def test_reference_norm_takes_log10_of_sar_backscatter(tmp_path: Path) -> None:
    """SAR scenes hold linear sigma0: log10(x + 1e-6) first, then the published min-max (reference notes 4.4)."""
    folder = write_scene(tmp_path / "a", modalities=("optical", "sar", "sar_cross", "insar"))
    modalities = ["optical", "sar", "sar_cross", "insar"]
    dm = SceneDataModule(train_scenes=[folder], val_scenes=[folder], modalities=modalities, patch_size=32,  # type: ignore[arg-type]
                         batch_size=2, samples_per_epoch=2, norm="glavitu_reference", seed=0, num_workers=0,
                         image_format="per_modality")  # fmt: skip
    assert dm.norm_stats is not None and dm.norm_stats.method == "reference"
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    for modality, key in (("sar", "sar"), ("sar_cross", "cross_pol_sar")):
        (lo, _), (hi, _) = REFERENCE_MINMAX[key]
        got = batch["image"][modality][0, 0, :, 0].double()
        sigma0 = 10 ** (got * (hi - lo) + lo) - 1e-6  # undo log10 and min-max
        rows = ((sigma0 - BASE[modality][0]) / ROW_STEP[modality]).round()
        assert sigma0.tolist() == pytest.approx(
            (BASE[modality][0] + ROW_STEP[modality] * rows).tolist(), rel=1e-4
        )
        assert (rows.diff() == 1).all()
    (lo, _), (hi, _) = REFERENCE_MINMAX["insar"]
    coherence = batch["image"]["insar"][0, 0, :, 0].double() * (hi - lo) + lo  # no log10 for coherence
    assert ((coherence - BASE["insar"][0]) / ROW_STEP["insar"]).round().diff().eq(1).all()


@pytest.mark.parametrize(
    "name", ["global", "regional", "finetuning", "region_encoding", "coordinate_encoding"]
)
def test_glavitu_examples_use_reference_minmax(name: str) -> None:
    config = yaml.safe_load((EXAMPLES / f"glavitu_{name}.yaml").read_text())
    assert config["data"]["init_args"]["norm"] == "glavitu_reference"
