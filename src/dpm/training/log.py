"""The training log: counters in ``status`` and one record per epoch."""

import math


class TrainingLog:
    """Counters and per-epoch records of a training run.

    ``status`` contains ``iterations_done``, ``epochs_done``, ``batches_in_epoch`` (batches
    done in the running epoch), ``nonfinite_steps`` and ``finish_requested``. ``records``
    is a list of dicts, one per finished epoch, with the epoch means of the algorithm's
    outputs and whatever extensions add to it. A run that stops in the middle of an epoch
    ends with a partial record of that epoch (``partial`` is True), which the complete
    record replaces when a resumed run finishes the epoch.
    """

    def __init__(self):
        self.status = {
            "iterations_done": 0,
            "epochs_done": 0,
            "batches_in_epoch": 0,
            "nonfinite_steps": 0,
            "finish_requested": False,
        }
        self.records = []
        #: Values that extensions add to the running epoch's record.
        self.current = {}
        self._sums = {}
        self._counts = {}

    def add_batch(self, outputs):
        """Accumulate one batch's outputs; non-finite values are counted apart, not averaged."""
        self.status["iterations_done"] += 1
        self.status["batches_in_epoch"] += 1
        for name, value in outputs.items():
            if math.isfinite(value):
                self._sums[name] = self._sums.get(name, 0.0) + value
                self._counts[name] = self._counts.get(name, 0) + 1

    def running_means(self):
        """Return the means of the running epoch's finite outputs so far."""
        return {name: self._sums[name] / self._counts[name] for name in self._sums}

    def end_epoch(self):
        """Close the epoch: store the means of its outputs as a new record and return it."""
        self.status["epochs_done"] += 1
        self.status["batches_in_epoch"] = 0
        record = self._record(self.status["epochs_done"])
        self._drop_partial(record["epoch"])
        self.records.append(record)
        self.current, self._sums, self._counts = {}, {}, {}
        return record

    def close_partial_epoch(self):
        """Append a record of the running epoch so far, marked ``partial``, and return it.

        The running sums are kept, so the epoch's complete record, written when the epoch
        ends in this run or in a resumed one, averages over all of its batches.
        """
        record = self._record(self.status["epochs_done"] + 1)
        record["partial"] = True
        record["batches_in_epoch"] = self.status["batches_in_epoch"]
        self._drop_partial(record["epoch"])
        self.records.append(record)
        return record

    def _record(self, epoch):
        record = {
            "epoch": epoch,
            "iterations_done": self.status["iterations_done"],
            "nonfinite_steps": self.status["nonfinite_steps"],
        }
        record.update(self.running_means())
        record.update(self.current)
        return record

    def _drop_partial(self, epoch):
        if self.records and self.records[-1].get("partial") and self.records[-1]["epoch"] == epoch:
            self.records.pop()

    def to_dict(self):
        """Return the log as JSON-serializable data, the running epoch's sums included.

        ``finish_requested`` is left out: a stop request belongs to the run that made it,
        and a resumed run stops when its own extensions request it.
        """
        status = {key: value for key, value in self.status.items() if key != "finish_requested"}
        return {
            "status": status,
            "records": list(self.records),
            "running_epoch": {"sums": dict(self._sums), "counts": dict(self._counts),
                              "current": dict(self.current)},
        }

    @classmethod
    def from_dict(cls, data):
        """Rebuild a log from :meth:`to_dict`'s data; a stored ``finish_requested`` is ignored."""
        log = cls()
        log.status.update({key: value for key, value in data["status"].items()
                           if key != "finish_requested"})
        log.records = list(data["records"])
        running = data.get("running_epoch")
        if running is not None:
            log._sums = dict(running["sums"])
            log._counts = dict(running["counts"])
            log.current = dict(running["current"])
        return log
