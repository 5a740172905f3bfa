"""The shared part of every Gaussian diffusion model: a reverse network plus a diffusion process."""

import pytensor.tensor as pt

from dpm.bricks import Brick


class GaussianDiffusionModel(Brick):
    """A brick whose network maps ``(xt, t)`` to reverse-kernel outputs for a :class:`GaussianDiffusion`.

    Subclasses set ``self.diffusion`` and implement :meth:`network_output`.
    """

    diffusion = None

    @property
    def trajectory_length(self):
        return self.diffusion.trajectory_length

    @property
    def n_dims(self):
        return self.diffusion.n_dims

    def network_output(self, xt, t):
        """Return the pair ``(z_mu, z_Sigma)``, each (batch, D), for ``t`` in ``2..T``."""
        raise NotImplementedError

    def reverse(self, xt, t):
        """Return the mean and log variance of ``p(x(t-1) | xt)`` for ``t`` in ``2..T``."""
        return self.diffusion.reverse(xt, t, self.network_output(xt, t))

    def kl_divergence(self, x0, t, noise):
        """Return the KL term of step ``t`` in nats per example, with ``xt`` drawn from ``noise``."""
        xt = self.diffusion.forward_sample(x0, t, noise)
        mean_p, log_var_p = self.reverse(xt, t)
        return self.diffusion.kl_divergence(x0, xt, t, mean_p, log_var_p)

    def bound_estimate(self, x0, t, noise):
        """Return K's named terms in bits per example, the KL sum estimated from one ``t`` each.

        With ``t`` uniform on ``2..T``, ``(T - 1) KL_t`` is an unbiased estimate of the sum of
        the ``T - 1`` KL terms.

        Notes
        -----
        The reference code multiplies by ``T`` instead, which understates K by one KL term on
        average; this package uses ``T - 1``.
        """
        kl = self.kl_divergence(x0, t, noise)
        return self.diffusion.bound_terms((self.trajectory_length - 1) * kl)

    def cost(self, x0, t, noise):
        """Return the training cost, ``-mean(K)`` in bits per data point."""
        return -pt.mean(self.bound_estimate(x0, t, noise)["K"])
