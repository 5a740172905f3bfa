"""The networks of each experiment, built from bricks and a diffusion process."""

from dpm.models.base import BinomialDiffusionModel, DiffusionModel, GaussianDiffusionModel
from dpm.models.heartbeat import HeartbeatModel
from dpm.models.image import ImageDiffusionModel
from dpm.models.swiss_roll import SwissRollModel

__all__ = [
    "BinomialDiffusionModel", "DiffusionModel", "GaussianDiffusionModel", "HeartbeatModel",
    "ImageDiffusionModel", "SwissRollModel",
]
