"""A trained image run read back from its folder: held-out K (``dpm evaluate``) and samples (``dpm sample``)."""

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpm.atomic import atomic_path
from dpm.evaluation.bound import check_steps_per_example
from dpm.image_data import ImageData, held_out_features, open_image_data
from dpm.image_sampling import ImageSampler, write_image_grid
from dpm.image_training import build_model
from dpm.models.image_config import DEFAULTS, check_image_config
from dpm.training.checkpoint import load_checkpoint
from dpm.training.monitors import LogLikelihood
from dpm.training.run_dir import checkpoint_file, read_config

logger = logging.getLogger(__name__)

EVALUATION_NAME = "evaluation.json"
SAMPLES_NAME = "samples"


def bits_per_dimension(K, n_dims, grey_level_width):
    """Return the negative log-likelihood bound of 8-bit data in bits per pixel and colour.

    ``K`` is the bound in bits per example of the model's density on data in model units,
    where one grey level of the stored 8-bit values is ``grey_level_width`` wide (the
    ``ScaleAndShift`` scale from stored values). A grey level's probability is about the
    density times that width, so the result is ``-K / n_dims - log2(grey_level_width)``.
    With ``s = 255 * grey_level_width``, the scale from [0, 1] pixel units, this equals
    ``-K / n_dims + log2(255 / s)``.
    """
    return -K / n_dims - math.log2(grey_level_width)


@dataclass
class ImageRun:
    """A run folder's configuration, data and model with the checkpoint's parameters."""

    run_dir: Path
    config: dict
    image_data: ImageData
    model: object


def load_image_run(run_dir):
    """Rebuild the model of ``run_dir`` and set its checkpoint's parameters.

    Raises
    ------
    FileNotFoundError
        If the folder has no ``config.json`` or ``checkpoint.npz``.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    for key in ("data", "model", "data_file"):
        if key not in config:
            raise ValueError(
                f"{run_dir}/config.json has no {key!r} entry, so `dpm train` did not write it; "
                "pass the folder of an image run"
            )
    # A run folder written before a key existed lacks it. Each such key's default keeps
    # what the older runs did, e.g. a constant rate for [training] learning_rate_decay.
    for section, defaults in DEFAULTS.items():
        config[section] = {**defaults, **config.get(section, {})}
    check_image_config(config, f"{run_dir}/config.json")
    parameters, _, _ = load_checkpoint(checkpoint_file(run_dir))
    model = build_model(config)
    model.set_parameter_values(parameters)
    image_data = open_image_data(config["data_file"], config)
    return ImageRun(run_dir, config, image_data, model)


def evaluate_run(run_dir, n_images=None, progress=False, t_per_image=None):
    """Evaluate K on the held-out images of ``run_dir`` and write it to a JSON file there.

    The exact value goes to ``evaluation.json``, and an estimate from ``t_per_image`` steps
    to ``evaluation-t<t_per_image>.json``, so an estimate never replaces the exact value.

    The points, their dequantization noise and the draws of ``xt`` are those of the run's
    :class:`LogLikelihood`, so with the same ``n_images`` the numbers equal the last
    held-out values in ``stats.jsonl``.

    Parameters
    ----------
    run_dir : path-like
    n_images : int, optional
        Held-out images to evaluate, ``[evaluation] n_images`` by default.
    progress : bool
    t_per_image : int, optional
        Estimate each image's KL sum from this many steps, stratified over ``2..T``, instead
        of summing it over all ``T - 1`` steps (see :meth:`BoundEvaluator.evaluate`). The
        estimate is unbiased, and its standard errors include the variance of the drawn
        steps.

    Returns
    -------
    dict
        ``K``, ``K_stderr``, ``K_minus_L_null``, ``K_minus_L_null_stderr`` (bits per image),
        ``n_points``, ``t_per_image`` (``T - 1`` when exact), ``exact`` (whether every step
        was evaluated), ``n_dims``, ``K_per_dimension`` and, for 8-bit images,
        ``bits_per_dimension`` (see :func:`bits_per_dimension`).
    """
    run = load_image_run(run_dir)
    if t_per_image is not None:
        check_steps_per_example(t_per_image, run.model.trajectory_length, "t_per_image")
    evaluation = run.config["evaluation"]
    count = evaluation["n_images"] if n_images is None else int(n_images)
    held_out = held_out_features(run.image_data, run.config, count, evaluation["seed"])
    monitor = LogLikelihood(run.model, held_out, seed=evaluation["seed"])
    result = monitor.evaluator.evaluate(monitor.points, seed=monitor.evaluation_seed,
                                        progress=progress, t_per_example=t_per_image)
    n_dims = run.model.n_dims
    report = {name: result[name] for name in
              ("K", "K_stderr", "K_minus_L_null", "K_minus_L_null_stderr", "n_points")}
    report["t_per_image"] = result["t_per_example"]
    report["exact"] = t_per_image is None
    report["n_dims"] = n_dims
    report["K_per_dimension"] = result["K"] / n_dims
    if run.image_data.quantized:
        report["bits_per_dimension"] = bits_per_dimension(result["K"], n_dims, run.image_data.scale)
        report["bits_per_dimension_stderr"] = result["K_stderr"] / n_dims
    path = Path(run_dir) / evaluation_file_name(t_per_image)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(report, indent=2) + "\n")
    logger.info("wrote %s", path)
    return report


def evaluation_file_name(t_per_image=None):
    """Return the file name of an exact evaluation, or of an estimate from ``t_per_image`` steps."""
    if t_per_image is None:
        return EVALUATION_NAME
    return f"evaluation-t{t_per_image}.json"


def sample_file_name(kind, seed, denoise_sigma=None, size=None):
    """Return the default PNG name of ``sample_run``'s grid, from its kind, sigma, size and seed.

    ``size`` is the (H, W) of plain samples that differ from the training size, or None. The
    sigma is written with 6 significant digits, so sigmas closer than that share a name.
    """
    parts = [kind]
    if kind == "denoising":
        parts.append(f"sigma{denoise_sigma:g}")
    if size is not None:
        parts.append(f"{size[0]}x{size[1]}")
    parts.append(f"seed{seed}")
    return "-".join(parts) + ".png"


def sample_run(run_dir, kind="samples", n_images=36, seed=0, denoise_sigma=None, size=None,
               output=None, progress=True):
    """Draw images from the model of ``run_dir`` and write them as a PNG grid.

    Parameters
    ----------
    kind : {'samples', 'inpainting', 'denoising'}
        Plain samples, the centre of held-out images filled in, or held-out images with
        Gaussian noise of standard deviation ``denoise_sigma`` (model units, in which the
        training data have unit variance) denoised.
    size : (int, int), optional
        Height and width of plain samples, the training size by default. Other sizes need
        a model without the dense pathway, and multiples of ``2**(n_scales - 1)``.
    output : path-like, optional
        The PNG file. By default it is ``<run_dir>/samples/<name>``, with the name of
        :func:`sample_file_name`: for example ``samples-seed0.png``,
        ``samples-32x32-seed0.png`` for another size, or ``denoising-sigma0.5-seed0.png``.
        The input grid of inpainting and denoising goes next to it, ``<stem>-input.png``.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    if kind not in ("samples", "inpainting", "denoising"):
        raise ValueError(f"unknown kind {kind!r}; choose samples, inpainting or denoising")
    if kind == "denoising" and denoise_sigma is None:
        raise ValueError("denoising needs denoise_sigma, the noise standard deviation")
    run = load_image_run(run_dir)
    image_shape = _checked_shape(run, size, kind)
    sampler = ImageSampler(run.model, run.image_data)
    if kind == "samples":
        images = sampler.samples(n_images, seed, image_shape, progress=progress)
    else:
        evaluation = run.config["evaluation"]
        rows = held_out_features(run.image_data, run.config, n_images, evaluation["seed"])
        if kind == "inpainting":
            images = sampler.inpaint(rows, seed, progress=progress)
        else:
            images = sampler.denoise(rows, denoise_sigma, seed, progress=progress)

    if output is None:
        model_size = tuple(run.model.image_shape)[1:]
        size = image_shape[1:] if image_shape[1:] != model_size else None
        output = Path(run_dir) / SAMPLES_NAME / sample_file_name(kind, seed, denoise_sigma, size)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    written = [write_image_grid(images[kind], output, kind)]
    if f"{kind}_input" in images:
        input_path = output.with_name(f"{output.stem}-input.png")
        written.append(write_image_grid(images[f"{kind}_input"], input_path, f"{kind} input"))
    return written


def _checked_shape(run, size, kind):
    """Return the (C, H, W) of plain samples of ``size``, after checking that the model allows it."""
    model_shape = tuple(run.model.image_shape)
    if size is None or tuple(size) == model_shape[1:]:
        return model_shape
    if kind != "samples":
        raise ValueError(f"--size applies to plain samples only, not to {kind}; drop --size")
    height, width = (int(n) for n in size)
    model = run.config["model"]
    if model["dense_pathway"]:
        raise ValueError(
            f"this run's model has the dense pathway, whose weights are tied to its "
            f"{model_shape[1]}x{model_shape[2]} images, so it cannot sample {height}x{width}; "
            "drop --size, or train with dense_pathway = false"
        )
    factor = 2 ** (model["n_scales"] - 1)
    if height < 1 or width < 1 or height % factor or width % factor:
        raise ValueError(
            f"--size {height} {width} must be positive multiples of 2**(n_scales - 1) = {factor}"
        )
    return (model_shape[0], height, width)


def as_json(report):
    """Return ``report`` as indented JSON text, with NumPy numbers as plain ones."""
    return json.dumps(report, indent=2, default=lambda value: np.asarray(value).tolist())
