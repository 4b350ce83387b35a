"""Reading a scene for mapping: padded, normalised full-width row chunks, read once, in a background thread.

:class:`SceneReader` reads rows of the padded scene grid (see :mod:`glaciermap.inference.windows`) from every
modality raster with rasterio, marks invalid pixels with the datasets' rule
(:func:`~glaciermap.datasets.scene_folder.invalid_pixels`: a pixel is invalid where any requested band of any
modality is NaN, the file's nodata value or -9999), normalises with the model's statistics
(:class:`~glaciermap.transforms.normalisation.Normalize`) and sets invalid and padding pixels to the fill
value, exactly as :class:`~glaciermap.datasets.scene.SceneDataset` does for training windows.

:class:`Prefetcher` runs an iterator in a background thread with a small queue, so the next rows are read while
the model works on the current ones. :class:`Consumer` is its mirror: it hands items to a function that runs in
a background thread (mapping writes its output strips there while the model predicts the next ones in the
calling thread).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from rasterio.errors import RasterioError
from rasterio.windows import Window

from glaciermap.constants import BANDS
from glaciermap.datasets.scene_folder import SceneInfo, invalid_pixels
from glaciermap.errors import InputError
from glaciermap.io import open_raster
from glaciermap.transforms.normalisation import Normalize, NormStats
from glaciermap.visualisation import FALSE_COLOUR

T = TypeVar("T")

Chunk = tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]
"""``(image (C, h, D_cols) float32, invalid (h, D_cols) bool)`` rows of the padded scene."""


class SceneReader:
    """Reads rows of the padded scene: normalised image and invalid mask.

    Files are opened on first use by the thread that reads (rasterio datasets are not shared across
    threads) and closed by :meth:`close`.

    Args:
        scene: The validated scene.
        bands: Bands to read per modality, in channel order (canonical names).
        norm: Statistics to normalise with, or ``None`` to keep the bands' units.
        fill_value: Value of invalid and padding pixels (after normalisation).
        pad_top: Padding rows above the scene.
        pad_left: Padding columns left of the scene.
        padded_width: Width of the padded grid (columns).
        thumbnail_step: Keep every ``thumbnail_step``-th pixel of the raw false-colour bands (SWIR1, NIR, red)
            while reading, for the quick-look (only when the optical modality is read with those bands).
    """

    def __init__(
        self,
        scene: SceneInfo,
        bands: Mapping[str, tuple[str, ...]],
        norm: NormStats | None,
        fill_value: float,
        *,
        pad_top: int,
        pad_left: int,
        padded_width: int,
        thumbnail_step: int | None = None,
    ) -> None:
        self.scene = scene
        self.bands = dict(bands)
        self.fill_value = float(fill_value)
        self.infinite_pixels = 0
        """Pixels read so far with an infinite value in some band (treated as nodata)."""
        self.pad_top = pad_top
        self.pad_left = pad_left
        self.padded_width = padded_width
        self.indexes = {m: [BANDS[m].index(b) + 1 for b in names] for m, names in self.bands.items()}
        self.normalizers = (
            {m: Normalize(norm.modalities[m], norm.method) for m in self.bands} if norm is not None else {}
        )
        self.channels = sum(len(b) for b in self.bands.values())
        self._sources: dict[str, Any] = {}
        optical = self.bands.get("optical", ())
        self._thumb_bands = [optical.index(b) for b in FALSE_COLOUR if b in optical]
        self.thumbnail_step = thumbnail_step if len(self._thumb_bands) == 3 else None
        self._thumb_rows: list[npt.NDArray[np.float32]] = []

    def thumbnail(self) -> npt.NDArray[np.float32] | None:
        """The raw optical bands subsampled while reading, as ``(6, h, w)`` in canonical band order.

        Pixels ``(step // 2 + i * step, step // 2 + j * step)`` are kept (the pixel a nearest-neighbour
        decimation picks); bands other than SWIR1, NIR and red are NaN. ``None`` if not collected.

        Returns:
            The thumbnail for :func:`glaciermap.visualisation.save_quicklook`, or ``None``.
        """
        if self.thumbnail_step is None or not self._thumb_rows:
            return None
        rows = np.concatenate(self._thumb_rows, axis=1)
        out = np.full((len(BANDS["optical"]), *rows.shape[1:]), np.nan, dtype=np.float32)
        for k, name in enumerate(FALSE_COLOUR):
            out[BANDS["optical"].index(name)] = rows[k]
        return out

    def _open(self) -> dict[str, Any]:
        if not self._sources:
            for m in self.bands:
                info = self.scene.rasters[m]
                self._sources[m] = open_raster(info.path, f"{m} bands")
        return self._sources

    def close(self) -> None:
        """Close the rasters."""
        for src in self._sources.values():
            src.close()
        self._sources = {}

    def read(self, start: int, stop: int) -> Chunk:
        """Read padded rows ``[start, stop)`` over the full padded width.

        Args:
            start: First padded row.
            stop: One past the last padded row.

        Returns:
            ``(image (C, h, D_cols), invalid (h, D_cols))``: normalised float32 bands in channel order, with
            the fill value where ``invalid`` is True (nodata, NaN, or padding outside the scene).
        """
        h = stop - start
        image = np.full((self.channels, h, self.padded_width), self.fill_value, dtype=np.float32)
        invalid = np.ones((h, self.padded_width), dtype=bool)
        r0 = max(0, start - self.pad_top)
        r1 = min(self.scene.height, stop - self.pad_top)
        if r1 <= r0:
            return image, invalid
        y0 = r0 + self.pad_top - start
        rows = slice(y0, y0 + r1 - r0)
        cols = slice(self.pad_left, self.pad_left + self.scene.width)
        window = Window(0, r0, self.scene.width, r1 - r0)
        bad = np.zeros((r1 - r0, self.scene.width), dtype=bool)
        channel = 0
        for m, src in self._open().items():
            data = self._read_window(m, src, window)
            self.infinite_pixels += int(np.isinf(data).any(axis=0).sum())
            bad |= invalid_pixels(data, self.scene.rasters[m].nodata)
            if m == "optical" and self.thumbnail_step is not None:
                self._keep_thumbnail(data, r0)
            if m in self.normalizers:
                data = self.normalizers[m](torch.from_numpy(data)).numpy()
            image[channel : channel + data.shape[0], rows, cols] = data
            channel += data.shape[0]
        block = image[:, rows, cols]
        block[:, bad] = self.fill_value
        invalid[rows, cols] = bad
        return image, invalid

    def _read_window(self, modality: str, src: Any, window: Window) -> npt.NDArray[np.float32]:
        """Read the requested bands of one window as float32.

        Raises:
            InputError: Naming the file and the rows if GDAL cannot read them (a corrupt or truncated file).
        """
        try:
            data: npt.NDArray[np.float32] = src.read(
                self.indexes[modality], window=window, out_dtype=np.float32
            )
        except RasterioError as err:
            r0, r1 = int(window.row_off), int(window.row_off + window.height)
            detail = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
            raise InputError(
                f"{self.scene.rasters[modality].path}: cannot read rows {r0}-{r1 - 1} ({detail}); the file is "
                "corrupt or truncated; expected a readable GeoTIFF"
            ) from None
        return data

    def _keep_thumbnail(self, data: npt.NDArray[np.float32], row0: int) -> None:
        """Keep the false-colour bands of the rows ``step // 2 + i * step`` among ``[row0, row0 + h)``."""
        step = self.thumbnail_step
        assert step is not None
        first = (step // 2 - row0) % step
        picked = data[self._thumb_bands][:, first::step, step // 2 :: step]
        if picked.shape[1]:
            self._thumb_rows.append(np.array(picked, dtype=np.float32))

    def chunks(self, bounds: list[tuple[int, int]]) -> Iterator[Chunk]:
        """Read the padded row ranges ``bounds`` in order, then close the rasters.

        Args:
            bounds: ``[(start, stop), ...]`` padded row ranges.

        Yields:
            One :data:`Chunk` per range.
        """
        try:
            for start, stop in bounds:
                yield self.read(start, stop)
        finally:
            self.close()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def _put_unless_stopped(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item`` into ``q``, waiting while it is full, unless ``stop`` is set first; whether it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _drain(q: queue.Queue[Any]) -> list[Any]:
    """Take every item ``q`` holds now, without waiting."""
    out: list[Any] = []
    with contextlib.suppress(queue.Empty):
        while True:
            out.append(q.get_nowait())
    return out


class Prefetcher(Generic[T]):
    """Iterate ``items`` in a background thread, keeping at most ``depth`` items ready.

    Exceptions raised by ``items`` are re-raised in the consuming thread. Use as a context manager (or call
    :meth:`close`) so that the thread stops when the consumer stops early.

    Args:
        items: The iterator to run in the background (created by the caller, advanced only by the thread).
        depth: Queue length (>= 1).
    """

    def __init__(self, items: Iterator[T], depth: int = 2) -> None:
        self._items = items
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="glaciermap-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        return _put_unless_stopped(self._queue, item, self._stop)

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    break
            else:
                self._put(_DONE)
        except BaseException as err:  # handed to the consumer
            self._put(_Failure(err))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def __iter__(self) -> Prefetcher[T]:
        """Return self."""
        return self

    def __next__(self) -> T:
        """The next item (blocks until the thread has read it)."""
        item = self._queue.get()
        if item is _DONE:
            self._queue.put(_DONE)
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        _drain(self._queue)
        self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        """Return self."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the thread."""
        self.close()


R = TypeVar("R")


class Consumer(Generic[T, R]):
    """Apply ``fn`` to items in a background thread, in the order they are put, at most ``depth`` waiting.

    The mirror of :class:`Prefetcher`: the calling thread produces, the background thread consumes. Mapping
    uses it so that the network runs in the calling thread. On glibc that matters on a CPU: the main thread
    allocates from the main heap, which :func:`~glaciermap.inference.heap.retained_heap` keeps, while another
    thread's heap serves every tensor above 64 MB with fresh ``mmap`` pages (page faults on every window).

    The first exception ``fn`` raises is re-raised in the calling thread by the next :meth:`put` or by
    :meth:`finish`; the items after it are dropped. Use as a context manager (or call :meth:`close`) so the
    thread stops when the producer fails.

    Args:
        fn: Applied to every item in the background thread; its results are handed back in order.
        depth: Items that may wait in the queue (>= 1) before :meth:`put` blocks.
        name: Name of the thread.
    """

    def __init__(self, fn: Callable[[T], R], depth: int = 2, name: str = "glaciermap-consumer") -> None:
        self._fn = fn
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._results: queue.Queue[R] = queue.Queue()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE or self._stop.is_set():
                return
            try:
                self._results.put(self._fn(item))
            except BaseException as err:  # handed to the producer
                self._error = err
                self._stop.set()
                return

    def _collect(self) -> list[R]:
        if self._error is not None:
            raise self._error
        return _drain(self._results)

    def put(self, item: T) -> list[R]:
        """Queue ``item`` (blocks while ``depth`` items wait); return the results finished since the last call.

        Raises:
            BaseException: The error ``fn`` raised on an earlier item.
        """
        _put_unless_stopped(self._queue, item, self._stop)  # after an error the thread takes no more items
        return self._collect()

    def finish(self) -> list[R]:
        """Wait until every queued item is done; return the results not yet returned.

        Raises:
            BaseException: The error ``fn`` raised, if any.
        """
        _put_unless_stopped(self._queue, _DONE, self._stop)
        self._thread.join()
        return self._collect()

    def close(self) -> None:
        """Stop the thread without doing the items still waiting, and wait for the current one."""
        self._stop.set()
        _drain(self._queue)
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_DONE)  # wakes the thread if it waits for an item
        self._thread.join()

    def __enter__(self) -> Consumer[T, R]:
        """Return self."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the thread."""
        self.close()
