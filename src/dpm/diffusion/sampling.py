"""Sampling the reverse trajectory of a Gaussian diffusion model."""

import numpy as np
import pytensor
import pytensor.tensor as pt
from tqdm.auto import tqdm

from dpm import backend


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
        wanted = set(snapshot_steps)
        snapshots = {T: x.copy()} if T in wanted else {}
        for step in tqdm(range(T, 1, -1), desc="sampling", unit="step", disable=not progress):
            mean, log_var = self.reverse_function(x, np.full(n_samples, step, dtype=np.int32))
            x = (mean + np.exp(0.5 * log_var) * rng.standard_normal(x.shape)).astype(floatX)
            if step - 1 in wanted:
                snapshots[step - 1] = x.copy()
        x = (np.sqrt(1 - self.beta_1) * x + np.sqrt(self.beta_1) * rng.standard_normal(x.shape)).astype(floatX)
        if 0 in wanted:
            snapshots[0] = x.copy()
        return x, snapshots

    def drift(self, xt, step):
        """Return ``f_mu(xt, t) - xt`` at one step ``t`` in ``2..T``."""
        floatX = pytensor.config.floatX
        xt = np.asarray(xt, dtype=floatX)
        mean, _ = self.reverse_function(xt, np.full(len(xt), step, dtype=np.int32))
        return mean - xt
