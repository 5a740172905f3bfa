"""The mathematics of Sohl-Dickstein et al. 2015: schedules, diffusion processes, the bound K, and sampling."""

from dpm.diffusion.binomial import (
    BinomialDiffusion,
    bernoulli_entropy,
    bernoulli_kl,
    perturbed_logit,
)
from dpm.diffusion.draws import DiffusionInputs, draw_t_and_noise, standard_normal_noise
from dpm.diffusion.gaussian import GaussianDiffusion, gaussian_kl
from dpm.diffusion.schedules import (
    FixedSchedule,
    LearnedSchedule,
    binomial_alphabar,
    binomial_beta,
    build_schedule,
    inverse_remaining_beta,
    reference_beta,
)

__all__ = [
    "BinomialDiffusion",
    "DiffusionInputs",
    "FixedSchedule",
    "GaussianDiffusion",
    "LearnedSchedule",
    "bernoulli_entropy",
    "bernoulli_kl",
    "binomial_alphabar",
    "binomial_beta",
    "build_schedule",
    "draw_t_and_noise",
    "gaussian_kl",
    "inverse_remaining_beta",
    "perturbed_logit",
    "reference_beta",
    "standard_normal_noise",
]
