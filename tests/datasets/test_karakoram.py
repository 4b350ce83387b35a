"""KarakoramZY3: ZY-3 multispectral + LST + slope + labels on one 2 m grid, the U-Net+CBAM input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glaciermap.datasets.karakoram import KARAKORAM_BANDS, KarakoramZY3
from glaciermap.errors import InputError
from glaciermap.models.unet_cbam import DEFAULT_MODALITIES
from glaciermap.transforms.normalisation import ModalityStats, NormStats
from tests.data.karakoram import LEFT, RES, TOP, write

SIZE = 48


def make_folder(root: Path, *, lst_celsius: bool = False, slope_res: float = RES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = np.arange(SIZE, dtype=np.float32)[None, :, None]
    ms = np.broadcast_to(
        0.1 * np.arange(1, 5, dtype=np.float32)[:, None, None] + 0.001 * rows, (4, SIZE, SIZE)
    )
    write(root / "ZY3_MUX_20200812_ms.tif", np.ascontiguousarray(ms), nodata=-9999.0)
    lst = np.full((1, SIZE, SIZE), 268.5, dtype=np.float32)
    lst[0, :4, :4] = -9999.0
    if lst_celsius:
        lst[lst > 0] -= 273.15
    write(root / "LC08_20200810_lst.tif", lst, nodata=-9999.0)
    write(
        root / "zy3dem_slope.tif",
        np.full((1, SIZE, SIZE), 25.0, dtype=np.float32),
        res=slope_res,
        nodata=-9999.0,
    )
    labels = np.zeros((1, SIZE, SIZE), dtype=np.uint8)
    labels[0, :, 16:32] = 1
    labels[0, :, 32:] = 2
    labels[0, 40:, :8] = 255
    write(root / "labels.tif", labels, nodata=255)
    return root


def query(size: int = 32) -> tuple[slice, slice]:
    return slice(LEFT, LEFT + size * RES), slice(TOP - size * RES, TOP)


def test_sample_contract_and_values(tmp_path: Path) -> None:
    ds = KarakoramZY3(make_folder(tmp_path / "k"))
    assert dict(ds.modalities()) == DEFAULT_MODALITIES and ds.num_channels == 6
    sample = ds[(slice(LEFT, LEFT + 48 * RES), slice(TOP - 48 * RES, TOP))]
    image, mask = sample["image"], sample["mask"]
    assert image.shape == (6, 48, 48) and image.dtype == torch.float32
    assert mask.shape == (48, 48) and mask.dtype == torch.int64
    assert image[0, 10, 20].item() == pytest.approx(0.1 + 0.01)
    assert image[3, 0, 20].item() == pytest.approx(0.4)
    assert image[4, 10, 10].item() == pytest.approx(268.5) and image[5, 10, 10].item() == 25.0
    assert (image[:, :4, :4] == 0).all() and (mask[:4, :4] == 255).all()  # LST nodata -> ignored
    assert mask[10, 10] == 0 and mask[10, 20] == 1 and mask[10, 40] == 2 and (mask[40:, :8] == 255).all()
    assert sample["crs"].to_epsg() == 32643
    assert sample["bounds"].tolist() == [LEFT, TOP - 96.0, LEFT + 96.0, TOP]


def test_per_modality_normalised_and_binary(tmp_path: Path) -> None:
    stats = {
        m: ModalityStats(
            bands=b,
            mean=(1.0,) * len(b),
            std=(2.0,) * len(b),
            min=(0.0,) * len(b),
            max=(1.0,) * len(b),
            count=1,
        )
        for m, b in KARAKORAM_BANDS.items()
    }
    ds = KarakoramZY3(
        make_folder(tmp_path / "k"), target="binary", norm=NormStats(stats), image_format="per_modality"
    )
    sample = ds[query(48)]
    assert list(sample["image"]) == ["optical", "thermal", "dem"]
    assert sample["image"]["dem"][0, 10, 10].item() == pytest.approx((25.0 - 1.0) / 2.0)
    assert int(sample["mask"][10, 20]) == 1 and int(sample["mask"][10, 40]) == 1


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"lst.tif has values in \[-4.6\d*, -4.6\d*\]; expected K \(not degrees Celsius\)"
    ):
        KarakoramZY3(make_folder(tmp_path / "c", lst_celsius=True))
    with pytest.raises(InputError, match="every raster of a scene must share one grid"):
        KarakoramZY3(make_folder(tmp_path / "g", slope_res=4.0))
    folder = make_folder(tmp_path / "m")
    (folder / "zy3dem_slope.tif").unlink()
    with pytest.raises(
        InputError, match=r"no file matches '\*slope.tif'; expected one GeoTIFF with 1 band slope"
    ):
        KarakoramZY3(folder)
    (folder / "labels.tif").unlink()
    make_folder(tmp_path / "n")
    (tmp_path / "n" / "labels.tif").unlink()
    assert "mask" not in KarakoramZY3(tmp_path / "n", target=None)[query()]
    with pytest.raises(InputError, match=r"no file matches '\*labels.tif'"):
        KarakoramZY3(tmp_path / "n")


def test_feeds_the_unet_cbam_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch import Trainer
    from torch.utils.data import DataLoader

    from glaciermap.datasets.scene import collate_samples
    from glaciermap.tasks.segmentation import SegmentationTask

    monkeypatch.chdir(tmp_path)
    ds = KarakoramZY3(make_folder(tmp_path / "k"))
    queries = [
        (slice(LEFT + c * RES, LEFT + (c + 16) * RES), slice(TOP - 16 * RES, TOP)) for c in (0, 16, 32)
    ]
    loader = DataLoader([ds[q] for q in queries], batch_size=3, collate_fn=collate_samples)
    task = SegmentationTask(
        model="unet_cbam",
        model_kwargs={"filters": 8, "depth": 2},
        modalities=("optical", "thermal", "dem"),
        bands={"optical": ["blue", "green", "red", "nir"], "dem": ["slope"]},
        target="classes",
        loss="dice",
        augment=False,
        photometric=False,
    )
    trainer = Trainer(fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(task, train_dataloaders=loader)
    loss = float(trainer.callback_metrics["train/loss"])
    assert 0.0 < loss <= 1.0  # Dice loss over three classes
