"""Shared parts of the generated data sets: argument checks and reuse of a prepared file."""

import logging
import operator

import numpy as np

from dpm.data.hdf5 import read_attrs, verify_checksums, write_dataset

logger = logging.getLogger(__name__)


def validate_count(value, name, minimum=0):
    """Return ``value`` as an int after checking that it is an integer of at least ``minimum``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def attrs_equal(stored, expected):
    """Compare attribute values, numbers within a relative 1e-12 and others exactly."""
    if isinstance(expected, (str, bool)) or isinstance(stored, (str, bool)):
        return type(stored) is type(expected) and stored == expected
    stored_array = np.asarray(stored)
    expected_array = np.asarray(expected)
    if stored_array.dtype.kind not in "iuf" or expected_array.dtype.kind not in "iuf":
        return stored == expected
    if stored_array.shape != expected_array.shape:
        return False
    return bool(np.allclose(stored_array, expected_array, rtol=1e-12, atol=0.0))


def check_prepared(path, expected, name):
    """Check that the prepared file ``path`` matches ``expected`` attributes and its checksums.

    Parameters
    ----------
    path : pathlib.Path
    expected : dict
        The attributes the current definition and arguments would write.
    name : str
        The data set's name for ``dpm data prepare``, for example ``'swiss_roll'``.

    Raises
    ------
    ValueError
        If the file was made with another definition or other arguments.
    DataFileError
        If its content no longer matches its checksums.
    """
    stored = read_attrs(path)
    mismatches = [
        f"{key}: file has {stored.get(key, '<missing>')!r}, expected {value!r}"
        for key, value in expected.items()
        if key not in stored or not attrs_equal(stored[key], value)
    ]
    if mismatches:
        raise ValueError(
            f"{path} does not match the requested {name} data ({'; '.join(mismatches)}); "
            f"delete the file or pass overwrite=True (`dpm data prepare {name} --force`) "
            "to prepare it again"
        )
    verify_checksums(path)
    logger.info("using existing %s file %s", name, path)


def write_splits(path, draw, extra_source, n_train, n_test, seed, make_attrs, overwrite):
    """Draw train and test rows from independent seeded streams and write them as one file.

    Parameters
    ----------
    path : pathlib.Path
    draw : callable
        ``draw(n, rng)`` returns ``(features, extra)``: features of shape (n, D) and one
        value per row of the source named ``extra_source`` (for example the roll parameter).
    extra_source : str
    n_train, n_test : int
        Rows of the ``train`` split (first) and the ``test`` split (next), each at least 1.
    seed : int
        Seed of :class:`numpy.random.SeedSequence`. The two splits come from streams
        spawned from it, so ``n_train`` does not change the test rows.
    make_attrs : callable
        ``make_attrs(seed, n_train, n_test)`` returns the file attributes, called with the
        validated values.
    overwrite : bool

    Returns
    -------
    tuple
        ``(n_train, n_test, seed)`` after validation.
    """
    n_train = validate_count(n_train, "n_train", minimum=1)
    n_test = validate_count(n_test, "n_test", minimum=1)
    seed = validate_count(seed, "seed")
    train_stream, test_stream = np.random.SeedSequence(seed).spawn(2)
    train_x, train_extra = draw(n_train, np.random.default_rng(train_stream))
    test_x, test_extra = draw(n_test, np.random.default_rng(test_stream))
    write_dataset(
        path,
        sources={
            "features": (np.concatenate([train_x, test_x]), ("batch", "feature")),
            extra_source: (np.concatenate([train_extra, test_extra]), ("batch",)),
        },
        splits={"train": (0, n_train), "test": (n_train, n_train + n_test)},
        attrs=make_attrs(seed, n_train, n_test),
        overwrite=overwrite,
    )
    return n_train, n_test, seed
