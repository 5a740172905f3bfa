"""The image model: network against NumPy, K, gradients, other image sizes, configurations."""

import math
import tomllib
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from dpm import backend
from dpm.bricks import bump_basis
from dpm.config import ConfigError
from dpm.diffusion import FixedSchedule, GaussianDiffusion, reference_beta
from dpm.diffusion.gaussian import PARAMETERIZATIONS
from dpm.models.image import ImageDiffusionModel
from dpm.models.image_config import build_image_model, load_image_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "original_configs"
IMAGE_CONFIGS = (
    "reference_mnist.toml", "reference_cifar10.toml", "mnist.toml", "cifar10.toml",
    "dead_leaves.toml", "bark.toml",
)

# A tiny version of the reference network with both pathways and a learned schedule, so
# that the gradient test also reaches the schedule's parameters.
T = 10
N_BASIS = 3
TINY = dict(
    trajectory_length=T, n_temporal_basis=N_BASIS, n_layers_conv=2, n_hidden_conv=4,
    n_layers_dense_lower=5, n_hidden_dense_lower=16, n_hidden_dense_lower_output=3,
    n_layers_dense_upper=2, n_hidden_dense_upper=6, schedule="learned",
)
IMAGE_SHAPE = (2, 8, 8)
BATCH = 5


# Independent NumPy versions of the layers ---------------------------------------------------

def leaky(x):
    return np.where(x > 0, x, 0.05 * x)


def conv_same(x, W, b):
    """Cross-correlate NCHW images with zero padding, keeping the size."""
    k = W.shape[-1]
    p = k // 2
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    height, width = x.shape[2:]
    out = np.zeros((x.shape[0], W.shape[0], height, width))
    for i in range(k):
        for j in range(k):
            window = padded[:, :, i:i + height, j:j + width]
            out += np.einsum("nchw,oc->nohw", window, W[:, :, i, j])
    return out + b[None, :, None, None]


def numpy_network_output(values, images, t, model):
    """Return ``(z_mu, z_Sigma)`` of the tiny reference network, computed with NumPy."""
    name = model.name
    hidden = images.astype(np.float64)
    for layer in range(TINY["n_layers_conv"]):
        prefix = f"{name}/convolution/layer_{layer}/scale_0"
        hidden = leaky(conv_same(hidden, values[f"{prefix}.W"], values[f"{prefix}.b"]))

    n, (colors, height, width) = len(images), IMAGE_SHAPE
    dense = images.reshape(n, -1).astype(np.float64)
    # The reference code's quirk: as many dense layers as convolutional ones.
    for layer in range(TINY["n_layers_conv"]):
        prefix = f"{name}/dense_lower/linear_{layer}"
        dense = leaky(dense @ values[f"{prefix}.W"] + values[f"{prefix}.b"])
    dense = dense.reshape(n, height, width, -1).transpose(0, 3, 1, 2)

    upper = np.concatenate(
        [hidden / math.sqrt(TINY["n_hidden_conv"]),
         dense / math.sqrt(TINY["n_hidden_dense_lower_output"])], axis=1)
    for layer in range(TINY["n_layers_dense_upper"]):
        prefix = f"{name}/dense_upper_{layer}"
        upper = np.einsum("nchw,co->nohw", upper, values[f"{prefix}.W"])
        upper = upper + values[f"{prefix}.b"][None, :, None, None]
        if layer < TINY["n_layers_dense_upper"] - 1:
            upper = leaky(upper)

    # Step t reads row t - 1 of the bump basis. Channel (c * 2 + k) * J + j is bump j of
    # quantity k (0: mean, 1: variance) of color c.
    rows = bump_basis(T, N_BASIS, "reference")[t - 1]
    coefficients = upper.reshape(n, colors, 2, N_BASIS, height, width)
    z = np.einsum("nckjhw,nj->nckhw", coefficients, rows)
    return z[:, :, 0], z[:, :, 1]


# The tiny model, compiled once ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    """Compile K, its gradients and the network outputs of the tiny model on 4-D and flat input."""
    model = ImageDiffusionModel(IMAGE_SHAPE, **TINY)
    model.initialize(np.random.default_rng(0))
    # Biases start at zero; random ones make the NumPy comparison see them.
    values = model.get_parameter_values()
    rng = np.random.default_rng(1)
    for path, value in values.items():
        if path.endswith(".b"):
            values[path] = 0.1 * rng.standard_normal(value.shape)
    model.set_parameter_values(values)

    floatX = pytensor.config.floatX
    x0 = pt.tensor4("x0", dtype=floatX)
    flat = pt.matrix("flat", dtype=floatX)
    t = pt.ivector("t")
    noise = pt.tensor4("noise", dtype=floatX)
    terms = model.bound_estimate(x0, t, noise)
    gradients = pt.grad(-pt.mean(terms["K"]), model.all_parameters)
    outputs = [terms["K"], *model.network_output(x0, t), *model.network_output(flat, t), *gradients]
    function = backend.compile_function([x0, flat, t, noise], outputs)

    images = rng.standard_normal((BATCH, *IMAGE_SHAPE)).astype(floatX)
    steps = np.array([2, 3, 5, 9, 10], dtype=np.int32)
    noise_value = rng.standard_normal(images.shape).astype(floatX)
    results = function(images, images.reshape(BATCH, -1), steps, noise_value)
    K, z_mu, z_sigma, flat_mu, flat_sigma = results[:5]
    return dict(
        model=model, images=images, t=steps, K=K, z_mu=z_mu, z_sigma=z_sigma,
        flat_mu=flat_mu, flat_sigma=flat_sigma,
        gradients=dict(zip([p.name for p in model.all_parameters], results[5:])),
    )


def test_network_output_shapes(tiny):
    assert tiny["z_mu"].shape == (BATCH, *IMAGE_SHAPE)
    assert tiny["z_sigma"].shape == (BATCH, *IMAGE_SHAPE)
    assert tiny["flat_mu"].shape == (BATCH, int(np.prod(IMAGE_SHAPE)))
    assert tiny["flat_sigma"].shape == (BATCH, int(np.prod(IMAGE_SHAPE)))


def test_network_output_matches_numpy(tiny):
    values = tiny["model"].get_parameter_values()
    values = {path: value.astype(np.float64) for path, value in values.items()}
    z_mu, z_sigma = numpy_network_output(values, tiny["images"], tiny["t"], tiny["model"])
    np.testing.assert_allclose(tiny["z_mu"], z_mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tiny["z_sigma"], z_sigma, rtol=1e-4, atol=1e-5)


def test_flat_input_gives_flattened_output(tiny):
    np.testing.assert_array_equal(tiny["flat_mu"], tiny["z_mu"].reshape(BATCH, -1))
    np.testing.assert_array_equal(tiny["flat_sigma"], tiny["z_sigma"].reshape(BATCH, -1))


def test_untrained_bound_is_finite(tiny):
    assert tiny["K"].shape == (BATCH,)
    assert np.all(np.isfinite(tiny["K"]))


def test_gradients_reach_every_parameter(tiny):
    assert len(tiny["gradients"]) == len(tiny["model"].all_parameters)
    assert any(path.endswith("beta_logit_offset") for path in tiny["gradients"])
    for path, gradient in tiny["gradients"].items():
        assert np.all(np.isfinite(gradient)), path
        assert np.any(gradient != 0), f"no gradient reaches {path}"


# Structure -----------------------------------------------------------------------------------

@pytest.mark.parametrize("from_conv, expected_layers", [(True, 2), (False, 5)])
def test_dense_lower_depth_option(from_conv, expected_layers):
    settings = dict(TINY, dense_lower_depth_from_conv=from_conv)
    model = ImageDiffusionModel(IMAGE_SHAPE, **settings)
    layers = model.dense_lower.linear_transformations
    assert len(layers) == expected_layers
    assert layers[0].input_dim == int(np.prod(IMAGE_SHAPE))
    assert layers[-1].output_dim == TINY["n_hidden_dense_lower_output"] * 8 * 8
    assert all(layer.output_dim == TINY["n_hidden_dense_lower"] for layer in layers[:-1])


def test_upper_layers_read_both_pathways():
    model = ImageDiffusionModel(IMAGE_SHAPE, **TINY)
    first, last = model.dense_upper[0], model.dense_upper[-1]
    assert first.in_channels == TINY["n_hidden_conv"] + TINY["n_hidden_dense_lower_output"]
    assert last.out_channels == IMAGE_SHAPE[0] * 2 * N_BASIS


def test_pathway_choice_sets_parameters():
    conv_only = ImageDiffusionModel(IMAGE_SHAPE, **dict(TINY, dense_pathway=False))
    dense_only = ImageDiffusionModel(IMAGE_SHAPE, **dict(TINY, conv_pathway=False))
    assert not any("dense_lower" in p.name for p in conv_only.all_parameters)
    assert not any("convolution" in p.name for p in dense_only.all_parameters)
    assert conv_only.dense_upper[0].in_channels == TINY["n_hidden_conv"]
    assert dense_only.dense_upper[0].in_channels == TINY["n_hidden_dense_lower_output"]


def test_invalid_networks_are_rejected():
    with pytest.raises(ValueError, match="conv_pathway or dense_pathway"):
        ImageDiffusionModel(IMAGE_SHAPE, **dict(TINY, conv_pathway=False, dense_pathway=False))
    with pytest.raises(ValueError, match="multiples of 2"):
        ImageDiffusionModel((1, 6, 6), **dict(TINY, n_scales=3))
    with pytest.raises(ValueError, match="unknown activation"):
        ImageDiffusionModel(IMAGE_SHAPE, **dict(TINY, conv_activation="relu6"))


def test_dense_pathway_rejects_other_image_size():
    model = ImageDiffusionModel(IMAGE_SHAPE, **TINY)
    big = pt.tensor4("big", shape=(None, 2, 16, 16))
    with pytest.raises(ValueError, match="dense pathway needs images of shape"):
        model.network_output(big, pt.ivector("t"))


# The paper variant's convolutional network on a larger image --------------------------------

def test_paper_conv_network_applies_to_larger_image():
    """A 16x16 image holding an 8x8 one at (4, 4), zeros elsewhere, gives the 8x8 outputs there.

    With one multi-scale layer, the zero padding of the small image equals the zeros around
    it in the large image, at both scales because the offset is a multiple of 2. Every
    later layer acts on each pixel alone.
    """
    model = ImageDiffusionModel(
        (1, 8, 8), trajectory_length=T, n_temporal_basis=N_BASIS, basis_width="paper",
        conv_pathway=True, dense_pathway=False, n_layers_conv=1, n_hidden_conv=4, n_scales=2,
        multiscale_variant="paper", n_layers_dense_upper=2, n_hidden_dense_upper=5,
        conv_activation="softplus", dense_activation="tanh", schedule="learned",
        parameterization="paper",
    )
    model.initialize(np.random.default_rng(2))
    floatX = pytensor.config.floatX
    x0, noise = pt.tensor4("x0", dtype=floatX), pt.tensor4("noise", dtype=floatX)
    t = pt.ivector("t")
    big = pt.tensor4("big", dtype=floatX)
    K = model.bound_estimate(x0, t, noise)["K"]
    function = backend.compile_function(
        [x0, t, noise, big], [K, *model.network_output(x0, t), *model.network_output(big, t)]
    )
    rng = np.random.default_rng(3)
    small = rng.standard_normal((3, 1, 8, 8)).astype(floatX)
    large = np.zeros((3, 1, 16, 16), dtype=floatX)
    large[:, :, 4:12, 4:12] = small
    steps = np.array([2, 6, 10], dtype=np.int32)
    noise_value = rng.standard_normal(small.shape).astype(floatX)
    K, mu, sigma, big_mu, big_sigma = function(small, steps, noise_value, large)

    assert big_mu.shape == (3, 1, 16, 16)
    assert big_sigma.shape == (3, 1, 16, 16)
    np.testing.assert_allclose(big_mu[:, :, 4:12, 4:12], mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(big_sigma[:, :, 4:12, 4:12], sigma, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(K))


# GaussianDiffusion on 4-D states ------------------------------------------------------------

@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_gaussian_diffusion_images_equal_flat(parameterization):
    shape = (4, 2, 3, 5)
    with pytensor.config.change_flags(floatX="float64"):
        diffusion = GaussianDiffusion(FixedSchedule(reference_beta(12)), n_dims=30,
                                      parameterization=parameterization)
        t = pt.ivector("t")

        def quantities(ndim):
            x0, noise, z_mu, z_sigma = (pt.tensor(name, dtype="float64", shape=(None,) * ndim)
                                        for name in ("x0", "noise", "z_mu", "z_sigma"))
            xt = diffusion.forward_sample(x0, t, noise)
            mean_q, log_var_q = diffusion.posterior(x0, xt, t)
            mean_p, log_var_p = diffusion.reverse(xt, t, (z_mu, z_sigma))
            kl = diffusion.kl_divergence(x0, xt, t, mean_p, log_var_p)
            inputs = [x0, noise, z_mu, z_sigma, t]
            return backend.compile_function(inputs, [xt, mean_q, log_var_q, mean_p, log_var_p, kl])

        rng = np.random.default_rng(4)
        arrays = [rng.standard_normal(shape) for _ in range(4)]
        steps = np.array([2, 5, 11, 12], dtype=np.int32)
        images = quantities(4)(*arrays, steps)
        flat = quantities(2)(*(array.reshape(4, -1) for array in arrays), steps)

    names = ("xt", "posterior mean", "posterior log variance", "reverse mean",
             "reverse log variance")
    for name, image_value, flat_value in zip(names, images[:5], flat[:5]):
        assert image_value.shape == shape, name
        np.testing.assert_array_equal(image_value.reshape(4, -1), flat_value, err_msg=name)
    np.testing.assert_allclose(images[5], flat[5], rtol=1e-12)


# Configurations -----------------------------------------------------------------------------

PAPER_T = {
    "reference_mnist.toml": 1000, "reference_cifar10.toml": 1000, "mnist.toml": 1000,
    "cifar10.toml": 1000, "dead_leaves.toml": 1000, "bark.toml": 500,
}


@pytest.mark.parametrize("name", IMAGE_CONFIGS)
def test_config_loads_and_builds_quick(name):
    full = load_image_config(CONFIG_DIR / name)
    assert full["model"]["trajectory_length"] == PAPER_T[name]

    config = load_image_config(CONFIG_DIR / name, quick=True)
    model = build_image_model(config)
    data = config["data"]
    assert model.image_shape == (data["n_colors"], data["height"], data["width"])
    assert model.trajectory_length == config["model"]["trajectory_length"]
    assert model.conv_pathway == config["model"]["conv_pathway"]
    assert model.dense_pathway == config["model"]["dense_pathway"]
    n_values = sum(p.get_value().size for p in model.all_parameters)
    assert 0 < n_values < 300_000


def test_reference_configs_keep_the_depth_quirk():
    for name in ("reference_mnist.toml", "reference_cifar10.toml"):
        assert load_image_config(CONFIG_DIR / name)["model"]["dense_lower_depth_from_conv"]
    for name in ("mnist.toml", "cifar10.toml"):
        assert not load_image_config(CONFIG_DIR / name)["model"]["dense_lower_depth_from_conv"]


@pytest.mark.parametrize("name", IMAGE_CONFIGS)
def test_config_sets_learning_rate_decay(name):
    with (CONFIG_DIR / name).open("rb") as file:
        training = tomllib.load(file)["training"]
    # Set in the file, not left to the default of a constant rate.
    assert training["learning_rate_decay"] == "reference"
    assert training["decay_every_n_batches"] == 500


def test_config_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "typo.toml"
    text = (CONFIG_DIR / "reference_mnist.toml").read_text()
    path.write_text(text.replace("[model]\n", "[model]\nn_hiden_conv = 3\n", 1))
    with pytest.raises(ConfigError, match="n_hiden_conv") as error:
        load_image_config(path)
    assert str(path) in str(error.value)


def test_config_without_lower_part_is_rejected(tmp_path):
    path = tmp_path / "empty.toml"
    text = (CONFIG_DIR / "reference_mnist.toml").read_text()
    text = text.replace("conv_pathway = true", "conv_pathway = false")
    path.write_text(text.replace("dense_pathway = true", "dense_pathway = false"))
    with pytest.raises(ConfigError, match="conv_pathway and dense_pathway") as error:
        load_image_config(path)
    assert str(path) in str(error.value)


def test_config_scales_must_divide_image(tmp_path):
    path = tmp_path / "scales.toml"
    text = (CONFIG_DIR / "reference_mnist.toml").read_text()
    path.write_text(text.replace("n_scales = 1 ", "n_scales = 4 ", 1))
    with pytest.raises(ConfigError, match="n_scales = 4"):
        load_image_config(path)
