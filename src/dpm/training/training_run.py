"""A training run in a run folder: configuration, records file, checkpoints and resume."""

import logging
from dataclasses import dataclass
from pathlib import Path

from dpm.training.extensions import Checkpoint
from dpm.training.log import TrainingLog
from dpm.training.main_loop import MainLoop
from dpm.training.resume import resume
from dpm.training.run_dir import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    DEFAULT_RUNS_ROOT,
    PLOTS_NAME,
    STATS_NAME,
    config_as_stored,
    create_run_dir,
    read_config,
    remove_stale_temporaries,
    write_config,
)
from dpm.training.stats import StatsWriter

logger = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """The outcome of :func:`run_training`."""

    run_dir: Path
    log: TrainingLog
    main_loop: MainLoop


def run_training(model, algorithm, data_stream, extensions=(), *, config, name=None,
                 root=DEFAULT_RUNS_ROOT, run_dir=None, resume_from=None, random_states=None,
                 checkpoint_every_n_epochs=1, checkpoint_every_n_batches=None):
    """Train in a run folder, a new one or that of the run to continue.

    A new run gets a folder (``run_dir``, or the next ``<root>/<name>/NNN``) with
    ``config.json``. A resumed run keeps its folder and its ``config.json``. Either way the
    main loop runs ``extensions`` in order, then a :class:`StatsWriter` appending every
    epoch record to ``stats.jsonl``, then a :class:`Checkpoint` writing ``checkpoint.npz``
    every ``checkpoint_every_n_epochs`` epochs and ``checkpoint_every_n_batches`` batches,
    after training and on an interrupt. A KeyboardInterrupt is raised again after the
    checkpoint.

    Extensions that write files into the run folder need its path before this call: create
    the folder with :func:`create_run_dir` and pass it as ``run_dir`` (an empty folder is
    accepted), or, to resume, use the folder of ``resume_from``.

    Parameters
    ----------
    model : Brick
        The trained model, already initialized.
    algorithm : GradientDescent
        Its ``step_rule`` state is checkpointed.
    data_stream : stream
    extensions : sequence of extensions
        Among them a :class:`FinishAfter`, or the run does not stop. A resumed run counts
        its limits from the start of the original run.
    config : dict
        The resolved configuration, written to ``config.json`` (JSON types and paths).
    name, root, run_dir
        Where a new run goes (see :func:`create_run_dir`); ignored when resuming.
    resume_from : path-like, optional
        The folder of a run to continue, or its checkpoint file.
    random_states : dict, optional
        Random sources outside the stream (see :class:`MainLoop`).
    checkpoint_every_n_epochs, checkpoint_every_n_batches : int, optional

    Returns
    -------
    TrainingRun
    """
    if resume_from is not None:
        folder = Path(resume_from)
        if not folder.is_dir():
            folder = folder.parent
        for removed_from in (folder, folder / PLOTS_NAME):
            if removed_from.is_dir():
                remove_stale_temporaries(removed_from)
        _warn_config_changes(folder, config)
    else:
        if name is None and run_dir is None:
            raise ValueError("run_training needs name (for runs/NAME/NNN), run_dir or resume_from")
        folder = create_run_dir(name, root=root, requested=run_dir)
        write_config(folder, config)

    all_extensions = [
        *extensions,
        StatsWriter(folder / STATS_NAME),
        Checkpoint(folder / CHECKPOINT_NAME, model, algorithm.step_rule,
                   every_n_epochs=checkpoint_every_n_epochs,
                   every_n_batches=checkpoint_every_n_batches),
    ]
    main_loop = MainLoop(algorithm, data_stream, all_extensions, random_states=random_states)
    if resume_from is not None:
        resume(resume_from, main_loop, model)
    main_loop.run()
    return TrainingRun(folder, main_loop.log, main_loop)


def _flatten(config, prefix=""):
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _warn_config_changes(folder, config):
    if not (folder / CONFIG_NAME).exists():
        logger.warning("%s has no %s, so the resumed run has no record of its configuration",
                       folder, CONFIG_NAME)
        return
    stored = _flatten(read_config(folder))
    # Compared as stored, so that tuples equal lists.
    current = _flatten(config_as_stored(config))
    changed = sorted(key for key in stored.keys() | current.keys()
                     if stored.get(key) != current.get(key))
    if changed:
        logger.warning("resuming %s with a configuration that differs in %s, and %s keeps "
                       "the original", folder, ", ".join(changed), CONFIG_NAME)

