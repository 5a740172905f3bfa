"""Training an image model from its configuration file in a numbered run folder (``dpm train``).

A run of ``original_configs/NAME.toml`` goes to ``runs/NAME/NNN`` (see
:mod:`dpm.training.run_dir`), with ``plots/monitors.png`` and, after training, the sample,
inpainting and denoising grids ``plots/<name>.png``.
"""

import logging
from pathlib import Path

import numpy as np

from dpm.image_data import (
    held_out_features,
    locate_data_file,
    open_image_data,
    spawn_seeds,
    training_stream,
)
from dpm.image_sampling import DEFAULT_DENOISE_SIGMA, ImageSampler
from dpm.models.image_config import DEFAULTS, build_image_model, load_image_config
from dpm.training.diffusion_training import build_draws, compile_bound_step
from dpm.training.extensions import FinishAfter, Printing, ProgressBar, Timing
from dpm.training.monitors import LogLikelihood
from dpm.training.plots import PlotMonitors, PlotSamples
from dpm.training.checkpoint import load_checkpoint
from dpm.training.run_dir import (
    CONFIG_NAME,
    DEFAULT_RUNS_ROOT,
    PLOTS_NAME,
    checkpoint_file,
    config_as_stored,
    create_run_dir,
    read_config,
)
from dpm.training.schedules import ReferenceDecay
from dpm.training.log import TrainingLog
from dpm.training.training_run import TrainingRun, run_training

logger = logging.getLogger(__name__)

#: Images in each grid that the plots show after training.
N_PLOT_IMAGES = 36
#: Evaluations of the held-out K per run, at most; every epoch for runs of up to 10 epochs.
N_EVALUATIONS = 10
#: Keys of the configuration stored in ``config.json`` besides the sections of the file.
RUN_KEYS = ("config_file", "quick", "data_file")
#: Sections that must equal the run's to resume it, because they fix the model's parameters and the data.
RESUME_FIXED_SECTIONS = ("data", "model")


class TrainingInterrupted(KeyboardInterrupt):
    """A KeyboardInterrupt during training, after the checkpoint of ``run_dir`` was written."""

    def __init__(self, run_dir):
        super().__init__(f"training interrupted; checkpoint written to {run_dir}")
        self.run_dir = Path(run_dir)


def run_config(config_path, quick, data_file):
    """Return the configuration as ``config.json`` stores it: the sections and :data:`RUN_KEYS`."""
    config = load_image_config(config_path, quick=quick)
    return {"config_file": str(config_path), "quick": bool(quick), "data_file": str(data_file),
            **config}


def build_model(config, seed=None):
    """Build the configured model; initialize it from ``seed`` when given."""
    model = build_image_model(config)
    if seed is not None:
        model.initialize(np.random.default_rng(seed))
    return model


def build_algorithm(model, training, seed):
    """Compile the step that maximizes K on batches of (batch, C*H*W) rows.

    Returns the :class:`GradientDescent` and its seeded draws of ``t`` and noise, which
    :func:`run_training` checkpoints as the random state ``'draws'``.
    """
    draws = build_draws(model, training, seed)
    algorithm, _ = compile_bound_step(model, training, draws)
    return algorithm, draws


def build_learning_rate_decay(training, learning_rate):
    """Build the extension that decays ``learning_rate`` as ``[training] learning_rate_decay`` sets.

    ``'reference'`` multiplies the rate by :data:`~dpm.training.schedules.REFERENCE_FACTOR`
    after every ``decay_every_n_batches`` batches, counted over the whole run, and stops
    at :data:`~dpm.training.schedules.REFERENCE_MINIMUM`. After ``N`` batches the rate is
    therefore ``max(learning_rate * REFERENCE_FACTOR ** (N // decay_every_n_batches),
    REFERENCE_MINIMUM)``. The extension checkpoints the rate, so a resumed run continues
    the schedule.

    Parameters
    ----------
    training : dict
        The ``[training]`` section.
    learning_rate : shared scalar
        The step rule's learning rate.

    Returns
    -------
    ReferenceDecay or None
        None for ``'none'``, a constant rate.
    """
    name = training["learning_rate_decay"]
    if name == "none":
        return None
    if name == "reference":
        return ReferenceDecay(learning_rate, every_n_epochs=None,
                              every_n_batches=training["decay_every_n_batches"])
    raise ValueError(f"unknown learning_rate_decay {name!r}; choose 'none' or 'reference'")


def plot_images(sampler, held_out, seed):
    """Return the sample, inpainting and denoising grids of ``sampler``, for :class:`PlotSamples`."""
    rows = held_out[:N_PLOT_IMAGES]
    sample_seed, inpaint_seed, denoise_seed = spawn_seeds(seed, 3)
    images = sampler.samples(N_PLOT_IMAGES, sample_seed)
    images.update(sampler.inpaint(rows, inpaint_seed))
    images.update(sampler.denoise(rows, DEFAULT_DENOISE_SIGMA, denoise_seed))
    return images


def train_image_model(config_path, quick=False, resume_from=None, root=DEFAULT_RUNS_ROOT,
                      data_file=None, progress=True):
    """Train the image model of ``config_path`` in a new run folder, or continue ``resume_from``.

    Parameters
    ----------
    config_path : path-like
        An image configuration, see :mod:`dpm.models.image_config`.
    quick : bool
        Apply the file's ``[quick]`` overrides.
    resume_from : path-like, optional
        A run folder of this configuration to continue from its checkpoint. A larger
        ``[training] n_epochs`` than the run's trains longer.
    root : path-like
        New runs go to ``<root>/<config file stem>/NNN``.
    data_file : path-like, optional
        The prepared data file. A resumed run uses the file in its ``config.json``, and a
        new run the default file of ``[data] dataset``, which is prepared when missing.
    progress : bool
        Show a progress bar.

    Returns
    -------
    TrainingRun

    Raises
    ------
    TrainingInterrupted
        On a KeyboardInterrupt during training, once the checkpoint is written.
    """
    config_path = Path(config_path)
    config = load_image_config(config_path, quick=quick)
    if resume_from is not None:
        stored = read_config(resume_from)
        check_resumable(resume_from, stored, config_path, quick, config)
        if data_file is None:
            data_file = stored.get("data_file")
    data_file = locate_data_file(config["data"]["dataset"], data_file)
    config = run_config(config_path, quick, data_file)
    if resume_from is not None:
        finished = finished_run(resume_from, config["training"]["n_epochs"])
        if finished is not None:
            return finished
    image_data = open_image_data(data_file, config)

    training, evaluation = config["training"], config["evaluation"]
    model_seed, draw_seed, stream_seed, plot_seed = np.random.SeedSequence(training["seed"]).spawn(4)
    model = build_model(config, model_seed)
    algorithm, draws = build_algorithm(model, training, draw_seed)
    stream = training_stream(image_data, config, stream_seed)
    held_out = held_out_features(image_data, config, evaluation["n_images"], evaluation["seed"])
    n_epochs = training["n_epochs"]
    every = max(1, n_epochs // N_EVALUATIONS)

    extensions = [Timing(), FinishAfter(after_n_epochs=n_epochs)]
    decay = build_learning_rate_decay(training, algorithm.step_rule.learning_rate)
    if decay is not None:
        extensions.append(decay)
    extensions += [
        LogLikelihood(model, held_out, seed=evaluation["seed"], every_n_epochs=every,
                      after_training=n_epochs % every != 0),
        Printing(every_n_epochs=every,
                 keys=("K", "test_K", "test_K_minus_L_null", "learning_rate", "total_seconds")),
    ]
    if progress:
        batches_per_epoch = stream.iteration_scheme.batches_per_epoch()
        extensions.append(ProgressBar(n_epochs * batches_per_epoch))
    run_name = config_path.stem
    # The plots need the folder before run_training, so a new run's folder is created here.
    folder = Path(resume_from) if resume_from is not None else create_run_dir(run_name, root=root)
    plots = folder / PLOTS_NAME
    sampler = ImageSampler(model, image_data)
    extensions += [
        PlotMonitors(plots / "monitors.png", keys=("K", "test_K_minus_L_null")),
        PlotSamples(lambda: plot_images(sampler, held_out, plot_seed), plots,
                    every_n_epochs=None, after_training=True),
    ]
    new_run_dir = folder if resume_from is None else None
    try:
        run = run_training(model, algorithm, stream, extensions, config=config,
                           run_dir=new_run_dir, resume_from=resume_from,
                           random_states={"draws": draws})
    except KeyboardInterrupt as interrupt:
        raise TrainingInterrupted(folder) from interrupt
    logger.info("run %s: %d batches done", run.run_dir, run.log.status["iterations_done"])
    return run


def check_resumable(run_dir, stored, config_path, quick, config):
    """Raise unless ``config`` builds the same model on the same data as the run in ``run_dir``.

    Only the sections of :data:`RESUME_FIXED_SECTIONS` and the ``--quick`` flag are compared,
    so a larger ``[training] n_epochs`` continues the run.

    Raises
    ------
    ValueError
        If ``quick`` or a compared section differs from ``stored``, the run's ``config.json``.
        The message names the run's configuration file and flag.
    """
    current = config_as_stored(config)
    # A run written before a key existed lacks it, and the key's default is what that run did.
    changed = [f"[{section}]" for section in RESUME_FIXED_SECTIONS
               if {**DEFAULTS.get(section, {}), **stored.get(section, {})} != current.get(section)]
    if stored.get("quick", False) != bool(quick):
        changed.append("--quick")
    if not changed:
        return
    started = "with --quick" if stored.get("quick") else "without --quick"
    requested = "with --quick" if quick else "without --quick"
    raise ValueError(
        f"cannot resume {run_dir}: it was started from {stored.get('config_file', 'an unknown file')} "
        f"{started}, and {config_path} {requested} differs in {', '.join(changed)}. Resume with the "
        "same CONFIG and --quick as the run was started with; the run's resolved configuration "
        f"is {Path(run_dir) / CONFIG_NAME}"
    )


def finished_run(run_dir, n_epochs):
    """Return the :class:`TrainingRun` of ``run_dir`` if its checkpoint has ``n_epochs`` epochs done.

    Returns None when the run has epochs left, so that it is resumed. A finished run's
    ``main_loop`` is None, because nothing is compiled or trained.
    """
    _, _, state = load_checkpoint(checkpoint_file(run_dir))
    if "log" not in state:
        return None  # resume() rejects such a checkpoint with the fix.
    log = TrainingLog.from_dict(state["log"])
    epochs_done = log.status["epochs_done"]
    if epochs_done < n_epochs:
        return None
    logger.info("run %s is complete: %d of %d epochs done. To train it longer, resume it with a "
                "configuration whose [training] n_epochs is larger than %d",
                run_dir, epochs_done, n_epochs, epochs_done)
    return TrainingRun(Path(run_dir), log, None)
