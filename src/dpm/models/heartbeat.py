"""The binary heartbeat network of Sohl-Dickstein et al. 2015 (arXiv:1503.03585, Appendix D.1).

A multilayer perceptron with sigmoid units maps the 20 bits of ``xt`` through three hidden
layers of 50 units that all time steps share. A separate linear readout for each step gives
the logits of the reverse kernel's rates, which a sigmoid turns into rates.
"""

from dpm.bricks import MLP, Constant, IsotropicGaussian, Logistic, PerStepReadout
from dpm.diffusion import BinomialDiffusion
from dpm.models.base import BinomialDiffusionModel


class HeartbeatModel(BinomialDiffusionModel):
    """Binomial diffusion model of binary sequences with the paper's sigmoid MLP.

    Parameters
    ----------
    trajectory_length : int
        T, 2000 in the paper.
    n_dims : int
        Length of a sequence, 20 in the paper.
    n_hidden : int
        Width of each hidden layer, 50 in the paper.
    n_layers : int
        Hidden layers shared by all steps, 3 in the paper.
    p : float
        Equilibrium rate, 0.2 in the paper (the data's mean activity).
    parameterization : {'direct', 'forward_offset'}
        See :class:`~dpm.diffusion.BinomialDiffusion`.
    hidden_std, readout_std : float
        Standard deviations of the hidden and readout weights at initialization (our
        choice; the paper does not state them). Biases start at zero.
    readout_basis : int
        Bumps of the readouts' shared part, 0 for none (see
        :class:`~dpm.bricks.PerStepReadout`'s ``n_basis``). The network's function class
        is the paper's either way; the shared part speeds up training.
    readout_basis_width : {'reference', 'paper'} or float
        Width of those bumps, see :func:`~dpm.bricks.bump_basis`.
    """

    def __init__(self, trajectory_length=2000, n_dims=20, n_hidden=50, n_layers=3, p=0.2,
                 parameterization="forward_offset", hidden_std=0.5, readout_std=0.01,
                 readout_basis=0, readout_basis_width="reference", name="heartbeat"):
        super().__init__(name=name)
        if int(n_layers) < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers!r}")
        self.diffusion = BinomialDiffusion(trajectory_length, n_dims, p=p,
                                           parameterization=parameterization)
        T = self.diffusion.trajectory_length
        # One Logistic instance serves every layer: it has no parameters.
        sigmoid = Logistic()
        self.mlp = MLP([sigmoid] * int(n_layers), [n_dims] + [n_hidden] * int(n_layers),
                       weights_init=IsotropicGaussian(hidden_std), biases_init=Constant(0.0),
                       name="mlp")
        # Readouts for t = 2..T only: the last step t = 1 is fixed to the forward kernel.
        self.readout = PerStepReadout(n_hidden, n_dims, T - 1,
                                      weights_init=IsotropicGaussian(readout_std),
                                      biases_init=Constant(0.0), n_basis=readout_basis,
                                      basis_width=readout_basis_width, name="readout")
        self.add_child(self.mlp)
        self.add_child(self.readout)

    def network_output(self, xt, t, t_groups=None):
        return self.readout.apply(self.mlp.apply(xt), t - 2, n_groups=t_groups)
