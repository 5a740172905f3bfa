"""Numba implementations of dpm's convolution, pooling and upsampling Ops.

Without them PyTensor's Numba backend would run each Op's NumPy ``perform`` in object
mode. That works, but a graph with an object-mode node cannot go into PyTensor's Numba
cache, so every new process would compile the whole graph again (17 s for the small
network of tests/test_multiscale.py, against 0.5 s from the cache). These kernels are
cached by Op type and properties. :mod:`dpm.ops.registration` calls :func:`register`
when PyTensor imports its Numba dispatcher.
"""

#: Salt of the cache keys. PyTensor keys its Numba cache on the Op's type and
#: properties only, so a changed kernel would still load the old compiled code from
#: the cache: increase this number whenever a kernel here changes.
KERNEL_VERSION = 2
#: Examples per im2col matrix, as ``NUMPY_BATCH_CHUNK`` in dpm.ops.convolution_op.
NUMBA_BATCH_CHUNK = 32

_registered = []


def register():
    """Register the Numba implementations of every dpm Op with PyTensor. Safe to call twice."""
    if _registered:
        return
    import numpy as np
    from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key

    from dpm.ops.convolution_op import SameConvolution, SameConvolutionWeightGradient
    from dpm.ops.pooling import MeanPool, Upsample

    chunk_size = NUMBA_BATCH_CHUNK

    @numba_njit
    def im2col(images, kernel_size):
        # The layout of dpm.ops.convolution_op.im2col: row (c * k + i) * k + j, column
        # (n * height + h) * width + w, zero outside the image.
        count, channels, height, width = images.shape
        pad = kernel_size // 2
        rows = channels * kernel_size * kernel_size
        columns = np.empty((rows, count * height * width), dtype=images.dtype)
        for c in range(channels):
            for i in range(kernel_size):
                for j in range(kernel_size):
                    row = (c * kernel_size + i) * kernel_size + j
                    for n in range(count):
                        for h in range(height):
                            source_h = h + i - pad
                            inside_h = 0 <= source_h < height
                            first_column = (n * height + h) * width
                            for w in range(width):
                                source_w = w + j - pad
                                if inside_h and 0 <= source_w < width:
                                    columns[row, first_column + w] = images[n, c, source_h, source_w]
                                else:
                                    columns[row, first_column + w] = 0
        return columns

    @register_funcify_default_op_cache_key(SameConvolution)
    def numba_funcify_same_convolution(op, node, **kwargs):
        @numba_njit
        def same_convolution(x, weights):
            batch, channels, height, width = x.shape
            out_channels, weight_channels, kernel_size, _ = weights.shape
            if weight_channels != channels:
                raise ValueError("images and weights have different numbers of input channels")
            rows = channels * kernel_size * kernel_size
            matrix = np.ascontiguousarray(weights).reshape(out_channels, rows)
            pixels = height * width
            output = np.empty((batch, out_channels, height, width), dtype=x.dtype)
            for start in range(0, batch, chunk_size):
                stop = min(start + chunk_size, batch)
                product = np.dot(matrix, im2col(x[start:stop], kernel_size))
                for n in range(stop - start):
                    for o in range(out_channels):
                        image = product[o, n * pixels:(n + 1) * pixels]
                        output[start + n, o] = image.reshape(height, width)
            return output

        return same_convolution, KERNEL_VERSION

    @register_funcify_default_op_cache_key(SameConvolutionWeightGradient)
    def numba_funcify_weight_gradient(op, node, **kwargs):
        kernel_size = op.kernel_size

        @numba_njit
        def same_convolution_weight_gradient(x, output_gradient):
            batch, channels, height, width = x.shape
            out_channels = output_gradient.shape[1]
            if (
                output_gradient.shape[0] != batch
                or output_gradient.shape[2] != height
                or output_gradient.shape[3] != width
            ):
                raise ValueError("output gradient and images differ in batch size, height or width")
            pixels = height * width
            gradient = np.zeros((out_channels, channels * kernel_size * kernel_size), dtype=x.dtype)
            for start in range(0, batch, chunk_size):
                stop = min(start + chunk_size, batch)
                # Columns in the order of im2col's: example, row, column.
                chunk_gradient = np.empty((out_channels, (stop - start) * pixels), dtype=x.dtype)
                for n in range(stop - start):
                    for o in range(out_channels):
                        for h in range(height):
                            for w in range(width):
                                column = n * pixels + h * width + w
                                chunk_gradient[o, column] = output_gradient[start + n, o, h, w]
                gradient += np.dot(chunk_gradient, im2col(x[start:stop], kernel_size).T)
            return gradient.reshape(out_channels, channels, kernel_size, kernel_size)

        return same_convolution_weight_gradient, KERNEL_VERSION

    @register_funcify_default_op_cache_key(MeanPool)
    def numba_funcify_mean_pool(op, node, **kwargs):
        factor = op.factor
        scale = 1.0 / (factor * factor)
        message = (
            f"mean_pool: image height or width is not a multiple of the pooling factor {factor}; "
            f"crop or pad the images to a multiple of {factor}"
        )

        @numba_njit
        def mean_pool(x):
            batch, channels, height, width = x.shape
            if height % factor != 0 or width % factor != 0:
                raise ValueError(message)
            output = np.zeros((batch, channels, height // factor, width // factor), dtype=x.dtype)
            for n in range(batch):
                for c in range(channels):
                    for h in range(height):
                        for w in range(width):
                            output[n, c, h // factor, w // factor] += x[n, c, h, w]
            # In place, so that the result keeps the input's dtype.
            output *= scale
            return output

        return mean_pool, KERNEL_VERSION

    @register_funcify_default_op_cache_key(Upsample)
    def numba_funcify_upsample(op, node, **kwargs):
        factor = op.factor

        @numba_njit
        def upsample(x):
            batch, channels, height, width = x.shape
            output = np.empty((batch, channels, height * factor, width * factor), dtype=x.dtype)
            for n in range(batch):
                for c in range(channels):
                    for h in range(height * factor):
                        for w in range(width * factor):
                            output[n, c, h, w] = x[n, c, h // factor, w // factor]
            return output

        return upsample, KERNEL_VERSION

    _registered.append(True)
