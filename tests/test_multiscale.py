"""Tests of the convolutional bricks: multi-scale layers, per-pixel dense layers, networks.

Each brick is compared in float64 with a NumPy implementation written from the
description of the layer (SciPy's cross-correlation, reshapes for pooling, repeats for
upsampling), and its gradients with central finite differences of that implementation
along random directions. A small network is trained for one step on 8x8 images and
then applied to 16x16 images. Finally one network is compiled on the C, Numba and JAX
backends, which must agree to float32 precision.
"""

import contextlib

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.signal import correlate

from dpm import backend
from dpm.bricks import (
    Brick,
    Constant,
    Convolutional,
    IsotropicGaussian,
    LeakyRectifier,
    MultiLayerConvolution,
    MultiScaleConvolution,
    Orthogonal,
    PixelDense,
    Softplus,
    Tanh,
    TemporalBasis,
)
from dpm.bricks.multiscale import reference_weights_std

N_SCALES = 3
IN_CHANNELS = 2
OUT_CHANNELS = 3
SLOPE = 0.05


@contextlib.contextmanager
def precision(backend_name, floatX):
    """Configure ``backend_name`` and ``floatX`` inside the block, then restore the settings."""
    previous_backend = backend.current_backend()
    previous_floatx = pytensor.config.floatX
    backend.configure(backend_name, floatX)
    try:
        yield
    finally:
        backend.configure(previous_backend, previous_floatx)


# NumPy implementation -------------------------------------------------------------------


def convolve(x, W, b=None):
    batch, in_channels, height, width = x.shape
    output = np.zeros((batch, W.shape[0], height, width))
    for n in range(batch):
        for o in range(W.shape[0]):
            for c in range(in_channels):
                output[n, o] += correlate(x[n, c], W[o, c], mode="same")
            if b is not None:
                output[n, o] += b[o]
    return output


def pool(x, factor):
    batch, channels, height, width = x.shape
    return x.reshape(batch, channels, height // factor, factor, width // factor, factor).mean(axis=(3, 5))


def enlarge(x, factor):
    return x.repeat(factor, axis=2).repeat(factor, axis=3)


def leaky(x):
    return np.where(x > 0, x, SLOPE * x)


def softplus(x):
    return np.logaddexp(0.0, x)


def multiscale_paper(x, values, path, n_scales):
    """Sum over scales of upsample(conv(pool(x))), then softplus; only scale 0 has biases."""
    total = 0.0
    for scale in range(n_scales):
        factor = 2**scale
        bias = values[f"{path}/scale_0.b"] if scale == 0 else None
        total = total + enlarge(convolve(pool(x, factor), values[f"{path}/scale_{scale}.W"], bias), factor)
    return softplus(total)


def multiscale_reference(x, values, path, n_scales):
    """Coarsest to finest: add leaky(conv(pool(x))) to the accumulator, upsample it by 2."""
    accumulator = None
    for scale in range(n_scales - 1, -1, -1):
        weights = values[f"{path}/scale_{scale}.W"]
        bias = values[f"{path}/scale_{scale}.b"]
        contribution = leaky(convolve(pool(x, 2**scale), weights, bias))
        accumulator = contribution if accumulator is None else enlarge(accumulator, 2) + contribution
    return accumulator / n_scales


def pixel_dense(x, values, path, activation):
    output = np.einsum("nchw,co->nohw", x, values[f"{path}.W"]) + values[f"{path}.b"][None, :, None, None]
    return activation(output)


# Bricks under test ------------------------------------------------------------------------


def make_layers():
    """Return a root brick with one multi-scale layer of each variant, initialized from a seed."""
    paper = MultiScaleConvolution(IN_CHANNELS, OUT_CHANNELS, N_SCALES, variant="paper",
                                  weights_init=IsotropicGaussian(0.3), name="paper")
    reference = MultiScaleConvolution(IN_CHANNELS, OUT_CHANNELS, N_SCALES, variant="reference",
                                      weights_init=IsotropicGaussian(0.3),
                                      biases_init=IsotropicGaussian(0.2), name="reference")
    root = Brick(name="root", children=[paper, reference])
    root.initialize(np.random.default_rng(1))
    return root, paper, reference


def make_network(n_basis=3):
    """Return a two-layer multi-scale network, two per-pixel layers and a temporal readout."""
    convolution = MultiLayerConvolution([1, 4, 4], n_scales=2, variant="reference",
                                        biases_init=IsotropicGaussian(0.1), name="convolution")
    hidden = PixelDense(4, 5, Tanh(), biases_init=IsotropicGaussian(0.1), name="hidden")
    readout = PixelDense(5, 2 * n_basis, None, name="readout")
    temporal = TemporalBasis(10, n_basis, name="temporal")
    network = Brick(name="network", children=[convolution, hidden, readout, temporal])
    network.initialize(np.random.default_rng(2))
    return network


def apply_network(network, x, t):
    convolution, hidden, readout, temporal = network.children
    features = hidden.apply(convolution.apply(x))
    return temporal.apply(readout.apply(features), t)


def numpy_network(x, t, values, basis):
    """NumPy version of :func:`apply_network` for integer steps ``t``."""
    features = x
    for layer in range(2):
        features = multiscale_reference(features, values, f"network/convolution/layer_{layer}", 2)
    features = pixel_dense(features, values, "network/hidden", np.tanh)
    z = pixel_dense(features, values, "network/readout", lambda v: v)
    rows = basis[t]
    n_basis = basis.shape[1]
    means = np.einsum("njhw,nj->nhw", z[:, :n_basis], rows)[:, None]
    variances = np.einsum("njhw,nj->nhw", z[:, n_basis:], rows)[:, None]
    return means, variances


# Compiled in float64 on the C backend -----------------------------------------------------


@pytest.fixture(scope="module")
def compiled():
    """Compile both multi-scale layers, the network and their gradients as one function."""
    with precision("c", "float64"):
        root, paper, reference = make_layers()
        network = make_network()
        x = pt.tensor4("x", shape=(None, IN_CHANNELS, None, None))
        r = pt.tensor4("r", shape=(None, OUT_CHANNELS, None, None))
        image = pt.tensor4("image", shape=(None, 1, None, None))
        steps = pt.lvector("steps")

        layer_outputs = [paper.apply(x), reference.apply(x)]
        layer_cost = pt.sum(layer_outputs[0] * r) + pt.sum(layer_outputs[1] * r)
        layer_parameters = root.all_parameters
        layer_gradients = pytensor.grad(layer_cost, [x, *layer_parameters])

        means, variances = apply_network(network, image, steps)
        network_cost = pt.sum(pt.sqr(means)) + pt.sum(pt.sqr(variances))
        network_parameters = network.all_parameters
        network_gradients = pytensor.grad(network_cost, network_parameters)

        outputs = [*layer_outputs, *layer_gradients, means, variances, *network_gradients]
        function = backend.compile_function([x, r, image, steps], outputs)

    layer_names = ["x", *[parameter.name for parameter in layer_parameters]]
    network_names = [parameter.name for parameter in network_parameters]

    def evaluate(x_value, r_value, image_value, steps_value):
        """Return the two layer outputs, the layer gradients by name and the network's results."""
        results = iter(function(x_value, r_value, image_value, steps_value))
        layers = [next(results), next(results)]
        gradients = {name: next(results) for name in layer_names}
        network_results = {"means": next(results), "variances": next(results)}
        network_results["gradients"] = {name: next(results) for name in network_names}
        return layers, gradients, network_results

    return {"root": root, "network": network, "evaluate": evaluate}


def draw_layer_inputs(rng, height, width):
    x = rng.normal(size=(2, IN_CHANNELS, height, width))
    r = rng.normal(size=(2, OUT_CHANNELS, height, width))
    return x, r


def draw_network_inputs(rng, size, batch=2):
    return rng.normal(size=(batch, 1, size, size)), rng.integers(0, 10, size=batch)


@pytest.fixture(scope="module")
def layer_case(compiled):
    rng = np.random.default_rng(3)
    x, r = draw_layer_inputs(rng, 8, 12)
    image, steps = draw_network_inputs(rng, 8)
    layers, gradients, _ = compiled["evaluate"](x, r, image, steps)
    return x, r, compiled["root"].get_parameter_values(), layers, gradients


@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_multiscale_matches_numpy(layer_case, variant):
    x, _, values, layers, _ = layer_case
    implementation = multiscale_paper if variant == "paper" else multiscale_reference
    output = layers[0] if variant == "paper" else layers[1]

    expected = implementation(x, values, f"root/{variant}", N_SCALES)

    assert output.shape == (2, OUT_CHANNELS, 8, 12)
    np.testing.assert_allclose(output, expected, rtol=1e-10, atol=1e-12)


def layer_cost(x, r, values):
    return np.sum(multiscale_paper(x, values, "root/paper", N_SCALES) * r) + np.sum(
        multiscale_reference(x, values, "root/reference", N_SCALES) * r
    )


def directional_derivative(function, step=1e-6):
    """Central difference of ``function(epsilon)`` at epsilon = 0."""
    return (function(step) - function(-step)) / (2 * step)


def test_multiscale_gradients_match_finite_differences(layer_case):
    x, r, values, _, gradients = layer_case
    rng = np.random.default_rng(4)

    direction = rng.normal(size=x.shape)
    expected = directional_derivative(lambda eps: layer_cost(x + eps * direction, r, values))
    np.testing.assert_allclose(np.sum(gradients["x"] * direction), expected, rtol=1e-6)

    for path, value in values.items():
        direction = rng.normal(size=value.shape)

        def shifted_cost(eps, path=path, value=value, direction=direction):
            return layer_cost(x, r, {**values, path: value + eps * direction})

        expected = directional_derivative(shifted_cost)
        np.testing.assert_allclose(np.sum(gradients[path] * direction), expected, rtol=1e-6, err_msg=path)


def test_multiscale_parameters_per_variant(compiled):
    values = compiled["root"].get_parameter_values()

    paper_paths = sorted(path for path in values if path.startswith("root/paper/"))
    reference_paths = sorted(path for path in values if path.startswith("root/reference/"))

    assert paper_paths == ["root/paper/scale_0.W", "root/paper/scale_0.b",
                           "root/paper/scale_1.W", "root/paper/scale_2.W"]
    assert reference_paths == [f"root/reference/scale_{s}.{p}" for s in range(3) for p in "Wb"]
    assert values["root/paper/scale_2.W"].shape == (OUT_CHANNELS, IN_CHANNELS, 3, 3)


def test_network_trained_small_applies_to_larger_images(compiled):
    network, evaluate = compiled["network"], compiled["evaluate"]
    basis = network.children[3].basis
    rng = np.random.default_rng(5)
    x, r = draw_layer_inputs(rng, 8, 8)
    small_image, small_steps = draw_network_inputs(rng, 8)

    # One gradient-descent step on 8x8 images.
    _, _, trained = evaluate(x, r, small_image, small_steps)
    values = network.get_parameter_values()
    updated = {path: value - 0.01 * trained["gradients"][path] for path, value in values.items()}
    network.set_parameter_values(updated)
    try:
        large_image, large_steps = draw_network_inputs(rng, 16, batch=3)
        x, r = draw_layer_inputs(rng, 16, 16)
        _, _, applied = evaluate(x, r, large_image, large_steps)
    finally:
        network.set_parameter_values(values)

    expected_means, expected_variances = numpy_network(large_image, large_steps, updated, basis)
    assert applied["means"].shape == (3, 1, 16, 16)
    np.testing.assert_allclose(applied["means"], expected_means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(applied["variances"], expected_variances, rtol=1e-10, atol=1e-12)


def test_network_matches_numpy_at_training_size(compiled):
    network, evaluate = compiled["network"], compiled["evaluate"]
    rng = np.random.default_rng(6)
    x, r = draw_layer_inputs(rng, 8, 8)
    image, steps = draw_network_inputs(rng, 8)

    _, _, results = evaluate(x, r, image, steps)

    values = network.get_parameter_values()
    expected_means, expected_variances = numpy_network(image, steps, values, network.children[3].basis)
    np.testing.assert_allclose(results["means"], expected_means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(results["variances"], expected_variances, rtol=1e-10, atol=1e-12)


# Construction --------------------------------------------------------------------------


def test_reference_initialization_scale():
    layer = MultiScaleConvolution(1, 20, 2, kernel_size=3, variant="reference")
    layer.initialize(np.random.default_rng(0))
    weights = np.concatenate([convolution.W.get_value().ravel() for convolution in layer.convolutions])

    assert reference_weights_std(20, 3) == pytest.approx(np.sqrt(1 / 20) / 9)
    assert np.std(weights) == pytest.approx(reference_weights_std(20, 3), rel=0.2)
    for convolution in layer.convolutions:
        np.testing.assert_array_equal(convolution.b.get_value(), 0.0)


def test_default_activations_per_variant():
    paper = MultiScaleConvolution(1, 2, 2, variant="paper")
    reference = MultiScaleConvolution(1, 2, 2, variant="reference")

    assert isinstance(paper.activation, Softplus)
    assert isinstance(reference.activation, LeakyRectifier)
    assert reference.activation.slope == SLOPE


def test_multiscale_rejects_unknown_variant():
    with pytest.raises(ValueError, match="unknown variant 'blocks'"):
        MultiScaleConvolution(1, 2, 2, variant="blocks")


def test_multiscale_rejects_indivisible_image():
    layer = MultiScaleConvolution(1, 2, 3)
    x = pt.tensor4("x", shape=(None, 1, 12, 10))

    assert layer.pooling_factor == 4
    with pytest.raises(ValueError, match="width 10 is not a multiple of the pooling factor 4"):
        layer.apply(x)


def test_multilayer_rejects_single_dim():
    with pytest.raises(ValueError, match="at least two entries"):
        MultiLayerConvolution([3], n_scales=2)


def test_multilayer_layer_paths():
    stack = MultiLayerConvolution([1, 4, 4, 4], n_scales=2, name="stack")

    paths = [variable.name for variable in stack.all_parameters]

    assert len(stack.layers) == 3
    assert "stack/layer_2/scale_1.W" in paths
    assert stack.layers[1].in_channels == 4


def test_pixel_dense_defaults():
    layer = PixelDense(4, 6, Tanh())
    layer.initialize(np.random.default_rng(0))
    weights = layer.W.get_value()

    assert isinstance(layer.W.tag.initialization, Orthogonal)
    # A 4 x 6 orthogonal matrix has orthonormal rows.
    np.testing.assert_allclose(weights @ weights.T, np.eye(4), atol=1e-6)
    np.testing.assert_array_equal(layer.b.get_value(), 0.0)


def test_convolutional_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        Convolutional(1, 2, 4, Constant(0.0))


def test_pixel_dense_rejects_non_brick_activation():
    with pytest.raises(TypeError, match="activation must be a Brick"):
        PixelDense(2, 3, np.tanh)


# Agreement across backends ------------------------------------------------------------------


def build_backend_graph():
    """Return the inputs and outputs of a float32 network built from fixed parameter values."""
    paper = MultiScaleConvolution(1, 2, 2, variant="paper", weights_init=IsotropicGaussian(0.4), name="paper")
    reference = MultiScaleConvolution(2, 2, 2, variant="reference", weights_init=IsotropicGaussian(0.4),
                                      biases_init=IsotropicGaussian(0.1), name="reference")
    readout = PixelDense(2, 4, None, name="readout")
    temporal = TemporalBasis(5, 2, name="temporal")
    network = Brick(name="network", children=[paper, reference, readout, temporal])
    network.initialize(np.random.default_rng(7))

    x = pt.tensor4("x", shape=(None, 1, None, None))
    t = pt.vector("t")
    means, variances = temporal.apply(readout.apply(reference.apply(paper.apply(x))), t)
    cost = pt.sum(means * variances)
    parameters = network.all_parameters
    return [x, t], [means, variances, *pytensor.grad(cost, [x, *parameters])]


def test_backends_agree():
    # Importing JAX first lets the dpm Ops register their JAX implementations when the
    # graph is built.
    pytest.importorskip("jax")
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 1, 4, 6)).astype(np.float32)
    t = np.array([0.5, 3.0], dtype=np.float32)

    results = {}
    for name in ("c", "numba", "jax"):
        with precision(name, "float32"):
            inputs, outputs = build_backend_graph()
            function = backend.compile_function(inputs, outputs)
            results[name] = [np.asarray(value) for value in function(x, t)]

    for name in ("numba", "jax"):
        for index, (value, expected) in enumerate(zip(results[name], results["c"], strict=True)):
            scale = np.max(np.abs(expected))
            assert np.max(np.abs(value - expected)) <= 1e-5 * scale, f"{name}, output {index}"
