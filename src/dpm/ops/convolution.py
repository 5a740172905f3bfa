"""2-D 'same' convolution of NCHW images, with three interchangeable implementations.

PyTensor 3.0.7 has no multi-channel convolution for neural networks
(``pytensor.tensor.signal.convolve2d`` takes single-channel images), so dpm builds its own:

``'op'``
    :class:`~dpm.ops.convolution_op.SameConvolution`, a custom Op: im2col and a matrix
    product in NumPy on the C backend and in a Numba kernel on Numba, and
    ``jax.lax.conv_general_dilated`` on JAX. It accepts symbolic height and width on
    every backend.
``'join'``
    Graph operations: pad, take the ``k * k`` shifted slices, join them along the
    channel axis (im2col) and do one matrix product.
``'shifted_sum'``
    Graph operations: pad and sum ``k * k`` matrix products, one per shifted slice.

Under JAX the two graph formulations trace only when the image tensor has a fully
static shape, because PyTensor's JAX backend rejects shapes computed from symbolic
sizes. Under Numba their first compile takes minutes, since each of the many slicing
Ops compiles separately. docs/benchmarks.md ("Convolution") has the measurements behind
the default, :data:`DEFAULT_IMPLEMENTATION`.
"""

import pytensor
import pytensor.tensor as pt
from pytensor.scalar import upcast

from dpm.ops.convolution_op import SameConvolution, check_kernel_size

#: Implementation names accepted by :func:`conv2d_same`.
IMPLEMENTATIONS = ("op", "join", "shifted_sum")
#: Used when ``implementation`` is None.
DEFAULT_IMPLEMENTATION = "op"


def conv2d_same(x, W, b=None, implementation=None):
    """Convolve NCHW images with a bank of odd-sized kernels, keeping the image size.

    ``y[n, o, h, w] = b[o] + sum over c, i, j of W[o, c, i, j] * x[n, c, h + i - p, w + j - p]``
    with ``p = k // 2`` and ``x`` taken as zero outside the image. As in deep-learning
    libraries this is a cross-correlation: the kernel is not flipped.

    Parameters
    ----------
    x : TensorVariable
        Images, shape ``(batch, C_in, H, W)``. Batch, height and width may be symbolic.
    W : TensorVariable
        Kernels, shape ``(C_out, C_in, k, k)``, with a static, odd ``k``.
    b : TensorVariable, optional
        Biases, shape ``(C_out,)``.
    implementation : {'op', 'join', 'shifted_sum'}, optional
        Defaults to :data:`DEFAULT_IMPLEMENTATION`. All three give the same values and
        gradients, up to rounding.

    Returns
    -------
    TensorVariable
        Shape ``(batch, C_out, H, W)``, in the upcast dtype of the inputs, or floatX
        for integer inputs.

    Raises
    ------
    ValueError
        If a tensor has the wrong number of dimensions, the kernel size is unknown,
        even or not square, or static channel counts disagree.
    """
    implementation = DEFAULT_IMPLEMENTATION if implementation is None else implementation
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"unknown convolution implementation {implementation!r}; choose one of {IMPLEMENTATIONS}"
        )
    x = pt.as_tensor_variable(x)
    W = pt.as_tensor_variable(W)
    inputs = [x, W] if b is None else [x, W, pt.as_tensor_variable(b)]
    dtype = upcast(*(variable.dtype for variable in inputs))
    if not dtype.startswith("float"):
        dtype = pytensor.config.floatX
    x, W = pt.cast(x, dtype), pt.cast(W, dtype)
    kernel_size = _check_shapes(x, W)

    if implementation == "op":
        output = SameConvolution()(x, W)
    elif implementation == "join":
        output = _convolve_join(x, W, kernel_size)
    else:
        output = _convolve_shifted_sum(x, W, kernel_size)

    if b is not None:
        b = pt.cast(inputs[2], dtype)
        _check_bias(b, W)
        output = output + b.dimshuffle("x", 0, "x", "x")
    return output


def _check_shapes(x, W):
    if x.ndim != 4:
        raise ValueError(
            f"x must be 4-D images (batch, C_in, H, W), got {x.ndim} dimensions ({x.type})"
        )
    if W.ndim != 4:
        raise ValueError(
            f"W must be 4-D kernels (C_out, C_in, k, k), got {W.ndim} dimensions ({W.type})"
        )
    kernel_height, kernel_width = W.type.shape[2:]
    if kernel_height is None or kernel_width is None:
        raise ValueError(
            f"W must have a static kernel size, got type {W.type}; create it with "
            "pytensor.shared(value, shape=value.shape) or pt.tensor4(shape=(None, None, k, k))"
        )
    if kernel_height != kernel_width:
        raise ValueError(f"W must have square kernels, got {kernel_height}x{kernel_width}")
    image_channels, weight_channels = x.type.shape[1], W.type.shape[1]
    if image_channels is not None and weight_channels is not None and image_channels != weight_channels:
        raise ValueError(
            f"x has {image_channels} channels but W expects {weight_channels} input "
            "channels (axis 1 of W)"
        )
    return check_kernel_size(kernel_height)


def _check_bias(b, W):
    if b.ndim != 1:
        raise ValueError(f"b must be a vector of C_out biases, got {b.ndim} dimensions ({b.type})")
    bias_length, out_channels = b.type.shape[0], W.type.shape[0]
    if bias_length is not None and out_channels is not None and bias_length != out_channels:
        raise ValueError(f"b has {bias_length} entries but W has {out_channels} output channels")


def _pad(x, pad):
    """Zero-pad the last two axes by ``pad`` on each side."""
    batch, channels, height, width = x.shape
    padded = pt.zeros((batch, channels, height + 2 * pad, width + 2 * pad), dtype=x.dtype)
    return pt.set_subtensor(padded[:, :, pad:height + pad, pad:width + pad], x)


def _window(offset, kernel_size):
    """Slice of the padded axis that lines up with offset ``offset`` of the kernel.

    The stop is a negative constant, so the slice needs no symbolic size.
    """
    stop = offset - (kernel_size - 1)
    return slice(offset, stop if stop < 0 else None)


def _convolve_join(x, W, kernel_size):
    out_channels, in_channels = W.shape[0], W.shape[1]
    batch, _, height, width = x.shape
    padded = _pad(x, kernel_size // 2)
    offsets = [(i, j) for i in range(kernel_size) for j in range(kernel_size)]
    # Patch channels are ordered (i, j, c), to match the kernel matrix below.
    slices = [padded[:, :, _window(i, kernel_size), _window(j, kernel_size)] for i, j in offsets]
    patches = pt.join(1, *slices)
    patch_size = kernel_size * kernel_size * in_channels
    patch_rows = patches.dimshuffle(0, 2, 3, 1).reshape((-1, patch_size))
    kernel_matrix = W.dimshuffle(2, 3, 1, 0).reshape((patch_size, out_channels))
    output = pt.dot(patch_rows, kernel_matrix)
    return output.reshape((batch, height, width, out_channels)).dimshuffle(0, 3, 1, 2)


def _convolve_shifted_sum(x, W, kernel_size):
    out_channels, in_channels = W.shape[0], W.shape[1]
    batch, _, height, width = x.shape
    # Channels last, so each shifted slice flattens to a (pixels, C_in) matrix.
    padded = _pad(x, kernel_size // 2).dimshuffle(0, 2, 3, 1)
    output = None
    for i in range(kernel_size):
        for j in range(kernel_size):
            shifted = padded[:, _window(i, kernel_size), _window(j, kernel_size), :]
            term = pt.dot(shifted.reshape((-1, in_channels)), W[:, :, i, j].T)
            output = term if output is None else output + term
    return output.reshape((batch, height, width, out_channels)).dimshuffle(0, 3, 1, 2)
