"""CIFAR-10, converted from the python-version tarball ``cifar-10-python.tar.gz``.

The tarball (https://www.cs.toronto.edu/~kriz/cifar.html) contains the folder
``cifar-10-batches-py`` with five training batches ``data_batch_1`` to ``data_batch_5``, a
``test_batch`` and ``batches.meta``, each a Python pickle. A batch is a dict whose
``b'data'`` is a uint8 array of shape (n, 3072), each row the 1024 red, then green, then blue
values of a 32x32 image in row-major order, and whose ``b'labels'`` lists n labels 0-9.
``batches.meta`` has ``b'label_names'``.

Only these members are read, straight from the tarball, and the pickles are loaded with an
unpickler that builds nothing but NumPy arrays, so a tampered tarball cannot run code.
"""

import codecs
import io
import logging
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from dpm.data.hdf5 import check_destination, write_dataset
from dpm.data.paths import data_dir
from dpm.data.pixel_statistics import statistics_attrs
from dpm.data.raw import (
    Checksum,
    RawDataSpec,
    RawFile,
    RawFileError,
    file_digest,
    find_or_download,
)

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy < 2
    from numpy.core.multiarray import _reconstruct

logger = logging.getLogger(__name__)

#: Name of the data set in ``dpm data prepare`` and the file attribute ``dataset``.
NAME = "cifar10"
#: Version of the conversion. Increase it when the written file changes for the same input.
CONVERTER_VERSION = 1
HOMEPAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
TARBALL = "cifar-10-python.tar.gz"
#: Folder inside the tarball that contains the batches.
MEMBER_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
#: Values per image row of a batch: 3 channels of 32x32 pixels.
IMAGE_SHAPE = (3, 32, 32)

SOURCE_TEXT = (
    f"CIFAR-10 by Alex Krizhevsky, Vinod Nair and Geoffrey Hinton, {HOMEPAGE}. Cite: Alex "
    "Krizhevsky, Learning Multiple Layers of Features from Tiny Images, technical report, "
    "University of Toronto, 2009"
)
LICENSE_TEXT = (
    "No explicit license is given on the CIFAR-10 page; it asks users to cite the technical "
    "report (Krizhevsky 2009)"
)

#: The python-version tarball, recognized by the MD5 published on the CIFAR-10 page.
RAW_DATA = RawDataSpec(
    name=NAME,
    files=(
        RawFile(
            name=TARBALL,
            checksums=(
                Checksum(
                    "md5",
                    "c58f30108f718f92721af3b95e74349a",
                    source=(
                        f"MD5 of the tarball, published on {HOMEPAGE} and in "
                        "torchvision/datasets/cifar.py"
                    ),
                ),
            ),
            urls=(f"https://www.cs.toronto.edu/~kriz/{TARBALL}",),
        ),
    ),
)

# The globals that a pickled NumPy array refers to, under the module names of NumPy 1
# (which wrote the published batches) and NumPy 2. Python 3 writes bytes in protocol 2
# as calls of _codecs.encode, which only converts a string to bytes.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class CifarFormatError(RawFileError):
    """Error raised for a tarball that lacks a CIFAR-10 member or has an invalid one."""


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds NumPy arrays and plain Python values, and rejects every other class."""

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{module}.{name} is not allowed in a CIFAR-10 batch"
            ) from None


def _load_member(archive, tarball, member_name):
    """Unpickle one member of the open tarball, with ``encoding='bytes'``."""
    full_name = f"{MEMBER_FOLDER}/{member_name}"
    try:
        member = archive.getmember(full_name)
    except KeyError:
        raise CifarFormatError(
            f"{tarball} has no member {full_name}, so it is not the python version of "
            f"CIFAR-10; download {TARBALL} from {HOMEPAGE}"
        ) from None
    stream = archive.extractfile(member)
    if stream is None:
        raise CifarFormatError(f"member {full_name} of {tarball} is not a regular file")
    data = stream.read()
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise CifarFormatError(
            f"member {full_name} of {tarball} is not a valid CIFAR-10 batch ({error}); "
            f"replace the tarball with an intact copy from {HOMEPAGE}"
        ) from None


def _batch_arrays(batch, tarball, member_name):
    """Return ``(images (n, 3, 32, 32) uint8, labels (n,) uint8)`` of an unpickled batch."""
    where = f"{MEMBER_FOLDER}/{member_name} of {tarball}"
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise CifarFormatError(f"{where} is not a dict with the keys b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    values_per_image = int(np.prod(IMAGE_SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != values_per_image:
        raise CifarFormatError(
            f"{where} has data of dtype {data.dtype} and shape {data.shape}, but CIFAR-10 "
            f"batches hold uint8 rows of {values_per_image} values"
        )
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise CifarFormatError(
            f"{where} has {data.shape[0]} images but labels of shape {labels.shape} and dtype "
            f"{labels.dtype}; each image needs one integer label"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise CifarFormatError(
            f"{where} has labels from {labels.min()} to {labels.max()}, but CIFAR-10 labels are 0-9"
        )
    return data.reshape((-1,) + IMAGE_SHAPE), labels.astype(np.uint8)


def read_tarball(tarball):
    """Read the training and test batches and the label names from the tarball.

    Returns
    -------
    train_images, train_labels, test_images, test_labels : numpy.ndarray
        Images uint8 of shape (n, 3, 32, 32) and labels uint8 of shape (n,), the training
        batches in order 1 to 5.
    label_names : list of str

    Raises
    ------
    CifarFormatError
        If the tarball is damaged or lacks a member, or a member is invalid.
    """
    tarball = Path(tarball)
    images, labels = [], []
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member_name in TRAIN_BATCHES + (TEST_BATCH,):
                logger.info("reading %s from %s", member_name, tarball.name)
                batch = _load_member(archive, tarball, member_name)
                batch_images, batch_labels = _batch_arrays(batch, tarball, member_name)
                images.append(batch_images)
                labels.append(batch_labels)
            meta = _load_member(archive, tarball, META)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise CifarFormatError(
            f"{tarball} is not a complete gzipped tar file ({error}); it is truncated or "
            f"damaged, so replace it with an intact copy from {HOMEPAGE}"
        ) from None
    if not isinstance(meta, dict) or b"label_names" not in meta:
        raise CifarFormatError(f"{MEMBER_FOLDER}/{META} of {tarball} has no b'label_names'")
    label_names = [
        name.decode("utf-8") if isinstance(name, bytes) else str(name)
        for name in meta[b"label_names"]
    ]
    train_images = np.concatenate(images[:-1])
    train_labels = np.concatenate(labels[:-1])
    return train_images, train_labels, images[-1], labels[-1], label_names


def convert(tarball, path, overwrite=False):
    """Convert the CIFAR-10 python-version tarball into an HDF5 data file.

    The file has the sources ``features`` (uint8, shape (n, 3, 32, 32), dimension labels
    ``('batch', 'channel', 'height', 'width')``) and ``targets`` (uint8, shape (n, 1),
    labels ``('batch', 'index')``), and the splits ``train`` (the five training batches
    in order, first) and ``test`` (the test batch, next). Its attributes record the
    source and license, the label names, the tarball's SHA-256, and ``train_mean`` and
    ``train_std``, the mean and standard deviation of all training values divided by 255.

    The tarball is not checked against the published MD5 here; :func:`prepare` does that
    before it calls this function.

    Parameters
    ----------
    tarball : str or os.PathLike
        Path of ``cifar-10-python.tar.gz``.
    path : str or os.PathLike
        Destination file.
    overwrite : bool, default False
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    tarball = Path(tarball)
    if not tarball.is_file():
        raise FileNotFoundError(f"CIFAR-10 tarball {tarball} not found; download it from {HOMEPAGE}")
    train_images, train_labels, test_images, test_labels, label_names = read_tarball(tarball)

    n_train, n_test = len(train_images), len(test_images)
    if n_train == 0 or n_test == 0:
        raise CifarFormatError(
            f"{tarball} has {n_train} training and {n_test} test images; both splits need images"
        )
    logger.info("computing the pixel statistics of %d training images", n_train)
    attrs = {
        "dataset": NAME,
        "converter_version": CONVERTER_VERSION,
        "source": SOURCE_TEXT,
        "license": LICENSE_TEXT,
        "label_names": label_names,
        "raw_files": {TARBALL: {"sha256": file_digest(tarball)}},
        "n_train": n_train,
        "n_test": n_test,
        **statistics_attrs(train_images),
    }
    logger.info("writing %s", path)
    return write_dataset(
        path,
        sources={
            "features": (np.concatenate([train_images, test_images]),
                         ("batch", "channel", "height", "width")),
            "targets": (np.concatenate([train_labels, test_labels])[:, None], ("batch", "index")),
        },
        splits={"train": (0, n_train), "test": (n_train, n_train + n_test)},
        attrs=attrs,
        overwrite=overwrite,
    )


def default_path():
    """Return the default location of the prepared file, ``data_dir() / 'cifar10.hdf5'``."""
    return data_dir() / "cifar10.hdf5"


def prepare(path=None, overwrite=False, from_dir=None):
    """Find, verify or download the CIFAR-10 tarball and convert it with :func:`convert`.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Destination; defaults to :func:`default_path`.
    overwrite : bool, default False
        Replace an existing file.
    from_dir : str or os.PathLike, optional
        Folder searched first for ``cifar-10-python.tar.gz``; see
        :func:`dpm.data.raw.find_or_download` for the other folders and the download.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path) if path is not None else default_path()
    check_destination(path, overwrite, NAME)
    files = find_or_download(RAW_DATA, from_dir)
    written = convert(files[TARBALL], path, overwrite=overwrite)
    logger.info("prepared CIFAR-10 in %s", written)
    return written
