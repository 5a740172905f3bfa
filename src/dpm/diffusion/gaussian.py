"""Gaussian diffusion, symbolic and batch-vectorized.

The paper is Sohl-Dickstein et al. 2015, arXiv:1503.03585 v8 (Section 2.1 and Appendix B).
Every method takes a batch with one time step ``t`` per example, an integer vector of shape
(batch,) with values in ``1..T``. Data have shape (batch, D), or (batch, C, H, W) for images,
any number of axes after the batch axis. Natural logs inside, bits in what
:meth:`GaussianDiffusion.bound_terms` returns.
"""

import numpy as np
import pytensor.tensor as pt

from dpm.diffusion.draws import standard_normal_noise
from dpm.diffusion.schedules import alphabar

LOG_2PI_E = float(np.log(2 * np.pi * np.e))
LN2 = float(np.log(2.0))

#: Names of the reverse-kernel parameterizations accepted by :class:`GaussianDiffusion`.
PARAMETERIZATIONS = ("direct", "paper", "reference")


def gaussian_kl(mean_q, log_var_q, mean_p, log_var_p):
    """Return ``KL(N(mean_q, var_q) || N(mean_p, var_p))`` per element, in nats.

    Variances enter as logs so that very small variances stay finite in float32.
    """
    return 0.5 * (
        log_var_p - log_var_q
        + (pt.exp(log_var_q) + pt.sqr(mean_q - mean_p)) * pt.exp(-log_var_p)
        - 1.0
    )


def log_sigmoid(x):
    """Return ``log(sigmoid(x)) = -softplus(-x)``, finite in float32 for large ``|x|``."""
    return -pt.softplus(-x)


def gaussian_entropy(variance):
    """Return the differential entropy ``0.5 log(2 pi e variance)`` of a 1-D Gaussian, in nats."""
    return 0.5 * (LOG_2PI_E + pt.log(variance))


class GaussianDiffusion:
    """Forward process, posterior, reverse kernel and bound K for continuous data.

    The equilibrium distribution is ``pi = N(0, I)``, the forward kernel
    ``q(xt | x(t-1)) = N(sqrt(1 - beta_t) x(t-1), beta_t I)``, and the last reverse step is
    fixed to the forward step: ``p(x0 | x1) = N(sqrt(1 - beta_1) x1, beta_1 I)``.

    Parameters
    ----------
    schedule : FixedSchedule or LearnedSchedule
        Supplies ``beta_1..T``.
    n_dims : int
        Dimension D of one data point.
    parameterization : {'direct', 'paper', 'reference'}
        How network outputs ``(z_mu, z_Sigma)`` become the reverse mean and variance:
        'direct' (the swiss roll network) takes ``mu = z_mu`` and
        ``Sigma = sigmoid(z_Sigma)``; 'paper' is Eq. 64-65,
        ``Sigma = sigmoid(z_Sigma + logit(beta_t))``, ``mu = (x - z_mu)(1 - Sigma) + z_mu``;
        'reference' is the authors' code,
        ``Sigma = sigmoid(z_Sigma / sqrt(T) + logit(beta_t))``,
        ``mu = x sqrt(1 - beta_t) + z_mu sqrt(beta_t)``.
    """

    def __init__(self, schedule, n_dims, parameterization="direct"):
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"unknown parameterization {parameterization!r}; choose one of {PARAMETERIZATIONS}"
            )
        self.schedule = schedule
        self.trajectory_length = schedule.trajectory_length
        self.n_dims = int(n_dims)
        self.parameterization = parameterization

    # Schedule quantities, gathered per example -------------------------------------------

    def _coefficients(self, t, ndim=2):
        """Return ``beta_t``, ``alphabar_t``, ``1 - alphabar_t`` and those at ``t - 1``.

        Each has shape (batch, 1, ..., 1) with ``ndim`` axes in all, so that it broadcasts
        against a state of ``ndim`` axes. With ``ndim = 2`` they are (batch, 1) columns.
        """
        beta = self.schedule.beta()
        ab, one_minus_ab = alphabar(beta)
        # Prepend t = 0, where alphabar_0 = 1.
        ab = pt.concatenate([pt.ones((1,), dtype=ab.dtype), ab])
        one_minus_ab = pt.concatenate([pt.zeros((1,), dtype=ab.dtype), one_minus_ab])
        column = lambda v: pt.shape_padright(v, ndim - 1)  # noqa: E731
        return (
            column(beta[t - 1]),
            column(ab[t]),
            column(one_minus_ab[t]),
            column(ab[t - 1]),
            column(one_minus_ab[t - 1]),
        )

    def draw_noise(self, rng, shape):
        """Draw the noise that :meth:`forward_sample` expects: standard normal, in floatX."""
        return standard_normal_noise(rng, shape)

    def forward_sample(self, x0, t, noise):
        """Return ``xt = sqrt(alphabar_t) x0 + sqrt(1 - alphabar_t) noise``, a draw from ``q(xt | x0)``.

        ``noise`` is standard normal and supplied by the caller, so gradients with respect to
        the schedule see it as fixed (frozen noise).
        """
        x0 = pt.as_tensor_variable(x0)
        _, ab, one_minus_ab, _, _ = self._coefficients(t, x0.ndim)
        return pt.sqrt(ab) * x0 + pt.sqrt(one_minus_ab) * noise

    def posterior(self, x0, xt, t):
        """Return the mean and log variance of ``q(x(t-1) | xt, x0)`` for ``t >= 2``.

        With ``a = 1 - alphabar``: variance ``beta_t a_(t-1) / a_t`` and mean
        ``sqrt(alphabar_(t-1)) beta_t / a_t x0 + sqrt(1 - beta_t) a_(t-1) / a_t xt``, the same
        as the precision-weighted form in the paper after using
        ``a_(t-1) (1 - beta_t) + beta_t = a_t``.
        """
        x0 = pt.as_tensor_variable(x0)
        beta, _, one_minus_ab, ab_prev, one_minus_ab_prev = self._coefficients(t, x0.ndim)
        mean = (
            pt.sqrt(ab_prev) * beta / one_minus_ab * x0
            + pt.sqrt(1.0 - beta) * one_minus_ab_prev / one_minus_ab * xt
        )
        log_var = pt.log(beta) + pt.log(one_minus_ab_prev) - pt.log(one_minus_ab)
        return mean, pt.broadcast_to(log_var, mean.shape)

    def reverse(self, xt, t, network_output):
        """Return the mean and log variance of ``p(x(t-1) | xt)`` from network outputs.

        Parameters
        ----------
        xt : (batch, D) or (batch, C, H, W)
        t : int vector (batch,), values in ``2..T``
        network_output : pair of tensors ``(z_mu, z_Sigma)``, each of the shape of ``xt``
        """
        z_mu, z_sigma = network_output
        if self.parameterization == "direct":
            return z_mu, log_sigmoid(z_sigma)
        xt = pt.as_tensor_variable(xt)
        beta = self._coefficients(t, xt.ndim)[0]
        logit_beta = pt.log(beta) - pt.log1p(-beta)
        if self.parameterization == "paper":
            pre = z_sigma + logit_beta
            sigma = pt.sigmoid(pre)
            return (xt - z_mu) * (1.0 - sigma) + z_mu, log_sigmoid(pre)
        pre = z_sigma / float(np.sqrt(self.trajectory_length)) + logit_beta
        return xt * pt.sqrt(1.0 - beta) + z_mu * pt.sqrt(beta), log_sigmoid(pre)

    def last_step(self, x1):
        """Return the mean and log variance of the fixed last step ``p(x0 | x1)``.

        Appendix B.2 sets ``p(x0 | x1) = q(x1 | x0) pi(x0) / pi(x1)``; with ``pi = N(0, I)``
        that is ``N(sqrt(1 - beta_1) x1, beta_1 I)``.
        """
        beta_1 = self.schedule.beta()[0]
        mean = pt.sqrt(1.0 - beta_1) * x1
        return mean, pt.broadcast_to(pt.log(beta_1), mean.shape)

    # The bound -----------------------------------------------------------------------------

    def kl_divergence(self, x0, xt, t, mean_p, log_var_p):
        """Return ``KL(q(x(t-1) | xt, x0) || p(x(t-1) | xt))`` summed over dimensions, in nats, per example.

        The sum runs over every axis after the batch axis, so images (batch, C, H, W) give
        the same numbers as their flattened (batch, C H W) form.
        """
        mean_q, log_var_q = self.posterior(x0, xt, t)
        kl = gaussian_kl(mean_q, log_var_q, mean_p, log_var_p)
        axes = 1 if kl.ndim == 2 else tuple(range(1, kl.ndim))
        return pt.sum(kl, axis=axes)

    def entropy_terms(self):
        """Return ``H_q(XT | X0)``, ``H_q(X1 | X0)`` and ``H_p(XT)`` for a whole data point, in nats."""
        beta = self.schedule.beta()
        _, one_minus_ab = alphabar(beta)
        D = self.n_dims
        return (
            D * gaussian_entropy(one_minus_ab[-1]),
            D * gaussian_entropy(beta[0]),
            D * 0.5 * LOG_2PI_E,
        )

    def L_null(self):
        """Return the log likelihood of unit-variance data under ``pi`` alone, bits per data point."""
        return -self.n_dims * 0.5 * LOG_2PI_E / LN2

    def bound_terms(self, kl_sum, x0=None):
        """Assemble K from the summed KL terms, as named parts in bits per example.

        Parameters
        ----------
        kl_sum : (batch,) tensor
            ``sum_{t=2..T} KL(q(x(t-1) | xt, x0) || p(x(t-1) | xt))`` per example in nats, or an
            unbiased estimate of it (one ``t`` per example, times ``T - 1``).
        x0 : (batch, D) tensor, optional
            Not used: every other term of the Gaussian bound is the same for all data points.
            The argument exists so that callers treat every diffusion process alike.

        Returns
        -------
        dict
            ``kl_sum``, ``H_q_XT_given_X0``, ``H_q_X1_given_X0``, ``H_p_XT``, ``L_null``, ``K`` and
            ``K_minus_L_null``, each a (batch,) tensor in bits, with
            ``K = -kl_sum + H_q(XT | X0) - H_q(X1 | X0) - H_p(XT)`` (paper Eq. 14).
        """
        H_T, H_1, H_p = self.entropy_terms()
        ones = pt.ones_like(kl_sum)
        terms = {
            "kl_sum": kl_sum / LN2,
            "H_q_XT_given_X0": ones * H_T / LN2,
            "H_q_X1_given_X0": ones * H_1 / LN2,
            "H_p_XT": ones * H_p / LN2,
            "L_null": ones * self.L_null(),
        }
        terms["K"] = (
            -terms["kl_sum"] + terms["H_q_XT_given_X0"] - terms["H_q_X1_given_X0"] - terms["H_p_XT"]
        )
        terms["K_minus_L_null"] = terms["K"] - terms["L_null"]
        return terms

    def entropy_bounds(self, t):
        """Return the lower and upper bounds on ``H_q(X(t-1) | Xt)`` per dimension, in nats (Eq. 36).

        Lower: ``H_q(Xt | X(t-1)) + H_q(X(t-1) | X0) - H_q(Xt | X0)``; upper:
        ``H_q(Xt | X(t-1))``. Both depend on the forward process only; the upper bound assumes
        unit-variance data. ``t`` is an integer vector with values in ``2..T``.
        """
        beta, _, one_minus_ab, _, one_minus_ab_prev = self._coefficients(t)
        upper = gaussian_entropy(beta)[:, 0]
        lower = upper + gaussian_entropy(one_minus_ab_prev)[:, 0] - gaussian_entropy(one_minus_ab)[:, 0]
        return lower, upper
