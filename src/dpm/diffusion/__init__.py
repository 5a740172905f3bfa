"""The mathematics of Sohl-Dickstein et al. 2015: schedules, diffusion processes, the bound K, and sampling."""

from dpm.diffusion.draws import DiffusionInputs, draw_t_and_noise
from dpm.diffusion.gaussian import GaussianDiffusion, gaussian_kl
from dpm.diffusion.schedules import (
    FixedSchedule,
    LearnedSchedule,
    build_schedule,
    inverse_remaining_beta,
    reference_beta,
)

__all__ = [
    "DiffusionInputs",
    "FixedSchedule",
    "GaussianDiffusion",
    "LearnedSchedule",
    "build_schedule",
    "draw_t_and_noise",
    "gaussian_kl",
    "inverse_remaining_beta",
    "reference_beta",
]
