"""glaciermap.datamodules."""
