"""K on held-out data with standard errors.

For evaluation the KL sum is exact over ``t``: every example gets every ``t = 2..T``, each
with its own draw of ``xt``, so the only randomness left is that of ``xt`` and of the data.
The standard error is the standard deviation of the per-example K over ``sqrt(N)``.
"""

import logging

import numpy as np
import pytensor
import pytensor.tensor as pt
from tqdm.auto import tqdm

from dpm import backend
from dpm.diffusion.gaussian import LN2

logger = logging.getLogger(__name__)


class BoundEvaluator:
    """Compiled functions of a model's bound, built once and reused.

    Parameters
    ----------
    model : DiffusionModel
        Gaussian or binomial; its diffusion process's ``draw_noise`` draws the noise.
    """

    def __init__(self, model):
        self.model = model
        floatX = pytensor.config.floatX
        x0 = pt.matrix("x0", dtype=floatX)
        t = pt.ivector("t")
        noise = pt.matrix("noise", dtype=floatX)
        kl = model.kl_divergence(x0, t, noise)
        self.kl_function = backend.compile_function([x0, t, noise], kl)
        # Every term but the KL sum, per example: with kl_sum = 0, K is the sum of the rest.
        terms = model.diffusion.bound_terms(pt.zeros((x0.shape[0],), dtype=floatX), x0)
        self.term_names = [name for name in terms if name not in ("kl_sum", "K_minus_L_null")]
        self.terms_function = backend.compile_function(
            [x0], [terms[name] for name in self.term_names])

    def kl_per_step(self, x0, rng, batch_size=4096):
        """Return the KL of every step ``t = 2..T`` for every example, in bits, shape (N, T - 1)."""
        T = self.model.trajectory_length
        floatX = pytensor.config.floatX
        x0 = np.asarray(x0, dtype=floatX)
        draw_noise = self.model.diffusion.draw_noise
        result = np.empty((len(x0), T - 1))
        for start in range(0, len(x0), batch_size):
            batch = x0[start:start + batch_size]
            for step in range(2, T + 1):
                t = np.full(len(batch), step, dtype=np.int32)
                noise = draw_noise(rng, batch.shape)
                result[start:start + len(batch), step - 2] = self.kl_function(batch, t, noise) / LN2
        return result

    def evaluate(self, x0, seed, batch_size=4096, progress=True):
        """Return K and its parts on ``x0`` with the KL summed exactly over ``t``.

        Returns
        -------
        dict
            ``K``, ``K_stderr``, ``K_minus_L_null``, ``K_minus_L_null_stderr``, ``L_null``,
            ``kl_sum``, the other named terms of the process's ``bound_terms``, all means in
            bits per data point, ``n_points``, ``K_per_example`` (an array) and
            ``kl_per_step`` (mean KL of each ``t = 2..T`` in bits, a list).
        """
        rng = np.random.default_rng(seed)
        floatX = pytensor.config.floatX
        x0 = np.asarray(x0, dtype=floatX)
        chunks = range(0, len(x0), batch_size)
        kl = np.concatenate([
            self.kl_per_step(x0[start:start + batch_size], rng, batch_size)
            for start in tqdm(chunks, desc="evaluating K", unit="batch", disable=not progress)
        ])
        terms = {name: np.asarray(value, dtype=np.float64)
                 for name, value in zip(self.term_names, self.terms_function(x0))}
        K = terms["K"] - kl.sum(axis=1)
        if not np.all(np.isfinite(K)):
            raise FloatingPointError(f"K is not finite for {np.sum(~np.isfinite(K))} of {len(K)} points")
        K_minus_L_null = K - terms["L_null"]
        sqrt_n = np.sqrt(len(K))
        result = {
            "K": float(K.mean()),
            "K_stderr": float(K.std(ddof=1) / sqrt_n),
            "K_minus_L_null": float(K_minus_L_null.mean()),
            "K_minus_L_null_stderr": float(K_minus_L_null.std(ddof=1) / sqrt_n),
            "kl_sum": float(kl.sum(axis=1).mean()),
            "n_points": int(len(K)),
            "K_per_example": K,
            "kl_per_step": kl.mean(axis=0).tolist(),
        }
        for name, values in terms.items():
            if name != "K":
                result[name] = float(values.mean())
        logger.info("K = %.4f +- %.4f bits on %d points", result["K"], result["K_stderr"], len(K))
        return result
