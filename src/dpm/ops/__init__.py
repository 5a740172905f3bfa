"""Image operations that PyTensor lacks: 2-D 'same' convolution, mean pooling, upsampling.

All take NCHW images, ``(batch, channels, height, width)``, and work on PyTensor's C,
Numba and JAX backends.
"""

from dpm.ops.convolution import DEFAULT_IMPLEMENTATION, IMPLEMENTATIONS, conv2d_same
from dpm.ops.jax_implementations import register_jax_implementations
from dpm.ops.pooling import mean_pool, upsample

__all__ = [
    "DEFAULT_IMPLEMENTATION",
    "IMPLEMENTATIONS",
    "conv2d_same",
    "mean_pool",
    "register_jax_implementations",
    "upsample",
]
