"""Tests of the iteration schemes, ArrayDataset and DataStream in dpm.data.streams."""

import json

import numpy as np
import pytest

from dpm.data.streams import (
    ArrayDataset,
    DataStream,
    SequentialExampleScheme,
    SequentialScheme,
    ShuffledExampleScheme,
    ShuffledScheme,
)


def epoch_requests(scheme):
    return [np.asarray(request) for request in scheme.get_request_iterator()]


def test_sequential_covers_rows_once():
    requests = epoch_requests(SequentialScheme(10, 4))

    np.testing.assert_array_equal(np.concatenate(requests), np.arange(10))
    assert [len(request) for request in requests] == [4, 4, 2]


def test_sequential_batch_count():
    assert SequentialScheme(10, 4).batches_per_epoch() == 3
    assert SequentialScheme(8, 4).batches_per_epoch() == 2


def test_sequential_exact_multiple():
    requests = epoch_requests(SequentialScheme(8, 4))

    assert [len(request) for request in requests] == [4, 4]


def test_sequential_rejects_zero_batch():
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        SequentialScheme(10, 0)


def test_shuffled_full_batches_only():
    scheme = ShuffledScheme(10, 4, seed=0)
    requests = epoch_requests(scheme)

    assert [len(request) for request in requests] == [4, 4]
    assert scheme.batches_per_epoch() == 2


def test_shuffled_no_repeats_in_epoch():
    scheme = ShuffledScheme(10, 4, seed=0)
    for _ in range(5):
        rows = np.concatenate(epoch_requests(scheme))
        assert len(np.unique(rows)) == len(rows)
        assert rows.min() >= 0
        assert rows.max() < 10


def test_shuffled_epoch_is_permutation():
    scheme = ShuffledScheme(12, 4, seed=1)
    for _ in range(3):
        rows = np.sort(np.concatenate(epoch_requests(scheme)))
        np.testing.assert_array_equal(rows, np.arange(12))


def test_shuffled_order_changes():
    scheme = ShuffledScheme(12, 4, seed=1)
    first = np.concatenate(epoch_requests(scheme))
    second = np.concatenate(epoch_requests(scheme))

    assert not np.array_equal(first, np.arange(12))
    assert not np.array_equal(first, second)


def test_shuffled_same_seed_same_order():
    first = ShuffledScheme(20, 5, seed=7)
    second = ShuffledScheme(20, 5, seed=7)
    for _ in range(3):
        for left, right in zip(epoch_requests(first), epoch_requests(second), strict=True):
            np.testing.assert_array_equal(left, right)


def test_shuffled_other_seed_other_order():
    first = np.concatenate(epoch_requests(ShuffledScheme(20, 5, seed=7)))
    second = np.concatenate(epoch_requests(ShuffledScheme(20, 5, seed=8)))

    assert not np.array_equal(first, second)


def test_shuffled_state_replays_epoch():
    scheme = ShuffledScheme(20, 5, seed=3)
    epoch_requests(scheme)
    state = scheme.get_state()
    expected = epoch_requests(scheme)

    scheme.set_state(state)
    replayed = epoch_requests(scheme)

    for left, right in zip(expected, replayed, strict=True):
        np.testing.assert_array_equal(left, right)


def test_shuffled_state_through_json():
    # Checkpoints store the state as JSON, so a round trip through it must restore the order.
    source = ShuffledScheme(20, 5, seed=3)
    state = json.loads(json.dumps(source.get_state()))
    expected = epoch_requests(source)

    other = ShuffledScheme(20, 5, seed=99)
    other.set_state(state)
    for left, right in zip(expected, epoch_requests(other), strict=True):
        np.testing.assert_array_equal(left, right)


def test_shuffled_rejects_large_batch():
    with pytest.raises(ValueError, match="batch_size 11 exceeds the 10 examples"):
        ShuffledScheme(10, 11, seed=0)


def test_dataset_length_mismatch():
    with pytest.raises(ValueError, match="differ in length") as excinfo:
        ArrayDataset(features=np.zeros((5, 2)), labels=np.zeros(4))

    message = str(excinfo.value)
    assert "'features': 5" in message
    assert "'labels': 4" in message


def test_dataset_get_data():
    features = np.arange(12.0).reshape(6, 2)
    labels = np.arange(6) * 10
    dataset = ArrayDataset(features=features, labels=labels)

    batch_features, batch_labels = dataset.get_data(np.array([1, 4]))

    assert dataset.num_examples == 6
    np.testing.assert_array_equal(batch_features, features[[1, 4]])
    np.testing.assert_array_equal(batch_labels, labels[[1, 4]])


def test_stream_dicts_keyed_by_source():
    features = np.arange(14.0).reshape(7, 2)
    labels = np.arange(7)
    stream = DataStream(ArrayDataset(features=features, labels=labels), SequentialScheme(7, 3))

    batches = list(stream.get_epoch_iterator())

    assert len(batches) == 3
    for batch in batches:
        assert sorted(batch) == ["features", "labels"]
    np.testing.assert_array_equal(batches[2]["features"], features[6:])
    np.testing.assert_array_equal(np.concatenate([b["labels"] for b in batches]), labels)


def test_stream_shuffled_rows_aligned():
    features = np.arange(40.0).reshape(20, 2)
    labels = np.arange(20)
    stream = DataStream(ArrayDataset(features=features, labels=labels), ShuffledScheme(20, 4, seed=5))

    for batch in stream.get_epoch_iterator():
        np.testing.assert_array_equal(batch["features"], features[batch["labels"]])


def test_sequential_examples_in_order():
    requests = list(SequentialExampleScheme(5).get_request_iterator())

    assert requests == [0, 1, 2, 3, 4]
    assert all(isinstance(request, int) for request in requests)


def test_shuffled_examples_permutation():
    scheme = ShuffledExampleScheme(12, seed=4)
    first = list(scheme.get_request_iterator())
    second = list(scheme.get_request_iterator())

    assert sorted(first) == list(range(12))
    assert sorted(second) == list(range(12))
    assert all(isinstance(request, int) for request in first)
    assert first != second


def test_shuffled_examples_same_seed_same_order():
    first = ShuffledExampleScheme(30, seed=11)
    second = ShuffledExampleScheme(30, seed=11)
    for _ in range(3):
        assert list(first.get_request_iterator()) == list(second.get_request_iterator())


def test_shuffled_examples_state_continues_sequence():
    scheme = ShuffledExampleScheme(30, seed=11)
    list(scheme.get_request_iterator())
    state = json.loads(json.dumps(scheme.get_state()))
    expected = [list(scheme.get_request_iterator()) for _ in range(3)]

    restored = ShuffledExampleScheme(30, seed=0)
    restored.set_state(state)

    assert [list(restored.get_request_iterator()) for _ in range(3)] == expected


def test_shuffled_batches_state_continues_sequence():
    scheme = ShuffledScheme(20, 5, seed=3)
    state = json.loads(json.dumps(scheme.get_state()))
    expected = [np.concatenate(epoch_requests(scheme)) for _ in range(3)]

    restored = ShuffledScheme(20, 5, seed=0)
    restored.set_state(state)

    for left in expected:
        np.testing.assert_array_equal(np.concatenate(epoch_requests(restored)), left)


def test_example_scheme_rejects_bad_count():
    with pytest.raises(ValueError, match="num_examples must be at least 0, got -1"):
        SequentialExampleScheme(-1)
    with pytest.raises(TypeError, match="num_examples must be an integer, got 2.5"):
        ShuffledExampleScheme(2.5, seed=0)


def test_stream_single_examples_without_batch_axis():
    features = np.arange(12.0).reshape(6, 2)
    labels = np.arange(6) * 10
    stream = DataStream(ArrayDataset(features=features, labels=labels), ShuffledExampleScheme(6, seed=2))

    examples = list(stream.get_epoch_iterator())

    assert len(examples) == 6
    for example in examples:
        assert example["features"].shape == (2,)
        np.testing.assert_array_equal(example["features"], features[example["labels"] // 10])
    assert sorted(int(example["labels"]) for example in examples) == list(labels)


def test_stream_examples_from_hdf5_file(tmp_path):
    from dpm.data.hdf5 import H5Dataset, write_dataset

    images = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 1, 2, 3)
    path = write_dataset(
        tmp_path / "images.hdf5",
        {"features": (images, ("batch", "channel", "height", "width"))},
        {"train": (0, 5)},
    )
    with H5Dataset(path, "train") as dataset:
        examples = list(DataStream(dataset, SequentialExampleScheme(5)).get_epoch_iterator())

    assert len(examples) == 5
    for index, example in enumerate(examples):
        np.testing.assert_array_equal(example["features"], images[index])
