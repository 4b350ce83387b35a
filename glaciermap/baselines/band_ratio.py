"""The band-ratio glacier baseline of the GlaViTU paper, and fitting its thresholds.

A pixel is glacier when ``red / swir1 > th1`` and ``blue > th2`` (GlaViTU paper, "Baselines"; the paper's
thresholds are 3.2 and 0.17 on top-of-atmosphere reflectance, "found by maximising IoU on the training
data"). Clean ice and snow are bright in the visible and dark in the short-wave infrared; debris-covered ice
is not, which is the rule's known blind spot.

* :func:`band_ratio_mask` applies the rule to a reflectance array.
* :class:`BandRatioHistogram` / :func:`fit_band_ratio` fit (th1, th2) by maximising the glacier IoU
  (GlaViTU Eq. 6) over training scenes. The scenes are streamed window by window into two 2-D histograms
  of (red / swir1, blue), one for glacier and one for non-glacier pixels, binned at the candidate
  thresholds; the IoU of every threshold pair of the grid then follows exactly from reverse cumulative
  sums, so fitting scales to any number of scenes with memory independent of their size.
* :class:`BandRatio` wraps the rule as a :class:`~glaciermap.models.base.SegmentationModel`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from glaciermap.constants import BANDS, IGNORE_INDEX, SCENE_FILES
from glaciermap.datasets.scene_folder import invalid_pixels
from glaciermap.errors import InputError
from glaciermap.io import open_raster
from glaciermap.models.base import ModelInputs, SegmentationModel
from glaciermap.models.pretrained import PretrainedModel
from glaciermap.raster import RasterGrid, row_windows

PAPER_RATIO_THRESHOLD: float = 3.2
"""th1 of the GlaViTU paper (red / swir1)."""
PAPER_BLUE_THRESHOLD: float = 0.17
"""th2 of the GlaViTU paper (blue reflectance)."""

DEFAULT_RATIO_GRID: tuple[float, ...] = tuple(np.round(np.arange(0.0, 10.0 + 1e-9, 0.05), 6).tolist())
"""Candidate th1 values: 0 to 10 in steps of 0.05 (contains the paper's 3.2)."""
DEFAULT_BLUE_GRID: tuple[float, ...] = tuple(np.round(np.arange(0.0, 1.0 + 1e-9, 0.005), 6).tolist())
"""Candidate th2 values: 0 to 1 in steps of 0.005 (contains the paper's 0.17)."""

_BLUE = BANDS["optical"].index("blue")
_RED = BANDS["optical"].index("red")
_SWIR1 = BANDS["optical"].index("swir1")
_STRIP_PIXELS = 1 << 20


def _check_optical(arr: npt.NDArray[Any]) -> None:
    n = len(BANDS["optical"])
    if arr.ndim != 3 or arr.shape[0] != n:
        raise InputError(f"band ratio: expected optical reflectance of shape ({n}, H, W), got {arr.shape}")


def band_ratio_mask(
    optical: npt.ArrayLike,
    ratio_threshold: float = PAPER_RATIO_THRESHOLD,
    blue_threshold: float = PAPER_BLUE_THRESHOLD,
) -> npt.NDArray[np.bool_]:
    """Apply the band-ratio rule to top-of-atmosphere reflectance.

    Args:
        optical: Reflectance, shape (6, H, W) in the canonical band order
            ``blue, green, red, nir, swir1, swir2`` (unitless, 0-1).
        ratio_threshold: th1, the red / swir1 ratio above which a pixel may be glacier.
        blue_threshold: th2, the blue reflectance above which a pixel may be glacier.

    Returns:
        Boolean glacier mask, shape (H, W). Non-finite pixels are False.

    Raises:
        InputError: If ``optical`` does not have the six optical bands first.
    """
    arr = np.asarray(optical, dtype=np.float32)
    _check_optical(arr)
    blue = arr[_BLUE]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = arr[_RED] / arr[_SWIR1]
    mask: npt.NDArray[np.bool_] = (ratio > ratio_threshold) & (blue > blue_threshold)
    return mask & np.isfinite(ratio) & np.isfinite(blue)


@dataclass(frozen=True)
class BandRatioFit:
    """Fitted band-ratio thresholds.

    Attributes:
        ratio_threshold: th1 (red / swir1).
        blue_threshold: th2 (blue reflectance).
        iou: Glacier IoU (GlaViTU Eq. 6) of the rule with these thresholds on the fitting pixels.
        n_pixels: Number of labelled, valid pixels used.
        n_glacier_pixels: Of which glacier (clean or debris-covered ice).
        scenes: The scenes fitted on (folder paths; empty when fitted on arrays).
    """

    ratio_threshold: float
    blue_threshold: float
    iou: float
    n_pixels: int
    n_glacier_pixels: int
    scenes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what ``glaciermap fit-band-ratio`` writes)."""
        out = asdict(self)
        out["scenes"] = list(self.scenes)
        return out

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> BandRatioFit:
        """Read thresholds written by ``glaciermap fit-band-ratio``.

        Args:
            path: The JSON file.

        Returns:
            The fit.

        Raises:
            InputError: If the file is missing or lacks the thresholds.
        """
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise InputError(f"{p}: file not found (expected band-ratio thresholds JSON)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"{p}: not valid JSON ({err}); expected band-ratio thresholds") from None
        try:
            return cls(
                ratio_threshold=float(data["ratio_threshold"]),
                blue_threshold=float(data["blue_threshold"]),
                iou=float(data.get("iou", float("nan"))),
                n_pixels=int(data.get("n_pixels", 0)),
                n_glacier_pixels=int(data.get("n_glacier_pixels", 0)),
                scenes=tuple(str(s) for s in data.get("scenes", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError(
                f"{p}: expected a JSON object with numbers 'ratio_threshold' and 'blue_threshold'"
            ) from None


def _grid(values: Sequence[float], what: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 1 or not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
        raise InputError(
            f"band ratio: {what} must be a non-empty, strictly increasing list of finite numbers"
        )
    return arr


class BandRatioHistogram:
    """Streaming accumulator for fitting the band-ratio thresholds.

    Each valid labelled pixel is binned by its red / swir1 ratio and its blue reflectance at the candidate
    thresholds: bin ``k`` of a grid ``t`` holds values ``t[k-1] < x <= t[k]``, so "``x > t[i]``" is exactly
    "bin > i" and the rule's prediction for every threshold pair is a sum over a corner of the histogram.
    Pixels whose ratio is not finite are never glacier (as in :func:`band_ratio_mask`).

    Args:
        ratio_grid: Candidate th1 values, strictly increasing.
        blue_grid: Candidate th2 values, strictly increasing.

    Raises:
        InputError: If a grid is empty, not finite or not strictly increasing.
    """

    def __init__(
        self, ratio_grid: Sequence[float] = DEFAULT_RATIO_GRID, blue_grid: Sequence[float] = DEFAULT_BLUE_GRID
    ) -> None:
        self.ratio_grid = _grid(ratio_grid, "ratio_grid")
        self.blue_grid = _grid(blue_grid, "blue_grid")
        shape = (self.ratio_grid.size + 1, self.blue_grid.size + 1)
        self.glacier = np.zeros(shape, dtype=np.int64)
        """Counts of glacier pixels per (ratio bin, blue bin)."""
        self.other = np.zeros(shape, dtype=np.int64)
        """Counts of non-glacier pixels per (ratio bin, blue bin)."""

    def update(
        self,
        optical: npt.ArrayLike,
        labels: npt.ArrayLike,
        valid: npt.ArrayLike | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        """Add the pixels of one window.

        Args:
            optical: Reflectance (6, H, W), canonical band order.
            labels: Class ids (H, W): 0 background, 1 clean ice, 2 debris-covered ice (both glacier),
                ``ignore_index`` left out.
            valid: Optional (H, W) boolean, False for pixels to leave out (e.g. optical nodata).
            ignore_index: Label value to leave out.

        Raises:
            InputError: If the shapes disagree or a label is not 0, 1, 2 or ``ignore_index``.
        """
        arr = np.asarray(optical, dtype=np.float32)
        _check_optical(arr)
        lab = np.asarray(labels)
        if lab.shape != arr.shape[1:]:
            raise InputError(f"band ratio: labels of shape {lab.shape} do not match optical {arr.shape[1:]}")
        bad = (lab != ignore_index) & ~np.isin(lab, (0, 1, 2))
        if bad.any():
            raise InputError(
                f"band ratio: labels must be 0, 1, 2 or {ignore_index}, found {np.unique(lab[bad])[:5].tolist()}"
            )
        keep = (lab != ignore_index) & np.isfinite(arr[_BLUE])
        if valid is not None:
            keep &= np.asarray(valid, dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = arr[_RED][keep] / arr[_SWIR1][keep]
        blue = arr[_BLUE][keep]
        # Bin at the thresholds in float32, the precision band_ratio_mask compares in, so the two agree exactly.
        rbin = np.searchsorted(self.ratio_grid.astype(np.float32), ratio, side="left")
        rbin[~np.isfinite(ratio)] = 0  # never above a threshold, as band_ratio_mask treats them
        bbin = np.searchsorted(self.blue_grid.astype(np.float32), blue, side="left")
        flat = rbin * self.glacier.shape[1] + bbin
        is_glacier = lab[keep] != 0
        size = self.glacier.size
        self.glacier += np.bincount(flat[is_glacier], minlength=size).reshape(self.glacier.shape)
        self.other += np.bincount(flat[~is_glacier], minlength=size).reshape(self.other.shape)

    def update_scene(self, folder: str | os.PathLike[str]) -> None:
        """Add every labelled pixel of a scene folder (``optical.tif`` + ``labels.tif``), strip by strip.

        Args:
            folder: The scene folder.

        Raises:
            InputError: If a file is missing or unreadable, or the two rasters are not on one grid.
        """
        for optical, nodata, labels in _scene_strips(folder, with_labels=True):
            self.update(optical, labels, valid=~nodata)

    @property
    def n_pixels(self) -> int:
        """Number of pixels accumulated."""
        return int(self.glacier.sum() + self.other.sum())

    def iou_table(self) -> npt.NDArray[np.float64]:
        """Glacier IoU (GlaViTU Eq. 6) of every threshold pair.

        Returns:
            Shape (len(ratio_grid), len(blue_grid)); entry (i, j) is the IoU of
            ``ratio > ratio_grid[i] and blue > blue_grid[j]``. NaN when no glacier is predicted nor present.
        """

        def corner_sums(h: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
            # s[i, j] = sum of h[i+1:, j+1:], i.e. the pixels above both thresholds i and j.
            s = np.cumsum(np.cumsum(h[::-1, ::-1], axis=0), axis=1)[::-1, ::-1]
            return np.asarray(s[1:, 1:], dtype=np.int64)

        tp = corner_sums(self.glacier)
        fp = corner_sums(self.other)
        union = int(self.glacier.sum()) + fp  # |T ∪ P| = |T| + FP
        out = np.full(tp.shape, np.nan)
        np.divide(tp, union, out=out, where=union > 0)
        return out

    def best(self, scenes: Sequence[str] = ()) -> BandRatioFit:
        """The threshold pair of the grid with the highest glacier IoU.

        Ties go to the smallest th1, then the smallest th2.

        Args:
            scenes: Scene names to record in the result.

        Returns:
            The fitted thresholds and their IoU.

        Raises:
            InputError: If no glacier pixel was seen (the IoU cannot be maximised).
        """
        n_glacier = int(self.glacier.sum())
        if n_glacier == 0:
            raise InputError(
                f"band ratio: none of the {self.n_pixels} labelled pixels is glacier; expected training scenes "
                "with clean or debris-covered ice (labels 1 or 2)"
            )
        table = self.iou_table()
        i, j = np.unravel_index(int(np.nanargmax(table)), table.shape)
        return BandRatioFit(
            ratio_threshold=float(self.ratio_grid[i]),
            blue_threshold=float(self.blue_grid[j]),
            iou=float(table[i, j]),
            n_pixels=self.n_pixels,
            n_glacier_pixels=n_glacier,
            scenes=tuple(scenes),
        )


def _scene_strips(
    folder: str | os.PathLike[str], with_labels: bool
) -> Iterator[tuple[npt.NDArray[Any], npt.NDArray[np.bool_], npt.NDArray[Any]]]:
    """Read a scene's optical bands (and labels) in full-width strips of bounded size.

    Yields:
        ``(optical (6, h, W), nodata (h, W), labels (h, W))`` per strip; ``labels`` is empty (0, 0) when
        ``with_labels`` is False.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"scene folder {root} not found; expected a folder with {SCENE_FILES['optical']}")
    opt_path, lab_path = root / SCENE_FILES["optical"], root / SCENE_FILES["labels"]
    with contextlib.ExitStack() as stack:
        osrc = stack.enter_context(open_raster(opt_path, "6 optical bands"))
        if osrc.count != len(BANDS["optical"]):
            raise InputError(
                f"{opt_path} has {osrc.count} band(s); expected 6 bands {', '.join(BANDS['optical'])}"
            )
        lsrc = stack.enter_context(open_raster(lab_path, "1 band uint8 labels")) if with_labels else None
        if lsrc is not None:
            RasterGrid.of(lsrc).check_same(RasterGrid.of(osrc), str(lab_path), str(opt_path))
        for window in row_windows(osrc.height, osrc.width, _STRIP_PIXELS):
            data = osrc.read(window=window)
            labels = lsrc.read(1, window=window) if lsrc is not None else np.zeros((0, 0), np.uint8)
            yield data, invalid_pixels(data, osrc.nodata), labels


def band_ratio_classes(
    folder: str | os.PathLike[str],
    ratio_threshold: float = PAPER_RATIO_THRESHOLD,
    blue_threshold: float = PAPER_BLUE_THRESHOLD,
) -> npt.NDArray[np.uint8]:
    """The band-ratio class map of a scene folder's ``optical.tif``, read strip by strip.

    Args:
        folder: The scene folder.
        ratio_threshold: th1 (red / swir1).
        blue_threshold: th2 (blue reflectance).

    Returns:
        uint8 (H, W): 0 background, 1 glacier, 255 where any optical band is nodata.

    Raises:
        InputError: If ``optical.tif`` is missing, unreadable or does not have 6 bands.
    """
    strips = []
    for optical, nodata, _ in _scene_strips(folder, with_labels=False):
        classes = band_ratio_mask(optical, ratio_threshold, blue_threshold).astype(np.uint8)
        classes[nodata] = IGNORE_INDEX
        strips.append(classes)
    return np.concatenate(strips, axis=0)


def fit_band_ratio(
    scenes: Iterable[str | os.PathLike[str] | tuple[npt.ArrayLike, npt.ArrayLike]],
    ratio_grid: Sequence[float] = DEFAULT_RATIO_GRID,
    blue_grid: Sequence[float] = DEFAULT_BLUE_GRID,
) -> BandRatioFit:
    """Fit the band-ratio thresholds by maximising the glacier IoU on training scenes (GlaViTU paper).

    The IoU is pooled over all pixels of all scenes (one confusion matrix), as the paper's "maximising IoU on
    the training data". Clean and debris-covered ice both count as glacier.

    Args:
        scenes: Scene folders (with ``optical.tif`` and ``labels.tif``), or ``(optical, labels)`` array pairs
            of shapes (6, H, W) and (H, W).
        ratio_grid: Candidate th1 values.
        blue_grid: Candidate th2 values.

    Returns:
        The best thresholds on the grid with their IoU.

    Raises:
        InputError: If there is no scene, a scene is unreadable, or no pixel is glacier.
    """
    hist = BandRatioHistogram(ratio_grid, blue_grid)
    names: list[str] = []
    for scene in scenes:
        if isinstance(scene, tuple):
            hist.update(*scene)
        else:
            hist.update_scene(scene)
            names.append(str(scene))
    if hist.n_pixels == 0:
        raise InputError("band ratio: no labelled pixel to fit on; expected at least one training scene")
    return hist.best(names)


class BandRatio(SegmentationModel):
    """The band-ratio rule as a segmentation model, usable wherever a model is.

    It follows the :class:`~glaciermap.models.base.SegmentationModel` contract: ``modalities`` is
    ``{"optical": 6}``, ``num_classes`` is 2 (background, glacier), and ``model(inputs)`` returns
    ``{"out": logits}`` of shape (B, 2, H, W) for a dict ``{"optical": (B, 6, H, W), ...}`` (other modalities
    are ignored) or a stacked (B, 6, H, W) tensor. The rule is hard, so the logits are ``0`` for background
    and ``±`` :attr:`LOGIT_MARGIN` for glacier: :meth:`predict_proba` gives one-hot probabilities (1 and about
    1e-13) and their argmax is :func:`band_ratio_mask`. It has no parameters and any input size works.

    Unlike learnt models it expects **un-normalised** top-of-atmosphere reflectance (0-1), the quantity the
    thresholds are defined on; non-finite pixels are background.

    Args:
        ratio_threshold: th1 (red / swir1).
        blue_threshold: th2 (blue reflectance).
    """

    arch: ClassVar[str] = "band_ratio"
    size_multiple: ClassVar[int] = 1
    LOGIT_MARGIN: ClassVar[float] = 30.0
    """Glacier-minus-background logit of a glacier pixel (softmax probabilities 1.0 and 9e-14 in float32)."""

    def __init__(
        self, ratio_threshold: float = PAPER_RATIO_THRESHOLD, blue_threshold: float = PAPER_BLUE_THRESHOLD
    ) -> None:
        super().__init__({"optical": len(BANDS["optical"])}, num_classes=2)
        self.ratio_threshold = float(ratio_threshold)
        self.blue_threshold = float(blue_threshold)
        self.hparams = {"ratio_threshold": self.ratio_threshold, "blue_threshold": self.blue_threshold}

    @classmethod
    def from_fit(cls, fit: BandRatioFit | str | os.PathLike[str]) -> BandRatio:
        """Build the model from fitted thresholds or the JSON ``glaciermap fit-band-ratio`` wrote.

        Args:
            fit: A :class:`BandRatioFit` or the path of its JSON file.

        Returns:
            The model with those thresholds.
        """
        if not isinstance(fit, BandRatioFit):
            fit = BandRatioFit.from_json(fit)
        return cls(fit.ratio_threshold, fit.blue_threshold)

    def _mask(self, optical: Tensor) -> Tensor:
        blue = optical[:, _BLUE]
        ratio = optical[:, _RED] / optical[:, _SWIR1]
        mask = (ratio > self.ratio_threshold) & (blue > self.blue_threshold)
        return mask & torch.isfinite(ratio) & torch.isfinite(blue)

    def glacier_mask(self, inputs: ModelInputs) -> Tensor:
        """The rule's glacier mask, the torch counterpart of :func:`band_ratio_mask`.

        Args:
            inputs: ``{"optical": (B, 6, H, W)}`` or a (B, 6, H, W) tensor of reflectance.

        Returns:
            Boolean (B, H, W).
        """
        return self._mask(self.check_inputs(inputs)["optical"])

    def forward(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        """Class logits of the rule.

        Args:
            inputs: ``{"optical": (B, 6, H, W)}`` or a (B, 6, H, W) tensor of reflectance.
            location: Ignored (the rule uses no location).

        Returns:
            ``{"out": (B, 2, H, W)}`` logits in the input's dtype: background 0, glacier ``+LOGIT_MARGIN``
            where the rule says glacier and ``-LOGIT_MARGIN`` elsewhere.
        """
        optical = self.check_inputs(inputs)["optical"]
        glacier = torch.where(self._mask(optical), self.LOGIT_MARGIN, -self.LOGIT_MARGIN).to(optical.dtype)
        return {"out": torch.stack([torch.zeros_like(glacier), glacier], dim=1)}


BAND_RATIO = "band-ratio"
"""Name that selects the band-ratio rule wherever a model is named (``glaciermap map --model``, configs)."""


def band_ratio_model(thresholds: str | os.PathLike[str] | None = None) -> PretrainedModel:
    """The band-ratio rule as a mapping model (GlaViTU paper; ``red / swir1 > th1 and blue > th2``).

    It plugs into mapping through the same interface as any trained model. It reads un-normalised
    reflectance, so no statistics are applied. Its probabilities are one-hot, hence its Eq. 3 confidence is
    1 (``1 - 2.1e-5`` after the reference's clipping).

    Args:
        thresholds: JSON written by ``glaciermap fit-band-ratio`` (default: the paper's 3.2 and 0.17).

    Returns:
        The mapping model.
    """
    model = BandRatio.from_fit(thresholds) if thresholds is not None else BandRatio()
    info: dict[str, Any] = {"model": "band_ratio", **model.hparams}
    if thresholds is not None:
        info["thresholds_file"] = str(thresholds)
    return PretrainedModel.from_model(model, None, info=info)
