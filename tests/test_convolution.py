"""Tests of dpm.ops: 'same' convolution, mean pooling and upsampling.

Values are compared in float64 with SciPy's 2-D cross-correlation and with explicit
loops, and gradients with central finite differences of those references. The costs
are linear in each input, so finite differences are exact up to rounding. One function
is compiled for the whole module, with symbolic image sizes, and called at two sizes.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.signal import correlate

from dpm import backend
from dpm.ops import IMPLEMENTATIONS, conv2d_same, mean_pool, upsample
from dpm.ops.convolution_op import convolve_same

#: Image sizes (height, width) at which the compiled function is called.
CONV_SIZES = [(5, 4), (6, 7)]
POOL_SIZES = [(4, 8), (8, 4)]
IN_CHANNELS = 2
OUT_CHANNELS = 3
BATCH = 2


# Everything in this module is built and compiled in float64 (the fixture is in conftest.py).
pytestmark = pytest.mark.usefixtures("float64_mode")


# NumPy references ---------------------------------------------------------------------


def reference_convolution(x, W, b=None):
    """'Same' cross-correlation with zero padding, one channel pair at a time with SciPy."""
    batch, in_channels, height, width = x.shape
    out_channels = W.shape[0]
    output = np.zeros((batch, out_channels, height, width))
    for n in range(batch):
        for o in range(out_channels):
            for c in range(in_channels):
                output[n, o] += correlate(x[n, c], W[o, c], mode="same")
            if b is not None:
                output[n, o] += b[o]
    return output


def reference_mean_pool(x, factor):
    batch, channels, height, width = x.shape
    output = np.zeros((batch, channels, height // factor, width // factor))
    for h in range(height // factor):
        for w in range(width // factor):
            block = x[:, :, h * factor:(h + 1) * factor, w * factor:(w + 1) * factor]
            output[:, :, h, w] = block.sum(axis=(2, 3)) / factor**2
    return output


def reference_upsample(x, factor):
    batch, channels, height, width = x.shape
    output = np.zeros((batch, channels, height * factor, width * factor))
    for h in range(height * factor):
        for w in range(width * factor):
            output[:, :, h, w] = x[:, :, h // factor, w // factor]
    return output


def finite_difference_gradient(function, value, step=1e-5):
    """Central differences of the scalar ``function`` at every entry of ``value``."""
    gradient = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        shifted = value.copy()
        shifted[index] += step
        above = function(shifted)
        shifted[index] -= 2 * step
        below = function(shifted)
        gradient[index] = (above - below) / (2 * step)
    return gradient


# Compiled graph ---------------------------------------------------------------------


def build_outputs():
    """Return the inputs and a dict of named outputs of the module's one compiled function."""
    x = pt.tensor4("x", shape=(None, IN_CHANNELS, None, None))
    r = pt.tensor4("r", shape=(None, OUT_CHANNELS, None, None))
    W = pt.tensor4("W", shape=(OUT_CHANNELS, IN_CHANNELS, 3, 3))
    b = pt.vector("b", shape=(OUT_CHANNELS,))
    W1 = pt.tensor4("W1", shape=(OUT_CHANNELS, IN_CHANNELS, 1, 1))
    W5 = pt.tensor4("W5", shape=(OUT_CHANNELS, IN_CHANNELS, 5, 5))
    V = pt.tensor4("V", shape=(OUT_CHANNELS, IN_CHANNELS, 3, 3))
    p = pt.tensor4("p")
    r2 = pt.tensor4("r2")
    r4 = pt.tensor4("r4")
    ru = pt.tensor4("ru")
    inputs = [x, r, W, b, W1, W5, V, p, r2, r4, ru]

    outputs = {}
    for implementation in IMPLEMENTATIONS:
        y = conv2d_same(x, W, b, implementation=implementation)
        gradients = pytensor.grad(pt.sum(y * r), [x, W, b])
        outputs[implementation] = [y, *gradients]

    for name, kernels in (("kernel_1", W1), ("kernel_5", W5)):
        y = conv2d_same(x, kernels)
        outputs[name] = [y, *pytensor.grad(pt.sum(y * r), [x, kernels])]

    # Second order: d/dx and d/dr of <dcost/dW, V> go through the pullback of the
    # weight-gradient Op.
    weight_gradient = pytensor.grad(pt.sum(conv2d_same(x, W) * r), W)
    outputs["second_order"] = pytensor.grad(pt.sum(weight_gradient * V), [x, r])

    pooled_2, pooled_4, enlarged = mean_pool(p, 2), mean_pool(p, 4), upsample(p, 3)
    pooling_cost = pt.sum(pooled_2 * r2) + pt.sum(pooled_4 * r4) + pt.sum(enlarged * ru)
    outputs["pooling"] = [pooled_2, pooled_4, enlarged, pytensor.grad(pooling_cost, p)]
    return inputs, outputs


@pytest.fixture(scope="module")
def compiled():
    """Compile every output once and return a function that evaluates them by name."""
    inputs, outputs = build_outputs()
    names = list(outputs)
    flat = [output for name in names for output in outputs[name]]
    function = backend.compile_function(inputs, flat)

    def evaluate(values):
        results = iter(function(*values))
        return {name: [next(results) for _ in outputs[name]] for name in names}

    return evaluate


def draw_values(rng, conv_size, pool_size):
    """Return the input values of the compiled function, in its input order, as a dict."""
    height, width = conv_size
    pool_height, pool_width = pool_size
    return {
        "x": rng.normal(size=(BATCH, IN_CHANNELS, height, width)),
        "r": rng.normal(size=(BATCH, OUT_CHANNELS, height, width)),
        "W": rng.normal(size=(OUT_CHANNELS, IN_CHANNELS, 3, 3)),
        "b": rng.normal(size=OUT_CHANNELS),
        "W1": rng.normal(size=(OUT_CHANNELS, IN_CHANNELS, 1, 1)),
        "W5": rng.normal(size=(OUT_CHANNELS, IN_CHANNELS, 5, 5)),
        "V": rng.normal(size=(OUT_CHANNELS, IN_CHANNELS, 3, 3)),
        "p": rng.normal(size=(BATCH, 2, pool_height, pool_width)),
        "r2": rng.normal(size=(BATCH, 2, pool_height // 2, pool_width // 2)),
        "r4": rng.normal(size=(BATCH, 2, pool_height // 4, pool_width // 4)),
        "ru": rng.normal(size=(BATCH, 2, pool_height * 3, pool_width * 3)),
    }


@pytest.fixture(scope="module", params=list(zip(CONV_SIZES, POOL_SIZES, strict=True)), ids=str)
def case(request, compiled):
    """Inputs at one pair of image sizes and the compiled function's outputs for them."""
    conv_size, pool_size = request.param
    values = draw_values(np.random.default_rng(sum(conv_size)), conv_size, pool_size)
    return values, compiled(list(values.values()))


# Convolution ------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_convolution_matches_scipy(case, implementation):
    values, results = case
    expected = reference_convolution(values["x"], values["W"], values["b"])

    output = results[implementation][0]

    assert output.shape == expected.shape
    np.testing.assert_allclose(output, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_convolution_gradients_match_finite_differences(case, implementation):
    values, results = case
    x, W, b, r = values["x"], values["W"], values["b"], values["r"]
    _, grad_x, grad_W, grad_b = results[implementation]

    expected_x = finite_difference_gradient(lambda v: np.sum(reference_convolution(v, W, b) * r), x)
    expected_W = finite_difference_gradient(lambda v: np.sum(reference_convolution(x, v, b) * r), W)
    expected_b = finite_difference_gradient(lambda v: np.sum(reference_convolution(x, W, v) * r), b)

    np.testing.assert_allclose(grad_x, expected_x, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(grad_W, expected_W, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(grad_b, expected_b, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name, kernel", [("kernel_1", "W1"), ("kernel_5", "W5")])
def test_other_kernel_sizes_match_scipy(case, name, kernel):
    values, results = case
    x, W, r = values["x"], values[kernel], values["r"]
    output, grad_x, grad_W = results[name]

    expected_x = finite_difference_gradient(lambda v: np.sum(reference_convolution(v, W) * r), x)
    expected_W = finite_difference_gradient(lambda v: np.sum(reference_convolution(x, v) * r), W)

    np.testing.assert_allclose(output, reference_convolution(x, W), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_x, expected_x, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(grad_W, expected_W, rtol=1e-7, atol=1e-8)


def test_weight_gradient_has_gradient(case):
    values, results = case
    x, r, V = values["x"], values["r"], values["V"]
    grad_x, grad_r = results["second_order"]

    # <d sum(conv(x, W) * r) / dW, V> = sum(conv(x, V) * r) for every W.
    def inner_product(x_value, r_value):
        return np.sum(reference_convolution(x_value, V) * r_value)

    expected_x = finite_difference_gradient(lambda v: inner_product(v, r), x)
    expected_r = finite_difference_gradient(lambda v: inner_product(x, v), r)

    np.testing.assert_allclose(grad_x, expected_x, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(grad_r, expected_r, rtol=1e-7, atol=1e-8)


def test_convolution_rejects_even_kernel():
    x = pt.tensor4("x", shape=(None, 2, None, None))
    W = pt.tensor4("W", shape=(3, 2, 2, 2))

    with pytest.raises(ValueError, match="odd"):
        conv2d_same(x, W)


def test_convolution_rejects_unknown_kernel_size():
    x = pt.tensor4("x", shape=(None, 2, None, None))
    W = pt.tensor4("W", shape=(3, 2, None, None))

    with pytest.raises(ValueError, match="static kernel size"):
        conv2d_same(x, W)


def test_convolution_rejects_channel_mismatch():
    x = pt.tensor4("x", shape=(None, 2, None, None))
    W = pt.tensor4("W", shape=(3, 4, 3, 3))

    with pytest.raises(ValueError, match="2 channels but W expects 4"):
        conv2d_same(x, W)


def test_convolution_rejects_wrong_bias_length():
    x = pt.tensor4("x", shape=(None, 2, None, None))
    W = pt.tensor4("W", shape=(3, 2, 3, 3))
    b = pt.vector("b", shape=(4,))

    with pytest.raises(ValueError, match="b has 4 entries but W has 3"):
        conv2d_same(x, W, b)


def test_convolution_rejects_unknown_implementation():
    x = pt.tensor4("x", shape=(None, 2, None, None))
    W = pt.tensor4("W", shape=(3, 2, 3, 3))

    with pytest.raises(ValueError, match="unknown convolution implementation 'fft'"):
        conv2d_same(x, W, implementation="fft")


def test_convolution_casts_to_common_dtype():
    x = pt.tensor4("x", shape=(None, 2, None, None), dtype="float32")
    W = pt.tensor4("W", shape=(3, 2, 3, 3), dtype="float64")

    y = conv2d_same(x, W)

    assert y.dtype == "float64"
    assert y.type.shape == (None, 3, None, None)


def test_numpy_convolution_rejects_channel_mismatch():
    with pytest.raises(ValueError, match="2 channels but the weights expect 3"):
        convolve_same(np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 3, 3)))


# Pooling and upsampling ------------------------------------------------------------------


def test_mean_pool_matches_loops(case):
    values, results = case
    pooled_2, pooled_4, _, _ = results["pooling"]

    np.testing.assert_allclose(pooled_2, reference_mean_pool(values["p"], 2), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pooled_4, reference_mean_pool(values["p"], 4), rtol=1e-12, atol=1e-14)


def test_upsample_matches_loops(case):
    values, results = case
    _, _, enlarged, _ = results["pooling"]

    np.testing.assert_array_equal(enlarged, reference_upsample(values["p"], 3))


def test_pooling_gradient_matches_finite_differences(case):
    values, results = case
    r2, r4, ru = values["r2"], values["r4"], values["ru"]
    gradient = results["pooling"][3]

    def cost(p):
        return (
            np.sum(reference_mean_pool(p, 2) * r2)
            + np.sum(reference_mean_pool(p, 4) * r4)
            + np.sum(reference_upsample(p, 3) * ru)
        )

    np.testing.assert_allclose(gradient, finite_difference_gradient(cost, values["p"]), rtol=1e-7, atol=1e-8)


def test_mean_pool_rejects_indivisible_static_size():
    x = pt.tensor4("x", shape=(None, 1, 6, 7))

    with pytest.raises(ValueError, match="width 7 is not a multiple of the pooling factor 2"):
        mean_pool(x, 2)


def test_mean_pool_rejects_indivisible_size_at_run_time(compiled):
    values = draw_values(np.random.default_rng(0), CONV_SIZES[0], POOL_SIZES[0])
    # Height 6 pools by 2 but not by 4. The other inputs match the new size, so that
    # the only error is the pooling one.
    values["p"] = np.zeros((BATCH, 2, 6, 8))
    values["r2"] = np.zeros((BATCH, 2, 3, 4))
    values["ru"] = np.zeros((BATCH, 2, 18, 24))

    with pytest.raises(ValueError, match="height 6 is not a multiple of the pooling factor 4"):
        compiled(list(values.values()))


@pytest.mark.parametrize("function", [mean_pool, upsample])
@pytest.mark.parametrize("factor", [0, -2, 1.5, True])
def test_pooling_rejects_invalid_factor(function, factor):
    x = pt.tensor4("x")

    with pytest.raises(ValueError, match="factor must be a positive integer"):
        function(x, factor)


@pytest.mark.parametrize("function", [mean_pool, upsample])
def test_factor_one_is_identity(function):
    x = pt.tensor4("x")

    assert function(x, 1) is x


@pytest.mark.parametrize("function", [mean_pool, upsample])
def test_pooling_rejects_non_image(function):
    with pytest.raises(ValueError, match="expected 4-D images"):
        function(pt.matrix("x"), 2)


def test_pooling_static_shapes():
    x = pt.tensor4("x", shape=(None, 3, 8, 4))

    assert mean_pool(x, 4).type.shape == (None, 3, 2, 1)
    assert upsample(x, 2).type.shape == (None, 3, 16, 8)
