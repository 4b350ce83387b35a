"""glaciermap.commands."""
