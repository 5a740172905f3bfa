"""The append-only ``stats.jsonl`` of a run: one JSON line per epoch record.

Lines are only ever appended, never rewritten. A resumed run appends after the lines of the
earlier run, so an epoch can have several lines. A stop in the middle of an epoch writes a
partial record of it, and a run resumed from an older checkpoint trains some epochs again.
The last line of an epoch is its current record, and :func:`read_stats` returns those.
"""

import json
import logging
import os
from pathlib import Path

from dpm.training.extensions import SimpleExtension

logger = logging.getLogger(__name__)


class StatsWriter(SimpleExtension):
    """Append the log's new epoch records to a JSON Lines file, flushed to disk at once.

    Default triggers: every epoch, after training and on an interrupt. A stop in the middle
    of an epoch also writes that epoch's partial record. With a sparser trigger each write
    appends every record written since the last one. Its state, the number of records
    written, is part of checkpoints, so put it before :class:`Checkpoint`.

    Parameters
    ----------
    path : path-like
    **triggers
        See :class:`SimpleExtension`.
    """

    def __init__(self, path, **triggers):
        defaults = {"every_n_epochs": 1, "after_training": True, "on_interrupt": True}
        super().__init__(**{**defaults, **triggers})
        self.path = Path(path)
        self.records_written = 0
        self.partial_written = None

    def do(self, event, main_loop):
        records = main_loop.log.records
        complete = [record for record in records if not record.get("partial")]
        lines = [json.dumps(record) for record in complete[self.records_written:]]
        partial = records[-1] if records and records[-1].get("partial") else None
        partial_key = None if partial is None else [partial["epoch"], partial["iterations_done"]]
        if partial is not None and partial_key != self.partial_written:
            lines.append(json.dumps(partial))
        if lines:
            self._append(lines)
        self.records_written = len(complete)
        self.partial_written = partial_key

    def _append(self, lines):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as file:
            # A process killed while writing can leave a line without its newline, so the
            # new lines then start on a line of their own.
            file.seek(0, os.SEEK_END)
            if file.tell() > 0:
                file.seek(-1, os.SEEK_END)
                if file.read(1) != b"\n":
                    file.write(b"\n")
            file.write(("\n".join(lines) + "\n").encode())
            file.flush()
            os.fsync(file.fileno())

    def get_state(self):
        """Return ``{'records_written': int, 'partial_written': [epoch, iterations] or None}``."""
        return {"records_written": self.records_written, "partial_written": self.partial_written}

    def set_state(self, state):
        self.records_written = int(state["records_written"])
        self.partial_written = state["partial_written"]


def read_stats(path, latest=True):
    """Return the records of a ``stats.jsonl`` file.

    Parameters
    ----------
    path : path-like
    latest : bool
        If True, return the last line of each epoch, in epoch order. If False, return every
        line in file order.

    Lines that are not valid JSON, such as one cut short by a killed process, are skipped
    with a warning.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; pass the stats.jsonl of a run folder, written from the first epoch on")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            logger.warning("skipped line %d of %s: invalid JSON (%s)", number, path, error)
    if not latest:
        return records
    by_epoch = {}
    for record in records:
        by_epoch[record["epoch"]] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]
