"""glaciermap.metrics."""
