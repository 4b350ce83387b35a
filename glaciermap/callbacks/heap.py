"""Keep freed memory in the process while a task trains, validates or tests on a CPU (glibc's allocator only).

A training step of GlaViTU on a CPU allocates and frees activations and gradients of tens to hundreds of MB.
glibc's ``malloc`` serves each of them with fresh pages from ``mmap`` and returns them with ``munmap``, so
every step starts again from unmapped memory that the kernel has to zero page by page. Inside
:func:`~glaciermap.inference.heap.retained_heap` the freed memory stays in the process and the next step
reuses it. Measured on 2 cores with the GlaViTU global recipe (batch 8 of 384 px, bf16-mixed;
``benchmarks/RESULTS.md``, "Training throughput"): 0.2-0.4 million page faults per step instead of 10.3
million, and steps 1.53-1.59x faster.

The memory the process holds between steps stays at the step's peak instead of falling back (it is handed
back when the stage ends). ``GLACIERMAP_CPU_HEAP=system`` leaves the allocator as it is; on a GPU, and on
C libraries other than glibc, the callback does nothing.
"""

from __future__ import annotations

import contextlib

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from glaciermap.inference.heap import retained_heap


class RetainedHeap(Callback):
    """Run a stage (fit, validate, test, predict) on a CPU inside :func:`~glaciermap.inference.heap.retained_heap`.

    Entered when the stage is set up, left when it is torn down or fails.

    Attributes:
        active: Whether the allocator retains freed memory now.
    """

    def __init__(self) -> None:
        self._stack: contextlib.ExitStack | None = None
        self.active = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Keep freed memory from here on when the stage runs on a CPU."""
        if self._stack is not None:
            return
        stack = contextlib.ExitStack()
        self.active = stack.enter_context(retained_heap(trainer.strategy.root_device.type == "cpu"))
        self._stack = stack

    def _leave(self) -> None:
        if self._stack is not None:
            stack, self._stack, self.active = self._stack, None, False
            stack.close()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Give the allocator its defaults back and the retained memory to the system."""
        self._leave()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """The same when the stage fails (Lightning then skips ``teardown``)."""
        self._leave()
