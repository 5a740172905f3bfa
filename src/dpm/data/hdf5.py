"""HDF5 data files with named splits, laid out like the files of Fuel's H5PYDataset.

One file holds:

* one HDF5 dataset per *source* (for example ``features`` and ``targets``) at the
  root of the file. Axis 0 indexes examples, and every axis carries a dimension label
  (``dims[i].label``) such as ``'batch'`` or ``'feature'``.
* the file attribute ``split``, a NumPy structured array with one row per
  (split, source) pair and the fields ``split`` and ``source`` (fixed-width UTF-8
  byte strings) and ``start`` and ``stop`` (int64). A split is the row range
  ``[start, stop)`` of each source. The rows are sorted by split, then source, so a
  file's bytes depend only on its contents.
* any other file attributes as metadata. Strings and numbers are stored as HDF5
  attributes, and every other JSON value (lists, dicts, None) as JSON text whose
  attribute names are listed in the ``json_attributes`` attribute.

The split table keeps only the four fields above, so Fuel's own reader, which also
expects ``indices``, ``available`` and ``comment`` fields, cannot open these files.
"""

import hashlib
import json
import logging
import operator
import os
from pathlib import Path

import h5py
import numpy as np

from dpm.atomic import atomic_path

logger = logging.getLogger(__name__)

#: Name of the file attribute that contains the split table.
SPLIT_ATTRIBUTE = "split"
#: Name of the file attribute that lists the attributes stored as JSON text.
JSON_ATTRIBUTE = "json_attributes"
#: Name of the file attribute that contains each source's SHA-256, as JSON.
CHECKSUM_ATTRIBUTE = "sha256"
#: Name of the file attribute that contains :data:`FORMAT_VERSION`.
FORMAT_ATTRIBUTE = "dpm_format_version"
#: Version of this layout, written into every file. Readers reject newer versions.
FORMAT_VERSION = 1

_RESERVED_ATTRIBUTES = (SPLIT_ATTRIBUTE, JSON_ATTRIBUTE, FORMAT_ATTRIBUTE, CHECKSUM_ATTRIBUTE)
_INT64_RANGE = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)
_PREPARE_HINT = (
    "run `dpm data prepare NAME` (for example `dpm data prepare swiss_roll`), or call the "
    "data set's prepare function "
    "(for example dpm.data.swiss_roll.prepare)"
)


class DataFileError(ValueError):
    """Error raised for a file that exists but is not a valid data file of this layout."""


def write_dataset(path, sources, splits, attrs=None, overwrite=False):
    """Write arrays, their split table and metadata to an HDF5 data file.

    The data go to a temporary file in the destination folder, which replaces
    ``path`` only after everything is written, so an interrupted write leaves no
    partial file at ``path``. On any error the temporary file is removed.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file. Missing parent folders are created.
    sources : dict
        Maps each source name to ``(array, dim_labels)``, where ``dim_labels`` is a
        tuple with one label per array axis, for example
        ``{'features': (x, ('batch', 'feature'))}``. All arrays need the same length
        along axis 0.
    splits : dict
        Maps each split name to a row range ``(start, stop)`` with
        ``0 <= start < stop <= n_rows``. The range applies to every source. Ranges may
        overlap.
    attrs : dict, optional
        Metadata with string keys and JSON-serializable values.
    overwrite : bool, default False
        Replace ``path`` if it exists.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    ValueError
        If a source, split or attribute is invalid, for example a floating-point
        source that contains NaN or infinity.
    """
    path = Path(path)
    check_destination(path, overwrite)

    arrays, n_rows = _validate_sources(sources)
    table = _build_split_table(splits, sorted(arrays), n_rows)
    attributes, json_names = _encode_attrs(attrs or {})

    # atomic_path removes the partial file on any error, KeyboardInterrupt included.
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as file:
        for name in sorted(arrays):
            array, labels = arrays[name]
            dataset = file.create_dataset(name, data=array)
            for axis, label in enumerate(labels):
                dataset.dims[axis].label = label
        file.attrs[FORMAT_ATTRIBUTE] = FORMAT_VERSION
        checksums = {name: source_checksum(arrays[name][0]) for name in sorted(arrays)}
        file.attrs[CHECKSUM_ATTRIBUTE] = json.dumps(checksums, sort_keys=True)
        file.attrs[SPLIT_ATTRIBUTE] = table
        file.attrs[JSON_ATTRIBUTE] = np.array(json_names, dtype=h5py.string_dtype())
        for key in sorted(attributes):
            file.attrs[key] = attributes[key]

    logger.info(
        "wrote %s: %d rows, sources %s, splits %s",
        path,
        n_rows,
        sorted(arrays),
        {name: tuple(bounds) for name, bounds in splits.items()},
    )
    return path


def check_destination(path, overwrite, name=None):
    """Raise ``FileExistsError`` if ``path`` exists and ``overwrite`` is false.

    ``name``, a data set name, adds the ``dpm data prepare NAME --force`` command to the
    message. Converters call this before reading any raw file, so that a long conversion
    does not end in this error.
    """
    if Path(path).exists() and not overwrite:
        command = f" (`dpm data prepare {name} --force`)" if name else ""
        raise FileExistsError(
            f"{path} already exists; delete it or pass overwrite=True{command} to replace it"
        )


def source_checksum(array):
    """Return the SHA-256 of an array's dtype, shape and C-ordered bytes, as hex."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def verify_checksums(path):
    """Check every source of ``path`` against the SHA-256 stored when it was written.

    Raises
    ------
    DataFileError
        If a source's content changed after writing, or the file has no checksums.
    """
    path = Path(path)
    with _open_data_file(path) as file:
        stored = file.attrs.get(CHECKSUM_ATTRIBUTE)
        if stored is None:
            raise DataFileError(
                f"{path} has no checksums, so it was written by an older dpm; "
                "delete it and create it again"
            )
        stored = json.loads(_as_str(stored))
        for name, expected in sorted(stored.items()):
            if source_checksum(file[name][()]) != expected:
                raise DataFileError(
                    f"source {name!r} of {path} does not match its SHA-256 checksum, so the file "
                    "was changed or damaged after it was written; delete it and create it again"
                )


def _validate_sources(sources):
    """Return ``({name: (array, labels)}, n_rows)`` after checking every source."""
    if not isinstance(sources, dict) or not sources:
        raise ValueError(
            f"sources must be a non-empty dict of name -> (array, dim_labels), "
            f"got {sources!r:.200}"
        )
    arrays = {}
    for name, entry in sources.items():
        _validate_source_name(name)
        if not isinstance(entry, tuple) or len(entry) != 2:
            raise ValueError(
                f"source {name!r} must be an (array, dim_labels) tuple, got {type(entry).__name__}"
            )
        array = np.asarray(entry[0])
        labels = tuple(entry[1]) if not isinstance(entry[1], str) else (entry[1],)
        _validate_array(name, array, labels)
        arrays[name] = (array, labels)

    lengths = {name: array.shape[0] for name, (array, _) in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"all sources need the same number of rows (axis 0), got {lengths}"
        )
    return arrays, next(iter(lengths.values()))


def _validate_array(name, array, labels):
    if array.ndim == 0:
        raise ValueError(
            f"source {name!r} is a scalar; give it at least one axis (the example axis)"
        )
    if array.dtype.kind in "OUMm":
        raise ValueError(
            f"source {name!r} has dtype {array.dtype}, which HDF5 cannot store here; "
            "use a numeric, boolean or byte-string ('S') dtype"
        )
    if len(labels) != array.ndim:
        raise ValueError(
            f"source {name!r} has {array.ndim} axes but {len(labels)} dimension labels "
            f"{labels}; give one label per axis"
        )
    for label in labels:
        if not isinstance(label, str) or not label:
            raise ValueError(
                f"dimension labels of source {name!r} must be non-empty strings, got {labels}"
            )
    if array.dtype.kind in "fc":
        n_invalid = int(np.count_nonzero(~np.isfinite(array)))
        if n_invalid:
            raise ValueError(
                f"source {name!r} contains {n_invalid} NaN or infinite values; "
                "remove or replace them before writing"
            )


def _validate_source_name(name):
    # Each source becomes an HDF5 dataset at the root: '/' separates HDF5 path
    # components, and '.' names the root group itself.
    if not isinstance(name, str) or not name or "/" in name or name == ".":
        raise ValueError(
            f"source name {name!r} is invalid; use a non-empty string without '/'"
        )


def _build_split_table(splits, source_names, n_rows):
    """Return the split table as a structured array sorted by split, then source."""
    if not isinstance(splits, dict) or not splits:
        raise ValueError(
            f"splits must be a non-empty dict of name -> (start, stop), got {splits!r:.200}"
        )
    rows = []
    for split, bounds in splits.items():
        if not isinstance(split, str) or not split:
            raise ValueError(f"split names must be non-empty strings, got {split!r}")
        start, stop = _validate_range(split, bounds, n_rows)
        for source in source_names:
            rows.append((split.encode("utf-8"), source.encode("utf-8"), start, stop))
    rows.sort()

    # Fixed-width byte strings read back as a plain NumPy array whose bytes depend only
    # on the names. Variable-length strings would read back as object fields.
    split_width = max(len(row[0]) for row in rows)
    source_width = max(len(row[1]) for row in rows)
    dtype = np.dtype(
        [
            ("split", f"S{split_width}"),
            ("source", f"S{source_width}"),
            ("start", "<i8"),
            ("stop", "<i8"),
        ]
    )
    return np.array(rows, dtype=dtype)


def _validate_range(split, bounds, n_rows):
    try:
        start, stop = bounds
        if isinstance(start, bool) or isinstance(stop, bool):
            raise TypeError
        start, stop = operator.index(start), operator.index(stop)
    except (TypeError, ValueError):
        raise ValueError(
            f"split {split!r} must map to an integer (start, stop) pair, got {bounds!r}"
        ) from None
    if not 0 <= start < stop <= n_rows:
        raise ValueError(
            f"split {split!r} has row range ({start}, {stop}); it needs "
            f"0 <= start < stop <= {n_rows} (the number of rows)"
        )
    return start, stop


def _encode_attrs(attrs):
    """Return ``(attributes, json_names)`` ready to store as HDF5 file attributes."""
    if not isinstance(attrs, dict):
        raise ValueError(f"attrs must be a dict, got {type(attrs).__name__}")
    attributes = {}
    json_names = []
    for key, value in attrs.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"attribute names must be non-empty strings, got {key!r}")
        if key in _RESERVED_ATTRIBUTES:
            raise ValueError(
                f"attribute name {key!r} is reserved for the file layout; choose another name"
            )
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, (str, bool, float)) or (
            isinstance(value, int) and _INT64_RANGE[0] <= value <= _INT64_RANGE[1]
        ):
            attributes[key] = value
            continue
        try:
            attributes[key] = json.dumps(value, sort_keys=True)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"attribute {key!r} is not JSON-serializable ({error}); "
                "convert it to numbers, strings, lists or dicts"
            ) from None
        json_names.append(key)
    return attributes, sorted(json_names)


class H5Dataset:
    """One split of an HDF5 data file written by :func:`write_dataset`.

    In lazy mode (the default) each :meth:`get_data` call reads the requested rows
    from the file, which stays open until :meth:`close`. With ``load_in_memory=True``
    the split is read once and the file is closed; both modes return identical arrays.

    Parameters
    ----------
    path : str or os.PathLike
        The data file.
    split : str
        Name of the split to read, for example ``'train'``.
    sources : sequence of str, optional
        Sources to return, in this order. Defaults to every source of the split, sorted
        by name.
    load_in_memory : bool, default False
        Read the whole split into memory now.

    Attributes
    ----------
    sources : tuple of str
        Names of the returned sources, in the order of :meth:`get_data`'s arrays.
    num_examples : int
        Number of rows in the split.
    dim_labels : dict
        Dimension labels of each source, as a tuple per source name.
    attrs : dict
        Metadata attributes of the file, with JSON text decoded.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataFileError
        If ``path`` is not a valid data file (for example a truncated file).
    KeyError
        If ``split`` or one of ``sources`` is not in the file.
    """

    def __init__(self, path, split, sources=None, load_in_memory=False):
        self.path = Path(path)
        self.split = split
        self.load_in_memory = load_in_memory
        self._file = None
        self._arrays = None

        with _open_data_file(self.path) as file:
            ranges = _split_ranges(file, self.path)
            if split not in ranges:
                raise KeyError(
                    f"split {split!r} not found in {self.path}; "
                    f"available splits: {sorted(ranges)}"
                )
            available = ranges[split]
            if sources is None:
                sources = sorted(available)
            elif isinstance(sources, str):
                sources = [sources]
            missing = [name for name in sources if name not in available]
            if missing:
                raise KeyError(
                    f"sources {missing} not found in split {split!r} of {self.path}; "
                    f"available sources: {sorted(available)}"
                )
            self.sources = tuple(sources)
            self._ranges = tuple(available[name] for name in self.sources)
            self.num_examples = self._check_ranges(file)
            self.dim_labels = {
                name: tuple(dim.label for dim in file[name].dims) for name in self.sources
            }
            self.attrs = _decode_attrs(file)
            if load_in_memory:
                self._arrays = tuple(
                    _read_rows(file[name], slice(start, stop), self.path)
                    for name, (start, stop) in zip(self.sources, self._ranges)
                )
        logger.debug(
            "opened split %r of %s: %d examples, sources %s, in memory: %s",
            split,
            self.path,
            self.num_examples,
            self.sources,
            load_in_memory,
        )

    def _check_ranges(self, file):
        lengths = set()
        for name, (start, stop) in zip(self.sources, self._ranges):
            if name not in file or not isinstance(file[name], h5py.Dataset):
                raise DataFileError(
                    f"{self.path} lists source {name!r} in its split table but has no "
                    f"such dataset; delete the file and create it again ({_PREPARE_HINT})"
                )
            if not 0 <= start < stop <= file[name].shape[0]:
                raise DataFileError(
                    f"{self.path}: split {self.split!r} of source {name!r} has rows "
                    f"[{start}, {stop}) but the dataset has {file[name].shape[0]} rows; "
                    f"delete the file and create it again ({_PREPARE_HINT})"
                )
            lengths.add(stop - start)
        if len(lengths) != 1:
            raise DataFileError(
                f"{self.path}: the sources {self.sources} of split {self.split!r} have "
                f"different numbers of rows {sorted(lengths)}; request sources of equal length"
            )
        return lengths.pop()

    def get_data(self, request):
        """Read rows of the split.

        Parameters
        ----------
        request : slice or sequence of int
            Rows relative to the split: a slice with positive step, or a 1-D list or
            array of indexes in any order, repeats allowed.

        Returns
        -------
        tuple of numpy.ndarray
            One array per source, in the order of :attr:`sources`.

        Raises
        ------
        IndexError
            If an index is outside ``[0, num_examples)``.
        """
        if isinstance(request, slice):
            start, stop, step = request.indices(self.num_examples)
            if step < 1:
                raise ValueError(
                    f"slice step must be positive, got {request.step}; "
                    "reverse the result after reading instead"
                )
            rows = slice(start, stop, step)
        else:
            rows = self._validate_indexes(request)

        if self._arrays is not None:
            # np.array copies, so that a caller who edits a batch cannot change the
            # loaded split, just as in lazy mode.
            return tuple(np.array(array[rows]) for array in self._arrays)

        file = self._open()
        return tuple(
            _read_rows(file[name], _shift(rows, start), self.path)
            for name, (start, _) in zip(self.sources, self._ranges)
        )

    def _validate_indexes(self, request):
        if np.ndim(request) == 0:
            raise TypeError(
                f"request must be a slice or a 1-D sequence of indexes, got {request!r}; "
                "wrap a single index as [i]"
            )
        indexes = np.asarray(request)
        if indexes.size == 0:
            return np.zeros(0, dtype=np.int64)
        if indexes.ndim != 1 or indexes.dtype.kind not in "iu":
            raise TypeError(
                f"request must be a 1-D sequence of integer indexes, got an array of "
                f"shape {indexes.shape} and dtype {indexes.dtype}"
            )
        low, high = indexes.min(), indexes.max()
        if low < 0 or high >= self.num_examples:
            bad = low if low < 0 else high
            raise IndexError(
                f"index {bad} is out of range for split {self.split!r} with "
                f"{self.num_examples} examples; use indexes in [0, {self.num_examples})"
            )
        return indexes.astype(np.int64)

    def _open(self):
        if self._file is None:
            self._file = _open_data_file(self.path)
        return self._file

    def close(self):
        """Close the file handle of lazy mode, if open. A later read opens it again."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __getstate__(self):
        # An open h5py file cannot be pickled, and a copy in another process opens its own.
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def __repr__(self):
        return (
            f"H5Dataset({str(self.path)!r}, split={self.split!r}, sources={self.sources}, "
            f"num_examples={self.num_examples}, load_in_memory={self.load_in_memory})"
        )


def _shift(rows, offset):
    """Return ``rows`` relative to the split as rows of the whole dataset."""
    if isinstance(rows, slice):
        return slice(rows.start + offset, rows.stop + offset, rows.step)
    return rows + offset


def _read_rows(dataset, rows, path):
    """Read ``rows`` (a slice or an index array) of an h5py dataset."""
    try:
        if isinstance(rows, slice):
            return dataset[rows]
        if rows.size == 0:
            return np.empty((0,) + dataset.shape[1:], dtype=dataset.dtype)
        # h5py requires strictly increasing indexes, so read each distinct row once in
        # order and then put the rows into the requested order.
        unique, inverse = np.unique(rows, return_inverse=True)
        return dataset[unique][inverse]
    except OSError as error:
        raise DataFileError(
            f"failed to read {dataset.name!r} from {path} ({error}); the file may be "
            f"damaged: delete it and create it again ({_PREPARE_HINT})"
        ) from error


def _open_data_file(path):
    """Open ``path`` for reading, with errors that name the file and the fix."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} not found; to create it, {_PREPARE_HINT}")
    if path.is_file() and not os.access(path, os.R_OK):
        raise PermissionError(f"data file {path} is not readable; check its permissions")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise DataFileError(
            f"{path} is not a valid HDF5 file ({error}); it may be truncated or "
            f"damaged: delete it and create it again ({_PREPARE_HINT})"
        ) from error

    version = file.attrs.get(FORMAT_ATTRIBUTE)
    if version is None or SPLIT_ATTRIBUTE not in file.attrs:
        file.close()
        raise DataFileError(
            f"{path} is an HDF5 file but not a dpm data file (it lacks the "
            f"{FORMAT_ATTRIBUTE!r} or {SPLIT_ATTRIBUTE!r} attribute); "
            f"delete it and create it again ({_PREPARE_HINT})"
        )
    if int(version) > FORMAT_VERSION:
        file.close()
        raise DataFileError(
            f"{path} uses data file format version {int(version)}, but this dpm reads "
            f"versions up to {FORMAT_VERSION}; update dpm or create the file again"
        )
    return file


def _read_split_table(file):
    """Return the split table as a list of ``(split, source, start, stop)`` with str names."""
    table = file.attrs[SPLIT_ATTRIBUTE]
    return [
        (
            row["split"].decode("utf-8"),
            row["source"].decode("utf-8"),
            int(row["start"]),
            int(row["stop"]),
        )
        for row in table
    ]


def _split_ranges(file, path):
    """Return ``{split: {source: (start, stop)}}`` from the split table."""
    try:
        rows = _read_split_table(file)
    except (KeyError, ValueError, TypeError, IndexError) as error:
        raise DataFileError(
            f"{path} has an invalid split table ({error}); "
            f"delete it and create it again ({_PREPARE_HINT})"
        ) from error
    ranges = {}
    for split, source, start, stop in rows:
        ranges.setdefault(split, {})[source] = (start, stop)
    return ranges


def _decode_attrs(file):
    """Return the metadata attributes of an open file as Python values."""
    json_names = {_as_str(name) for name in file.attrs.get(JSON_ATTRIBUTE, [])}
    attrs = {}
    for key in sorted(file.attrs):
        if key in _RESERVED_ATTRIBUTES:
            continue
        value = file.attrs[key]
        if key in json_names:
            value = json.loads(_as_str(value))
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, bytes):
            value = value.decode("utf-8")
        attrs[key] = value
    return attrs


def _as_str(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def split_names(path):
    """Return the split names of a data file, sorted, as ``str``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataFileError
        If ``path`` is not a valid data file.
    """
    with _open_data_file(path) as file:
        return sorted(_split_ranges(file, Path(path)))


def split_table(path):
    """Return the split table of a data file as a list of ``(split, source, start, stop)``.

    Names are ``str`` and bounds are ``int``, in the stored order (by split, then source).
    """
    with _open_data_file(path) as file:
        try:
            return _read_split_table(file)
        except (KeyError, ValueError, TypeError, IndexError) as error:
            raise DataFileError(
                f"{path} has an invalid split table ({error}); "
                f"delete it and create it again ({_PREPARE_HINT})"
            ) from error


def read_attrs(path):
    """Return the metadata attributes of a data file, with JSON text decoded."""
    with _open_data_file(path) as file:
        return _decode_attrs(file)
