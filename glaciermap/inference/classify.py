"""``glaciermap classify``: classify every split-image of a panchromatic scene (GEOCLASS-image v2.0).

The scene is tiled into split-images (:func:`~glaciermap.datasets.split_index.build_split_index`, strip by
strip), each tile is read by a window and classified in batches, so memory does not grow with the scene
beyond one value per tile. Outputs (all written to temporary names and renamed together at the end):

* ``tiles.gpkg``: split-image footprints (scene CRS) with ``class_id``, ``class_name``, ``confidence``
  (largest softmax probability) and ``beta`` (VarioNet's adaptive ResNet-18 weight, GEOCLASS paper Sec. 2.3);
  tiles below ``min_confidence`` get ``class_id`` -1 and ``class_name`` ``"unlabelled"``;
* ``classes.tif``, ``confidence.tif``: COGs on the tile grid (one pixel per split-image, scene CRS, origin at
  the scene's upper-left pixel); nodata (255, NaN) outside the AOI, for invalid tiles, and (classes only) for
  unlabelled tiles;
* ``quicklook.png``: the class map with its legend beside the confidence heat map;
* ``summary.json``: tiles, class counts and areas (km2 = count x tile area), mean confidence, timings,
  CPU threads;
* ``confident_labels.csv`` with ``export_confident``: the confident predictions as a label table (reference
  notes section 9.3), balanced with ``equal``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import torch
from affine import Affine
from torch import nn
from torch.utils.data import DataLoader

from glaciermap.constants import IGNORE_INDEX
from glaciermap.datasets.crevasse_classes import CrevasseClassV1, CrevasseClassV2
from glaciermap.datasets.crevasse_labels import confident_predictions, write_label_table
from glaciermap.datasets.split_images import SplitImageDataset, collate_split_images
from glaciermap.datasets.split_index import build_split_index
from glaciermap.errors import InputError
from glaciermap.inference.writers import StreamingRaster
from glaciermap.io import atomic_outputs, load_error_detail, open_raster, write_json, write_vector
from glaciermap.models.pretrained import build_classifier, load_pretrained_classifier
from glaciermap.models.vario import VarioNet
from glaciermap.models.weights import WEIGHTS, list_weights

OUTPUT_NAMES = ("tiles.gpkg", "classes.tif", "confidence.tif", "quicklook.png", "summary.json")
UNLABELLED = "unlabelled"


@dataclass
class Classification:
    """Per-tile results of :func:`classify_scene`.

    Attributes:
        index: Split-image index (GeoDataFrame, scene CRS) with ``class_id``, ``class_name``, ``confidence``
            and, for VarioNet, ``beta``.
        class_names: Class names of the scheme (index = class id).
        tile_size: (rows, columns) pixels of a split-image.
        transform: Scene affine transform.
        shape: Scene (rows, columns).
        timings: Seconds per stage (``index``, ``classify``).
        threads: Intra-op CPU threads the classification ran with.
    """

    index: gpd.GeoDataFrame
    class_names: list[str]
    tile_size: tuple[int, int]
    transform: Affine
    shape: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)
    threads: int = 1


_EXPECTED = (
    "expected a .ckpt of the split-image classification task, its .safetensors export or a registered name"
)


def _read_checkpoint(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Classifier and metadata of a ``.ckpt`` of the classification task (read without unpickling code)."""
    if not path.is_file():
        raise InputError(f"--checkpoint {path}: file not found; {_EXPECTED}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling, zip and torch errors alike
        raise InputError(
            f"--checkpoint {path}: not readable ({load_error_detail(err)}); {_EXPECTED}"
        ) from None
    block = ckpt.get("glaciermap") if isinstance(ckpt, dict) else None
    if not isinstance(block, dict) or "state_dict" not in ckpt:
        raise InputError(f"--checkpoint {path}: no glaciermap metadata; {_EXPECTED}")
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    return build_classifier(state, block, f"--checkpoint {path}"), block


def load_classifier(checkpoint: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """A classifier and its metadata from a checkpoint, a ``.safetensors`` export or a registered name.

    Args:
        checkpoint: ``.ckpt`` written by
            :class:`~glaciermap.tasks.classification.SplitImageClassificationTask`, its export by
            :func:`~glaciermap.models.hub.export_weights`, or the name of registered classifier weights
            (``crevasse_varionet_synthetic``, see ``glaciermap models``; sha256-checked).

    Returns:
        The model (eval mode) and the checkpoint's ``glaciermap`` metadata.

    Raises:
        InputError: If the file is missing, unreadable, or not a split-image classifier.
    """
    path = Path(checkpoint)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        record = WEIGHTS.get(str(checkpoint))
        if record is None or record.kind != "classifier":
            names = ", ".join(w.name for w in list_weights(kind="classifier"))
            what = "segmentation weights" if record is not None else "no such file or registered weights"
            raise InputError(f"--checkpoint {checkpoint}: {what}; registered classifiers: {names}")
        return record.load_classifier()
    if path.suffix == ".safetensors":
        return load_pretrained_classifier(path)
    return _read_checkpoint(path)


@contextmanager
def intra_op_threads(threads: int) -> Iterator[int]:
    """Run a block with ``threads`` intra-op CPU threads in torch (0: leave torch's default), then restore.

    Split-images are small (201 x 268 px, a narrow ResNet-18 on 64 x 86 px), so each torch operation is
    short and a thread team waits at a barrier after every one. On cores shared with other jobs a waiting
    worker is descheduled and every operation stalls for a time slice: with two threads on two cores under
    a load of 11 the classification ran at 4-6 split-images/s against 75 with one thread, the same in a 120-
    and a 520-tile scene (benchmarks/RESULTS.md). One thread is therefore the default of ``classify``.

    Args:
        threads: Threads for ``torch.set_num_threads``; 0 keeps the current setting.

    Yields:
        The number of threads in effect.
    """
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _predict(
    model: nn.Module, dataset: SplitImageDataset, batch_size: int, threads: int
) -> dict[str, npt.NDArray[Any]]:
    """Class id, confidence and (VarioNet) beta of every tile, in dataset order."""
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_split_images)
    out: dict[str, list[npt.NDArray[Any]]] = {"class_id": [], "confidence": [], "beta": []}
    with intra_op_threads(threads), torch.inference_mode():
        for batch in loader:
            if isinstance(model, VarioNet):
                details = model.forward_details(batch["image"], batch["vario"])
                logits = details["logits"]
                out["beta"].append(details["beta"].flatten().numpy())
            else:
                logits = model(batch["image"], batch["vario"])
            conf, label = logits.softmax(dim=1).max(dim=1)
            out["class_id"].append(label.numpy().astype(np.int64))
            out["confidence"].append(conf.numpy().astype(np.float64))
    return {k: np.concatenate(v) for k, v in out.items() if v}


def classify_scene(
    checkpoint: str | os.PathLike[str],
    image: str | os.PathLike[str],
    aoi: str | os.PathLike[str] | None = None,
    min_confidence: float = 0.0,
    batch_size: int = 16,
    threads: int = 1,
) -> Classification:
    """Classify every split-image of a scene (module docstring).

    Args:
        checkpoint: Classifier checkpoint (:func:`load_classifier`).
        image: Single-band panchromatic raster.
        aoi: Optional area-of-interest polygons (any CRS).
        min_confidence: Tiles with a lower confidence (0 ... 1) are left unlabelled (class id -1).
        batch_size: Split-images per forward pass.
        threads: Intra-op CPU threads during classification (:func:`intra_op_threads`; 0: torch's
            default, one per core). One is fastest on shared cores; give more on a dedicated machine.

    Returns:
        The per-tile results.

    Raises:
        InputError: For a bad checkpoint, raster or AOI, a confidence outside [0, 1] or negative threads.
    """
    if not 0.0 <= min_confidence <= 1.0:
        raise InputError(f"--min-confidence {min_confidence}: expected a value in [0, 1]")
    if threads < 0:
        raise InputError(f"--threads {threads}: expected 0 (torch's default) or a positive number")
    model, meta = load_classifier(checkpoint)
    vario = meta.get("vario", {})
    tile_size = tuple(int(v) for v in vario.get("tile_size", (201, 268)))
    t0 = time.perf_counter()
    index = build_split_index(image, aoi=aoi, tile_size=tile_size)
    t1 = time.perf_counter()
    dataset = SplitImageDataset(
        image,
        index,
        scheme=CrevasseClassV1 if meta.get("class_scheme") == "v1" else CrevasseClassV2,
        intensity=vario.get("intensity", "uint8"),
        vario_mode=vario.get("vario_mode", "float"),
        lag_threshold=float(vario.get("lag_threshold", 0.8)),
    )
    pred = _predict(model, dataset, batch_size, threads)
    t2 = time.perf_counter()
    frame = dataset.index.copy()
    names = list(meta["class_names"])
    keep = pred["confidence"] >= min_confidence
    frame["class_id"] = np.where(keep, pred["class_id"], -1)
    frame["class_name"] = [names[c] if c >= 0 else UNLABELLED for c in frame["class_id"]]
    frame["confidence"] = pred["confidence"]
    if "beta" in pred:
        frame["beta"] = pred["beta"].astype(np.float64)
    with open_raster(Path(image), "panchromatic band") as src:
        transform, shape = src.transform, (src.height, src.width)
    timings = {"index_s": t1 - t0, "classify_s": t2 - t1}
    used = threads or torch.get_num_threads()
    return Classification(frame, names, (tile_size[0], tile_size[1]), transform, shape, timings, used)


def tile_grid(result: Classification) -> tuple[Affine, tuple[int, int]]:
    """Transform and shape of the tile grid: one pixel per split-image, origin at the scene's first pixel."""
    th, tw = result.tile_size
    return result.transform * Affine.scale(tw, th), (result.shape[0] // th, result.shape[1] // tw)


def _grids(result: Classification) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """Class (uint8, nodata 255) and confidence (float32, nodata NaN) tile grids."""
    _, (rows, cols) = tile_grid(result)
    classes = np.full((rows, cols), IGNORE_INDEX, dtype=np.uint8)
    conf = np.full((rows, cols), np.nan, dtype=np.float32)
    frame = result.index
    r = (frame["row"].to_numpy() // result.tile_size[0]).astype(np.int64)
    c = (frame["col"].to_numpy() // result.tile_size[1]).astype(np.int64)
    ids = frame["class_id"].to_numpy()
    classes[r[ids >= 0], c[ids >= 0]] = ids[ids >= 0]
    conf[r, c] = frame["confidence"].to_numpy()
    return classes, conf


def _write_grid(path: Path, data: npt.NDArray[Any], result: Classification, nodata: float, **kw: Any) -> None:
    transform, (rows, cols) = tile_grid(result)
    crs = result.index.crs
    scratch = path.with_name(path.stem + ".scratch.tif")
    try:
        with StreamingRaster(
            scratch, crs=crs, transform=transform, height=rows, width=cols, count=1,
            dtype=str(data.dtype), nodata=nodata, **kw,
        ) as sink:  # fmt: skip
            sink.write(0, data[None])
            sink.to_cog(path, resampling="NEAREST" if data.dtype == np.uint8 else "AVERAGE")
    finally:
        scratch.unlink(missing_ok=True)


def _quicklook(
    path: Path, result: Classification, classes: npt.NDArray[np.uint8], conf: npt.NDArray[Any]
) -> None:
    """Class map with legend beside the confidence heat map (reversed Spectral, reference section 9.4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    scheme = CrevasseClassV1 if len(result.class_names) == len(CrevasseClassV1) else CrevasseClassV2
    colours = [scheme(i).colour for i in range(len(result.class_names))]
    shown = np.ma.masked_equal(classes, IGNORE_INDEX)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 6))
    ax1.imshow(
        shown, cmap=ListedColormap(colours), vmin=-0.5, vmax=len(colours) - 0.5, interpolation="nearest"
    )
    ax1.set_title("class")
    handles = [Patch(color=col, label=name) for col, name in zip(colours, result.class_names, strict=True)]
    ax1.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    im = ax2.imshow(np.ma.masked_invalid(conf), cmap="Spectral_r", vmin=0, vmax=1, interpolation="nearest")
    ax2.set_title("confidence")
    fig.colorbar(im, ax=ax2, fraction=0.046)
    for ax in (ax1, ax2):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def summarise(result: Classification) -> dict[str, Any]:
    """Tile count, per-class counts and areas (km2 = count x tile area), mean confidence, timings.

    Areas assume a projected CRS in metres (split-images are cut from UTM / polar stereographic scenes).
    """
    th, tw = result.tile_size
    tile_km2 = abs(result.transform.determinant) * th * tw / 1e6
    ids = result.index["class_id"].to_numpy()
    counts = {name: int((ids == k).sum()) for k, name in enumerate(result.class_names)}
    summary: dict[str, Any] = {
        "tiles": len(ids),
        "unlabelled": int((ids < 0).sum()),
        "tile_area_km2": tile_km2,
        "class_counts": counts,
        "class_area_km2": {k: v * tile_km2 for k, v in counts.items()},
        "mean_confidence": float(result.index["confidence"].mean()),
        "timings_s": dict(result.timings),
        "threads": result.threads,
    }
    if "beta" in result.index:
        summary["mean_beta"] = float(result.index["beta"].mean())
    return summary


def write_classification(
    result: Classification,
    out: str | os.PathLike[str],
    export_confident: float | None = None,
    equal: bool = False,
) -> dict[str, Any]:
    """Write the outputs of :func:`classify_scene` into ``out`` (module docstring), all or none.

    Args:
        result: Per-tile results.
        out: Output folder.
        export_confident: Also write ``confident_labels.csv``: tiles with confidence above this value.
        equal: Balance the exported table (the smallest class's size per class).

    Returns:
        The summary (also written as ``summary.json``).

    Raises:
        InputError: For an export threshold outside [0, 1).
    """
    folder = Path(out)
    t0 = time.perf_counter()
    confident = None
    if export_confident is not None:
        pred = result.index[["tile_id", "class_id", "confidence"]].rename(columns={"class_id": "label"})
        confident = confident_predictions(pred[pred["label"] >= 0], export_confident, equal=equal)
    classes, conf = _grids(result)
    summary = summarise(result)
    names = [folder / n for n in OUTPUT_NAMES]
    with atomic_outputs(*names) as (gpkg, cls_tif, conf_tif, png, js):
        write_vector(result.index, gpkg, "split_images")
        _write_grid(cls_tif, classes, result, IGNORE_INDEX, descriptions=["class"])
        _write_grid(conf_tif, conf, result, float("nan"), descriptions=["confidence"])
        _quicklook(png, result, classes, conf)
        summary["timings_s"]["write_s"] = time.perf_counter() - t0
        if confident is not None:
            scheme = CrevasseClassV1 if len(result.class_names) == len(CrevasseClassV1) else CrevasseClassV2
            write_label_table(confident, folder / "confident_labels.csv", scheme)
            summary["confident_exported"] = len(confident)
        write_json(js, summary)
    return summary
