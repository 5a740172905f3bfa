"""Binomial diffusion: schedule, posterior, KL, the bound K by enumeration, sampling."""

import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import special

from dpm import backend
from dpm.bricks import Constant
from dpm.diffusion import (
    BinomialDiffusion,
    DiffusionInputs,
    bernoulli_kl,
    binomial_alphabar,
    binomial_beta,
    perturbed_logit,
)
from dpm.diffusion.sampling import BinomialReverseSampler
from dpm.evaluation import BoundEvaluator
from dpm.evaluation.factorized_optimum import FactorizedOptimum
from dpm.models import BinomialDiffusionModel


@pytest.fixture
def float64():
    with pytensor.config.change_flags(floatX="float64"):
        yield


def kernel_matrix(beta, p):
    """Return the forward kernel as a 2x2 matrix ``M[previous, next]`` for one bit."""
    return np.array([[1 - p * beta, p * beta],
                     [beta * (1 - p), 1 - beta * (1 - p)]])


def marginals(T, p, x0):
    """Return ``q(xt = 1 | x0)`` for t = 0..T by applying the kernel step by step."""
    state = np.array([1.0 - x0, float(x0)])
    rates = [state[1]]
    for beta in binomial_beta(T):
        state = state @ kernel_matrix(beta, p)
        rates.append(state[1])
    return np.array(rates)


# Schedule and forward process ------------------------------------------------------------

def test_schedule_ends_at_one():
    T = 7
    beta = binomial_beta(T)
    np.testing.assert_allclose(beta, 1.0 / (T - np.arange(1, T + 1) + 1), rtol=0, atol=0)
    assert beta[-1] == 1.0
    np.testing.assert_allclose(binomial_alphabar(T)[1:], np.cumprod(1 - beta), atol=1e-15)
    assert binomial_alphabar(T)[0] == 1.0
    assert binomial_alphabar(T)[-1] == 0.0


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_marginal_at_T_is_equilibrium(float64, p):
    T = 9
    diffusion = BinomialDiffusion(T, n_dims=4, p=p)
    x0 = pt.dmatrix("x0")
    t = pt.ivector("t")
    function = backend.compile_function([x0, t], diffusion.marginal_rate(x0, t))
    data = np.array([[0, 1, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=float)
    steps = np.full(3, T, dtype=np.int32)
    np.testing.assert_array_equal(function(data, steps), np.full((3, 4), p))
    for step in range(T + 1):
        for bit in (0, 1):
            value = function(np.full((1, 1), bit, float), np.array([step], np.int32))[0, 0]
            assert value == pytest.approx(marginals(T, p, bit)[step], abs=1e-14)

    kernel = backend.compile_function([x0, t], diffusion.forward_rate(x0, t))
    for step in range(1, T + 1):
        rates = kernel(np.array([[0.0], [1.0]]), np.full(2, step, np.int32))[:, 0]
        np.testing.assert_allclose(rates, kernel_matrix(binomial_beta(T)[step - 1], p)[:, 1],
                                   rtol=0, atol=1e-15)


def test_forward_sample_frequency_matches_marginal():
    T = 10
    diffusion = BinomialDiffusion(T, n_dims=2, p=0.2)
    x0 = pt.matrix("x0")
    t = pt.ivector("t")
    noise = pt.matrix("noise")
    function = backend.compile_function([x0, t, noise], diffusion.forward_sample(x0, t, noise))
    rng = np.random.default_rng(0)
    n = 200_000
    data = np.tile(np.array([[0.0, 1.0]], "float32"), (n, 1))
    for step in (1, 5, T):
        xt = function(data, np.full(n, step, np.int32), diffusion.draw_noise(rng, data.shape))
        assert set(np.unique(xt)) <= {0.0, 1.0}
        for bit in (0, 1):
            expected = marginals(T, 0.2, bit)[step]
            assert abs(xt[:, bit].mean() - expected) < 5 * np.sqrt(expected * (1 - expected) / n)


# Posterior and KL ------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.2, 0.5])
def test_posterior_matches_enumeration(float64, p):
    T = 6
    diffusion = BinomialDiffusion(T, n_dims=1, p=p)
    x0, xt = pt.dmatrices("x0", "xt")
    t = pt.ivector("t")
    posterior = backend.compile_function([x0, xt, t], diffusion.posterior(x0, xt, t))
    beta = binomial_beta(T)
    for step, bit0, bitt in itertools.product(range(2, T + 1), (0, 1), (0, 1)):
        prior = marginals(T, p, bit0)[step - 1]
        kernel = kernel_matrix(beta[step - 1], p)
        joint = np.array([(1 - prior) * kernel[0, bitt], prior * kernel[1, bitt]])
        expected = joint[1] / joint.sum()
        value = posterior([[bit0]], [[bitt]], np.array([step], np.int32))[0, 0]
        assert value == pytest.approx(expected, rel=1e-12, abs=1e-15), (step, bit0, bitt)


def reference_kl(q, logit_p):
    """Return the Bernoulli KL in float64 from SciPy's ``xlogy`` and ``log_expit``."""
    return (special.xlogy(q, q) + special.xlogy(1 - q, 1 - q)
            - q * special.log_expit(logit_p) - (1 - q) * special.log_expit(-logit_p))


KL_CASES = [
    (0.0, -3.0), (0.0, 0.0), (0.0, 40.0), (0.0, special.logit(1e-7)),
    (1.0, 3.0), (1.0, 0.0), (1.0, -40.0), (1.0, special.logit(1 - 1e-7)),
    (1e-7, 0.0), (1e-7, special.logit(1e-7)), (1 - 1e-7, 2.0), (0.3, -1.0),
]


def test_bernoulli_kl_exact_at_edges(float64):
    q, logit_p = pt.dscalars("q", "logit_p")
    kl = bernoulli_kl(q, logit_p)
    function = backend.compile_function([q, logit_p], [kl, *pytensor.grad(kl, [q, logit_p])])
    for rate, logit in KL_CASES:
        value, gradient_q, gradient_logit = function(rate, logit)
        assert np.isfinite(value), (rate, logit)
        assert value == pytest.approx(reference_kl(rate, logit), rel=1e-9, abs=1e-15), (rate, logit)
        assert np.isfinite(gradient_q), (rate, logit)
        assert gradient_logit == pytest.approx(special.expit(logit) - rate, rel=1e-9, abs=1e-15)
    assert function(0.0, -50.0)[0] == pytest.approx(np.log1p(np.exp(-50.0)), rel=1e-9)
    assert function(1.0, 800.0)[0] == 0.0


def test_bernoulli_kl_float32_saturated_logits():
    q, logit_p = pt.fvectors("q", "logit_p")
    kl = pt.sum(bernoulli_kl(q, logit_p))
    function = backend.compile_function([q, logit_p], [kl, pytensor.grad(kl, logit_p)])
    rates = np.array([0, 1, 1e-7, 0, 1, 1e-7], "float32")
    logits = np.array([80, -80, 80, -80, 80, -80], "float32")
    value, gradient = function(rates, logits)
    assert np.isfinite(value)
    assert np.all(np.isfinite(gradient))
    assert value == pytest.approx(float(np.sum(reference_kl(rates.astype(float), logits.astype(float)))),
                                  rel=1e-5)


# The bound K, by enumeration of every trajectory -----------------------------------------

class TableModel(BinomialDiffusionModel):
    """A fixed reverse model: a table of logits for every step and every state of 3 bits."""

    def __init__(self, T, p, table=None, parameterization="direct"):
        super().__init__(name="table")
        self.diffusion = BinomialDiffusion(T, n_dims=3, p=p, parameterization=parameterization)
        values = np.zeros((T - 1, 8, 3)) if table is None else table
        self.table = self.add_parameter("logits", values.shape, Constant(0.0))
        self.table.set_value(values.astype(pytensor.config.floatX))

    def network_output(self, xt, t):
        index = pt.cast(xt[:, 0] * 4 + xt[:, 1] * 2 + xt[:, 2], "int64")
        return self.table[t - 2, index]


STATES = np.array(list(itertools.product((0, 1), repeat=3)), dtype=float)


def bernoulli_probability(bits, rates):
    return np.prod(np.where(bits == 1, rates, 1 - rates), axis=-1)


def enumerate_model(model):
    """Return ``log p(x0)`` and the ELBO ``E_q[log p(x0:T) - log q(x1:T | x0)]`` for all 8 ``x0``, in bits.

    Every trajectory ``x1..xT`` of 3 bits is enumerated; nothing from the library but the
    table of logits and the schedule's definition is used.
    """
    diffusion = model.diffusion
    T, p = diffusion.trajectory_length, diffusion.p
    beta = 1.0 / (T - np.arange(1, T + 1) + 1)
    table = model.table.get_value().astype(float)
    if diffusion.parameterization == "forward_offset":
        rate = STATES[None, :, :] * (1 - beta[1:, None, None]) + p * beta[1:, None, None]
        table = table + special.logit(rate)

    def forward(previous, step):  # q(x_step | x_(step-1)) for all pairs, shape (8, 8)
        rates = previous[:, None, :] * (1 - beta[step - 1]) + p * beta[step - 1]
        return bernoulli_probability(STATES[None, :, :], rates)

    def reverse(step):  # p(x_(step-1) | x_step), rows x_step, columns x_(step-1)
        return bernoulli_probability(STATES[None, :, :], special.expit(table[step - 2])[:, None, :])

    prior = bernoulli_probability(STATES, np.full(3, p))
    log_p = np.empty(8)
    elbo = np.empty(8)
    for start in range(8):
        total_p = 0.0
        total_elbo = 0.0
        for path in itertools.product(range(8), repeat=T):  # x1..xT
            states = (start,) + path
            log_q = sum(np.log(forward(STATES, step)[states[step - 1], states[step]])
                        for step in range(1, T + 1))
            log_joint = np.log(prior[states[T]])
            for step in range(T, 1, -1):
                log_joint += np.log(reverse(step)[states[step], states[step - 1]])
            log_joint += np.log(forward(STATES, 1)[states[1], states[0]])  # the fixed last step
            total_p += np.exp(log_joint)
            total_elbo += np.exp(log_q) * (log_joint - log_q)
        log_p[start] = np.log(total_p) / np.log(2)
        elbo[start] = total_elbo / np.log(2)
    return log_p, elbo


def library_K(model):
    """Return the library's K for all 8 ``x0``, its KL terms averaged exactly over ``xt``."""
    diffusion = model.diffusion
    T, p = diffusion.trajectory_length, diffusion.p
    x0, xt = pt.dmatrices("x0", "xt")
    t = pt.ivector("t")
    kl = diffusion.kl_divergence(x0, xt, t, model.reverse(xt, t))
    kl_function = backend.compile_function([x0, xt, t], kl)
    terms = diffusion.bound_terms(pt.zeros((x0.shape[0],), dtype="float64"), x0)
    terms_function = backend.compile_function([x0], [terms["K"], terms["L_null"]])
    kl_sum = np.zeros(8)
    for step in range(2, T + 1):
        for state in range(8):
            # q(xt = state | x0) for every x0, from the step-by-step marginals.
            rates = np.array([[marginals(T, p, bit)[step] for bit in row] for row in STATES])
            weight = bernoulli_probability(STATES[state][None, :], rates)
            kl_sum += weight * kl_function(STATES, np.tile(STATES[state], (8, 1)),
                                           np.full(8, step, np.int32))
    K_without_kl, L_null = terms_function(STATES)
    return K_without_kl - kl_sum / np.log(2), L_null


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_K_matches_enumeration(float64, p):
    T = 4
    table = np.random.default_rng(11).normal(0, 2, (T - 1, 8, 3))
    model = TableModel(T, p, table)
    log_p, elbo = enumerate_model(model)
    K, _ = library_K(model)
    np.testing.assert_allclose(K, elbo, rtol=0, atol=1e-10)
    assert np.all(K <= log_p + 1e-12)
    assert np.all(log_p - K > 1e-3)  # a random model is far from tight
    assert np.sum(2.0 ** log_p) == pytest.approx(1.0, abs=1e-12)


def test_exact_reverse_gives_K_equal_L_null(float64):
    T = 4
    model = TableModel(T, 0.2, parameterization="forward_offset")
    log_p, elbo = enumerate_model(model)
    K, L_null = library_K(model)
    expected_null = STATES @ np.full(3, np.log2(0.2)) + (1 - STATES) @ np.full(3, np.log2(0.8))
    np.testing.assert_allclose(L_null, expected_null, atol=1e-12)
    np.testing.assert_allclose(log_p, expected_null, atol=1e-12)
    np.testing.assert_allclose(elbo, expected_null, atol=1e-10)
    np.testing.assert_allclose(K, expected_null, atol=1e-10)


def test_evaluator_and_estimator_agree_with_exact_K(float64):
    T = 4
    model = TableModel(T, 0.3, np.random.default_rng(12).normal(0, 1, (T - 1, 8, 3)))
    K_exact, _ = library_K(model)
    x0 = np.repeat(STATES[[1, 6]], 20_000, axis=0)

    evaluated = BoundEvaluator(model).evaluate(x0, seed=3, progress=False)
    per_example = evaluated["K_per_example"]
    for index, start in enumerate((1, 6)):
        values = per_example[index * 20_000:(index + 1) * 20_000]
        assert abs(values.mean() - K_exact[start]) < 4 * values.std() / np.sqrt(len(values))

    x0_symbolic, noise = pt.dmatrices("x0", "noise")
    t = pt.ivector("t")
    estimate = backend.compile_function([x0_symbolic, t, noise],
                                        model.bound_estimate(x0_symbolic, t, noise)["K"])
    draws = DiffusionInputs(T, 3, seed=4, draw_noise=model.diffusion.draw_noise)
    values = estimate(x0, *draws(len(x0)))
    for index, start in enumerate((1, 6)):
        part = values[index * 20_000:(index + 1) * 20_000]
        assert abs(part.mean() - K_exact[start]) < 4 * part.std() / np.sqrt(len(part))


def test_entropy_bounds_match_enumeration(float64):
    T, p = 6, 0.2
    diffusion = BinomialDiffusion(T, n_dims=1, p=p)
    x0 = pt.dmatrix("x0")
    t = pt.ivector("t")
    lower, upper = diffusion.entropy_bounds(t, x0)
    function = backend.compile_function([x0, t], [lower, upper])
    beta = binomial_beta(T)

    def entropy(rate):
        return -special.xlogy(rate, rate) - special.xlogy(1 - rate, 1 - rate)

    for step, bit in itertools.product(range(2, T + 1), (0, 1)):
        previous = marginals(T, p, bit)[step - 1]
        kernel = kernel_matrix(beta[step - 1], p)
        joint = np.array([[1 - previous], [previous]]) * kernel  # [x(t-1), xt]
        expected_upper = (1 - previous) * entropy(kernel[0, 1]) + previous * entropy(kernel[1, 1])
        posterior_entropy = sum(joint[:, state].sum() * entropy(joint[1, state] / joint[:, state].sum())
                                for state in (0, 1))
        value_lower, value_upper = function([[bit]], np.array([step], np.int32))
        assert value_upper[0, 0] == pytest.approx(expected_upper, rel=1e-12, abs=1e-15)
        assert value_lower[0, 0] == pytest.approx(posterior_entropy, rel=1e-10, abs=1e-14)


# Multiplying a second distribution, and sampling -----------------------------------------

def test_perturbed_rate_matches_normalized_product(float64):
    logit_c, d = pt.dvectors("logit_c", "d")
    function = backend.compile_function([logit_c, d], pt.sigmoid(perturbed_logit(logit_c, d)))
    c = np.array([0.1, 0.5, 0.9, 0.3, 0.7, 0.999])
    r = np.array([0.2, 0.5, 0.4, 0.0, 1.0, 0.3])
    expected = c * r / (c * r + (1 - c) * (1 - r))
    np.testing.assert_allclose(function(special.logit(c), r), expected, rtol=1e-12)
    assert function(special.logit(c[:1]), np.zeros(1))[0] == 0.0
    assert function(special.logit(c[:1]), np.ones(1))[0] == 1.0


def test_sampler_exact_model_draws_equilibrium():
    T, p = 5, 0.2
    model = TableModel(T, p, parameterization="forward_offset")
    sampler = BinomialReverseSampler(model)
    samples, start = sampler.sample(40_000, seed=5, progress=False)
    assert samples.shape == start.shape == (40_000, 3)
    for array in (samples, start):
        assert np.all(np.abs(array.mean(axis=0) - p) < 5 * np.sqrt(p * (1 - p) / 40_000))
    # With a stationary reverse process the pair (x0, xT) is as likely as (xT, x0).
    assert not np.array_equal(samples, start)

    fixed, _ = sampler.sample(2000, seed=6, r_one=np.array([1.0, 0.0, 0.5]), progress=False)
    assert np.all(fixed[:, 0] == 1.0)
    assert np.all(fixed[:, 1] == 0.0)
    assert 0.1 < fixed[:, 2].mean() < 0.3

    with pytest.raises(ValueError, match="r_one"):
        sampler.sample(10, seed=0, r_one=np.array([1.5, 0.0, 0.5]), progress=False)


# Bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_rejects_equilibrium_rate_outside_unit_interval(p):
    with pytest.raises(ValueError, match=rf"p must lie in \(0, 1\), got {p!r}"):
        BinomialDiffusion(10, 3, p=p)


def test_rejects_unknown_parameterization():
    with pytest.raises(ValueError, match="'paper'.*choose one of"):
        BinomialDiffusion(10, 3, parameterization="paper")


def test_rejects_trajectory_length_below_two():
    with pytest.raises(ValueError, match="trajectory_length"):
        BinomialDiffusion(1, 3)


# The best factorized reverse kernel ---------------------------------------------------------

def test_factorized_optimum_matches_enumeration_and_is_best(float64):
    T, p = 4, 0.3
    rows = [1, 4, 6]
    weights = np.array([0.5, 0.3, 0.2])
    optimum = FactorizedOptimum(T, p, STATES[rows], weights)
    table = np.stack([special.logit(optimum.rates(STATES, step)) for step in range(2, T + 1)])
    _, elbo = enumerate_model(TableModel(T, p, table))
    best = optimum.bound()
    assert best["exact"]
    assert best["K"] == pytest.approx(float(np.dot(weights, elbo[rows])), abs=1e-10)

    # Any other table is worse on average over the data distribution.
    rng = np.random.default_rng(5)
    for _ in range(2):
        _, other = enumerate_model(TableModel(T, p, table + rng.normal(0, 0.3, table.shape)))
        assert np.dot(weights, other[rows]) < best["K"] - 1e-6

    # Monte Carlo agrees with the exact value within 4 standard errors.
    estimate = optimum.bound(n_per_step=4000, seed=3, exact=False)
    assert abs(estimate["K"] - best["K"]) < 4 * estimate["K_stderr"]
    assert 0 < estimate["K_stderr"] < 0.05
