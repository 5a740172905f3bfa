"""The shared part of every diffusion model: a reverse network plus a diffusion process."""

import pytensor.tensor as pt

from dpm.bricks import Brick


class DiffusionModel(Brick):
    """A brick whose network maps ``(xt, t)`` to the reverse-kernel outputs of its diffusion process.

    Subclasses set ``self.diffusion`` (a :class:`~dpm.diffusion.GaussianDiffusion` or
    :class:`~dpm.diffusion.BinomialDiffusion`) and implement :meth:`network_output`.
    """

    diffusion = None

    @property
    def trajectory_length(self):
        return self.diffusion.trajectory_length

    @property
    def n_dims(self):
        return self.diffusion.n_dims

    def network_output(self, xt, t):
        """Return what the diffusion process's ``reverse`` takes, for ``t`` in ``2..T``."""
        raise NotImplementedError

    def reverse(self, xt, t, t_groups=None):
        """Return the parameters of ``p(x(t-1) | xt)`` for ``t`` in ``2..T``.

        A pair ``(mean, log variance)`` for Gaussian diffusion, the logit of the rate for
        binomial diffusion. ``t_groups`` promises that the batch is that many equal
        contiguous blocks with one ``t`` each. A network with per-step readouts then does
        one matrix product per block, and other networks ignore it.
        """
        if t_groups is None:
            output = self.network_output(xt, t)
        else:
            output = self.network_output(xt, t, t_groups=t_groups)
        return self.diffusion.reverse(xt, t, output)

    def kl_divergence(self, x0, t, noise, t_groups=None):
        """Return the KL term of step ``t`` in nats per example, with ``xt`` drawn from ``noise``."""
        xt = self.diffusion.forward_sample(x0, t, noise)
        reverse = self.reverse(xt, t, t_groups)
        if not isinstance(reverse, tuple):
            reverse = (reverse,)
        return self.diffusion.kl_divergence(x0, xt, t, *reverse)

    def bound_estimate(self, x0, t, noise, t_groups=None):
        """Return K's named terms in bits per example, the KL sum estimated from one ``t`` each.

        With ``t`` uniform on ``2..T``, ``(T - 1) KL_t`` is an unbiased estimate of the sum of
        the ``T - 1`` KL terms.

        Notes
        -----
        The reference code multiplies by ``T`` instead, which understates K by one KL term on
        average; this package uses ``T - 1``.
        """
        kl = self.kl_divergence(x0, t, noise, t_groups)
        return self.diffusion.bound_terms((self.trajectory_length - 1) * kl, x0)

    def cost(self, x0, t, noise):
        """Return the training cost, ``-mean(K)`` in bits per data point."""
        return -pt.mean(self.bound_estimate(x0, t, noise)["K"])


class GaussianDiffusionModel(DiffusionModel):
    """A diffusion model whose network outputs ``(z_mu, z_Sigma)`` for a :class:`~dpm.diffusion.GaussianDiffusion`."""

    def network_output(self, xt, t):
        """Return the pair ``(z_mu, z_Sigma)``, each (batch, D), for ``t`` in ``2..T``."""
        raise NotImplementedError


class BinomialDiffusionModel(DiffusionModel):
    """A diffusion model whose network outputs ``z`` for a :class:`~dpm.diffusion.BinomialDiffusion`."""

    def network_output(self, xt, t):
        """Return ``z`` (batch, D), which the diffusion process turns into reverse logits."""
        raise NotImplementedError
