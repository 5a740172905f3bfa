"""The highest K that any factorized Bernoulli reverse kernel can reach, for data with finite support.

The binomial reverse kernel ``p(x(t-1) | xt)`` is a product of one Bernoulli per bit. For a
fixed ``t`` and ``xt``, the K-maximizing choice of those rates is the posterior mean
``E_q[x(t-1) | xt]``: K's KL term is ``E_q(x0 | xt) KL(q(x(t-1) | xt, x0) || p)``, and a
product of Bernoullis minimizes the expected KL by matching each bit's mean. When the data
distribution is known and has few distinct points (the heartbeat data have 5), that mean is
a finite sum over the support, so the best K of the whole model class follows without any
training. It splits a trained model's gap to the true log likelihood into the network's
part and the factorized kernel's part.

Everything is NumPy in float64 and independent of the symbolic graph in
:mod:`dpm.diffusion.binomial`, so it also serves as a cross-check of that code.
"""

import itertools
import math

import numpy as np

from dpm.diffusion.schedules import binomial_alphabar, binomial_beta

#: Largest number of bits for which every ``xt`` is enumerated. Longer data use Monte Carlo.
MAX_ENUMERATED_BITS = 12


def _entropy_bits(rate):
    """Return the entropy of ``Bernoulli(rate)`` in bits, elementwise, exact at 0 and 1."""
    rate = np.asarray(rate, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(rate > 0, -rate * np.log2(rate), 0.0)
        terms += np.where(rate < 1, -(1 - rate) * np.log2(1 - rate), 0.0)
    return terms


def _kl_nats(q, m):
    """Return ``KL(Bernoulli(q) || Bernoulli(m))`` summed over the last axis, in nats; ``0 < m < 1``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ones = np.where(q > 0, q * (np.log(q) - np.log(m)), 0.0)
        zeros = np.where(q < 1, (1 - q) * (np.log1p(-q) - np.log1p(-m)), 0.0)
    return np.sum(ones + zeros, axis=-1)


class FactorizedOptimum:
    """Best factorized reverse kernel of binomial diffusion for a known discrete data distribution.

    Parameters
    ----------
    trajectory_length : int
        T; the schedule is ``beta_t = 1 / (T - t + 1)``, as in
        :class:`~dpm.diffusion.BinomialDiffusion`.
    p : float
        Equilibrium rate in (0, 1).
    support : array (S, D) of 0/1
        The distinct data points.
    weights : array (S,), optional
        Their probabilities; uniform by default.
    """

    def __init__(self, trajectory_length, p, support, weights=None):
        self.beta = binomial_beta(trajectory_length)
        self.alphabar = binomial_alphabar(trajectory_length)
        self.T = self.beta.size
        self.p = float(p)
        if not 0.0 < self.p < 1.0:
            raise ValueError(f"the equilibrium rate p must lie in (0, 1), got {p!r}")
        self.support = np.asarray(support, dtype=np.float64)
        if self.support.ndim != 2 or not np.all((self.support == 0) | (self.support == 1)):
            raise ValueError("support must be a (S, D) array of zeros and ones")
        n_points = len(self.support)
        self.weights = (np.full(n_points, 1.0 / n_points) if weights is None
                        else np.asarray(weights, dtype=np.float64))
        if self.weights.shape != (n_points,) or np.any(self.weights < 0) \
                or not math.isclose(self.weights.sum(), 1.0, rel_tol=1e-9):
            raise ValueError(f"weights must be {n_points} non-negative numbers summing to 1")

    def _marginal(self, step):
        """Return ``q(x_step = 1 | x0)`` for every support point, shape (S, D)."""
        alphabar = self.alphabar[step]
        return self.support * alphabar + self.p * (1 - alphabar)

    def posterior(self, xt, step):
        """Return ``q(x(t-1) = 1 | xt, x0)`` for every ``xt`` row and support point, shape (N, S, D)."""
        beta = self.beta[step - 1]
        xt = xt[:, None, :]
        likelihood_one = np.where(xt == 1, 1 - beta * (1 - self.p), beta * (1 - self.p))
        likelihood_zero = np.where(xt == 1, self.p * beta, 1 - self.p * beta)
        prior = self._marginal(step - 1)[None]
        joint_one = likelihood_one * prior
        return joint_one / (joint_one + likelihood_zero * (1 - prior))

    def support_posterior(self, xt, step):
        """Return ``q(x0 | xt)`` over the support points, shape (N, S)."""
        rate = self._marginal(step)[None]
        xt = xt[:, None, :]
        with np.errstate(divide="ignore"):
            log_likelihood = np.sum(np.where(xt == 1, np.log(rate), np.log1p(-rate)), axis=2)
        log_joint = log_likelihood + np.log(self.weights)[None]
        log_joint -= log_joint.max(axis=1, keepdims=True)
        joint = np.exp(log_joint)
        return joint / joint.sum(axis=1, keepdims=True)

    def rates(self, xt, step):
        """Return the best factorized reverse rates ``E_q[x(t-1) | xt]``, shape (N, D), for ``step`` in 2..T."""
        xt = np.asarray(xt, dtype=np.float64)
        return np.einsum("ns,nsd->nd", self.support_posterior(xt, step), self.posterior(xt, step))

    def _kl_given_support(self, xt, step):
        """Return ``KL(q(x(t-1) | xt, x0) || best kernel)`` for each ``xt`` row and support point, in nats."""
        best = np.clip(self.rates(xt, step), 1e-300, 1 - 1e-16)[:, None, :]
        return _kl_nats(self.posterior(xt, step), best)

    def _fixed_terms(self):
        """Return every term of K but the KL sum, per support point, in bits."""
        D = self.support.shape[1]
        equilibrium = D * float(_entropy_bits(self.p))
        first = self._marginal(1)
        H_1 = np.sum(_entropy_bits(first), axis=1)
        first_step = np.sum(self.support - first, axis=1) * math.log2(self.p / (1 - self.p))
        # H_q(XT | X0) and H_p(XT) are both the equilibrium entropy: alphabar_T = 0.
        return equilibrium - H_1 - equilibrium + first_step

    def bound(self, n_per_step=2000, seed=0, exact=None):
        """Return the best K, averaged over the data distribution, in bits per data point.

        With ``exact`` true every ``xt`` is enumerated and the result is exact. Otherwise
        each step's KL term is a Monte Carlo average over ``n_per_step`` draws of
        ``(x0, xt)``, and ``K_stderr`` is its standard error. By default data of at most
        :data:`MAX_ENUMERATED_BITS` bits are enumerated.

        Returns
        -------
        dict
            ``K``, ``K_stderr``, ``kl_per_step`` (bits, index ``t - 2`` for ``t = 2..T``) and
            ``exact``.
        """
        D = self.support.shape[1]
        if exact is None:
            exact = D <= MAX_ENUMERATED_BITS
        rng = np.random.default_rng(seed)
        if exact:
            states = np.array(list(itertools.product((0.0, 1.0), repeat=D)))
        kl_per_step = np.zeros(self.T - 1)
        variance = 0.0
        for step in range(2, self.T + 1):
            if exact:
                rate = self._marginal(step)
                # q(xt | x0) for every state and support point, shape (2^D, S).
                probability = np.prod(np.where(states[:, None, :] == 1, rate[None], 1 - rate[None]),
                                      axis=2)
                kl = self._kl_given_support(states, step)
                kl_per_step[step - 2] = np.sum(probability * kl * self.weights[None])
                continue
            index = rng.choice(len(self.support), size=n_per_step, p=self.weights)
            xt = (rng.random((n_per_step, D)) < self._marginal(step)[index]).astype(np.float64)
            kl = self._kl_given_support(xt, step)[np.arange(n_per_step), index]
            kl_per_step[step - 2] = kl.mean()
            variance += kl.var(ddof=1) / n_per_step
        kl_per_step /= math.log(2)
        K = float(np.dot(self.weights, self._fixed_terms()) - kl_per_step.sum())
        return {"K": K, "K_stderr": math.sqrt(variance) / math.log(2),
                "kl_per_step": kl_per_step, "exact": exact}
