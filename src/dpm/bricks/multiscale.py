"""Multi-scale convolutional layers of the image network of Sohl-Dickstein et al. (2015).

A multi-scale layer takes its input at full resolution and mean-pooled by 2, 4, ...
(``n_scales`` scales in all), convolves each scale with its own kernels and adds the
results back at full resolution by pixel replication. Two variants exist:

``'paper'``
    As Sohl-Dickstein et al. (2015) describe it in appendix D.2: a linear convolution
    at every scale, the sum of all scales upsampled to full size, then softplus.
``'reference'``
    As in regression.py of the authors' Theano code
    (github.com/Sohl-Dickstein/Diffusion-Probabilistic-Models): each scale's
    convolution has a bias and its own leaky rectifier (slope 0.05). Going from the
    coarsest scale to the finest, each result is added to an accumulator, which is
    upsampled by 2 before the next finer scale. The sum is divided by ``n_scales``.
"""

import math

from dpm.bricks.activations import LeakyRectifier, Softplus
from dpm.bricks.base import Brick
from dpm.bricks.convolutional import Convolutional, check_activation
from dpm.bricks.initialization import IsotropicGaussian
from dpm.bricks.linear import check_dimension
from dpm.ops import mean_pool, upsample
from dpm.ops.convolution_op import check_kernel_size

#: Accepted values of ``variant``.
VARIANTS = ("paper", "reference")


def reference_weights_std(out_channels, kernel_size):
    """Return ``sqrt(1 / out_channels) / kernel_size**2``, the initial weight scale of the Theano code.

    The authors' comment there reasons that for spatially smooth images a layer's output
    grows with the number of kernel pixels rather than with its square root.
    """
    return math.sqrt(1.0 / out_channels) / kernel_size**2


class MultiScaleConvolution(Brick):
    """'Same' convolutions of the input at ``n_scales`` resolutions, summed at full resolution.

    Scale ``s`` mean-pools the input by ``2**s``, so image height and width must be
    multiples of ``2**(n_scales - 1)``. Scale ``s`` is the child ``scale_<s>``, a
    :class:`Convolutional` brick.

    Parameters
    ----------
    in_channels, out_channels : int
    n_scales : int
        Number of resolutions, 1 for a plain convolutional layer.
    kernel_size : int, default 3
        Odd kernel size, the same at every scale.
    variant : {'paper', 'reference'}, default 'paper'
        See the module docstring.
    activation : Brick, optional
        For 'paper', the nonlinearity after the sum, Softplus() by default. For
        'reference', the nonlinearity of every scale, LeakyRectifier(0.05) by default.
        An activation that owns parameters becomes a child brick.
    weights_init : InitializationScheme, optional
        Scheme for every scale's kernels. Defaults to the Theano code's
        IsotropicGaussian with std ``sqrt(1 / out_channels) / kernel_size**2``, for
        both variants, because the paper gives no initialization.
    biases_init : InitializationScheme, optional
        Scheme for the biases, Constant(0) by default.
    implementation : {'op', 'join', 'shifted_sum'}, optional
        Passed to :func:`~dpm.ops.conv2d_same`.
    name : str, optional

    Notes
    -----
    In the 'paper' variant only scale 0 has biases. The convolutions are linear, so a
    bias at a coarser scale would add a constant image to the sum, just as scale 0's
    bias does, and only add a redundant parameter.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        n_scales,
        kernel_size=3,
        variant="paper",
        activation=None,
        weights_init=None,
        biases_init=None,
        implementation=None,
        name=None,
    ):
        super().__init__(name=name)
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
        self.in_channels = check_dimension("in_channels", in_channels)
        self.out_channels = check_dimension("out_channels", out_channels)
        self.n_scales = check_dimension("n_scales", n_scales)
        self.kernel_size = check_kernel_size(kernel_size)
        self.variant = variant
        if activation is None:
            activation = Softplus() if variant == "paper" else LeakyRectifier(0.05)
        self.activation = check_activation(activation)
        if weights_init is None:
            weights_init = IsotropicGaussian(reference_weights_std(self.out_channels, self.kernel_size))

        self.convolutions = [
            Convolutional(
                self.in_channels,
                self.out_channels,
                self.kernel_size,
                weights_init,
                biases_init,
                use_bias=(variant == "reference" or scale == 0),
                implementation=implementation,
                name=f"scale_{scale}",
            )
            for scale in range(self.n_scales)
        ]
        children = list(self.convolutions)
        if self.activation.all_parameters:
            children.append(self.activation)
        self.children = children

    @property
    def pooling_factor(self):
        """Largest pooling factor, ``2**(n_scales - 1)``; image sizes must be multiples of it."""
        return 2 ** (self.n_scales - 1)

    def apply(self, x):
        """Map images ``(batch, in_channels, H, W)`` to ``(batch, out_channels, H, W)``."""
        if self.variant == "paper":
            return self._apply_paper(x)
        return self._apply_reference(x)

    def _apply_paper(self, x):
        total = None
        for scale, convolution in enumerate(self.convolutions):
            factor = 2**scale
            contribution = upsample(convolution.apply(mean_pool(x, factor)), factor)
            total = contribution if total is None else total + contribution
        return self.activation.apply(total)

    def _apply_reference(self, x):
        accumulator = None
        for scale in reversed(range(self.n_scales)):
            convolution = self.convolutions[scale]
            contribution = self.activation.apply(convolution.apply(mean_pool(x, 2**scale)))
            if accumulator is None:
                accumulator = contribution
            else:
                accumulator = upsample(accumulator, 2) + contribution
        return accumulator / self.n_scales


class MultiLayerConvolution(Brick):
    """Stack of :class:`MultiScaleConvolution` layers.

    Parameters
    ----------
    dims : sequence of int
        Channel counts: the input's, then each layer's output, so ``len(dims) - 1``
        layers. The authors' Theano code uses 4 layers of 20 channels, ``[colors, 20,
        20, 20, 20]``.
    n_scales : int
    kernel_size : int, default 3
    variant : {'paper', 'reference'}, default 'paper'
    activation : Brick, optional
        Passed to every layer. A parameter-free activation can serve all layers;
        one with parameters can serve one layer only, because it becomes that layer's
        child.
    weights_init, biases_init : InitializationScheme, optional
        Passed to every layer.
    implementation : {'op', 'join', 'shifted_sum'}, optional
    name : str, optional

    Notes
    -----
    Layer ``i`` is the child ``layer_<i>``, so its scale-0 kernels have the path
    ``<path>/layer_<i>/scale_0.W``.
    """

    def __init__(
        self,
        dims,
        n_scales,
        kernel_size=3,
        variant="paper",
        activation=None,
        weights_init=None,
        biases_init=None,
        implementation=None,
        name=None,
    ):
        super().__init__(name=name)
        dims = [check_dimension("every entry of dims", dim) for dim in dims]
        if len(dims) < 2:
            raise ValueError(
                f"dims needs at least two entries, the input channels and one layer's "
                f"output channels, got {dims}"
            )
        self.dims = dims
        self.layers = [
            MultiScaleConvolution(
                dims[index],
                dims[index + 1],
                n_scales,
                kernel_size=kernel_size,
                variant=variant,
                activation=activation,
                weights_init=weights_init,
                biases_init=biases_init,
                implementation=implementation,
                name=f"layer_{index}",
            )
            for index in range(len(dims) - 1)
        ]
        self.children = self.layers

    def apply(self, x):
        """Map images ``(batch, dims[0], H, W)`` to ``(batch, dims[-1], H, W)``."""
        for layer in self.layers:
            x = layer.apply(x)
        return x
