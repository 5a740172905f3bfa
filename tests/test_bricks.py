"""Tests of dpm.bricks against independent NumPy and SciPy computations in float64.

Compiled functions are built once per module fixture, because each PyTensor compile
costs seconds.
"""

import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import expit, softmax

from dpm import backend
from dpm.bricks import (
    BIAS,
    CENTER,
    MLP,
    PARAMETER,
    WEIGHT,
    WIDTH,
    Brick,
    Constant,
    Identity,
    IsotropicGaussian,
    LeakyRectifier,
    Linear,
    Logistic,
    NormalizedRBF,
    Orthogonal,
    PerStepReadout,
    Rectifier,
    Softplus,
    Tanh,
    Uniform,
    add_role,
    bump_basis,
    has_role,
)


# Everything in this module is built and compiled in float64 (the fixture is in conftest.py).
pytestmark = pytest.mark.usefixtures("float64_mode")


def make_network():
    """Return a small tree of bricks with every kind of parameter, not yet initialized."""
    rbf = NormalizedRBF(2, 16, name="rbf")
    readout = PerStepReadout(16, 4, 3, Orthogonal(), IsotropicGaussian(0.1), name="readout")
    mlp = MLP([Tanh(), None], [2, 5, 3], IsotropicGaussian(0.5), Constant(0.25), name="mlp")
    return Brick(name="swiss_roll", children=[rbf, readout, mlp])


# Roles -------------------------------------------------------------------------------


def test_roles_follow_hierarchy():
    variable = pytensor.shared(np.zeros(2))
    add_role(variable, WEIGHT)
    add_role(variable, WEIGHT)

    assert variable.tag.roles == [WEIGHT]
    assert has_role(variable, WEIGHT)
    assert has_role(variable, PARAMETER)
    assert not has_role(variable, BIAS)


def test_add_role_rejects_non_role():
    variable = pytensor.shared(np.zeros(2))
    with pytest.raises(TypeError, match="ParameterRole"):
        add_role(variable, "weight")


def test_brick_parameters_have_roles():
    linear = Linear(2, 3, IsotropicGaussian())
    rbf = NormalizedRBF(2, 4)
    readout = PerStepReadout(4, 2, 5, IsotropicGaussian())

    assert has_role(linear.W, WEIGHT)
    assert has_role(linear.b, BIAS)
    assert has_role(rbf.centers, CENTER)
    assert has_role(rbf.log_widths, WIDTH)
    assert has_role(readout.W, WEIGHT)
    assert has_role(readout.b, BIAS)
    assert not has_role(rbf.centers, WEIGHT)


# Names and tree structure ------------------------------------------------------------


def test_parameter_paths_follow_tree():
    network = make_network()
    rbf, readout, mlp = network.children

    assert [variable.name for variable in network.all_parameters] == [
        "swiss_roll/rbf.centers",
        "swiss_roll/rbf.log_widths",
        "swiss_roll/readout.W",
        "swiss_roll/readout.b",
        "swiss_roll/mlp/linear_0.W",
        "swiss_roll/mlp/linear_0.b",
        "swiss_roll/mlp/linear_1.W",
        "swiss_roll/mlp/linear_1.b",
    ]
    assert rbf.path == "swiss_roll/rbf"
    assert [variable.name for variable in rbf.parameters] == [
        "swiss_roll/rbf.centers",
        "swiss_roll/rbf.log_widths",
    ]
    assert network.parameters == []
    assert mlp.parent is network


def test_paths_update_after_rename_and_attach():
    linear = Linear(2, 3, IsotropicGaussian(), name="first")
    mlp = MLP([Tanh()], [3, 3], IsotropicGaussian(), name="net")
    assert linear.W.name == "first.W"

    root = Brick(name="model")
    root.add_child(linear)
    root.add_child(mlp)
    assert linear.W.name == "model/first.W"
    assert mlp.linear_transformations[0].W.name == "model/net/linear_0.W"

    root.name = "renamed"
    mlp.name = "deep"
    assert linear.b.name == "renamed/first.b"
    assert mlp.linear_transformations[0].b.name == "renamed/deep/linear_0.b"

    root.children = [mlp]
    assert linear.parent is None
    assert linear.W.name == "first.W"
    assert [variable.name for variable in root.all_parameters] == [
        "renamed/deep/linear_0.W",
        "renamed/deep/linear_0.b",
    ]


def test_duplicate_paths_raise():
    root = Brick(
        name="root",
        children=[
            Linear(2, 2, IsotropicGaussian(), name="layer"),
            Linear(2, 2, IsotropicGaussian(), name="layer"),
        ],
    )
    with pytest.raises(ValueError, match="'root/layer.W'"):
        root.all_parameters


def test_brick_tree_rejects_invalid_links():
    child = Linear(2, 2, IsotropicGaussian(), name="child")
    parent = Brick(name="parent", children=[child])

    with pytest.raises(ValueError, match="already has a parent"):
        Brick(name="other", children=[child])
    with pytest.raises(ValueError, match="listed twice"):
        Brick(name="other", children=[Identity(), *[Tanh()] * 2])
    with pytest.raises(ValueError, match="ancestors"):
        child.add_child(parent)
    with pytest.raises(TypeError, match="must be Bricks"):
        Brick(name="other", children=["tanh"])
    # A failed assignment leaves the tree as it was.
    assert parent.children == (child,)
    assert child.parent is parent


def test_brick_names_reject_separators():
    with pytest.raises(ValueError, match="'a/b'"):
        Brick(name="a/b")
    with pytest.raises(ValueError, match="'a.b'"):
        Linear(2, 2, IsotropicGaussian(), name="a.b")
    with pytest.raises(ValueError, match="non-empty"):
        Brick(name="")


def test_default_brick_names():
    assert NormalizedRBF(2, 3).name == "normalized_rbf"
    assert PerStepReadout(2, 2, 2, IsotropicGaussian()).name == "per_step_readout"
    assert MLP([None], [2, 2], IsotropicGaussian()).name == "mlp"
    assert LeakyRectifier().name == "leaky_rectifier"
    assert Brick().name == "brick"


def test_parameter_free_activation_serves_two_mlps():
    # The authors' code passes one LeakyRectifier instance to several MLPs.
    activation = LeakyRectifier()
    lower = MLP([activation, activation], [2, 3, 3], IsotropicGaussian(), name="lower")
    upper = MLP([activation], [3, 1], IsotropicGaussian(), name="upper")
    root = Brick(name="root", children=[lower, upper])

    assert activation.parent is None
    assert len(root.all_parameters) == 6


def test_parameter_lookup_by_local_name():
    linear = Linear(2, 3, IsotropicGaussian(), use_bias=False)
    assert linear.get_parameter("W") is linear.W
    with pytest.raises(KeyError, match="no parameter named 'b'"):
        linear.b


# Initialization ----------------------------------------------------------------------


def test_initialize_same_seed_same_values():
    first = make_network()
    second = make_network()
    first.initialize(np.random.default_rng(5))
    second.initialize(np.random.default_rng(5))
    first_values = first.get_parameter_values()
    second_values = second.get_parameter_values()

    assert list(first_values) == list(second_values)
    for path, value in first_values.items():
        np.testing.assert_array_equal(value, second_values[path], err_msg=path)
        assert np.all(np.isfinite(value)), path


def test_initialize_different_seed_different_values():
    network = make_network()
    network.initialize(np.random.default_rng(5))
    first_values = network.get_parameter_values()
    network.initialize(np.random.default_rng(6))
    second_values = network.get_parameter_values()

    for path in ("swiss_roll/rbf.centers", "swiss_roll/readout.W", "swiss_roll/mlp/linear_1.W"):
        assert not np.array_equal(first_values[path], second_values[path]), path
    # Constant schemes draw nothing, so their values do not depend on the seed.
    np.testing.assert_array_equal(first_values["swiss_roll/mlp/linear_0.b"], 0.25)
    np.testing.assert_array_equal(
        first_values["swiss_roll/rbf.log_widths"], second_values["swiss_roll/rbf.log_widths"]
    )


def test_parameters_nan_before_initialize():
    linear = Linear(2, 3, IsotropicGaussian())
    assert np.all(np.isnan(linear.W.get_value()))


def test_initialize_rejects_integer_seed():
    with pytest.raises(TypeError, match="default_rng"):
        make_network().initialize(5)


def test_parameters_use_floatx():
    assert Linear(2, 3, IsotropicGaussian()).W.dtype == "float64"
    with pytensor.config.change_flags(floatX="float32"):
        linear = Linear(2, 3, IsotropicGaussian())
        linear.initialize(np.random.default_rng(0))
    assert linear.W.dtype == "float32"
    assert linear.W.get_value().dtype == np.float32


# Initialization schemes ---------------------------------------------------------------


def test_gaussian_scheme_statistics():
    std, mean = 2.5, -1.0
    values = IsotropicGaussian(std=std, mean=mean).generate(np.random.default_rng(0), (400, 500))
    count = values.size

    assert values.shape == (400, 500)
    assert values.dtype == np.float64
    # Five standard errors: a correct scheme fails about once in 1.7 million runs.
    assert abs(values.mean() - mean) < 5 * std / math.sqrt(count)
    assert abs(values.std() - std) < 5 * std / math.sqrt(2 * count)


def test_uniform_scheme_width():
    values = Uniform(mean=1.0, width=4.0).generate(np.random.default_rng(1), (200_000,))
    count = values.size

    assert values.min() >= -1.0
    assert values.max() < 3.0
    # With 200000 draws the extremes come within 1e-3 of the bounds almost surely.
    assert values.min() < -1.0 + 1e-3
    assert values.max() > 3.0 - 1e-3
    assert abs(values.mean() - 1.0) < 5 * (4.0 / math.sqrt(12)) / math.sqrt(count)


def test_uniform_scheme_std():
    std = 0.5
    values = Uniform(std=std).generate(np.random.default_rng(2), (200_000,))
    count = values.size

    assert abs(values.max() + values.min()) < 1e-3
    # The sample std of a uniform variable has standard error std * sqrt(0.2 / n),
    # from its kurtosis of 9/5.
    assert abs(values.std() - std) < 5 * std * math.sqrt(0.2 / count)


def test_uniform_scheme_needs_exactly_one_spread():
    with pytest.raises(ValueError, match="exactly one"):
        Uniform()
    with pytest.raises(ValueError, match="exactly one"):
        Uniform(width=1.0, std=1.0)


def test_constant_scheme_broadcasts():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(Constant(2.0).generate(rng, (2, 3)), np.full((2, 3), 2.0))
    np.testing.assert_array_equal(
        Constant([1.0, 2.0, 3.0]).generate(rng, (2, 3)), [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    )
    with pytest.raises(ValueError, match="does not broadcast"):
        Constant([1.0, 2.0]).generate(rng, (2, 3))


def test_orthogonal_scheme_orthonormal():
    rng = np.random.default_rng(3)

    square = Orthogonal().generate(rng, (6, 6))
    np.testing.assert_allclose(square @ square.T, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(square.T @ square, np.eye(6), atol=1e-12)

    tall = Orthogonal().generate(rng, (7, 3))
    assert tall.shape == (7, 3)
    np.testing.assert_allclose(tall.T @ tall, np.eye(3), atol=1e-12)

    wide = Orthogonal().generate(rng, (3, 7))
    assert wide.shape == (3, 7)
    np.testing.assert_allclose(wide @ wide.T, np.eye(3), atol=1e-12)

    scaled = Orthogonal(scale=2.0).generate(rng, (4, 4))
    np.testing.assert_allclose(scaled @ scaled.T, 4.0 * np.eye(4), atol=1e-12)

    stacked = Orthogonal().generate(rng, (5, 4, 2))
    assert stacked.shape == (5, 4, 2)
    for matrix in stacked:
        np.testing.assert_allclose(matrix.T @ matrix, np.eye(2), atol=1e-12)

    with pytest.raises(ValueError, match="at least 2 dimensions"):
        Orthogonal().generate(rng, (5,))


def test_orthogonal_scheme_haar_distributed():
    # Under the Haar measure on O(3), each entry has mean 0 and variance 1/3, and the
    # determinant is +1 or -1 with probability 1/2. Without the sign correction,
    # LAPACK's QR makes Q[0, 0] negative in every draw.
    count = 4000
    matrices = Orthogonal().generate(np.random.default_rng(4), (count, 3, 3))

    for row, col in [(0, 0), (1, 1), (2, 2), (0, 2)]:
        entries = matrices[:, row, col]
        assert abs(entries.mean()) < 5 * math.sqrt(1 / 3 / count), (row, col)
        assert abs(entries.var() - 1 / 3) < 0.05, (row, col)
    positive_fraction = np.mean(np.linalg.det(matrices) > 0)
    assert abs(positive_fraction - 0.5) < 5 * 0.5 / math.sqrt(count)


# Activations ---------------------------------------------------------------------------

ACTIVATION_INPUTS = np.array([-60.0, -5.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 5.0, 60.0])


@pytest.fixture(scope="module")
def activation_outputs(float64_mode):
    x = pt.vector("x")
    bricks = [
        Identity(),
        Tanh(),
        Logistic(),
        Softplus(),
        Rectifier(),
        LeakyRectifier(),
        LeakyRectifier(0.2),
    ]
    function = backend.compile_function([x], [brick.apply(x) for brick in bricks])
    return function(ACTIVATION_INPUTS)


def test_activations_match_numpy(activation_outputs):
    x = ACTIVATION_INPUTS
    expected = [
        x,
        np.tanh(x),
        expit(x),
        np.logaddexp(0.0, x),
        np.maximum(x, 0.0),
        np.where(x > 0, x, 0.05 * x),
        np.where(x > 0, x, 0.2 * x),
    ]
    names = ["identity", "tanh", "logistic", "softplus", "rectifier", "leaky 0.05", "leaky 0.2"]
    for name, output, reference in zip(names, activation_outputs, expected):
        np.testing.assert_allclose(output, reference, rtol=1e-12, atol=0, err_msg=name)


def test_softplus_float32_extremes():
    with pytensor.config.change_flags(floatX="float32"):
        x = pt.vector("x")
        output = Softplus().apply(x)
        gradient = pytensor.grad(output.sum(), x)
        function = backend.compile_function([x], [output, gradient])
    inputs = np.array([-100.0, -50.0, -20.0, 0.0, 20.0, 50.0, 100.0], dtype=np.float32)
    values, gradients = function(inputs)

    assert values.dtype == np.float32
    assert np.all(np.isfinite(values))
    assert np.all(np.isfinite(gradients))
    # softplus(-100) = 3.7e-44 is subnormal in float32 and keeps only a few bits, so
    # values below the smallest normal float32 (1.2e-38) are compared absolutely.
    reference = np.logaddexp(0.0, inputs.astype(np.float64))
    np.testing.assert_allclose(values, reference, rtol=1e-6, atol=1e-38)
    np.testing.assert_allclose(gradients, expit(inputs.astype(np.float64)), rtol=1e-6, atol=1e-38)


def test_leaky_rectifier_rejects_invalid_slope():
    with pytest.raises(ValueError, match="slope"):
        LeakyRectifier(slope=float("nan"))


# Linear and MLP ------------------------------------------------------------------------


def test_linear_matches_numpy():
    with_bias = Linear(3, 4, IsotropicGaussian(), IsotropicGaussian(), name="with_bias")
    without_bias = Linear(3, 4, IsotropicGaussian(), use_bias=False, name="without_bias")
    root = Brick(name="root", children=[with_bias, without_bias])
    root.initialize(np.random.default_rng(7))
    x = pt.matrix("x")
    function = backend.compile_function([x], [with_bias.apply(x), without_bias.apply(x)])

    inputs = np.random.default_rng(8).normal(size=(5, 3))
    biased, unbiased = function(inputs)

    values = root.get_parameter_values()
    np.testing.assert_allclose(
        biased, inputs @ values["root/with_bias.W"] + values["root/with_bias.b"], rtol=1e-12
    )
    np.testing.assert_allclose(unbiased, inputs @ values["root/without_bias.W"], rtol=1e-12)
    assert [variable.name for variable in without_bias.parameters] == ["root/without_bias.W"]


def test_mlp_matches_numpy():
    activations = [Tanh(), LeakyRectifier(), None]
    mlp = MLP(activations, [3, 5, 4, 2], IsotropicGaussian(0.8), IsotropicGaussian(0.1))
    mlp.initialize(np.random.default_rng(9))
    x = pt.matrix("x")
    function = backend.compile_function([x], mlp.apply(x))

    inputs = np.random.default_rng(10).normal(size=(6, 3))
    values = mlp.get_parameter_values()
    hidden = np.tanh(inputs @ values["mlp/linear_0.W"] + values["mlp/linear_0.b"])
    hidden = hidden @ values["mlp/linear_1.W"] + values["mlp/linear_1.b"]
    hidden = np.where(hidden > 0, hidden, 0.05 * hidden)
    expected = hidden @ values["mlp/linear_2.W"] + values["mlp/linear_2.b"]

    np.testing.assert_allclose(function(inputs), expected, rtol=1e-12)


def test_mlp_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 activations and 2 dims"):
        MLP([Tanh(), Tanh()], [3, 4], IsotropicGaussian())
    with pytest.raises(ValueError, match="at least one layer"):
        MLP([], [3], IsotropicGaussian())
    with pytest.raises(ValueError, match="positive integer"):
        MLP([Tanh()], [3, 0], IsotropicGaussian())
    with pytest.raises(TypeError, match="Brick with apply"):
        MLP([np.tanh], [3, 4], IsotropicGaussian())


# Normalized RBF ------------------------------------------------------------------------


def numpy_rbf(x, centers, log_widths):
    """Normalized RBF activations in float64, written independently of the brick."""
    squared_distances = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    logits = -squared_distances / (2.0 * np.exp(log_widths) ** 2)
    return softmax(logits, axis=1)


@pytest.fixture(scope="module")
def rbf_case(float64_mode):
    rbf = NormalizedRBF(3, 5, log_widths_init=Uniform(mean=math.log(0.8), width=0.5))
    rbf.initialize(np.random.default_rng(11))
    x = pt.matrix("x")
    weights = pt.matrix("weights")
    output = rbf.apply(x)
    # A weighted sum makes every output element matter to the gradient.
    loss = pt.sum(output * weights)
    gradients = pytensor.grad(loss, [x, rbf.centers, rbf.log_widths])
    function = backend.compile_function([x, weights], [output, *gradients])
    return rbf, function


def test_rbf_matches_numpy(rbf_case):
    rbf, function = rbf_case
    inputs = np.random.default_rng(12).normal(size=(7, 3))
    weights = np.zeros((7, 5))
    output = function(inputs, weights)[0]

    expected = numpy_rbf(inputs, rbf.centers.get_value(), rbf.log_widths.get_value())
    np.testing.assert_allclose(output, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-12)


def test_rbf_gradient_matches_finite_differences(rbf_case):
    rbf, function = rbf_case
    rng = np.random.default_rng(13)
    inputs = rng.normal(size=(4, 3))
    weights = rng.normal(size=(4, 5))
    arguments = [inputs, rbf.centers.get_value(), rbf.log_widths.get_value()]
    gradients = function(inputs, weights)[1:]

    def loss(values):
        return np.sum(numpy_rbf(*values) * weights)

    step = 1e-6
    for index, (name, gradient) in enumerate(zip(["x", "centers", "log_widths"], gradients)):
        numeric = np.zeros_like(arguments[index])
        for position in np.ndindex(numeric.shape):
            shifted = [value.copy() for value in arguments]
            shifted[index][position] += step
            above = loss(shifted)
            shifted[index][position] -= 2 * step
            below = loss(shifted)
            numeric[position] = (above - below) / (2 * step)
        # Central differences with step 1e-6 have error near 1e-10 here.
        np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_rbf_stable_far_from_centers_float32():
    with pytensor.config.change_flags(floatX="float32"):
        rbf = NormalizedRBF(2, 16)
        rbf.initialize(np.random.default_rng(14))
        x = pt.matrix("x")
        output = rbf.apply(x)
        gradients = pytensor.grad(pt.sum(output[:, 0]), [x, rbf.centers, rbf.log_widths])
        function = backend.compile_function([x], [output, *gradients])

    inputs = np.array(
        [[1e3, 1e3], [-1e3, 0.0], [0.0, 1e3], [1e3, -1e3], [-1e3, -1e3], [0.0, 0.0]],
        dtype=np.float32,
    )
    output, *gradients = function(inputs)

    assert output.dtype == np.float32
    assert np.all(np.isfinite(output))
    for gradient in gradients:
        assert np.all(np.isfinite(gradient))
    np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-5)
    expected = numpy_rbf(
        inputs.astype(np.float64),
        rbf.centers.get_value().astype(np.float64),
        rbf.log_widths.get_value().astype(np.float64),
    )
    np.testing.assert_array_equal(output.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(output, expected, atol=1e-4)


# Per-step readout ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def readout_case(float64_mode):
    readout = PerStepReadout(4, 3, 6, IsotropicGaussian(), IsotropicGaussian())
    readout.initialize(np.random.default_rng(15))
    h = pt.matrix("h")
    steps = pt.lvector("steps")
    single_step = pt.lscalar("single_step")
    weights = pt.matrix("weights")
    output = readout.apply(h, steps)
    loss = pt.sum(output * weights)
    gradients = pytensor.grad(loss, [readout.W, readout.b, h])
    function = backend.compile_function(
        [h, steps, single_step, weights], [output, *gradients, readout.apply(h, single_step)]
    )
    return readout, function


READOUT_STEPS = np.array([0, 5, 2, 2, 5, 0, 3])


def test_readout_matches_numpy_loop(readout_case):
    readout, function = readout_case
    rng = np.random.default_rng(16)
    h = rng.normal(size=(7, 4))
    output = function(h, READOUT_STEPS, 0, np.zeros((7, 3)))[0]

    W = readout.W.get_value()
    b = readout.b.get_value()
    expected = np.stack([h[i] @ W[step] + b[step] for i, step in enumerate(READOUT_STEPS)])
    np.testing.assert_allclose(output, expected, rtol=1e-12)


def test_readout_gradient_matches_numpy_loop(readout_case):
    readout, function = readout_case
    rng = np.random.default_rng(17)
    h = rng.normal(size=(7, 4))
    weights = rng.normal(size=(7, 3))
    _, grad_W, grad_b, grad_h, _ = function(h, READOUT_STEPS, 0, weights)

    W = readout.W.get_value()
    expected_W = np.zeros_like(W)
    expected_b = np.zeros_like(readout.b.get_value())
    expected_h = np.zeros_like(h)
    for i, step in enumerate(READOUT_STEPS):
        expected_W[step] += np.outer(h[i], weights[i])
        expected_b[step] += weights[i]
        expected_h[i] = W[step] @ weights[i]

    np.testing.assert_allclose(grad_W, expected_W, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad_b, expected_b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad_h, expected_h, rtol=1e-12, atol=1e-14)
    # Steps 1 and 4 are unused, so their parameters get no gradient.
    assert np.all(grad_W[[1, 4]] == 0)


def test_readout_scalar_step(readout_case):
    readout, function = readout_case
    h = np.random.default_rng(18).normal(size=(3, 4))
    output = function(h, np.array([4, 4, 4]), 4, np.zeros((3, 3)))[-1]

    expected = h @ readout.W.get_value()[4] + readout.b.get_value()[4]
    np.testing.assert_allclose(output, expected, rtol=1e-12)


def test_readout_rejects_out_of_range_steps(readout_case):
    _, function = readout_case
    h = np.zeros((2, 4))
    for steps in ([0, 6], [-1, 0]):
        with pytest.raises(AssertionError, match=r"every step must be in \[0, 6\)"):
            function(h, np.array(steps), 0, np.zeros((2, 3)))


@pytest.fixture(scope="module")
def basis_readout_case(float64_mode):
    """A readout with a shared part of 3 bumps over 6 steps, every parameter non-zero."""
    readout = PerStepReadout(4, 3, 6, IsotropicGaussian(), IsotropicGaussian(), n_basis=3)
    readout.initialize(np.random.default_rng(24))
    rng = np.random.default_rng(25)
    for name in ("W_basis", "b_basis"):
        parameter = readout.get_parameter(name)
        parameter.set_value(rng.normal(size=parameter.get_value().shape))
    h = pt.matrix("h")
    steps = pt.ivector("steps")
    weights = pt.matrix("weights")
    grouped = readout.apply(pt.specify_shape(h, (6, 4)), steps, n_groups=3)
    per_example = readout.apply(h, steps)
    parameters = [readout.W, readout.b, readout.get_parameter("W_basis"), readout.get_parameter("b_basis")]
    outputs = []
    for output in (per_example, grouped):
        outputs += [output, *pytensor.grad(pt.sum(output * weights), parameters)]
    function = backend.compile_function([h, steps, weights], outputs)
    return readout, function


def numpy_basis_readout(readout, h, steps, weights):
    """Return the output and the gradients of ``sum(output * weights)`` by loops in float64."""
    B = bump_basis(6, 3)
    W, b = readout.W.get_value(), readout.b.get_value()
    W_basis = readout.get_parameter("W_basis").get_value()
    b_basis = readout.get_parameter("b_basis").get_value()
    output = np.empty((len(h), 3))
    grads = [np.zeros_like(W), np.zeros_like(b), np.zeros_like(W_basis), np.zeros_like(b_basis)]
    for i, s in enumerate(steps):
        map_W = W[s] + sum(B[s, j] * W_basis[j] for j in range(3))
        map_b = b[s] + sum(B[s, j] * b_basis[j] for j in range(3))
        output[i] = h[i] @ map_W + map_b
        grads[0][s] += np.outer(h[i], weights[i])
        grads[1][s] += weights[i]
        for j in range(3):
            grads[2][j] += B[s, j] * np.outer(h[i], weights[i])
            grads[3][j] += B[s, j] * weights[i]
    return [output, *grads]


def test_basis_readout_matches_numpy_loop(basis_readout_case):
    readout, function = basis_readout_case
    rng = np.random.default_rng(26)
    h, weights = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    steps = np.array([5, 5, 0, 0, 2, 2], dtype=np.int32)
    values = function(h, steps, weights)
    expected = numpy_basis_readout(readout, h, steps, weights)
    # Per-example and grouped paths, each an output and four gradients.
    for got, want in zip(values, expected + expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_basis_readout_step_maps(basis_readout_case):
    readout, _ = basis_readout_case
    W, b = readout.step_maps()
    B = bump_basis(6, 3)
    W_basis = readout.get_parameter("W_basis").get_value()
    np.testing.assert_allclose(W[4], readout.W.get_value()[4] + np.einsum("j,jkl->kl", B[4], W_basis))
    np.testing.assert_allclose(b, readout.b.get_value() + B @ readout.get_parameter("b_basis").get_value())


def test_basis_readout_starts_as_plain_readout():
    plain = PerStepReadout(4, 3, 6, IsotropicGaussian(), IsotropicGaussian())
    shared = PerStepReadout(4, 3, 6, IsotropicGaussian(), IsotropicGaussian(), n_basis=4)
    plain.initialize(np.random.default_rng(27))
    shared.initialize(np.random.default_rng(27))
    for mine, theirs in zip(shared.step_maps(), plain.step_maps()):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("n_basis", [1, -2, 2.5, True])
def test_basis_readout_rejects_bad_n_basis(n_basis):
    with pytest.raises(ValueError, match="n_basis must be 0"):
        PerStepReadout(4, 3, 6, IsotropicGaussian(), n_basis=n_basis)


def test_readout_rejects_float_steps():
    readout = PerStepReadout(4, 3, 6, IsotropicGaussian())
    with pytest.raises(TypeError, match="integer"):
        readout.apply(pt.matrix("h"), pt.vector("steps"))


# Parameter values ------------------------------------------------------------------------


def test_parameter_values_round_trip():
    source = make_network()
    source.initialize(np.random.default_rng(19))
    values = source.get_parameter_values()
    target = make_network()
    target.initialize(np.random.default_rng(20))

    target.set_parameter_values(values)

    copied = target.get_parameter_values()
    assert list(copied) == list(values)
    for path, value in values.items():
        np.testing.assert_array_equal(copied[path], value, err_msg=path)
    # The returned arrays are copies, so editing them leaves the parameters alone.
    values["swiss_roll/rbf.centers"][:] = 0.0
    assert not np.all(source.children[0].centers.get_value() == 0.0)


def test_set_parameter_values_missing_key():
    network = make_network()
    network.initialize(np.random.default_rng(21))
    values = network.get_parameter_values()
    del values["swiss_roll/readout.b"]

    with pytest.raises(ValueError, match=r"missing \['swiss_roll/readout.b'\]"):
        network.set_parameter_values(values)


def test_set_parameter_values_unknown_key():
    network = make_network()
    network.initialize(np.random.default_rng(22))
    values = network.get_parameter_values()
    values["swiss_roll/readout.c"] = np.zeros(3)

    with pytest.raises(ValueError, match=r"unknown \['swiss_roll/readout.c'\]"):
        network.set_parameter_values(values)


def test_set_parameter_values_wrong_shape():
    network = make_network()
    network.initialize(np.random.default_rng(23))
    before = network.get_parameter_values()
    values = {path: np.zeros_like(value) for path, value in before.items()}
    values["swiss_roll/readout.W"] = np.zeros((3, 16, 5))

    with pytest.raises(ValueError, match=r"'swiss_roll/readout.W' has shape \(3, 16, 5\)"):
        network.set_parameter_values(values)
    # The check runs before any assignment, so no parameter changed.
    after = network.get_parameter_values()
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
