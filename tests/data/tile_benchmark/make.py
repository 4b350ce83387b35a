"""Write ``tiles.hdf5``: a tiny seeded stand-in for the GlaViTU tile benchmark (reference notes 4.2 layout).

Four tiles of 40x48 px (padded), values quantised to 1/64 so that gzip keeps the file at a few KB:

* ``ALP-1-1`` (region ALP, subregion ALP1): optical, dem, thermal, outlines;
* ``ALP-1-2`` (ALP, ALP2): optical, dem, outlines (no thermal: left out of the thermal track);
* ``HMA-7-3`` (HMA, HMA1): optical, dem, thermal, co_pol_sar, cross_pol_sar, in_sar, outlines;
* ``SC2-5-9`` (SC, SC2): optical, dem, outlines.

Padding of 4 rows / 8 columns before the data; the one-hot outlines are zero in the padding. The glacier is
the left half of the unpadded area (``col < 8 + 16``) and a 4x4 hole of non-glacier at rows 10-13, cols 10-13.

Run ``python tests/data/tile_benchmark/make.py`` to regenerate (deterministic).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

H, W = 40, 48
PAD_H, PAD_W = 4, 8
TILES = {
    "ALP-1-1": ("ALP", "ALP1", ("thermal",)),
    "ALP-1-2": ("ALP", "ALP2", ()),
    "HMA-7-3": ("HMA", "HMA1", ("thermal", "co_pol_sar", "cross_pol_sar", "in_sar")),
    "SC2-5-9": ("SC", "SC2", ()),
}
CHANNELS = {"optical": 6, "dem": 2, "thermal": 1, "co_pol_sar": 2, "cross_pol_sar": 2, "in_sar": 2}


def feature_values(tile_index: int, feature: str) -> np.ndarray:
    """Deterministic (H, W, C) values in [0, 1): channel c of tile t at (r, w) is ((t + c + r) % 64) / 64."""
    c = CHANNELS[feature]
    r = np.arange(H)[:, None, None]
    ch = np.arange(c)[None, None, :] + list(CHANNELS).index(feature) * 8
    return np.broadcast_to(((tile_index + ch + r) % 64) / 64.0, (H, W, c)).astype(np.float32)


def outlines() -> np.ndarray:
    """(H, W, 2) one-hot [non-glacier, glacier], zero in the padding."""
    glacier = np.zeros((H, W), dtype=bool)
    glacier[:, : PAD_W + 16] = True
    glacier[10:14, 10:14] = False
    out = np.stack([~glacier, glacier], axis=-1).astype(np.float32)
    valid = np.zeros((H, W), dtype=bool)
    valid[PAD_H : H - PAD_H, PAD_W : W - PAD_W] = True
    out[~valid] = 0
    return out


OUT = Path(__file__).with_name("tiles.hdf5")


def main(path: Path = OUT) -> None:
    """Write the file."""
    with h5py.File(path, "w", libver="latest") as f:
        for t, (name, (region, subregion, extra)) in enumerate(TILES.items()):
            g = f.create_group(name)
            for feature in ("optical", "dem", *extra):
                g.create_dataset(
                    feature, data=feature_values(t, feature), compression="gzip", compression_opts=9
                )
            g.create_dataset("outlines", data=outlines(), compression="gzip", compression_opts=9)
            g.attrs.update(
                {
                    "region": region,
                    "subregion": subregion,
                    "height": H,
                    "width": W,
                    "padding_height": PAD_H,
                    "padding_width": PAD_W,
                    "original_height": H - 2 * PAD_H,
                    "original_width": W - 2 * PAD_W,
                    "xmin": 10.0 + t,
                    "xmax": 10.5 + t,
                    "ymin": 46.0,
                    "ymax": 46.25,
                }
            )


if __name__ == "__main__":
    main()
