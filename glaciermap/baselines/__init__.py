"""glaciermap.baselines."""
