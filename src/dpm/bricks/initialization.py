"""Initialization schemes: each draws a parameter's starting value from a seeded generator.

Every scheme has ``generate(rng, shape)``, which takes a :class:`numpy.random.Generator`
and returns a new array of that shape in ``pytensor.config.floatX``.
"""

import math
import numbers

import numpy as np
import pytensor


def _check_shape(shape):
    shape = tuple(shape)
    for size in shape:
        if not isinstance(size, numbers.Integral) or size < 0:
            raise ValueError(f"shape must contain non-negative integers, got {shape!r}")
    return tuple(int(size) for size in shape)


def _check_finite(name, value):
    if not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


class InitializationScheme:
    """Base class of the schemes. Subclasses implement :meth:`generate`."""

    def generate(self, rng, shape):
        """Draw an array of ``shape`` in floatX from ``rng``.

        Parameters
        ----------
        rng : numpy.random.Generator
        shape : tuple of int

        Returns
        -------
        numpy.ndarray
        """
        raise NotImplementedError


class IsotropicGaussian(InitializationScheme):
    """Independent normal entries with the same mean and standard deviation.

    Parameters
    ----------
    std : float, default 1
        Standard deviation, non-negative.
    mean : float, default 0
    """

    def __init__(self, std=1.0, mean=0.0):
        self.std = _check_finite("std", std)
        self.mean = _check_finite("mean", mean)
        if self.std < 0:
            raise ValueError(f"std must be non-negative, got {std!r}")

    def generate(self, rng, shape):
        shape = _check_shape(shape)
        values = rng.normal(self.mean, self.std, size=shape)
        return values.astype(pytensor.config.floatX)

    def __repr__(self):
        return f"IsotropicGaussian(std={self.std!r}, mean={self.mean!r})"


class Constant(InitializationScheme):
    """The same value everywhere, or an array broadcast to the parameter's shape.

    Parameters
    ----------
    value : float or array_like
        Must broadcast to the shape given to :meth:`generate`. Draws nothing from the
        generator.
    """

    def __init__(self, value):
        self.value = np.array(value, dtype=np.float64)
        if not np.all(np.isfinite(self.value)):
            raise ValueError(f"value must be finite, got {value!r}")

    def generate(self, rng, shape):
        shape = _check_shape(shape)
        try:
            values = np.broadcast_to(self.value, shape)
        except ValueError as error:
            raise ValueError(
                f"Constant value of shape {self.value.shape} does not broadcast to the "
                f"parameter shape {shape}; pass a scalar or an array of a compatible shape"
            ) from error
        return values.astype(pytensor.config.floatX)

    def __repr__(self):
        return f"Constant({self.value.tolist()!r})"


class Orthogonal(InitializationScheme):
    """Uniformly (Haar) distributed matrices with orthonormal rows or columns, times a scale.

    For a 2-D shape ``(m, n)`` the result has orthonormal columns when ``m >= n`` and
    orthonormal rows when ``m < n``. For more than two dimensions, each matrix over
    the last two axes is drawn independently in the same way, so a per-step weight
    tensor of shape ``(n_steps, m, n)`` gets one orthogonal matrix per step. Shapes
    with fewer than two dimensions are rejected.

    Each matrix is the Q factor of the QR decomposition of a standard Gaussian matrix,
    with each column of Q multiplied by the sign of the matching diagonal entry of R.
    Without that correction LAPACK's sign convention biases Q; with it Q is Haar
    distributed (F. Mezzadri, "How to generate random matrices from the classical
    compact groups", Notices of the AMS 54, 2007).

    Parameters
    ----------
    scale : float, default 1
        Factor applied to the orthonormal matrix.
    """

    def __init__(self, scale=1.0):
        self.scale = _check_finite("scale", scale)

    def generate(self, rng, shape):
        shape = _check_shape(shape)
        if len(shape) < 2:
            raise ValueError(
                f"Orthogonal needs a parameter with at least 2 dimensions, got shape "
                f"{shape}; use IsotropicGaussian or Uniform for vectors"
            )
        rows, cols = shape[-2:]
        tall_rows, tall_cols = max(rows, cols), min(rows, cols)
        batch_shape = shape[:-2]

        # numpy.linalg.qr works on stacks of matrices, so all leading axes go at once.
        gaussian = rng.standard_normal(size=batch_shape + (tall_rows, tall_cols))
        q, r = np.linalg.qr(gaussian, mode="reduced")
        signs = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
        # A zero diagonal entry has probability zero, but would zero a column.
        signs[signs == 0] = 1.0
        q = q * signs[..., np.newaxis, :]

        if rows < cols:
            q = np.swapaxes(q, -1, -2)
        return (self.scale * q).astype(pytensor.config.floatX)

    def __repr__(self):
        return f"Orthogonal(scale={self.scale!r})"


class Uniform(InitializationScheme):
    """Independent uniform entries, given by their width or their standard deviation.

    Parameters
    ----------
    mean : float, default 0
        Center of the interval.
    width : float, optional
        Length of the interval ``[mean - width / 2, mean + width / 2)``.
    std : float, optional
        Standard deviation. The width is then ``std * sqrt(12)``.

    Exactly one of ``width`` and ``std`` must be given.
    """

    def __init__(self, mean=0.0, width=None, std=None):
        if (width is None) == (std is None):
            raise ValueError(
                f"Uniform needs exactly one of width and std, got width={width!r}, std={std!r}"
            )
        self.mean = _check_finite("mean", mean)
        if width is not None:
            self.width = _check_finite("width", width)
        else:
            self.width = _check_finite("std", std) * math.sqrt(12.0)
        if self.width < 0:
            raise ValueError(
                f"width and std must be non-negative, got width={width!r}, std={std!r}"
            )

    def generate(self, rng, shape):
        shape = _check_shape(shape)
        low = self.mean - self.width / 2
        values = rng.uniform(low, low + self.width, size=shape)
        return values.astype(pytensor.config.floatX)

    def __repr__(self):
        return f"Uniform(mean={self.mean!r}, width={self.width!r})"
