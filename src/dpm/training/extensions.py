"""Extensions of the main loop: stopping, progress, printing, timing and checkpoints."""

import logging
import time

from tqdm.auto import tqdm

from dpm.training.checkpoint import save_checkpoint

logger = logging.getLogger(__name__)


class SimpleExtension:
    """An extension that runs :meth:`do` on chosen events.

    Parameters
    ----------
    every_n_batches, every_n_epochs : int, optional
        Run after every N-th batch or epoch.
    before_training, after_training, on_interrupt : bool
        Also run on these events.
    """

    def __init__(self, every_n_batches=None, every_n_epochs=None, before_training=False,
                 after_training=False, on_interrupt=False):
        self.every_n_batches = every_n_batches
        self.every_n_epochs = every_n_epochs
        self.events = {
            "before_training": before_training,
            "after_training": after_training,
            "on_interrupt": on_interrupt,
        }

    def dispatch(self, event, main_loop):
        status = main_loop.log.status
        if event == "after_batch" and self.every_n_batches:
            run = status["iterations_done"] % self.every_n_batches == 0
        elif event == "after_epoch" and self.every_n_epochs:
            run = status["epochs_done"] % self.every_n_epochs == 0
        else:
            run = self.events.get(event, False)
        if run:
            self.do(event, main_loop)

    def do(self, event, main_loop):
        raise NotImplementedError


class FinishAfter(SimpleExtension):
    """Request the end of training after a number of epochs or batches."""

    def __init__(self, after_n_epochs=None, after_n_batches=None):
        if after_n_epochs is None and after_n_batches is None:
            raise ValueError("FinishAfter needs after_n_epochs or after_n_batches")
        super().__init__(every_n_epochs=after_n_epochs, every_n_batches=after_n_batches)

    def do(self, event, main_loop):
        main_loop.log.status["finish_requested"] = True


class Timing(SimpleExtension):
    """Add the epoch's wall time and the total training time (seconds) to each record."""

    def __init__(self):
        super().__init__(every_n_epochs=1, before_training=True)
        self.start = self.epoch_start = None

    def dispatch(self, event, main_loop):
        now = time.perf_counter()
        if self.start is None:
            self.start = self.epoch_start = now
        if event == "before_epoch":
            self.epoch_start = now
        elif event == "after_epoch":
            record = main_loop.log.records[-1]
            record["epoch_seconds"] = now - self.epoch_start
            record["total_seconds"] = now - self.start


class Printing(SimpleExtension):
    """Log the latest epoch record through ``logging``."""

    def __init__(self, every_n_epochs=1, keys=None):
        super().__init__(every_n_epochs=every_n_epochs)
        self.keys = keys

    def do(self, event, main_loop):
        record = main_loop.log.records[-1]
        keys = self.keys or sorted(record)
        text = ", ".join(f"{key} {record[key]:.4g}" if isinstance(record.get(key), float)
                         else f"{key} {record.get(key)}" for key in keys if key in record)
        logger.info("epoch %d: %s", record["epoch"], text)


class ProgressBar(SimpleExtension):
    """Show a tqdm bar over all batches of the run, with the latest epoch's monitored values."""

    def __init__(self, total_batches, monitored=("K",)):
        super().__init__()
        self.total_batches = total_batches
        self.monitored = monitored
        self.bar = None

    def dispatch(self, event, main_loop):
        if event in ("before_training", "before_epoch") and self.bar is None:
            self.bar = tqdm(total=self.total_batches, initial=main_loop.log.status["iterations_done"],
                            unit="batch", desc="training", mininterval=1.0)
        elif event == "after_batch" and self.bar is not None:
            self.bar.update(1)
        elif event == "after_epoch" and self.bar is not None:
            record = main_loop.log.records[-1]
            self.bar.set_postfix({key: f"{record[key]:.3f}" for key in self.monitored if key in record})
        elif event in ("after_training", "on_interrupt") and self.bar is not None:
            self.bar.close()
            self.bar = None


class Checkpoint(SimpleExtension):
    """Write the full training state atomically (see :func:`save_checkpoint`).

    Parameters
    ----------
    path : path-like
    state : callable
        Returns the extra state to save (for example the draws' RNG state), a JSON dict.
    every_n_epochs : int, optional
    """

    def __init__(self, path, model, step_rule, state=None, every_n_epochs=None):
        super().__init__(every_n_epochs=every_n_epochs, after_training=True, on_interrupt=True)
        self.path = path
        self.model = model
        self.step_rule = step_rule
        self.state = state or dict

    def do(self, event, main_loop):
        save_checkpoint(self.path, self.model, self.step_rule, main_loop.log, self.state())
        logger.info("checkpoint written to %s (%s)", self.path, event)
