"""Continuing a training run from a checkpoint, with the same numbers as an uninterrupted run."""

import logging

import dpm
from dpm.training.checkpoint import load_checkpoint, restore_step_rule
from dpm.training.log import TrainingLog
from dpm.training.loop_state import restore_loop_state
from dpm.training.run_dir import checkpoint_file

logger = logging.getLogger(__name__)


def resume(source, main_loop, model):
    """Restore a checkpoint into a freshly built ``main_loop`` and ``model``.

    Sets the model's parameters, the step rule's state (moments, step counter and learning
    rate), the training log, every random state and the position in the running epoch.
    Then ``main_loop.run()`` continues where the checkpoint's run stopped. With the same
    backend, data, configuration and extensions the parameters match those of an
    uninterrupted run bit for bit.

    Parameters
    ----------
    source : path-like
        A run folder (its ``checkpoint.npz`` is used) or a checkpoint file.
    main_loop : MainLoop
        Built like the checkpoint's run, with its algorithm, stream, random sources and
        extensions, and not yet run. Its log is replaced by the checkpoint's.
    model : Brick
        The model whose parameters the algorithm trains.

    Returns
    -------
    dict
        The checkpoint's JSON state (see :mod:`dpm.training.checkpoint`).

    Raises
    ------
    FileNotFoundError
        If the checkpoint does not exist.
    ValueError
        If the checkpoint is unreadable, lacks the main loop's state, or does not fit the
        model, stream or random sources.
    """
    path = checkpoint_file(source)
    parameters, step_rule_values, state = load_checkpoint(path)
    if "loop" not in state:
        raise ValueError(
            f"checkpoint {path} has no main-loop state, so it cannot resume training (it was "
            "written without the Checkpoint extension); load its parameters with "
            "load_checkpoint instead"
        )
    if state["dpm_version"] != dpm.__version__:
        logger.warning("checkpoint %s was written by dpm %s but this is dpm %s, so the resumed "
                       "run may differ from an uninterrupted one", path, state["dpm_version"],
                       dpm.__version__)
    model.set_parameter_values(parameters)
    restore_step_rule(main_loop.algorithm.step_rule, step_rule_values)
    main_loop.log = TrainingLog.from_dict(state["log"])
    restore_loop_state(main_loop, state["loop"])
    status = main_loop.log.status
    logger.info("resumed from %s: %d batches done (%d epochs and %d batches)", path,
                status["iterations_done"], status["epochs_done"], status["batches_in_epoch"])
    return state
