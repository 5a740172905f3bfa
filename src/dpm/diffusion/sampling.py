"""Sampling the reverse trajectory of a Gaussian or binomial diffusion model, plain or given ``r``."""

import numbers

import numpy as np
import pytensor
import pytensor.tensor as pt
from tqdm.auto import tqdm

from dpm import backend
from dpm.diffusion.binomial import perturbed_logit
from dpm.diffusion.posterior import (
    GaussianObservation,
    Inpainting,
    Perturbation,
    SmoothLogR,
    broadcast_batch,
    check_mask,
    compile_log_r_gradient,
)


class ReverseSampler:
    """Draw samples from ``p(x(0..T))``, starting at ``pi = N(0, I)``, or from a posterior ``p(x0) r(x0)``.

    Steps ``T..2`` use the network's reverse kernel; the last step uses the fixed
    ``p(x0 | x1) = N(sqrt(1 - beta_1) x1, beta_1 I)``. A second distribution ``r`` (see
    :mod:`dpm.diffusion.posterior`) is multiplied into the start and into every step.
    :meth:`inpaint`, :meth:`denoise` and :meth:`perturb_with_log_r` build the usual ones.

    Parameters
    ----------
    model : GaussianDiffusionModel
    example_shape : tuple of int, optional
        Shape of one example, ``(model.n_dims,)`` by default and ``(C, H, W)`` for an
        image model. The compiled reverse kernel takes states of shape ``(batch,) + example_shape``.
    """

    def __init__(self, model, example_shape=None):
        self.model = model
        if example_shape is None:
            example_shape = (model.n_dims,)
        self.example_shape = tuple(int(n) for n in example_shape)
        self.floatX = pytensor.config.floatX
        xt = pt.tensor("xt", dtype=self.floatX, shape=(None,) * (1 + len(self.example_shape)))
        t = pt.ivector("t")
        mean, log_var = model.reverse(xt, t)
        self.reverse_function = backend.compile_function([xt, t], [mean, log_var])
        self.beta_1 = float(model.schedule.beta_numpy()[0])

    def sample(self, n_samples, seed, snapshot_steps=(), progress=True, x_T=None, perturbation=None):
        """Run the reverse trajectory.

        Parameters
        ----------
        n_samples : int
        seed : int
            Seeds the NumPy generator of every draw. The draws are the same with and without a
            perturbation: one standard normal array of the state's shape per step, and one
            for the start unless ``x_T`` is given.
        snapshot_steps : iterable of int
            Steps ``t`` in ``0..T`` whose states ``xt`` are returned as well (``T`` is the
            start, 0 the end).
        x_T : array, optional
            The start, shape ``(n_samples,) + example_shape``, drawn from ``pi`` times ``r``
            when omitted.
        perturbation : Perturbation, optional
            The second distribution ``r``, a constant one (plain sampling) when omitted.

        Returns
        -------
        x0 : ndarray (n_samples,) + example_shape, floatX
        snapshots : dict int -> ndarray
        """
        floatX = self.floatX
        T = self.model.trajectory_length
        shape = (int(n_samples),) + self.example_shape
        requested_steps = _check_steps(snapshot_steps, T)
        perturbation = Perturbation() if perturbation is None else perturbation
        perturbation.check_shape(shape)
        rng = np.random.default_rng(seed)

        if x_T is None:
            mean, std = perturbation.multiply(np.zeros(shape), np.ones(shape))
            x = mean + std * rng.standard_normal(shape)
        else:
            x = np.asarray(x_T, dtype=np.float64)
            if x.shape != shape:
                raise ValueError(f"x_T has shape {x.shape}, expected {shape}")
        x = perturbation.clamp(x.astype(floatX))
        snapshots = {T: x.copy()} if T in requested_steps else {}

        for step in tqdm(range(T, 1, -1), desc="sampling", unit="step", disable=not progress):
            mean, log_var = self.reverse_function(x, np.full(shape[0], step, dtype=np.int32))
            x = self._draw(perturbation, mean, np.exp(0.5 * log_var), rng)
            if step - 1 in requested_steps:
                snapshots[step - 1] = x.copy()

        last_std = np.full(shape, np.sqrt(self.beta_1))
        x = self._draw(perturbation, np.sqrt(1 - self.beta_1) * x, last_std, rng)
        if 0 in requested_steps:
            snapshots[0] = x.copy()
        return x, snapshots

    def _draw(self, perturbation, mean, std, rng):
        """Draw one state from the kernel ``N(mean, std**2)`` multiplied by ``r``."""
        mean, std = perturbation.multiply(mean, std)
        x = (mean + std * rng.standard_normal(mean.shape)).astype(self.floatX)
        return perturbation.clamp(x)

    def inpaint(self, x_known, mask, seed, n_samples=None, snapshot_steps=(), progress=True):
        """Sample the missing entries given the known ones: ``r`` a delta at the known entries.

        The known entries (``mask == 1``) equal ``x_known`` cast to floatX in every state,
        the start and the output included. They contain the clean data at every step, as in
        the inpainting of Sohl-Dickstein et al. 2015 (their Figure 5), not a forward-diffused
        sample of it. The missing entries start from ``N(0, 1)`` and follow the reverse
        kernel, whose network takes the known entries as input.

        Parameters
        ----------
        x_known : array (batch,) + example_shape
            The data. Entries outside ``mask`` are ignored. With ``n_samples`` given, any
            shape that broadcasts to ``(n_samples,) + example_shape``.
        mask : array of bool or 0/1, the shape of ``x_known``
        seed : int
        n_samples : int, optional
            Defaults to ``len(x_known)``.

        Returns
        -------
        x0, snapshots
            As :meth:`sample` returns them.
        """
        x_known = broadcast_batch("x_known", x_known, n_samples, self.example_shape)
        mask = broadcast_batch("mask", mask, n_samples, self.example_shape)
        perturbation = Inpainting(x_known, mask, self.floatX)
        return self.sample(len(x_known), seed, snapshot_steps, progress, perturbation=perturbation)

    def denoise(self, y, noise_variance, seed, n_samples=None, snapshot_steps=(), progress=True):
        """Sample clean data given a noisy observation ``y = x + noise``, noise ``N(0, noise_variance)``.

        Every kernel, the start included, is multiplied by ``r(x) = N(y; x, noise_variance)``
        in closed form (see :class:`~dpm.diffusion.posterior.GaussianObservation`). With
        ``noise_variance = inf`` the result equals :meth:`sample` with the same seed.

        NOTE: the product of every kernel with ``r`` is the approximation of Sohl-Dickstein
        et al. 2015 and does not sample ``p(x0 | y)`` exactly. :mod:`dpm.diffusion.posterior`
        states the size of the gap for data at equilibrium.

        Parameters
        ----------
        y : array (batch,) + example_shape
            With ``n_samples`` given, any shape that broadcasts to
            ``(n_samples,) + example_shape``.
        noise_variance : float or array broadcastable to ``y``
            In the units of the data, positive, ``inf`` for unobserved entries.
            Sohl-Dickstein et al. 2015 denoise CIFAR-10 with variance 1 on data scaled to
            unit variance (their Figure 3).
        seed : int
        n_samples : int, optional
            Defaults to ``len(y)``.

        Returns
        -------
        x0, snapshots
            As :meth:`sample` returns them.
        """
        y = broadcast_batch("y", y, n_samples, self.example_shape)
        perturbation = GaussianObservation(y, noise_variance)
        return self.sample(len(y), seed, snapshot_steps, progress, perturbation=perturbation)

    def perturb_with_log_r(self, log_r):
        """Build the first-order perturbation of a smooth ``r`` for :meth:`sample`.

        The mean of every kernel moves by ``Sigma d log r / dx`` at ``x = mean``
        (Sohl-Dickstein et al. 2015, Eq. 61).

        Parameters
        ----------
        log_r : callable
            Maps a symbolic floatX tensor ``x`` of shape ``(batch,) + example_shape`` to
            ``log r(x)``, one value per example. See
            :func:`~dpm.diffusion.posterior.compile_log_r_gradient`.

        Returns
        -------
        SmoothLogR
            Pass it as ``perturbation`` to :meth:`sample`. Its gradient is compiled once here.
        """
        gradient_function = compile_log_r_gradient(log_r, 1 + len(self.example_shape))
        return SmoothLogR(gradient_function, self.floatX)

    def drift(self, xt, step):
        """Return ``f_mu(xt, t) - xt`` at one step ``t`` in ``2..T``."""
        xt = np.asarray(xt, dtype=self.floatX)
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

    def inpaint(self, x_known, mask, seed, n_samples=None, progress=True):
        """Sample the missing bits given the known ones.

        ``r`` is a delta at each known bit (``d = r(x_i = 1)`` is 0 or 1) and constant over
        the missing bits (``d = 0.5``). An infinite logit makes each known bit's rate exactly
        0 or 1, so every state, the start and the output included, contains the known bits.

        Parameters
        ----------
        x_known : array (batch, D)
            0s and 1s at the known bits. Other entries are ignored. With ``n_samples``
            given, any shape that broadcasts to (n_samples, D).
        mask : array of bool or 0/1, the shape of ``x_known``
            True where a bit is known.
        seed : int
        n_samples : int, optional
            Defaults to ``len(x_known)``.

        Returns
        -------
        x0, x_T
            As :meth:`sample` returns them.
        """
        example_shape = (self.model.n_dims,)
        x_known = broadcast_batch("x_known", x_known, n_samples, example_shape)
        mask = check_mask(broadcast_batch("mask", mask, n_samples, example_shape), x_known.shape)
        known = x_known[mask]
        if not np.all((known == 0) | (known == 1)):
            raise ValueError("invalid x_known: every known bit (mask == 1) must be 0 or 1")
        r_one = np.where(mask, x_known, 0.5)
        return self.sample(len(x_known), seed, r_one=r_one, progress=progress)


def _check_steps(steps, trajectory_length):
    """Return the snapshot steps as a set after checking that each is an integer in ``0..T``."""
    steps = set(steps)
    for step in steps:
        if not isinstance(step, numbers.Integral) or not 0 <= step <= trajectory_length:
            raise ValueError(
                f"invalid snapshot step {step!r}: steps must be integers from 0 (the end) to "
                f"T = {trajectory_length} (the start)"
            )
    return steps


def _logit(rate):
    return float(np.log(rate) - np.log1p(-rate))
