"""Tests of the swiss roll data set and its exact density in dpm.data.swiss_roll."""

import math

import numpy as np
import pytest
from scipy import integrate

from dpm.data import swiss_roll
from dpm.data.hdf5 import H5Dataset, read_attrs, split_names, write_dataset

S_MIN, S_MAX = 1.5 * math.pi, 4.5 * math.pi
LENGTH = S_MAX - S_MIN


def quad_average(function):
    """Average of ``function(s)`` over s ~ Uniform(S_MIN, S_MAX) by adaptive quadrature."""
    value, _ = integrate.quad(function, S_MIN, S_MAX, epsabs=0, epsrel=1e-12, limit=500)
    return value / LENGTH


def raw_moments_by_quadrature():
    mean = np.array(
        [
            quad_average(lambda s: s * math.cos(s)),
            quad_average(lambda s: s * math.sin(s)),
        ]
    )
    second = np.array(
        [
            quad_average(lambda s: (s * math.cos(s)) ** 2),
            quad_average(lambda s: (s * math.sin(s)) ** 2),
        ]
    )
    return mean, second - mean**2 + swiss_roll.NOISE_STD**2


def unit_normals(s):
    """Unit normals of the roll at parameters ``s``, from the derivative of (s cos s, s sin s)."""
    tangent = np.stack([np.cos(s) - s * np.sin(s), np.sin(s) + s * np.cos(s)], axis=-1)
    tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True)
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=-1)


def test_definition_constants():
    assert swiss_roll.S_MIN == S_MIN
    assert swiss_roll.S_MAX == S_MAX
    assert swiss_roll.NOISE_STD == 0.25
    assert swiss_roll.SCALED_NOISE_STD == swiss_roll.NOISE_STD * swiss_roll.SCALE


def test_constants_match_quadrature():
    mean, variance = raw_moments_by_quadrature()
    np.testing.assert_allclose(swiss_roll.MEAN, mean, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(swiss_roll.RAW_VARIANCE, variance, rtol=1e-12)
    assert swiss_roll.SCALE == pytest.approx(1 / math.sqrt(variance.mean()), rel=1e-12)
    # Closed forms for this s range: cos vanishes and sin is -1 and +1 at the ends.
    np.testing.assert_allclose(swiss_roll.MEAN, [2.0, 2 / (3 * math.pi)], rtol=1e-13)


def test_constants_match_monte_carlo():
    n = 1_000_000
    x = swiss_roll.sample(n, np.random.default_rng(11))

    mean = x.mean(axis=0)
    mean_error = x.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(mean) < 5 * mean_error)

    # Average per-axis variance, with the standard error of a mean of squares.
    squares = ((x - mean) ** 2).mean(axis=1)
    variance_error = squares.std() / math.sqrt(n)
    assert abs(squares.mean() - 1.0) < 5 * variance_error


def test_noise_level_around_curve():
    n = 200_000
    x, s = swiss_roll.sample(n, 3, return_parameter=True)
    assert x.shape == (n, 2)
    assert s.shape == (n,)
    assert s.min() >= S_MIN
    assert s.max() <= S_MAX
    # Undo the scaling independently of the module and compare with the raw curve.
    raw = x / swiss_roll.SCALE + np.array([2.0, 2 / (3 * math.pi)])
    noise = raw - np.stack([s * np.cos(s), s * np.sin(s)], axis=-1)
    noise_std = noise.std()
    # The standard error of a standard deviation estimate is sigma / sqrt(2 N).
    assert abs(noise_std - 0.25) < 5 * 0.25 / math.sqrt(2 * noise.size)
    assert abs(noise.mean()) < 5 * 0.25 / math.sqrt(noise.size)


def test_sample_reproducible_by_seed():
    first = swiss_roll.sample(50, np.random.default_rng(5))
    second = swiss_roll.sample(50, 5)
    other = swiss_roll.sample(50, 6)
    assert first.dtype == np.float64
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


def test_sample_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n must be at least 0"):
        swiss_roll.sample(-1, 0)
    with pytest.raises(TypeError, match="integer seed"):
        swiss_roll.sample(3, None)
    with pytest.raises(TypeError, match="n must be an integer"):
        swiss_roll.sample(2.5, 0)


def log_density_by_quad(point):
    """log p at one point by adaptive quadrature, independent of the module's rule."""
    tau = swiss_roll.SCALED_NOISE_STD
    grid = np.linspace(S_MIN, S_MAX, 200_001)
    distances = np.sum((swiss_roll.curve(grid) - point) ** 2, axis=1)
    nearest = grid[np.argmin(distances)]
    offset = distances.min()

    def integrand(s):
        c = (np.array([s * math.cos(s), s * math.sin(s)]) - swiss_roll.MEAN) * swiss_roll.SCALE
        return math.exp(-(np.sum((point - c) ** 2) - offset) / (2 * tau**2))

    # The integrand is a narrow bump at the nearest roll point, so pass it as a breakpoint.
    breakpoints = [max(S_MIN, nearest - 0.05), nearest, min(S_MAX, nearest + 0.05)]
    value, _ = integrate.quad(
        integrand, S_MIN, S_MAX, points=breakpoints, epsabs=0, epsrel=1e-11, limit=2000
    )
    return math.log(value / LENGTH) - offset / (2 * tau**2) - math.log(2 * math.pi * tau**2)


def test_log_density_matches_quad():
    s_values = np.array([S_MIN + 0.01, 6.0, 9.3, 12.0, S_MAX - 0.2])
    on_roll = swiss_roll.curve(s_values)
    off_roll = on_roll + 1.5 * swiss_roll.SCALED_NOISE_STD * unit_normals(s_values)
    beyond_end = swiss_roll.curve(np.array([S_MIN])) + np.array([[0.05, -0.02]])
    far_away = np.array([[0.0, 0.0], [2.4, -2.4], [-1.0, 1.7]])
    points = np.concatenate([on_roll, off_roll, beyond_end, far_away])

    computed = swiss_roll.log_density(points)
    expected = np.array([log_density_by_quad(point) for point in points])
    np.testing.assert_allclose(computed, expected, rtol=1e-9, atol=1e-8)


def test_log_density_converged():
    near = swiss_roll.sample(300, 21)
    grid = np.stack(np.meshgrid(np.linspace(-2.5, 2.5, 25), np.linspace(-2.5, 2.5, 25)), -1)
    anywhere = grid.reshape(-1, 2)

    default = swiss_roll.log_density(near)
    finer = swiss_roll.log_density(near, n_nodes=4 * swiss_roll.DEFAULT_N_NODES)
    np.testing.assert_allclose(default, finer, rtol=0, atol=1e-12)

    # Far from the roll log p drops to about -1300 and the integrand in s is no longer
    # close to a Gaussian bump, so the error there is larger in absolute terms.
    default = swiss_roll.log_density(anywhere)
    finer = swiss_roll.log_density(anywhere, n_nodes=4 * swiss_roll.DEFAULT_N_NODES)
    assert default.min() < -1000
    np.testing.assert_allclose(default, finer, rtol=1e-9, atol=1e-10)


def test_density_integrates_to_one():
    # Trapezoid rule on a grid of spacing h = tau. For a mixture of Gaussians of
    # standard deviation tau its error per axis is bounded by about
    # 2 exp(-2 pi^2 tau^2 / h^2) ~ 5e-9 (Poisson summation), and the margin of 10 tau
    # leaves out a mass of order exp(-50).
    tau = swiss_roll.SCALED_NOISE_STD
    roll = swiss_roll.curve(np.linspace(S_MIN, S_MAX, 10_001))
    low = roll.min(axis=0) - 10 * tau
    high = roll.max(axis=0) + 10 * tau
    axes = [np.arange(low[i], high[i] + tau, tau) for i in range(2)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)

    density = np.exp(swiss_roll.log_density(grid, n_nodes=8192))
    total = density.sum() * tau * tau
    assert total == pytest.approx(1.0, abs=1e-6)


def test_log_density_on_and_off_roll():
    # Thin-tube approximation: on the roll the density is the arc-length density of s
    # times a 1-D Gaussian across the roll, 1 / (LENGTH |c'(s)|) / sqrt(2 pi tau^2).
    # Moving k noise standard deviations across lowers log p by k^2 / 2, up to
    # curvature corrections of order tau / radius (about 0.04 here).
    tau = swiss_roll.SCALED_NOISE_STD
    s = np.linspace(S_MIN + 1, S_MAX - 1, 7)
    on_roll = swiss_roll.curve(s)
    speed = swiss_roll.SCALE * np.sqrt(1 + s**2)
    predicted = -math.log(LENGTH) - np.log(speed) - 0.5 * math.log(2 * math.pi * tau**2)
    log_p = swiss_roll.log_density(on_roll)
    np.testing.assert_allclose(log_p, predicted, atol=1e-3)

    for k in (1.0, 2.0):
        for side in (1.0, -1.0):
            shifted = on_roll + side * k * tau * unit_normals(s)
            drop = log_p - swiss_roll.log_density(shifted)
            assert np.all(drop > 0)
            np.testing.assert_allclose(drop, k * k / 2, atol=0.05 * k)


def test_mean_log_density_matches_entropy():
    # Thin-tube approximation of the differential entropy: the entropy of the
    # arc-length position plus that of a 1-D Gaussian of standard deviation tau,
    # H ~ log(LENGTH) + E_s[log |c'(s)|] + log(2 pi e tau^2) / 2. Its error from
    # curvature and the ends of the roll is estimated at under 0.01 nats here.
    tau = swiss_roll.SCALED_NOISE_STD
    mean_log_speed = quad_average(lambda s: math.log(swiss_roll.SCALE * math.sqrt(1 + s * s)))
    entropy = math.log(LENGTH) + mean_log_speed + 0.5 * math.log(2 * math.pi * math.e * tau**2)

    log_p = swiss_roll.log_density(swiss_roll.sample(2000, 8))
    standard_error = log_p.std(ddof=1) / math.sqrt(log_p.size)
    assert abs(-log_p.mean() - entropy) < 4 * standard_error + 0.01


def test_true_log_likelihood_bits():
    x = swiss_roll.sample(400, 9)
    mean, standard_error = swiss_roll.true_log_likelihood_bits(x)
    bits = swiss_roll.log_density(x) / math.log(2)
    assert mean == pytest.approx(bits.mean(), rel=1e-12)
    assert standard_error == pytest.approx(bits.std(ddof=1) / 20, rel=1e-12)
    with pytest.raises(ValueError, match="at least 2 points"):
        swiss_roll.true_log_likelihood_bits(x[:1])


def test_log_density_rejects_bad_input():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        swiss_roll.log_density(np.zeros(2))
    with pytest.raises(ValueError, match="1 NaN"):
        swiss_roll.log_density(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="multiple of 8"):
        swiss_roll.log_density(np.zeros((1, 2)), n_nodes=100)


def test_prepare_writes_splits(tmp_path):
    path = swiss_roll.prepare(tmp_path / "roll.hdf5", n_train=300, n_test=100, seed=4)
    assert split_names(path) == ["test", "train"]

    train = H5Dataset(path, "train")
    test = H5Dataset(path, "test", load_in_memory=True)
    assert train.sources == ("features", "roll_parameter")
    assert train.num_examples == 300
    assert test.num_examples == 100
    assert train.dim_labels == {"features": ("batch", "feature"), "roll_parameter": ("batch",)}

    features, roll_parameter = test.get_data(slice(None))
    assert features.dtype == np.float64
    assert features.shape == (100, 2)
    # Each stored point lies within a few noise standard deviations of its roll point.
    residual = np.linalg.norm(features - swiss_roll.curve(roll_parameter), axis=1)
    assert residual.max() < 6 * swiss_roll.SCALED_NOISE_STD

    attrs = read_attrs(path)
    assert attrs["seed"] == 4
    assert attrs["noise_std"] == 0.25
    assert attrs["mean"] == swiss_roll.MEAN.tolist()
    assert attrs["scale"] == swiss_roll.SCALE
    assert attrs["generator_version"] == swiss_roll.GENERATOR_VERSION


def test_prepare_reproducible(tmp_path):
    first = swiss_roll.prepare(tmp_path / "a.hdf5", n_train=200, n_test=50, seed=4)
    second = swiss_roll.prepare(tmp_path / "b.hdf5", n_train=200, n_test=50, seed=4)
    other = swiss_roll.prepare(tmp_path / "c.hdf5", n_train=200, n_test=50, seed=5)
    longer = swiss_roll.prepare(tmp_path / "d.hdf5", n_train=400, n_test=50, seed=4)
    assert first.read_bytes() == second.read_bytes()

    def features(path, split):
        return H5Dataset(path, split).get_data(slice(None))[0]

    assert not np.allclose(features(first, "train"), features(other, "train"))
    # Train and test use separate streams, so more training points keep the test split.
    np.testing.assert_array_equal(features(first, "test"), features(longer, "test"))
    assert not np.allclose(features(first, "train")[:50], features(first, "test"))


def test_load_or_prepare(tmp_path, monkeypatch):
    monkeypatch.setenv("DPM_DATA", str(tmp_path / "data"))
    assert swiss_roll.default_path() == tmp_path / "data" / "swiss_roll.hdf5"

    path = swiss_roll.load_or_prepare(n_train=100, n_test=20)
    assert path == swiss_roll.default_path()
    created = path.read_bytes()
    assert swiss_roll.load_or_prepare(n_train=100, n_test=20) == path
    assert path.read_bytes() == created

    with pytest.raises(ValueError, match="n_train: file has 100, expected 200"):
        swiss_roll.load_or_prepare(n_train=200, n_test=20)
    swiss_roll.load_or_prepare(n_train=200, n_test=20, overwrite=True)
    assert H5Dataset(path, "train").num_examples == 200


def test_load_or_prepare_rejects_other_definition(tmp_path):
    # A file written with a different noise level, as an older definition would have.
    path = tmp_path / "old.hdf5"
    attrs = {**swiss_roll.definition_attrs(), "seed": 1, "n_train": 3, "n_test": 1}
    attrs["noise_std"] = 0.5
    write_dataset(
        path,
        {"features": (np.zeros((4, 2)), ("batch", "feature"))},
        {"train": (0, 3), "test": (3, 4)},
        attrs=attrs,
    )
    with pytest.raises(ValueError, match=r"noise_std: file has 0.5, expected 0.25.*delete") as error:
        swiss_roll.load_or_prepare(path, n_train=3, n_test=1, seed=1)
    assert str(path) in str(error.value)
