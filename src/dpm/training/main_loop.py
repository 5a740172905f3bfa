"""The Blocks-style main loop: batches from a stream, a training algorithm, and extensions."""

import logging

logger = logging.getLogger(__name__)

#: Events on which extensions run, in the order they can occur.
EVENTS = ("before_training", "before_epoch", "after_batch", "after_epoch", "on_interrupt", "after_training")


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
    log : TrainingLog
    """

    def __init__(self, algorithm, data_stream, extensions, log):
        self.algorithm = algorithm
        self.data_stream = data_stream
        self.extensions = list(extensions)
        self.log = log

    def run(self):
        """Run the loop; a KeyboardInterrupt fires ``on_interrupt`` and is raised again."""
        try:
            if self.log.status["iterations_done"] == 0:
                self._fire("before_training")
            while not self.log.status["finish_requested"]:
                self._run_epoch()
        except KeyboardInterrupt:
            logger.warning("training interrupted after %d batches", self.log.status["iterations_done"])
            self._fire("on_interrupt")
            raise
        self._fire("after_training")

    def _run_epoch(self):
        self._fire("before_epoch")
        for batch in self.data_stream.get_epoch_iterator():
            outputs = self.algorithm.process_batch(batch)
            if outputs.pop("finite", 1.0) == 0.0:
                self.log.status["nonfinite_steps"] += 1
                logger.warning(
                    "non-finite gradient at batch %d: step skipped (%d so far)",
                    self.log.status["iterations_done"] + 1,
                    self.log.status["nonfinite_steps"],
                )
            self.log.add_batch(outputs)
            self._fire("after_batch")
            if self.log.status["finish_requested"]:
                return
        self.log.end_epoch()
        self._fire("after_epoch")

    def _fire(self, event):
        for extension in self.extensions:
            extension.dispatch(event, self)
