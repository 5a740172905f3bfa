"""Diffusion probabilistic models (Sohl-Dickstein et al. 2015) on PyTensor."""

__version__ = "0.1.0"
