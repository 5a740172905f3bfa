"""Iteration schemes and data streams, in the style of Fuel.

A scheme yields requests for one epoch: arrays of row indexes (batch schemes) or single row
indexes (example schemes). A stream reads each request from a dataset with
``get_data(request)`` and yields a dict ``{source: array}``, a batch for a batch scheme and
one example without the batch axis for an example scheme.

Every scheme that draws random numbers has ``get_state()`` and ``set_state(state)``. The
state is the generator's JSON-serializable state, so a checkpoint can store it, and a
restored scheme continues with the same sequence of epochs.
"""

import operator

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
        """Return the generator state, a JSON-serializable dict."""
        return self.rng.bit_generator.state

    def set_state(self, state):
        """Restore a state returned by :meth:`get_state`."""
        self.rng.bit_generator.state = state


class SequentialExampleScheme:
    """Single row indexes ``0, 1, ..., num_examples - 1``, one request per example."""

    def __init__(self, num_examples):
        self.num_examples = _validate_num_examples(num_examples)

    def get_request_iterator(self):
        return iter(range(self.num_examples))


class ShuffledExampleScheme(SequentialExampleScheme):
    """Single row indexes in a new seeded random order each epoch.

    The order is drawn when an epoch starts, so a state saved between epochs replays the
    next epoch exactly.
    """

    def __init__(self, num_examples, seed):
        super().__init__(num_examples)
        self.rng = np.random.default_rng(seed)

    def get_request_iterator(self):
        order = self.rng.permutation(self.num_examples)
        return iter(order.tolist())

    def get_state(self):
        """Return the generator state, a JSON-serializable dict."""
        return self.rng.bit_generator.state

    def set_state(self, state):
        """Restore a state returned by :meth:`get_state`."""
        self.rng.bit_generator.state = state


def _validate_num_examples(num_examples):
    if isinstance(num_examples, bool):
        raise TypeError(f"num_examples must be an integer, got {num_examples!r}")
    try:
        value = operator.index(num_examples)
    except TypeError:
        raise TypeError(f"num_examples must be an integer, got {num_examples!r}") from None
    if value < 0:
        raise ValueError(f"num_examples must be at least 0, got {value}")
    return value


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
    """Batches of ``dataset`` in the order of ``iteration_scheme``, as dicts ``{source: array}``.

    A single-index request, from an example scheme, yields one example without the batch
    axis. It is read as a batch of one row, so datasets that accept only batch requests,
    such as :class:`dpm.data.hdf5.H5Dataset`, work with example schemes too.
    """

    def __init__(self, dataset, iteration_scheme):
        self.dataset = dataset
        self.iteration_scheme = iteration_scheme

    def get_epoch_iterator(self):
        for request in self.iteration_scheme.get_request_iterator():
            if isinstance(request, (int, np.integer)):
                arrays = tuple(array[0] for array in self.dataset.get_data([int(request)]))
            else:
                arrays = self.dataset.get_data(request)
            yield dict(zip(self.dataset.sources, arrays))
