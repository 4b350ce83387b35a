"""glaciermap.inference."""
