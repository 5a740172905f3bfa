"""Mean pooling and pixel-replication upsampling of NCHW images by an integer factor.

Each is a PyTensor Op whose gradient is the other one, rescaled: the gradient of mean
pooling spreads each output gradient evenly over its ``factor x factor`` block, and the
gradient of upsampling sums each block. ``perform`` computes with NumPy for the C
backend, and :mod:`dpm.ops.numba_implementations` and :mod:`dpm.ops.jax_implementations`
add the Numba and JAX implementations.
"""

import numbers

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op



def check_factor(factor):
    """Return ``factor`` as an int, or raise ValueError unless it is a positive integer."""
    if isinstance(factor, bool) or not isinstance(factor, numbers.Integral) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    return int(factor)


def check_divisible(shape, factor):
    """Raise ValueError unless the last two entries of ``shape`` are multiples of ``factor``.

    Entries that are None (unknown until run time) pass.
    """
    height, width = shape[-2:]
    for name, size in (("height", height), ("width", width)):
        if size is not None and size % factor != 0:
            raise ValueError(
                f"mean_pool: image {name} {size} is not a multiple of the pooling factor "
                f"{factor} (image shape {tuple(shape)}); crop or pad the images to a multiple "
                f"of {factor}"
            )


def _image_tensor(x):
    x = pt.as_tensor_variable(x)
    if x.ndim != 4:
        raise ValueError(
            f"expected 4-D images (batch, channels, height, width), got {x.ndim} "
            f"dimensions ({x.type})"
        )
    return x


def _scaled_size(size, factor):
    return None if size is None else size * factor


class MeanPool(Op):
    """Mean over non-overlapping ``factor x factor`` blocks of the last two axes.

    Height and width must be multiples of ``factor``: the check runs when the graph is
    built if they are static, and when the compiled function runs otherwise.

    Neither this Op nor :class:`Upsample` defines ``infer_shape``. PyTensor then takes
    later shapes from the Op's output instead of computing ``height // factor``, and
    its JAX backend needs that, because it cannot allocate arrays whose size is
    computed from symbolic sizes.
    """

    __props__ = ("factor",)

    def __init__(self, factor):
        self.factor = check_factor(factor)

    def make_node(self, x):
        x = _image_tensor(x)
        check_divisible(x.type.shape, self.factor)
        batch, channels, height, width = x.type.shape
        shape = (
            batch,
            channels,
            None if height is None else height // self.factor,
            None if width is None else width // self.factor,
        )
        return Apply(self, [x], [pt.tensor(dtype=x.dtype, shape=shape)])

    def perform(self, node, inputs, output_storage):
        (x,) = inputs
        check_divisible(x.shape, self.factor)
        batch, channels, height, width = x.shape
        factor = self.factor
        blocks = x.reshape(batch, channels, height // factor, factor, width // factor, factor)
        output_storage[0][0] = blocks.mean(axis=(3, 5), dtype=x.dtype)

    def pullback(self, inputs, outputs, output_gradients):
        (output_gradient,) = output_gradients
        return [Upsample(self.factor)(output_gradient) / (self.factor * self.factor)]

    # PyTensor 3 calls pullback, PyTensor 2 calls L_op.
    L_op = pullback


class Upsample(Op):
    """Repeat each pixel into a ``factor x factor`` block (nearest-neighbour upsampling)."""

    __props__ = ("factor",)

    def __init__(self, factor):
        self.factor = check_factor(factor)

    def make_node(self, x):
        x = _image_tensor(x)
        batch, channels, height, width = x.type.shape
        shape = (batch, channels, _scaled_size(height, self.factor), _scaled_size(width, self.factor))
        return Apply(self, [x], [pt.tensor(dtype=x.dtype, shape=shape)])

    def perform(self, node, inputs, output_storage):
        (x,) = inputs
        batch, channels, height, width = x.shape
        factor = self.factor
        blocks = np.broadcast_to(
            x[:, :, :, None, :, None], (batch, channels, height, factor, width, factor)
        )
        output_storage[0][0] = blocks.reshape(batch, channels, height * factor, width * factor)

    def pullback(self, inputs, outputs, output_gradients):
        (output_gradient,) = output_gradients
        return [MeanPool(self.factor)(output_gradient) * (self.factor * self.factor)]

    # PyTensor 3 calls pullback, PyTensor 2 calls L_op.
    L_op = pullback


def mean_pool(x, factor):
    """Average NCHW images over non-overlapping ``factor x factor`` blocks.

    Parameters
    ----------
    x : TensorVariable
        Shape ``(batch, channels, height, width)``. Height and width must be multiples
        of ``factor``.
    factor : int
        Positive. The multi-scale layers use powers of two, but any positive integer
        works. A factor of 1 returns ``x`` unchanged.

    Returns
    -------
    TensorVariable
        Shape ``(batch, channels, height // factor, width // factor)``.

    Raises
    ------
    ValueError
        If ``factor`` is not a positive integer, or if a static height or width is not
        a multiple of it. With symbolic sizes the same check raises ValueError when the
        compiled function runs.
    """
    factor = check_factor(factor)
    if factor == 1:
        return _image_tensor(x)
    return MeanPool(factor)(x)


def upsample(x, factor):
    """Enlarge NCHW images ``factor`` times by pixel replication.

    Parameters
    ----------
    x : TensorVariable
        Shape ``(batch, channels, height, width)``.
    factor : int
        Positive. A factor of 1 returns ``x`` unchanged.

    Returns
    -------
    TensorVariable
        Shape ``(batch, channels, height * factor, width * factor)``, where
        ``output[..., h, w] = x[..., h // factor, w // factor]``.
    """
    factor = check_factor(factor)
    if factor == 1:
        return _image_tensor(x)
    return Upsample(factor)(x)
