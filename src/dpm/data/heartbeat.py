"""The binary heartbeat data of Sohl-Dickstein et al. (2015), Figure 2, with its exact likelihood.

Definition
----------
A sequence has 20 bins. Bin ``i`` (counted from 0) is 1 when ``i - offset`` is a multiple of
5 and 0 otherwise, so every sequence has a pulse every 5th bin and exactly 4 ones. The
offset of the first pulse is uniform on ``0..4``, which is bins 1-5 counted from 1. There are
5 distinct sequences, each with probability 1/5, so the true log likelihood of every data
point is ``log2(1/5) = -2.322`` bits and the data's mean activity is 0.2.
"""

import logging
import math
from pathlib import Path

import numpy as np

from dpm.data.generated import check_prepared, validate_count, write_splits
from dpm.data.paths import data_dir

logger = logging.getLogger(__name__)

#: Bins per sequence.
SEQUENCE_LENGTH = 20
#: Bins between two pulses.
PERIOD = 5
#: Version of the sampling procedure. Increase it when the order or kind of random draws changes.
GENERATOR_VERSION = 1
#: Seed of the prepared file, an arbitrary fixed value.
DEFAULT_SEED = 20150503
#: ``log2(1/5)``, the log likelihood of each of the 5 sequences, in bits.
LOG2_PROBABILITY = -math.log2(PERIOD)


def true_sequences():
    """Return the 5 sequences of the distribution as a (5, 20) uint8 array, row ``k`` with offset ``k``."""
    bins = np.arange(SEQUENCE_LENGTH)
    return ((bins[None, :] - np.arange(PERIOD)[:, None]) % PERIOD == 0).astype(np.uint8)


def sample(n, rng, return_offset=False):
    """Draw heartbeat sequences.

    Parameters
    ----------
    n : int
        Number of sequences.
    rng : numpy.random.Generator or int
        Random generator, or a seed for :func:`numpy.random.default_rng`.
    return_offset : bool, default False
        Also return the bin of each sequence's first pulse, counted from 0.

    Returns
    -------
    x : numpy.ndarray
        uint8 array of shape (n, 20) with entries 0 and 1.
    offset : numpy.ndarray
        int64 array of shape (n,), only if ``return_offset`` is true.
    """
    n = validate_count(n, "n")
    if not isinstance(rng, np.random.Generator):
        if rng is None or isinstance(rng, bool) or not isinstance(rng, (int, np.integer)):
            raise TypeError(
                f"rng must be a numpy.random.Generator or an integer seed, got {rng!r}"
            )
        rng = np.random.default_rng(rng)
    offset = rng.integers(0, PERIOD, size=n)
    x = true_sequences()[offset]
    if return_offset:
        return x, offset
    return x


def _check_sequences(x):
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != SEQUENCE_LENGTH:
        raise ValueError(
            f"x must have shape (n, {SEQUENCE_LENGTH}), got {x.shape}; "
            "for one sequence pass x[None, :]"
        )
    return x


def is_true_sequence(x):
    """Return a boolean (n,) array: whether each row of ``x`` is exactly one of the 5 sequences."""
    x = _check_sequences(x)
    return np.any(np.all(x[:, None, :] == true_sequences()[None, :, :], axis=2), axis=1)


def log_likelihood_bits(x):
    """Return ``log2 p(x)`` under the true distribution for each row of ``x``.

    ``log2(1/5)`` for each of the 5 sequences and ``-inf`` for every other binary sequence.
    """
    return np.where(is_true_sequence(x), LOG2_PROBABILITY, -np.inf)


def true_log_likelihood_bits(x):
    """Return the mean of :func:`log_likelihood_bits` over the rows of ``x`` and its standard error.

    On data drawn from the distribution every row has the same value, so the standard error
    is 0; ``x`` needs at least 2 rows.
    """
    bits = log_likelihood_bits(x)
    if bits.size < 2:
        raise ValueError(f"need at least 2 sequences for a standard error, got {bits.size}")
    if not np.all(np.isfinite(bits)):
        return -math.inf, math.nan
    return float(bits.mean()), float(bits.std(ddof=1) / math.sqrt(bits.size))


def first_pulse(x):
    """Return the bin of the first 1 in each row of ``x``, or 0 for a row without a 1."""
    x = _check_sequences(x)
    return np.argmax(x > 0, axis=1)


def default_path():
    """Return the default location of the prepared file, ``data_dir() / 'heartbeat.hdf5'``."""
    return data_dir() / "heartbeat.hdf5"


def _file_attrs(seed, n_train, n_test):
    return {
        "dataset": "heartbeat",
        "generator_version": GENERATOR_VERSION,
        "sequence_length": SEQUENCE_LENGTH,
        "period": PERIOD,
        "seed": seed,
        "n_train": n_train,
        "n_test": n_test,
    }


def prepare(path=None, n_train=100_000, n_test=10_000, seed=DEFAULT_SEED, overwrite=False):
    """Sample heartbeat sequences and write them to an HDF5 data file.

    The file has the sources ``features`` (uint8, shape (n, 20), dimension labels
    ``('batch', 'feature')``) and ``offset`` (int64, shape (n,), the bin of the first pulse)
    and the splits ``train`` (the first ``n_train`` rows) and ``test`` (the next ``n_test``
    rows). The two splits come from independent random streams spawned from ``seed``.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Destination; defaults to :func:`default_path`.
    n_train, n_test : int
        Number of training and test sequences, each at least 1.
    seed : int
        Seed of :class:`numpy.random.SeedSequence`; defaults to :data:`DEFAULT_SEED`.
    overwrite : bool, default False
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path) if path is not None else default_path()
    n_train, n_test, seed = write_splits(
        path, lambda n, rng: sample(n, rng, return_offset=True), "offset",
        n_train, n_test, seed, _file_attrs, overwrite,
    )
    logger.info("prepared heartbeat data: %d train and %d test sequences in %s",
                n_train, n_test, path)
    return path


def load_or_prepare(path=None, n_train=100_000, n_test=10_000, seed=DEFAULT_SEED, overwrite=False):
    """Return the path of a prepared file that matches the current definition.

    A missing file is prepared with :func:`prepare`. An existing file is used if its
    attributes match the current definition and the requested ``seed``, ``n_train`` and
    ``n_test``.

    Raises
    ------
    ValueError
        If the existing file was made with another definition or other arguments.
    """
    path = Path(path) if path is not None else default_path()
    if overwrite or not path.exists():
        return prepare(path, n_train=n_train, n_test=n_test, seed=seed, overwrite=overwrite)

    check_prepared(path, _file_attrs(seed, n_train, n_test), "heartbeat")
    return path
