"""A 4000-image sample of CIFAR-10 for tests and quick CPU runs, not the full data set.

The raw file ``cifar10_subset_4000.npz`` contains one array, ``images``, uint8 of shape
(4000, 32, 32, 3): the first 4000 images of CIFAR-10's ``data_batch_1``, in order, without
labels. It has no public download, so it is found only in the folders of
:func:`dpm.data.raw.raw_search_path`. Results computed on it describe this sample, not
CIFAR-10; use :mod:`dpm.data.cifar10` for the full set.
"""

import logging
from pathlib import Path

from dpm.data import cifar10
from dpm.data.hdf5 import check_destination
from dpm.data.importer import import_npz
from dpm.data.paths import data_dir
from dpm.data.raw import Checksum, RawDataSpec, RawFile, find_or_download

logger = logging.getLogger(__name__)

#: Name of the data set in ``dpm data prepare`` and the file attribute ``dataset``.
NAME = "cifar10_subset"
NPZ_FILE = "cifar10_subset_4000.npz"
ARRAY_NAME = "images"
N_IMAGES = 4000
#: The test split is the last N_TEST images and the train split the N_IMAGES - N_TEST before.
N_TEST = 500

SAMPLE_TEXT = (
    "A 4000-image sample of CIFAR-10, not the full set: the first 4000 images of "
    "data_batch_1 in order, without labels. Train is the first 3500 images, test the last "
    "500. Results on it describe this sample only."
)

#: The sample, recognized by the SHA-256 of the .npz file.
RAW_DATA = RawDataSpec(
    name=NAME,
    files=(
        RawFile(
            name=NPZ_FILE,
            checksums=(
                Checksum(
                    "sha256",
                    "eb14369cfc5a272e5e6e79092f4587c72d3f7064cf6106e942dc69ffdf514040",
                    source="SHA-256 of the sample file",
                ),
            ),
        ),
    ),
    no_download_hint=(
        "the sample is not published for download; use the full CIFAR-10 set with "
        "`dpm data prepare cifar10` instead"
    ),
)


def default_path():
    """Return the default location of the prepared file, ``data_dir() / 'cifar10_subset.hdf5'``."""
    return data_dir() / "cifar10_subset.hdf5"


def prepare(path=None, overwrite=False, from_dir=None):
    """Find and verify ``cifar10_subset_4000.npz`` and import it as an HDF5 data file.

    The file has ``features`` uint8 of shape (4000, 3, 32, 32), the splits ``train``
    (images 0-3499) and ``test`` (images 3500-3999), ``train_mean`` and ``train_std``, and
    attributes that state it is a 4000-image sample and not the full set.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Destination; defaults to :func:`default_path`.
    overwrite : bool, default False
        Replace an existing file.
    from_dir : str or os.PathLike, optional
        Folder searched first for the ``.npz`` file.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path) if path is not None else default_path()
    check_destination(path, overwrite, NAME)
    files = find_or_download(RAW_DATA, from_dir, download=False)
    attrs = {
        "dataset": NAME,
        "sample": SAMPLE_TEXT,
        "n_images": N_IMAGES,
        "full_set_images": 60000,
        "source": cifar10.SOURCE_TEXT,
        "license": cifar10.LICENSE_TEXT,
    }
    written = import_npz(
        files[NPZ_FILE], path, array_name=ARRAY_NAME, n_test=N_TEST, seed=None,
        channel_axis="last", attrs=attrs, overwrite=overwrite,
    )
    logger.info("prepared the %d-image CIFAR-10 sample in %s", N_IMAGES, written)
    return written
