"""The data pipeline of the image experiments: a prepared data file to flattened, scaled images.

Every batch goes through the same steps, for training and for held-out evaluation:

1. :class:`RandomPatch` crops ``(height, width)`` patches when ``[data] random_patches``;
2. :class:`Cast` converts the stored values to floatX;
3. :meth:`ScaleAndShift.from_file_statistics` maps the training split to zero mean and unit
   variance, so one stored grey level becomes ``scale`` wide;
4. :class:`UniformDequantize` adds noise of one grey level when ``[data] dequantize``;
5. :class:`Flatten` turns (batch, C, H, W) into the (batch, C*H*W) rows the model takes.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytensor

from dpm.data import registry
from dpm.data.hdf5 import H5Dataset, split_names
from dpm.data.streams import ArrayDataset, DataStream, SequentialScheme, ShuffledScheme
from dpm.data.transformers import Cast, Flatten, RandomPatch, ScaleAndShift, UniformDequantize

logger = logging.getLogger(__name__)

TRAIN_SPLIT = "train"
HELD_OUT_SPLIT = "test"


@dataclass(frozen=True)
class ImageData:
    """A prepared image data file and the affine map from its stored values to model units.

    Attributes
    ----------
    path : pathlib.Path
    stored_shape : tuple of int
        ``(C, H, W)`` of the stored images.
    scale, shift : float
        Model units are ``stored * scale + shift``. For 8-bit images ``scale`` is the width
        of one grey level in model units.
    quantized : bool
        True for uint8 images, the only ones with a bits-per-dimension figure.
    """

    path: Path
    stored_shape: tuple
    scale: float
    shift: float
    quantized: bool

    def to_stored_units(self, x):
        """Map model-unit values back to stored values, clipped to [0, 255] for 8-bit images."""
        stored = (np.asarray(x, dtype=np.float64) - self.shift) / self.scale
        return np.clip(stored, 0, 255) if self.quantized else stored


def locate_data_file(dataset, path=None):
    """Return the data file of ``dataset``: ``path``, or its default file, prepared if missing.

    A missing default file is prepared with :func:`dpm.data.registry.prepare`, which
    generates the generated data sets and converts raw files for the others (see
    ``dpm data prepare``).
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"data file {path} not found; prepare it with `dpm data prepare {dataset}`"
            )
        return path
    path = registry.default_path(dataset)
    if not path.is_file():
        logger.info("%s not found, so data set %s is prepared first", path, dataset)
        registry.prepare(dataset, path=path)
    return path


def open_image_data(path, config):
    """Read the file attributes of ``path`` and check its images against ``config['data']``.

    Raises
    ------
    ValueError
        If the file lacks a split, its images are not (N, C, H, W), or their size does not
        fit the configuration.
    """
    path = Path(path)
    splits = split_names(path)
    for split in (TRAIN_SPLIT, HELD_OUT_SPLIT):
        if split not in splits:
            raise ValueError(
                f"data file {path} has no {split!r} split (it has {sorted(splits)}); image "
                f"training needs {TRAIN_SPLIT!r} and {HELD_OUT_SPLIT!r}, so choose another data set"
            )
    with H5Dataset(path, TRAIN_SPLIT, sources=["features"]) as dataset:
        first = dataset.get_data([0])[0]
    if first.ndim != 4:
        raise ValueError(
            f"the features of {path} have shape {first.shape[1:]} per example, but image "
            "training needs (C, H, W) images"
        )
    stored_shape = tuple(int(n) for n in first.shape[1:])
    data = config["data"]
    expected = (data["n_colors"], data["height"], data["width"])
    fits = (stored_shape[0] == expected[0] and stored_shape[1] >= expected[1]
            and stored_shape[2] >= expected[2])
    if not fits or (not data["random_patches"] and stored_shape != expected):
        raise ValueError(
            f"the images of {path} are {stored_shape} (C, H, W), but [data] expects "
            f"{expected}{' patches' if data['random_patches'] else ''}; set n_colors, height "
            "and width to the file's size, or set random_patches = true to train on smaller patches"
        )
    # The map depends only on the file's attributes; the stream of one image carries it.
    one_image = DataStream(ArrayDataset(features=first), SequentialScheme(1, 1))
    scaled = ScaleAndShift.from_file_statistics(one_image, path)
    return ImageData(path, stored_shape, scaled.scale, scaled.shift, first.dtype == np.uint8)


def _transform(stream, image_data, config, seeds):
    """Apply steps 1-5 of the module docstring; ``seeds`` is (patch seed, noise seed)."""
    data = config["data"]
    if data["random_patches"]:
        stream = RandomPatch(stream, (data["height"], data["width"]), seed=seeds[0])
    stream = Cast(stream, pytensor.config.floatX)
    stream = ScaleAndShift(stream, image_data.scale, image_data.shift, which_sources="features")
    if data["dequantize"]:
        if not image_data.quantized:
            raise ValueError(
                f"[data] dequantize = true, but the images of {image_data.path} are not 8-bit, "
                "so they have no grey levels; set dequantize = false"
            )
        stream = UniformDequantize(stream, width=image_data.scale, seed=seeds[1],
                                   which_sources="features")
    return Flatten(stream)


def spawn_seeds(seed, count):
    """Return ``count`` independent child seeds of ``seed``, an int or a SeedSequence."""
    if not isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence(seed)
    return seed.spawn(count)


def training_stream(image_data, config, seed):
    """Build the shuffled training stream of (batch, C*H*W) rows in model units.

    ``seed`` seeds the batch order, the patch positions and the dequantization noise,
    independently.
    """
    batch_seed, patch_seed, noise_seed = spawn_seeds(seed, 3)
    dataset = H5Dataset(image_data.path, TRAIN_SPLIT, sources=["features"], load_in_memory=True)
    scheme = ShuffledScheme(dataset.num_examples, config["training"]["batch_size"], batch_seed)
    return _transform(DataStream(dataset, scheme), image_data, config, (patch_seed, noise_seed))


def held_out_features(image_data, config, n_images, seed):
    """Return the first ``n_images`` held-out images (all if fewer) as (N, C*H*W) rows in model units.

    The patches and the dequantization noise depend only on ``seed``, so every call with
    the same arguments returns the same array.
    """
    with H5Dataset(image_data.path, HELD_OUT_SPLIT, sources=["features"]) as dataset:
        count = min(int(n_images), dataset.num_examples)
        images = dataset.get_data(slice(0, count))[0]
    patch_seed, noise_seed = spawn_seeds(seed, 2)
    stream = DataStream(ArrayDataset(features=images), SequentialScheme(count, count))
    stream = _transform(stream, image_data, config, (patch_seed, noise_seed))
    return next(iter(stream.get_epoch_iterator()))["features"]
