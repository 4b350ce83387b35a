"""glaciermap.callbacks."""
