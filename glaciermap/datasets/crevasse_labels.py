"""Labels of split-images: the label table, the reference's ``.npy`` file, image folders, balanced exports.

Label table (our format): a CSV with at least the columns ``tile_id`` (the split-image index's id) and
``label`` (a class name such as ``parallel_shear`` or ``"Parallel Shear"``, or a class id), and optionally
``confidence`` (0 ... 1; 1 for a human label, the largest softmax probability for a prediction, as in the
reference, section 9.1). :func:`read_label_table` checks every name and raises one clear error for an
unknown class or a repeated tile.

Interoperability with GEOCLASS-image (reference notes section 9):

* :func:`read_reference_npy` reads the reference's tile-dataset ``.npy`` (an object array ``[info, coords]``,
  ``coords`` ``N x 7``: row, col, easting, northing of the upper-left corner, label, confidence, image
  index) **without unpickling arbitrary objects**: only numeric numpy arrays, numbers, strings, lists,
  tuples and dicts are rebuilt; any other pickled class raises an error. A plain numeric ``N x 7`` array is
  read as well.
* :func:`export_image_folder` / :func:`read_image_folder_names`: the image-folder layout
  ``<root>/<class index>/<file>.png`` (8-bit grayscale, one sub-folder per class; section 9.2). Our file names
  are ``<class>_<tile id>_<image index>.png`` (separated; the reference's unseparated
  ``<class><tile index><image digit>`` is read by :func:`parse_legacy_name`).
* :func:`equal_dataset` (same count per class, highest confidence first) and
  :func:`confident_predictions` (predictions above a threshold, optionally balanced; section 9.3, the
  feedback loop of the paper's Fig. 3).
"""

from __future__ import annotations

import io
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

from glaciermap.datasets.crevasse_classes import CrevasseClassV1, CrevasseClassV2
from glaciermap.errors import InputError
from glaciermap.io import atomic_output

Scheme = type[CrevasseClassV2] | type[CrevasseClassV1]
FolderIds = Literal["scheme", "reference"]
"""Sub-folder numbers: the scheme's class ids (0 ... C - 1) or the reference's ``class_enum`` positions."""

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
"""Image files the folder reader accepts (reference notes section 9.2)."""


def read_label_table(
    path: str | os.PathLike[str] | pd.DataFrame, scheme: Scheme = CrevasseClassV2
) -> pd.DataFrame:
    """Read and check a label table (module docstring).

    Args:
        path: CSV file, or a DataFrame with the same columns.
        scheme: Class scheme of the names and ids.

    Returns:
        DataFrame with ``tile_id`` (int64), ``label`` (int64 class id), ``confidence`` (float64, 1.0 where
        the file has none), in file order.

    Raises:
        InputError: For a missing file or column, an unknown class, or a tile listed twice.
    """
    name = "label table" if isinstance(path, pd.DataFrame) else str(path)
    if isinstance(path, pd.DataFrame):
        table = path.copy()
    else:
        p = Path(path)
        if not p.exists():
            raise InputError(f"{p}: file not found (expected a label table CSV with tile_id,label)")
        table = pd.read_csv(p, dtype={"label": str})
    missing = [c for c in ("tile_id", "label") if c not in table.columns]
    if missing:
        raise InputError(
            f"{name}: lacks the column(s) {', '.join(missing)} (expected a CSV with tile_id,label)"
        )
    labels = []
    for i, value in enumerate(table["label"].tolist()):
        try:
            labels.append(int(scheme.parse(str(value).strip())))
        except InputError as err:
            raise InputError(f"{name}, row {i + 1}: {err}") from None
    out = pd.DataFrame(
        {
            "tile_id": table["tile_id"].astype(np.int64).to_numpy(),
            "label": np.asarray(labels, dtype=np.int64),
            "confidence": (
                table["confidence"].astype(np.float64).to_numpy()
                if "confidence" in table
                else np.ones(len(table))
            ),
        }
    )
    repeated = out["tile_id"][out["tile_id"].duplicated()].unique()
    if len(repeated):
        raise InputError(
            f"{name}: tile {int(repeated[0])} is labelled more than once (expected one row per tile)"
        )
    return out


def write_label_table(
    table: pd.DataFrame, path: str | os.PathLike[str], scheme: Scheme = CrevasseClassV2
) -> Path:
    """Write a label table with class names (atomic).

    Args:
        table: Columns ``tile_id``, ``label`` (ids) and optionally ``confidence``.
        path: Output CSV.
        scheme: Class scheme of the ids.

    Returns:
        The path.
    """
    out = pd.DataFrame({"tile_id": table["tile_id"].astype(np.int64)})
    out["label"] = [scheme(int(v)).name.lower() for v in table["label"]]
    if "confidence" in table:
        out["confidence"] = table["confidence"].astype(np.float64).round(6)
    with atomic_output(path) as tmp:
        out.to_csv(tmp, index=False)
    return Path(path)


@dataclass
class ReferenceDataset:
    """The content of a reference tile-dataset ``.npy`` (reference notes section 9.1).

    Attributes:
        coords: ``(N, 7)`` float64: row and col of the upper-left pixel, easting and northing of the
            upper-left corner, label (-1 unlabelled), confidence (0 unlabelled, 1 human), image index.
        info: The info dict (file names, window size, class enumeration, ...); empty for a plain array.
    """

    coords: npt.NDArray[np.float64]
    info: dict[str, Any] = field(default_factory=dict)

    def label_table(self, image_index: int | None = None) -> pd.DataFrame:
        """Labelled rows as ``row, col, label, confidence, image_index`` (label -1 rows dropped).

        Args:
            image_index: Keep only the tiles of this source image.

        Returns:
            DataFrame with int64 ``row``, ``col``, ``label``, ``image_index`` and float ``confidence``.
        """
        c = self.coords
        keep = c[:, 4] >= 0
        if image_index is not None:
            keep &= c[:, 6] == image_index
        c = c[keep]
        return pd.DataFrame(
            {
                "row": c[:, 0].astype(np.int64),
                "col": c[:, 1].astype(np.int64),
                "label": c[:, 4].astype(np.int64),
                "confidence": c[:, 5],
                "image_index": c[:, 6].astype(np.int64),
            }
        )


def reference_to_label_table(
    dataset: ReferenceDataset, index: pd.DataFrame, image_index: int = 0, scheme: Scheme = CrevasseClassV2
) -> pd.DataFrame:
    """Join the labelled rows of a reference ``.npy`` to a split-image index by upper-left pixel.

    The reference's labels are positions in its own ``class_enum`` (``info["class_enumeration"]`` or the
    13-name v2.0 list); they are translated to ``scheme`` by name.

    Args:
        dataset: From :func:`read_reference_npy`.
        index: Split-image index of the same raster (``tile_id``, ``row``, ``col``).
        image_index: Which of the reference's source images the index belongs to.
        scheme: Target class scheme.

    Returns:
        Label table (``tile_id``, ``label``, ``confidence``) of the tiles present in both.

    Raises:
        InputError: For a reference class with no counterpart in ``scheme``.
    """
    from glaciermap.datasets.crevasse_classes import REFERENCE_CLASS_ENUM_V2

    names = list(
        dataset.info.get("class_enumeration") or dataset.info.get("class_enum") or REFERENCE_CLASS_ENUM_V2
    )
    rows = dataset.label_table(image_index)
    ids = []
    for value in rows["label"].tolist():
        if not 0 <= value < len(names):
            raise InputError(f"reference label {value}: outside its class list of {len(names)} names")
        ids.append(int(scheme.parse(str(names[value]))))
    rows = rows.assign(label=np.asarray(ids, dtype=np.int64))
    merged = index[["tile_id", "row", "col"]].merge(rows, on=["row", "col"], how="inner")
    return merged[["tile_id", "label", "confidence"]].reset_index(drop=True)


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    (module, name): getattr(_multiarray, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
}
_SAFE_GLOBALS[("numpy", "ndarray")] = np.ndarray
_SAFE_GLOBALS[("numpy", "dtype")] = np.dtype


class _NumericUnpickler(pickle.Unpickler):
    """Rebuilds only numpy arrays of plain dtypes and builtin containers; refuses every other class."""

    def find_class(self, module: str, name: str) -> Any:
        found = _SAFE_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return found


def read_reference_npy(path: str | os.PathLike[str]) -> ReferenceDataset:
    """Read the reference's tile-dataset ``.npy`` without loading pickled objects (module docstring).

    Args:
        path: ``<config>_<N>_(201,268)_split.npy``, a ``labeled_epoch_k.npy`` prediction file, or a numeric
            ``N x 7`` array.

    Returns:
        The coordinates table and the info dict.

    Raises:
        InputError: For a missing or unreadable file, pickled classes other than numeric arrays and plain
            containers, or a table that is not ``N x 7``.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found (expected a GEOCLASS tile-dataset .npy)")
    info: dict[str, Any] = {}
    try:
        array = np.load(p, allow_pickle=False)
        coords = np.asarray(array, dtype=np.float64)
    except ValueError:
        raw = p.read_bytes()
        with io.BytesIO(raw) as stream:
            version = np.lib.format.read_magic(stream)
            header = (
                np.lib.format.read_array_header_1_0(stream)
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0(stream)
            )
            if header[2] != np.dtype(object):
                raise InputError(
                    f"{p}: unexpected array layout (expected a GEOCLASS tile-dataset .npy)"
                ) from None
            try:
                obj = _NumericUnpickler(stream).load()
            except (pickle.UnpicklingError, EOFError, AttributeError, TypeError) as err:
                raise InputError(
                    f"{p}: holds pickled objects that are not numeric arrays ({err}; expected a GEOCLASS "
                    "tile-dataset .npy)"
                ) from None
        items = list(np.asarray(obj, dtype=object).ravel())
        if len(items) != 2 or not isinstance(items[0], Mapping):
            raise InputError(
                f"{p}: expected the two elements [info dict, coordinates] of a GEOCLASS .npy"
            ) from None
        info = dict(items[0])
        coords = np.asarray(items[1], dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 7:
        raise InputError(f"{p}: coordinates of shape {coords.shape} (expected N x 7)")
    return ReferenceDataset(coords=coords, info=info)


def write_reference_npy(dataset: ReferenceDataset, path: str | os.PathLike[str]) -> Path:
    """Write the reference's ``.npy`` layout (object array ``[info, coords]``; atomic).

    Args:
        dataset: Info dict and ``N x 7`` coordinates.
        path: Output ``.npy``.

    Returns:
        The path.
    """
    array = np.empty(2, dtype=object)
    array[0], array[1] = dict(dataset.info), np.asarray(dataset.coords, dtype=np.float64)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=True)
    return Path(path)


_OUR_NAME = re.compile(r"^(\d+)_(\d+)_(\d+)$")


def image_file_name(label: int, tile_id: int, image_index: int = 0) -> str:
    """Our separated file name ``<class>_<tile id>_<image index>.png``."""
    return f"{label}_{tile_id}_{image_index}.png"


def parse_file_name(name: str) -> tuple[int, int, int] | None:
    """``(class, tile id, image index)`` from our separated name, or ``None`` if it is not one."""
    m = _OUR_NAME.match(Path(name).stem)
    return None if m is None else (int(m.group(1)), int(m.group(2)), int(m.group(3)))


def parse_legacy_name(name: str, folder_label: int) -> tuple[int, int]:
    """``(tile index, GeoTIFF digit)`` from the reference's unseparated ``<class><tile index><digit>`` name.

    The class prefix is known from the folder (reference notes section 9.2 and 14.15).

    Args:
        name: File name such as ``312340.png``.
        folder_label: The class number of the folder it sits in.

    Returns:
        Tile index and image digit.

    Raises:
        InputError: If the name does not start with the folder's class number followed by digits.
    """
    stem = Path(name).stem
    prefix = str(folder_label)
    if not stem.isdigit() or not stem.startswith(prefix) or len(stem) < len(prefix) + 2:
        raise InputError(
            f"{name}: not a reference image name (expected <class {prefix}><tile index><one-digit image index>)"
        )
    return int(stem[len(prefix) : -1]), int(stem[-1])


def export_image_folder(
    images: Mapping[int, npt.NDArray[np.uint8]] | Any,
    labels: pd.DataFrame,
    root: str | os.PathLike[str],
    scheme: Scheme = CrevasseClassV2,
    folder_ids: FolderIds = "scheme",
    image_index: int = 0,
) -> int:
    """Write labelled split-images as 8-bit grayscale PNGs in one sub-folder per class (section 9.2).

    Args:
        images: ``tile_id -> (H, W) uint8`` tile (a mapping, or any object with ``uint8_tile(tile_id)``, such
            as :class:`~glaciermap.datasets.split_images.SplitImageDataset`).
        labels: Label table (``tile_id``, ``label`` ids).
        root: Output folder (``<root>/<class>/<class>_<tile>_<image>.png``).
        scheme: Class scheme of the ids.
        folder_ids: Sub-folder numbers: ``"scheme"`` ids or ``"reference"`` ``class_enum`` positions.
        image_index: Index of the source image, the last part of the file names.

    Returns:
        Number of files written.
    """
    from PIL import Image

    out = Path(root)
    n = 0
    for tile_id, label in zip(labels["tile_id"].tolist(), labels["label"].tolist()):
        cls = scheme(int(label))
        folder = out / str(cls.reference_index if folder_ids == "reference" else int(cls))
        folder.mkdir(parents=True, exist_ok=True)
        tile = images[int(tile_id)] if isinstance(images, Mapping) else images.uint8_tile(int(tile_id))
        array = np.asarray(tile, dtype=np.uint8)
        with atomic_output(folder / image_file_name(int(folder.name), int(tile_id), image_index)) as tmp:
            Image.fromarray(array, mode="L").save(tmp, format="PNG")
        n += 1
    return n


def list_image_folder(
    root: str | os.PathLike[str], scheme: Scheme = CrevasseClassV2, folder_ids: FolderIds = "scheme"
) -> pd.DataFrame:
    """List an image folder (section 9.2): one row per image file, sorted by class and name.

    Args:
        root: Folder with one numbered sub-folder per class.
        scheme: Class scheme the numbers refer to.
        folder_ids: How sub-folders are numbered (``"scheme"`` ids or ``"reference"`` positions).

    Returns:
        Columns ``path``, ``label`` (scheme id), ``tile_id`` and ``image_index`` (from the file name, -1 where
        the name is neither ours nor the reference's).

    Raises:
        InputError: For a missing folder, a sub-folder that is not a class number of the scheme, or no image.
    """
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{base}: not a folder (expected one sub-folder per class)")
    rows = []
    for sub in sorted((d for d in base.iterdir() if d.is_dir()), key=lambda d: d.name):
        if not sub.name.isdigit():
            raise InputError(f"{sub}: sub-folder name is not a class number (expected 0, 1, ...)")
        number = int(sub.name)
        cls = scheme.from_reference_index(number) if folder_ids == "reference" else scheme.parse(number)  # type: ignore[union-attr]
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            parsed = parse_file_name(f.name)
            if parsed is not None and parsed[0] == number:
                tile_id, image_index = parsed[1], parsed[2]
            else:
                try:
                    tile_id, image_index = parse_legacy_name(f.name, number)
                except InputError:
                    tile_id, image_index = -1, -1
            rows.append((str(f), int(cls), tile_id, image_index))
    if not rows:
        raise InputError(f"{base}: holds no png/tif image in numbered class sub-folders")
    return pd.DataFrame(rows, columns=["path", "label", "tile_id", "image_index"])


def equal_dataset(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Balance a label table: the same number of rows per class (reference notes section 9.3).

    ``m`` is the size of the smallest non-empty class; every class keeps its ``m`` most confident rows
    (ties, and tables without ``confidence``, in a seeded random order). Empty classes stay empty (the
    reference can pick ``m = 0`` there, section 14.14).

    Args:
        table: Label table with ``label`` and optionally ``confidence``.
        seed: Seed of the tie-breaking order.

    Returns:
        The kept rows, sorted by class, then confidence (descending).
    """
    if table.empty:
        return table.copy()
    rng = np.random.default_rng(seed)
    shuffled = table.iloc[rng.permutation(len(table))]
    conf = shuffled["confidence"] if "confidence" in shuffled else pd.Series(1.0, index=shuffled.index)
    ordered = shuffled.assign(_conf=conf).sort_values(
        ["label", "_conf"], ascending=[True, False], kind="stable"
    )
    m = int(ordered["label"].value_counts().min())
    return ordered.groupby("label", sort=True).head(m).drop(columns="_conf").reset_index(drop=True)


def confident_predictions(predictions: pd.DataFrame, threshold: float, equal: bool = False) -> pd.DataFrame:
    """Predictions above a confidence threshold as a new label table (reference notes section 9.3).

    Args:
        predictions: ``tile_id``, ``label`` (predicted id) and ``confidence`` (largest softmax probability).
        threshold: Keep rows with ``confidence > threshold`` (0 ... 1).
        equal: Balance the kept rows with :func:`equal_dataset`.

    Returns:
        Label table (``tile_id``, ``label``, ``confidence``).

    Raises:
        InputError: If ``confidence`` is missing or the threshold is outside [0, 1).
    """
    if "confidence" not in predictions:
        raise InputError("predictions: lack the confidence column (expected tile_id,label,confidence)")
    if not 0.0 <= threshold < 1.0:
        raise InputError(f"confidence threshold {threshold}: expected a value in [0, 1)")
    kept = predictions[predictions["confidence"] > threshold][["tile_id", "label", "confidence"]]
    return equal_dataset(kept) if equal else kept.reset_index(drop=True)
