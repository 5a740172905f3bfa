"""The swiss roll network of Sohl-Dickstein et al. 2015 (arXiv:1503.03585, Appendix D.1).

A normalized radial-basis-function layer of 16 units is shared by all time steps and by the
mean and the covariance; a separate linear readout for each step gives ``f_mu`` and, through a
sigmoid, the diagonal ``f_Sigma`` in (0, 1).
"""

import numpy as np

from dpm.bricks import Brick, Constant, IsotropicGaussian, NormalizedRBF, PerStepReadout
from dpm.diffusion import GaussianDiffusion, build_schedule
from dpm.models.base import GaussianDiffusionModel


class SwissRollModel(GaussianDiffusionModel):
    """Gaussian diffusion model of 2-D data with the paper's RBF reverse network.

    Parameters
    ----------
    trajectory_length : int
        T, 40 in the paper.
    n_hidden : int
        RBF units, 16 in the paper.
    schedule : {'learned', 'reference', 'inverse_remaining'}
        The paper learns ``beta_2..T`` (Section 2.4.1).
    beta_1 : float
        The fixed first rate. The paper fixes it to "a small constant" without a value; the
        default is the reference code's ``step1_beta``, 1e-3, used as ``beta_1`` itself.
    readout_std : float
        Standard deviation of the readout weights at initialization (our choice; the paper
        does not state it).
    parameterization : {'reference', 'paper', 'direct'}
        How the readouts become the reverse kernel (see :class:`GaussianDiffusion`). The
        reference code's form bounds the likelihood best on the swiss roll; 'direct', the
        literal reading of the paper's description, is about 1.3 bits worse.
    """

    def __init__(self, trajectory_length=40, n_hidden=16, schedule="learned", beta_1=1e-3,
                 readout_std=0.1, parameterization="reference", name="swiss_roll"):
        super().__init__(name=name)
        T = int(trajectory_length)
        self.schedule = build_schedule(schedule, T, beta_1=beta_1)
        self.rbf = NormalizedRBF(
            2, n_hidden, centers_init=IsotropicGaussian(1.0),
            log_widths_init=Constant(np.log(0.5)), name="rbf",
        )
        # Readouts for t = 2..T only: the last step t = 1 is fixed to the forward kernel.
        readouts = {
            role: PerStepReadout(
                n_hidden, 2, T - 1, weights_init=IsotropicGaussian(readout_std),
                biases_init=Constant(0.0), name=f"{role}_readout",
            )
            for role in ("mean", "variance")
        }
        self.mean_readout = readouts["mean"]
        self.variance_readout = readouts["variance"]
        for child in (self.rbf, self.mean_readout, self.variance_readout, self.schedule):
            if isinstance(child, Brick):
                self.add_child(child)
        self.diffusion = GaussianDiffusion(self.schedule, n_dims=2, parameterization=parameterization)

    def network_output(self, xt, t):
        hidden = self.rbf.apply(xt)
        step = t - 2
        return self.mean_readout.apply(hidden, step), self.variance_readout.apply(hidden, step)
