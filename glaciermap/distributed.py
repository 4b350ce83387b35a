"""Which process am I: the one rank helper of glaciermap (training samplers and scene mapping share it)."""

from __future__ import annotations

import os

__all__ = ["rank_and_world_size"]


def rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` of this process.

    From the default ``torch.distributed`` process group when one is initialised, else from the ``RANK`` and
    ``WORLD_SIZE`` environment variables (set by ``torchrun``, SLURM wrappers and Lightning), else ``(0, 1)``.

    Returns:
        The rank and the number of processes.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
