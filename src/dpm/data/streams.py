"""Iteration schemes and data streams, in the style of Fuel.

A scheme yields requests (arrays of row indexes) for one epoch; a stream reads each request
from a dataset with ``get_data(request)`` and yields a batch as a dict ``{source: array}``.
"""

import numpy as np


class SequentialScheme:
    """Batches of consecutive rows, the last one possibly smaller."""

    def __init__(self, num_examples, batch_size):
        self.num_examples = int(num_examples)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")

    def get_request_iterator(self):
        for start in range(0, self.num_examples, self.batch_size):
            yield np.arange(start, min(start + self.batch_size, self.num_examples))

    def batches_per_epoch(self):
        return -(-self.num_examples // self.batch_size)


class ShuffledScheme(SequentialScheme):
    """Batches of rows in a new seeded random order each epoch.

    Only full batches are yielded, so every training step gets ``batch_size`` examples. The
    generator's state is part of a checkpoint (:meth:`get_state`).
    """

    def __init__(self, num_examples, batch_size, seed):
        super().__init__(num_examples, batch_size)
        if self.batch_size > self.num_examples:
            raise ValueError(
                f"batch_size {self.batch_size} exceeds the {self.num_examples} examples; lower it"
            )
        self.rng = np.random.default_rng(seed)

    def get_request_iterator(self):
        order = self.rng.permutation(self.num_examples)
        for index in range(self.batches_per_epoch()):
            yield np.sort(order[index * self.batch_size:(index + 1) * self.batch_size])

    def batches_per_epoch(self):
        return self.num_examples // self.batch_size

    def get_state(self):
        return self.rng.bit_generator.state

    def set_state(self, state):
        self.rng.bit_generator.state = state


class ArrayDataset:
    """An in-memory dataset of named arrays with equal first dimension."""

    def __init__(self, **sources):
        if not sources:
            raise ValueError("ArrayDataset needs at least one source, e.g. ArrayDataset(features=x)")
        lengths = {name: len(array) for name, array in sources.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"sources differ in length: {lengths}")
        self.sources = tuple(sources)
        self.arrays = sources
        self.num_examples = next(iter(lengths.values()))

    def get_data(self, request):
        return tuple(self.arrays[name][request] for name in self.sources)


class DataStream:
    """Batches of ``dataset`` in the order of ``iteration_scheme``, as dicts ``{source: array}``."""

    def __init__(self, dataset, iteration_scheme):
        self.dataset = dataset
        self.iteration_scheme = iteration_scheme

    def get_epoch_iterator(self):
        for request in self.iteration_scheme.get_request_iterator():
            yield dict(zip(self.dataset.sources, self.dataset.get_data(request)))
