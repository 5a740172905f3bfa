"""Binomial diffusion of binary data, symbolic and batch-vectorized.

The paper is Sohl-Dickstein et al. 2015, arXiv:1503.03585 v8 (Section 2, Appendix B and
Table App.1). Every method takes a batch with one time step ``t`` per example, an integer
vector of shape (batch,) with values in ``1..T``. Data have shape (batch, D) with entries in
{0, 1}. A Bernoulli rate is the probability that a bit is 1. Reverse-kernel rates travel as
logits, so that rates near 0 or 1 stay exact in float32 and their gradients stay finite.
Natural logs inside, bits in what :meth:`BinomialDiffusion.bound_terms` returns.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt

from dpm.diffusion.gaussian import LN2
from dpm.diffusion.schedules import binomial_alphabar, binomial_beta

#: Names of the reverse-kernel parameterizations accepted by :class:`BinomialDiffusion`.
BINOMIAL_PARAMETERIZATIONS = ("direct", "forward_offset")


def xlogx(x):
    """Return ``x log x`` elementwise with its limit 0 at ``x = 0``.

    The inner switch keeps ``log`` away from 0, so the gradient at ``x = 0`` is finite
    (it is 0, the one-sided derivative without the ``log x`` term that diverges there).
    """
    positive = pt.gt(x, 0)
    safe = pt.switch(positive, x, pt.ones_like(x))
    return pt.switch(positive, x * pt.log(safe), pt.zeros_like(x))


def bernoulli_kl(rate_q, logit_p):
    """Return ``KL(Bernoulli(rate_q) || Bernoulli(sigmoid(logit_p)))`` elementwise, in nats.

    Parameters
    ----------
    rate_q : tensor
        Rates in [0, 1]; 0 and 1 give the exact limits (``0 log 0 = 0``).
    logit_p : tensor
        Logits of the second rate. ``log p`` and ``log(1 - p)`` come from ``log_sigmoid``, so
        the KL is finite for every finite logit even where ``sigmoid`` rounds to 0 or 1.

    Notes
    -----
    The gradient with respect to ``logit_p`` is ``sigmoid(logit_p) - rate_q``, finite
    everywhere. The gradient with respect to ``rate_q`` is ``logit(rate_q) - logit_p``, which
    diverges at rates 0 and 1; there the graph returns the finite value of :func:`xlogx`'s
    convention instead. The binomial schedule is fixed, so training never uses that gradient.
    """
    log_p = -pt.softplus(-logit_p)
    log_one_minus_p = -pt.softplus(logit_p)
    return (
        xlogx(rate_q) + xlogx(1.0 - rate_q)
        - rate_q * log_p - (1.0 - rate_q) * log_one_minus_p
    )


def bernoulli_entropy(rate):
    """Return the entropy of ``Bernoulli(rate)`` elementwise, in nats, exact at 0 and 1."""
    return -xlogx(rate) - xlogx(1.0 - rate)


def perturbed_logit(logit_c, r_one):
    """Return the logit of a Bernoulli kernel multiplied by a second distribution ``r``.

    Multiplying ``Bernoulli(c)`` by ``r`` and normalizing gives the rate
    ``c d / (c d + (1 - c)(1 - d))`` with ``d = r(x = 1)`` (paper Table App.1), whose logit is
    ``logit(c) + logit(d)``. A ``d`` of exactly 0 or 1 gives a logit of ``-inf`` or ``+inf``,
    which fixes the bit; ``d = 0.5`` leaves the kernel unchanged.

    Parameters
    ----------
    logit_c : tensor
        Logit of the kernel's rate.
    r_one : tensor
        ``d = r(x_i = 1)`` per bit, in [0, 1], broadcast against ``logit_c``.
    """
    return logit_c + pt.log(r_one) - pt.log1p(-r_one)


class BinomialDiffusion:
    """Forward process, posterior, reverse kernel and bound K for binary data.

    The equilibrium distribution is ``pi = Bernoulli(p)`` for every bit, the forward kernel
    ``q(xt | x(t-1)) = Bernoulli(x(t-1) (1 - beta_t) + p beta_t)`` with the fixed schedule
    ``beta_t = 1 / (T - t + 1)``, so ``alphabar_t = (T - t) / T`` and ``q(xT | x0) = pi``
    exactly. The reverse kernel is ``p(x(t-1) | xt) = Bernoulli(sigmoid(logit))`` with the
    logit from a network. The last reverse step is fixed (Appendix B.2):
    ``p(x0 | x1) = q(x1 | x0) pi(x0) / pi(x1)``, which is the forward kernel applied to ``x1``
    because the kernel satisfies detailed balance with respect to ``pi``.

    Parameters
    ----------
    trajectory_length : int
        T, at least 2.
    n_dims : int
        Bits D of one data point.
    p : float
        Equilibrium rate in (0, 1): 0.5 in the paper's Table App.1, 0.2 for the heartbeat
        data (their mean activity).
    parameterization : {'direct', 'forward_offset'}
        How the network output ``z`` becomes the reverse logit. 'direct' takes ``z`` itself,
        a sigmoid output as in the paper. 'forward_offset' adds the logit of the forward
        kernel's rate at ``xt``, ``xt (1 - beta_t) + p beta_t``, so that ``z = 0`` is the exact
        reverse kernel of data at equilibrium. It is the binary counterpart of the paper's
        Eq. 64-65, which offsets the Gaussian variance by ``logit(beta_t)``.
    """

    def __init__(self, trajectory_length, n_dims, p=0.5, parameterization="direct"):
        if parameterization not in BINOMIAL_PARAMETERIZATIONS:
            raise ValueError(
                f"unknown parameterization {parameterization!r}; choose one of "
                f"{BINOMIAL_PARAMETERIZATIONS}"
            )
        p = float(p)
        if not 0.0 < p < 1.0:
            raise ValueError(f"the equilibrium rate p must lie in (0, 1), got {p!r}")
        n_dims = int(n_dims)
        if n_dims < 1:
            raise ValueError(f"n_dims must be a positive integer, got {n_dims!r}")
        self.beta_values = binomial_beta(trajectory_length)
        self.alphabar_values = binomial_alphabar(trajectory_length)
        self.trajectory_length = self.beta_values.size
        self.n_dims = n_dims
        self.p = p
        self.parameterization = parameterization

    # Schedule quantities, gathered per example -------------------------------------------

    def _constant(self, value):
        return pt.as_tensor_variable(np.asarray(value, dtype=pytensor.config.floatX))

    def _beta(self, t):
        """Return ``beta_t`` as a (batch, 1) column."""
        return self._constant(self.beta_values)[t - 1][:, None]

    def _alphabar(self, t):
        """Return ``alphabar_t`` as a (batch, 1) column, for ``t`` in ``0..T``."""
        return self._constant(self.alphabar_values)[t][:, None]

    def beta_numpy(self):
        """Return ``beta_1..T`` as a float64 array."""
        return self.beta_values.copy()

    # The forward process -------------------------------------------------------------------

    def draw_noise(self, rng, shape):
        """Draw the noise that :meth:`forward_sample` expects: uniform on [0, 1), in floatX."""
        floatX = pytensor.config.floatX
        return rng.random(shape, dtype=np.float32 if floatX == "float32" else np.float64)

    def forward_rate(self, x_prev, t):
        """Return the rate of ``q(xt | x(t-1))``, ``x(t-1) (1 - beta_t) + p beta_t``."""
        beta = self._beta(t)
        return x_prev * (1.0 - beta) + self.p * beta

    def marginal_rate(self, x0, t):
        """Return the rate of ``q(xt | x0)``, ``x0 alphabar_t + p (1 - alphabar_t)``, for ``t`` in ``0..T``."""
        alphabar = self._alphabar(t)
        return x0 * alphabar + self.p * (1.0 - alphabar)

    def _marginal_complement(self, x0, t):
        """Return ``1 - marginal_rate(x0, t)`` without cancellation."""
        alphabar = self._alphabar(t)
        return (1.0 - x0) * alphabar + (1.0 - self.p) * (1.0 - alphabar)

    def forward_sample(self, x0, t, noise):
        """Return ``xt = 1[noise < q(xt = 1 | x0)]``, a draw from ``q(xt | x0)`` in floatX.

        ``noise`` is uniform on [0, 1) and supplied by the caller (see :meth:`draw_noise`).
        """
        return pt.cast(pt.lt(noise, self.marginal_rate(x0, t)), pytensor.config.floatX)

    def posterior(self, x0, xt, t):
        """Return the rate of ``q(x(t-1) | xt, x0)`` for ``t`` in ``2..T``, by Bayes' rule.

        The prior is the marginal ``q(x(t-1) | x0)`` and the likelihood the forward kernel
        ``q(xt | x(t-1))`` evaluated at both values of ``x(t-1)``.
        """
        beta = self._beta(t)
        # Likelihood of the observed xt when x(t-1) = 1 and when x(t-1) = 0.
        stay_one = 1.0 - beta * (1.0 - self.p)
        become_one = self.p * beta
        likelihood_one = xt * stay_one + (1.0 - xt) * (1.0 - stay_one)
        likelihood_zero = xt * become_one + (1.0 - xt) * (1.0 - become_one)
        joint_one = likelihood_one * self.marginal_rate(x0, t - 1)
        joint_zero = likelihood_zero * self._marginal_complement(x0, t - 1)
        return joint_one / (joint_one + joint_zero)

    # The reverse process -------------------------------------------------------------------

    def forward_logit(self, xt, t):
        """Return ``logit(xt (1 - beta_t) + p beta_t)``, the forward kernel's rate at ``xt``."""
        beta = self._beta(t)
        rate = xt * (1.0 - beta) + self.p * beta
        complement = xt * beta * (1.0 - self.p) + (1.0 - xt) * (1.0 - self.p * beta)
        return pt.log(rate) - pt.log(complement)

    def reverse(self, xt, t, network_output):
        """Return the logit of the rate of ``p(x(t-1) | xt)`` from the network output.

        Parameters
        ----------
        xt : (batch, D)
        t : int vector (batch,), values in ``2..T``
        network_output : (batch, D) tensor ``z``
        """
        if self.parameterization == "direct":
            return network_output
        return network_output + self.forward_logit(xt, t)

    def last_step(self, x1):
        """Return the logit of the fixed last step ``p(x0 | x1) = Bernoulli(x1 (1 - beta_1) + p beta_1)``."""
        t = pt.ones((x1.shape[0],), dtype="int32")
        return self.forward_logit(x1, t)

    # The bound -----------------------------------------------------------------------------

    def kl_divergence(self, x0, xt, t, logit_p):
        """Return ``KL(q(x(t-1) | xt, x0) || p(x(t-1) | xt))`` summed over bits, in nats, per example."""
        return pt.sum(bernoulli_kl(self.posterior(x0, xt, t), logit_p), axis=1)

    def entropy_terms(self, x0):
        """Return ``H_q(XT | X0)``, ``H_q(X1 | X0 = x0)`` and ``H_p(XT)`` per example, in nats.

        ``H_q(XT | X0)`` and ``H_p(XT)`` are both ``D H(p)`` because ``alphabar_T = 0``;
        ``H_q(X1 | X0)`` depends on ``x0``.
        """
        ones = pt.ones((x0.shape[0],), dtype=pytensor.config.floatX)
        equilibrium = self.n_dims * float(-self.p * np.log(self.p) - (1 - self.p) * np.log1p(-self.p))
        first = pt.ones((x0.shape[0],), dtype="int32")
        H_1 = pt.sum(bernoulli_entropy(self.marginal_rate(x0, first)), axis=1)
        return ones * equilibrium, H_1, ones * equilibrium

    def first_step_term(self, x0):
        """Return ``E_q(x1 | x0)[log pi(x0) - log pi(x1)]`` per example, in nats.

        The fixed last step ``p(x0 | x1) = q(x1 | x0) pi(x0) / pi(x1)`` contributes this term
        to the bound; per bit it is ``(x0 - q(x1 = 1 | x0)) logit(p)``. The paper's Eq. 14
        leaves it out. It vanishes on average for data whose mean activity is ``p`` (for
        every heartbeat sequence it is exactly 0), and with it K is a lower bound on
        ``log p(x0)`` for every single ``x0``.
        """
        first = pt.ones((x0.shape[0],), dtype="int32")
        logit_pi = float(np.log(self.p) - np.log1p(-self.p))
        return pt.sum(x0 - self.marginal_rate(x0, first), axis=1) * logit_pi

    def L_null(self, x0):
        """Return ``log pi(x0)``, the log likelihood under ``Bernoulli(p)`` alone, in bits per example."""
        log_p, log_one_minus_p = float(np.log2(self.p)), float(np.log2(1 - self.p))
        return pt.sum(x0 * log_p + (1.0 - x0) * log_one_minus_p, axis=1)

    def bound_terms(self, kl_sum, x0):
        """Assemble K from the summed KL terms, as named parts in bits per example.

        Parameters
        ----------
        kl_sum : (batch,) tensor
            ``sum_{t=2..T} KL(q(x(t-1) | xt, x0) || p(x(t-1) | xt))`` per example in nats, or an
            unbiased estimate of it (one ``t`` per example, times ``T - 1``).
        x0 : (batch, D) tensor
            The data, which ``H_q(X1 | X0)``, the first-step term and ``L_null`` depend on.

        Returns
        -------
        dict
            ``kl_sum``, ``H_q_XT_given_X0``, ``H_q_X1_given_X0``, ``H_p_XT``,
            ``first_step_term``, ``L_null``, ``K`` and ``K_minus_L_null``, each a (batch,)
            tensor in bits, with ``K = -kl_sum + H_q(XT | X0) - H_q(X1 | X0) - H_p(XT) +
            first_step_term`` (paper Eq. 14 plus :meth:`first_step_term`).
        """
        H_T, H_1, H_p = self.entropy_terms(x0)
        terms = {
            "kl_sum": kl_sum / LN2,
            "H_q_XT_given_X0": H_T / LN2,
            "H_q_X1_given_X0": H_1 / LN2,
            "H_p_XT": H_p / LN2,
            "first_step_term": self.first_step_term(x0) / LN2,
            "L_null": self.L_null(x0),
        }
        terms["K"] = (
            -terms["kl_sum"] + terms["H_q_XT_given_X0"] - terms["H_q_X1_given_X0"]
            - terms["H_p_XT"] + terms["first_step_term"]
        )
        terms["K_minus_L_null"] = terms["K"] - terms["L_null"]
        return terms

    def entropy_bounds(self, t, x0):
        """Return the lower and upper bounds of Eq. 36 per bit, given ``X0 = x0``, in nats.

        Lower: ``H_q(Xt | X(t-1)) + H_q(X(t-1) | X0) - H_q(Xt | X0)``, which by the chain rule
        equals the posterior entropy ``H_q(X(t-1) | Xt, X0 = x0)``; upper:
        ``H_q(Xt | X(t-1))`` under ``q(x(t-1) | x0)``. Each is a (batch, D) tensor and ``t``
        has values in ``2..T``.

        Notes
        -----
        Lower lies below upper only while ``H_q(Xt | X0)`` grows with ``t``. Given
        ``x0 = 1`` and ``p < 0.5`` the marginal rate falls below 0.5 on its way to ``p`` and
        the order flips, so the bounds constrain the reverse kernel only on average over data
        whose entropy grows along the forward process.
        """
        beta = self._beta(t)
        previous = self.marginal_rate(x0, t - 1)
        entropy_from_one = bernoulli_entropy(1.0 - beta * (1.0 - self.p))
        entropy_from_zero = bernoulli_entropy(self.p * beta)
        upper = previous * entropy_from_one + (1.0 - previous) * entropy_from_zero
        lower = (upper + bernoulli_entropy(previous)
                 - bernoulli_entropy(self.marginal_rate(x0, t)))
        return lower, upper
