"""Tests of the CIFAR-10 converter dpm.data.cifar10 on tiny tarballs in the published layout."""

import io
import os
import pickle
import tarfile
import urllib.error

import numpy as np
import pytest

from dpm.data import cifar10, raw
from dpm.data.cifar10 import CifarFormatError
from dpm.data.hdf5 import H5Dataset, read_attrs
from dpm.data.raw import ChecksumMismatchError

IMAGES_PER_BATCH = 3
LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
               b"dog", b"frog", b"horse", b"ship", b"truck"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Make every download fail as on a machine without network."""

    def offline_open(url, timeout):
        raise urllib.error.URLError(f"no network in tests ({url})")

    monkeypatch.setattr(raw, "_open_url", offline_open)


def make_batches(seed=0):
    """Return ``{member name: dict}`` like the published batches, with bytes keys."""
    rng = np.random.default_rng(seed)
    batches = {}
    for index, name in enumerate(cifar10.TRAIN_BATCHES + (cifar10.TEST_BATCH,)):
        batches[name] = {
            b"batch_label": f"batch {index}".encode(),
            b"labels": [int(label) for label in rng.integers(0, 10, IMAGES_PER_BATCH)],
            b"data": rng.integers(0, 256, size=(IMAGES_PER_BATCH, 3072), dtype=np.uint8),
            b"filenames": [f"image_{index}_{i}.png".encode() for i in range(IMAGES_PER_BATCH)],
        }
    batches[cifar10.META] = {b"label_names": LABEL_NAMES, b"num_vis": 3072}
    return batches


def pickle_as_numpy1(content):
    """Pickle with protocol 2 and NumPy 1's module name, as in the published batches."""
    data = pickle.dumps(content, protocol=2)
    # Protocol 2 writes a global as "c<module>\n<name>\n", with no length to adjust.
    return data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_tarball(path, members, serialize=pickle_as_numpy1):
    """Write ``{member name: bytes or object to pickle}`` under cifar-10-batches-py/."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            data = content if isinstance(content, bytes) else serialize(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def tiny(tmp_path):
    """Write a tiny tarball in the published layout; return ``(path, batches)``."""
    batches = make_batches()
    return write_tarball(tmp_path / "raw" / cifar10.TARBALL, batches), batches


def test_convert_tiny_tarball(tiny, tmp_path):
    tarball, batches = tiny
    path = cifar10.convert(tarball, tmp_path / "out" / "cifar10.hdf5")

    train_data = np.concatenate([batches[name][b"data"] for name in cifar10.TRAIN_BATCHES])
    train_labels = sum((batches[name][b"labels"] for name in cifar10.TRAIN_BATCHES), [])
    with H5Dataset(path, "train") as train, H5Dataset(path, "test") as test:
        train_features, train_targets = train.get_data(slice(None))
        test_features, test_targets = test.get_data(slice(None))
        assert train.dim_labels["features"] == ("batch", "channel", "height", "width")
        assert train.dim_labels["targets"] == ("batch", "index")
    assert train_features.dtype == np.uint8
    assert train_features.shape == (5 * IMAGES_PER_BATCH, 3, 32, 32)
    assert test_features.shape == (IMAGES_PER_BATCH, 3, 32, 32)
    assert train_targets.shape == (5 * IMAGES_PER_BATCH, 1)
    np.testing.assert_array_equal(train_targets[:, 0], train_labels)
    np.testing.assert_array_equal(test_targets[:, 0], batches[cifar10.TEST_BATCH][b"labels"])
    # A row is 1024 red, then 1024 green, then 1024 blue values, each 32x32 in row-major order.
    for image, channel, row, column in [(0, 0, 0, 0), (4, 1, 5, 7), (14, 2, 31, 30)]:
        flat_index = channel * 1024 + row * 32 + column
        assert train_features[image, channel, row, column] == train_data[image, flat_index]
    test_data = batches[cifar10.TEST_BATCH][b"data"]
    np.testing.assert_array_equal(test_features.reshape(IMAGES_PER_BATCH, -1), test_data)


def test_convert_reads_numpy2_pickles(tmp_path):
    batches = make_batches()
    tarball = write_tarball(tmp_path / cifar10.TARBALL, batches, serialize=pickle.dumps)

    path = cifar10.convert(tarball, tmp_path / "cifar10.hdf5")

    with H5Dataset(path, "test") as test:
        features, _ = test.get_data(slice(None))
    test_data = batches[cifar10.TEST_BATCH][b"data"]
    np.testing.assert_array_equal(features.reshape(IMAGES_PER_BATCH, -1), test_data)


def test_convert_stores_attributes(tiny, tmp_path):
    tarball, batches = tiny
    path = cifar10.convert(tarball, tmp_path / "cifar10.hdf5")

    attrs = read_attrs(path)
    pixels = np.concatenate(
        [batches[name][b"data"] for name in cifar10.TRAIN_BATCHES]
    ).astype(np.float64) / 255
    assert attrs["train_mean"] == pytest.approx(pixels.mean(), rel=1e-14)
    assert attrs["train_std"] == pytest.approx(pixels.std(), rel=1e-14)
    assert attrs["label_names"] == [name.decode() for name in LABEL_NAMES]
    assert attrs["n_train"] == 5 * IMAGES_PER_BATCH
    assert attrs["n_test"] == IMAGES_PER_BATCH
    assert "Krizhevsky" in attrs["source"]
    assert len(attrs["raw_files"][cifar10.TARBALL]["sha256"]) == 64


def test_missing_member_is_named(tmp_path):
    batches = make_batches()
    del batches[cifar10.TEST_BATCH]
    tarball = write_tarball(tmp_path / "raw" / cifar10.TARBALL, batches)
    output = tmp_path / "out"
    output.mkdir()

    with pytest.raises(CifarFormatError, match="no member cifar-10-batches-py/test_batch"):
        cifar10.convert(tarball, output / "cifar10.hdf5")

    assert os.listdir(output) == []


def test_truncated_tarball_is_rejected(tiny, tmp_path):
    tarball, _ = tiny
    tarball.write_bytes(tarball.read_bytes()[:-200])
    output = tmp_path / "out"
    output.mkdir()

    with pytest.raises(CifarFormatError, match="truncated or damaged"):
        cifar10.convert(tarball, output / "cifar10.hdf5")

    assert os.listdir(output) == []


class CallsGetcwd:
    """Pickles as a call of os.getcwd, a stand-in for code a tampered batch could run."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_pickle_with_other_class_is_rejected(tmp_path):
    batches = make_batches()
    batches[cifar10.TRAIN_BATCHES[0]][b"labels"] = CallsGetcwd()
    tarball = write_tarball(tmp_path / cifar10.TARBALL, batches)

    with pytest.raises(CifarFormatError, match="getcwd is not allowed"):
        cifar10.convert(tarball, tmp_path / "cifar10.hdf5")

    assert not (tmp_path / "cifar10.hdf5").exists()


def test_wrong_row_length_is_rejected(tmp_path):
    batches = make_batches()
    batches[cifar10.TEST_BATCH][b"data"] = np.zeros((IMAGES_PER_BATCH, 3000), dtype=np.uint8)
    tarball = write_tarball(tmp_path / cifar10.TARBALL, batches)

    with pytest.raises(CifarFormatError, match="rows of 3072 values"):
        cifar10.convert(tarball, tmp_path / "cifar10.hdf5")


def test_prepare_checks_published_md5(tiny, tmp_path, monkeypatch):
    tarball, _ = tiny
    monkeypatch.setenv("DPM_DATA", str(tmp_path / "data_home"))
    monkeypatch.delenv("DPM_RAW_DATA", raising=False)
    output = tmp_path / "out"
    output.mkdir()

    with pytest.raises(ChecksumMismatchError) as caught:
        cifar10.prepare(output / "cifar10.hdf5", from_dir=tarball.parent)

    message = str(caught.value)
    assert str(tarball) in message
    assert "MD5 of the file c58f30108f718f92721af3b95e74349a" in message
    assert os.listdir(output) == []
