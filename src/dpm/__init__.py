"""Diffusion probabilistic models (Sohl-Dickstein et al. 2015) on PyTensor."""

import os

# The toy networks multiply matrices at most 1000 x 500 wide, too small for OpenBLAS's
# threads to help. On a machine whose cores are busy those threads spin, and training steps
# became 10-20 times slower (docs/benchmarks.md). OpenBLAS reads the variable when NumPy
# loads it, so this acts only when dpm is imported before NumPy, as by the dpm command. Set
# OPENBLAS_NUM_THREADS yourself to choose otherwise.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
