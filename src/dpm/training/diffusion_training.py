"""Training a diffusion model, Gaussian or binomial, on an array of data with the bound K as objective."""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt

from dpm import backend
from dpm.data.streams import ArrayDataset, DataStream, ShuffledScheme
from dpm.diffusion import DiffusionInputs
from dpm.training.algorithm import GradientDescent
from dpm.training.extensions import Checkpoint, FinishAfter, Printing, ProgressBar, Timing
from dpm.training.main_loop import MainLoop
from dpm.training.resume import resume
from dpm.training.run_dir import STATS_NAME
from dpm.training.schedules import build_schedule
from dpm.training.stats import StatsWriter
from dpm.training.step_rules import build_step_rule

logger = logging.getLogger(__name__)


@dataclass
class DiffusionTraining:
    """The parts of a diffusion model's training that :func:`build_diffusion_training` builds."""

    algorithm: GradientDescent
    stream: DataStream
    scheme: ShuffledScheme
    draws: DiffusionInputs
    step_rule: object

    @property
    def random_states(self):
        """The random sources outside the stream, for :class:`MainLoop`."""
        return {"draws": self.draws}


def build_draws(model, settings, seed):
    """Return the seeded draws of ``t`` and noise that ``settings`` ask for (see :func:`train_diffusion_model`)."""
    return DiffusionInputs(model.trajectory_length, model.n_dims, seed,
                           draw_noise=model.diffusion.draw_noise,
                           t_sampling=settings.get("t_sampling", "uniform"),
                           t_groups=settings.get("t_groups"))


def compile_bound_step(model, settings, draws):
    """Compile the step that maximizes ``model``'s K on batches of (batch, D) rows.

    Each batch is a dict with ``features``; ``draws`` adds its ``t`` and noise. ``settings``
    are as for :func:`train_diffusion_model`, and ``batch_size`` is needed only with
    ``t_groups``. Returns the :class:`GradientDescent` and its step rule.
    """
    floatX = pytensor.config.floatX
    x0 = pt.matrix("x0", dtype=floatX)
    t = pt.ivector("t")
    noise = pt.matrix("noise", dtype=floatX)
    t_groups = settings.get("t_groups")
    if t_groups is None and backend.current_backend() != "jax":
        terms = model.bound_estimate(x0, t, noise)
    else:
        # The shuffled schemes yield only full batches, and JAX traces reshapes (of grouped
        # readouts, of flattened images) only when the batch size is a constant.
        shape = (settings["batch_size"], model.n_dims)
        terms = model.bound_estimate(pt.specify_shape(x0, shape), t,
                                     pt.specify_shape(noise, shape), t_groups=t_groups)
    monitored = {"K": pt.mean(terms["K"]), "K_minus_L_null": pt.mean(terms["K_minus_L_null"])}
    step_rule = build_step_rule(settings["step_rule"], settings["learning_rate"],
                                lazy=settings.get("lazy", False),
                                row_scale=settings.get("row_scale", 1.0))
    algorithm = GradientDescent(
        -monitored["K"], model.all_parameters, step_rule, [x0, t, noise], monitored,
        prepare_inputs=lambda batch: (batch["features"], *draws(len(batch["features"]))),
    )
    return algorithm, step_rule


def build_diffusion_training(model, features, settings, seed):
    """Compile the training step of ``model`` on ``features`` and build its seeded stream and draws.

    ``settings`` and ``seed`` are as for :func:`train_diffusion_model`. The algorithm
    monitors ``K`` and ``K_minus_L_null``, batch means in bits per data point.
    """
    floatX = pytensor.config.floatX
    features = np.asarray(features, dtype=floatX)
    if features.ndim != 2 or features.shape[1] != model.n_dims:
        raise ValueError(f"features must have shape (N, {model.n_dims}), got {features.shape}")
    batch_seed, draw_seed = np.random.SeedSequence(seed).spawn(2)
    draws = build_draws(model, settings, draw_seed)
    scheme = ShuffledScheme(len(features), settings["batch_size"], batch_seed)
    stream = DataStream(ArrayDataset(features=features), scheme)
    algorithm, step_rule = compile_bound_step(model, settings, draws)
    return DiffusionTraining(algorithm, stream, scheme, draws, step_rule)


def train_diffusion_model(model, features, settings, seed, checkpoint_path=None, progress=True, *,
                          extensions=(), checkpoint_every_n_epochs=None, resume_from=None):
    """Maximize K of ``model`` on ``features`` and return the training log.

    Parameters
    ----------
    model : DiffusionModel
        Already initialized. Its diffusion process's ``draw_noise`` draws the noise.
    features : ndarray (N, D)
    settings : dict
        ``step_rule``, ``learning_rate``, ``final_learning_rate``, ``batch_size`` and
        ``n_epochs``; an epoch is one pass over ``features``. Optional: ``t_sampling``
        ('uniform' by default) and ``t_groups`` (None by default), how each batch's time
        steps are drawn (:func:`dpm.diffusion.draws.draw_t`), and ``lazy`` (False by
        default), whether the step rule updates only the rows of a per-step readout that
        the batch used. ``learning_rate_schedule`` (optional) picks the decay, see
        :func:`dpm.training.schedules.build_schedule`.
    seed : int
        Seeds the minibatch order and the draws of ``t`` and noise, independently.
    checkpoint_path : path-like, optional
        Where the checkpoint is written (atomically) after training, on an interrupt and
        every ``checkpoint_every_n_epochs`` epochs. The epoch records are appended to
        ``stats.jsonl`` in the same folder.
    progress : bool
        Show a progress bar.
    extensions : sequence of extensions
        More extensions, run after the stopping rule and the schedule and before the
        printing, the records file and the checkpoint.
    checkpoint_every_n_epochs : int, optional
    resume_from : path-like, optional
        A checkpoint (or run folder) of an interrupted run with the same ``settings`` and
        ``seed``, to continue. A larger ``n_epochs`` trains longer, but the default schedule
        then decays by another factor from the resumed epoch on.
    """
    parts = build_diffusion_training(model, features, settings, seed)
    n_epochs = settings["n_epochs"]
    all_extensions = [
        Timing(),
        FinishAfter(after_n_epochs=n_epochs),
        build_schedule(settings, parts.step_rule.learning_rate, n_epochs),
        *extensions,
        Printing(every_n_epochs=max(1, n_epochs // 10), keys=("K", "learning_rate", "total_seconds")),
    ]
    if progress:
        all_extensions.append(ProgressBar(n_epochs * parts.scheme.batches_per_epoch()))
    if checkpoint_path is not None:
        state = lambda: {"draws": parts.draws.get_state(), "batches": parts.scheme.get_state()}  # noqa: E731
        all_extensions.append(StatsWriter(Path(checkpoint_path).with_name(STATS_NAME)))
        all_extensions.append(Checkpoint(checkpoint_path, model, parts.step_rule, state=state,
                                         every_n_epochs=checkpoint_every_n_epochs))
    main_loop = MainLoop(parts.algorithm, parts.stream, all_extensions,
                         random_states=parts.random_states)
    if resume_from is not None:
        resume(resume_from, main_loop, model)
    main_loop.run()
    log = main_loop.log
    logger.info("training done: %d batches, %d non-finite steps skipped",
                log.status["iterations_done"], log.status["nonfinite_steps"])
    return log


#: The former name, from when only Gaussian diffusion existed; it trains any diffusion model.
train_gaussian_model = train_diffusion_model
