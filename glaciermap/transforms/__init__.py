"""glaciermap.transforms."""
