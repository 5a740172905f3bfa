"""Checkpoints: parameters, step-rule state, training log and extra state in one ``.npz``.

Arrays are stored as ``parameter:<path>`` and ``step_rule:<variable name>``. Everything else
is one JSON document with ``dpm_version``, ``log`` (:meth:`TrainingLog.to_dict`), ``extra``
and, for checkpoints that can resume training, ``loop`` (see :mod:`dpm.training.loop_state`).

Files are written under a temporary name in the same folder and renamed, so an interrupted
write leaves the previous checkpoint intact.
"""

import json
import os
import zipfile
from pathlib import Path

import numpy as np

import dpm
from dpm.atomic import atomic_path

STATE_KEY = "__state_json__"


def save_checkpoint(path, model, step_rule, log, extra_state, loop_state=None):
    """Write ``model``'s parameters, the step rule's state, ``log`` and ``extra_state`` to ``path``.

    ``loop_state``, from :func:`dpm.training.loop_state.capture_loop_state`, makes the
    checkpoint one that :func:`dpm.training.resume.resume` can continue from.
    """
    path = Path(path)
    arrays = {f"parameter:{name}": value for name, value in model.get_parameter_values().items()}
    for variable in step_rule.state:
        arrays[f"step_rule:{variable.name}"] = variable.get_value()
    state = {"dpm_version": dpm.__version__, "log": log.to_dict(), "extra": extra_state}
    if loop_state is not None:
        state["loop"] = loop_state
    arrays[STATE_KEY] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        np.savez(file, **arrays)
        file.flush()
        os.fsync(file.fileno())


def load_checkpoint(path):
    """Return ``(parameters, step_rule_state, state)`` from a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found; train first or pass an existing run")
    try:
        # A truncated or empty file raises BadZipFile or EOFError, neither a ValueError.
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        if STATE_KEY not in arrays:
            raise ValueError(f"no {STATE_KEY!r} entry, so save_checkpoint did not write it")
        state = json.loads(arrays.pop(STATE_KEY).tobytes().decode())
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"checkpoint {path} is unreadable ({error}); delete it and train again") from error
    parameters = {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("parameter:")}
    step_rule = {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("step_rule:")}
    return parameters, step_rule, state


def restore_step_rule(step_rule, values):
    """Set the step rule's state variables from a checkpoint's values, matched by name."""
    for variable in step_rule.state:
        if variable.name not in values:
            raise KeyError(f"checkpoint has no step-rule state {variable.name!r}; was it made with another step rule?")
        variable.set_value(values[variable.name])
