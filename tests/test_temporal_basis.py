"""Tests of the Gaussian bump basis over time steps, dpm.bricks.temporal.

The basis is checked against its definition evaluated directly with NumPy, the readout
against explicit loops over pixels, and both in float64 with one compiled function.
"""

import numpy as np
import pytensor.tensor as pt
import pytest

from dpm import backend
from dpm.bricks import TemporalBasis, bump_basis

N_STEPS = 7
N_BASIS = 4
COLORS = 2


# Everything in this module is built and compiled in float64 (the fixture is in conftest.py).
pytestmark = pytest.mark.usefixtures("float64_mode")


def gaussian_bump(position, center, std):
    return np.exp(-((position - center) ** 2) / (2 * std**2))


# The basis matrix ---------------------------------------------------------------------


@pytest.mark.parametrize("width", ["reference", "paper", 0.3])
def test_basis_rows_sum_to_one(width):
    basis = bump_basis(N_STEPS, N_BASIS, width)

    assert basis.shape == (N_STEPS, N_BASIS)
    assert np.all(basis > 0)
    np.testing.assert_allclose(basis.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("width, std", [("reference", 1 / 3), ("paper", 2 / 3), (0.25, 0.25)])
def test_basis_matches_definition(width, std):
    # 4 centres on [-1, 1] are 2/3 apart: -1, -1/3, 1/3, 1.
    centers = [-1.0, -1.0 / 3.0, 1.0 / 3.0, 1.0]
    basis = bump_basis(N_STEPS, N_BASIS, width)

    for t in range(N_STEPS):
        position = -1.0 + 2.0 * t / (N_STEPS - 1)
        bumps = np.array([gaussian_bump(position, center, std) for center in centers])
        np.testing.assert_allclose(basis[t], bumps / bumps.sum(), rtol=1e-13)


def test_bump_peaks_at_its_center():
    # With 7 steps and 4 bumps, the centres fall on steps 0, 2, 4 and 6.
    basis = bump_basis(N_STEPS, N_BASIS, "reference")

    for bump, step in enumerate([0, 2, 4, 6]):
        assert np.argmax(basis[:, bump]) == step
        assert np.argmax(basis[step]) == bump


def test_wider_bumps_overlap_more():
    narrow = bump_basis(N_STEPS, N_BASIS, "reference")
    wide = bump_basis(N_STEPS, N_BASIS, "paper")

    # At a centre, the bump centred there has a smaller share when bumps are wider.
    assert wide[0, 0] < narrow[0, 0]
    assert wide[2, 1] < narrow[2, 1]


@pytest.mark.parametrize("width", ["gaussian", 0, -1.0, float("inf"), True])
def test_basis_rejects_invalid_width(width):
    with pytest.raises(ValueError, match="width"):
        bump_basis(N_STEPS, N_BASIS, width)


@pytest.mark.parametrize("n_steps, n_basis", [(1, 4), (7, 1), (0, 4), (7, 2.5)])
def test_basis_rejects_too_few_steps_or_bumps(n_steps, n_basis):
    with pytest.raises(ValueError, match="n_steps|n_basis"):
        bump_basis(n_steps, n_basis)


def test_temporal_basis_has_no_parameters():
    brick = TemporalBasis(N_STEPS, N_BASIS)

    assert brick.all_parameters == []
    assert brick.n_steps == N_STEPS
    assert brick.n_basis == N_BASIS
    np.testing.assert_array_equal(brick.basis, bump_basis(N_STEPS, N_BASIS, "reference"))


def test_temporal_basis_default_has_ten_bumps():
    assert TemporalBasis(1000).basis.shape == (1000, 10)


# Compiled readout ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def readout():
    """Compile row lookup and readout for integer, fractional and scalar steps at once."""
    brick = TemporalBasis(N_STEPS, N_BASIS, width="paper")
    integer_steps = pt.lvector("integer_steps")
    float_steps = pt.vector("float_steps")
    scalar_step = pt.scalar("scalar_step")
    z = pt.tensor4("z", shape=(None, COLORS * 2 * N_BASIS, None, None))
    outputs = [
        brick.coefficients_at(integer_steps),
        brick.coefficients_at(float_steps),
        brick.coefficients_at(scalar_step),
        *brick.apply(z, float_steps),
        *brick.apply(z, scalar_step),
    ]
    function = backend.compile_function([integer_steps, float_steps, scalar_step, z], outputs)
    return brick, function


def test_integer_steps_select_rows(readout):
    brick, function = readout
    steps = np.array([0, 3, 6, 3])

    rows = function(steps, steps.astype(float), 0.0, np.zeros((4, 16, 1, 1)))[0]

    np.testing.assert_allclose(rows, brick.basis[steps], rtol=1e-14)


def test_fractional_steps_mix_neighbouring_rows(readout):
    brick, function = readout
    steps = np.array([0.0, 2.25, 5.5, 6.0, 0.9])

    rows = function(np.zeros(1, dtype=np.int64), steps, 0.0, np.zeros((5, 16, 1, 1)))[1]

    basis = brick.basis
    expected = [
        basis[0],
        0.75 * basis[2] + 0.25 * basis[3],
        0.5 * basis[5] + 0.5 * basis[6],
        basis[6],
        0.1 * basis[0] + 0.9 * basis[1],
    ]
    np.testing.assert_allclose(rows, expected, rtol=1e-12)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-12)


def test_scalar_step_gives_one_row(readout):
    brick, function = readout

    row = function(np.zeros(1, dtype=np.int64), np.zeros(1), 4.5, np.zeros((1, 16, 1, 1)))[2]

    np.testing.assert_allclose(row, 0.5 * brick.basis[4] + 0.5 * brick.basis[5], rtol=1e-12)


def reference_readout(z, rows):
    """Loop over examples, colors and pixels: dot the 2J coefficients with the basis row."""
    batch, _, height, width = z.shape
    means = np.zeros((batch, COLORS, height, width))
    variances = np.zeros((batch, COLORS, height, width))
    for n in range(batch):
        for c in range(COLORS):
            for h in range(height):
                for w in range(width):
                    start = c * 2 * N_BASIS
                    means[n, c, h, w] = z[n, start:start + N_BASIS, h, w] @ rows[n]
                    variances[n, c, h, w] = z[n, start + N_BASIS:start + 2 * N_BASIS, h, w] @ rows[n]
    return means, variances


def test_readout_matches_loops(readout):
    brick, function = readout
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, COLORS * 2 * N_BASIS, 4, 5))
    steps = np.array([0.0, 2.5, 6.0])

    results = function(np.zeros(1, dtype=np.int64), steps, 1.25, z)

    rows = results[1]
    expected_means, expected_variances = reference_readout(z, rows)
    np.testing.assert_allclose(results[3], expected_means, rtol=1e-12)
    np.testing.assert_allclose(results[4], expected_variances, rtol=1e-12)
    scalar_rows = np.tile(results[2], (3, 1))
    expected_means, expected_variances = reference_readout(z, scalar_rows)
    np.testing.assert_allclose(results[5], expected_means, rtol=1e-12)
    np.testing.assert_allclose(results[6], expected_variances, rtol=1e-12)


@pytest.mark.parametrize("steps", [np.array([-0.5, 1.0]), np.array([1.0, 6.01])])
def test_steps_out_of_range_fail(readout, steps):
    _, function = readout

    with pytest.raises(AssertionError, match=r"every step t must be in \[0, 6\]"):
        function(np.zeros(1, dtype=np.int64), steps, 0.0, np.zeros((2, 16, 1, 1)))


def test_readout_rejects_wrong_channel_count():
    brick = TemporalBasis(N_STEPS, N_BASIS)
    z = pt.tensor4("z", shape=(None, 10, None, None))

    with pytest.raises(ValueError, match="multiple of 2 \\* n_basis = 8, got 10"):
        brick.apply(z, pt.vector("t"))


def test_coefficients_reject_matrix_steps():
    brick = TemporalBasis(N_STEPS, N_BASIS)

    with pytest.raises(TypeError, match="scalar or vector"):
        brick.coefficients_at(pt.matrix("t"))
