"""Second distributions ``r`` that a Gaussian reverse sampler multiplies into every step.

Sohl-Dickstein et al. 2015 (arXiv:1503.03585, Section 2.5 and Appendix C) draw from a
posterior ``p(x0) r(x0)`` by multiplying each reverse kernel by ``r`` and normalizing,
``p~(x(t-1) | xt) ∝ p(x(t-1) | xt) r(x(t-1))``. They take ``r`` to be the same function at
every step (their Eq. 23), so the start ``pi = N(0, I)`` is multiplied by ``r`` as well.

Each class here implements that product for one kind of ``r`` and a diagonal Gaussian kernel
``N(mean, std**2)``, on NumPy arrays of shape (batch, ...):

- :class:`Perturbation`: ``r`` constant, which leaves the kernel unchanged.
- :class:`Inpainting`: ``r`` a delta at the known entries and constant over the others.
- :class:`GaussianObservation`: ``r(x) = N(y; x, s**2)`` for an observation ``y`` of ``x``
  with noise of known variance ``s**2`` (denoising), multiplied in closed form.
- :class:`SmoothLogR`: any smooth ``log r``, multiplied to first order as the paper's
  Eq. 61 does, by moving the mean to ``mean + std**2 * d log r / dx`` at ``x = mean``.

Notes
-----
The product of each kernel with ``r`` is the paper's approximation of the posterior, not
the posterior itself. For the exact reverse process of data at equilibrium ``N(0, 1)``, the
6-step reference schedule and a unit-variance observation ``y``, the samples have mean
``0.64 y`` and variance 0.38, while ``p(x0 | y)`` has mean ``0.5 y`` and variance 0.5. The
gap does not shrink with more steps, since every ``x(t)`` of the trajectory is weighted by
``r``. tests/test_sampling.py checks the sampler against the product's own closed form.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt

from dpm import backend


class Perturbation:
    """A constant ``r``, which leaves every kernel unchanged and so gives plain sampling.

    Subclasses override :meth:`multiply`, :meth:`clamp` or both.
    """

    def check_shape(self, shape):
        """Raise ``ValueError`` unless this ``r`` applies to states of ``shape``.

        A constant ``r`` fits any shape.
        """

    def multiply(self, mean, std):
        """Return the mean and standard deviation of ``N(mean, std**2) r``, normalized."""
        return mean, std

    def clamp(self, x):
        """Return the state ``x`` with every entry that ``r`` fixes set to its value."""
        return x


class Inpainting(Perturbation):
    """A delta ``r`` at the known entries and a constant one over the missing entries.

    The kernel factorizes over entries (its covariance is diagonal), so the product fixes
    each known entry to its value and leaves the kernel of every missing entry unchanged.
    The known entries contain the clean data at every step, the start included, as in the
    paper's inpainting (its Figure 5), rather than a forward-diffused sample of the data.

    Parameters
    ----------
    x_known : ndarray (batch, ...)
        The data. Entries outside ``mask`` are ignored.
    mask : ndarray (batch, ...) of bool
        True where an entry is known.
    floatX : str
        The float type of the states. ``x_known`` is cast to it once, so known entries of
        every state equal the cast values bit for bit.
    """

    def __init__(self, x_known, mask, floatX):
        self.mask = check_mask(mask, np.shape(x_known))
        self.x_known = np.asarray(x_known).astype(floatX)
        if not np.all(np.isfinite(self.x_known[self.mask])):
            raise ValueError("invalid x_known: every known entry (mask == 1) must be finite")

    def check_shape(self, shape):
        _check_same_shape("x_known and mask", self.mask.shape, shape)

    def clamp(self, x):
        return np.where(self.mask, self.x_known, x).astype(x.dtype)


class GaussianObservation(Perturbation):
    """``r(x) = N(y; x, s**2)``: an observation ``y`` of ``x`` with Gaussian noise of variance ``s**2``.

    The product with ``N(mean, Sigma)`` has precision ``1/Sigma + 1/s**2`` and mean
    ``(mean/Sigma + y/s**2) / (1/Sigma + 1/s**2)``. The code computes the same numbers as
    ``Sigma / (1 + Sigma/s**2)`` and ``(mean + (Sigma/s**2) y) / (1 + Sigma/s**2)``, which
    stay finite for ``s**2 = inf`` and then return ``mean`` and ``std`` unchanged bit for
    bit, so an infinite variance reproduces plain sampling exactly.

    Parameters
    ----------
    y : ndarray (batch, ...)
        The observation, finite.
    noise_variance : float or ndarray broadcastable to ``y``
        ``s**2`` per entry, in the units of the data, positive. ``inf`` marks an entry as
        unobserved.
    """

    def __init__(self, y, noise_variance):
        self.y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(self.y)):
            raise ValueError("invalid observation y: every entry must be finite")
        variance = np.asarray(noise_variance, dtype=np.float64)
        if np.any(np.isnan(variance)) or np.any(variance <= 0):
            raise ValueError(
                f"invalid noise_variance {noise_variance!r}: every entry must be positive "
                "(inf for an unobserved entry). For a noise-free observation, use inpainting"
            )
        try:
            self.noise_variance = np.broadcast_to(variance, self.y.shape)
        except ValueError as error:
            raise ValueError(
                f"noise_variance of shape {variance.shape} does not broadcast to the shape "
                f"{self.y.shape} of y"
            ) from error

    def check_shape(self, shape):
        _check_same_shape("y", self.y.shape, shape)

    def multiply(self, mean, std):
        ratio = np.square(std) / self.noise_variance
        factor = 1.0 + ratio
        return (mean + ratio * self.y) / factor, std / np.sqrt(factor)


class SmoothLogR(Perturbation):
    """A smooth ``r``, multiplied to first order: the mean moves by ``Sigma d log r / dx`` at ``x = mean``.

    This is the paper's Eq. 61. For a Gaussian ``r`` of variance ``s**2`` it is exact only in
    the limit of small ``Sigma / s**2``. The covariance stays that of the kernel.

    Parameters
    ----------
    gradient_function : callable
        Maps a floatX array of states (batch, ...) to ``d log r / dx`` of the same shape,
        as :func:`compile_log_r_gradient` builds it.
    floatX : str
    """

    def __init__(self, gradient_function, floatX):
        self.gradient_function = gradient_function
        self.floatX = floatX

    def multiply(self, mean, std):
        gradient = self.gradient_function(np.asarray(mean, dtype=self.floatX))
        return mean + np.square(std) * gradient, std


def compile_log_r_gradient(log_r, ndim):
    """Compile ``d log r / dx`` of a symbolic ``log r`` for states with ``ndim`` axes, batch first.

    Parameters
    ----------
    log_r : callable
        Maps a symbolic floatX tensor ``x`` of shape (batch, ...) to ``log r(x)``, a vector of
        shape (batch,). Entry ``i`` may depend on example ``x[i]`` only, because the gradient
        of the sum over the batch is taken as every example's own gradient.
    ndim : int
        Axes of a state, the batch axis included.

    Returns
    -------
    callable
        The compiled gradient, an array of the shape of its input.
    """
    x = pt.tensor("x", dtype=pytensor.config.floatX, shape=(None,) * ndim)
    value = pt.as_tensor_variable(log_r(x))
    if value.ndim != 1:
        raise ValueError(
            f"log_r must return one value per example, a vector of shape (batch,), but it "
            f"returned a tensor with {value.ndim} axes. Sum over the other axes inside log_r"
        )
    gradient = pytensor.grad(pt.sum(value), x)
    return backend.compile_function([x], gradient)


def check_mask(mask, shape):
    """Return ``mask`` as a bool array of ``shape`` after checking that every entry is 0 or 1."""
    mask = np.asarray(mask)
    _check_same_shape("mask", mask.shape, shape)
    if mask.dtype != bool:
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError("invalid mask: every entry must be 0 or 1 (or False or True)")
        mask = mask == 1
    return mask


def broadcast_batch(name, array, n_samples, example_shape):
    """Return ``array`` as a (batch, ...) array: itself when ``n_samples`` is None, else broadcast.

    With ``n_samples`` given, ``array`` may be one example or any shape that broadcasts to
    ``(n_samples,) + example_shape``, for example one observation shared by many samples.
    """
    array = np.asarray(array)
    full_shape = tuple(example_shape) if n_samples is None else (int(n_samples),) + tuple(example_shape)
    if n_samples is None:
        if array.ndim != len(full_shape) + 1 or array.shape[1:] != full_shape:
            raise ValueError(
                f"{name} has shape {array.shape}, expected (batch,) + {full_shape}. Pass "
                "n_samples to share one example across a batch"
            )
        return array
    try:
        return np.broadcast_to(array, full_shape).copy()
    except ValueError as error:
        raise ValueError(f"{name} of shape {array.shape} does not broadcast to {full_shape}") from error


def _check_same_shape(name, actual, expected):
    if tuple(actual) != tuple(expected):
        raise ValueError(f"{name} has shape {tuple(actual)}, expected {tuple(expected)}")
