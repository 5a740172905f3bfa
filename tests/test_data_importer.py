"""Tests of dpm.data.importer (.npz arrays and image folders) and of the CIFAR-10 sample."""

import os

import numpy as np
import pytest
from PIL import Image

from dpm.data import cifar10_subset
from dpm.data.hdf5 import H5Dataset, read_attrs
from dpm.data.importer import (
    ImageSizeMismatchError,
    ImportDataError,
    NonFiniteValuesError,
    import_data,
    import_image_folder,
    import_npz,
    split_rows,
)


def read_split(path, split):
    with H5Dataset(path, split) as dataset:
        return dataset.get_data(slice(None))[0]


@pytest.fixture
def output(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_npz_channels_last_to_first(tmp_path, output):
    images = np.random.default_rng(0).integers(0, 256, size=(10, 4, 5, 3), dtype=np.uint8)
    source = tmp_path / "images.npz"
    np.savez(source, pictures=images)

    path = import_npz(source, output / "images.hdf5", n_test=3, seed=None)

    train, test = read_split(path, "train"), read_split(path, "test")
    np.testing.assert_array_equal(train, images[:7].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(test, images[7:].transpose(0, 3, 1, 2))
    with H5Dataset(path, "train") as dataset:
        assert dataset.dim_labels["features"] == ("batch", "channel", "height", "width")
    attrs = read_attrs(path)
    pixels = images[:7].astype(np.float64) / 255
    assert attrs["train_mean"] == pytest.approx(pixels.mean(), rel=1e-14)
    assert attrs["train_std"] == pytest.approx(pixels.std(), rel=1e-14)
    assert attrs["source_array"] == "pictures"


def test_npz_array_chosen_by_name(tmp_path, output):
    source = tmp_path / "two.npz"
    first = np.zeros((4, 2, 2), dtype=np.uint8)
    second = np.full((6, 3, 3), 7, dtype=np.uint8)
    np.savez(source, first=first, second=second)

    path = import_npz(source, output / "two.hdf5", array_name="second", n_test=1)

    assert read_split(path, "train").shape == (5, 1, 3, 3)


def test_npz_several_arrays_need_name(tmp_path, output):
    source = tmp_path / "two.npz"
    np.savez(source, first=np.zeros((4, 2)), second=np.zeros((4, 2)))

    with pytest.raises(ImportDataError, match=r"\['first', 'second'\]; choose one"):
        import_npz(source, output / "two.hdf5")

    assert os.listdir(output) == []


def test_npz_unknown_name_rejected(tmp_path, output):
    source = tmp_path / "one.npz"
    np.savez(source, only=np.zeros((4, 2)))

    with pytest.raises(ImportDataError, match="no array 'other'"):
        import_npz(source, output / "one.hdf5", array_name="other")


def test_seeded_split_matches_rng_choice(tmp_path, output):
    vectors = np.arange(40, dtype=np.float32).reshape(20, 2)
    source = tmp_path / "vectors.npz"
    np.savez(source, vectors=vectors)

    path = import_npz(source, output / "vectors.hdf5", n_test=6, seed=11)

    test_rows = np.sort(np.random.default_rng(11).choice(20, size=6, replace=False))
    train_rows = np.setdiff1d(np.arange(20), test_rows)
    np.testing.assert_array_equal(read_split(path, "test"), vectors[test_rows])
    np.testing.assert_array_equal(read_split(path, "train"), vectors[train_rows])
    with H5Dataset(path, "train") as dataset:
        assert dataset.dim_labels["features"] == ("batch", "feature")


def test_seeded_split_is_reproducible():
    first, _ = split_rows(50, test_fraction=0.2, seed=3)
    second, _ = split_rows(50, test_fraction=0.2, seed=3)
    other, _ = split_rows(50, test_fraction=0.2, seed=4)

    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(np.sort(first), np.arange(50))


@pytest.mark.parametrize(
    "n_rows, fraction, n_train",
    [(10, 0.25, 7), (10, 0.1, 9), (3, 0.5, 1), (100, 0.1, 90)],
)
def test_split_fraction_rounds_half_up(n_rows, fraction, n_train):
    _, train_count = split_rows(n_rows, test_fraction=fraction)

    assert train_count == n_train


@pytest.mark.parametrize(
    "options, message",
    [
        ({"n_test": 0}, "from 1 to 9"),
        ({"n_test": 10}, "from 1 to 9"),
        ({"test_fraction": 1.0}, "between 0 and 1"),
        ({"test_fraction": 0.01}, "0 of 10 rows"),
        ({"n_test": 2, "test_fraction": 0.2}, "not both"),
    ],
)
def test_split_rejects_empty_split(options, message):
    with pytest.raises(ValueError, match=message):
        split_rows(10, **options)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_rejected(tmp_path, output, bad_value):
    values = np.ones((8, 3), dtype=np.float32)
    values[5, 1] = bad_value
    source = tmp_path / "values.npz"
    np.savez(source, values=values)

    with pytest.raises(NonFiniteValuesError, match="1 NaN or infinite values, the first in example 5"):
        import_npz(source, output / "values.hdf5")

    assert os.listdir(output) == []


def test_float_statistics_use_stored_values(tmp_path, output):
    values = np.random.default_rng(2).normal(3.0, 2.0, size=(12, 4, 4)).astype(np.float32)
    source = tmp_path / "values.npz"
    np.savez(source, values=values)

    path = import_npz(source, output / "values.hdf5", n_test=2, seed=None)

    attrs = read_attrs(path)
    assert read_split(path, "train").dtype == np.float32
    assert attrs["train_mean"] == pytest.approx(values[:10].astype(np.float64).mean(), rel=1e-12)
    assert attrs["train_std"] == pytest.approx(values[:10].astype(np.float64).std(), rel=1e-12)
    assert attrs["train_statistics_scale"] == 1.0


def test_integers_outside_byte_range_rejected(tmp_path, output):
    source = tmp_path / "counts.npz"
    np.savez(source, counts=np.array([[0, 300], [1, 2], [3, 4]]))

    with pytest.raises(ImportDataError, match="from 0 to 300, outside 0-255"):
        import_npz(source, output / "counts.hdf5")

    assert os.listdir(output) == []


def test_small_integers_become_uint8(tmp_path, output):
    counts = np.array([[0, 255], [1, 2], [3, 4]], dtype=np.int64)
    source = tmp_path / "counts.npz"
    np.savez(source, counts=counts)

    path = import_npz(source, output / "counts.hdf5", n_test=1, seed=None)

    train = read_split(path, "train")
    assert train.dtype == np.uint8
    np.testing.assert_array_equal(train, counts[:2])


def write_images(folder, arrays, suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, array in enumerate(arrays):
        path = folder / f"image_{index:02d}{suffix}"
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


def test_png_folder_rgb(tmp_path, output):
    images = np.random.default_rng(5).integers(0, 256, size=(6, 5, 7, 3), dtype=np.uint8)
    write_images(tmp_path / "pngs", images)

    path = import_image_folder(tmp_path / "pngs", output / "pngs.hdf5", n_test=2, seed=None)

    train, test = read_split(path, "train"), read_split(path, "test")
    np.testing.assert_array_equal(train, images[:4].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(test, images[4:].transpose(0, 3, 1, 2))
    attrs = read_attrs(path)
    assert attrs["image_mode"] == "RGB"
    assert attrs["source_files"] == 6


def test_jpeg_folder_gray(tmp_path, output):
    images = np.random.default_rng(6).integers(0, 256, size=(5, 8, 6), dtype=np.uint8)
    files = write_images(tmp_path / "jpegs" / "nested", images, suffix=".JPG")
    # JPEG is lossy, so compare with the pixels that Pillow decodes from each file.
    decoded = np.stack([np.asarray(Image.open(file)) for file in files])

    path = import_data(tmp_path / "jpegs", output / "jpegs.hdf5", n_test=1, seed=None)

    assert read_split(path, "train").shape == (4, 1, 8, 6)
    np.testing.assert_array_equal(read_split(path, "train")[:, 0], decoded[:4])
    np.testing.assert_array_equal(read_split(path, "test")[:, 0], decoded[4:])
    assert read_attrs(path)["image_mode"] == "L"


def test_mixed_gray_and_color_read_as_rgb(tmp_path, output):
    gray = np.full((4, 4), 90, dtype=np.uint8)
    color = np.zeros((4, 4, 3), dtype=np.uint8)
    write_images(tmp_path / "mixed", [gray, color])

    path = import_image_folder(tmp_path / "mixed", output / "mixed.hdf5", n_test=1, seed=None)

    train = read_split(path, "train")
    assert train.shape == (1, 3, 4, 4)
    assert (train == 90).all()


def test_image_size_mismatch_names_file(tmp_path, output):
    images = [np.zeros((6, 4), dtype=np.uint8)] * 3 + [np.zeros((5, 7), dtype=np.uint8)]
    write_images(tmp_path / "sizes", images)

    with pytest.raises(ImageSizeMismatchError) as caught:
        import_image_folder(tmp_path / "sizes", output / "sizes.hdf5")

    message = str(caught.value)
    assert "image_03.png is 7x5 pixels" in message
    assert "image_00.png is 4x6" in message
    assert os.listdir(output) == []


def test_empty_folder_rejected(tmp_path, output):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")

    with pytest.raises(ImportDataError, match="no images found"):
        import_image_folder(tmp_path / "empty", output / "empty.hdf5")


def test_unreadable_image_named(tmp_path, output):
    write_images(tmp_path / "broken", [np.zeros((4, 4), dtype=np.uint8)])
    (tmp_path / "broken" / "image_99.png").write_bytes(b"not a png")

    with pytest.raises(ImportDataError, match="image_99.png"):
        import_image_folder(tmp_path / "broken", output / "broken.hdf5")

    assert os.listdir(output) == []


def test_sixteen_bit_image_rejected(tmp_path, output):
    write_images(tmp_path / "wide", [np.zeros((4, 4), dtype=np.uint8)])
    Image.fromarray(np.full((4, 4), 1000, dtype=np.uint16)).save(tmp_path / "wide" / "deep.png")

    with pytest.raises(ImportDataError, match="deep.png has the Pillow mode 'I;16'"):
        import_image_folder(tmp_path / "wide", output / "wide.hdf5")

    assert os.listdir(output) == []


def test_existing_output_kept(tmp_path, output):
    source = tmp_path / "values.npz"
    np.savez(source, values=np.zeros((4, 2)))
    (output / "values.hdf5").write_bytes(b"keep me")

    with pytest.raises(FileExistsError, match="overwrite=True"):
        import_npz(source, output / "values.hdf5")

    assert (output / "values.hdf5").read_bytes() == b"keep me"


def real_sample_folder():
    """Return the first DPM_RAW_DATA folder with the CIFAR-10 sample, or None."""
    for entry in os.environ.get("DPM_RAW_DATA", "").split(os.pathsep):
        if entry and os.path.isfile(os.path.join(entry, cifar10_subset.NPZ_FILE)):
            return entry
    return None


def test_cifar10_subset_real_file(tmp_path, monkeypatch):
    folder = real_sample_folder()
    if folder is None:
        pytest.skip(
            f"no folder of DPM_RAW_DATA contains {cifar10_subset.NPZ_FILE}; set DPM_RAW_DATA "
            "to such a folder to import the CIFAR-10 sample"
        )
    monkeypatch.setenv("DPM_DATA", str(tmp_path / "data_home"))
    images = np.load(os.path.join(folder, cifar10_subset.NPZ_FILE))["images"]

    path = cifar10_subset.prepare()

    assert path == tmp_path / "data_home" / "cifar10_subset.hdf5"
    train, test = read_split(path, "train"), read_split(path, "test")
    assert train.shape == (3500, 3, 32, 32)
    assert test.shape == (500, 3, 32, 32)
    assert train.dtype == np.uint8
    np.testing.assert_array_equal(train, images[:3500].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(test, images[3500:].transpose(0, 3, 1, 2))
    attrs = read_attrs(path)
    assert "4000-image sample of CIFAR-10, not the full set" in attrs["sample"]
    assert attrs["train_mean"] == pytest.approx((images[:3500] / 255).mean(), rel=1e-12)
    assert attrs["train_std"] == pytest.approx((images[:3500] / 255).std(), rel=1e-12)
