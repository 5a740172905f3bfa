"""The 2-D swiss roll of Sohl-Dickstein et al. (2015), Figure 1, with its exact density.

Definition
----------
The paper (Sohl-Dickstein, Weiss, Maheswaranathan and Ganguli, "Deep Unsupervised
Learning using Nonequilibrium Thermodynamics", ICML 2015) trains on a 2-D swiss roll
but does not give its parameters. The following choices are ours:

1. Draw the roll parameter ``s ~ Uniform(S_MIN, S_MAX)`` with ``S_MIN = 1.5*pi`` and
   ``S_MAX = 4.5*pi``, which is one and a half turns.
2. Take the point ``(s cos s, s sin s)`` and add isotropic Gaussian noise of standard
   deviation ``NOISE_STD = 0.25``. In these raw units that is about 1.8% of the outer
   radius ``4.5*pi`` and 4% of the ``2*pi`` spacing between turns. The value was chosen
   by eye from the roll's thickness relative to its size in the paper's Figure 1, but
   see the NOTE below.
3. Center and scale with one constant: ``x = (raw - MEAN) * SCALE``. ``MEAN`` is the
   exact mean of the raw distribution and ``SCALE = 1 / sqrt((var_0 + var_1) / 2)``,
   with ``var_0, var_1`` the exact per-axis variances of the noisy raw distribution.
   Both come from closed-form integrals, not from a sample, so ``x`` has mean zero and
   average per-axis variance one. The paper supports this scaling: its Figure 1 shows
   the data in about ``[-2, 2]^2``, and its Table 1 gives K = 2.35 bits and
   K - L_null = 6.45 bits. L_null = -4.10 bits is then the log likelihood of an
   identity-covariance Gaussian on 2-D data of unit per-axis variance, which is
   ``-(ln(2 pi) + 1) / ln 2 = -4.09`` bits.

The density of ``x`` is the average over ``s`` of a Gaussian centered on the scaled
curve, ``p(x) = E_s[N(x; (roll(s) - MEAN) * SCALE, (NOISE_STD * SCALE)^2 I)]``, and
:func:`log_density` evaluates it by quadrature along the roll.

NOTE: with ``NOISE_STD = 0.25`` the true log likelihood of this distribution is about
-0.95 bits per point, but the paper reports a lower bound of K = 2.35 bits per point for
its swiss roll model (Table 1). A bound cannot exceed the true log likelihood. With this
roll's shape, the true value reaches 2.35 bits only for ``NOISE_STD`` of about 0.026 or
less, so the paper's roll was about ten times thinner or shaped differently. Bounds K
measured on this data set are therefore not comparable with 2.35 bits.
"""

import functools
import logging
import math
from pathlib import Path

import numpy as np

from dpm.data.generated import check_prepared, validate_count, write_splits
from dpm.data.paths import data_dir

logger = logging.getLogger(__name__)

#: Range of the roll parameter ``s`` in radians, one and a half turns.
S_MIN = 1.5 * math.pi
S_MAX = 4.5 * math.pi
#: Standard deviation of the isotropic Gaussian noise, in raw (unscaled) units.
NOISE_STD = 0.25
#: Version of the sampling procedure. Increase it when the order or kind of random draws changes.
GENERATOR_VERSION = 1
#: Seed of the prepared file, an arbitrary fixed value.
DEFAULT_SEED = 20150312
#: Default number of quadrature nodes along ``s`` for :func:`log_density`. Four times as
#: many nodes change ``log p`` by under 1e-12 nats at sampled points. On a grid over
#: ``[-2.5, 2.5]^2``, where ``log p`` goes down to about -1300, the change is under a
#: relative 1e-9. tests/test_swiss_roll.py checks both bounds.
DEFAULT_N_NODES = 16384
#: Nodes per panel of the composite Gauss-Legendre rule used by :func:`log_density`.
GAUSS_ORDER = 8

# Max elements of one (points x nodes) float64 block in log_density. That is 32 MiB per
# block, and about three blocks are alive at a time.
_BLOCK_ELEMENTS = 2**22


def _raw_moments():
    """Return the exact mean and per-axis variance of the noisy raw roll.

    The moments are averages over ``s ~ Uniform(S_MIN, S_MAX)`` of closed-form
    antiderivatives:
    ``int s cos s ds = s sin s + cos s``, ``int s sin s ds = sin s - s cos s``, and
    ``int s^2 cos^2 s ds = s^3/6 + g(s)``, ``int s^2 sin^2 s ds = s^3/6 - g(s)`` with
    ``g(s) = (s^2/4) sin 2s + (s/4) cos 2s - (1/8) sin 2s``.
    The noise adds ``NOISE_STD**2`` to each variance.
    """
    length = S_MAX - S_MIN

    def average(antiderivative):
        return (antiderivative(S_MAX) - antiderivative(S_MIN)) / length

    def g(s):
        return (s * s / 4) * math.sin(2 * s) + (s / 4) * math.cos(2 * s) - math.sin(2 * s) / 8

    mean = np.array(
        [
            average(lambda s: s * math.sin(s) + math.cos(s)),
            average(lambda s: math.sin(s) - s * math.cos(s)),
        ]
    )
    second_moment = np.array(
        [
            average(lambda s: s**3 / 6 + g(s)),
            average(lambda s: s**3 / 6 - g(s)),
        ]
    )
    variance = second_moment - mean**2 + NOISE_STD**2
    return mean, variance


def _read_only(array):
    array.setflags(write=False)
    return array


_mean, _variance = _raw_moments()
#: Exact mean of the noisy raw distribution, shape (2,).
MEAN = _read_only(_mean)
#: Exact per-axis variances of the noisy raw distribution, shape (2,).
RAW_VARIANCE = _read_only(_variance)
#: Factor that gives the scaled data an average per-axis variance of exactly one.
SCALE = float(1.0 / np.sqrt(RAW_VARIANCE.mean()))
#: Noise standard deviation in scaled units.
SCALED_NOISE_STD = NOISE_STD * SCALE
del _mean, _variance


def curve(s):
    """Return the noise-free roll at parameters ``s`` in scaled units, shape ``s.shape + (2,)``."""
    s = np.asarray(s, dtype=np.float64)
    raw = np.stack([s * np.cos(s), s * np.sin(s)], axis=-1)
    return (raw - MEAN) * SCALE


def sample(n, rng, return_parameter=False):
    """Draw points from the scaled swiss roll.

    Parameters
    ----------
    n : int
        Number of points.
    rng : numpy.random.Generator or int
        Random generator, or a seed for :func:`numpy.random.default_rng`.
    return_parameter : bool, default False
        Also return the roll parameter ``s`` of each point.

    Returns
    -------
    x : numpy.ndarray
        float64 array of shape (n, 2).
    s : numpy.ndarray
        float64 array of shape (n,), only if ``return_parameter`` is true.
    """
    n = validate_count(n, "n")
    if not isinstance(rng, np.random.Generator):
        if rng is None or isinstance(rng, bool) or not isinstance(rng, (int, np.integer)):
            raise TypeError(
                f"rng must be a numpy.random.Generator or an integer seed, got {rng!r}"
            )
        rng = np.random.default_rng(rng)

    # The order of these two draws is part of GENERATOR_VERSION.
    s = rng.uniform(S_MIN, S_MAX, size=n)
    noise = rng.standard_normal((n, 2))
    x = curve(s) + SCALED_NOISE_STD * noise
    if return_parameter:
        return x, s
    return x


@functools.lru_cache(maxsize=8)
def _quadrature_rule(n_nodes):
    """Return ``(centers, log_weights)`` of the composite Gauss-Legendre rule in ``s``.

    ``centers`` are the scaled curve points at the nodes, shape (n_nodes, 2), and
    ``log_weights`` the logs of the node weights divided by ``S_MAX - S_MIN`` (the
    uniform density of ``s``), so that they sum to one in linear space.
    """
    unit_nodes, unit_weights = np.polynomial.legendre.leggauss(GAUSS_ORDER)
    edges = np.linspace(S_MIN, S_MAX, n_nodes // GAUSS_ORDER + 1)
    half_widths = np.diff(edges)[:, None] / 2
    nodes = (edges[:-1, None] + half_widths * (unit_nodes + 1)).ravel()
    weights = (half_widths * unit_weights).ravel() / (S_MAX - S_MIN)
    return _read_only(curve(nodes)), _read_only(np.log(weights))


def log_density(x, n_nodes=DEFAULT_N_NODES):
    """Compute the natural-log density of the scaled swiss roll at each row of ``x``.

    ``p(x)`` is the average over ``s`` of a Gaussian with standard deviation
    :data:`SCALED_NOISE_STD` centered on :func:`curve` ``(s)``. The average is taken
    with a composite Gauss-Legendre rule over ``[S_MIN, S_MAX]`` and summed in log
    space, so points far from the roll get finite values. Near the roll the integrand
    is a bump of width about ``NOISE_STD / s`` in ``s`` (at least 0.018), which
    :data:`DEFAULT_N_NODES` nodes resolve many times over.

    Parameters
    ----------
    x : array_like
        Points of shape (n, 2), in scaled units.
    n_nodes : int, default DEFAULT_N_NODES
        Number of quadrature nodes, a positive multiple of :data:`GAUSS_ORDER`.

    Returns
    -------
    numpy.ndarray
        float64 array of shape (n,) with ``log p(x)`` in nats.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(
            f"x must have shape (n, 2), got {x.shape}; for one point pass x[None, :]"
        )
    n_invalid = int(np.count_nonzero(~np.isfinite(x)))
    if n_invalid:
        raise ValueError(f"x contains {n_invalid} NaN or infinite values")
    n_nodes = validate_count(n_nodes, "n_nodes", minimum=GAUSS_ORDER)
    if n_nodes % GAUSS_ORDER:
        raise ValueError(
            f"n_nodes must be a multiple of {GAUSS_ORDER}, got {n_nodes}; "
            f"use for example {GAUSS_ORDER * (n_nodes // GAUSS_ORDER + 1)}"
        )

    centers, log_weights = _quadrature_rule(n_nodes)
    variance = SCALED_NOISE_STD**2
    log_normalizer = math.log(2 * math.pi * variance)
    block_rows = max(1, _BLOCK_ELEMENTS // n_nodes)
    result = np.empty(x.shape[0])
    for begin in range(0, x.shape[0], block_rows):
        block = x[begin : begin + block_rows]
        exponent = np.subtract.outer(block[:, 0], centers[:, 0])
        np.square(exponent, out=exponent)
        exponent += np.square(np.subtract.outer(block[:, 1], centers[:, 1]))
        exponent *= -0.5 / variance
        exponent += log_weights
        # logsumexp over the nodes, written out to reuse the block's memory.
        peak = exponent.max(axis=1)
        exponent -= peak[:, None]
        np.exp(exponent, out=exponent)
        result[begin : begin + block_rows] = peak + np.log(exponent.sum(axis=1))
    return result - log_normalizer


def true_log_likelihood_bits(x, n_nodes=DEFAULT_N_NODES):
    """Return the mean log density of the points ``x`` in bits per point, with its standard error.

    Parameters
    ----------
    x : array_like
        At least two points, shape (n, 2), in scaled units.
    n_nodes : int, default DEFAULT_N_NODES
        Passed to :func:`log_density`.

    Returns
    -------
    mean : float
        Average of ``log2 p(x)`` over the rows of ``x``.
    standard_error : float
        Sample standard deviation of ``log2 p(x)`` divided by ``sqrt(n)``.
    """
    bits = log_density(x, n_nodes=n_nodes) / math.log(2)
    if bits.size < 2:
        raise ValueError(f"need at least 2 points for a standard error, got {bits.size}")
    return float(bits.mean()), float(bits.std(ddof=1) / math.sqrt(bits.size))


def default_path():
    """Return the default location of the prepared file, ``data_dir() / 'swiss_roll.hdf5'``."""
    return data_dir() / "swiss_roll.hdf5"


def definition_attrs():
    """Return the attributes that describe the distribution, as stored in the prepared file."""
    return {
        "dataset": "swiss_roll",
        "generator_version": GENERATOR_VERSION,
        "noise_std": NOISE_STD,
        "s_min": S_MIN,
        "s_max": S_MAX,
        "mean": MEAN.tolist(),
        "scale": SCALE,
    }


def _file_attrs(seed, n_train, n_test):
    return {**definition_attrs(), "seed": seed, "n_train": n_train, "n_test": n_test}


def prepare(path=None, n_train=100_000, n_test=20_000, seed=DEFAULT_SEED, overwrite=False):
    """Sample the swiss roll and write it to an HDF5 data file.

    The file has the sources ``features`` (float64, shape (n, 2), dimension labels
    ``('batch', 'feature')``) and ``roll_parameter`` (float64, shape (n,), the ``s``
    of each point) and the splits ``train`` (the first ``n_train`` rows) and ``test``
    (the next ``n_test`` rows). The two splits come from independent random streams
    spawned from ``seed``, so ``n_train`` does not change the test points. The
    features stay float64 so that :func:`log_density` of the stored points is exact,
    and models cast them to their own float type.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Destination; defaults to :func:`default_path`.
    n_train, n_test : int
        Number of training and test points, each at least 1.
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
        path, lambda n, rng: sample(n, rng, return_parameter=True), "roll_parameter",
        n_train, n_test, seed, _file_attrs, overwrite,
    )
    logger.info("prepared swiss roll: %d train and %d test points in %s", n_train, n_test, path)
    return path


def load_or_prepare(path=None, n_train=100_000, n_test=20_000, seed=DEFAULT_SEED, overwrite=False):
    """Return the path of a prepared file that matches the current definition.

    A missing file is prepared with :func:`prepare`. An existing file is used if its
    attributes match the current definition and the requested ``seed``, ``n_train``
    and ``n_test``. Floating-point attributes need to match within a relative 1e-12.

    Parameters
    ----------
    path, n_train, n_test, seed
        As for :func:`prepare`.
    overwrite : bool, default False
        Prepare the file again even if it exists.

    Returns
    -------
    pathlib.Path
        Path of the file, ready for :class:`dpm.data.hdf5.H5Dataset`.

    Raises
    ------
    ValueError
        If the existing file was made with another definition or other arguments.
    """
    path = Path(path) if path is not None else default_path()
    if overwrite or not path.exists():
        return prepare(path, n_train=n_train, n_test=n_test, seed=seed, overwrite=overwrite)

    check_prepared(path, _file_attrs(seed, n_train, n_test), "swiss_roll")
    return path
