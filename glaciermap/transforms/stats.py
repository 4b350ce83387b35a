"""Normalisation statistics without torch: per-band statistics, merging them, and streaming them.

:class:`NormStats` (with one :class:`ModalityStats` per modality) is the small, JSON-serialisable object that
travels with the weights; :class:`RunningStats` accumulates it strip by strip; :func:`merge_stats` pools scenes.
The normalisation step itself (:class:`~glaciermap.transforms.normalisation.Normalize`, a torch module) and the
methods are described in :mod:`glaciermap.transforms.normalisation`, which re-exports every name here.

This module imports numpy only, so that writing scene folders (``glaciermap prepare``, the synthetic worlds)
and reading their ``stats.json`` do not load torch (about 0.9 GiB of resident memory).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from glaciermap.errors import ConfigError, InputError
from glaciermap.io import atomic_output, json_text

__all__ = [
    "EPS",
    "LOG10_BANDS",
    "LOG10_OFFSET",
    "ModalityStats",
    "NormMethod",
    "NormStats",
    "RunningStats",
    "merge_stats",
]

NormMethod = Literal["zscore", "minmax", "reference"]
"""Normalisation method: per-band z-score or min-max (see the module docstring)."""

EPS = 1e-6
"""Floor of the denominator (``std`` or ``max - min``) for constant bands."""

LOG10_OFFSET = 1e-6
"""Offset of the reference's SAR conversion ``log10(sigma0 + 1e-6)`` (reference notes section 4.4)."""

LOG10_BANDS: frozenset[str] = frozenset({"sar_asc", "sar_desc", "sar_cross_asc", "sar_cross_desc"})
"""Bands that the ``"reference"`` method converts with ``log10(x + 1e-6)`` before min-max (SAR backscatter,
linear sigma0; InSAR coherence is not converted)."""


@dataclass(frozen=True)
class ModalityStats:
    """Statistics of the valid pixels of one modality, per band.

    Attributes:
        bands: Band names, in channel order.
        mean: Mean per band (units of the band).
        std: Population standard deviation per band (ddof 0).
        min: Minimum per band.
        max: Maximum per band.
        count: Number of valid pixels the statistics were computed from.
    """

    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    min: tuple[float, ...]
    max: tuple[float, ...]
    count: int

    def __post_init__(self) -> None:
        """Check that every per-band sequence has one value per band."""
        for name in ("mean", "std", "min", "max"):
            if len(getattr(self, name)) != len(self.bands):
                raise InputError(
                    f"statistics '{name}' has {len(getattr(self, name))} values; expected {len(self.bands)} "
                    f"({', '.join(self.bands)})"
                )

    def select(self, bands: Sequence[str]) -> ModalityStats:
        """Return the statistics of a subset of bands, in the given order.

        Args:
            bands: Band names, each one of :attr:`bands`.

        Returns:
            The statistics of those bands.

        Raises:
            ConfigError: If a band is not in :attr:`bands`.
        """
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise ConfigError(
                f"no statistics for band {missing[0]!r}; expected one of {', '.join(self.bands)}"
            )
        idx = [self.bands.index(b) for b in bands]
        return ModalityStats(
            bands=tuple(bands),
            mean=tuple(self.mean[i] for i in idx),
            std=tuple(self.std[i] for i in idx),
            min=tuple(self.min[i] for i in idx),
            max=tuple(self.max[i] for i in idx),
            count=self.count,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (the ``stats.json`` entry format plus ``bands``)."""
        return {
            "bands": list(self.bands),
            "mean": list(self.mean),
            "std": list(self.std),
            "min": list(self.min),
            "max": list(self.max),
            "count": self.count,
        }


@dataclass(frozen=True)
class NormStats:
    """Normalisation statistics of several modalities and the method to apply them with.

    Attributes:
        modalities: Statistics by modality name.
        method: ``"zscore"`` or ``"minmax"``.
    """

    modalities: Mapping[str, ModalityStats] = field(default_factory=dict)
    method: NormMethod = "zscore"

    def __post_init__(self) -> None:
        """Check the method name."""
        if self.method not in get_args(NormMethod):
            raise ConfigError(
                f"normalisation method is {self.method!r}; expected one of {get_args(NormMethod)}"
            )

    def with_method(self, method: NormMethod) -> NormStats:
        """Return the same statistics with another method.

        Args:
            method: ``"zscore"`` or ``"minmax"``.

        Returns:
            A new :class:`NormStats`.
        """
        return replace(self, method=method)

    def select(self, bands: Mapping[str, Sequence[str]]) -> NormStats:
        """Return the statistics of the given modalities and bands only.

        Args:
            bands: Band names by modality, in the order they will be read.

        Returns:
            A new :class:`NormStats` with those modalities, in that order.

        Raises:
            ConfigError: If a modality or band has no statistics.
        """
        out = {}
        for modality, names in bands.items():
            if modality not in self.modalities:
                raise ConfigError(
                    f"normalisation statistics have no modality {modality!r}; they cover "
                    f"{', '.join(self.modalities) or 'nothing'}"
                )
            out[modality] = self.modalities[modality].select(names)
        return NormStats(modalities=out, method=self.method)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict: ``{"method": ..., "modalities": {name: {...}}}``."""
        return {"method": self.method, "modalities": {k: v.to_dict() for k, v in self.modalities.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NormStats:
        """Rebuild statistics written by :meth:`to_dict`.

        Args:
            data: The dict (e.g. from a checkpoint or a JSON file).

        Returns:
            The statistics.

        Raises:
            InputError: If the dict does not have the expected structure.
        """
        try:
            modalities = {
                name: ModalityStats(
                    bands=tuple(str(b) for b in entry["bands"]),
                    mean=tuple(float(v) for v in entry["mean"]),
                    std=tuple(float(v) for v in entry["std"]),
                    min=tuple(float(v) for v in entry["min"]),
                    max=tuple(float(v) for v in entry["max"]),
                    count=int(entry["count"]),
                )
                for name, entry in data["modalities"].items()
            }
            method = data.get("method", "zscore")
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise InputError(
                f"normalisation statistics are malformed ({type(err).__name__}: {err}); expected "
                "{'method': ..., 'modalities': {name: {bands, mean, std, min, max, count}}}"
            ) from None
        return cls(modalities=modalities, method=method)

    def save(self, path: str | Path) -> None:
        """Write the statistics as JSON.

        Args:
            path: The output file.
        """
        with atomic_output(path) as tmp:
            tmp.write_text(json_text(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> NormStats:
        """Read statistics written by :meth:`save`.

        Args:
            path: The JSON file.

        Returns:
            The statistics.

        Raises:
            InputError: If the file is missing, not JSON, or malformed.
        """
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise InputError(f"{p}: file not found (expected normalisation statistics as JSON)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"{p}: not valid JSON ({err}); expected normalisation statistics") from None
        if not isinstance(data, dict):
            raise InputError(f"{p}: expected a JSON object of normalisation statistics")
        return cls.from_dict(data)


def merge_stats(stats: Sequence[NormStats]) -> NormStats:
    """Merge the statistics of several scenes, weighting each by its valid pixel count.

    Pooled mean ``M = sum(n_i m_i) / N`` and population variance
    ``V = sum(n_i (s_i^2 + (m_i - M)^2)) / N`` with ``N = sum(n_i)``: exactly the statistics of the union of
    the scenes' valid pixels. Minima and maxima are the extremes over scenes. Scenes with ``count == 0``
    contribute nothing.

    Args:
        stats: Statistics to merge; every entry must cover the same modalities and bands.

    Returns:
        The merged statistics, with the method of the first entry.

    Raises:
        ConfigError: If ``stats`` is empty.
        InputError: If the entries cover different modalities or bands, or no entry has a valid pixel.
    """
    if not stats:
        raise ConfigError("no statistics to merge; expected at least one scene")
    first = stats[0]
    merged: dict[str, ModalityStats] = {}
    for modality, ref in first.modalities.items():
        entries = []
        for s in stats:
            entry = s.modalities.get(modality)
            if entry is None or entry.bands != ref.bands:
                raise InputError(
                    f"cannot merge statistics: modality {modality!r} has bands "
                    f"{None if entry is None else entry.bands} in one scene and {ref.bands} in another"
                )
            entries.append(entry)
        total = sum(e.count for e in entries)
        if total == 0:
            raise InputError(f"cannot merge statistics of {modality!r}: no scene has a valid pixel")
        n = np.array([e.count for e in entries], dtype=np.float64)[:, None]
        means = np.array([e.mean for e in entries], dtype=np.float64)
        stds = np.array([e.std for e in entries], dtype=np.float64)
        mean = (n * means).sum(0) / total
        var = (n * (stds**2 + (means - mean) ** 2)).sum(0) / total
        used = [e for e in entries if e.count > 0]
        merged[modality] = ModalityStats(
            bands=ref.bands,
            mean=tuple(mean.tolist()),
            std=tuple(np.sqrt(var).tolist()),
            min=tuple(np.min([e.min for e in used], axis=0).tolist()),
            max=tuple(np.max([e.max for e in used], axis=0).tolist()),
            count=total,
        )
    for s in stats[1:]:
        extra = set(s.modalities) - set(first.modalities)
        if extra:
            raise InputError(
                f"cannot merge statistics: modality {sorted(extra)[0]!r} is missing in one scene"
            )
    return NormStats(modalities=merged, method=first.method)


class RunningStats:
    """Streaming per-band mean, variance, min and max (Chan et al.'s parallel update), in float64.

    Args:
        bands: Number of bands.
    """

    def __init__(self, bands: int) -> None:
        self.count = 0
        self.mean = np.zeros(bands, dtype=np.float64)
        self.m2 = np.zeros(bands, dtype=np.float64)
        self.min = np.full(bands, np.inf)
        self.max = np.full(bands, -np.inf)

    def update(self, values: npt.NDArray[Any]) -> None:
        """Add a block of valid values.

        Sums are accumulated in float64 without converting the block (float32 blocks stay float32), and
        the second moment is corrected for the rounding of the block mean.

        Args:
            values: ``(bands, n)`` values of ``n`` valid pixels.
        """
        n = values.shape[1]
        if n == 0:
            return
        block_mean = values.sum(axis=1, dtype=np.float64) / n
        centred = values - block_mean.astype(values.dtype)[:, None]
        block_m2 = np.square(centred).sum(axis=1, dtype=np.float64)
        block_m2 -= centred.sum(axis=1, dtype=np.float64) ** 2 / n  # rounding of the block mean
        total = self.count + n
        delta = block_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + np.maximum(block_m2, 0.0) + delta**2 * self.count * n / total
        self.count = total
        self.min = np.minimum(self.min, values.min(axis=1).astype(np.float64))
        self.max = np.maximum(self.max, values.max(axis=1).astype(np.float64))

    def result(self, bands: tuple[str, ...]) -> ModalityStats:
        """Return the statistics so far (all zeros where no value was added).

        Args:
            bands: Band names, one per band.

        Returns:
            The statistics (population standard deviation).
        """
        if self.count == 0:
            zeros = tuple(0.0 for _ in bands)
            return ModalityStats(bands=bands, mean=zeros, std=zeros, min=zeros, max=zeros, count=0)
        return ModalityStats(
            bands=bands,
            mean=tuple(self.mean.tolist()),
            std=tuple(np.sqrt(self.m2 / self.count).tolist()),
            min=tuple(self.min.tolist()),
            max=tuple(self.max.tolist()),
            count=self.count,
        )
