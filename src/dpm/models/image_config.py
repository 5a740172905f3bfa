"""Configurations of the image experiments: their defaults, checks and the model they build.

The files are ``original_configs/{mnist,cifar10,dead_leaves,bark}.toml``, the settings of
Sohl-Dickstein et al. 2015 (arXiv:1503.03585), and
``original_configs/reference_{mnist,cifar10}.toml``, those of the authors' reference code.
:func:`load_image_config` reads one with :func:`dpm.config.load_config`, which rejects
unknown sections and keys, naming the key and the file, and then checks every value.
"""

import logging

from dpm.config import ConfigError, check_values, load_config, one_of, positive
from dpm.diffusion.gaussian import PARAMETERIZATIONS
from dpm.models.image import ACTIVATIONS, ImageDiffusionModel

logger = logging.getLogger(__name__)

#: Data sets whose images the image model trains on.
IMAGE_DATASETS = ("mnist", "cifar10", "cifar10_subset", "dead_leaves", "bark")

#: Learning-rate schedules of ``[training] learning_rate_decay``: a constant rate, or the
#: reference code's decay (:class:`dpm.training.ReferenceDecay`) every
#: ``decay_every_n_batches`` batches.
LEARNING_RATE_DECAYS = ("none", "reference")

#: Every valid key, with its default and thereby its type. The model defaults are the
#: reference code's (model.py). The learning rate stays constant by default, so that a run
#: folder written before ``learning_rate_decay`` existed reads back as it was trained.
DEFAULTS = {
    "data": {
        "dataset": "mnist",
        "n_colors": 1,
        "height": 28,
        "width": 28,
        "random_patches": False,
        "dequantize": True,
    },
    "model": {
        "trajectory_length": 1000,
        "n_temporal_basis": 10,
        "basis_width": "reference",
        "conv_pathway": True,
        "dense_pathway": True,
        "n_layers_conv": 4,
        "n_hidden_conv": 20,
        "n_scales": 1,
        "multiscale_variant": "reference",
        "kernel_size": 3,
        "n_layers_dense_lower": 4,
        "n_hidden_dense_lower": 500,
        "n_hidden_dense_lower_output": 2,
        "dense_lower_depth_from_conv": True,
        "n_layers_dense_upper": 2,
        "n_hidden_dense_upper": 20,
        "conv_activation": "leaky_rectifier",
        "dense_activation": "leaky_rectifier",
        "schedule": "reference",
        "step1_beta": 0.001,
        "parameterization": "reference",
    },
    "training": {
        "step_rule": "rmsprop",
        "learning_rate": 0.001,
        "batch_size": 512,
        "n_epochs": 100,
        "seed": 1,
        "learning_rate_decay": "none",
        "decay_every_n_batches": 500,
    },
    "evaluation": {
        "n_images": 1000,
        "seed": 2,
    },
}

#: Keys of the ``[model]`` section that :class:`ImageDiffusionModel` takes unchanged.
MODEL_KEYS = tuple(DEFAULTS["model"])


def _is_bool(value):
    return isinstance(value, bool)


def _whole(minimum):
    return (lambda value: value >= minimum), f"an integer of at least {minimum}"


RULES = {
    "data.dataset": one_of(*IMAGE_DATASETS),
    "data.n_colors": _whole(1),
    "data.height": _whole(1),
    "data.width": _whole(1),
    "data.random_patches": (_is_bool, "true or false"),
    "data.dequantize": (_is_bool, "true or false"),
    "model.trajectory_length": _whole(2),
    "model.n_temporal_basis": _whole(2),
    "model.basis_width": one_of("reference", "paper"),
    "model.conv_pathway": (_is_bool, "true or false"),
    "model.dense_pathway": (_is_bool, "true or false"),
    "model.n_layers_conv": _whole(1),
    "model.n_hidden_conv": _whole(1),
    "model.n_scales": _whole(1),
    "model.multiscale_variant": one_of("paper", "reference"),
    "model.kernel_size": (lambda value: value >= 1 and value % 2 == 1, "an odd positive integer"),
    "model.n_layers_dense_lower": _whole(1),
    "model.n_hidden_dense_lower": _whole(1),
    "model.n_hidden_dense_lower_output": _whole(1),
    "model.dense_lower_depth_from_conv": (_is_bool, "true or false"),
    "model.n_layers_dense_upper": _whole(1),
    "model.n_hidden_dense_upper": _whole(1),
    "model.conv_activation": one_of(*sorted(ACTIVATIONS)),
    "model.dense_activation": one_of(*sorted(ACTIVATIONS)),
    "model.schedule": one_of("reference", "learned", "inverse_remaining"),
    "model.step1_beta": (lambda value: 0 < value < 1, "a number in (0, 1)"),
    "model.parameterization": one_of(*PARAMETERIZATIONS),
    "training.step_rule": one_of("adam", "rmsprop"),
    "training.learning_rate": (positive, "a positive number"),
    "training.batch_size": _whole(1),
    "training.n_epochs": _whole(1),
    "training.learning_rate_decay": one_of(*LEARNING_RATE_DECAYS),
    "training.decay_every_n_batches": _whole(1),
    "evaluation.n_images": _whole(1),
}


def check_image_config(config, where):
    """Reject invalid values of an image configuration, naming the file ``where`` and the key.

    Raises
    ------
    ConfigError
        For a value outside its range, a network without a lower part, or an image size
        that the multi-scale pooling does not divide.
    """
    check_values(config, RULES, where)
    model, data = config["model"], config["data"]
    if not (model["conv_pathway"] or model["dense_pathway"]):
        raise ConfigError(
            f"{where}: [model] conv_pathway and dense_pathway are both false; "
            "set at least one of them to true"
        )
    factor = 2 ** (model["n_scales"] - 1)
    if model["conv_pathway"] and (data["height"] % factor or data["width"] % factor):
        raise ConfigError(
            f"{where}: [data] height = {data['height']} and width = {data['width']} must be "
            f"multiples of 2**(n_scales - 1) = {factor} for [model] n_scales = "
            f"{model['n_scales']}; lower n_scales or change the image size"
        )


def load_image_config(path, quick=False):
    """Read and check an image configuration file, with its ``[quick]`` overrides when ``quick``.

    Returns
    -------
    dict of dict
        Every section of :data:`DEFAULTS`, completed with the defaults.
    """
    config = load_config(path, DEFAULTS, quick=quick)
    check_image_config(config, f"{path} [quick]" if quick else str(path))
    return config


def build_image_model(config, name="image", implementation=None):
    """Build the :class:`ImageDiffusionModel` that ``config`` describes, uninitialized.

    Parameters
    ----------
    config : dict of dict
        As :func:`load_image_config` returns it.
    name : str
        Name of the model brick, the first part of every parameter path.
    implementation : {'op', 'join', 'shifted_sum'}, optional
        Convolution implementation, see :func:`~dpm.ops.conv2d_same`.
    """
    data = config["data"]
    image_shape = (data["n_colors"], data["height"], data["width"])
    settings = {key: config["model"][key] for key in MODEL_KEYS}
    model = ImageDiffusionModel(image_shape, implementation=implementation, name=name, **settings)
    logger.info(
        "built image model %s for images %s with %d parameter arrays",
        name, image_shape, len(model.all_parameters),
    )
    return model
