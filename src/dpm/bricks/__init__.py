"""Blocks-style bricks: network components that own named parameters and build graphs."""

from dpm.bricks.activations import (
    Activation,
    Identity,
    LeakyRectifier,
    Logistic,
    Rectifier,
    Softplus,
    Tanh,
)
from dpm.bricks.base import Brick
from dpm.bricks.convolutional import Convolutional, PixelDense
from dpm.bricks.initialization import (
    Constant,
    InitializationScheme,
    IsotropicGaussian,
    Orthogonal,
    Uniform,
)
from dpm.bricks.linear import Linear
from dpm.bricks.mlp import MLP
from dpm.bricks.multiscale import MultiLayerConvolution, MultiScaleConvolution
from dpm.bricks.rbf import NormalizedRBF
from dpm.bricks.readout import PerStepReadout
from dpm.bricks.roles import (
    BIAS,
    CENTER,
    PARAMETER,
    WEIGHT,
    WIDTH,
    ParameterRole,
    add_role,
    has_role,
)
from dpm.bricks.temporal import TemporalBasis, bump_basis

__all__ = [
    "BIAS",
    "CENTER",
    "MLP",
    "PARAMETER",
    "WEIGHT",
    "WIDTH",
    "Activation",
    "Brick",
    "Constant",
    "Convolutional",
    "Identity",
    "InitializationScheme",
    "IsotropicGaussian",
    "LeakyRectifier",
    "Linear",
    "Logistic",
    "MultiLayerConvolution",
    "MultiScaleConvolution",
    "NormalizedRBF",
    "Orthogonal",
    "ParameterRole",
    "PerStepReadout",
    "PixelDense",
    "Rectifier",
    "Softplus",
    "Tanh",
    "TemporalBasis",
    "Uniform",
    "add_role",
    "bump_basis",
    "has_role",
]
