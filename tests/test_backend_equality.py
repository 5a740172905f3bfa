"""Agreement of whole models across the C, Numba and JAX backends.

For each model one set of parameter values (a seeded initialization, with random biases
so that they matter) is copied into a fresh model on every backend. The training cost
``-mean(K)`` and its gradient with respect to every parameter are then computed in
float32 from the same batch, time steps and noise, and the Numba and JAX results are
compared with the C results. The models are two tiny image networks and the heartbeat
network. The first image network is the reference MNIST ``[quick]`` one of the authors'
reference code. The second changes it to two scales, the multi-scale layer and the
reverse kernel of Sohl-Dickstein et al. 2015. The heartbeat network is compared with
per-example readouts, and with per-block readouts that have a shared part. The swiss
roll network covers Gaussian diffusion. The image networks are compared on C and JAX
only: see ``NUMBA_SKIPPED``.

The JAX comparisons skip when JAX is not installed (``pip install -e '.[jax]'``).

NOTE: with an empty compile cache this file took 3 min 20 s on 2 CPU cores, most of it
compiling the image graphs. With a warm cache it takes about 17 s.
"""

import contextlib
import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from dpm import backend
from dpm.data import heartbeat
from dpm.data import swiss_roll
from dpm.models import HeartbeatModel, SwissRollModel
from dpm.models.image_config import build_image_model, load_image_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "original_configs"
JAX_MISSING = importlib.util.find_spec("jax") is None
COMPARED_BACKENDS = (
    "numba",
    pytest.param("jax", marks=[
        pytest.mark.skipif(JAX_MISSING, reason="JAX is not installed"),
        # PyTensor's sums of float32 request a float64 accumulator, which JAX without
        # x64 mode replaces by float32, with this warning.
        pytest.mark.filterwarnings("ignore:Explicitly requested dtype float64:UserWarning"),
    ]),
)

# Every output is compared elementwise as |value - c_value| <= RTOL * max|c_value|, per
# array. float32 rounds to about 6e-8 relative. The backends add the same terms in
# different orders (im2col products against XLA convolutions, matrix products with or
# without BLAS). C and Numba accumulate float32 sums in float64, the accumulator that
# PyTensor 3.0.7 requests for them, but JAX without x64 mode accumulates in float32.
# exp, log and softplus may also differ in the last bit. An output here sums at most a
# few hundred terms, so rounding can reach roughly a few hundred times 6e-8, about 2e-5
# of the largest value (an estimate). The worst difference measured was 1.4e-6. A 1%
# change of a single weight on one backend fails every case.
RTOL = 1e-4

IMAGE_SHAPE = (1, 8, 8)
IMAGE_BATCH = 4
HEARTBEAT_T = 20
HEARTBEAT_BATCH = 6


@contextlib.contextmanager
def configured(backend_name):
    """Compile with ``backend_name`` in float32 inside the block, then restore the settings."""
    previous_backend = backend.current_backend()
    previous_floatx = pytensor.config.floatX
    backend.configure(backend_name, "float32")
    try:
        yield
    finally:
        backend.configure(previous_backend, previous_floatx)


def image_model(**model_settings):
    """Return a builder of the reference MNIST ``[quick]`` network on 1x8x8 images."""
    config = load_image_config(CONFIG_DIR / "reference_mnist.toml", quick=True)
    config["data"].update(n_colors=IMAGE_SHAPE[0], height=IMAGE_SHAPE[1], width=IMAGE_SHAPE[2])
    config["model"].update(model_settings)
    return lambda: build_image_model(config)


def image_batch(rng):
    return rng.standard_normal((IMAGE_BATCH, int(np.prod(IMAGE_SHAPE)))).astype(np.float32)


def swiss_roll_batch(rng):
    return swiss_roll.sample(HEARTBEAT_BATCH, rng).astype(np.float32)


def heartbeat_batch(rng):
    return heartbeat.sample(HEARTBEAT_BATCH, rng).astype(np.float32)


@dataclass(frozen=True)
class Case:
    """A model, the seed of its parameters and inputs, and the time steps of its batch."""

    build_model: Callable
    draw_x0: Callable
    seed: int
    t: tuple
    t_groups: int | None = None


CASES = {
    "image_reference": Case(image_model(), image_batch, 1, (2, 7, 13, 20)),
    "image_paper": Case(
        image_model(n_scales=2, multiscale_variant="paper", parameterization="paper"),
        image_batch, 2, (2, 7, 13, 20),
    ),
    # Gaussian diffusion with a learned schedule, cheap to compile on Numba.
    "swiss_roll": Case(lambda: SwissRollModel(trajectory_length=HEARTBEAT_T), swiss_roll_batch,
                       5, (2, 3, 8, 11, 19, 20)),
    "heartbeat": Case(lambda: HeartbeatModel(trajectory_length=HEARTBEAT_T), heartbeat_batch,
                      3, (2, 3, 8, 11, 19, 20)),
    # Three blocks of two examples that share a step, as in the heartbeat training batches,
    # with the readouts' shared part of original_configs/heartbeat.toml.
    "heartbeat_blocks": Case(lambda: HeartbeatModel(trajectory_length=HEARTBEAT_T,
                                                    readout_basis=4, readout_basis_width="paper"),
                             heartbeat_batch, 4, (2, 2, 11, 11, 20, 20), t_groups=3),
}

# Numba compiles an image graph in about 80 s on 2 cores, most of it in LLVM, which would
# push an empty-cache suite past 14 minutes. The image networks are therefore compared on
# C and JAX here. On Numba, test_multiscale.py compares a network of both multi-scale
# variants, the pixel readout and the temporal basis with C and JAX, and the Gaussian
# (swiss roll) and binomial (heartbeat) bounds are compared here.
NUMBA_SKIPPED = {"image_paper", "image_reference"}


@functools.cache
def case_inputs(case_name):
    """Return the shared parameter values and the inputs ``(x0, t, noise)`` of a case."""
    case = CASES[case_name]
    rng = np.random.default_rng(case.seed)
    with configured("c"):
        model = case.build_model()
        model.initialize(rng)
        values = model.get_parameter_values()
        for path, value in values.items():
            if path.endswith((".b", "_basis")):
                values[path] = 0.1 * rng.standard_normal(value.shape).astype(value.dtype)

        x0 = case.draw_x0(rng)
        t = np.array(case.t, dtype=np.int32)
        noise = model.diffusion.draw_noise(rng, x0.shape)
    return values, (x0, t, noise)


@functools.cache
def cost_and_gradients(case_name, backend_name):
    """Return the cost and the gradient of every parameter of a case on one backend, by name."""
    case = CASES[case_name]
    values, inputs = case_inputs(case_name)
    with configured(backend_name):
        model = case.build_model()
        model.set_parameter_values(values)
        x0, t, noise = pt.matrix("x0"), pt.ivector("t"), pt.matrix("noise")
        # The graph that dpm.training.diffusion_training.compile_bound_step compiles. It
        # fixes the batch shape for per-block readouts and on JAX, because JAX traces the
        # reshapes of the image network and of those readouts only with a constant shape.
        if case.t_groups is not None or backend_name == "jax":
            shape = inputs[0].shape
            x0_in, noise_in = pt.specify_shape(x0, shape), pt.specify_shape(noise, shape)
        else:
            x0_in, noise_in = x0, noise
        terms = model.bound_estimate(x0_in, t, noise_in, t_groups=case.t_groups)
        cost = -pt.mean(terms["K"])
        parameters = model.all_parameters
        function = backend.compile_function(
            [x0, t, noise], [cost, *pytensor.grad(cost, parameters)]
        )
        outputs = function(*inputs)
    names = ["cost", *(parameter.name for parameter in parameters)]
    return {name: np.asarray(output) for name, output in zip(names, outputs, strict=True)}


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_c_gradients_reach_every_parameter(case_name):
    # A comparison of zeros would pass whatever the backends computed.
    results = cost_and_gradients(case_name, "c")
    for name, value in results.items():
        assert np.all(np.isfinite(value)), name
        assert np.any(value != 0), name


@pytest.mark.parametrize("backend_name", COMPARED_BACKENDS)
@pytest.mark.parametrize("case_name", sorted(CASES))
def test_cost_and_gradients_match_c(case_name, backend_name):
    if backend_name == "numba" and case_name in NUMBA_SKIPPED:
        pytest.skip("Numba image graphs take too long to compile for the suite (see NUMBA_SKIPPED)")
    expected = cost_and_gradients(case_name, "c")
    results = cost_and_gradients(case_name, backend_name)

    assert results.keys() == expected.keys()
    for name, value in results.items():
        assert value.shape == expected[name].shape, name
        tolerance = RTOL * np.max(np.abs(expected[name]))
        difference = np.max(np.abs(value - expected[name]))
        assert difference <= tolerance, f"{name}: max difference {difference:.3g} > {tolerance:.3g}"

