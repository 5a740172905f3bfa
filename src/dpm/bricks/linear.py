"""Affine layer ``x @ W + b``."""

import numbers

import pytensor.tensor as pt

from dpm.bricks.base import Brick
from dpm.bricks.initialization import Constant
from dpm.bricks.roles import BIAS, WEIGHT


def check_dimension(name, value):
    """Return ``value`` as an int, or raise ValueError if it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class Linear(Brick):
    """Affine map of the last axis: ``apply(x) = x @ W + b``.

    Parameters
    ----------
    input_dim, output_dim : int
    weights_init : InitializationScheme
        Scheme for ``W``, of shape ``(input_dim, output_dim)`` and role WEIGHT.
    biases_init : InitializationScheme, default Constant(0)
        Scheme for ``b``, of shape ``(output_dim,)`` and role BIAS.
    use_bias : bool, default True
        Without a bias the brick has no ``b`` and computes ``x @ W``.
    name : str, optional
    """

    def __init__(
        self, input_dim, output_dim, weights_init, biases_init=None, use_bias=True, name=None
    ):
        super().__init__(name=name)
        self.input_dim = check_dimension("input_dim", input_dim)
        self.output_dim = check_dimension("output_dim", output_dim)
        self.use_bias = bool(use_bias)
        self.add_parameter("W", (self.input_dim, self.output_dim), weights_init, WEIGHT)
        if self.use_bias:
            biases_init = Constant(0.0) if biases_init is None else biases_init
            self.add_parameter("b", (self.output_dim,), biases_init, BIAS)

    @property
    def W(self):
        """Weight matrix, shape ``(input_dim, output_dim)``."""
        return self.get_parameter("W")

    @property
    def b(self):
        """Bias vector, shape ``(output_dim,)``. Raises KeyError when ``use_bias`` is False."""
        return self.get_parameter("b")

    def apply(self, x):
        """Map ``x`` of shape ``(..., input_dim)`` to shape ``(..., output_dim)``."""
        output = pt.dot(x, self.W)
        if self.use_bias:
            output = output + self.b
        return output
