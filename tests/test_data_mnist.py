"""Tests of the MNIST converter dpm.data.mnist, on tiny IDX files and on the real files.

The real-data test runs when a folder of the DPM_RAW_DATA environment variable contains
the four MNIST .gz files, and compares the converted file with a direct NumPy reading.
"""

import gzip
import hashlib
import os
import struct
import subprocess
import sys
import textwrap
import urllib.error

import h5py
import numpy as np
import pytest

from dpm.data import mnist, raw
from dpm.data.hdf5 import H5Dataset, read_attrs, split_names, split_table
from dpm.data.mnist import IdxFormatError, parse_idx
from dpm.data.raw import ChecksumMismatchError, RawFilesNotFoundError

N_TRAIN, N_TEST = 7, 3
FILE_NAMES = (mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS, mnist.TEST_IMAGES, mnist.TEST_LABELS)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Make every download fail as on a machine without network."""

    def offline_open(url, timeout):
        raise urllib.error.URLError(f"no network in tests ({url})")

    monkeypatch.setattr(raw, "_open_url", offline_open)


def idx_bytes(array, type_code=0x08):
    """Encode an array in the IDX format, written independently of dpm.data.mnist."""
    big_endian = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(big_endian[type_code]).tobytes()


def make_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {
        mnist.TRAIN_IMAGES: rng.integers(0, 256, size=(N_TRAIN, 28, 28), dtype=np.uint8),
        mnist.TRAIN_LABELS: rng.integers(0, 10, size=N_TRAIN, dtype=np.uint8),
        mnist.TEST_IMAGES: rng.integers(0, 256, size=(N_TEST, 28, 28), dtype=np.uint8),
        mnist.TEST_LABELS: rng.integers(0, 10, size=N_TEST, dtype=np.uint8),
    }


def write_files(folder, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(array), mtime=0))
    return folder


@pytest.fixture
def tiny(tmp_path):
    """Write four tiny MNIST files; return ``(folder, arrays)``."""
    arrays = make_arrays()
    return write_files(tmp_path / "raw", arrays), arrays


def test_convert_tiny_files(tiny, tmp_path):
    folder, arrays = tiny
    path = mnist.convert(folder, tmp_path / "out" / "mnist.hdf5")

    train = H5Dataset(path, "train", load_in_memory=True)
    test = H5Dataset(path, "test", load_in_memory=True)
    train_features, train_targets = train.get_data(slice(None))
    test_features, test_targets = test.get_data(slice(None))
    assert train.sources == ("features", "targets")
    assert train.dim_labels["features"] == ("batch", "channel", "height", "width")
    assert train.dim_labels["targets"] == ("batch", "index")
    assert train_features.dtype == np.uint8
    assert train_targets.dtype == np.uint8
    assert train_features.shape == (N_TRAIN, 1, 28, 28)
    assert train_targets.shape == (N_TRAIN, 1)
    np.testing.assert_array_equal(train_features[:, 0], arrays[mnist.TRAIN_IMAGES])
    np.testing.assert_array_equal(train_targets[:, 0], arrays[mnist.TRAIN_LABELS])
    np.testing.assert_array_equal(test_features[:, 0], arrays[mnist.TEST_IMAGES])
    np.testing.assert_array_equal(test_targets[:, 0], arrays[mnist.TEST_LABELS])


def test_convert_stores_statistics_and_checksums(tiny, tmp_path):
    folder, arrays = tiny
    path = mnist.convert(folder, tmp_path / "mnist.hdf5")

    attrs = read_attrs(path)
    pixels = arrays[mnist.TRAIN_IMAGES].astype(np.float64) / 255
    assert attrs["train_mean"] == pytest.approx(pixels.mean(), rel=1e-14)
    assert attrs["train_std"] == pytest.approx(pixels.std(), rel=1e-14)
    assert attrs["dataset"] == "mnist"
    assert "CC BY-SA 3.0" in attrs["license"]
    assert "yann.lecun.com" in attrs["source"]
    for name in FILE_NAMES:
        data = (folder / name).read_bytes()
        assert attrs["raw_files"][name]["sha256"] == hashlib.sha256(data).hexdigest()
        content_digest = hashlib.sha256(gzip.decompress(data)).hexdigest()
        assert attrs["raw_files"][name]["content_sha256"] == content_digest


def test_split_names_are_str(tiny, tmp_path):
    path = mnist.convert(tiny[0], tmp_path / "mnist.hdf5")

    names = split_names(path)
    assert names == ["test", "train"]
    assert all(type(name) is str for name in names)
    assert all(type(row[0]) is str and type(row[1]) is str for row in split_table(path))


def test_split_table_independent_of_hash_seed(tiny, tmp_path):
    folder, _ = tiny
    script = textwrap.dedent(
        """
        import sys
        from dpm.data import mnist
        mnist.convert(sys.argv[1], sys.argv[2])
        """
    )
    tables = []
    for hash_seed in ("0", "4242"):
        path = tmp_path / f"hash_seed_{hash_seed}.hdf5"
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-c", script, str(folder), str(path)],
            env=environment, check=True, capture_output=True,
        )
        with h5py.File(path, "r") as file:
            tables.append(file.attrs["split"].tobytes())

    assert tables[0] == tables[1]


@pytest.mark.parametrize(
    "type_code, dtype",
    [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
     (0x0D, np.float32), (0x0E, np.float64)],
)
def test_parse_idx_every_type(type_code, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if type_code == 0x08:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)

    parsed = parse_idx(idx_bytes(array, type_code))

    assert parsed.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(parsed, array)


def test_parse_idx_wrong_magic():
    data = bytearray(idx_bytes(np.zeros((2, 2), dtype=np.uint8)))
    data[2] = 0x07

    with pytest.raises(IdxFormatError, match="magic number 00000702"):
        parse_idx(bytes(data))


def test_parse_idx_wrong_size():
    data = idx_bytes(np.zeros((4, 5), dtype=np.uint8))

    with pytest.raises(IdxFormatError, match="31 bytes.*needs exactly 32"):
        parse_idx(data[:-1])


def test_convert_rejects_wrong_magic(tiny, tmp_path):
    folder, arrays = tiny
    data = bytearray(idx_bytes(arrays[mnist.TEST_LABELS]))
    data[0] = 0x08
    (folder / mnist.TEST_LABELS).write_bytes(gzip.compress(bytes(data)))
    output = tmp_path / "out"
    output.mkdir()

    with pytest.raises(IdxFormatError, match=mnist.TEST_LABELS):
        mnist.convert(folder, output / "mnist.hdf5")

    assert os.listdir(output) == []


def test_convert_rejects_truncated_gzip(tiny, tmp_path):
    folder, _ = tiny
    path = folder / mnist.TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:-100])
    output = tmp_path / "out"
    output.mkdir()

    with pytest.raises(IdxFormatError, match="not a complete gzip file"):
        mnist.convert(folder, output / "mnist.hdf5")

    assert os.listdir(output) == []


def test_convert_rejects_truncated_content(tiny, tmp_path):
    folder, arrays = tiny
    data = idx_bytes(arrays[mnist.TRAIN_IMAGES])[:-28]
    (folder / mnist.TRAIN_IMAGES).write_bytes(gzip.compress(data))
    output = tmp_path / "out"
    output.mkdir()

    with pytest.raises(IdxFormatError, match="truncated"):
        mnist.convert(folder, output / "mnist.hdf5")

    assert os.listdir(output) == []


def test_convert_rejects_label_count_mismatch(tmp_path):
    arrays = make_arrays()
    arrays[mnist.TEST_LABELS] = arrays[mnist.TEST_LABELS][:-1]
    folder = write_files(tmp_path / "raw", arrays)

    with pytest.raises(IdxFormatError, match="3 images but .* has 2 labels"):
        mnist.convert(folder, tmp_path / "mnist.hdf5")


def test_convert_names_missing_files(tiny, tmp_path):
    folder, _ = tiny
    (folder / mnist.TEST_IMAGES).unlink()

    with pytest.raises(FileNotFoundError, match=mnist.TEST_IMAGES):
        mnist.convert(folder, tmp_path / "mnist.hdf5")


def test_prepare_rejects_wrong_checksum(tiny, tmp_path, monkeypatch):
    folder, _ = tiny
    monkeypatch.setenv("DPM_DATA", str(tmp_path / "data_home"))
    monkeypatch.delenv("DPM_RAW_DATA", raising=False)
    output = tmp_path / "out"
    output.mkdir()

    with pytest.raises(ChecksumMismatchError) as caught:
        mnist.prepare(output / "mnist.hdf5", from_dir=folder)

    message = str(caught.value)
    assert mnist.TRAIN_IMAGES in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    assert os.listdir(output) == []
    assert not (tmp_path / "data_home" / "raw").exists()


def test_prepare_lists_all_missing_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DPM_DATA", str(tmp_path / "data_home"))
    monkeypatch.delenv("DPM_RAW_DATA", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(RawFilesNotFoundError) as caught:
        mnist.prepare(tmp_path / "mnist.hdf5", from_dir=empty)

    message = str(caught.value)
    for name in FILE_NAMES:
        assert name in message
        assert f"{mnist.HOMEPAGE}{name}" in message
        assert f"{mnist.MIRROR}{name}" in message
    assert str(empty) in message
    assert "dpm data prepare mnist --from DIR" in message
    assert not (tmp_path / "mnist.hdf5").exists()
    assert os.listdir(tmp_path / "data_home" / "raw" / "mnist") == []


def real_mnist_folder():
    """Return the first DPM_RAW_DATA folder with the four MNIST files, or None."""
    for entry in os.environ.get("DPM_RAW_DATA", "").split(os.pathsep):
        if entry and all(os.path.isfile(os.path.join(entry, name)) for name in FILE_NAMES):
            return entry
    return None


@pytest.fixture(scope="session")
def real_mnist(tmp_path_factory):
    """Convert the real MNIST files once per session; return ``(hdf5 path, raw folder)``."""
    folder = real_mnist_folder()
    if folder is None:
        pytest.skip(
            "no folder of DPM_RAW_DATA contains the four MNIST .gz files; set DPM_RAW_DATA "
            "to such a folder to compare the full conversion with NumPy"
        )
    output = tmp_path_factory.mktemp("real_mnist")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DPM_DATA", str(output / "data_home"))
        path = mnist.prepare(output / "mnist.hdf5")
    return path, folder


def read_directly(folder, name, header_size):
    with gzip.open(os.path.join(folder, name), "rb") as stream:
        return np.frombuffer(stream.read(), dtype=np.uint8, offset=header_size)


def test_real_mnist_matches_numpy(real_mnist):
    path, folder = real_mnist
    expected = {
        "train": (
            read_directly(folder, mnist.TRAIN_IMAGES, 16).reshape(-1, 28, 28),
            read_directly(folder, mnist.TRAIN_LABELS, 8),
        ),
        "test": (
            read_directly(folder, mnist.TEST_IMAGES, 16).reshape(-1, 28, 28),
            read_directly(folder, mnist.TEST_LABELS, 8),
        ),
    }
    assert len(expected["train"][0]) == 60_000
    assert len(expected["test"][0]) == 10_000

    for split, (images, labels) in expected.items():
        with H5Dataset(path, split) as dataset:
            features, targets = dataset.get_data(slice(None))
        assert features.shape == (len(images), 1, 28, 28)
        assert features.sum(dtype=np.int64) == images.sum(dtype=np.int64)
        image_sums = features.sum(axis=(1, 2, 3), dtype=np.int64)
        for index in (0, 1, len(images) // 2, len(images) - 1):
            assert image_sums[index] == images[index].sum(dtype=np.int64)
        np.testing.assert_array_equal(targets[:, 0], labels)


def test_real_mnist_statistics(real_mnist):
    path, folder = real_mnist
    pixels = read_directly(folder, mnist.TRAIN_IMAGES, 16).astype(np.float64) / 255

    attrs = read_attrs(path)
    assert attrs["train_mean"] == pytest.approx(pixels.mean(), rel=1e-12)
    assert attrs["train_std"] == pytest.approx(pixels.std(), rel=1e-12)
    assert attrs["n_train"] == 60_000
    assert attrs["n_test"] == 10_000
