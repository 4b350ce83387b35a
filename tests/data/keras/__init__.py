"""Writing Keras-2 HDF5 weight files by hand for the converter tests (no TensorFlow needed)."""

from __future__ import annotations

import h5py
import numpy as np
import torch


def write_group(root: h5py.Group, name: str, arrays: list[tuple[str, np.ndarray]]) -> None:
    """Write one Keras layer group with its ``weight_names`` attribute."""
    g = root.create_group(name)
    g.attrs["weight_names"] = np.array([n.encode() for n, _ in arrays])  # bytes, as older Keras writes
    for n, a in arrays:
        g.create_dataset(n, data=a)


def to_keras(t: torch.Tensor, kind: str, heads: int) -> np.ndarray:
    """Inverse of the converter's layout conversions, written independently of it."""
    x = t.detach().numpy()
    if kind == "conv":
        return x.transpose(2, 3, 1, 0)
    if kind == "dense_conv":
        return x[:, :, 0, 0].T
    if kind == "patch":
        return x.transpose(2, 3, 1, 0).reshape(-1, x.shape[0])
    if kind == "linear":
        return x.T
    if kind == "mha_in":
        return x.T.reshape(x.shape[1], heads, -1)
    if kind == "mha_in_bias":
        return x.reshape(heads, -1)
    if kind == "mha_out":
        return x.T.reshape(heads, -1, x.shape[0])
    return x
