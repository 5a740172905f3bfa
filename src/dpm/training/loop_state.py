"""The main loop's resumable state: random states, the position in the epoch and extension states.

The parameters, the step rule's state and the training log are saved apart (see
:mod:`dpm.training.checkpoint`). What this module captures is everything else a resumed run
needs to continue with the same numbers:

- ``stream``: the random states of the data pipeline (its iteration scheme and transformers,
  see :func:`dpm.data.transformers.get_stream_state`) after the last finished batch;
- ``random_states``: the states of the main loop's other random sources, such as the draws
  of ``t`` and noise, after the last finished batch;
- ``epoch_start_stream``: the pipeline's random states when the running epoch began, from
  which a resumed run replays the epoch's request order up to the last finished batch;
- ``extensions``: the state of every extension that has ``get_state``.

All of it is JSON-serializable.
"""

import logging

from dpm.data.transformers import get_stream_state, set_stream_state

logger = logging.getLogger(__name__)

_END = object()


def take_snapshot(data_stream, random_states):
    """Return the random states of ``data_stream`` and of each source in ``random_states``."""
    return {
        "stream": get_stream_state(data_stream),
        "random_states": {name: source.get_state() for name, source in random_states.items()},
    }


def extension_state_keys(extensions):
    """Return a key per extension: its class name, with ``#2``, ``#3``... for repeated classes."""
    keys, seen = [], {}
    for extension in extensions:
        name = type(extension).__name__
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


def capture_loop_state(main_loop):
    """Return the loop state of ``main_loop`` at its last finished batch (see the module docstring)."""
    extension_states = {
        key: extension.get_state()
        for key, extension in zip(extension_state_keys(main_loop.extensions), main_loop.extensions)
        if hasattr(extension, "get_state")
    }
    return {
        "stream": main_loop.snapshot["stream"],
        "random_states": main_loop.snapshot["random_states"],
        "epoch_start_stream": main_loop.epoch_start_stream_state,
        "extensions": extension_states,
    }


def restore_loop_state(main_loop, state):
    """Set a freshly built ``main_loop`` to a state from :func:`capture_loop_state`.

    The random sources, extensions and data pipeline are set at once. When the log's
    running epoch has batches done, the main loop then replays the epoch's requests before
    it continues (:func:`continue_epoch`).

    Raises
    ------
    ValueError
        If the main loop's random sources or data pipeline differ from the saved ones.
    """
    saved_names = sorted(state["random_states"])
    names = sorted(main_loop.random_states)
    if saved_names != names:
        raise ValueError(
            f"the checkpoint has random states {saved_names}, but the main loop has "
            f"random sources {names}; build the training with the same random sources"
        )
    for name, source in main_loop.random_states.items():
        source.set_state(state["random_states"][name])
    # This also checks that the stream has the saved random parts. In the middle of an
    # epoch, continue_epoch sets the stream again.
    set_stream_state(main_loop.data_stream, state["stream"])
    main_loop.snapshot = {"stream": state["stream"], "random_states": state["random_states"]}
    main_loop.epoch_start_stream_state = state["epoch_start_stream"]

    saved = dict(state["extensions"])
    for key, extension in zip(extension_state_keys(main_loop.extensions), main_loop.extensions):
        if not hasattr(extension, "set_state"):
            continue
        if key in saved:
            extension.set_state(saved.pop(key))
        else:
            logger.warning("the checkpoint has no state of extension %s, so it starts afresh", key)
    for key in saved:
        logger.warning("the checkpoint's state of extension %s is unused because no extension has that key", key)


def continue_epoch(main_loop):
    """Return an iterator over the rest of the running epoch, after its finished batches.

    The pipeline is set to its state at the epoch's start and the finished batches are
    read again and dropped, which reproduces the epoch's request order. Then the pipeline's
    random states are set to those after the last finished batch, so transformers that
    draw random numbers continue as in an uninterrupted run. Reading the dropped batches
    costs up to one epoch of data reading, but no training step.
    """
    done = main_loop.log.status["batches_in_epoch"]
    if main_loop.epoch_start_stream_state is None:
        raise ValueError(
            f"the log has {done} batches done in the running epoch, but the main loop has no "
            "stream state from the epoch's start; resume from a checkpoint written by the "
            "Checkpoint extension, which stores it"
        )
    stream = main_loop.data_stream
    set_stream_state(stream, main_loop.epoch_start_stream_state)
    batches = iter(stream.get_epoch_iterator())
    for count in range(done):
        if next(batches, _END) is _END:
            raise ValueError(
                f"the log has {done} batches done in the running epoch, but the rebuilt stream "
                f"yields only {count}; rebuild the stream with the same data and batch size"
            )
    set_stream_state(stream, main_loop.snapshot["stream"])
    logger.info("continuing epoch %d after its first %d batches",
                main_loop.log.status["epochs_done"] + 1, done)
    return batches


def is_exhausted(batches):
    """Return True if the iterator ``batches`` has no batch left. A batch that it yields is lost."""
    return next(batches, _END) is _END
