"""Shared parts of the generated data sets: argument checks and reuse of a prepared file."""

import logging
import operator

import numpy as np

from dpm.data.hdf5 import read_attrs, verify_checksums

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
