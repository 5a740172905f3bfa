"""Convolutional layers on NCHW images: a k x k 'same' convolution and a per-pixel dense layer."""

import pytensor.tensor as pt

from dpm.bricks.activations import Identity
from dpm.bricks.base import Brick
from dpm.bricks.initialization import Constant, Orthogonal
from dpm.bricks.linear import check_dimension
from dpm.bricks.roles import BIAS, WEIGHT
from dpm.ops import conv2d_same
from dpm.ops.convolution_op import check_kernel_size


def check_activation(activation):
    """Return ``activation``, or Identity() for None. Raise TypeError unless it is a Brick with apply()."""
    if activation is None:
        return Identity()
    if not (isinstance(activation, Brick) and hasattr(activation, "apply")):
        raise TypeError(f"activation must be a Brick with apply() or None, got {activation!r}")
    return activation


class Convolutional(Brick):
    """'Same' 2-D convolution with learned kernels and biases, see :func:`dpm.ops.conv2d_same`.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        Odd kernel height and width ``k``.
    weights_init : InitializationScheme
        Scheme for ``W``, shape ``(out_channels, in_channels, k, k)``, role WEIGHT.
    biases_init : InitializationScheme, optional
        Scheme for ``b``, shape ``(out_channels,)``, role BIAS. Constant(0) by default.
    use_bias : bool, default True
    implementation : {'op', 'join', 'shifted_sum'}, optional
        Passed to :func:`~dpm.ops.conv2d_same`.
    name : str, optional
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        weights_init,
        biases_init=None,
        use_bias=True,
        implementation=None,
        name=None,
    ):
        super().__init__(name=name)
        self.in_channels = check_dimension("in_channels", in_channels)
        self.out_channels = check_dimension("out_channels", out_channels)
        self.kernel_size = check_kernel_size(kernel_size)
        self.use_bias = bool(use_bias)
        self.implementation = implementation
        shape = (self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        self.add_parameter("W", shape, weights_init, WEIGHT)
        if self.use_bias:
            biases_init = Constant(0.0) if biases_init is None else biases_init
            self.add_parameter("b", (self.out_channels,), biases_init, BIAS)

    @property
    def W(self):
        """Kernels, shape ``(out_channels, in_channels, k, k)``."""
        return self.get_parameter("W")

    @property
    def b(self):
        """Biases, shape ``(out_channels,)``. Raises KeyError when ``use_bias`` is False."""
        return self.get_parameter("b")

    def apply(self, x):
        """Map images ``(batch, in_channels, H, W)`` to ``(batch, out_channels, H, W)``."""
        bias = self.b if self.use_bias else None
        return conv2d_same(x, self.W, bias, implementation=self.implementation)


class PixelDense(Brick):
    """Dense layer applied to each pixel's channel vector, then an activation.

    This is a 1x1 convolution: ``y[n, :, h, w] = activation(x[n, :, h, w] @ W + b)``.
    The authors' Theano code builds the upper half of its image network from such
    layers, with leaky rectifiers, orthogonal initial weights and zero initial biases.
    Sohl-Dickstein et al. (2015) use tanh in the paper.

    Parameters
    ----------
    in_channels, out_channels : int
    activation : Brick or None
        Applied elementwise to the output. None leaves the layer linear. An activation
        that owns parameters becomes a child brick.
    weights_init : InitializationScheme, optional
        Scheme for ``W``, shape ``(in_channels, out_channels)``, role WEIGHT, so that
        :class:`Orthogonal`, the default, makes the matrix orthogonal.
    biases_init : InitializationScheme, optional
        Scheme for ``b``, shape ``(out_channels,)``, role BIAS. Constant(0) by default.
    name : str, optional
    """

    def __init__(
        self, in_channels, out_channels, activation, weights_init=None, biases_init=None, name=None
    ):
        super().__init__(name=name)
        self.in_channels = check_dimension("in_channels", in_channels)
        self.out_channels = check_dimension("out_channels", out_channels)
        self.activation = check_activation(activation)
        if self.activation.all_parameters:
            self.add_child(self.activation)
        weights_init = Orthogonal() if weights_init is None else weights_init
        biases_init = Constant(0.0) if biases_init is None else biases_init
        self.add_parameter("W", (self.in_channels, self.out_channels), weights_init, WEIGHT)
        self.add_parameter("b", (self.out_channels,), biases_init, BIAS)

    @property
    def W(self):
        """Weight matrix, shape ``(in_channels, out_channels)``."""
        return self.get_parameter("W")

    @property
    def b(self):
        """Biases, shape ``(out_channels,)``."""
        return self.get_parameter("b")

    def apply(self, x):
        """Map images ``(batch, in_channels, H, W)`` to ``(batch, out_channels, H, W)``."""
        kernels = pt.transpose(self.W).dimshuffle(0, 1, "x", "x")
        return self.activation.apply(conv2d_same(x, kernels, self.b))
