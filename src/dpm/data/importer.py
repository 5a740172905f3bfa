"""Import a user's own data, an ``.npz`` array or a folder of PNG/JPEG images, into a data file.

The written file has one source, ``features``, and the splits ``train`` and ``test``:

* 2-D arrays (n, d) are stored as they are, with dimension labels ``('batch', 'feature')``.
* Images are stored as (n, channels, height, width) with labels ``('batch', 'channel',
  'height', 'width')``. A 3-D array (n, height, width) gets one channel, and a 4-D array is
  taken as (n, height, width, channels) unless ``channel_axis='first'``.

uint8 values are stored as uint8, and other integer values in 0-255 are converted to uint8.
Floating-point values are stored in their own precision (float16 as float32) and must be
finite. The attributes ``train_mean`` and ``train_std`` are the statistics of the training
split, of ``value / 255`` for uint8 features and of the stored values for float features,
and ``train_statistics_scale`` records which (1/255 or 1).

The test split is ``n_test`` rows (or ``test_fraction`` of them) chosen at random with
``seed``; with ``seed=None`` it is the last rows, in order. Train rows come first in the
file, then test rows, each in their original order. Every check runs before anything is
written, and :func:`dpm.data.hdf5.write_dataset` writes through a temporary file, so no
output file is left behind on any error.
"""

import hashlib
import logging
import math
import operator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dpm.data.hdf5 import check_destination, write_dataset
from dpm.data.pixel_statistics import statistics_attrs
from dpm.data.raw import file_digest

logger = logging.getLogger(__name__)

#: Share of rows in the test split when neither ``n_test`` nor ``test_fraction`` is given.
DEFAULT_TEST_FRACTION = 0.1
#: Seed of the random choice of test rows, an arbitrary fixed value.
DEFAULT_SEED = 0
#: File name endings of the images read from a folder, compared case-insensitively.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Pillow modes of 8-bit grey images. A folder whose images all have one of them is read as 'L'.
GRAY_MODES = ("1", "L", "LA")
#: Pillow modes of 16-bit, 32-bit and float images, which converting to 8 bits would clip.
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")

_IMAGE_LABELS = ("batch", "channel", "height", "width")


class ImportDataError(ValueError):
    """Error raised for input data that cannot be imported as they are."""


class ImageSizeMismatchError(ImportDataError):
    """Error raised when the images of a folder do not all have the same size."""


class NonFiniteValuesError(ImportDataError):
    """Error raised when an imported floating-point array contains NaN or infinite values."""


def split_rows(n_rows, n_test=None, test_fraction=None, seed=DEFAULT_SEED):
    """Choose the test rows and return the stored row order.

    Parameters
    ----------
    n_rows : int
        Number of examples, at least 2.
    n_test : int, optional
        Number of test rows, from 1 to ``n_rows - 1``.
    test_fraction : float, optional
        Share of test rows in (0, 1), rounded half up to a count. Give at most one of
        ``n_test`` and ``test_fraction``; with neither, :data:`DEFAULT_TEST_FRACTION`.
    seed : int or None
        Seed of :func:`numpy.random.default_rng` that chooses the test rows, or None for
        the last rows.

    Returns
    -------
    order : numpy.ndarray
        int64 indexes of the input rows in stored order: train rows, then test rows,
        each ascending.
    n_train : int
        Number of train rows, the first ``n_train`` entries of ``order``.
    """
    if n_rows < 2:
        raise ImportDataError(
            f"need at least 2 examples to make a train and a test split, got {n_rows}"
        )
    if n_test is not None and test_fraction is not None:
        raise ValueError(
            f"give n_test ({n_test}) or test_fraction ({test_fraction}), not both"
        )
    if n_test is None:
        fraction = DEFAULT_TEST_FRACTION if test_fraction is None else float(test_fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {fraction}")
        n_test = math.floor(fraction * n_rows + 0.5)
    else:
        if isinstance(n_test, bool):
            raise TypeError(f"n_test must be an integer, got {n_test!r}")
        n_test = operator.index(n_test)
    if not 1 <= n_test <= n_rows - 1:
        raise ValueError(
            f"the test split would have {n_test} of {n_rows} rows; both splits need at least "
            f"one row, so choose n_test from 1 to {n_rows - 1} or another test_fraction"
        )

    if seed is None:
        test_rows = np.arange(n_rows - n_test, n_rows)
    else:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an integer or None, got {seed!r}")
        rng = np.random.default_rng(seed)
        test_rows = np.sort(rng.choice(n_rows, size=n_test, replace=False))
    is_test = np.zeros(n_rows, dtype=bool)
    is_test[test_rows] = True
    order = np.concatenate([np.flatnonzero(~is_test), np.flatnonzero(is_test)]).astype(np.int64)
    return order, n_rows - n_test


def as_features(array, channel_axis="last", label="array"):
    """Check an array's values and arrange it as ``features``.

    Returns
    -------
    features : numpy.ndarray
        uint8 or floating-point array, images as (n, channels, height, width).
    dim_labels : tuple of str

    Raises
    ------
    NonFiniteValuesError
        If a floating-point array contains NaN or infinite values.
    ImportDataError
        If the array has an unsupported shape or dtype, or integers outside 0-255.
    """
    array = np.asarray(array)
    if channel_axis not in ("first", "last"):
        raise ValueError(f"channel_axis must be 'first' or 'last', got {channel_axis!r}")
    array = _checked_values(array, label)

    if array.ndim == 2:
        return array, ("batch", "feature")
    if array.ndim == 3:
        return array[:, None, :, :], _IMAGE_LABELS
    if array.ndim == 4:
        if channel_axis == "last":
            array = array.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(array), _IMAGE_LABELS
    raise ImportDataError(
        f"{label} has shape {array.shape}; import (n, features), (n, height, width) or "
        "(n, height, width, channels) arrays"
    )


def _checked_values(array, label):
    """Return ``array`` as uint8 or float after checking its values."""
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            bad_rows = np.flatnonzero(~finite.reshape(len(array), -1).all(axis=1))
            raise NonFiniteValuesError(
                f"{label} contains {int(np.count_nonzero(~finite))} NaN or infinite values, "
                f"the first in example {int(bad_rows[0])}; remove or replace them before importing"
            )
        return array.astype(np.float32) if array.dtype == np.float16 else array
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iub":
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if low < 0 or high > 255:
            raise ImportDataError(
                f"{label} has integer values from {low} to {high}, outside 0-255; convert it "
                "to uint8 pixels or to floating point before importing"
            )
        return array.astype(np.uint8)
    raise ImportDataError(
        f"{label} has dtype {array.dtype}; import integer pixel values in 0-255 or "
        "floating-point values"
    )


def import_array(array, path, *, n_test=None, test_fraction=None, seed=DEFAULT_SEED,
                 channel_axis="last", attrs=None, overwrite=False, label="array"):
    """Write an array of examples to a data file with a train and a test split.

    Parameters
    ----------
    array : array_like
        Examples along axis 0, see the module docstring for the shapes.
    path : str or os.PathLike
        Destination file.
    n_test, test_fraction, seed
        The split, see :func:`split_rows`.
    channel_axis : {'last', 'first'}
        Position of the channel axis of a 4-D array.
    attrs : dict, optional
        Extra file attributes, for example the data's source.
    overwrite : bool, default False
        Replace an existing file.
    label : str
        Name of the data for error messages.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    check_destination(path, overwrite)
    features, dim_labels = as_features(array, channel_axis, label)
    order, n_train = split_rows(len(features), n_test, test_fraction, seed)
    features = features[order]
    file_attrs = {
        **(attrs or {}),
        "split_seed": seed,
        "n_train": n_train,
        "n_test": len(features) - n_train,
        **statistics_attrs(features[:n_train]),
    }
    written = write_dataset(
        path,
        sources={"features": (features, dim_labels)},
        splits={"train": (0, n_train), "test": (n_train, len(features))},
        attrs=file_attrs,
        overwrite=overwrite,
    )
    logger.info("imported %s: %d train and %d test examples in %s",
                label, n_train, len(features) - n_train, written)
    return written


def read_npz(source, array_name=None):
    """Read one array of an ``.npz`` file, by name or the only one.

    Raises
    ------
    ImportDataError
        If the file is not a valid ``.npz`` file, ``array_name`` is not in it, or no name
        is given and the file has several arrays.
    """
    source = Path(source)
    try:
        archive = np.load(source, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ImportDataError(f"{source} is not a readable .npz file ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ImportDataError(f"{source} is a single .npy array, not an .npz file; save it with np.savez")
    with archive:
        names = sorted(archive.files)
        if array_name is None:
            if len(names) != 1:
                raise ImportDataError(
                    f"{source} has the arrays {names}; choose one with array_name"
                )
            array_name = names[0]
        if array_name not in names:
            raise ImportDataError(
                f"{source} has no array {array_name!r}; its arrays are {names}"
            )
        try:
            return archive[array_name], array_name
        except ValueError as error:
            # An object array needs pickle, which allow_pickle=False rejects.
            raise ImportDataError(
                f"array {array_name!r} of {source} cannot be read without pickle ({error}); "
                "save numeric arrays only"
            ) from None


def import_npz(source, path, *, array_name=None, n_test=None, test_fraction=None,
               seed=DEFAULT_SEED, channel_axis="last", attrs=None, overwrite=False):
    """Import one array of an ``.npz`` file; see :func:`import_array` for the parameters.

    Parameters
    ----------
    source : str or os.PathLike
        The ``.npz`` file.
    array_name : str, optional
        Name of the array; defaults to the only array of the file.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    source = Path(source)
    array, array_name = read_npz(source, array_name)
    file_attrs = {
        "dataset": source.stem,
        "source": str(source),
        "source_array": array_name,
        "source_sha256": file_digest(source),
        **(attrs or {}),
    }
    return import_array(
        array, path, n_test=n_test, test_fraction=test_fraction, seed=seed,
        channel_axis=channel_axis, attrs=file_attrs, overwrite=overwrite,
        label=f"array {array_name!r} of {source}",
    )


def list_image_files(folder):
    """Return the PNG and JPEG files under ``folder`` (subfolders included), sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"image folder {folder} does not exist or is not a folder")
    files = [
        file for file in folder.rglob("*")
        if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(files, key=lambda file: file.relative_to(folder).as_posix())


def read_image_folder(folder, mode=None):
    """Read every PNG and JPEG image under ``folder`` into one array.

    Parameters
    ----------
    folder : str or os.PathLike
    mode : {'L', 'RGB'}, optional
        Pillow mode the images are converted to. Defaults to ``'L'`` if every image is
        grey (a mode of :data:`GRAY_MODES`) and ``'RGB'`` otherwise. Alpha channels are
        dropped.

    Returns
    -------
    images : numpy.ndarray
        uint8 array (n, height, width) for ``'L'`` or (n, height, width, 3) for ``'RGB'``.
    files : list of pathlib.Path
        The files in the order of ``images``.

    Raises
    ------
    ImportDataError
        If the folder has no images, a file cannot be read or has more than 8 bits per value.
    ImageSizeMismatchError
        If the images differ in size; the message names the first file whose size
        differs from the first image's.
    """
    from PIL import Image, UnidentifiedImageError

    if mode not in (None, "L", "RGB"):
        raise ValueError(f"mode must be 'L', 'RGB' or None, got {mode!r}")
    folder = Path(folder)
    files = list_image_files(folder)
    if not files:
        raise ImportDataError(
            f"no images found in {folder}; it needs files ending in {', '.join(IMAGE_SUFFIXES)}"
        )

    sizes, modes = [], []
    for file in files:
        try:
            with Image.open(file) as image:
                sizes.append(image.size)
                modes.append(image.mode)
        except (UnidentifiedImageError, OSError) as error:
            raise ImportDataError(f"cannot read image {file} ({error}); fix or remove it") from None
    for file, size in zip(files, sizes):
        if size != sizes[0]:
            raise ImageSizeMismatchError(
                f"{file} is {size[0]}x{size[1]} pixels (width x height), but {files[0]} is "
                f"{sizes[0][0]}x{sizes[0][1]}; all images need one size, so resize or remove it"
            )
    for file, image_mode in zip(files, modes):
        if image_mode in WIDE_MODES:
            raise ImportDataError(
                f"{file} has the Pillow mode {image_mode!r}, more than 8 bits per value, which "
                "the import would clip to 0-255; convert the images to 8 bits, or import them "
                "as a float .npz array"
            )
    if mode is None:
        mode = "L" if all(image_mode in GRAY_MODES for image_mode in modes) else "RGB"

    arrays = []
    for file in tqdm(files, desc=f"reading {folder.name}", unit="image", disable=None):
        try:
            with Image.open(file) as image:
                arrays.append(np.asarray(image.convert(mode), dtype=np.uint8))
        except (UnidentifiedImageError, OSError) as error:
            raise ImportDataError(f"cannot read image {file} ({error}); fix or remove it") from None
    return np.stack(arrays), files


def import_image_folder(folder, path, *, mode=None, n_test=None, test_fraction=None,
                        seed=DEFAULT_SEED, attrs=None, overwrite=False):
    """Import a folder of PNG and JPEG images; see :func:`import_array` for the parameters.

    The attribute ``source_sha256`` is the SHA-256 of the lines ``RELATIVE_PATH SHA256``
    of every image file, in sorted order, which identifies the folder's content.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder searched for images, subfolders included.
    mode : {'L', 'RGB'}, optional
        See :func:`read_image_folder`.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    folder = Path(folder)
    images, files = read_image_folder(folder, mode)
    listing = hashlib.sha256()
    for file in files:
        listing.update(f"{file.relative_to(folder).as_posix()} {file_digest(file)}\n".encode())
    file_attrs = {
        "dataset": folder.name,
        "source": str(folder),
        "source_files": len(files),
        "source_sha256": listing.hexdigest(),
        "image_mode": "L" if images.ndim == 3 else "RGB",
        **(attrs or {}),
    }
    return import_array(
        images, path, n_test=n_test, test_fraction=test_fraction, seed=seed,
        channel_axis="last", attrs=file_attrs, overwrite=overwrite, label=f"images of {folder}",
    )


def import_data(source, path, **options):
    """Import ``source``: a folder with :func:`import_image_folder`, a file with :func:`import_npz`."""
    source = Path(source)
    if source.is_dir():
        return import_image_folder(source, path, **options)
    if source.suffix.lower() == ".npz":
        return import_npz(source, path, **options)
    raise ImportDataError(f"cannot import {source}; give an .npz file or a folder of PNG/JPEG images")
