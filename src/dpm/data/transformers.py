"""Stream transformers in the style of Fuel: each wraps a stream and changes its batches.

A transformer has the stream interface, ``get_epoch_iterator()`` yielding dicts
``{source: array}``, and changes only the sources it was given with ``which_sources``
(a name or a sequence of names). Without ``which_sources`` a transformer acts on its
default sources: the ``features`` source for :class:`Flatten`, :class:`Cast` and
:class:`RandomPatch`, every floating-point source for :class:`ScaleAndShift` and
:class:`UniformDequantize`, and every source for :class:`Mapping`. Other sources pass
through unchanged. The arrays of the wrapped stream are never modified in place.

A typical pipeline for uint8 images is::

    stream = DataStream(H5Dataset(path, "train"), ShuffledScheme(n, 128, seed=1))
    stream = Cast(stream, "float32")
    scaled = ScaleAndShift.from_file_statistics(stream, path)
    stream = UniformDequantize(scaled, width=scaled.scale, seed=2)

The transformers that draw random numbers have ``get_state`` and ``set_state``, and
:func:`get_stream_state` and :func:`set_stream_state` collect and restore the states of a
whole pipeline, its iteration scheme included.
"""

import math
import operator

import numpy as np

from dpm.data.hdf5 import read_attrs
from dpm.data.pixel_statistics import (
    STATISTICS_SCALE_ATTRIBUTE,
    TRAIN_MEAN_ATTRIBUTE,
    TRAIN_STD_ATTRIBUTE,
)

#: Factor from stored uint8 pixels to the [0, 1] units of the statistics, used when a file
#: lacks the ``train_statistics_scale`` attribute.
PIXEL_UNIT = 1.0 / 255.0

#: Marks a transformer whose default sources are all floating-point sources of a batch.
FLOATING_SOURCES = "floating-point sources"
#: Marks a transformer whose default sources are all sources of a batch.
ALL_SOURCES = "all sources"


class Transformer:
    """A stream that applies :meth:`transform_source` to chosen sources of each batch.

    Parameters
    ----------
    data_stream : object with ``get_epoch_iterator()``
        The wrapped stream, a :class:`dpm.data.streams.DataStream` or another transformer.
    which_sources : str or sequence of str, optional
        Sources to transform. Defaults to :attr:`default_sources`.
    """

    #: The sources transformed when ``which_sources`` is None: one source name,
    #: :data:`FLOATING_SOURCES` or :data:`ALL_SOURCES`.
    default_sources = "features"

    def __init__(self, data_stream, which_sources=None):
        if not hasattr(data_stream, "get_epoch_iterator"):
            raise TypeError(
                f"data_stream must be a stream with get_epoch_iterator(), got "
                f"{type(data_stream).__name__}; wrap a dataset in DataStream(dataset, scheme)"
            )
        self.data_stream = data_stream
        if isinstance(which_sources, str):
            which_sources = (which_sources,)
        elif which_sources is not None:
            which_sources = tuple(which_sources)
            if not which_sources:
                raise ValueError("which_sources is empty; name at least one source or pass None")
        self.which_sources = which_sources

    @property
    def iteration_scheme(self):
        """The iteration scheme of the innermost stream."""
        return self.data_stream.iteration_scheme

    def get_epoch_iterator(self):
        for batch in self.data_stream.get_epoch_iterator():
            yield self.transform_batch(batch)

    def transform_batch(self, batch):
        """Return a new dict with the chosen sources of ``batch`` transformed."""
        result = dict(batch)
        for name in self.chosen_sources(batch):
            result[name] = self.transform_source(batch[name], name)
        return result

    def transform_source(self, array, name):
        raise NotImplementedError

    def chosen_sources(self, batch):
        """Return the names of the sources of ``batch`` that this transformer changes."""
        name = type(self).__name__
        if self.which_sources is not None:
            missing = [source for source in self.which_sources if source not in batch]
            if missing:
                raise KeyError(
                    f"{name}: sources {missing} not found in the batch; "
                    f"available sources: {sorted(batch)}"
                )
            return self.which_sources
        if self.default_sources == ALL_SOURCES:
            return tuple(batch)
        if self.default_sources == FLOATING_SOURCES:
            floating = tuple(source for source in batch if _is_floating(batch[source]))
            if not floating:
                dtypes = {source: str(np.asarray(batch[source]).dtype) for source in batch}
                raise TypeError(
                    f"{name} found no floating-point source in the batch (dtypes: {dtypes}); "
                    "wrap the stream in Cast(stream, 'float32') first, or name the sources "
                    "with which_sources"
                )
            return floating
        if self.default_sources not in batch:
            raise KeyError(
                f"{name}: the batch has no {self.default_sources!r} source, the default; "
                f"pass which_sources with one of {sorted(batch)}"
            )
        return (self.default_sources,)


def _is_floating(array):
    return np.asarray(array).dtype.kind == "f"


def _require_floating(transformer, array, name):
    array = np.asarray(array)
    if array.dtype.kind != "f":
        raise TypeError(
            f"{type(transformer).__name__} needs floating-point data, but source {name!r} "
            f"has dtype {array.dtype}; wrap the stream in Cast(stream, 'float32') first"
        )
    return array


def _finite_float(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


class Flatten(Transformer):
    """Reshape each example to one axis, keeping the batch axis: (N, ...) becomes (N, D)."""

    def transform_source(self, array, name):
        array = np.asarray(array)
        if array.ndim == 0:
            raise ValueError(
                f"Flatten: source {name!r} is a scalar; it needs a batch axis, so use a batch "
                "scheme such as SequentialScheme"
            )
        return array.reshape(array.shape[0], -1)


class Cast(Transformer):
    """Convert sources to ``dtype`` with :meth:`numpy.ndarray.astype`.

    Parameters
    ----------
    data_stream : stream
    dtype : str or numpy.dtype
        The target type, for example ``'float32'``.
    which_sources : str or sequence of str, optional
        Defaults to the ``features`` source.
    """

    def __init__(self, data_stream, dtype, which_sources=None):
        super().__init__(data_stream, which_sources)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(
                f"dtype {dtype!r} is not a NumPy data type; use for example 'float32'"
            ) from None

    def transform_source(self, array, name):
        return np.asarray(array).astype(self.dtype)


class ScaleAndShift(Transformer):
    """Map floating-point sources to ``x * scale + shift``, keeping their dtype.

    Parameters
    ----------
    data_stream : stream
    scale, shift : float
        Finite numbers, converted to each source's dtype before use.
    which_sources : str or sequence of str, optional
        Defaults to every floating-point source. An integer source raises TypeError
        because its scaled values would not fit its dtype, so cast it with :class:`Cast`.
    """

    default_sources = FLOATING_SOURCES

    def __init__(self, data_stream, scale, shift, which_sources=None):
        super().__init__(data_stream, which_sources)
        self.scale = _finite_float(scale, "scale")
        self.shift = _finite_float(shift, "shift")

    @classmethod
    def from_file_statistics(cls, data_stream, path, which_sources=None):
        """Build the map that gives the training split zero mean and unit variance.

        The file attributes ``train_mean`` and ``train_std`` are the mean and the standard
        deviation (ddof=0) of ``stored_value * train_statistics_scale`` over the training
        split, where the scale is 1/255 for uint8 pixels (its default when the attribute
        is missing) and 1 for float features. The map is
        ``(stored_value * train_statistics_scale - train_mean) / train_std``, so
        ``scale = train_statistics_scale / train_std`` and
        ``shift = -train_mean / train_std``. For uint8 pixels :attr:`scale` is then also
        the width of one grey level in the new units, the width for
        :class:`UniformDequantize`.

        Sohl-Dickstein et al. (2015) scaled images to unit variance too, but their code
        estimated the statistics from one minibatch. These come from the whole training
        split.

        Parameters
        ----------
        data_stream : stream
            A stream of the file's stored values (pixels in [0, 255] for uint8 files),
            already cast to a floating-point type.
        path : str or os.PathLike
            The data file the stream reads.
        which_sources : str or sequence of str, optional
            As for :class:`ScaleAndShift`.

        Raises
        ------
        ValueError
            If the file lacks ``train_mean`` or ``train_std``, or its standard deviation
            is not positive.
        """
        attrs = read_attrs(path)
        values = {}
        for attribute in (TRAIN_MEAN_ATTRIBUTE, TRAIN_STD_ATTRIBUTE):
            if attribute not in attrs:
                raise ValueError(
                    f"data file {path} has no {attribute!r} attribute, the training split's "
                    "pixel statistics in [0, 1] units; prepare the file again with this dpm "
                    "(`dpm data prepare NAME --force`), or compute the statistics yourself "
                    "and use ScaleAndShift(stream, scale, shift)"
                )
            values[attribute] = _finite_float(attrs[attribute], f"attribute {attribute!r} of {path}")
        unit = _finite_float(
            attrs.get(STATISTICS_SCALE_ATTRIBUTE, PIXEL_UNIT),
            f"attribute {STATISTICS_SCALE_ATTRIBUTE!r} of {path}",
        )
        mean = values[TRAIN_MEAN_ATTRIBUTE]
        std = values[TRAIN_STD_ATTRIBUTE]
        if std <= 0:
            raise ValueError(
                f"attribute {TRAIN_STD_ATTRIBUTE!r} of {path} is {std}, but scaling to unit "
                "variance needs a positive standard deviation, so the training images are "
                "constant; check the data"
            )
        return cls(data_stream, unit / std, -mean / std, which_sources)

    def transform_source(self, array, name):
        array = _require_floating(self, array, name)
        return array * array.dtype.type(self.scale) + array.dtype.type(self.shift)


class UniformDequantize(Transformer):
    """Add uniform noise ``(u - 0.5) * width`` with ``u ~ Uniform[0, 1)`` to each value.

    For quantized data, the noise spreads each level over an interval of ``width`` centred
    on it. After :meth:`ScaleAndShift.from_file_statistics`, one grey level has the width
    of the scale, ``UniformDequantize(scaled, width=scaled.scale, seed=...)``.

    Parameters
    ----------
    data_stream : stream
    width : float
        Width of the noise interval, at least 0.
    seed : int or numpy.random.SeedSequence
        Seed of the noise generator. The noise is drawn in float64 and then converted to
        each source's dtype, so the same seed gives the same noise for any dtype.
    which_sources : str or sequence of str, optional
        Defaults to every floating-point source.
    """

    default_sources = FLOATING_SOURCES

    def __init__(self, data_stream, width, seed, which_sources=None):
        super().__init__(data_stream, which_sources)
        self.width = _finite_float(width, "width")
        if self.width < 0:
            raise ValueError(f"width must be at least 0, got {self.width}")
        self.rng = np.random.default_rng(seed)

    def transform_source(self, array, name):
        array = _require_floating(self, array, name)
        noise = (self.rng.random(array.shape) - 0.5) * self.width
        return array + noise.astype(array.dtype)

    def get_state(self):
        """Return the generator state, a JSON-serializable dict."""
        return self.rng.bit_generator.state

    def set_state(self, state):
        """Restore a state returned by :meth:`get_state`."""
        self.rng.bit_generator.state = state


class RandomPatch(Transformer):
    """Crop a random patch from each image of a (N, C, H, W) batch.

    Every image gets its own patch position, uniform over all positions where the patch
    lies inside the image. When several sources are chosen, the same positions apply to
    all of them, so they need the same height and width.

    Parameters
    ----------
    data_stream : stream
    size : int or (int, int)
        Patch height and width in pixels; one int gives a square patch.
    seed : int or numpy.random.SeedSequence
        Seed of the position generator.
    which_sources : str or sequence of str, optional
        Defaults to the ``features`` source.
    """

    def __init__(self, data_stream, size, seed, which_sources=None):
        super().__init__(data_stream, which_sources)
        self.size = _patch_size(size)
        self.rng = np.random.default_rng(seed)

    def transform_batch(self, batch):
        names = self.chosen_sources(batch)
        arrays = {name: np.asarray(batch[name]) for name in names}
        first = names[0]
        for name, array in arrays.items():
            if array.ndim != 4:
                raise ValueError(
                    f"RandomPatch needs (N, C, H, W) images, but source {name!r} has shape "
                    f"{array.shape}; use a batch scheme and add a channel axis if needed"
                )
            if array.shape[0] != arrays[first].shape[0] or array.shape[2:] != arrays[first].shape[2:]:
                raise ValueError(
                    f"RandomPatch crops the same positions from all chosen sources, but "
                    f"{first!r} has shape {arrays[first].shape} and {name!r} has shape "
                    f"{array.shape}; choose sources of equal N, H and W"
                )

        n_images, _, height, width = arrays[first].shape
        patch_height, patch_width = self.size
        if patch_height > height or patch_width > width:
            raise ValueError(
                f"patch size {patch_height}x{patch_width} (height x width) is larger than the "
                f"images of source {first!r}, {height}x{width}; choose a patch size of at "
                "most the image size"
            )
        tops = self.rng.integers(0, height - patch_height + 1, size=n_images)
        lefts = self.rng.integers(0, width - patch_width + 1, size=n_images)

        result = dict(batch)
        for name, array in arrays.items():
            # windows[n, c, i, j] is the patch whose top-left pixel is (i, j). Indexing
            # axes 0, 2 and 3 with arrays picks one window per image as a copy of shape
            # (N, C, patch_height, patch_width).
            windows = np.lib.stride_tricks.sliding_window_view(
                array, (patch_height, patch_width), axis=(2, 3)
            )
            result[name] = windows[np.arange(n_images), :, tops, lefts]
        return result

    def get_state(self):
        """Return the generator state, a JSON-serializable dict."""
        return self.rng.bit_generator.state

    def set_state(self, state):
        """Restore a state returned by :meth:`get_state`."""
        self.rng.bit_generator.state = state


def _patch_size(size):
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    try:
        height, width = size
        if isinstance(height, bool) or isinstance(width, bool):
            raise TypeError
        height, width = operator.index(height), operator.index(width)
    except (TypeError, ValueError):
        raise TypeError(
            f"size must be an int or a (height, width) pair of ints, got {size!r}"
        ) from None
    if height < 1 or width < 1:
        raise ValueError(f"patch size must be at least 1x1, got {height}x{width}")
    return height, width


class Mapping(Transformer):
    """Apply ``fn`` to the chosen sources of each batch and merge its result into the batch.

    ``fn`` receives a dict ``{source: array}`` of the chosen sources and returns a dict of
    sources to set: changed ones, and new ones that are added to the batch. Sources that
    ``fn`` leaves out keep their values.

    Parameters
    ----------
    data_stream : stream
    fn : callable
        ``fn(sources) -> dict``.
    which_sources : str or sequence of str, optional
        Defaults to every source.
    """

    default_sources = ALL_SOURCES

    def __init__(self, data_stream, fn, which_sources=None):
        super().__init__(data_stream, which_sources)
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn

    def transform_batch(self, batch):
        chosen = {name: batch[name] for name in self.chosen_sources(batch)}
        changed = self.fn(chosen)
        if not isinstance(changed, dict):
            raise TypeError(
                f"Mapping: fn must return a dict of sources, got {type(changed).__name__}"
            )
        return {**batch, **changed}


def _pipeline_parts(stream):
    """Yield the parts of a pipeline that have ``get_state``, from the outermost inwards."""
    while True:
        if hasattr(stream, "get_state"):
            yield stream
        if isinstance(stream, Transformer):
            stream = stream.data_stream
            continue
        scheme = getattr(stream, "iteration_scheme", None)
        if scheme is not None and hasattr(scheme, "get_state"):
            yield scheme
        return


def get_stream_state(stream):
    """Return the random states of a pipeline: its transformers and its iteration scheme.

    Returns
    -------
    list of dict
        One ``{'part': class name, 'state': state}`` per part that draws random numbers,
        from the outermost transformer inwards. The list is JSON-serializable.
    """
    return [{"part": type(part).__name__, "state": part.get_state()} for part in _pipeline_parts(stream)]


def set_stream_state(stream, state):
    """Restore states returned by :func:`get_stream_state` on a pipeline of the same structure.

    Raises
    ------
    ValueError
        If the pipeline's random parts differ from the ones the state was taken from.
    """
    parts = list(_pipeline_parts(stream))
    expected = [type(part).__name__ for part in parts]
    stored = [entry["part"] for entry in state]
    if expected != stored:
        raise ValueError(
            f"the state was taken from a pipeline with random parts {stored}, but this "
            f"pipeline has {expected}; build the same pipeline before restoring the state"
        )
    for part, entry in zip(parts, state):
        part.set_state(entry["state"])
