"""Image operations that PyTensor lacks: 2-D 'same' convolution, mean pooling, upsampling.

All take NCHW images, ``(batch, channels, height, width)``, and work on PyTensor's C,
Numba and JAX backends. Importing this package installs the hook of
:mod:`dpm.ops.registration`, which gives the Ops their JAX and Numba implementations.
"""

from dpm.ops import registration
from dpm.ops.convolution import DEFAULT_IMPLEMENTATION, IMPLEMENTATIONS, conv2d_same
from dpm.ops.pooling import mean_pool, upsample

registration.install()

__all__ = [
    "DEFAULT_IMPLEMENTATION",
    "IMPLEMENTATIONS",
    "conv2d_same",
    "mean_pool",
    "upsample",
]
