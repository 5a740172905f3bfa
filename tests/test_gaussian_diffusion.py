"""Gaussian diffusion: posterior, KL, the bound K and its estimator, the schedule."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import integrate, stats

from dpm import backend
from dpm.diffusion import (
    DiffusionInputs,
    FixedSchedule,
    GaussianDiffusion,
    LearnedSchedule,
    build_schedule,
    gaussian_kl,
    inverse_remaining_beta,
    reference_beta,
)
from dpm.diffusion.draws import T_SAMPLINGS, draw_t
from dpm.models import GaussianDiffusionModel, SwissRollModel


@pytest.fixture
def float64():
    with pytensor.config.change_flags(floatX="float64"):
        yield


def compile_posterior(diffusion):
    x0, xt = pt.dmatrices("x0", "xt")
    t = pt.ivector("t")
    mean, log_var = diffusion.posterior(x0, xt, t)
    return backend.compile_function([x0, xt, t], [mean, pt.exp(log_var)])


def test_posterior_matches_brute_force_bayes(float64):
    beta = reference_beta(10)
    diffusion = GaussianDiffusion(FixedSchedule(beta), n_dims=1)
    posterior = compile_posterior(diffusion)
    alphabar = np.cumprod(1 - beta)
    grid = np.linspace(-8, 8, 400_001)
    for step, x0, xt in [(2, 0.7, 0.3), (5, -1.2, 0.9), (10, 2.0, -1.5)]:
        prior = stats.norm(np.sqrt(alphabar[step - 2]) * x0, np.sqrt(1 - alphabar[step - 2]))
        likelihood = stats.norm(np.sqrt(1 - beta[step - 1]) * grid, np.sqrt(beta[step - 1])).pdf(xt)
        weights = prior.pdf(grid) * likelihood
        weights /= weights.sum()
        brute_mean = np.sum(weights * grid)
        brute_var = np.sum(weights * (grid - brute_mean) ** 2)
        mean, var = posterior([[x0]], [[xt]], np.array([step], dtype=np.int32))
        assert mean[0, 0] == pytest.approx(brute_mean, abs=1e-6)
        assert var[0, 0] == pytest.approx(brute_var, rel=1e-5)


def test_posterior_variance_is_entropy_lower_bound(float64):
    diffusion = GaussianDiffusion(FixedSchedule(reference_beta(12)), n_dims=1)
    t = pt.ivector("t")
    lower, upper = diffusion.entropy_bounds(t)
    _, log_var = diffusion.posterior(pt.zeros((t.shape[0], 1)), pt.zeros((t.shape[0], 1)), t)
    function = backend.compile_function([t], [lower, upper, log_var[:, 0]])
    steps = np.arange(2, 13, dtype=np.int32)
    lower, upper, log_var = function(steps)
    posterior_entropy = 0.5 * np.log(2 * np.pi * np.e) + 0.5 * log_var
    np.testing.assert_allclose(lower, posterior_entropy, rtol=1e-10)
    assert np.all(lower < upper)


def test_gaussian_kl_closed_form_and_integral(float64):
    mean_q, var_q, mean_p, var_p = pt.dscalars("mq", "vq", "mp", "vp")
    kl = gaussian_kl(mean_q, pt.log(var_q), mean_p, pt.log(var_p))
    function = backend.compile_function([mean_q, var_q, mean_p, var_p], kl)
    for mq, vq, mp, vp in [(0.0, 1.0, 0.0, 1.0), (0.3, 0.5, -0.2, 2.0), (1.5, 0.01, 1.4, 0.02)]:
        closed = np.log(np.sqrt(vp) / np.sqrt(vq)) + (vq + (mq - mp) ** 2) / (2 * vp) - 0.5
        q, p = stats.norm(mq, np.sqrt(vq)), stats.norm(mp, np.sqrt(vp))
        width = 12 * np.sqrt(vq)
        numeric, _ = integrate.quad(lambda x: q.pdf(x) * (q.logpdf(x) - p.logpdf(x)),
                                    mq - width, mq + width, points=[mq], limit=200)
        value = function(mq, vq, mp, vp)
        assert value == pytest.approx(closed, rel=1e-10, abs=1e-12)
        assert value == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    assert abs(function(0.4, 0.3, 0.4, 0.3)) < 1e-15


class ForwardReverseModel(GaussianDiffusionModel):
    """A model whose reverse kernel is the exact reverse of a stationary forward step.

    For data from ``pi = N(0, I)`` every ``q(xt)`` is ``pi``, and Bayes' rule gives
    ``p(x(t-1) | xt) = N(sqrt(1 - beta_t) xt, beta_t I)``: the model equals ``q``, so
    ``K = L = L_null``.
    """

    def __init__(self, beta, n_dims):
        super().__init__(name="forward_reverse")
        self.schedule = FixedSchedule(beta)
        self.diffusion = GaussianDiffusion(self.schedule, n_dims, parameterization="direct")

    def network_output(self, xt, t):
        beta = self.schedule.beta()[t - 1][:, None]
        return pt.sqrt(1 - beta) * xt, pt.log(beta) - pt.log1p(-beta) + pt.zeros_like(xt)


def compile_bound(model):
    x0 = pt.dmatrix("x0")
    t = pt.ivector("t")
    noise = pt.dmatrix("noise")
    terms = model.bound_estimate(x0, t, noise)
    return backend.compile_function([x0, t, noise], [terms["K"], terms["K_minus_L_null"]])


def test_exact_reverse_gives_K_equal_L_null(float64):
    model = ForwardReverseModel(reference_beta(10), n_dims=3)
    bound = compile_bound(model)
    rng = np.random.default_rng(0)
    draws = DiffusionInputs(10, 3, seed=1)
    x0 = rng.standard_normal((200_000, 3))
    K, K_minus_L_null = bound(x0, *draws(len(x0)))
    standard_error = K_minus_L_null.std() / np.sqrt(len(x0))
    assert abs(K_minus_L_null.mean()) < 3 * standard_error
    assert K.mean() == pytest.approx(model.diffusion.L_null() + K_minus_L_null.mean())


def test_single_t_estimator_matches_exact_sum(float64):
    T = 10
    model = SwissRollModel(trajectory_length=T, n_hidden=8, parameterization="paper")
    model.initialize(np.random.default_rng(3))
    x0 = pt.dmatrix("x0")
    t = pt.ivector("t")
    noise = pt.dmatrix("noise")
    kl = backend.compile_function([x0, t, noise], model.kl_divergence(x0, t, noise))
    rng = np.random.default_rng(4)
    points = rng.standard_normal((50, 2))
    n_draws = 4000
    data = np.repeat(points, n_draws, axis=0)
    # Single-t estimator: t uniform on 2..T, KL times T - 1.
    steps = rng.integers(2, T + 1, size=len(data)).astype(np.int32)
    estimate = (T - 1) * kl(data, steps, rng.standard_normal(data.shape))
    # Exact sum over t, each with its own draw of xt.
    exact = sum(kl(data, np.full(len(data), step, dtype=np.int32), rng.standard_normal(data.shape))
                for step in range(2, T + 1))
    error = np.hypot(estimate.std() / np.sqrt(len(data)), exact.std() / np.sqrt(len(data)))
    assert abs(estimate.mean() - exact.mean()) < 3 * error
    assert estimate.std() > exact.std()


@pytest.mark.parametrize("kind", ["reference", "inverse_remaining", "learned"])
def test_schedules_lie_strictly_inside_unit_interval(kind):
    schedule = build_schedule(kind, 40)
    if isinstance(schedule, LearnedSchedule):
        schedule.initialize(np.random.default_rng(0))
    beta = schedule.beta_numpy()
    assert beta.shape == (40,)
    assert np.all(beta > 0)
    assert np.all(beta < 1)


def test_fixed_schedules_follow_their_formulas():
    T = 20
    t = np.arange(1, T + 1)
    np.testing.assert_allclose(inverse_remaining_beta(T)[:-1], 1.0 / (T - t[:-1] + 1))
    reference = reference_beta(T, step1_beta=1e-3)
    base = 1.0 / np.linspace(T, 2, T)
    assert reference[0] == pytest.approx(1e-6 + 1e-3 + base[0] * (1 - 1e-6 - 1e-3 - 1e-5))
    assert reference[-1] == pytest.approx(1e-6 + 0.5 * (1 - 1e-6 - 1e-5))
    with pytest.raises(ValueError, match="beta_2"):
        FixedSchedule([0.1, 1.0, 0.3])


def test_learned_schedule_training_keeps_invariants():
    from dpm.training import GradientDescent, build_step_rule

    model = SwissRollModel(trajectory_length=8, n_hidden=4, parameterization="paper")
    model.initialize(np.random.default_rng(0))
    before = model.schedule.beta_numpy()
    x0 = pt.matrix("x0")
    t = pt.ivector("t")
    noise = pt.matrix("noise")
    rule = build_step_rule("adam", 0.5)  # large steps push the sigmoid into saturation
    algorithm = GradientDescent(model.cost(x0, t, noise), model.all_parameters, rule,
                                [x0, t, noise], {}, prepare_inputs=lambda batch: batch)
    draws = DiffusionInputs(8, 2, seed=5)
    rng = np.random.default_rng(6)
    for _ in range(200):
        algorithm.process_batch((rng.standard_normal((64, 2)).astype("float32"), *draws(64)))
    after = model.schedule.beta_numpy()
    assert after[0] == before[0]
    assert not np.allclose(after[1:], before[1:])
    assert np.all((after > 0) & (after < 1))
    symbolic = backend.compile_function([], model.schedule.beta())()
    assert np.all((symbolic > 0) & (symbolic < 1))


def test_bound_gradient_matches_finite_differences(float64):
    T = 6
    schedule = LearnedSchedule(reference_beta(T))
    schedule.initialize(np.random.default_rng(0))
    schedule.offset.set_value(np.random.default_rng(1).normal(0, 0.5, T - 1))
    diffusion = GaussianDiffusion(schedule, n_dims=2, parameterization="paper")
    x0 = pt.dmatrix("x0")
    t = pt.ivector("t")
    noise = pt.dmatrix("noise")
    z_mu = pt.dmatrix("z_mu")
    z_sigma = pt.dmatrix("z_sigma")
    xt = diffusion.forward_sample(x0, t, noise)
    mean_p, log_var_p = diffusion.reverse(xt, t, (z_mu, z_sigma))
    kl = diffusion.kl_divergence(x0, xt, t, mean_p, log_var_p)
    K = pt.mean(diffusion.bound_terms((T - 1) * kl)["K"])
    function = backend.compile_function([x0, t, noise, z_mu, z_sigma],
                                        [K, pytensor.grad(K, schedule.offset)])
    rng = np.random.default_rng(2)
    inputs = (rng.standard_normal((32, 2)), rng.integers(2, T + 1, 32).astype(np.int32),
              rng.standard_normal((32, 2)), rng.standard_normal((32, 2)),
              rng.standard_normal((32, 2)))
    _, gradient = function(*inputs)
    offset = schedule.offset.get_value()
    step = 1e-6
    numeric = np.empty_like(offset)
    for index in range(len(offset)):
        values = []
        for sign in (1, -1):
            shifted = offset.copy()
            shifted[index] += sign * step
            schedule.offset.set_value(shifted)
            values.append(function(*inputs)[0])
        numeric[index] = (values[0] - values[1]) / (2 * step)
    schedule.offset.set_value(offset)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8)
    assert np.any(np.abs(gradient) > 1e-3)


@pytest.mark.parametrize("parameterization", ["direct", "paper", "reference"])
def test_reverse_std_finite_for_extreme_outputs(parameterization):
    diffusion = GaussianDiffusion(build_schedule("reference", 40), 2, parameterization)
    xt = pt.matrix("xt")
    t = pt.ivector("t")
    z = pt.matrix("z")
    mean, log_var = diffusion.reverse(xt, t, (z, z))
    kl = diffusion.kl_divergence(xt, xt, t, mean, log_var)
    function = backend.compile_function([xt, t, z], [pt.exp(0.5 * log_var), mean, kl])
    steps = np.array([2, 20, 40, 2, 20, 40], dtype=np.int32)
    outputs = np.repeat([[50.0], [-50.0]], 3, axis=0) * np.ones((6, 2))
    std, mean, kl = function(np.ones((6, 2), "float32"), steps, outputs.astype("float32"))
    assert std.dtype == np.float32
    assert np.all(np.isfinite(std))
    assert np.all(std > 0)
    assert np.all(np.isfinite(mean))
    assert np.all(np.isfinite(kl))


def test_draws_repeat_with_seed_and_differ_across_seeds():
    first = DiffusionInputs(40, 2, seed=7)(500)
    again = DiffusionInputs(40, 2, seed=7)(500)
    other = DiffusionInputs(40, 2, seed=8)(500)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[1], other[1])
    assert first[0].min() == 2
    assert first[0].max() == 40


@pytest.mark.parametrize("how", T_SAMPLINGS)
@pytest.mark.parametrize("groups", [None, 1, 3])
def test_t_draws_uniform_on_2_to_T(how, groups):
    # Over many batches each t in 2..T appears equally often: a chi-square test at 1e-4.
    T, batch_size, n_batches = 12, 33, 3000
    rng = np.random.default_rng(17)
    t = np.concatenate([draw_t(rng, batch_size, T, how, groups) for _ in range(n_batches)])
    assert t.dtype == np.int32
    if groups is not None:
        t = t[::batch_size // groups]  # one independent draw per block
    counts = np.bincount(t, minlength=T + 1)
    assert counts[:2].sum() == 0
    assert stats.chisquare(counts[2:]).pvalue > 1e-4


def test_stratified_t_one_per_slice():
    t = draw_t(np.random.default_rng(3), 10, 101, "stratified")
    # Slice i of 2..101 contains steps 2 + 10 i .. 11 + 10 i, and each slice gets one draw.
    np.testing.assert_array_equal(np.sort((t - 2) // 10), np.arange(10))


def test_grouped_t_shared_per_block():
    grouped = draw_t(np.random.default_rng(4), 12, 101, "stratified", groups=3).reshape(3, 4)
    assert np.all(grouped == grouped[:, :1])
    np.testing.assert_array_equal(np.sort((grouped[:, 0] - 2) * 3 // 100), np.arange(3))


def test_t_draws_reject_invalid_settings():
    with pytest.raises(ValueError, match="unknown t sampling 'often'"):
        DiffusionInputs(10, 2, seed=1, t_sampling="often")
    with pytest.raises(ValueError, match="must be a positive divisor of the batch size 10"):
        draw_t(np.random.default_rng(5), 10, 101, groups=3)
