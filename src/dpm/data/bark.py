"""The bark textures T01-T04 of the UIUC texture database, converted to an HDF5 data file.

Sohl-Dickstein et al. (2015) train on the bark images T01-T04 of the UIUC texture database
of Lazebnik, Schmid and Ponce (2005). The database has 25 classes of 40 grayscale JPEG
images each, 640x480 pixels, named ``T01_01.jpg`` to ``T25_40.jpg``. It cannot be
downloaded automatically: get it from the texture database page of the Ponce group at UIUC
(http://www-cvr.ai.uiuc.edu/ponce_grp/data/, also kept by the Internet Archive), unpack
it, and pass the folder as ``from_dir``.

NOTE: the database's own folder names, as third-party download scripts list them, call
T01-T03 ``bark1``-``bark3`` and T04 ``wood1``. The paper calls all four classes bark, and
this module converts T01-T04 as the paper names them.

The images are found either directly in the folder (``T01_01.jpg``) or in one subfolder
per class whose name is the class (``T01/``) or starts with it (``T01_bark1/``, as
third-party download scripts name the folders of the database's zip files).
"""

import hashlib
import logging
from pathlib import Path

import numpy as np

from dpm.data.generated import validate_count
from dpm.data.hdf5 import check_destination, write_dataset
from dpm.data.paths import data_dir
from dpm.data.pixel_statistics import statistics_attrs
from dpm.data.raw import download_dir, raw_search_path

logger = logging.getLogger(__name__)

#: Classes converted, the bark images named by Sohl-Dickstein et al. (2015).
CLASSES = ("T01", "T02", "T03", "T04")
#: Images per class in the UIUC texture database.
IMAGES_PER_CLASS = 40
#: Training images per class: the first 32 by number, and the last 8 are the test split.
#: The split is our choice.
TRAIN_PER_CLASS = 32
#: Instructions for getting the database, appended to the message of a missing file.
SOURCE_HINT = (
    "Download the UIUC texture database (T01-T05.zip contains these classes) from the "
    "texture database page of the Ponce group at UIUC, http://www-cvr.ai.uiuc.edu/ponce_grp/data/ "
    "(if it is offline, use its copy in the Internet Archive); it cannot be downloaded "
    "automatically. Unpack it and pass its folder as from_dir "
    "(`dpm data prepare bark --from DIR`), list the folder in DPM_RAW_DATA, or put the "
    "files in {default_folder}."
)
SOURCE_TEXT = (
    "UIUC texture database, Lazebnik, Schmid and Ponce, 'A sparse texture representation "
    "using local affine regions', IEEE Transactions on Pattern Analysis and Machine "
    "Intelligence, 2005; distributed by the Ponce group at UIUC, "
    "http://www-cvr.ai.uiuc.edu/ponce_grp/data/"
)
LICENSE_TEXT = (
    "dpm records no license for the UIUC texture database; the terms of use are those "
    "on the Ponce group's data page"
)
#: Version of the conversion. Increase it when the same JPEGs would give another file.
CONVERTER_VERSION = 1


class BarkFilesNotFoundError(FileNotFoundError):
    """Error raised when no searched folder contains every requested UIUC texture file."""


def default_path():
    """Return the default location of the converted file, ``data_dir() / 'bark.hdf5'``."""
    return data_dir() / "bark.hdf5"


def default_raw_folder():
    """Return ``data_dir() / 'raw' / 'bark'``, the last folder searched for the JPEG files."""
    return download_dir("bark")


def search_folders(from_dir=None):
    """Return the folders to search for the JPEG files, in order.

    The order of every raw data set (:func:`dpm.data.raw.raw_search_path`): ``from_dir``,
    each folder of the ``DPM_RAW_DATA`` environment variable, then :func:`default_raw_folder`.
    """
    return raw_search_path("bark", from_dir)


def file_names(classes=CLASSES, images_per_class=IMAGES_PER_CLASS):
    """Return the expected file names per class, ``{'T01': ['T01_01.jpg', ...], ...}``."""
    return {
        name: [f"{name}_{index:02d}.jpg" for index in range(1, images_per_class + 1)]
        for name in classes
    }


def locate_files(folder, names):
    """Find the files ``names`` (per class) in ``folder``, in either layout.

    File names are matched without regard to case. A file found both directly in the
    folder and in a class subfolder is taken from the folder itself.

    Returns
    -------
    found : dict
        ``{file name: path}`` for the files found.
    missing : dict
        ``{class: [file names]}`` for the classes with missing files.
    """
    folder = Path(folder)
    found = {}
    missing = {}
    if not folder.is_dir():
        return found, {name: list(files) for name, files in names.items()}

    top_level = _files_by_lower_name(folder)
    subfolders = sorted(entry for entry in folder.iterdir() if entry.is_dir())
    for class_name, files in names.items():
        places = [top_level] + [
            _files_by_lower_name(subfolder)
            for subfolder in subfolders
            if subfolder.name == class_name or subfolder.name.startswith(f"{class_name}_")
        ]
        for file_name in files:
            path = next((place[file_name.lower()] for place in places if file_name.lower() in place), None)
            if path is None:
                missing.setdefault(class_name, []).append(file_name)
            else:
                found[file_name] = path
    return found, missing


def _files_by_lower_name(folder):
    return {entry.name.lower(): entry for entry in folder.iterdir() if entry.is_file()}


def _describe_missing(missing, images_per_class):
    parts = []
    for class_name, files in missing.items():
        if len(files) == images_per_class:
            parts.append(f"class {class_name}: all {len(files)} files ({files[0]} to {files[-1]})")
        else:
            parts.append(f"class {class_name}: {', '.join(files)}")
    return "; ".join(parts)


def find_folder(from_dir=None, classes=CLASSES, images_per_class=IMAGES_PER_CLASS):
    """Return the first searched folder with every file, and the ``{file name: path}`` map.

    Raises
    ------
    BarkFilesNotFoundError
        If no folder has every file. The message names the missing files of each folder
        searched and where to get the database.
    """
    names = file_names(classes, images_per_class)
    n_files = sum(len(files) for files in names.values())
    reports = []
    for folder in search_folders(from_dir):
        found, missing = locate_files(folder, names)
        if not missing:
            logger.info("found %d UIUC texture files in %s", n_files, folder)
            return folder, found
        if not folder.is_dir():
            reports.append(f"{folder} (folder does not exist)")
        else:
            n_missing = sum(len(files) for files in missing.values())
            reports.append(
                f"{folder} ({n_missing} of {n_files} files missing: "
                f"{_describe_missing(missing, images_per_class)})"
            )
    raise BarkFilesNotFoundError(
        f"UIUC texture images of classes {', '.join(classes)} not found. Folders searched: "
        + "; ".join(reports)
        + ". "
        + SOURCE_HINT.format(default_folder=default_raw_folder())
    )


def read_image(path):
    """Read a JPEG (or any image Pillow reads) as a uint8 grayscale (height, width) array."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImportError(
            "reading the UIUC texture JPEGs needs Pillow; install it with `pip install pillow`"
        ) from None
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(
            f"failed to read image {path} ({error}); the file is damaged or not an image, "
            "so replace it with the original from the UIUC texture database"
        ) from error


def sha256_file(path):
    """Return the SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_class_images(found, names, folder):
    """Return ``(images, checksums)`` in class order after checking that all images have one size.

    ``images`` is uint8 (n, 1, height, width), and ``checksums`` maps each file's path
    relative to ``folder`` to ``{'sha256': hex}``.
    """
    images = []
    checksums = {}
    reference = None
    for class_name, files in names.items():
        for file_name in files:
            path = found[file_name]
            image = read_image(path)
            if reference is None:
                reference = (path, image.shape)
            elif image.shape != reference[1]:
                height, width = image.shape
                reference_height, reference_width = reference[1]
                raise ValueError(
                    f"image {path} is {width}x{height} pixels (width x height), but "
                    f"{reference[0]} is {reference_width}x{reference_height}; every image "
                    "must have one size, so replace the file with the database's original"
                )
            images.append(image)
            checksums[path.relative_to(folder).as_posix()] = {"sha256": sha256_file(path)}
    return np.stack(images)[:, None], checksums


def prepare(path=None, overwrite=False, from_dir=None, classes=CLASSES,
            images_per_class=IMAGES_PER_CLASS, train_per_class=TRAIN_PER_CLASS):
    """Convert the bark JPEGs of the UIUC texture database to an HDF5 data file.

    The file has the sources ``features``, uint8 of shape (n, 1, height, width) with
    dimension labels ``('batch', 'channel', 'height', 'width')`` (480x640 for the real
    database), and ``targets``, uint8 of shape (n, 1) with labels ``('batch', 'index')``,
    the class's position in ``classes``. The split ``train`` contains the first
    ``train_per_class`` images of each class by number and ``test`` the rest, each split
    ordered by class and then by number. This split is our choice.
    The attributes contain the classes, the split rule, each file's SHA-256 under its path
    relative to the folder (``raw_files``), ``train_mean`` and ``train_std`` of ``pixel / 255`` over the
    training split, and the source of the data.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Destination; defaults to :func:`default_path`.
    overwrite : bool, default False
        Replace an existing file.
    from_dir : str or os.PathLike, optional
        Folder with the JPEG files. When None, :func:`search_folders` lists the folders
        tried.
    classes : sequence of str
        Class names, ``T01`` to ``T04`` by default.
    images_per_class : int
        Images of each class, numbered from 1; 40 in the database.
    train_per_class : int
        Training images per class, at least 1 and less than ``images_per_class``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    BarkFilesNotFoundError
        If no searched folder contains every file.
    ValueError
        If an image cannot be read or differs in size from the first one.
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path) if path is not None else default_path()
    classes = _validate_classes(classes)
    images_per_class = validate_count(images_per_class, "images_per_class", minimum=2)
    train_per_class = validate_count(train_per_class, "train_per_class", minimum=1)
    if train_per_class >= images_per_class:
        raise ValueError(
            f"train_per_class ({train_per_class}) must be less than images_per_class "
            f"({images_per_class}) so that the test split is not empty"
        )
    check_destination(path, overwrite)

    folder, found = find_folder(from_dir, classes, images_per_class)
    names = file_names(classes, images_per_class)
    images, checksums = _read_class_images(found, names, folder)
    targets = np.repeat(np.arange(len(classes), dtype=np.uint8), images_per_class)[:, None]

    # Rows are read class by class; reorder them to all training rows, then all test rows.
    number = np.tile(np.arange(images_per_class), len(classes))
    order = np.concatenate([np.flatnonzero(number < train_per_class),
                            np.flatnonzero(number >= train_per_class)])
    images, targets = images[order], targets[order]
    n_train = train_per_class * len(classes)

    attrs = {
        "dataset": "bark",
        "classes": list(classes),
        "images_per_class": images_per_class,
        "train_per_class": train_per_class,
        "split_rule": (
            f"train: images 1-{train_per_class} of each class; "
            f"test: images {train_per_class + 1}-{images_per_class}; our choice"
        ),
        "n_train": n_train,
        "n_test": len(images) - n_train,
        "converter_version": CONVERTER_VERSION,
        "raw_files": checksums,
        "source": SOURCE_TEXT,
        "license": LICENSE_TEXT,
        **statistics_attrs(images[:n_train]),
    }
    write_dataset(
        path,
        sources={
            "features": (images, ("batch", "channel", "height", "width")),
            "targets": (targets, ("batch", "index")),
        },
        splits={"train": (0, n_train), "test": (n_train, len(images))},
        attrs=attrs,
        overwrite=overwrite,
    )
    logger.info("converted %d bark images (%dx%d) from %s to %s",
                len(images), images.shape[3], images.shape[2], folder, path)
    return path


def _validate_classes(classes):
    if isinstance(classes, str):
        classes = (classes,)
    classes = tuple(classes)
    if not classes or not all(isinstance(name, str) and name for name in classes):
        raise ValueError(f"classes must be non-empty class names such as 'T01', got {classes!r}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes contains duplicates: {classes!r}")
    return classes
