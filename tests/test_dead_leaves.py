"""Tests of the dead leaves generator in dpm.data.dead_leaves."""

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from dpm.data import dead_leaves
from dpm.data.hdf5 import H5Dataset, read_attrs, verify_checksums


def fit_truncated_power_law(radii, r_min, r_max):
    """Return the maximum likelihood exponent of p(r) ∝ r**-a on [r_min, r_max] and its standard error."""
    log_radii = np.log(radii)
    sum_log = log_radii.sum()

    def normalizer(a):
        return integrate.quad(lambda r: r**-a, r_min, r_max)[0]

    def negative_log_likelihood(a):
        return a * sum_log + radii.size * math.log(normalizer(a))

    fit = optimize.minimize_scalar(negative_log_likelihood, bounds=(-2.0, 8.0), method="bounded",
                                   options={"xatol": 1e-8})
    a = fit.x
    # The density is an exponential family in log r, so the Fisher information per
    # radius is the variance of log r under the fitted law.
    z = normalizer(a)
    mean_log = integrate.quad(lambda r: math.log(r) * r**-a, r_min, r_max)[0] / z
    mean_square_log = integrate.quad(lambda r: math.log(r) ** 2 * r**-a, r_min, r_max)[0] / z
    variance = mean_square_log - mean_log**2
    return a, 1.0 / math.sqrt(radii.size * variance)


@pytest.mark.parametrize(
    ("exponent", "r_min", "r_max"),
    [(3.0, 1.0, 32.0), (2.0, 1.5, 20.0), (1.0, 2.0, 16.0)],
)
def test_radii_follow_power_law(exponent, r_min, r_max):
    leaves = dead_leaves.render(6, np.random.default_rng(1), size=32, r_min=r_min, r_max=r_max,
                                exponent=exponent)
    radii = leaves.radius

    assert radii.size > 5000
    assert radii.min() >= r_min
    assert radii.max() <= r_max
    fitted, standard_error = fit_truncated_power_law(radii, r_min, r_max)
    assert abs(fitted - exponent) < 4 * standard_error, (fitted, standard_error)


@pytest.mark.parametrize(
    ("size", "r_min", "r_max"),
    [(32, 1.0, 64.0), ((17, 40), 0.3, 8.0), (5, 2.0, 3.0)],
)
def test_every_pixel_painted(size, r_min, r_max):
    leaves = dead_leaves.render(20, np.random.default_rng(2), size=size, r_min=r_min, r_max=r_max)

    np.testing.assert_array_equal(dead_leaves.unpainted_pixels(leaves.visible), np.zeros(20))
    assert leaves.visible.min() >= 0


def test_visible_disk_is_first_cover():
    # Brute force: for each pixel, test every disk drawn for its image in draw order.
    height, width, r_max = 10, 12, 5.0
    leaves = dead_leaves.render(3, np.random.default_rng(3), size=(height, width), r_min=0.5,
                                r_max=r_max)
    rows = (np.arange(height) + 0.5)[:, None]
    cols = (np.arange(width) + 0.5)[None, :]
    for image in range(3):
        disk_rows = np.flatnonzero(leaves.image_index == image)
        assert disk_rows.size % dead_leaves.DISKS_PER_ROUND == 0
        center_y = leaves.center_y[disk_rows][:, None, None]
        center_x = leaves.center_x[disk_rows][:, None, None]
        radius = leaves.radius[disk_rows][:, None, None]
        inside = (rows - center_y) ** 2 + (cols - center_x) ** 2 <= radius**2
        assert inside.any(axis=0).all()
        first = disk_rows[np.argmax(inside, axis=0)]

        np.testing.assert_array_equal(leaves.visible[image], first)
        expected = np.floor(leaves.grey[first] * 256).astype(np.uint8)
        np.testing.assert_array_equal(leaves.images[image], expected)


def test_centres_cover_enlarged_region():
    size, r_max = 16, 10.0
    leaves = dead_leaves.render(4, np.random.default_rng(4), size=size, r_max=r_max)

    for centres in (leaves.center_y, leaves.center_x):
        assert centres.min() >= -r_max
        assert centres.max() <= size + r_max
        assert centres.min() < -0.9 * r_max
        assert centres.max() > size + 0.9 * r_max


def test_grey_levels_uniform():
    leaves = dead_leaves.render(4, np.random.default_rng(5), size=16, r_max=16.0)
    levels = dead_leaves.quantize(leaves.grey)
    counts = np.bincount(levels, minlength=256)

    assert levels.dtype == np.uint8
    # Chi-square test of uniformity over 256 levels at the 1e-4 level.
    expected = levels.size / 256
    chi_square = ((counts - expected) ** 2 / expected).sum()
    from scipy import stats

    assert stats.chi2.sf(chi_square, df=255) > 1e-4


def test_sample_seeded_and_shaped():
    first = dead_leaves.sample(3, 7, size=(8, 9), r_max=8.0)
    second = dead_leaves.sample(3, 7, size=(8, 9), r_max=8.0)
    other = dead_leaves.sample(3, 8, size=(8, 9), r_max=8.0)

    assert first.shape == (3, 1, 8, 9)
    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_render_and_sample_agree():
    images = dead_leaves.sample(300, 9, size=8, r_max=8.0)
    leaves = dead_leaves.render(300, 9, size=8, r_max=8.0)

    np.testing.assert_array_equal(images[:, 0], leaves.images)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"r_min": 0.0}, ValueError, "r_min must be positive, got 0.0"),
        ({"r_min": 5.0, "r_max": 5.0}, ValueError, r"r_max \(5.0\) must be larger than r_min \(5.0\)"),
        ({"exponent": float("inf")}, ValueError, "exponent must be finite"),
        ({"r_max": "large"}, TypeError, "r_max must be a number"),
        ({"size": 0}, ValueError, "image height must be at least 1"),
        ({"r_min": 0.01, "r_max": 0.02}, ValueError, "more than 1000000; raise r_min or r_max"),
    ],
)
def test_invalid_parameters_rejected(arguments, error, message):
    with pytest.raises(error, match=message):
        dead_leaves.render(1, 0, **arguments)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    path = tmp_path_factory.mktemp("leaves") / "dead_leaves.hdf5"
    return dead_leaves.prepare(path, n_train=30, n_test=10, size=(16, 20), seed=11, r_max=16.0)


def test_prepared_file_layout(prepared):
    verify_checksums(prepared)
    attrs = read_attrs(prepared)
    train = H5Dataset(prepared, "train")
    test = H5Dataset(prepared, "test")
    (train_pixels,) = train.get_data(slice(None))

    assert train.sources == ("features",)
    assert train.num_examples == 30
    assert test.num_examples == 10
    assert train_pixels.dtype == np.uint8
    assert train_pixels.shape == (30, 1, 16, 20)
    assert train.dim_labels["features"] == ("batch", "channel", "height", "width")
    assert attrs["image_size"] == [16, 20]
    assert attrs["r_min"] == dead_leaves.R_MIN
    assert attrs["r_max"] == 16.0
    assert attrs["exponent"] == 3.0
    assert attrs["seed"] == 11
    assert "Theis et al. (2012)" in attrs["note"]
    assert "not public" in attrs["note"]
    assert attrs["train_mean"] == pytest.approx((train_pixels / 255).mean(), rel=1e-12)
    assert attrs["train_std"] == pytest.approx((train_pixels / 255).std(), rel=1e-12)


def test_prepared_matches_sample(prepared):
    train_stream, test_stream = np.random.SeedSequence(11).spawn(2)
    expected = dead_leaves.sample(10, np.random.default_rng(test_stream), size=(16, 20), r_max=16.0)
    (test_pixels,) = H5Dataset(prepared, "test").get_data(slice(None))

    np.testing.assert_array_equal(test_pixels, expected)


def test_test_split_independent_of_train_size(prepared, tmp_path):
    other = dead_leaves.prepare(tmp_path / "other.hdf5", n_train=5, n_test=10, size=(16, 20),
                                seed=11, r_max=16.0)
    (expected,) = H5Dataset(prepared, "test").get_data(slice(None))
    (actual,) = H5Dataset(other, "test").get_data(slice(None))

    np.testing.assert_array_equal(actual, expected)


def test_prepare_rejects_existing_file(prepared):
    before = prepared.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        dead_leaves.prepare(prepared, n_train=30, n_test=10, size=(16, 20), seed=11, r_max=16.0)
    assert prepared.read_bytes() == before


def test_load_or_prepare_reuses_and_checks(prepared):
    arguments = {"n_train": 30, "n_test": 10, "size": (16, 20), "seed": 11, "r_max": 16.0}
    before = prepared.stat().st_mtime_ns

    assert dead_leaves.load_or_prepare(prepared, **arguments) == prepared
    assert prepared.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match=r"r_max: file has 16.0, expected 12.0"):
        dead_leaves.load_or_prepare(prepared, **{**arguments, "r_max": 12.0})


def test_prepare_default_path_and_from_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DPM_DATA", str(tmp_path))
    path = dead_leaves.prepare(from_dir=tmp_path / "unused", n_train=2, n_test=1, size=8, r_max=8.0)

    assert path == tmp_path / "dead_leaves.hdf5"
    assert path.exists()
    assert [entry.name for entry in tmp_path.iterdir()] == ["dead_leaves.hdf5"]
