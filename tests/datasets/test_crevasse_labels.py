"""Tests of label tables, the reference's .npy file, folder names and the balanced exports."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glaciermap.datasets.crevasse_classes import CrevasseClassV1
from glaciermap.datasets.crevasse_labels import (
    ReferenceDataset,
    confident_predictions,
    equal_dataset,
    parse_file_name,
    parse_legacy_name,
    read_label_table,
    read_reference_npy,
    reference_to_label_table,
    write_label_table,
    write_reference_npy,
)
from glaciermap.errors import InputError


def test_label_table_names_ids_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("tile_id,label\n4,Parallel Shear\n7,sea_ice\n9,2\n")
    table = read_label_table(path)
    assert table["tile_id"].tolist() == [4, 7, 9] and table["label"].tolist() == [4, 10, 2]
    assert table["confidence"].tolist() == [1.0, 1.0, 1.0]
    write_label_table(table.assign(confidence=[1.0, 0.5, 0.25]), tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines()[1] == "4,parallel_shear,1.0"
    assert read_label_table(tmp_path / "out.csv")["confidence"].tolist() == [1.0, 0.5, 0.25]
    v1 = tmp_path / "v1.csv"
    v1.write_text("tile_id,label\n1,One Directional\n")
    assert read_label_table(v1, scheme=CrevasseClassV1)["label"].tolist() == [1]
    path.write_text("tile_id,label\n4,shear\n5,crevasse soup\n")
    with pytest.raises(InputError, match=r"labels.csv, row 2: class 'crevasse soup': unknown") as err:
        read_label_table(path)
    assert "\n" not in str(err.value)
    path.write_text("tile_id,label\n4,shear\n4,chaos\n")
    with pytest.raises(InputError, match="tile 4 is labelled more than once"):
        read_label_table(path)
    path.write_text("tile,label\n4,shear\n")
    with pytest.raises(InputError, match="lacks the column"):
        read_label_table(path)


def reference_coords() -> np.ndarray:
    return np.array(
        [
            [0, 0, 530000.0, 8735000.0, -1, 0, 0],
            [201, 268, 530134.0, 8734899.5, 3, 1.0, 0],
            [402, 0, 530000.0, 8734799.0, 9, 0.93, 1],
        ]
    )


def test_reference_npy_object_array_and_plain(tmp_path: Path) -> None:
    info = {
        "filename": ["a.tif", "b.tif"],
        "is_geotiff": [True, True],
        "winsize_pix": [201, 268],
        "transform": [None],
    }
    path = write_reference_npy(
        ReferenceDataset(reference_coords(), info), tmp_path / "x_3_(201,268)_split.npy"
    )
    back = read_reference_npy(path)
    np.testing.assert_array_equal(back.coords, reference_coords())
    assert back.info["filename"] == ["a.tif", "b.tif"] and back.info["winsize_pix"] == [201, 268]
    table = back.label_table()
    assert table["row"].tolist() == [201, 402] and table["label"].tolist() == [3, 9]
    assert back.label_table(image_index=1)["confidence"].tolist() == [0.93]
    index = pd.DataFrame({"tile_id": [7, 8, 9], "row": [0, 201, 402], "col": [0, 268, 0]})
    joined = reference_to_label_table(back, index)
    assert joined.to_dict("list") == {"tile_id": [8], "label": [2], "confidence": [1.0]}  # 3 Shear -> id 2
    chaos = reference_to_label_table(back, index, image_index=1)
    assert chaos["label"].tolist() == [8]  # reference 9 = Chaos -> id 8
    np.save(tmp_path / "plain.npy", reference_coords())
    assert read_reference_npy(tmp_path / "plain.npy").info == {}
    np.save(tmp_path / "bad.npy", np.zeros((3, 5)))
    with pytest.raises(InputError, match="N x 7"):
        read_reference_npy(tmp_path / "bad.npy")


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.getcwd, ())  # harmless stand-in for a malicious callable


def test_reference_npy_refuses_other_pickled_objects(tmp_path: Path) -> None:
    array = np.empty(2, dtype=object)
    array[0], array[1] = {"x": _Exploit()}, reference_coords()
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    (tmp_path / "evil.npy").write_bytes(buffer.getvalue())
    with pytest.raises(InputError, match=r"refusing to load posix\.getcwd"):
        read_reference_npy(tmp_path / "evil.npy")


def test_file_names() -> None:
    assert parse_file_name("3_1234_0.png") == (3, 1234, 0)
    assert parse_file_name("312340.png") is None
    assert parse_legacy_name("312340.png", 3) == (1234, 0)
    assert parse_legacy_name("1012345.tif", 10) == (1234, 5)
    with pytest.raises(InputError, match="not a reference image name"):
        parse_legacy_name("412340.png", 3)


def test_equal_dataset_and_confident_predictions() -> None:
    predictions = pd.DataFrame(
        {
            "tile_id": range(9),
            "label": [0, 0, 0, 0, 1, 1, 1, 2, 2],
            "confidence": [0.9, 0.95, 0.5, 0.99, 0.7, 0.96, 0.92, 0.97, 0.98],
        }
    )
    balanced = equal_dataset(predictions)
    assert balanced["label"].value_counts().to_dict() == {0: 2, 1: 2, 2: 2}
    assert balanced[balanced["label"] == 0]["tile_id"].tolist() == [3, 1]  # highest confidence first
    confident = confident_predictions(predictions, 0.91)
    assert confident["tile_id"].tolist() == [1, 3, 5, 6, 7, 8]
    equal = confident_predictions(predictions, 0.91, equal=True)
    assert equal["label"].value_counts().to_dict() == {0: 2, 1: 2, 2: 2}
    assert confident_predictions(predictions, 0.999).empty
    assert equal_dataset(predictions.drop(columns="confidence"), seed=1)["label"].value_counts().min() == 2
    with pytest.raises(InputError, match="threshold"):
        confident_predictions(predictions, 1.5)
