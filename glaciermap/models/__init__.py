"""glaciermap.models."""
