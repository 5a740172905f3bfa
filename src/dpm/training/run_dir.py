"""Run folders: one numbered folder per training run, never reused for a new run.

A run folder ``<root>/<name>/NNN`` holds:

- ``config.json``: the resolved configuration, written when the run is created;
- ``stats.jsonl``: one JSON line per epoch record, appended (see :mod:`dpm.training.stats`);
- ``checkpoint.npz``: the latest checkpoint, replaced atomically;
- ``plots/``: the figures of the plotting extensions.
"""

import json
import logging
import os
from pathlib import Path

from dpm.atomic import atomic_path

logger = logging.getLogger(__name__)

#: The folder under which numbered run folders are created, relative to the working directory.
DEFAULT_RUNS_ROOT = Path("runs")
CONFIG_NAME = "config.json"
STATS_NAME = "stats.jsonl"
CHECKPOINT_NAME = "checkpoint.npz"
PLOTS_NAME = "plots"


def create_run_dir(name, root=DEFAULT_RUNS_ROOT, requested=None):
    """Create and return a new run folder: ``requested``, or the next ``<root>/<name>/NNN``.

    Numbers start at 001 and follow the highest existing one. A number whose folder another
    process creates at the same moment is skipped, so no two runs share a folder.

    Parameters
    ----------
    name : str
        The experiment's folder name under ``root``, without path separators.
    root : path-like
    requested : path-like, optional
        A folder chosen by the caller. It may exist only if it is empty.

    Raises
    ------
    FileExistsError
        If ``requested`` exists and is not empty.
    ValueError
        If ``name`` is empty or contains a path separator.
    """
    if requested is not None:
        requested = Path(requested)
        if requested.exists() and (not requested.is_dir() or any(requested.iterdir())):
            raise FileExistsError(
                f"run directory {requested} already exists and is not empty; choose a new "
                "run directory, or delete that folder"
            )
        requested.mkdir(parents=True, exist_ok=True)
        return requested
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ValueError(f"run name must be a folder name without path separators, got {name!r}")
    parent = Path(root) / name
    parent.mkdir(parents=True, exist_ok=True)
    numbers = [int(entry.name) for entry in parent.iterdir() if entry.name.isdigit()]
    while True:
        candidate = parent / f"{max(numbers, default=0) + 1:03d}"
        try:
            candidate.mkdir()
        except FileExistsError:
            numbers.append(int(candidate.name))
            continue
        logger.info("created run directory %s", candidate)
        return candidate


def _json_default(value):
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(
        f"configuration value {value!r} of type {type(value).__name__} is not JSON-serializable; "
        "use numbers, strings, booleans, lists and dicts"
    )


def config_as_stored(config):
    """Return ``config`` as :func:`read_config` reads it back: lists for tuples, strings for paths."""
    return json.loads(json.dumps(config, default=_json_default))


def write_config(run_dir, config):
    """Write ``config`` to ``run_dir/config.json`` atomically, with paths as strings.

    Raises
    ------
    FileExistsError
        If the run folder already has a configuration, which belongs to the run that wrote it.
    TypeError
        If a value is not JSON-serializable.
    """
    path = Path(run_dir) / CONFIG_NAME
    if path.exists():
        raise FileExistsError(
            f"{path} already exists, the configuration of an earlier run; create a new run "
            "folder for a new configuration"
        )
    text = json.dumps(config, indent=2, default=_json_default) + "\n"
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return path


def read_config(run_dir):
    """Return the configuration stored in ``run_dir/config.json``.

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` or its ``config.json`` does not exist.
    NotADirectoryError
        If ``run_dir`` is a file.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(
            f"{run_dir} is a file, not a run folder; pass the folder that `dpm train` created, "
            f"e.g. {run_dir.parent} for its checkpoint"
        )
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run folder {run_dir} not found; `dpm train CONFIG` creates run folders, "
            "numbered runs/NAME/001, 002 and so on"
        )
    path = run_dir / CONFIG_NAME
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found, so {run_dir} is not a run folder; pass a folder that "
            "`dpm train` created"
        )
    return json.loads(path.read_text())


def checkpoint_file(source):
    """Return the checkpoint path of ``source``, a run folder or a checkpoint file."""
    source = Path(source)
    if source.is_dir():
        return source / CHECKPOINT_NAME
    return source


def remove_stale_temporaries(folder):
    """Delete the temporary files that killed atomic writes left in ``folder`` and return their names.

    Atomic writes (:func:`dpm.atomic.atomic_path`) delete their temporary file when they
    fail, but a process killed by a signal cannot. Those files are named ``.<name>.*.tmp``.
    Only call this for a folder that no running process writes to.
    """
    removed = []
    for path in sorted(Path(folder).glob(".*.tmp")):
        if path.is_file():
            path.unlink()
            removed.append(path.name)
            logger.warning("removed %s, left by an interrupted write", path)
    return removed
