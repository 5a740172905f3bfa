"""The image network of Sohl-Dickstein et al. 2015 (arXiv:1503.03585, Appendix D.2, Figure D.1).

The network does not see the time step. A lower part turns the noisy image into a feature
map: multi-scale convolution layers, a dense pathway that flattens the image and reshapes
its output to a few features per pixel, or both side by side. An upper part of per-pixel
dense layers (1x1 convolutions) ends in a linear layer with ``2 J`` coefficients per pixel
and color. A fixed basis of ``J`` Gaussian bumps over the time steps turns them into the
network outputs ``(z_mu, z_Sigma)`` at step ``t``, and :class:`~dpm.diffusion.GaussianDiffusion`
turns those into the reverse kernel's mean and variance.

Two variants are selected by the constructor's arguments:

- The paper's: multi-scale convolutions summed over scales then softplus, tanh in the dense
  layers, bumps as wide as their spacing, the reverse kernel of Eq. 64-65. MNIST used only
  the dense pathway, CIFAR-10 both pathways, dead leaves and bark only the convolutions.
- The authors' reference code (github.com/Sohl-Dickstein/Diffusion-Probabilistic-Models,
  regression.py and model.py): leaky rectifiers of slope 0.05 everywhere, its multi-scale
  layer (see :mod:`dpm.bricks.multiscale`), bumps half as wide as their spacing, and its
  reverse kernel. Its defaults are this class's defaults.
"""

import math

import pytensor.tensor as pt

from dpm.bricks import (
    MLP,
    Brick,
    Constant,
    LeakyRectifier,
    Logistic,
    MultiLayerConvolution,
    Orthogonal,
    PixelDense,
    Rectifier,
    Softplus,
    Tanh,
    TemporalBasis,
)
from dpm.bricks.linear import check_dimension
from dpm.bricks.multiscale import VARIANTS as MULTISCALE_VARIANTS
from dpm.diffusion import GaussianDiffusion, build_schedule
from dpm.diffusion.gaussian import PARAMETERIZATIONS
from dpm.models.base import GaussianDiffusionModel

#: Activation names accepted for ``conv_activation`` and ``dense_activation``.
ACTIVATIONS = {
    "leaky_rectifier": lambda: LeakyRectifier(0.05),
    "logistic": Logistic,
    "rectifier": Rectifier,
    "softplus": Softplus,
    "tanh": Tanh,
}


def build_activation(name):
    """Return a new activation brick by its name in :data:`ACTIVATIONS`."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def check_image_shape(image_shape):
    """Return ``image_shape`` as a tuple ``(n_colors, height, width)`` of positive ints."""
    shape = tuple(image_shape)
    if len(shape) != 3:
        raise ValueError(
            f"image_shape must be (n_colors, height, width), got {image_shape!r}"
        )
    names = ("n_colors", "height", "width")
    return tuple(check_dimension(name, size) for name, size in zip(names, shape))


class ImageDiffusionModel(GaussianDiffusionModel):
    """Gaussian diffusion model of images with the multi-scale convolutional reverse network.

    Parameters
    ----------
    image_shape : (int, int, int)
        ``(n_colors, height, width)`` of the training images. Height and width must be
        multiples of ``2**(n_scales - 1)`` when the convolutional pathway is on.
    trajectory_length : int
        T: 1000 in the paper for MNIST, CIFAR-10 and dead leaves, 500 for bark, and the
        reference code's default 1000.
    n_temporal_basis : int
        Bumps J of the temporal basis, the reference code's default 10.
    basis_width : {'reference', 'paper'} or float
        Bump standard deviation, see :func:`~dpm.bricks.bump_basis`.
    conv_pathway, dense_pathway : bool
        Whether the lower part has the multi-scale convolutions and the dense pathway. At
        least one must be on.
    n_layers_conv, n_hidden_conv : int
        Convolutional layers and their channels (reference: 4 and 20).
    n_scales : int
        Resolutions of each multi-scale layer (reference: 1).
    multiscale_variant : {'paper', 'reference'}
        See :class:`~dpm.bricks.MultiScaleConvolution`.
    kernel_size : int
        Odd convolution kernel size (reference: 3).
    n_layers_dense_lower, n_hidden_dense_lower : int
        Layers and width of the dense pathway (reference: 4 and 500).
    n_hidden_dense_lower_output : int
        Features per pixel that the dense pathway outputs (reference: 2).
    dense_lower_depth_from_conv : bool
        Take the dense pathway's number of layers from ``n_layers_conv`` instead of
        ``n_layers_dense_lower``, as the reference code does. See docs/deviations.md.
    n_layers_dense_upper, n_hidden_dense_upper : int
        Per-pixel layers of the upper part, the last one the linear readout, and the width
        of the others (reference: 2 and 20).
    conv_activation, dense_activation : str
        Names in :data:`ACTIVATIONS`: 'softplus' and 'tanh' in the paper,
        'leaky_rectifier' (slope 0.05) for both in the reference code.
    schedule : {'reference', 'learned', 'inverse_remaining'}
        See :func:`~dpm.diffusion.build_schedule`. The reference code keeps its schedule
        fixed.
    step1_beta : float
        Added to the floor of ``beta_1`` (reference: 1e-3).
    parameterization : {'reference', 'paper', 'direct'}
        See :class:`~dpm.diffusion.GaussianDiffusion`.
    implementation : {'op', 'join', 'shifted_sum'}, optional
        Convolution implementation, see :func:`~dpm.ops.conv2d_same`.
    name : str

    Notes
    -----
    The dense pathway's layers use orthogonal initial weights and zero biases, and all
    of them, the last included, apply ``dense_activation``. Its output, ``n_out`` values
    per pixel, is ordered pixel by pixel as in the reference code. When both pathways are
    on, the features are scaled before they are joined, as in the reference code: the
    convolutional ones are divided by ``sqrt(n_hidden_conv)`` and the dense ones by
    ``sqrt(n_hidden_dense_lower_output)``. A single pathway's features pass unscaled.
    """

    def __init__(
        self,
        image_shape,
        trajectory_length=1000,
        n_temporal_basis=10,
        basis_width="reference",
        conv_pathway=True,
        dense_pathway=True,
        n_layers_conv=4,
        n_hidden_conv=20,
        n_scales=1,
        multiscale_variant="reference",
        kernel_size=3,
        n_layers_dense_lower=4,
        n_hidden_dense_lower=500,
        n_hidden_dense_lower_output=2,
        dense_lower_depth_from_conv=True,
        n_layers_dense_upper=2,
        n_hidden_dense_upper=20,
        conv_activation="leaky_rectifier",
        dense_activation="leaky_rectifier",
        schedule="reference",
        step1_beta=1e-3,
        parameterization="reference",
        implementation=None,
        name="image",
    ):
        super().__init__(name=name)
        self.image_shape = check_image_shape(image_shape)
        n_colors, height, width = self.image_shape
        if not (conv_pathway or dense_pathway):
            raise ValueError(
                "the network needs a lower part: set conv_pathway or dense_pathway "
                "(or both) to true"
            )
        if multiscale_variant not in MULTISCALE_VARIANTS:
            raise ValueError(
                f"unknown multiscale_variant {multiscale_variant!r}; "
                f"choose one of {MULTISCALE_VARIANTS}"
            )
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"unknown parameterization {parameterization!r}; choose one of {PARAMETERIZATIONS}"
            )
        self.conv_pathway = bool(conv_pathway)
        self.dense_pathway = bool(dense_pathway)
        T = int(trajectory_length)

        self.schedule = build_schedule(schedule, T, step1_beta=step1_beta)
        self.diffusion = GaussianDiffusion(
            self.schedule, n_dims=n_colors * height * width, parameterization=parameterization
        )
        # Row s of the basis is step s + 1, so the steps t = 2..T read rows 1..T-1.
        self.temporal_basis = TemporalBasis(T, n_temporal_basis, basis_width, name="temporal_basis")

        children = []
        features = 0
        self.convolution = None
        if self.conv_pathway:
            self.n_hidden_conv = check_dimension("n_hidden_conv", n_hidden_conv)
            n_layers = check_dimension("n_layers_conv", n_layers_conv)
            self.convolution = MultiLayerConvolution(
                [n_colors] + [self.n_hidden_conv] * n_layers,
                n_scales,
                kernel_size=kernel_size,
                variant=multiscale_variant,
                activation=build_activation(conv_activation),
                implementation=implementation,
                name="convolution",
            )
            factor = self.convolution.layers[0].pooling_factor
            if height % factor or width % factor:
                raise ValueError(
                    f"image height {height} and width {width} must be multiples of "
                    f"2**(n_scales - 1) = {factor}; lower n_scales to at most "
                    f"{_largest_scale_count(height, width)}"
                )
            children.append(self.convolution)
            features += self.n_hidden_conv

        self.dense_lower = None
        if self.dense_pathway:
            self.n_hidden_dense_lower_output = check_dimension(
                "n_hidden_dense_lower_output", n_hidden_dense_lower_output
            )
            depth = n_layers_conv if dense_lower_depth_from_conv else n_layers_dense_lower
            depth = check_dimension(
                "n_layers_conv" if dense_lower_depth_from_conv else "n_layers_dense_lower", depth
            )
            hidden = check_dimension("n_hidden_dense_lower", n_hidden_dense_lower)
            self.dense_lower_depth = depth
            dims = (
                [n_colors * height * width]
                + [hidden] * (depth - 1)
                + [self.n_hidden_dense_lower_output * height * width]
            )
            self.dense_lower = MLP(
                [build_activation(dense_activation)] * depth, dims,
                weights_init=Orthogonal(), biases_init=Constant(0.0), name="dense_lower",
            )
            children.append(self.dense_lower)
            features += self.n_hidden_dense_lower_output

        n_upper = check_dimension("n_layers_dense_upper", n_layers_dense_upper)
        upper_width = check_dimension("n_hidden_dense_upper", n_hidden_dense_upper)
        n_outputs = n_colors * 2 * self.temporal_basis.n_basis
        widths = [features] + [upper_width] * (n_upper - 1) + [n_outputs]
        upper_activation = build_activation(dense_activation)
        self.dense_upper = [
            PixelDense(
                widths[index], widths[index + 1],
                upper_activation if index < n_upper - 1 else None,
                name=f"dense_upper_{index}",
            )
            for index in range(n_upper)
        ]
        children.extend(self.dense_upper)
        children.append(self.temporal_basis)
        if isinstance(self.schedule, Brick):
            # A learned schedule owns parameters; a fixed one is not a brick.
            children.append(self.schedule)
        self.children = children

    @property
    def n_colors(self):
        """Color channels C of the images."""
        return self.image_shape[0]

    def features(self, images):
        """Map images (batch, C, H, W) to the per-pixel features that the upper part reads.

        Raises
        ------
        ValueError
            If the dense pathway is on and the images' static height or width differs
            from the training size: its weights are tied to every pixel.
        """
        parts = []
        if self.convolution is not None:
            parts.append(self.convolution.apply(images))
        if self.dense_lower is not None:
            parts.append(self._dense_features(images))
        if len(parts) == 1:
            return parts[0]
        conv, dense = parts
        return pt.concatenate(
            [conv / math.sqrt(self.n_hidden_conv),
             dense / math.sqrt(self.n_hidden_dense_lower_output)],
            axis=1,
        )

    def _dense_features(self, images):
        n_colors, height, width = self.image_shape
        static = images.type.shape[1:]
        for size, expected, axis in zip(static, self.image_shape, ("colors", "height", "width")):
            if size is not None and size != expected:
                raise ValueError(
                    f"the dense pathway needs images of shape {self.image_shape}, got {axis} "
                    f"{size}; only a network without the dense pathway applies to other sizes"
                )
        flat = images.reshape((-1, n_colors * height * width))
        dense = self.dense_lower.apply(flat)
        # The reference code orders the dense outputs pixel by pixel, features last.
        dense = dense.reshape((-1, height, width, self.n_hidden_dense_lower_output))
        return dense.dimshuffle(0, 3, 1, 2)

    def coefficients(self, images):
        """Return the readout's ``2 J`` coefficients per pixel and color, (batch, C 2 J, H, W)."""
        hidden = self.features(images)
        for layer in self.dense_upper:
            hidden = layer.apply(hidden)
        return hidden

    def network_output(self, xt, t, t_groups=None):
        """Return ``(z_mu, z_Sigma)`` for states ``xt`` at steps ``t`` in ``2..T``.

        ``xt`` is either images (batch, C, H, W), which gives outputs of that shape, or
        flattened images (batch, C H W) in C order, which gives flattened outputs.
        ``t_groups`` is accepted for the common interface and ignored.

        NOTE: images larger than the training size (possible without the dense pathway)
        get valid network outputs and reverse kernels, but the bound K would be wrong,
        because its entropy terms count the pixels of the training size.
        """
        xt = pt.as_tensor_variable(xt)
        flat = xt.ndim == 2
        if flat:
            images = xt.reshape((-1, *self.image_shape))
        elif xt.ndim == 4:
            images = xt
        else:
            raise ValueError(
                f"xt must be (batch, C, H, W) images or (batch, C*H*W) vectors, got {xt.type}"
            )
        z_mu, z_sigma = self.temporal_basis.apply(self.coefficients(images), t - 1)
        if flat:
            n_dims = self.diffusion.n_dims
            return z_mu.reshape((-1, n_dims)), z_sigma.reshape((-1, n_dims))
        return z_mu, z_sigma


def _largest_scale_count(height, width):
    count = 1
    while height % 2**count == 0 and width % 2**count == 0:
        count += 1
    return count
