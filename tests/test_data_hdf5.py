"""Tests of the HDF5 data file layout in dpm.data.hdf5."""

import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from dpm.data.hdf5 import (
    DataFileError,
    H5Dataset,
    read_attrs,
    split_names,
    split_table,
    write_dataset,
)

N_ROWS = 12


def make_sources():
    rng = np.random.default_rng(7)
    return {
        "features": (rng.standard_normal((N_ROWS, 3)).astype(np.float32), ("batch", "feature")),
        "targets": (np.arange(N_ROWS, dtype=np.int64) % 5, ("batch",)),
        "images": (
            rng.integers(0, 256, size=(N_ROWS, 2, 4, 5), dtype=np.uint8),
            ("batch", "channel", "height", "width"),
        ),
    }


SPLITS = {"train": (0, 8), "valid": (6, 9), "test": (9, N_ROWS)}
ATTRS = {
    "name": "toy",
    "count": 3,
    "ratio": 0.125,
    "flag": True,
    "shape": [28, 28],
    "config": {"noise": 0.25, "labels": ["a", "b"]},
    "nothing": None,
}


@pytest.fixture
def toy_file(tmp_path):
    path = tmp_path / "toy.hdf5"
    write_dataset(path, make_sources(), SPLITS, attrs=ATTRS)
    return path


def test_round_trip_all_splits(toy_file):
    sources = make_sources()
    for split, (start, stop) in SPLITS.items():
        dataset = H5Dataset(toy_file, split)
        assert dataset.sources == ("features", "images", "targets")
        assert dataset.num_examples == stop - start
        arrays = dataset.get_data(slice(None))
        for name, array in zip(dataset.sources, arrays):
            expected = sources[name][0][start:stop]
            assert array.dtype == expected.dtype
            np.testing.assert_array_equal(array, expected)
        dataset.close()


def test_round_trip_dim_labels(toy_file):
    dataset = H5Dataset(toy_file, "train")
    for name, (_, labels) in make_sources().items():
        assert dataset.dim_labels[name] == labels
    # The labels are stored as HDF5 dimension labels, readable by any h5py user.
    with h5py.File(toy_file, "r") as file:
        assert tuple(dim.label for dim in file["images"].dims) == (
            "batch",
            "channel",
            "height",
            "width",
        )


def test_round_trip_attrs(toy_file):
    dataset = H5Dataset(toy_file, "test")
    assert dataset.attrs == ATTRS
    assert read_attrs(toy_file) == ATTRS
    assert type(dataset.attrs["count"]) is int
    assert type(dataset.attrs["flag"]) is bool
    assert type(dataset.attrs["name"]) is str


def test_requested_source_order(toy_file):
    dataset = H5Dataset(toy_file, "valid", sources=["targets", "features"])
    targets, features = dataset.get_data([0, 2])
    sources = make_sources()
    np.testing.assert_array_equal(targets, sources["targets"][0][[6, 8]])
    np.testing.assert_array_equal(features, sources["features"][0][[6, 8]])


def test_split_table_layout(toy_file):
    assert split_names(toy_file) == ["test", "train", "valid"]
    assert all(type(name) is str for name in split_names(toy_file))

    table = split_table(toy_file)
    assert table[0] == ("test", "features", 9, 12)
    assert len(table) == len(SPLITS) * 3
    assert table == sorted(table)
    for split, source, start, stop in table:
        assert type(split) is str
        assert type(source) is str
        assert (start, stop) == SPLITS[split]

    with h5py.File(toy_file, "r") as file:
        raw = file.attrs["split"]
    assert raw.dtype.names == ("split", "source", "start", "stop")
    assert raw.dtype["split"].kind == "S"
    assert raw.dtype["source"].kind == "S"
    assert raw.dtype["start"] == np.dtype("<i8")


WRITE_SCRIPT = textwrap.dedent(
    """
    import sys
    import h5py
    import numpy as np
    from dpm.data.hdf5 import write_dataset

    path, order = sys.argv[1], sys.argv[2]
    splits = {"train": (0, 8), "valid": (6, 9), "test": (9, 12)}
    if order == "reversed":
        splits = dict(reversed(list(splits.items())))
    sources = {
        "targets": (np.arange(12), ("batch",)),
        "features": (np.ones((12, 2)), ("batch", "feature")),
    }
    write_dataset(path, sources, splits, attrs={"b": {"y": 1, "x": [2, 3]}, "a": 1})
    with h5py.File(path, "r") as file:
        sys.stdout.write(file.attrs["split"].tobytes().hex())
    """
)


def test_split_table_independent_of_hash_seed(tmp_path):
    outputs = []
    files = []
    for index, (hash_seed, order) in enumerate([("1", "given"), ("2", "reversed")]):
        path = tmp_path / f"file{index}.hdf5"
        environment = dict(os.environ, PYTHONHASHSEED=hash_seed)
        completed = subprocess.run(
            [sys.executable, "-c", WRITE_SCRIPT, str(path), order],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(completed.stdout)
        files.append(path.read_bytes())
    assert outputs[0]
    assert outputs[0] == outputs[1]
    # The whole file is byte-identical too, because h5py writes no object timestamps
    # unless track_times is set.
    assert files[0] == files[1]


def test_lazy_and_in_memory_identical(toy_file):
    requests = [
        slice(None),
        slice(1, 5),
        slice(0, 8, 3),
        slice(-3, None),
        [4, 0, 7, 0, 2],
        np.array([7, 6, 5], dtype=np.int32),
        [],
    ]
    lazy = H5Dataset(toy_file, "train")
    loaded = H5Dataset(toy_file, "train", load_in_memory=True)
    for request in requests:
        for lazy_array, loaded_array in zip(lazy.get_data(request), loaded.get_data(request)):
            assert lazy_array.dtype == loaded_array.dtype
            assert lazy_array.shape == loaded_array.shape
            np.testing.assert_array_equal(lazy_array, loaded_array)
    lazy.close()


def test_unsorted_index_request(toy_file):
    sources = make_sources()
    request = np.array([2, 0, 2, 1])
    with H5Dataset(toy_file, "test") as dataset:
        features, images, targets = dataset.get_data(request)
    np.testing.assert_array_equal(features, sources["features"][0][9:][request])
    np.testing.assert_array_equal(images, sources["images"][0][9:][request])
    np.testing.assert_array_equal(targets, sources["targets"][0][9:][request])


def test_in_memory_batch_is_copy(toy_file):
    dataset = H5Dataset(toy_file, "train", load_in_memory=True)
    (batch, *_) = dataset.get_data(slice(0, 2))
    batch[:] = 0
    (again, *_) = dataset.get_data(slice(0, 2))
    np.testing.assert_array_equal(again, make_sources()["features"][0][:2])


def test_request_out_of_range(toy_file):
    dataset = H5Dataset(toy_file, "test")
    with pytest.raises(IndexError, match="index 3 is out of range"):
        dataset.get_data([0, 3])
    with pytest.raises(IndexError, match="index -1"):
        dataset.get_data([-1])
    with pytest.raises(TypeError, match=r"wrap a single index"):
        dataset.get_data(1)
    with pytest.raises(ValueError, match="step must be positive"):
        dataset.get_data(slice(None, None, -1))


def test_existing_path_rejected(toy_file):
    before = toy_file.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True") as error:
        write_dataset(toy_file, make_sources(), SPLITS)
    assert str(toy_file) in str(error.value)
    assert toy_file.read_bytes() == before


def test_overwrite_replaces_file(toy_file):
    sources = {"values": (np.arange(4.0), ("batch",))}
    write_dataset(toy_file, sources, {"all": (0, 4)}, overwrite=True)
    assert split_names(toy_file) == ["all"]
    (values,) = H5Dataset(toy_file, "all").get_data(slice(None))
    np.testing.assert_array_equal(values, np.arange(4.0))


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_source_rejected(tmp_path, bad_value):
    features = np.zeros((5, 2))
    features[1, 0] = bad_value
    features[3, 1] = bad_value
    path = tmp_path / "bad.hdf5"
    with pytest.raises(ValueError, match=r"source 'features' contains 2 NaN or infinite"):
        write_dataset(path, {"features": (features, ("batch", "feature"))}, {"all": (0, 5)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("sources", "splits", "message"),
    [
        (
            {"a": (np.zeros(4), ("batch",)), "b": (np.zeros(5), ("batch",))},
            {"all": (0, 4)},
            "same number of rows",
        ),
        ({"a": (np.zeros((4, 2)), ("batch",))}, {"all": (0, 4)}, "2 axes but 1 dimension labels"),
        ({"a": (np.zeros(4), ("batch",))}, {"all": (2, 2)}, r"0 <= start < stop <= 4"),
        ({"a": (np.zeros(4), ("batch",))}, {"all": (0, 5)}, r"0 <= start < stop <= 4"),
        ({"a": (np.zeros(4), ("batch",))}, {"all": (-1, 3)}, r"0 <= start < stop <= 4"),
        ({"a": (np.zeros(4), ("batch",))}, {"all": (0.0, 3)}, "integer"),
        ({"a/b": (np.zeros(4), ("batch",))}, {"all": (0, 4)}, "without '/'"),
        ({"a": (np.array(["x"] * 4), ("batch",))}, {"all": (0, 4)}, "byte-string"),
        ({}, {"all": (0, 4)}, "non-empty dict"),
        ({"a": (np.zeros(4), ("batch",))}, {}, "non-empty dict"),
    ],
)
def test_invalid_input_rejected(tmp_path, sources, splits, message):
    with pytest.raises(ValueError, match=message):
        write_dataset(tmp_path / "bad.hdf5", sources, splits)
    assert list(tmp_path.iterdir()) == []


def test_invalid_attrs_rejected(tmp_path):
    sources = {"a": (np.zeros(4), ("batch",))}
    with pytest.raises(ValueError, match="'split' is reserved"):
        write_dataset(tmp_path / "bad.hdf5", sources, {"all": (0, 4)}, attrs={"split": 1})
    with pytest.raises(ValueError, match="'when' is not JSON-serializable"):
        write_dataset(tmp_path / "bad.hdf5", sources, {"all": (0, 4)}, attrs={"when": object()})
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_temporary(tmp_path):
    # A directory at the destination makes the final os.replace fail after all data
    # were written to the temporary file.
    destination = tmp_path / "taken"
    destination.mkdir()
    sources = {"a": (np.zeros(4), ("batch",))}
    with pytest.raises(OSError):
        write_dataset(destination, sources, {"all": (0, 4)}, overwrite=True)
    assert [entry.name for entry in tmp_path.iterdir()] == ["taken"]
    assert list(destination.iterdir()) == []


def test_failed_h5py_write_leaves_no_temporary(tmp_path):
    # h5py cannot store a structured dtype with an object field. The error comes
    # from inside the write, after the temporary file was created.
    records = np.zeros(4, dtype=[("x", "f8"), ("y", "O")])
    with pytest.raises((TypeError, ValueError)):
        write_dataset(tmp_path / "out.hdf5", {"records": (records, ("batch",))}, {"all": (0, 4)})
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path):
    path = tmp_path / "absent.hdf5"
    with pytest.raises(FileNotFoundError, match="dpm data prepare") as error:
        H5Dataset(path, "train")
    assert str(path) in str(error.value)
    with pytest.raises(FileNotFoundError):
        split_names(path)


def test_truncated_file(toy_file, tmp_path):
    content = toy_file.read_bytes()
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(content[: len(content) // 2])
    with pytest.raises(DataFileError, match="delete it and create it again") as error:
        H5Dataset(truncated, "train")
    assert str(truncated) in str(error.value)
    assert isinstance(error.value, ValueError)


def test_non_hdf5_file(tmp_path):
    path = tmp_path / "text.hdf5"
    path.write_text("not an HDF5 file\n" * 10)
    with pytest.raises(DataFileError, match="not a valid HDF5 file"):
        split_names(path)


def test_foreign_hdf5_file(tmp_path):
    path = tmp_path / "foreign.hdf5"
    with h5py.File(path, "w") as file:
        file["x"] = np.arange(3)
    with pytest.raises(DataFileError, match="not a dpm data file"):
        H5Dataset(path, "train")


def test_unknown_split_and_source(toy_file):
    with pytest.raises(KeyError, match=r"available splits: \['test', 'train', 'valid'\]"):
        H5Dataset(toy_file, "validation")
    with pytest.raises(KeyError, match=r"available sources: \['features', 'images', 'targets'\]"):
        H5Dataset(toy_file, "train", sources=["features", "labels"])


def test_checksum_detects_changed_content(tmp_path):
    from dpm.data.hdf5 import verify_checksums

    path = tmp_path / "data.hdf5"
    features = np.arange(12.0).reshape(6, 2)
    write_dataset(path, {"features": (features, ("batch", "feature"))}, {"train": (0, 6)})
    verify_checksums(path)
    with h5py.File(path, "r+") as file:
        file["features"][2, 1] = -1.0
    with pytest.raises(DataFileError, match="features"):
        verify_checksums(path)
