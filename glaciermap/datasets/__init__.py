"""glaciermap.datasets."""
