"""Diffusion-rate schedules ``beta_1..T`` for Gaussian and binomial diffusion.

A schedule provides ``beta()``, a symbolic vector of length ``T`` whose entry ``t - 1`` is
``beta_t``. Fixed schedules are NumPy arrays checked when built; the learned schedule is a
brick whose parameters are trained by gradient ascent on the bound K with frozen noise
(Sohl-Dickstein et al. 2015, arXiv:1503.03585, Section 2.4.1).
"""

import numpy as np
import pytensor
import pytensor.tensor as pt

from dpm.bricks import Brick, Constant

#: Distance kept from 1 so that ``log(1 - beta)`` stays finite (the reference code's margin).
BETA_MARGIN = 1e-5
#: The reference code's floor on every ``beta_t``.
BETA_FLOOR = 1e-6
_SPAN = 1.0 - BETA_FLOOR - BETA_MARGIN
#: The reference code's ``step1_beta``: added to the floor for the first step.
STEP1_BETA = 1e-3


def reference_beta(trajectory_length, step1_beta=STEP1_BETA):
    """Return the reference code's fixed Gaussian schedule as a float64 array.

    ``beta_t = m_t + (1 / linspace(T, 2, T)_t) * (1 - m_t - 1e-5)`` with ``m_t = 1e-6`` plus
    ``step1_beta`` on the first step: about ``1/T`` at the start and ``1/2`` at the end.

    Notes
    -----
    The reference code builds this as ``sigmoid(c_t + logit(1 / linspace(...)))`` with
    ``c_t`` fixed at zero, which is the expression above.
    """
    T = _check_length(trajectory_length)
    floor = np.full(T, BETA_FLOOR)
    floor[0] += step1_beta
    base = 1.0 / np.linspace(T, 2, T)
    return check_beta(floor + base * (1.0 - floor - BETA_MARGIN))


def inverse_remaining_beta(trajectory_length):
    """Return ``beta_t = 1 / (T - t + 1)``, each step erasing a fraction ``1/T`` of the signal.

    Notes
    -----
    The exact schedule has ``beta_T = 1``; here ``beta_T`` is ``1 - 1e-5`` so that every
    ``beta_t`` lies strictly inside (0, 1) and ``log(1 - beta_t)`` is finite.
    """
    T = _check_length(trajectory_length)
    t = np.arange(1, T + 1)
    return check_beta(np.minimum(1.0 / (T - t + 1), 1.0 - BETA_MARGIN))


def binomial_beta(trajectory_length):
    """Return the exact binomial schedule ``beta_t = 1 / (T - t + 1)`` as a float64 array.

    Unlike :func:`inverse_remaining_beta`, ``beta_T`` is exactly 1: the binomial kernel
    ``Bernoulli(x (1 - beta_t) + p beta_t)`` needs no ``log(1 - beta_t)``, and ``beta_T = 1``
    makes ``q(xT | x0)`` equal the equilibrium ``Bernoulli(p)`` for any data.
    """
    T = _check_length(trajectory_length)
    t = np.arange(1, T + 1)
    return 1.0 / (T - t + 1)


def binomial_alphabar(trajectory_length):
    """Return ``alphabar_t = (T - t) / T`` for ``t = 0..T`` (length ``T + 1``) as float64.

    This is the closed form of ``prod_{s<=t} (1 - 1 / (T - s + 1))``, a telescoping product,
    so ``alphabar_0 = 1`` and ``alphabar_T = 0`` exactly.
    """
    T = _check_length(trajectory_length)
    return (T - np.arange(T + 1)) / T


def alphabar(beta):
    """Return ``alphabar_t = prod_{s<=t} (1 - beta_s)`` and ``1 - alphabar_t``, symbolically.

    Both come from ``cumsum(log1p(-beta))``; ``-expm1`` keeps ``1 - alphabar_t`` accurate in
    float32 when it is as small as ``beta_1``.
    """
    log_alphabar = pt.cumsum(pt.log1p(-beta))
    return pt.exp(log_alphabar), -pt.expm1(log_alphabar)


def check_beta(beta):
    """Return ``beta`` as float64 after checking ``0 < beta_t < 1`` for every ``t``."""
    beta = np.asarray(beta, dtype=np.float64)
    if beta.ndim != 1 or beta.size < 2:
        raise ValueError(f"beta must be a vector of length T >= 2, got shape {beta.shape}")
    bad = np.flatnonzero(~((beta > 0) & (beta < 1)))
    if bad.size:
        raise ValueError(
            f"every beta_t must lie in (0, 1); beta_{bad[0] + 1} = {beta[bad[0]]!r}"
        )
    return beta


def _check_length(trajectory_length):
    T = int(trajectory_length)
    if T != trajectory_length or T < 2:
        raise ValueError(f"trajectory_length must be an integer >= 2, got {trajectory_length!r}")
    return T


class FixedSchedule:
    """A schedule that is not trained.

    Parameters
    ----------
    beta : array_like, shape (T,)
        ``beta_1..T``, each in (0, 1).
    """

    def __init__(self, beta):
        self.beta_values = check_beta(beta)
        self.trajectory_length = self.beta_values.size
        self.parameters = []

    def beta(self):
        """Return ``beta_1..T`` as a symbolic constant in floatX."""
        return pt.as_tensor_variable(self.beta_values.astype(pytensor.config.floatX))

    def beta_numpy(self):
        """Return ``beta_1..T`` as a float64 array."""
        return self.beta_values.copy()


class LearnedSchedule(Brick):
    """A Gaussian schedule with ``beta_1`` fixed and ``beta_2..T`` learned.

    ``beta_t = m + (1 - m - 1e-5) sigmoid(a_t + c_t)`` for ``t >= 2``, with ``m = 1e-6``, ``a_t``
    chosen so that training starts from the fixed schedule ``beta0`` and ``c_t`` learned from
    zero (the reference code's form, whose ``c_t`` it never trains). Every ``beta_t`` stays
    in ``(1e-6, 1 - 1e-5)`` even when the sigmoid saturates in float32, so ``log(1 - beta_t)``
    stays finite. ``beta_1`` keeps ``beta0_1``: the paper fixes it to a small constant to
    prevent overfitting (Section 2.4.1).

    Parameters
    ----------
    initial_beta : array_like, shape (T,)
        The starting schedule ``beta0``; its first entry is ``beta_1`` for good.
    name : str
    """

    def __init__(self, initial_beta, name="schedule"):
        super().__init__(name=name)
        self.initial_beta = check_beta(initial_beta)
        self.trajectory_length = self.initial_beta.size
        self.offset = self.add_parameter(
            "beta_logit_offset", (self.trajectory_length - 1,), Constant(0.0)
        )

    def _initial_logit(self):
        fraction = (self.initial_beta[1:] - BETA_FLOOR) / _SPAN
        if np.any(fraction <= 0) or np.any(fraction >= 1):
            raise ValueError(
                f"initial beta_2..T must lie in ({BETA_FLOOR}, {1 - BETA_MARGIN}) to be learned"
            )
        return np.log(fraction) - np.log1p(-fraction)

    def beta(self):
        """Return ``beta_1..T`` as a symbolic vector; only ``beta_2..T`` depend on parameters."""
        floatX = pytensor.config.floatX
        pre = self._initial_logit().astype(floatX) + self.offset
        learned = np.asarray(BETA_FLOOR, floatX) + np.asarray(_SPAN, floatX) * pt.sigmoid(pre)
        first = pt.as_tensor_variable(self.initial_beta[:1].astype(floatX))
        return pt.concatenate([first, learned])

    def beta_numpy(self):
        """Return the current ``beta_1..T`` as a float64 array."""
        pre = self._initial_logit() + self.offset.get_value().astype(np.float64)
        learned = BETA_FLOOR + _SPAN * (1.0 / (1.0 + np.exp(-pre)))
        return np.concatenate([self.initial_beta[:1], learned])


def build_schedule(kind, trajectory_length, step1_beta=STEP1_BETA, beta_1=None):
    """Build a schedule by configuration name.

    Parameters
    ----------
    kind : {'learned', 'reference', 'inverse_remaining'}
        'learned' starts from the reference schedule and trains ``beta_2..T``.
    trajectory_length : int
    step1_beta : float
        Added to the floor of ``beta_1`` in the reference schedule.
    beta_1 : float, optional
        The fixed first rate of the learned schedule; by default the reference schedule's.
    """
    if kind == "learned":
        initial = reference_beta(trajectory_length, step1_beta)
        if beta_1 is not None:
            initial[0] = beta_1
        return LearnedSchedule(initial)
    if kind == "reference":
        return FixedSchedule(reference_beta(trajectory_length, step1_beta))
    if kind == "inverse_remaining":
        return FixedSchedule(inverse_remaining_beta(trajectory_length))
    raise ValueError(
        f"unknown schedule {kind!r}; choose 'learned', 'reference' or 'inverse_remaining'"
    )
