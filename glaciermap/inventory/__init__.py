"""glaciermap.inventory."""
