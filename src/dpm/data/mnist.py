"""The MNIST handwritten digits, converted from the four IDX files of the MNIST database.

An IDX file is a 4-byte magic number (two zero bytes, a type code and the number of
dimensions), one big-endian uint32 per dimension, and then the values in C order,
big-endian. The image files have type code 0x08 (unsigned byte) and three dimensions
(count, rows, columns), the label files type code 0x08 and one dimension.

A file is accepted when any one of three checksums matches. The first is the MD5 of the
original ``.gz`` file, as listed in torchvision (``torchvision/datasets/mnist.py``,
``MNIST.resources``). The others are the SHA-256 and the MD5 of the decompressed IDX
content, which also accept a file re-compressed with another gzip. The SHA-256 of the
original ``.gz`` files is not listed because no published value was available.
"""

import gzip
import hashlib
import logging
import zlib
from pathlib import Path

import numpy as np

from dpm.data.hdf5 import check_destination, write_dataset
from dpm.data.paths import data_dir
from dpm.data.pixel_statistics import statistics_attrs
from dpm.data.raw import Checksum, RawDataSpec, RawFile, RawFileError, find_or_download

logger = logging.getLogger(__name__)

#: Name of the data set in ``dpm data prepare`` and the file attribute ``dataset``.
NAME = "mnist"
#: Version of the conversion. Increase it when the written file changes for the same input.
CONVERTER_VERSION = 1
#: Page of the MNIST database, the source of the data and of its license statement.
HOMEPAGE = "http://yann.lecun.com/exdb/mnist/"
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

SOURCE_TEXT = (
    "MNIST database of handwritten digits by Yann LeCun, Corinna Cortes and Christopher "
    f"J. C. Burges, {HOMEPAGE}"
)
LICENSE_TEXT = (
    "Copyright Yann LeCun and Corinna Cortes. The MNIST database is made available under "
    "the Creative Commons Attribution-Share Alike 3.0 license (CC BY-SA 3.0), as stated on "
    f"{HOMEPAGE}"
)

_GZ_MD5_SOURCE = "MD5 of the original .gz file, from torchvision/datasets/mnist.py"
_CONTENT_SOURCE = "digest of the decompressed IDX file of the MNIST database"


def _mnist_file(name, gz_md5, content_sha256, content_md5):
    return RawFile(
        name=name,
        checksums=(
            Checksum("md5", gz_md5, source=_GZ_MD5_SOURCE),
            Checksum("sha256", content_sha256, of_content=True, source=_CONTENT_SOURCE),
            Checksum("md5", content_md5, of_content=True, source=_CONTENT_SOURCE),
        ),
        urls=(HOMEPAGE + name, MIRROR + name),
    )


#: The four files of the MNIST database.
RAW_DATA = RawDataSpec(
    name=NAME,
    files=(
        _mnist_file(
            TRAIN_IMAGES,
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "6bbc9ace898e44ae57da46a324031adb",
        ),
        _mnist_file(
            TRAIN_LABELS,
            "d53e105ee54ea40749a09fcbcd1e9432",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "a25bea736e30d166cdddb491f175f624",
        ),
        _mnist_file(
            TEST_IMAGES,
            "9fb629c4189551a2d022fa330f9573f3",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "2646ac647ad5339dbf082846283269ea",
        ),
        _mnist_file(
            TEST_LABELS,
            "ec29112dd5afa0611ce80d1b7f02629c",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            "27ae3e4e09519cfbb04c329615203637",
        ),
    ),
)

#: IDX type codes and the NumPy dtypes of their big-endian values.
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(RawFileError):
    """Error raised for a file that is not a valid (optionally gzipped) IDX file."""


def parse_idx(data, label="IDX data"):
    """Decode the bytes of an IDX file into a native-endian array.

    Parameters
    ----------
    data : bytes
        The whole, decompressed IDX file.
    label : str
        Name of the file for error messages.

    Returns
    -------
    numpy.ndarray
        Array with the file's dimensions and the dtype of its type code, native byte order.

    Raises
    ------
    IdxFormatError
        If the magic number is invalid or the data size does not match the dimensions.
    """
    if len(data) < 4:
        raise IdxFormatError(f"{label} has {len(data)} bytes, fewer than the 4 of an IDX magic number")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES or data[3] == 0:
        raise IdxFormatError(
            f"{label} has the magic number {data[:4].hex()}, which is not an IDX magic number "
            "(0000, a type code of 08, 09, 0b, 0c, 0d or 0e, and at least one dimension); "
            "the file is not an IDX file or is damaged"
        )
    dtype = IDX_DTYPES[data[2]]
    n_dims = data[3]
    header_size = 4 + 4 * n_dims
    if len(data) < header_size:
        raise IdxFormatError(
            f"{label} is truncated: its header needs {header_size} bytes for {n_dims} "
            f"dimensions, but the file has {len(data)}"
        )
    shape = tuple(int(size) for size in np.frombuffer(data, dtype=">u4", count=n_dims, offset=4))
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise IdxFormatError(
            f"{label} has {len(data)} bytes, but its header (dimensions {shape}, "
            f"{dtype.itemsize}-byte values) needs exactly {expected}; the file is truncated "
            "or damaged"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def read_idx(path):
    """Read an IDX file, gunzipping it first if its name ends in ``.gz``.

    Returns
    -------
    array : numpy.ndarray
        The decoded values, see :func:`parse_idx`.
    checksums : dict
        SHA-256 of the file (``'sha256'``) and of its decompressed content
        (``'content_sha256'``).

    Raises
    ------
    IdxFormatError
        If the gzip data are truncated or corrupt, or the IDX content is invalid.
    """
    path = Path(path)
    raw = path.read_bytes()
    content = raw
    if path.suffix == ".gz":
        try:
            content = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise IdxFormatError(
                f"{path} is not a complete gzip file ({error}); it is truncated or damaged, "
                "so replace it with an intact copy"
            ) from None
    checksums = {
        "sha256": hashlib.sha256(raw).hexdigest(),
        "content_sha256": hashlib.sha256(content).hexdigest(),
    }
    return parse_idx(content, str(path)), checksums


def read_split(images_path, labels_path):
    """Read one split: an image file and its label file.

    Returns
    -------
    images : numpy.ndarray
        uint8 array of shape (n, rows, columns).
    labels : numpy.ndarray
        uint8 array of shape (n,) with values 0-9.
    checksums : dict
        ``{file name: {'sha256': ..., 'content_sha256': ...}}`` of both files.

    Raises
    ------
    IdxFormatError
        If a file is invalid, has another type or number of dimensions than MNIST's, or
        the two files have different numbers of examples.
    """
    images, image_checksums = read_idx(images_path)
    labels, label_checksums = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise IdxFormatError(
            f"{images_path} contains {images.dtype} values of shape {images.shape}, but MNIST "
            "images are unsigned bytes of shape (count, rows, columns)"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IdxFormatError(
            f"{labels_path} contains {labels.dtype} values of shape {labels.shape}, but MNIST "
            "labels are unsigned bytes of shape (count,)"
        )
    if images.shape[0] != labels.shape[0]:
        raise IdxFormatError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has "
            f"{labels.shape[0]} labels; use an image file and its own label file"
        )
    if labels.size and labels.max() > 9:
        raise IdxFormatError(
            f"{labels_path} contains the label {int(labels.max())}, but MNIST labels are 0-9"
        )
    checksums = {
        Path(images_path).name: image_checksums,
        Path(labels_path).name: label_checksums,
    }
    return images, labels, checksums


def convert(files, path, overwrite=False):
    """Convert the four MNIST IDX files into an HDF5 data file.

    The file has the sources ``features`` (uint8, shape (n, 1, rows, columns), dimension
    labels ``('batch', 'channel', 'height', 'width')``) and ``targets`` (uint8, shape
    (n, 1), labels ``('batch', 'index')``), and the splits ``train`` (the training file's
    rows, first) and ``test`` (the test file's rows, next). Its attributes record the
    source and license, the SHA-256 of each raw file and of its content, and
    ``train_mean`` and ``train_std``, the mean and standard deviation of all training
    pixels divided by 255.

    The files are not checked against the published checksums here; :func:`prepare`
    does that before it calls this function.

    Parameters
    ----------
    files : str, os.PathLike or dict
        A folder that contains the four files under their published names, or a dict
        from those names to paths.
    path : str or os.PathLike
        Destination file.
    overwrite : bool, default False
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    files = _resolve_files(files)
    logger.info("reading the MNIST training files")
    train_images, train_labels, train_checksums = read_split(files[TRAIN_IMAGES], files[TRAIN_LABELS])
    logger.info("reading the MNIST test files")
    test_images, test_labels, test_checksums = read_split(files[TEST_IMAGES], files[TEST_LABELS])
    if train_images.shape[1:] != test_images.shape[1:]:
        raise IdxFormatError(
            f"the training images are {train_images.shape[1:]} pixels but the test images "
            f"{test_images.shape[1:]}; use the four files of one MNIST release"
        )

    n_train, n_test = len(train_images), len(test_images)
    logger.info("computing the pixel statistics of %d training images", n_train)
    attrs = {
        "dataset": NAME,
        "converter_version": CONVERTER_VERSION,
        "source": SOURCE_TEXT,
        "license": LICENSE_TEXT,
        "raw_files": {**train_checksums, **test_checksums},
        "n_train": n_train,
        "n_test": n_test,
        **statistics_attrs(train_images),
    }
    features = np.concatenate([train_images, test_images])[:, None, :, :]
    targets = np.concatenate([train_labels, test_labels])[:, None]
    logger.info("writing %s", path)
    return write_dataset(
        path,
        sources={
            "features": (features, ("batch", "channel", "height", "width")),
            "targets": (targets, ("batch", "index")),
        },
        splits={"train": (0, n_train), "test": (n_train, n_train + n_test)},
        attrs=attrs,
        overwrite=overwrite,
    )


def _resolve_files(files):
    """Return ``{published name: Path}`` for the four files, from a folder or a dict."""
    names = [raw_file.name for raw_file in RAW_DATA.files]
    if isinstance(files, dict):
        resolved = {name: Path(files[name]) for name in names if name in files}
        where = "the given files"
    else:
        resolved = {name: Path(files) / name for name in names}
        where = f"the folder {files}"
    missing = [name for name in names if name not in resolved or not resolved[name].is_file()]
    if missing:
        raise FileNotFoundError(
            f"MNIST files not found in {where}: {', '.join(missing)}; "
            f"download them from {HOMEPAGE} or {MIRROR}"
        )
    return resolved


def default_path():
    """Return the default location of the prepared file, ``data_dir() / 'mnist.hdf5'``."""
    return data_dir() / "mnist.hdf5"


def prepare(path=None, overwrite=False, from_dir=None):
    """Find, verify or download the MNIST files and convert them with :func:`convert`.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Destination; defaults to :func:`default_path`.
    overwrite : bool, default False
        Replace an existing file.
    from_dir : str or os.PathLike, optional
        Folder searched first for the four ``.gz`` files; see
        :func:`dpm.data.raw.find_or_download` for the other folders and the download.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path) if path is not None else default_path()
    check_destination(path, overwrite, NAME)
    files = find_or_download(RAW_DATA, from_dir)
    written = convert(files, path, overwrite=overwrite)
    logger.info("prepared MNIST in %s", written)
    return written
