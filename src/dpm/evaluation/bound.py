"""K on held-out data with standard errors.

By default the KL sum is exact over ``t``: every example gets every ``t = 2..T``, each
with its own draw of ``xt``, so the only randomness left is that of ``xt`` and of the data.
With ``t_per_example = n`` each example gets only ``n`` steps, stratified over ``2..T``, and
their KL sum scaled by ``(T - 1) / n``, an unbiased estimate of the exact sum that costs
``n / (T - 1)`` as much. Either way the standard error is the standard deviation of the
per-example K over ``sqrt(N)``. The examples' estimates are independent, because each
draws its own steps and ``xt``, so that standard deviation already contains the variance of
the drawn steps.
"""

import logging
import operator

import numpy as np
import pytensor
import pytensor.tensor as pt
from tqdm.auto import tqdm

from dpm import backend
from dpm.diffusion.draws import draw_t
from dpm.diffusion.gaussian import LN2

logger = logging.getLogger(__name__)

#: The spawn key that :func:`_step_seed` appends, so that the generator of the drawn steps
#: differs from the one of the draws of ``xt``.
STEP_SEED_KEY = 0x5EED


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

    def kl_at_steps(self, x0, t, rng):
        """Return the KL, in bits, of each example of ``x0`` at each of its steps ``t`` (N, n).

        ``t`` (N, n) contains each example's steps. The steps are visited in the order
        ``2..T``, and each visit draws ``xt`` for every entry of ``t`` equal to that step,
        in row order, so a step that a row contains twice gets two independent draws. When
        every row is ``2..T`` in order, the draws of ``rng`` are thus those of
        :meth:`kl_per_step` on the same rows, and so is the result.

        NOTE: each call has as many rows as examples drew the step, a number that varies
        from step to step. The C and Numba backends take any batch size, but JAX compiles
        the function again for each new size.
        """
        T = self.model.trajectory_length
        floatX = pytensor.config.floatX
        x0 = np.asarray(x0, dtype=floatX)
        draw_noise = self.model.diffusion.draw_noise
        result = np.empty(t.shape)
        for step in range(2, T + 1):
            rows, columns = np.nonzero(t == step)
            if len(rows) == 0:
                continue
            batch = x0[rows]
            noise = draw_noise(rng, batch.shape)
            steps = np.full(len(rows), step, dtype=np.int32)
            result[rows, columns] = self.kl_function(batch, steps, noise) / LN2
        return result

    def evaluate(self, x0, seed, batch_size=4096, progress=True, t_per_example=None):
        """Return K and its parts on ``x0``, with the KL summed over ``t`` exactly or estimated.

        Parameters
        ----------
        x0 : ndarray (N, D)
        seed : int or numpy.random.SeedSequence
            Seeds the draws of ``xt`` and, apart from them, the drawn steps.
        batch_size : int
            Examples per chunk. Within a chunk, each compiled call evaluates one step.
        progress : bool
            Show a progress bar over the chunks.
        t_per_example : int, optional
            Sum the KL over this many steps per example, drawn stratified over ``2..T``
            (:func:`~dpm.diffusion.draws.draw_t`) and scaled by ``(T - 1) / t_per_example``,
            an unbiased estimate of the exact sum (see the module docstring). At most
            ``T - 1``, which visits every step once and gives the exact evaluation's numbers
            for the same ``seed`` and ``batch_size``. By default every step is evaluated.

        Returns
        -------
        dict
            ``K``, ``K_stderr``, ``K_minus_L_null``, ``K_minus_L_null_stderr``, ``L_null``,
            ``kl_sum``, the other named terms of the process's ``bound_terms``, all means in
            bits per data point, ``n_points``, ``t_per_example`` (``T - 1`` when exact),
            ``K_per_example`` (an array) and ``kl_per_step`` (mean KL of each
            ``t = 2..T`` in bits, a list). With ``t_per_example`` each mean of
            ``kl_per_step`` is over the draws of that step, and NaN where it was not drawn.
        """
        T = self.model.trajectory_length
        if t_per_example is not None:
            t_per_example = check_steps_per_example(t_per_example, T)
        rng = np.random.default_rng(seed)
        floatX = pytensor.config.floatX
        x0 = np.asarray(x0, dtype=floatX)
        chunks = tqdm(range(0, len(x0), batch_size), desc="evaluating K", unit="batch",
                      disable=not progress)
        if t_per_example is None:
            kl = np.concatenate([self.kl_per_step(x0[start:start + batch_size], rng, batch_size)
                                 for start in chunks])
            kl_sum = kl.sum(axis=1)
            mean_kl_per_step = kl.mean(axis=0)
            n_steps = T - 1
        else:
            n_steps = t_per_example
            t = draw_steps(_step_seed(seed), len(x0), n_steps, T)
            kl = np.concatenate([self.kl_at_steps(x0[start:start + batch_size],
                                                  t[start:start + batch_size], rng)
                                 for start in chunks])
            kl_sum = kl.sum(axis=1) * ((T - 1) / n_steps)
            mean_kl_per_step = _mean_per_step(kl, t, T)
        terms = {name: np.asarray(value, dtype=np.float64)
                 for name, value in zip(self.term_names, self.terms_function(x0))}
        K = terms["K"] - kl_sum
        if not np.all(np.isfinite(K)):
            raise FloatingPointError(f"K is not finite for {np.sum(~np.isfinite(K))} of {len(K)} points")
        K_minus_L_null = K - terms["L_null"]
        sqrt_n = np.sqrt(len(K))
        result = {
            "K": float(K.mean()),
            "K_stderr": float(K.std(ddof=1) / sqrt_n),
            "K_minus_L_null": float(K_minus_L_null.mean()),
            "K_minus_L_null_stderr": float(K_minus_L_null.std(ddof=1) / sqrt_n),
            "kl_sum": float(kl_sum.mean()),
            "n_points": int(len(K)),
            "t_per_example": int(n_steps),
            "K_per_example": K,
            "kl_per_step": mean_kl_per_step.tolist(),
        }
        for name, values in terms.items():
            if name != "K":
                result[name] = float(values.mean())
        logger.info("K = %.4f +- %.4f bits on %d points", result["K"], result["K_stderr"], len(K))
        return result


def draw_steps(seed, n_examples, n_steps, trajectory_length):
    """Draw ``n_steps`` steps per example, stratified over ``2..T``, int32 (N, n).

    Each row is one stratified draw of :func:`~dpm.diffusion.draws.draw_t`: ``2..T`` cut
    into ``n_steps`` equal slices of width ``(T - 1) / n_steps >= 1``, and one step drawn
    in each. Every step of ``2..T`` then appears ``n_steps / (T - 1)`` times per row on
    average, which makes the KL sum scaled by ``(T - 1) / n_steps`` unbiased. Unless
    ``n_steps`` divides ``T - 1``, neighbouring slices share a step and a row can contain
    it twice. Rows are sorted, so that with ``n_steps = T - 1`` every row is ``2..T`` in order.
    """
    rng = np.random.default_rng(seed)
    t = np.empty((n_examples, n_steps), dtype=np.int32)
    for row in range(n_examples):
        t[row] = np.sort(draw_t(rng, n_steps, trajectory_length, how="stratified"))
    return t


def check_steps_per_example(value, trajectory_length, name="t_per_example"):
    """Check that ``value`` is a number of steps per example, ``1..T - 1``, and return it.

    Raises
    ------
    ValueError
        Naming ``name``, the value and the valid range.
    """
    try:
        n_steps = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        n_steps = None
    if n_steps is None or not 1 <= n_steps <= trajectory_length - 1:
        raise ValueError(
            f"{name} must be an integer from 1 to T - 1 = {trajectory_length - 1}, got "
            f"{value!r}; leave it unset to sum over every step exactly"
        )
    return n_steps


def _step_seed(seed):
    """Return the seed of the drawn steps: a child of ``seed`` that leaves ``seed`` unchanged.

    ``SeedSequence.spawn`` would count the child in ``seed``, and a caller that evaluates
    again with the same ``seed`` would then draw other steps.
    """
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(sequence.entropy, spawn_key=(*sequence.spawn_key, STEP_SEED_KEY))


def _mean_per_step(kl, t, trajectory_length):
    """Return the mean of ``kl`` (N, n) per step ``2..T`` of ``t`` (N, n), NaN where not drawn."""
    index = t.ravel() - 2
    totals = np.bincount(index, weights=kl.ravel(), minlength=trajectory_length - 1)
    counts = np.bincount(index, minlength=trajectory_length - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals / counts
