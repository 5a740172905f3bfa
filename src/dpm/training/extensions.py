"""Extensions of the main loop: stopping, progress, printing, timing and checkpoints.

Every extension built on :class:`SimpleExtension` takes the same trigger options:
``every_n_batches``, ``every_n_epochs``, ``before_training``, ``on_resume``,
``after_training`` and ``on_interrupt``. Each class documents its default triggers, and the
options a caller passes replace them.

An extension that keeps state across a resume has ``get_state()``, returning JSON data, and
``set_state(state)``; checkpoints save and restore it.
"""

import logging
import operator
import time

from tqdm.auto import tqdm

from dpm.training.checkpoint import save_checkpoint
from dpm.training.loop_state import capture_loop_state

logger = logging.getLogger(__name__)

def _check_every(value, name):
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer or None, got {value!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}; pass None to turn it off")
    return value


class SimpleExtension:
    """An extension that runs :meth:`do` on chosen events.

    Parameters
    ----------
    every_n_batches, every_n_epochs : int, optional
        Run after every N-th batch or epoch, counted over the whole run, so a resumed run
        keeps the rhythm.
    before_training, on_resume, after_training, on_interrupt : bool
        Also run on these events.

    Notes
    -----
    :meth:`dispatch` calls :meth:`observe` on every event, for bookkeeping such as
    timing, and then :meth:`do` when a trigger selects the event.
    """

    def __init__(self, every_n_batches=None, every_n_epochs=None, before_training=False,
                 on_resume=False, after_training=False, on_interrupt=False):
        self.every_n_batches = _check_every(every_n_batches, "every_n_batches")
        self.every_n_epochs = _check_every(every_n_epochs, "every_n_epochs")
        self.events = {
            "before_training": bool(before_training),
            "on_resume": bool(on_resume),
            "after_training": bool(after_training),
            "on_interrupt": bool(on_interrupt),
        }

    def dispatch(self, event, main_loop):
        self.observe(event, main_loop)
        if self.triggered(event, main_loop.log.status):
            self.do(event, main_loop)

    def triggered(self, event, status):
        """Return True if ``event`` at ``status`` should run :meth:`do`."""
        if event == "after_batch":
            return bool(self.every_n_batches) and status["iterations_done"] % self.every_n_batches == 0
        if event == "after_epoch":
            return bool(self.every_n_epochs) and status["epochs_done"] % self.every_n_epochs == 0
        return self.events.get(event, False)

    def observe(self, event, main_loop):
        """Take note of any event; nothing by default."""

    def do(self, event, main_loop):
        raise NotImplementedError


def record_values(main_loop, event, values):
    """Add ``values`` to the record of the epoch that ``event`` belongs to.

    On ``after_epoch`` they go to the last record, that of the epoch just finished. On
    other events they go to the running epoch and reach its record when the epoch ends. An
    extension that records values should come before the ones that write records out.
    """
    log = main_loop.log
    if event == "after_epoch" and log.records:
        log.records[-1].update(values)
    else:
        log.current.update(values)


class FinishAfter(SimpleExtension):
    """Request the end of training once the run has done a number of epochs or batches.

    The counts are totals of the run, resumed parts included: a run resumed after 3 of
    ``after_n_epochs=5`` epochs trains 2 more, and one resumed after 5 stops at once.
    A limit reached in the middle of an epoch stops there, and the loop closes a partial
    record of that epoch.
    """

    def __init__(self, after_n_epochs=None, after_n_batches=None):
        if after_n_epochs is None and after_n_batches is None:
            raise ValueError("FinishAfter needs after_n_epochs or after_n_batches; pass at least one")
        super().__init__()
        self.after_n_epochs = _check_every(after_n_epochs, "after_n_epochs")
        self.after_n_batches = _check_every(after_n_batches, "after_n_batches")

    def triggered(self, event, status):
        if event not in ("before_training", "on_resume", "after_batch", "after_epoch"):
            return False
        epochs_reached = self.after_n_epochs is not None and status["epochs_done"] >= self.after_n_epochs
        batches_reached = (self.after_n_batches is not None
                           and status["iterations_done"] >= self.after_n_batches)
        return epochs_reached or batches_reached

    def do(self, event, main_loop):
        main_loop.log.status["finish_requested"] = True


class Timing(SimpleExtension):
    """Add the epoch's wall time and the run's training time (seconds) to epoch records.

    Default trigger: every epoch. ``total_seconds`` continues across a resume. The first
    epoch after a resume in the middle of an epoch counts only its resumed part.
    """

    def __init__(self, **triggers):
        super().__init__(**{"every_n_epochs": 1, **triggers})
        self.elapsed_before = 0.0
        self.start = self.epoch_start = None

    def observe(self, event, main_loop):
        now = time.perf_counter()
        if self.start is None:
            self.start = now - self.elapsed_before
            self.epoch_start = now
        if event == "before_epoch":
            self.epoch_start = now

    def do(self, event, main_loop):
        now = time.perf_counter()
        record_values(main_loop, event, {
            "epoch_seconds": now - self.epoch_start,
            "total_seconds": now - self.start,
        })

    def get_state(self):
        """Return the training time so far, ``{'total_seconds': float}``."""
        total = self.elapsed_before if self.start is None else time.perf_counter() - self.start
        return {"total_seconds": total}

    def set_state(self, state):
        self.elapsed_before = float(state["total_seconds"])
        self.start = None


class Printing(SimpleExtension):
    """Log the latest epoch record, or the running epoch's means, through ``logging``.

    Default trigger: every epoch. After a batch it logs the running means of the epoch.
    """

    def __init__(self, every_n_epochs=1, keys=None, **triggers):
        super().__init__(**{"every_n_epochs": every_n_epochs, **triggers})
        self.keys = keys

    def do(self, event, main_loop):
        log = main_loop.log
        if event == "after_epoch" and log.records:
            record = log.records[-1]
            where = f"epoch {record['epoch']}"
        else:
            record = log.running_means()
            where = f"batch {log.status['iterations_done']} ({event})"
        keys = self.keys or sorted(record)
        text = ", ".join(f"{key} {record[key]:.4g}" if isinstance(record.get(key), float)
                         else f"{key} {record.get(key)}" for key in keys if key in record)
        logger.info("%s: %s", where, text)


class ProgressBar(SimpleExtension):
    """Show a tqdm bar over all batches of the run, with monitored values of the latest epoch.

    The bar moves on every batch. Default trigger for the monitored values: every epoch.
    """

    def __init__(self, total_batches, monitored=("K",), **triggers):
        super().__init__(**{"every_n_epochs": 1, **triggers})
        self.total_batches = total_batches
        self.monitored = monitored
        self.bar = None

    def observe(self, event, main_loop):
        if event in ("before_training", "on_resume", "before_epoch") and self.bar is None:
            self.bar = tqdm(total=self.total_batches, initial=main_loop.log.status["iterations_done"],
                            unit="batch", desc="training", mininterval=1.0)
        elif event == "after_batch" and self.bar is not None:
            self.bar.update(1)
        elif event in ("after_training", "on_interrupt") and self.bar is not None:
            self.bar.close()
            self.bar = None

    def do(self, event, main_loop):
        if self.bar is None or not main_loop.log.records:
            return
        record = main_loop.log.records[-1]
        self.bar.set_postfix({key: f"{record[key]:.3f}" for key in self.monitored if key in record})


class Checkpoint(SimpleExtension):
    """Write the full training state atomically (see :func:`save_checkpoint`).

    Default triggers: after training and on an interrupt. Put it after the extensions that
    change the state on the same event, such as learning-rate schedules, so that it saves
    their result.

    Parameters
    ----------
    path : path-like
    model : Brick
    step_rule : step rule
        Its ``state`` variables are saved, the learning rate included.
    state : callable, optional
        Returns extra state to save (a JSON dict), stored under ``extra``.
    **triggers
        See :class:`SimpleExtension`.
    """

    def __init__(self, path, model, step_rule, state=None, **triggers):
        super().__init__(**{"after_training": True, "on_interrupt": True, **triggers})
        self.path = path
        self.model = model
        self.step_rule = step_rule
        self.state = state or dict

    def do(self, event, main_loop):
        save_checkpoint(self.path, self.model, self.step_rule, main_loop.log, self.state(),
                        loop_state=capture_loop_state(main_loop))
        logger.info("checkpoint written to %s (%s, after %d batches)", self.path, event,
                    main_loop.log.status["iterations_done"])
