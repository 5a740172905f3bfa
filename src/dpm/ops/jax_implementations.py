"""JAX implementations of dpm's convolution, pooling and upsampling Ops.

:mod:`dpm.ops.registration` calls :func:`register` when PyTensor imports its JAX
dispatcher, so nothing here imports JAX before it is needed.
"""

#: Examples per ``jax.lax.conv_general_dilated`` call. XLA's CPU convolution (jaxlib
#: 0.10.2) slows down more than in proportion to the batch size. For a 20-channel 3x3
#: layer on 28x28 images, forward and gradient took 58 ms at batch 128 and 295 ms at
#: batch 512 in chunks of 64. In one call they took 84 ms and 685 ms (2-core AMD EPYC,
#: benchmarks/convolution.py, docs/benchmarks.md).
JAX_BATCH_CHUNK = 64

_registered = []


def register():
    """Register the JAX implementations of every dpm Op with PyTensor. Safe to call twice."""
    if _registered:
        return
    import jax.numpy as jnp
    from jax import lax
    from pytensor.link.jax.dispatch import jax_funcify

    from dpm.ops.convolution_op import SameConvolution, SameConvolutionWeightGradient
    from dpm.ops.pooling import MeanPool, Upsample, check_divisible

    def convolve(x, weights):
        pad = weights.shape[-1] // 2
        return lax.conv_general_dilated(
            x, weights, window_strides=(1, 1), padding=[(pad, pad), (pad, pad)],
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
        )

    def weight_gradient(x, output_gradient, kernel_size):
        # Swapping the roles of batch and channels turns the weight gradient into a
        # convolution: x acts as C_in images of `batch` channels and the output
        # gradient as a kernel of height H and width W, which leaves a k x k output.
        pad = kernel_size // 2
        return lax.conv_general_dilated(
            x, output_gradient, window_strides=(1, 1), padding=[(pad, pad), (pad, pad)],
            dimension_numbers=("CNHW", "IOHW", "CNHW"),
        )

    def chunk_bounds(batch):
        # Shapes are concrete while JAX traces, so the chunks are fixed per input shape.
        starts = range(0, batch, JAX_BATCH_CHUNK)
        return [(start, min(start + JAX_BATCH_CHUNK, batch)) for start in starts]

    @jax_funcify.register(SameConvolution)
    def jax_funcify_same_convolution(op, **kwargs):
        def same_convolution(x, weights):
            bounds = chunk_bounds(x.shape[0])
            if len(bounds) == 1:
                return convolve(x, weights)
            return jnp.concatenate([convolve(x[start:stop], weights) for start, stop in bounds])

        return same_convolution

    @jax_funcify.register(SameConvolutionWeightGradient)
    def jax_funcify_weight_gradient(op, **kwargs):
        kernel_size = op.kernel_size

        def same_convolution_weight_gradient(x, output_gradient):
            parts = [
                weight_gradient(x[start:stop], output_gradient[start:stop], kernel_size)
                for start, stop in chunk_bounds(x.shape[0])
            ]
            return sum(parts[1:], parts[0])

        return same_convolution_weight_gradient

    @jax_funcify.register(MeanPool)
    def jax_funcify_mean_pool(op, **kwargs):
        factor = op.factor

        def mean_pool(x):
            batch, channels, height, width = x.shape
            check_divisible(x.shape, factor)
            blocks = x.reshape(batch, channels, height // factor, factor, width // factor, factor)
            return blocks.mean(axis=(3, 5))

        return mean_pool

    @jax_funcify.register(Upsample)
    def jax_funcify_upsample(op, **kwargs):
        factor = op.factor

        def upsample(x):
            return jnp.repeat(jnp.repeat(x, factor, axis=2), factor, axis=3)

        return upsample

    _registered.append(True)
