"""The bound with a few stratified time steps per example against the exact sum over t.

Tiny untrained models keep every evaluation to a few compiled calls: a swiss roll model
(Gaussian diffusion, T = 12) and a heartbeat model (binomial diffusion, T = 9). Untrained,
their KL terms differ a lot from step to step, so the drawn steps add visible variance.
"""

import numpy as np
import pytensor
import pytest

from dpm.evaluation import BoundEvaluator
from dpm.evaluation.bound import draw_steps
from dpm.models.heartbeat import HeartbeatModel
from dpm.models.swiss_roll import SwissRollModel

N_POINTS = 300


def gaussian_case():
    model = SwissRollModel(trajectory_length=12, n_hidden=4, readout_std=1.0)
    model.initialize(np.random.default_rng(0))
    points = np.random.default_rng(1).normal(size=(N_POINTS, 2))
    return model, points.astype(pytensor.config.floatX)


def binomial_case():
    model = HeartbeatModel(trajectory_length=9, n_dims=6, n_hidden=5, n_layers=1,
                           readout_std=1.0)
    model.initialize(np.random.default_rng(0))
    points = np.random.default_rng(1).random((N_POINTS, 6)) < 0.3
    return model, points.astype(pytensor.config.floatX)


@pytest.fixture(scope="module", params=["gaussian", "binomial"])
def case(request):
    """Return a tiny model of each kind of diffusion, its evaluator and held-out points."""
    model, points = gaussian_case() if request.param == "gaussian" else binomial_case()
    return model, BoundEvaluator(model), points


def test_draw_steps_stratified():
    T, n_steps = 12, 4
    t = draw_steps(np.random.SeedSequence(0), 5000, n_steps, T)
    assert t.shape == (5000, n_steps)
    assert t.dtype == np.int32
    # The 11 steps 2..12 cut into 4 slices of width 2.75: one draw in each, sorted.
    # Neighbouring slices share a step where a boundary falls inside it.
    lower = 2 + np.floor(np.arange(n_steps) * (T - 1) / n_steps)
    upper = 2 + np.ceil(np.arange(1, n_steps + 1) * (T - 1) / n_steps) - 1
    assert np.all(t >= lower)
    assert np.all(t <= upper)
    assert np.all(np.diff(t, axis=1) >= 0)
    # Every step is equally likely: 5000 * 4 / 11 draws each.
    counts = np.bincount(t.ravel(), minlength=T + 1)[2:]
    expected = t.size / (T - 1)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))



def test_draw_steps_every_step():
    T = 12
    t = draw_steps(np.random.SeedSequence(1), 20, T - 1, T)
    np.testing.assert_array_equal(t, np.tile(np.arange(2, T + 1), (20, 1)))


def test_all_steps_equal_exact(case):
    model, evaluator, points = case
    T = model.trajectory_length
    exact = evaluator.evaluate(points, seed=3, batch_size=128, progress=False)
    every_step = evaluator.evaluate(points, seed=3, batch_size=128, progress=False,
                                    t_per_example=T - 1)
    # Same xt draws in the same order, and the scale (T - 1) / (T - 1) is 1.
    np.testing.assert_array_equal(every_step["K_per_example"], exact["K_per_example"])
    for name in ("K", "K_stderr", "K_minus_L_null", "K_minus_L_null_stderr", "kl_sum"):
        assert every_step[name] == exact[name], name
    np.testing.assert_array_equal(every_step["kl_per_step"], exact["kl_per_step"])
    assert exact["t_per_example"] == T - 1
    assert every_step["t_per_example"] == T - 1


@pytest.mark.parametrize("t_per_example", [1, 3])
def test_sampled_agrees_with_exact(case, t_per_example):
    model, evaluator, points = case
    exact = evaluator.evaluate(points, seed=4, progress=False)
    sampled = evaluator.evaluate(points, seed=4, progress=False, t_per_example=t_per_example)
    assert sampled["t_per_example"] == t_per_example
    assert abs(sampled["K"] - exact["K"]) < 4 * sampled["K_stderr"]
    assert abs(sampled["K_minus_L_null"] - exact["K_minus_L_null"]) < 4 * sampled["K_stderr"]
    # The drawn steps add variance on top of that of xt and of the data.
    assert sampled["K_stderr"] > exact["K_stderr"]


def test_sampled_unbiased_over_seeds(case):
    """The mean of many estimates matches the mean of many exact sums on the same points."""
    model, evaluator, points = case
    points = points[:40]
    sampled = [evaluator.evaluate(points, seed=seed, progress=False, t_per_example=2)["K"]
               for seed in range(300)]
    exact = [evaluator.evaluate(points, seed=seed, progress=False)["K"] for seed in range(300)]
    difference = np.mean(sampled) - np.mean(exact)
    stderr = np.sqrt(np.var(sampled, ddof=1) / 300 + np.var(exact, ddof=1) / 300)
    assert abs(difference) < 4 * stderr


def test_stderr_includes_step_variance(case):
    """With one point repeated, the reported standard error is the spread over seeds.

    The repeated point removes the data's variance, so what is left is that of xt and of
    the drawn steps. A standard error without the steps' variance would be too small.
    """
    model, evaluator, points = case
    repeated = np.repeat(points[:1], 50, axis=0)
    results = [evaluator.evaluate(repeated, seed=seed, progress=False, t_per_example=2)
               for seed in range(300)]
    spread = np.std([result["K"] for result in results], ddof=1)
    reported = np.sqrt(np.mean([result["K_stderr"] ** 2 for result in results]))
    # The relative standard error of a standard deviation from 300 values is about 4 %.
    assert 0.85 < reported / spread < 1.15


def test_sampled_repeatable_with_seed_sequence(case):
    model, evaluator, points = case
    seed = np.random.SeedSequence(7)
    first = evaluator.evaluate(points, seed=seed, progress=False, t_per_example=2)
    second = evaluator.evaluate(points, seed=seed, progress=False, t_per_example=2)
    np.testing.assert_array_equal(first["K_per_example"], second["K_per_example"])


def test_sampled_per_step_means(case):
    model, evaluator, points = case
    T = model.trajectory_length
    sampled = evaluator.evaluate(points[:3], seed=5, progress=False, t_per_example=1)
    kl_per_step = np.asarray(sampled["kl_per_step"])
    assert kl_per_step.shape == (T - 1,)
    # Three examples with one step each reach at most 3 of the T - 1 steps.
    assert 1 <= np.sum(np.isfinite(kl_per_step)) <= 3


@pytest.mark.parametrize("t_per_example", [0, -1, 2.5, "all", True])
def test_invalid_steps_rejected(case, t_per_example):
    model, evaluator, points = case
    with pytest.raises(ValueError, match="t_per_example must be an integer"):
        evaluator.evaluate(points, seed=0, progress=False, t_per_example=t_per_example)


def test_too_many_steps_rejected(case):
    model, evaluator, points = case
    T = model.trajectory_length
    with pytest.raises(ValueError, match=f"from 1 to T - 1 = {T - 1}"):
        evaluator.evaluate(points, seed=0, progress=False, t_per_example=T)
