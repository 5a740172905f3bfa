"""Normalized radial basis function layer, the hidden layer of dpm's swiss roll network."""

import math

import pytensor.tensor as pt
from pytensor.gradient import zero_grad

from dpm.bricks.base import Brick
from dpm.bricks.initialization import Constant, IsotropicGaussian
from dpm.bricks.linear import check_dimension
from dpm.bricks.roles import CENTER, WIDTH


class NormalizedRBF(Brick):
    """Gaussian radial basis functions normalized to sum to one over the units.

    Unit ``j`` has a learned center ``c_j`` and a learned width ``w_j``, and outputs

        h_j(x) = exp(-||x - c_j||^2 / (2 w_j^2)) / sum_k exp(-||x - c_k||^2 / (2 w_k^2)).

    dpm's swiss roll network uses 16 such units, shared by all time steps, as its
    hidden layer, following the network that Sohl-Dickstein et al. (2015) describe.

    Parameters
    ----------
    input_dim : int
    n_units : int
    centers_init : InitializationScheme, optional
        Scheme for ``centers``, shape ``(n_units, input_dim)``, role CENTER. Defaults to
        IsotropicGaussian(std=1), our choice for data scaled to unit variance.
    log_widths_init : InitializationScheme, optional
        Scheme for ``log_widths``, the natural log of ``w``, shape ``(n_units,)``, role
        WIDTH. Defaults to Constant(log(0.5)), our choice.
    name : str, optional

    Notes
    -----
    The output is the softmax of the logits ``-||x - c_j||^2 / (2 w_j^2)`` with the
    maximum logit subtracted first, so the largest term is ``exp(0) = 1``. Far from
    every center all logits are huge and negative, and the plain ratio would be 0/0,
    but this form stays finite. Distances are computed from differences, not as
    ``||x||^2 - 2 x.c + ||c||^2``, which cancels badly in float32 for large ``|x|``.
    This takes memory ``batch * n_units * input_dim``, which is small for the 2-D and
    3-D toy data this layer serves.
    """

    def __init__(self, input_dim, n_units, centers_init=None, log_widths_init=None, name=None):
        super().__init__(name=name)
        self.input_dim = check_dimension("input_dim", input_dim)
        self.n_units = check_dimension("n_units", n_units)
        if centers_init is None:
            centers_init = IsotropicGaussian(std=1.0)
        if log_widths_init is None:
            log_widths_init = Constant(math.log(0.5))
        self.add_parameter("centers", (self.n_units, self.input_dim), centers_init, CENTER)
        self.add_parameter("log_widths", (self.n_units,), log_widths_init, WIDTH)

    @property
    def centers(self):
        """Centers of the units, shape ``(n_units, input_dim)``."""
        return self.get_parameter("centers")

    @property
    def log_widths(self):
        """Natural log of each unit's width, shape ``(n_units,)``."""
        return self.get_parameter("log_widths")

    def logits(self, x):
        """Return the logits ``-||x - c_j||^2 / (2 w_j^2)``, shape ``(batch, n_units)``.

        ``x`` has shape ``(batch, input_dim)``.
        """
        differences = x[:, None, :] - self.centers[None, :, :]
        squared_distances = pt.sum(pt.sqr(differences), axis=2)
        # 1 / (2 w^2) = exp(-2 log w) / 2
        inverse_two_variances = 0.5 * pt.exp(-2.0 * self.log_widths)
        return -squared_distances * inverse_two_variances[None, :]

    def apply(self, x):
        """Map ``x`` of shape ``(batch, input_dim)`` to activations of shape ``(batch, n_units)``.

        Each row is non-negative and sums to one.
        """
        logits = self.logits(x)
        # Softmax does not depend on the shift, so its gradient is cut to save work.
        shifted = logits - zero_grad(pt.max(logits, axis=1, keepdims=True))
        unnormalized = pt.exp(shifted)
        return unnormalized / pt.sum(unnormalized, axis=1, keepdims=True)
