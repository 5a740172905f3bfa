"""Training a diffusion model, Gaussian or binomial, on an array of data with the bound K as objective."""

import logging

import numpy as np
import pytensor
import pytensor.tensor as pt

from dpm.data.streams import ArrayDataset, DataStream, ShuffledScheme
from dpm.diffusion import DiffusionInputs
from dpm.training.algorithm import GradientDescent
from dpm.training.extensions import Checkpoint, FinishAfter, Printing, ProgressBar, Timing
from dpm.training.log import TrainingLog
from dpm.training.main_loop import MainLoop
from dpm.training.schedules import ExponentialDecay, decay_factor
from dpm.training.step_rules import build_step_rule

logger = logging.getLogger(__name__)


def train_diffusion_model(model, features, settings, seed, checkpoint_path=None, progress=True):
    """Maximize K of ``model`` on ``features`` and return the training log.

    Parameters
    ----------
    model : DiffusionModel
        Already initialized. Its diffusion process's ``draw_noise`` draws the noise.
    features : ndarray (N, D)
    settings : dict
        ``step_rule``, ``learning_rate``, ``final_learning_rate``, ``batch_size`` and
        ``n_epochs``; an epoch is one pass over ``features``. ``t_sampling`` (optional,
        'uniform' by default) says how each batch's time steps are drawn
        (:func:`dpm.diffusion.draws.draw_t`).
    seed : int
        Seeds the minibatch order and the draws of ``t`` and noise, independently.
    checkpoint_path : path-like, optional
        Where the final checkpoint is written (atomically).
    """
    floatX = pytensor.config.floatX
    features = np.asarray(features, dtype=floatX)
    if features.ndim != 2 or features.shape[1] != model.n_dims:
        raise ValueError(f"features must have shape (N, {model.n_dims}), got {features.shape}")
    batch_seed, draw_seed = np.random.SeedSequence(seed).spawn(2)
    draws = DiffusionInputs(model.trajectory_length, model.n_dims, draw_seed,
                            draw_noise=model.diffusion.draw_noise,
                            t_sampling=settings.get("t_sampling", "uniform"))
    scheme = ShuffledScheme(len(features), settings["batch_size"], batch_seed)
    stream = DataStream(ArrayDataset(features=features), scheme)

    x0 = pt.matrix("x0", dtype=floatX)
    t = pt.ivector("t")
    noise = pt.matrix("noise", dtype=floatX)
    terms = model.bound_estimate(x0, t, noise)
    monitored = {"K": pt.mean(terms["K"]), "K_minus_L_null": pt.mean(terms["K_minus_L_null"])}
    step_rule = build_step_rule(settings["step_rule"], settings["learning_rate"])
    algorithm = GradientDescent(
        -monitored["K"], model.all_parameters, step_rule, [x0, t, noise], monitored,
        prepare_inputs=lambda batch: (batch["features"], *draws(len(batch["features"]))),
    )

    n_epochs = settings["n_epochs"]
    extensions = [
        Timing(),
        FinishAfter(after_n_epochs=n_epochs),
        ExponentialDecay(
            step_rule.learning_rate,
            decay_factor(settings["learning_rate"], settings["final_learning_rate"], n_epochs),
        ),
        Printing(every_n_epochs=max(1, n_epochs // 10), keys=("K", "learning_rate", "total_seconds")),
    ]
    if progress:
        extensions.append(ProgressBar(n_epochs * scheme.batches_per_epoch()))
    if checkpoint_path is not None:
        state = lambda: {"draws": draws.get_state(), "batches": scheme.get_state()}  # noqa: E731
        extensions.append(Checkpoint(checkpoint_path, model, step_rule, state=state))
    log = TrainingLog()
    MainLoop(algorithm, stream, extensions, log).run()
    logger.info("training done: %d batches, %d non-finite steps skipped",
                log.status["iterations_done"], log.status["nonfinite_steps"])
    return log


#: The former name, from when only Gaussian diffusion existed; it trains any diffusion model.
train_gaussian_model = train_diffusion_model
