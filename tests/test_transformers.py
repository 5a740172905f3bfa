"""Tests of the stream transformers in dpm.data.transformers, against direct NumPy computations."""

import json

import numpy as np
import pytest

from dpm.data import dead_leaves
from dpm.data.hdf5 import H5Dataset, write_dataset
from dpm.data.streams import ArrayDataset, DataStream, SequentialScheme, ShuffledScheme
from dpm.data.transformers import (
    Cast,
    Flatten,
    Mapping,
    RandomPatch,
    ScaleAndShift,
    UniformDequantize,
    get_stream_state,
    set_stream_state,
)


def make_images(n=6, channels=2, height=5, width=7):
    # Distinct values, so a patch's content determines where it was cut.
    return np.arange(n * channels * height * width, dtype=np.int64).reshape(n, channels, height, width)


def batches(stream):
    return list(stream.get_epoch_iterator())


def image_stream(features, batch_size=4, **other_sources):
    dataset = ArrayDataset(features=features, **other_sources)
    return DataStream(dataset, SequentialScheme(len(features), batch_size))


def test_flatten_keeps_batch_axis():
    images = make_images()
    labels = np.arange(6)
    result = batches(Flatten(image_stream(images, labels=labels)))

    np.testing.assert_array_equal(
        np.concatenate([batch["features"] for batch in result]), images.reshape(6, -1)
    )
    np.testing.assert_array_equal(np.concatenate([batch["labels"] for batch in result]), labels)


def test_cast_changes_dtype_of_features_only():
    images = make_images().astype(np.uint8)
    labels = np.arange(6, dtype=np.int64)
    (batch, *_) = batches(Cast(image_stream(images, labels=labels), "float32"))

    assert batch["features"].dtype == np.float32
    np.testing.assert_array_equal(batch["features"], images[:4].astype(np.float32))
    assert batch["labels"].dtype == np.int64


def test_cast_rejects_unknown_dtype():
    with pytest.raises(TypeError, match="'floaty' is not a NumPy data type"):
        Cast(image_stream(make_images()), "floaty")


def test_scale_and_shift_matches_numpy():
    values = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    labels = np.arange(10)
    stream = ScaleAndShift(image_stream(values, batch_size=10, labels=labels), 2.5, -0.75)
    (batch,) = batches(stream)

    assert batch["features"].dtype == np.float32
    np.testing.assert_allclose(batch["features"], values * 2.5 - 0.75, rtol=1e-6)
    np.testing.assert_array_equal(batch["labels"], labels)


def test_scale_and_shift_rejects_integer_source():
    stream = ScaleAndShift(image_stream(make_images()), 2.0, 1.0, which_sources="features")
    with pytest.raises(TypeError, match=r"source 'features' has dtype int64.*Cast\(stream"):
        batches(stream)


def test_scale_and_shift_needs_floating_source():
    stream = ScaleAndShift(image_stream(make_images()), 2.0, 1.0)
    with pytest.raises(TypeError, match=r"no floating-point source.*'features': 'int64'"):
        batches(stream)


def test_scale_and_shift_rejects_non_finite():
    with pytest.raises(ValueError, match="scale must be finite, got nan"):
        ScaleAndShift(image_stream(make_images()), float("nan"), 0.0)


def test_missing_source_named():
    stream = Cast(image_stream(make_images()), "float32", which_sources=["features", "targets"])
    with pytest.raises(KeyError, match=r"\['targets'\] not found.*\['features'\]"):
        batches(stream)


@pytest.fixture(scope="module")
def dead_leaves_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("leaves") / "dead_leaves.hdf5"
    return dead_leaves.prepare(path, n_train=40, n_test=10, size=16, seed=5, r_max=16.0)


@pytest.mark.parametrize(("dtype", "tolerance"), [("float64", 1e-12), ("float32", 2e-6)])
def test_file_statistics_standardize_train_split(dead_leaves_file, dtype, tolerance):
    dataset = H5Dataset(dead_leaves_file, "train", load_in_memory=True)
    stream = DataStream(dataset, SequentialScheme(dataset.num_examples, 16))
    stream = ScaleAndShift.from_file_statistics(Cast(stream, dtype), dead_leaves_file)
    values = np.concatenate([batch["features"] for batch in batches(stream)])

    assert values.dtype == np.dtype(dtype)
    assert values.shape == (40, 1, 16, 16)
    assert abs(values.astype(np.float64).mean()) < tolerance
    assert abs(values.astype(np.float64).std() - 1.0) < tolerance


def test_file_statistics_match_numpy(dead_leaves_file):
    (pixels,) = H5Dataset(dead_leaves_file, "train").get_data(slice(None))
    unit = pixels.astype(np.float64) / 255
    stream = ScaleAndShift.from_file_statistics(image_stream(pixels.astype(np.float64)), dead_leaves_file)

    assert stream.scale == pytest.approx(1 / (255 * unit.std()), rel=1e-12)
    assert stream.shift == pytest.approx(-unit.mean() / unit.std(), rel=1e-12)


def test_file_statistics_missing_attribute(tmp_path):
    path = tmp_path / "plain.hdf5"
    images = np.zeros((4, 1, 2, 2), dtype=np.uint8)
    write_dataset(path, {"features": (images, ("batch", "channel", "height", "width"))},
                  {"train": (0, 4)}, attrs={"train_mean": 0.5})
    with pytest.raises(ValueError, match=r"no 'train_std' attribute.*dpm data prepare NAME --force"):
        ScaleAndShift.from_file_statistics(image_stream(images), path)


def test_file_statistics_constant_images(tmp_path):
    path = tmp_path / "constant.hdf5"
    images = np.zeros((4, 1, 2, 2), dtype=np.uint8)
    write_dataset(path, {"features": (images, ("batch", "channel", "height", "width"))},
                  {"train": (0, 4)}, attrs={"train_mean": 0.0, "train_std": 0.0})
    with pytest.raises(ValueError, match="'train_std' of .* is 0.0"):
        ScaleAndShift.from_file_statistics(image_stream(images), path)


def test_dequantize_matches_numpy():
    values = np.linspace(0, 1, 24).reshape(6, 4)
    stream = UniformDequantize(image_stream(values, batch_size=6), width=0.2, seed=9)
    (batch,) = batches(stream)

    noise = (np.random.default_rng(9).random((6, 4)) - 0.5) * 0.2
    np.testing.assert_array_equal(batch["features"], values + noise)
    assert np.all(np.abs(batch["features"] - values) <= 0.1)


def test_dequantize_same_seed_same_noise():
    values = np.zeros((8, 3), dtype=np.float32)
    first = [b["features"] for b in batches(UniformDequantize(image_stream(values), 1.0, seed=4))]
    second = [b["features"] for b in batches(UniformDequantize(image_stream(values), 1.0, seed=4))]
    other = [b["features"] for b in batches(UniformDequantize(image_stream(values), 1.0, seed=5))]

    for left, right in zip(first, second, strict=True):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(first[0], other[0])
    assert first[0].dtype == np.float32


def test_dequantize_state_continues_noise():
    values = np.zeros((8, 3))
    stream = UniformDequantize(image_stream(values), 1.0, seed=4)
    batches(stream)
    state = json.loads(json.dumps(stream.get_state()))
    expected = [batches(stream) for _ in range(2)]

    restored = UniformDequantize(image_stream(values), 1.0, seed=0)
    restored.set_state(state)
    for epoch in expected:
        for left, right in zip(epoch, batches(restored), strict=True):
            np.testing.assert_array_equal(left["features"], right["features"])


def test_dequantize_rejects_negative_width():
    with pytest.raises(ValueError, match="width must be at least 0, got -1.0"):
        UniformDequantize(image_stream(np.zeros((2, 2))), -1.0, seed=0)


def test_random_patch_is_true_crop():
    images = make_images(n=30)
    stream = RandomPatch(image_stream(images, batch_size=30), (3, 4), seed=1)
    (batch,) = batches(stream)
    patches = batch["features"]

    assert patches.shape == (30, 2, 3, 4)
    positions = set()
    for patch, image in zip(patches, images):
        # The image's values are distinct, so the top-left value gives the only candidate.
        top, left = np.argwhere(image[0] == patch[0, 0, 0])[0]
        assert top + 3 <= 5
        assert left + 4 <= 7
        np.testing.assert_array_equal(patch, image[:, top:top + 3, left:left + 4])
        positions.add((int(top), int(left)))
    # 3 x 4 positions exist, and 30 draws reach most of them.
    assert len(positions) >= 8


def test_random_patch_same_positions_across_sources():
    images = make_images(n=10)
    masks = -images
    stream = RandomPatch(image_stream(images, masks=masks), 2, seed=3, which_sources=["features", "masks"])
    for batch in batches(stream):
        np.testing.assert_array_equal(batch["masks"], -batch["features"])


def test_random_patch_same_seed_same_patches():
    images = make_images(n=10)
    first = batches(RandomPatch(image_stream(images), 2, seed=3))
    second = batches(RandomPatch(image_stream(images), 2, seed=3))
    for left, right in zip(first, second, strict=True):
        np.testing.assert_array_equal(left["features"], right["features"])


def test_random_patch_whole_image():
    images = make_images()
    (batch, *_) = batches(RandomPatch(image_stream(images), (5, 7), seed=0))
    np.testing.assert_array_equal(batch["features"], images[:4])


def test_random_patch_larger_than_image():
    stream = RandomPatch(image_stream(make_images()), (6, 3), seed=0)
    with pytest.raises(ValueError, match=r"patch size 6x3 \(height x width\) is larger.*5x7"):
        batches(stream)


def test_random_patch_needs_four_axes():
    stream = RandomPatch(image_stream(np.zeros((4, 5, 5))), 2, seed=0)
    with pytest.raises(ValueError, match=r"needs \(N, C, H, W\) images.*\(4, 5, 5\)"):
        batches(stream)


def test_mapping_changes_and_adds_sources():
    values = np.arange(8.0).reshape(4, 2)
    labels = np.arange(4)

    def add_norm(sources):
        return {"norm": np.linalg.norm(sources["features"], axis=1), "features": -sources["features"]}

    (batch,) = batches(Mapping(image_stream(values, labels=labels), add_norm, which_sources="features"))

    np.testing.assert_array_equal(batch["features"], -values)
    np.testing.assert_allclose(batch["norm"], np.sqrt((values**2).sum(axis=1)))
    np.testing.assert_array_equal(batch["labels"], labels)


def test_mapping_rejects_non_dict_result():
    stream = Mapping(image_stream(np.zeros((4, 2))), lambda sources: sources["features"])
    with pytest.raises(TypeError, match="fn must return a dict of sources, got ndarray"):
        batches(stream)


def test_typical_pipeline_matches_numpy():
    pixels = np.random.default_rng(2).integers(0, 256, size=(8, 1, 4, 4), dtype=np.uint8)
    stream = image_stream(pixels, batch_size=8)
    stream = Cast(stream, "float64")
    stream = ScaleAndShift(stream, 0.5, -3.0)
    stream = UniformDequantize(stream, width=0.5, seed=6)
    (batch,) = batches(stream)

    noise = (np.random.default_rng(6).random(pixels.shape) - 0.5) * 0.5
    np.testing.assert_allclose(batch["features"], pixels * 0.5 - 3.0 + noise, rtol=0, atol=1e-12)


def build_random_pipeline(images):
    stream = DataStream(ArrayDataset(features=images), ShuffledScheme(len(images), 4, seed=21))
    stream = RandomPatch(stream, 3, seed=22)
    stream = Cast(stream, "float64")
    return UniformDequantize(stream, width=1.0, seed=23)


def test_pipeline_state_restores_every_part():
    images = make_images(n=12)
    source = build_random_pipeline(images)
    batches(source)
    state = json.loads(json.dumps(get_stream_state(source)))
    expected = [batches(source) for _ in range(2)]

    assert [entry["part"] for entry in state] == ["UniformDequantize", "RandomPatch", "ShuffledScheme"]
    restored = build_random_pipeline(images)
    set_stream_state(restored, state)
    for epoch in expected:
        for left, right in zip(epoch, batches(restored), strict=True):
            np.testing.assert_array_equal(left["features"], right["features"])


def test_pipeline_state_rejects_other_structure():
    images = make_images(n=12)
    state = get_stream_state(build_random_pipeline(images))
    other = UniformDequantize(DataStream(ArrayDataset(features=images.astype(float)),
                                         SequentialScheme(12, 4)), 1.0, seed=0)
    with pytest.raises(ValueError, match="random parts"):
        set_stream_state(other, state)
