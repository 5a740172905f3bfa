"""Raw files of real data sets: where to look for them, how to check them and where to download them.

Each data set that is converted from published files describes them with a
:class:`RawDataSpec`: one :class:`RawFile` per file, with the checksums that identify a
good copy and the URLs that serve it. :func:`find_or_download` looks for each file in the
folders of :func:`raw_search_path`, verifies it, and downloads what is missing into
``data_dir() / 'raw' / NAME``.
"""

import dataclasses
import gzip
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from dpm.atomic import atomic_path
from dpm.data.paths import data_dir

logger = logging.getLogger(__name__)

#: Environment variable with extra folders of raw files, separated by ``os.pathsep``.
RAW_DATA_VARIABLE = "DPM_RAW_DATA"
#: Environment variable that turns downloads off, for machines without network access.
OFFLINE_VARIABLE = "DPM_OFFLINE"
#: Seconds that a download waits to connect or for the next block of data.
DOWNLOAD_TIMEOUT = 60
#: Bytes read at a time when hashing or downloading a file.
BLOCK_SIZE = 1 << 20

_ALGORITHM_NAMES = {"sha256": "SHA-256", "md5": "MD5"}


class RawFileError(ValueError):
    """Error raised for a raw file that exists but whose content is invalid."""


class ChecksumMismatchError(RawFileError):
    """Error raised for a raw file whose checksums match none of the accepted values."""


class RawFilesNotFoundError(FileNotFoundError):
    """Error raised when raw files are in none of the searched folders and downloading failed."""


@dataclasses.dataclass(frozen=True)
class Checksum:
    """One accepted digest of a raw file.

    Attributes
    ----------
    algorithm : str
        ``'sha256'`` or ``'md5'``.
    hexdigest : str
        The digest in lowercase hexadecimal.
    of_content : bool
        If true, the digest is of the gzip-decompressed content, not of the file's bytes.
        Such a checksum accepts any gzip wrapper of the same content.
    source : str
        Where the value comes from, for the error messages and the docs.
    """

    algorithm: str
    hexdigest: str
    of_content: bool = False
    source: str = ""

    def __post_init__(self):
        if self.algorithm not in _ALGORITHM_NAMES:
            raise ValueError(
                f"checksum algorithm {self.algorithm!r} is not supported; use one of "
                f"{sorted(_ALGORITHM_NAMES)}"
            )

    def describe(self):
        """Return a phrase such as ``'MD5 of the file c58f...'`` for messages."""
        subject = "the decompressed content" if self.of_content else "the file"
        return f"{_ALGORITHM_NAMES[self.algorithm]} of {subject} {self.hexdigest}"


@dataclasses.dataclass(frozen=True)
class RawFile:
    """A published file: its name, the checksums of good copies, and where to get it.

    A copy is accepted when any one of ``checksums`` matches.

    Attributes
    ----------
    name : str
        File name, as published (for example ``'train-images-idx3-ubyte.gz'``).
    checksums : tuple of Checksum
        Accepted digests, at least one.
    urls : tuple of str
        Download URLs, tried in order. Empty for a file that has no public download.
    """

    name: str
    checksums: tuple
    urls: tuple = ()

    def __post_init__(self):
        if not self.checksums:
            raise ValueError(f"raw file {self.name!r} needs at least one checksum")
        if Path(self.name).name != self.name:
            raise ValueError(f"raw file name {self.name!r} must be a bare file name")


@dataclasses.dataclass(frozen=True)
class RawDataSpec:
    """The raw files of one data set.

    Attributes
    ----------
    name : str
        Data set name of ``dpm data prepare`` and of the download folder
        ``data_dir() / 'raw' / name``.
    files : tuple of RawFile
    no_download_hint : str
        Sentence shown for files without URLs, saying how to get them instead.
    """

    name: str
    files: tuple
    no_download_hint: str = ""


def raw_search_path(name, from_dir=None):
    """Return the folders searched for the raw files of data set ``name``, in order.

    The order is ``from_dir`` (the ``--from`` option), then each entry of the
    ``DPM_RAW_DATA`` environment variable (separated by ``os.pathsep``, empty entries
    skipped), then ``data_dir() / 'raw' / name``, where downloads go. A folder that
    appears twice is kept at its first place.

    Parameters
    ----------
    name : str
        Data set name, for example ``'mnist'``.
    from_dir : str or os.PathLike, optional

    Returns
    -------
    list of pathlib.Path
    """
    folders = []
    if from_dir is not None:
        folders.append(Path(from_dir).expanduser())
    for entry in os.environ.get(RAW_DATA_VARIABLE, "").split(os.pathsep):
        if entry:
            folders.append(Path(entry).expanduser())
    folders.append(download_dir(name))

    unique = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def download_dir(name):
    """Return the folder that downloads of data set ``name`` go to, ``data_dir() / 'raw' / name``."""
    return data_dir() / "raw" / name


def verify(raw_file, path):
    """Check that the file at ``path`` matches one of the accepted checksums of ``raw_file``.

    Raises
    ------
    ChecksumMismatchError
        If no accepted checksum matches. The message names the file, the expected and
        the found digests, and what to do.
    """
    path = Path(path)
    found = {}

    file_checksums = [checksum for checksum in raw_file.checksums if not checksum.of_content]
    if file_checksums:
        algorithms = sorted({checksum.algorithm for checksum in file_checksums})
        with open(path, "rb") as stream:
            digests = _hash_stream(stream, algorithms)
        found.update({(algorithm, False): digest for algorithm, digest in digests.items()})
        if any(found[(checksum.algorithm, False)] == checksum.hexdigest
               for checksum in file_checksums):
            return

    content_checksums = [checksum for checksum in raw_file.checksums if checksum.of_content]
    content_failure = None
    if content_checksums:
        algorithms = sorted({checksum.algorithm for checksum in content_checksums})
        try:
            with gzip.open(path, "rb") as stream:
                digests = _hash_stream(stream, algorithms)
        except (OSError, EOFError, zlib.error) as error:
            content_failure = f"the file is not a complete gzip file ({error})"
        else:
            found.update({(algorithm, True): digest for algorithm, digest in digests.items()})
            if any(found[(checksum.algorithm, True)] == checksum.hexdigest
                   for checksum in content_checksums):
                return

    expected = " or ".join(checksum.describe() for checksum in raw_file.checksums)
    found_parts = [
        Checksum(algorithm, digest, of_content).describe()
        for (algorithm, of_content), digest in sorted(found.items())
    ]
    if content_failure:
        found_parts.append(content_failure)
    source = f" from {raw_file.urls[0]}" if raw_file.urls else ""
    raise ChecksumMismatchError(
        f"{path} has the wrong checksum: expected {expected}, found {', '.join(found_parts)}. "
        f"The file is damaged, incomplete or another version of {raw_file.name}; replace it "
        f"with an intact copy{source}, or delete it so that it is downloaded again"
    )


def file_digest(path, algorithm="sha256"):
    """Return the hexadecimal digest of the bytes of the file at ``path``."""
    with open(path, "rb") as stream:
        return _hash_stream(stream, [algorithm])[algorithm]


def _hash_stream(stream, algorithms):
    """Return ``{algorithm: hexdigest}`` of everything read from a binary stream."""
    hashes = {algorithm: hashlib.new(algorithm) for algorithm in algorithms}
    for block in iter(lambda: stream.read(BLOCK_SIZE), b""):
        for digest in hashes.values():
            digest.update(block)
    return {algorithm: digest.hexdigest() for algorithm, digest in hashes.items()}


def find_or_download(spec, from_dir=None, download=True):
    """Return verified local copies of every raw file of ``spec``, downloading missing ones.

    Each file is looked for in the folders of :func:`raw_search_path`, in order, and the
    first copy found is verified. A file found in no folder is downloaded from its URLs,
    in order: the data stream to a temporary name in ``data_dir() / 'raw' / NAME`` (with
    a progress bar), is verified, and only then gets the file's name.

    Parameters
    ----------
    spec : RawDataSpec
    from_dir : str or os.PathLike, optional
        Folder searched first, for example the ``--from`` option of ``dpm data prepare``.
    download : bool, default True
        Download missing files. If false, or if the environment variable ``DPM_OFFLINE``
        is set to a non-empty value, a missing file raises at once.

    Returns
    -------
    dict
        Maps each file name of ``spec`` to the path of its verified copy.

    Raises
    ------
    NotADirectoryError
        If ``from_dir`` is given but is not a folder.
    ChecksumMismatchError
        If a copy found in a searched folder has the wrong checksum.
    RawFilesNotFoundError
        If some files are in no searched folder and could not be downloaded. The message
        lists exactly those files, every folder searched, the URLs to get them from and
        the commands that use a folder of raw files.
    """
    if from_dir is not None and not Path(from_dir).expanduser().is_dir():
        raise NotADirectoryError(
            f"the folder of raw files {from_dir} does not exist or is not a folder; "
            f"pass the folder that contains the files of {spec.name}"
        )
    folders = raw_search_path(spec.name, from_dir)
    download = download and not os.environ.get(OFFLINE_VARIABLE)

    found = {}
    missing = []
    for raw_file in spec.files:
        path = _find(raw_file, folders)
        if path is None:
            missing.append(raw_file)
        else:
            found[raw_file.name] = path

    failures = {}
    for raw_file in missing:
        if not download or not raw_file.urls:
            continue
        path, errors = _download(raw_file, download_dir(spec.name))
        if path is None:
            failures[raw_file.name] = errors
        else:
            found[raw_file.name] = path

    still_missing = [raw_file for raw_file in missing if raw_file.name not in found]
    if still_missing:
        raise RawFilesNotFoundError(_not_found_message(spec, still_missing, folders, download, failures))
    return {raw_file.name: found[raw_file.name] for raw_file in spec.files}


def _find(raw_file, folders):
    """Return the verified path of ``raw_file`` in the first folder that has it, or None."""
    for folder in folders:
        candidate = folder / raw_file.name
        if candidate.is_file():
            verify(raw_file, candidate)
            logger.info("found %s in %s", raw_file.name, folder)
            return candidate
    return None


def _open_url(url, timeout):
    """Open ``url`` for reading. Tests replace this function to simulate a machine without network."""
    return urllib.request.urlopen(url, timeout=timeout)


def _download(raw_file, folder):
    """Download ``raw_file`` into ``folder`` and return ``(path or None, [error text per failed URL])``."""
    destination = folder / raw_file.name
    errors = []
    for url in raw_file.urls:
        logger.info("downloading %s from %s", raw_file.name, url)
        try:
            # atomic_path deletes the temporary file if the transfer or the check fails.
            with atomic_path(destination) as temporary:
                _fetch(url, temporary, raw_file.name)
                verify(raw_file, temporary)
        except (OSError, http.client.HTTPException, ValueError) as error:
            # URLError and socket timeouts are OSErrors, ChecksumMismatchError and an
            # unsupported URL scheme are ValueErrors.
            logger.warning("download of %s from %s failed: %s", raw_file.name, url, error)
            errors.append(f"{url}: {error}")
            continue
        logger.info("downloaded and verified %s", destination)
        return destination, errors
    return None, errors


def _fetch(url, path, label):
    """Stream the body at ``url`` into ``path`` with a progress bar."""
    with _open_url(url, DOWNLOAD_TIMEOUT) as response, open(path, "wb") as output:
        length = response.headers.get("Content-Length") if response.headers else None
        total = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                  disable=None) as bar:
            for block in iter(lambda: response.read(BLOCK_SIZE), b""):
                output.write(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received != total:
        raise OSError(f"the transfer stopped after {received} of {total} bytes")


def _not_found_message(spec, missing, folders, download, failures):
    """Return the one-line message of :class:`RawFilesNotFoundError`."""
    names = ", ".join(raw_file.name for raw_file in missing)
    parts = [
        f"raw files of {spec.name} not found: {names}",
        f"Searched {', '.join(str(folder) for folder in folders)}",
    ]
    for raw_file in missing:
        if raw_file.urls:
            parts.append(f"Get {raw_file.name} from {' or '.join(raw_file.urls)}")
        elif spec.no_download_hint:
            parts.append(f"{raw_file.name} has no download URL: {spec.no_download_hint}")
    if not download:
        parts.append("Downloading was turned off")
    elif failures:
        reasons = "; ".join(
            " ".join(error.split()) for errors in failures.values() for error in errors
        )
        parts.append(f"Downloading failed ({reasons})")
    parts.append(
        f"Put the files in a folder DIR and run `dpm data prepare {spec.name} --from DIR`, "
        f"or add DIR to the {RAW_DATA_VARIABLE} environment variable"
    )
    return ". ".join(parts)
