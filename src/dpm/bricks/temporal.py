"""Temporal basis: Gaussian bumps over the diffusion time steps, for per-step readouts.

In the image network of Sohl-Dickstein et al. (2015) the network does not see the time
step. It outputs ``2 * n_basis`` coefficients per pixel and color, and their dot product
with the basis row of step ``t`` gives the mean and the variance coefficient of the
reverse kernel at that step.
"""

import numbers

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.raise_op import Assert

from dpm.bricks.base import Brick
from dpm.bricks.linear import check_dimension

#: Named bump widths, as multiples of the spacing between neighbouring centres.
WIDTHS = {
    # model.py of the authors' Theano code (generate_temporal_basis).
    "reference": 0.5,
    # Sohl-Dickstein et al. (2015), appendix D.2, the image model.
    "paper": 1.0,
}


def bump_basis(n_steps, n_basis, width="reference"):
    """Return the ``(n_steps, n_basis)`` matrix of normalized Gaussian bumps.

    Step ``t`` is placed at ``tau = -1 + 2 t / (n_steps - 1)`` on [-1, 1], and bump
    ``j`` is centred at ``c_j = -1 + 2 j / (n_basis - 1)``. Entry ``(t, j)`` is
    ``exp(-(tau - c_j)**2 / (2 w**2))`` divided by the sum of that row, so every row
    sums to 1 (normalized across the bumps at each step, not to unit area).

    Parameters
    ----------
    n_steps : int
        Number of time steps, at least 2.
    n_basis : int
        Number of bumps, at least 2.
    width : {'reference', 'paper'} or float, default 'reference'
        Standard deviation ``w`` of each bump: 'reference' is half the spacing between
        centres, 'paper' the full spacing, and a positive float gives ``w`` itself in
        units of the [-1, 1] time axis.

    Returns
    -------
    numpy.ndarray
        float64.
    """
    n_steps = _check_at_least_two("n_steps", n_steps)
    n_basis = _check_at_least_two("n_basis", n_basis)
    positions = np.linspace(-1.0, 1.0, n_steps)
    centers = np.linspace(-1.0, 1.0, n_basis)
    std = _bump_std(width, spacing=centers[1] - centers[0])
    bumps = np.exp(-((positions[:, None] - centers[None, :]) ** 2) / (2.0 * std**2))
    return bumps / bumps.sum(axis=1, keepdims=True)


def _check_at_least_two(name, value):
    value = check_dimension(name, value)
    if value < 2:
        raise ValueError(f"{name} must be at least 2, got {value}")
    return value


def _bump_std(width, spacing):
    if isinstance(width, str):
        if width not in WIDTHS:
            raise ValueError(
                f"unknown bump width {width!r}; choose one of {sorted(WIDTHS)} or a positive number"
            )
        return WIDTHS[width] * spacing
    is_number = isinstance(width, numbers.Real) and not isinstance(width, bool)
    if not is_number or not np.isfinite(width) or width <= 0:
        raise ValueError(f"bump width must be 'reference', 'paper' or a positive number, got {width!r}")
    return float(width)


class TemporalBasis(Brick):
    """Fixed bump basis over time steps, with readout of per-pixel coefficients at step ``t``.

    The basis is a constant in the graph, not a parameter, so it has no entry in
    :attr:`all_parameters` and training does not change it.

    Parameters
    ----------
    n_steps : int
        Number of time steps; valid steps are ``0 <= t <= n_steps - 1``.
    n_basis : int, default 10
        Number of bumps J. 10 is the default of the authors' Theano code.
    width : {'reference', 'paper'} or float, default 'reference'
        See :func:`bump_basis`.
    name : str, optional
    """

    def __init__(self, n_steps, n_basis=10, width="reference", name=None):
        super().__init__(name=name)
        self.basis = bump_basis(n_steps, n_basis, width)
        self.n_steps, self.n_basis = self.basis.shape

    def coefficients_at(self, t):
        """Return the basis row for step ``t``, interpolated linearly between integer steps.

        For fractional ``t`` the row is ``(1 - f) * B[floor(t)] + f * B[floor(t) + 1]``
        with ``f = t - floor(t)``, so integer ``t`` in a float dtype gives ``B[t]``.

        Parameters
        ----------
        t : TensorVariable
            Integer or float steps, a vector of shape ``(batch,)`` (one per example) or a
            scalar.

        Returns
        -------
        TensorVariable
            Shape ``(batch, n_basis)`` for a vector, ``(n_basis,)`` for a scalar, in floatX.

        Raises
        ------
        TypeError
            If ``t`` is not a scalar or vector of numbers.
        AssertionError
            When the compiled function runs with a step outside ``[0, n_steps - 1]``.
            The JAX backend drops this check, as it drops every PyTensor Assert.
        """
        t = pt.as_tensor_variable(t)
        if t.ndim > 1 or not t.dtype.startswith(("int", "uint", "float")):
            raise TypeError(f"t must be a scalar or vector of steps, got {t.type}")
        last = self.n_steps - 1
        in_range = pt.all(pt.ge(t, 0) & pt.le(t, last))
        t = Assert(f"{self.path}: every step t must be in [0, {last}]")(t, in_range)
        basis = pt.constant(self.basis.astype(pytensor.config.floatX), name=f"{self.path}.basis")

        if t.dtype.startswith(("int", "uint")):
            return basis[t]
        # The lower step stops at last - 1, so that t = last mixes rows last - 1 and last
        # with weights 0 and 1.
        lower = pt.minimum(pt.floor(t), last - 1)
        fraction = pt.cast(t - lower, pytensor.config.floatX)
        lower = pt.cast(lower, "int64")
        return (1 - fraction)[..., None] * basis[lower] + fraction[..., None] * basis[lower + 1]

    def apply(self, z, t):
        """Read out the mean and variance coefficients of every pixel at step ``t``.

        Parameters
        ----------
        z : TensorVariable
            Network output, shape ``(batch, colors * 2 * n_basis, H, W)``. The channel
            axis is ordered (color, [mean, variance], basis function), as in the
            authors' Theano code: channel ``(c * 2 + k) * n_basis + j`` is coefficient
            ``j`` of quantity ``k`` (0 for the mean, 1 for the variance) of color ``c``.
        t : TensorVariable
            Steps, shape ``(batch,)``, or a scalar for the whole batch.

        Returns
        -------
        mean_coefficients, variance_coefficients : TensorVariable
            Each of shape ``(batch, colors, H, W)``.
        """
        z = pt.as_tensor_variable(z)
        if z.ndim != 4:
            raise ValueError(
                f"z must be 4-D (batch, channels, H, W), got {z.ndim} dimensions ({z.type})"
            )
        channels = z.type.shape[1]
        per_color = 2 * self.n_basis
        if channels is None or channels % per_color != 0:
            raise ValueError(
                f"z must have a static channel count that is a multiple of 2 * n_basis = "
                f"{per_color}, got {channels}"
            )
        rows = self.coefficients_at(t)
        if rows.ndim == 1:
            weights = rows.dimshuffle("x", 0, "x", "x")
        else:
            weights = rows.dimshuffle(0, 1, "x", "x")

        # Constant channel slices instead of a reshape: PyTensor's JAX backend cannot
        # reshape to sizes computed from symbolic image sizes.
        def dot_with_rows(start):
            return pt.sum(z[:, start:start + self.n_basis] * weights, axis=1, keepdims=True)

        colors = range(channels // per_color)
        means = [dot_with_rows(color * per_color) for color in colors]
        variances = [dot_with_rows(color * per_color + self.n_basis) for color in colors]
        return pt.concatenate(means, axis=1), pt.concatenate(variances, axis=1)
