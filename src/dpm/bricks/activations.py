"""Elementwise activation bricks. They have no parameters."""

import math
import numbers

import pytensor.tensor as pt

from dpm.bricks.base import Brick


class Activation(Brick):
    """Base class of the parameter-free elementwise nonlinearities."""

    def apply(self, x):
        """Apply the nonlinearity to each element of the tensor ``x``."""
        raise NotImplementedError


class Identity(Activation):
    """Return the input unchanged, for a linear layer."""

    def apply(self, x):
        return x


class Tanh(Activation):
    """Hyperbolic tangent."""

    def apply(self, x):
        return pt.tanh(x)


class Logistic(Activation):
    """Logistic sigmoid, ``1 / (1 + exp(-x))``."""

    def apply(self, x):
        return pt.sigmoid(x)


class Softplus(Activation):
    """``log(1 + exp(x))``, finite for all finite inputs.

    PyTensor's ``softplus`` (checked in version 3.0.7) switches between ``exp(x)``,
    ``log1p(exp(x))``, ``x + exp(-x)`` and ``x`` by input range, so neither ``exp``
    overflows nor ``log1p`` loses the small tail.
    """

    def apply(self, x):
        return pt.softplus(x)


class Rectifier(Activation):
    """Rectified linear unit, ``max(x, 0)``."""

    def apply(self, x):
        return pt.maximum(x, 0)


class LeakyRectifier(Activation):
    """``x`` for positive inputs, ``slope * x`` otherwise.

    Parameters
    ----------
    slope : float, default 0.05
        Gradient for negative inputs. 0.05 is the value in regression.py of the
        authors' Theano code, github.com/Sohl-Dickstein/Diffusion-Probabilistic-Models.
    name : str, optional
    """

    def __init__(self, slope=0.05, name=None):
        super().__init__(name=name)
        if not isinstance(slope, numbers.Real) or not math.isfinite(slope):
            raise ValueError(f"slope must be a finite real number, got {slope!r}")
        self.slope = float(slope)

    def apply(self, x):
        return pt.switch(x > 0, x, self.slope * x)
