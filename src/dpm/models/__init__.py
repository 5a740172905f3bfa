"""The networks of each experiment, built from bricks and a diffusion process."""

from dpm.models.base import GaussianDiffusionModel
from dpm.models.swiss_roll import SwissRollModel

__all__ = ["GaussianDiffusionModel", "SwissRollModel"]
