"""Whole-split pixel statistics that image data files store for scaling their features.

Every image file written by the converters carries the file attributes ``train_mean`` and
``train_std``: the mean and the standard deviation over all values of the training split's
``features``, in [0, 1] units (pixel / 255) for uint8 features. A stream transformer reads
them to map the data to zero mean and unit variance.
"""

import fractions
import math

import numpy as np

#: Number of grey levels of a uint8 pixel. Pixel values in [0, 1] units are ``pixel / (LEVELS - 1)``.
LEVELS = 256
#: File attribute with the mean of the training split's scaled pixel values.
TRAIN_MEAN_ATTRIBUTE = "train_mean"
#: File attribute with the standard deviation (population, ddof=0) of the same values.
TRAIN_STD_ATTRIBUTE = "train_std"
#: File attribute with the factor applied to stored values before the statistics.
STATISTICS_SCALE_ATTRIBUTE = "train_statistics_scale"

# Values counted per np.bincount call, which keeps the int64 copy of a chunk small.
_CHUNK_VALUES = 1 << 24


def pixel_statistics(values):
    """Compute the mean and standard deviation of all values, uint8 ones divided by 255.

    For uint8 input the values are counted into a 256-bin histogram and summed with
    Python integers, so the mean is exact up to one float64 rounding and the standard
    deviation up to two. Float input is reduced in float64 as stored, without scaling.

    Parameters
    ----------
    values : numpy.ndarray
        uint8 or floating-point array of any shape, with at least one element.

    Returns
    -------
    mean, std : float
        The population statistics (``ddof=0``).
    """
    values = np.asarray(values)
    if values.size == 0:
        raise ValueError("cannot compute pixel statistics of an empty array")
    if values.dtype == np.uint8:
        return _uint8_statistics(values)
    if values.dtype.kind != "f":
        raise TypeError(
            f"pixel statistics need uint8 or floating-point values, got dtype {values.dtype}"
        )
    mean = float(np.mean(values, dtype=np.float64))
    std = float(np.std(values, dtype=np.float64))
    return mean, std


def _uint8_statistics(values):
    flat = values.reshape(-1)
    counts = np.zeros(LEVELS, dtype=np.int64)
    for start in range(0, flat.size, _CHUNK_VALUES):
        counts += np.bincount(flat[start : start + _CHUNK_VALUES], minlength=LEVELS)
    n = flat.size
    top = LEVELS - 1
    total = sum(level * int(count) for level, count in enumerate(counts))
    total_squares = sum(level * level * int(count) for level, count in enumerate(counts))
    mean = fractions.Fraction(total, n * top)
    variance = fractions.Fraction(n * total_squares - total * total, n * n * top * top)
    return float(mean), math.sqrt(variance)


def statistics_attrs(train_features):
    """Return the ``train_mean``, ``train_std`` and scale attributes for a training split.

    Parameters
    ----------
    train_features : numpy.ndarray
        The ``features`` rows of the training split, uint8 or floating point.

    Returns
    -------
    dict
        ``{'train_mean': float, 'train_std': float, 'train_statistics_scale': float}``,
        where the scale is ``1/255`` for uint8 features and ``1.0`` for float features.
    """
    mean, std = pixel_statistics(train_features)
    scale = 1.0 / (LEVELS - 1) if np.asarray(train_features).dtype == np.uint8 else 1.0
    return {
        TRAIN_MEAN_ATTRIBUTE: mean,
        TRAIN_STD_ATTRIBUTE: std,
        STATISTICS_SCALE_ATTRIBUTE: scale,
    }
