"""The Blocks-style main loop: batches from a stream, a training algorithm, and extensions."""

import logging

from dpm.data.transformers import get_stream_state
from dpm.training.log import TrainingLog
from dpm.training.loop_state import continue_epoch, is_exhausted, take_snapshot

logger = logging.getLogger(__name__)

#: Events on which extensions run. ``on_resume`` replaces ``before_training`` when the log
#: already has batches or epochs done.
EVENTS = ("before_training", "on_resume", "before_epoch", "after_batch", "after_epoch",
          "on_interrupt", "after_training")


class MainLoop:
    """Train until an extension requests a stop.

    Parameters
    ----------
    algorithm : GradientDescent
        Its ``process_batch(batch)`` returns a dict of floats, with ``finite`` (1 or 0) when the
        step rule removes non-finite steps.
    data_stream : object with ``get_epoch_iterator()``
        Yields batches (dicts of arrays).
    extensions : list of extensions
        Each has ``dispatch(event, main_loop)``; they run in list order.
    log : TrainingLog, optional
        A new log by default.
    random_states : dict of str to object, optional
        Random sources used by the algorithm outside the stream, such as the draws of ``t``
        and noise, each with ``get_state()`` and ``set_state(state)``. Checkpoints save
        their states after every finished batch.

    Notes
    -----
    After every finished batch the loop takes a snapshot of the random states (of the
    stream and of ``random_states``), so a checkpoint written on an interrupt matches the
    last finished batch even if the stream had started reading the next one.
    """

    def __init__(self, algorithm, data_stream, extensions, log=None, random_states=None):
        self.algorithm = algorithm
        self.data_stream = data_stream
        self.extensions = list(extensions)
        self.log = log if log is not None else TrainingLog()
        self.random_states = dict(random_states or {})
        for name, source in self.random_states.items():
            if not (hasattr(source, "get_state") and hasattr(source, "set_state")):
                raise TypeError(
                    f"random source {name!r} ({type(source).__name__}) needs get_state() and "
                    "set_state(state); pass an object such as DiffusionInputs"
                )
        #: The stream's random states when the running epoch began (None before the first).
        self.epoch_start_stream_state = None
        self.snapshot = take_snapshot(self.data_stream, self.random_states)

    def run(self):
        """Run the loop; a KeyboardInterrupt fires ``on_interrupt`` and is raised again.

        A stop request of an earlier run is cleared first, so a resumed or repeated run stops
        when its own extensions request it.
        """
        status = self.log.status
        status["finish_requested"] = False
        try:
            if status["iterations_done"] == 0 and status["epochs_done"] == 0:
                self._fire("before_training")
            else:
                logger.info("resuming training after %d batches (%d epochs and %d batches)",
                            status["iterations_done"], status["epochs_done"],
                            status["batches_in_epoch"])
                self._fire("on_resume")
            while not status["finish_requested"]:
                self._run_epoch()
        except KeyboardInterrupt:
            logger.warning("training interrupted after %d batches", status["iterations_done"])
            if status["batches_in_epoch"]:
                self.log.close_partial_epoch()
            self._fire("on_interrupt")
            raise
        self._fire("after_training")

    def _run_epoch(self):
        status = self.log.status
        if status["batches_in_epoch"]:
            batches = continue_epoch(self)
        else:
            self._fire("before_epoch")
            self.epoch_start_stream_state = get_stream_state(self.data_stream)
            self.snapshot = take_snapshot(self.data_stream, self.random_states)
            batches = iter(self.data_stream.get_epoch_iterator())
        for batch in batches:
            self._process(batch)
            self._fire("after_batch")
            if status["finish_requested"]:
                if is_exhausted(batches):
                    break
                self.log.close_partial_epoch()
                return
        self.log.end_epoch()
        # NOTE: a KeyboardInterrupt inside an after_epoch extension checkpoints the state as
        # it is then, so a schedule that had not yet run for this epoch is not applied later.
        self._fire("after_epoch")

    def _process(self, batch):
        status = self.log.status
        outputs = self.algorithm.process_batch(batch)
        if outputs.pop("finite", 1.0) == 0.0:
            status["nonfinite_steps"] += 1
            logger.warning(
                "non-finite gradient at batch %d: step skipped (%d so far)",
                status["iterations_done"] + 1, status["nonfinite_steps"],
            )
        # NOTE: a KeyboardInterrupt between the step above and add_batch leaves a step that
        # the log does not count. A checkpoint written then is one step ahead of its log.
        self.log.add_batch(outputs)
        self.snapshot = take_snapshot(self.data_stream, self.random_states)

    def _fire(self, event):
        for extension in self.extensions:
            extension.dispatch(event, self)
