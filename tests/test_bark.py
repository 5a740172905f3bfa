"""Tests of the UIUC bark converter in dpm.data.bark, on a small fake database made with Pillow."""

import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from dpm.data import bark
from dpm.data.hdf5 import H5Dataset, read_attrs, verify_checksums

CLASSES = ("T01", "T02", "T03", "T04")
PER_CLASS = 3
TRAIN_PER_CLASS = 2
HEIGHT, WIDTH = 24, 32
OPTIONS = {"images_per_class": PER_CLASS, "train_per_class": TRAIN_PER_CLASS}


def make_database(folder, layout="flat", brightness=0, size=(WIDTH, HEIGHT)):
    """Write 4 classes x 3 grayscale JPEGs in the UIUC naming and return their paths by name."""
    rng = np.random.default_rng(brightness)
    paths = {}
    for class_number, class_name in enumerate(CLASSES, start=1):
        if layout == "flat":
            class_folder = folder
        elif layout == "class":
            class_folder = folder / class_name
        else:
            class_folder = folder / f"{class_name}_bark{class_number}"
        class_folder.mkdir(parents=True, exist_ok=True)
        for index in range(1, PER_CLASS + 1):
            ramp = np.add.outer(np.arange(size[1]), np.arange(size[0])) * class_number
            noise = rng.integers(0, 40, size=(size[1], size[0]))
            pixels = ((ramp + noise + brightness) % 256).astype(np.uint8)
            path = class_folder / f"{class_name}_{index:02d}.jpg"
            Image.fromarray(pixels, mode="L").save(path, quality=90)
            paths[path.name] = path
    return paths


def read_with_pillow(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def expected_rows(paths):
    """Return the file names in the converter's row order: train rows, then test rows."""
    names = [f"{name}_{index:02d}.jpg" for name in CLASSES for index in range(1, PER_CLASS + 1)]
    train = [name for name in names if int(name[4:6]) <= TRAIN_PER_CLASS]
    test = [name for name in names if int(name[4:6]) > TRAIN_PER_CLASS]
    return train, test


def test_convert_flat_folder(tmp_path):
    paths = make_database(tmp_path / "uiuc")
    output = bark.prepare(tmp_path / "out" / "bark.hdf5", from_dir=tmp_path / "uiuc", **OPTIONS)
    verify_checksums(output)
    train_names, test_names = expected_rows(paths)

    train = H5Dataset(output, "train")
    test = H5Dataset(output, "test")
    train_features, train_targets = train.get_data(slice(None))
    test_features, test_targets = test.get_data(slice(None))

    assert train.dim_labels == {
        "features": ("batch", "channel", "height", "width"),
        "targets": ("batch", "index"),
    }
    assert train_features.dtype == np.uint8
    assert train_features.shape == (8, 1, HEIGHT, WIDTH)
    assert test_features.shape == (4, 1, HEIGHT, WIDTH)
    for rows, names in ((train_features, train_names), (test_features, test_names)):
        for row, name in zip(rows, names, strict=True):
            np.testing.assert_array_equal(row[0], read_with_pillow(paths[name]))
    np.testing.assert_array_equal(train_targets[:, 0], [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(test_targets[:, 0], [0, 1, 2, 3])
    assert train_targets.shape == (8, 1)


def test_convert_attributes(tmp_path):
    paths = make_database(tmp_path / "uiuc")
    output = bark.prepare(tmp_path / "bark.hdf5", from_dir=tmp_path / "uiuc", **OPTIONS)
    attrs = read_attrs(output)
    (train_features, _) = H5Dataset(output, "train").get_data(slice(None))

    expected_checksums = {
        name: {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()} for name, path in paths.items()
    }
    assert attrs["raw_files"] == expected_checksums
    assert attrs["n_train"] == 8
    assert attrs["n_test"] == 4
    assert attrs["classes"] == list(CLASSES)
    assert "our choice" in attrs["split_rule"]
    assert "Lazebnik" in attrs["source"]
    assert attrs["train_mean"] == pytest.approx((train_features / 255).mean(), rel=1e-12)
    assert attrs["train_std"] == pytest.approx((train_features / 255).std(), rel=1e-12)


@pytest.mark.parametrize("layout", ["class", "zip"])
def test_subfolder_layouts_match_flat(tmp_path, layout):
    make_database(tmp_path / "flat")
    paths = make_database(tmp_path / layout, layout=layout)
    flat = bark.prepare(tmp_path / "flat.hdf5", from_dir=tmp_path / "flat", **OPTIONS)
    nested = bark.prepare(tmp_path / "nested.hdf5", from_dir=tmp_path / layout, **OPTIONS)

    for split in ("train", "test"):
        for left, right in zip(H5Dataset(flat, split).get_data(slice(None)),
                               H5Dataset(nested, split).get_data(slice(None)), strict=True):
            np.testing.assert_array_equal(left, right)
    folder_name = paths["T01_01.jpg"].parent.name
    assert f"{folder_name}/T01_01.jpg" in read_attrs(nested)["raw_files"]


def test_wrong_size_image_rejected(tmp_path):
    paths = make_database(tmp_path / "uiuc")
    odd = paths["T02_03.jpg"]
    Image.fromarray(np.zeros((20, 30), dtype=np.uint8), mode="L").save(odd)
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(ValueError, match=r"is 30x20 pixels \(width x height\).* is 32x24") as error:
        bark.prepare(out / "bark.hdf5", from_dir=tmp_path / "uiuc", **OPTIONS)
    assert str(odd) in str(error.value)
    assert list(out.iterdir()) == []


def test_missing_class_rejected(tmp_path):
    paths = make_database(tmp_path / "uiuc")
    for index in range(1, PER_CLASS + 1):
        paths[f"T03_{index:02d}.jpg"].unlink()
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(bark.BarkFilesNotFoundError) as error:
        bark.prepare(out / "bark.hdf5", from_dir=tmp_path / "uiuc", **OPTIONS)
    message = str(error.value)
    assert "class T03: all 3 files (T03_01.jpg to T03_03.jpg)" in message
    assert str(tmp_path / "uiuc") in message
    assert "Ponce group" in message
    assert "--from DIR" in message
    assert isinstance(error.value, FileNotFoundError)
    assert list(out.iterdir()) == []


def test_missing_file_named(tmp_path):
    paths = make_database(tmp_path / "uiuc")
    paths["T04_02.jpg"].unlink()

    with pytest.raises(bark.BarkFilesNotFoundError, match=r"1 of 12 files missing: class T04: T04_02.jpg\)"):
        bark.prepare(tmp_path / "bark.hdf5", from_dir=tmp_path / "uiuc", **OPTIONS)
    assert not (tmp_path / "bark.hdf5").exists()


def test_missing_folder_named(tmp_path):
    with pytest.raises(bark.BarkFilesNotFoundError, match="absent \\(folder does not exist\\)"):
        bark.prepare(tmp_path / "bark.hdf5", from_dir=tmp_path / "absent", **OPTIONS)


def test_damaged_jpeg_rejected(tmp_path):
    paths = make_database(tmp_path / "uiuc")
    paths["T01_02.jpg"].write_bytes(b"not a JPEG")

    with pytest.raises(ValueError, match="failed to read image .*T01_02.jpg") as error:
        bark.prepare(tmp_path / "bark.hdf5", from_dir=tmp_path / "uiuc", **OPTIONS)
    assert "UIUC texture database" in str(error.value)
    assert not (tmp_path / "bark.hdf5").exists()


def test_search_order_without_from_dir(tmp_path, monkeypatch):
    data = tmp_path / "data"
    first_raw = tmp_path / "raw_a"
    second_raw = tmp_path / "raw_b"
    make_database(data / "raw" / "bark", brightness=100)
    make_database(second_raw, brightness=7)
    first_raw.mkdir()
    monkeypatch.setenv("DPM_DATA", str(data))
    monkeypatch.setenv("DPM_RAW_DATA", os.pathsep.join([str(first_raw), str(second_raw)]))

    assert bark.search_folders() == [first_raw, second_raw, data / "raw" / "bark"]
    output = bark.prepare(**OPTIONS)
    assert output == data / "bark.hdf5"
    (features, _) = H5Dataset(output, "train").get_data(slice(0, 1))
    # raw_a lacks the files, so the first complete folder is raw_b.
    np.testing.assert_array_equal(features[0, 0], read_with_pillow(second_raw / "T01_01.jpg"))

    # Without the data folder's copy, the DPM_RAW_DATA folders are searched in order.
    for path in (data / "raw" / "bark").iterdir():
        path.unlink()
    output = bark.prepare(overwrite=True, **OPTIONS)
    (features, _) = H5Dataset(output, "train").get_data(slice(0, 1))
    np.testing.assert_array_equal(features[0, 0], read_with_pillow(second_raw / "T01_01.jpg"))


def test_search_lists_every_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DPM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DPM_RAW_DATA", str(tmp_path / "elsewhere"))

    with pytest.raises(bark.BarkFilesNotFoundError) as error:
        bark.prepare(**OPTIONS)
    message = str(error.value)
    assert str(tmp_path / "data" / "raw" / "bark") in message
    assert str(tmp_path / "elsewhere") in message


def test_existing_output_rejected(tmp_path):
    output = tmp_path / "bark.hdf5"
    output.write_bytes(b"keep")

    with pytest.raises(FileExistsError, match="overwrite=True"):
        bark.prepare(output, from_dir=tmp_path / "absent", **OPTIONS)
    assert output.read_bytes() == b"keep"


def test_split_must_leave_test_images(tmp_path):
    with pytest.raises(ValueError, match=r"train_per_class \(3\) must be less than images_per_class \(3\)"):
        bark.prepare(tmp_path / "bark.hdf5", from_dir=tmp_path, images_per_class=3, train_per_class=3)
