"""PyTensor Ops for 2-D 'same' convolution and its weight gradient, computed with NumPy.

Both Ops take images in NCHW layout, ``(batch, channels, height, width)``. Their
``perform`` methods, which the C backend calls, build the im2col matrix of a chunk of
examples with NumPy and do one matrix product per chunk, which makes fewer and larger
BLAS calls than one product per example.
:mod:`dpm.ops.numba_implementations` and :mod:`dpm.ops.jax_implementations` give both
Ops Numba kernels that work the same way and JAX implementations built on
``jax.lax.conv_general_dilated``.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

#: Examples per im2col matrix. A chunk of 32 examples with 20 channels, a 3x3 kernel
#: and 28x28 images makes an 18 MB matrix in float32, so memory stays bounded at any
#: batch size. It is also faster: with one BLAS thread, forward and gradient of such a
#: layer took 288 ms at batch 512 in chunks against 540 ms in one piece
#: (benchmarks/convolution.py, docs/benchmarks.md).
NUMPY_BATCH_CHUNK = 32


def check_kernel_size(kernel_size):
    """Return ``kernel_size`` as an int, or raise ValueError unless it is a positive odd integer."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int | np.integer):
        raise ValueError(f"kernel size must be a positive odd integer, got {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel size must be a positive odd integer, got {kernel_size}; 'same' output "
            "needs the same padding on both sides, which an even kernel cannot have"
        )
    return int(kernel_size)


def im2col(x, kernel_size):
    """Return the patches of ``x`` around every pixel, zero-padded at the borders.

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(batch, channels, height, width)``.
    kernel_size : int
        Odd patch size ``k``.

    Returns
    -------
    numpy.ndarray
        Shape ``(channels * k * k, batch * height * width)``. Row ``c * k * k + i * k + j``
        contains ``x[n, c, h + i - k // 2, w + j - k // 2]`` at column
        ``(n * height + h) * width + w``, and zero where that pixel lies outside the image.
    """
    batch, channels, height, width = x.shape
    pad = kernel_size // 2
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    columns = np.empty((channels, kernel_size, kernel_size, batch, height, width), x.dtype)
    for i in range(kernel_size):
        for j in range(kernel_size):
            columns[:, i, j] = padded[:, :, i:i + height, j:j + width].transpose(1, 0, 2, 3)
    return columns.reshape(channels * kernel_size * kernel_size, batch * height * width)


def convolve_same(x, weights):
    """Compute the 'same' cross-correlation of NCHW images ``x`` with OIHW ``weights`` in NumPy.

    ``y[b, o, h, w] = sum over c, i, j of weights[o, c, i, j] * x[b, c, h + i - p, w + j - p]``
    with ``p = k // 2`` and zero outside the image, so the kernel is not flipped, as in
    deep-learning libraries.
    """
    batch, channels, height, width = x.shape
    out_channels, in_channels, kernel_size, _ = weights.shape
    _check_channels(channels, in_channels)
    matrix = weights.reshape(out_channels, in_channels * kernel_size * kernel_size)
    output = np.empty((batch, out_channels, height, width), dtype=x.dtype)
    for start in range(0, batch, NUMPY_BATCH_CHUNK):
        chunk = x[start:start + NUMPY_BATCH_CHUNK]
        product = matrix @ im2col(chunk, kernel_size)
        product = product.reshape(out_channels, len(chunk), height, width)
        output[start:start + len(chunk)] = product.transpose(1, 0, 2, 3)
    return output


def convolve_same_weight_gradient(x, output_gradient, kernel_size):
    """Return the gradient of ``sum(convolve_same(x, W) * output_gradient)`` with respect to ``W``.

    The result has shape ``(out_channels, in_channels, k, k)``, where ``out_channels``
    is ``output_gradient.shape[1]`` and ``in_channels`` is ``x.shape[1]``.
    """
    batch, channels, height, width = x.shape
    out_channels = output_gradient.shape[1]
    if output_gradient.shape[0] != batch or output_gradient.shape[2:] != (height, width):
        raise ValueError(
            f"output gradient of shape {output_gradient.shape} does not match images of "
            f"shape {x.shape}: batch, height and width must agree"
        )
    gradient = np.zeros((out_channels, channels * kernel_size * kernel_size), dtype=x.dtype)
    for start in range(0, batch, NUMPY_BATCH_CHUNK):
        stop = start + NUMPY_BATCH_CHUNK
        columns = im2col(x[start:stop], kernel_size)
        # Columns of the output gradient in the order of im2col's: example, row, column.
        chunk_gradient = output_gradient[start:stop].transpose(1, 0, 2, 3).reshape(out_channels, -1)
        gradient += chunk_gradient @ columns.T
    return gradient.reshape(out_channels, channels, kernel_size, kernel_size)


def _check_channels(image_channels, weight_channels):
    if image_channels != weight_channels:
        raise ValueError(
            f"images have {image_channels} channels but the weights expect "
            f"{weight_channels} input channels (axis 1 of W, shape (C_out, C_in, k, k))"
        )


def flipped_transposed(weights):
    """Return the kernel of the input gradient: ``W[o, c, i, j]`` moved to ``[c, o, k-1-i, k-1-j]``."""
    return weights[:, :, ::-1, ::-1].dimshuffle(1, 0, 2, 3)


def _float_tensor(value, name):
    variable = pt.as_tensor_variable(value)
    if variable.ndim != 4:
        raise ValueError(
            f"{name} must be a 4-D tensor, got {variable.ndim} dimensions ({variable.type})"
        )
    if not variable.dtype.startswith("float"):
        raise TypeError(f"{name} must have a float dtype, got {variable.dtype}")
    return variable


def _same_dtype(*variables):
    dtypes = {variable.dtype for variable in variables}
    if len(dtypes) != 1:
        raise TypeError(
            f"inputs must share one dtype, got {sorted(dtypes)}; cast them first, as "
            "dpm.ops.conv2d_same does"
        )


class SameConvolution(Op):
    """2-D cross-correlation of NCHW images with OIHW weights, zero-padded to 'same' size.

    Inputs are ``x``, shape ``(batch, C_in, H, W)``, and ``W``, shape
    ``(C_out, C_in, k, k)`` with odd ``k``. The output has shape ``(batch, C_out, H, W)``.
    Height and width may be symbolic. The gradient with respect to ``x`` is this Op
    applied to the output gradient with the flipped, transposed kernel, and the
    gradient with respect to ``W`` is :class:`SameConvolutionWeightGradient`.
    """

    __props__ = ()

    def make_node(self, x, weights):
        x = _float_tensor(x, "x")
        weights = _float_tensor(weights, "W")
        _same_dtype(x, weights)
        in_channels, weight_channels = x.type.shape[1], weights.type.shape[1]
        if in_channels is not None and weight_channels is not None:
            _check_channels(in_channels, weight_channels)
        shape = (x.type.shape[0], weights.type.shape[0], x.type.shape[2], x.type.shape[3])
        return Apply(self, [x, weights], [pt.tensor(dtype=x.dtype, shape=shape)])

    def perform(self, node, inputs, output_storage):
        x, weights = inputs
        output_storage[0][0] = convolve_same(x, weights)

    def infer_shape(self, fgraph, node, input_shapes):
        x_shape, weights_shape = input_shapes
        return [(x_shape[0], weights_shape[0], x_shape[2], x_shape[3])]

    def pullback(self, inputs, outputs, output_gradients):
        x, weights = inputs
        (output_gradient,) = output_gradients
        kernel_size = weights.type.shape[-1]
        if kernel_size is None:
            raise ValueError(
                f"the gradient needs a static kernel size, but W has type {weights.type}; "
                "give W a static shape (pytensor.shared(value, shape=value.shape))"
            )
        input_gradient = self(output_gradient, flipped_transposed(weights))
        weight_gradient = SameConvolutionWeightGradient(kernel_size)(x, output_gradient)
        return [input_gradient, weight_gradient]

    # PyTensor 3 calls pullback, PyTensor 2 calls L_op.
    L_op = pullback


class SameConvolutionWeightGradient(Op):
    """Gradient of :class:`SameConvolution` with respect to its weights.

    Inputs are the images ``x``, shape ``(batch, C_in, H, W)``, and the gradient ``g``
    of a cost with respect to the convolution's output, shape ``(batch, C_out, H, W)``.
    The output, shape ``(C_out, C_in, k, k)``, is
    ``sum over b, h, w of g[b, o, h, w] * x[b, c, h + i - p, w + j - p]``.

    Parameters
    ----------
    kernel_size : int
        Odd ``k``.
    """

    __props__ = ("kernel_size",)

    def __init__(self, kernel_size):
        self.kernel_size = check_kernel_size(kernel_size)

    def make_node(self, x, output_gradient):
        x = _float_tensor(x, "x")
        output_gradient = _float_tensor(output_gradient, "output gradient")
        _same_dtype(x, output_gradient)
        k = self.kernel_size
        shape = (output_gradient.type.shape[1], x.type.shape[1], k, k)
        return Apply(self, [x, output_gradient], [pt.tensor(dtype=x.dtype, shape=shape)])

    def perform(self, node, inputs, output_storage):
        x, output_gradient = inputs
        output_storage[0][0] = convolve_same_weight_gradient(x, output_gradient, self.kernel_size)

    def infer_shape(self, fgraph, node, input_shapes):
        x_shape, gradient_shape = input_shapes
        return [(gradient_shape[1], x_shape[1], self.kernel_size, self.kernel_size)]

    def pullback(self, inputs, outputs, output_gradients):
        # The output is bilinear in (x, g), so both gradients are convolutions with the
        # incoming gradient G, which has the shape of a weight tensor.
        x, output_gradient = inputs
        (weights_gradient,) = output_gradients
        convolution = SameConvolution()
        x_gradient = convolution(output_gradient, flipped_transposed(weights_gradient))
        output_gradient_gradient = convolution(x, weights_gradient)
        return [x_gradient, output_gradient_gradient]

    # PyTensor 3 calls pullback, PyTensor 2 calls L_op.
    L_op = pullback
