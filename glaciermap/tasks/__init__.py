"""glaciermap.tasks."""
