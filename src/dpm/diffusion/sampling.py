"""Sampling the reverse trajectory of a Gaussian or binomial diffusion model."""

import numpy as np
import pytensor
import pytensor.tensor as pt
from tqdm.auto import tqdm

from dpm import backend
from dpm.diffusion.binomial import perturbed_logit


class ReverseSampler:
    """Draw samples from ``p(x(0..T))``, starting at ``pi = N(0, I)``.

    Steps ``T..2`` use the network's reverse kernel; the last step uses the fixed
    ``p(x0 | x1) = N(sqrt(1 - beta_1) x1, beta_1 I)``.

    Parameters
    ----------
    model : GaussianDiffusionModel
    """

    def __init__(self, model):
        self.model = model
        floatX = pytensor.config.floatX
        xt = pt.matrix("xt", dtype=floatX)
        t = pt.ivector("t")
        mean, log_var = model.reverse(xt, t)
        self.reverse_function = backend.compile_function([xt, t], [mean, log_var])
        self.beta_1 = float(model.schedule.beta_numpy()[0])

    def sample(self, n_samples, seed, snapshot_steps=(), progress=True, x_T=None):
        """Run the reverse trajectory.

        Parameters
        ----------
        n_samples : int
        seed : int
        snapshot_steps : iterable of int
            Steps ``t`` whose states ``xt`` are returned as well (``T`` is the start, 0 the end).
        x_T : array, optional
            The starting points; drawn from ``N(0, I)`` when omitted.

        Returns
        -------
        x0 : ndarray (n_samples, D)
        snapshots : dict int -> ndarray
        """
        floatX = pytensor.config.floatX
        T, D = self.model.trajectory_length, self.model.n_dims
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n_samples, D)) if x_T is None else np.array(x_T, dtype=np.float64)
        x = x.astype(floatX)
        requested_steps = set(snapshot_steps)
        snapshots = {T: x.copy()} if T in requested_steps else {}
        for step in tqdm(range(T, 1, -1), desc="sampling", unit="step", disable=not progress):
            mean, log_var = self.reverse_function(x, np.full(n_samples, step, dtype=np.int32))
            x = (mean + np.exp(0.5 * log_var) * rng.standard_normal(x.shape)).astype(floatX)
            if step - 1 in requested_steps:
                snapshots[step - 1] = x.copy()
        x = (np.sqrt(1 - self.beta_1) * x + np.sqrt(self.beta_1) * rng.standard_normal(x.shape)).astype(floatX)
        if 0 in requested_steps:
            snapshots[0] = x.copy()
        return x, snapshots

    def drift(self, xt, step):
        """Return ``f_mu(xt, t) - xt`` at one step ``t`` in ``2..T``."""
        floatX = pytensor.config.floatX
        xt = np.asarray(xt, dtype=floatX)
        mean, _ = self.reverse_function(xt, np.full(len(xt), step, dtype=np.int32))
        return mean - xt


class BinomialReverseSampler:
    """Draw samples from ``p(x(0..T))`` of a binomial diffusion model, starting at ``pi = Bernoulli(p)``.

    Steps ``T..2`` use the network's reverse kernel; the last step uses the fixed
    ``p(x0 | x1) = Bernoulli(x1 (1 - beta_1) + p beta_1)``. A second distribution ``r`` over
    bits, given as ``r_one = r(x_i = 1)``, can be multiplied into every step, the start
    included, as ``r(xt) = r(x0)`` is constant along the trajectory (paper Eq. 23): each
    kernel's rate ``c`` becomes ``c d / (c d + (1 - c)(1 - d))`` with ``d = r_one``, which
    draws from the posterior ``p(x0) r(x0)`` approximately.

    Parameters
    ----------
    model : BinomialDiffusionModel
    """

    def __init__(self, model):
        self.model = model
        diffusion = model.diffusion
        floatX = pytensor.config.floatX
        xt = pt.matrix("xt", dtype=floatX)
        t = pt.ivector("t")
        r_one = pt.matrix("r_one", dtype=floatX)
        reverse_rate = pt.sigmoid(perturbed_logit(model.reverse(xt, t), r_one))
        last_rate = pt.sigmoid(perturbed_logit(diffusion.last_step(xt), r_one))
        self.reverse_function = backend.compile_function([xt, t, r_one], reverse_rate)
        self.last_function = backend.compile_function([xt, r_one], last_rate)
        self.prior_function = backend.compile_function(
            [r_one], pt.sigmoid(perturbed_logit(pt.zeros_like(r_one) + _logit(diffusion.p), r_one)))

    def sample(self, n_samples, seed, r_one=None, progress=True):
        """Run the reverse trajectory.

        Parameters
        ----------
        n_samples : int
        seed : int
        r_one : array_like, optional
            ``r(x_i = 1)`` in [0, 1], shape (D,) or (n_samples, D); 0 or 1 fixes a bit, 0.5
            leaves it free. Omitted: plain samples of the model.

        Returns
        -------
        x0 : ndarray (n_samples, D)
            The samples, floatX 0s and 1s.
        x_T : ndarray (n_samples, D)
            The binomial noise each sample started from.
        """
        floatX = pytensor.config.floatX
        T, D = self.model.trajectory_length, self.model.n_dims
        if r_one is None:
            r_one = np.full((n_samples, D), 0.5)
        r_one = np.broadcast_to(np.asarray(r_one, dtype=floatX), (n_samples, D)).copy()
        if np.any((r_one < 0) | (r_one > 1)) or not np.all(np.isfinite(r_one)):
            raise ValueError(
                "invalid r_one: every entry must lie in [0, 1], because it is r(x_i = 1) for each bit")
        rng = np.random.default_rng(seed)

        def draw(rate):
            return (rng.random(rate.shape) < rate).astype(floatX)

        x = draw(self.prior_function(r_one))
        x_T = x.copy()
        for step in tqdm(range(T, 1, -1), desc="sampling", unit="step", disable=not progress):
            x = draw(self.reverse_function(x, np.full(n_samples, step, dtype=np.int32), r_one))
        x = draw(self.last_function(x, r_one))
        return x, x_T


def _logit(rate):
    return float(np.log(rate) - np.log1p(-rate))
