"""The training log: counters in ``status`` and one record per epoch."""

import math


class TrainingLog:
    """Counters and per-epoch records of a training run.

    ``status`` contains ``iterations_done``, ``epochs_done``, ``nonfinite_steps`` and
    ``finish_requested``; ``records`` is a list of dicts, one per finished epoch, with the
    epoch means of the algorithm's outputs and whatever extensions add to it.
    """

    def __init__(self):
        self.status = {
            "iterations_done": 0,
            "epochs_done": 0,
            "nonfinite_steps": 0,
            "finish_requested": False,
        }
        self.records = []
        self.current = {}
        self._sums = {}
        self._counts = {}

    def add_batch(self, outputs):
        """Accumulate one batch's outputs; non-finite values are counted apart, not averaged."""
        self.status["iterations_done"] += 1
        for name, value in outputs.items():
            if math.isfinite(value):
                self._sums[name] = self._sums.get(name, 0.0) + value
                self._counts[name] = self._counts.get(name, 0) + 1

    def end_epoch(self):
        """Close the epoch: store the means of its outputs as a new record."""
        self.status["epochs_done"] += 1
        record = {
            "epoch": self.status["epochs_done"],
            "iterations_done": self.status["iterations_done"],
            "nonfinite_steps": self.status["nonfinite_steps"],
        }
        record.update({name: self._sums[name] / self._counts[name] for name in self._sums})
        record.update(self.current)
        self.records.append(record)
        self.current, self._sums, self._counts = {}, {}, {}
        return record

    def to_dict(self):
        """Return the log as JSON-serializable data (the running epoch's partial sums excluded)."""
        return {"status": dict(self.status), "records": list(self.records)}

    @classmethod
    def from_dict(cls, data):
        log = cls()
        log.status.update(data["status"])
        log.records = list(data["records"])
        return log
