"""Tests of finding, verifying and downloading raw files in dpm.data.raw.

Downloads use file:// URLs and an HTTP server on 127.0.0.1 that the tests start. The
autouse fixture makes any other URL fail, so no test reaches the network.
"""

import functools
import gzip
import hashlib
import http.server
import os
import socket
import threading
import urllib.error
import urllib.parse

import pytest

from dpm.data import raw
from dpm.data.raw import (
    Checksum,
    ChecksumMismatchError,
    RawDataSpec,
    RawFile,
    RawFilesNotFoundError,
    find_or_download,
    raw_search_path,
    verify,
)

CONTENT = bytes(range(256)) * 300


@pytest.fixture(autouse=True)
def local_urls_only(monkeypatch):
    """Let downloads open file:// URLs and 127.0.0.1 only."""
    real_open = raw._open_url

    def guarded_open(url, timeout):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "file" and parts.hostname != "127.0.0.1":
            raise urllib.error.URLError(f"tests open no network URL ({url})")
        return real_open(url, timeout)

    monkeypatch.setattr(raw, "_open_url", guarded_open)


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """Point DPM_DATA at an empty folder and clear DPM_RAW_DATA."""
    home = tmp_path / "data_home"
    monkeypatch.setenv("DPM_DATA", str(home))
    monkeypatch.delenv("DPM_RAW_DATA", raising=False)
    return home


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def closed_port_url(name):
    """Return an http URL on 127.0.0.1 at a port that was just free, so connecting fails."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def spec_for(name, urls=(), content=CONTENT, dataset="toy"):
    return RawDataSpec(dataset, (RawFile(name, (Checksum("sha256", sha256(content)),), urls),))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_folder(tmp_path):
    """Serve a new folder over HTTP on 127.0.0.1; yield ``(folder, base_url)``."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_search_path_order(tmp_path, data_home, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("DPM_RAW_DATA", f"{first}{os.pathsep}{os.pathsep}{second}")

    folders = raw_search_path("mnist", tmp_path / "from")

    assert folders == [tmp_path / "from", first, second, data_home / "raw" / "mnist"]


def test_search_path_without_options(data_home):
    assert raw_search_path("cifar10") == [data_home / "raw" / "cifar10"]


def test_search_path_drops_repeats(tmp_path, data_home, monkeypatch):
    monkeypatch.setenv("DPM_RAW_DATA", str(tmp_path))

    assert raw_search_path("toy", tmp_path) == [tmp_path, data_home / "raw" / "toy"]


def test_find_in_from_dir(tmp_path, data_home):
    (tmp_path / "toy.bin").write_bytes(CONTENT)

    found = find_or_download(spec_for("toy.bin"), tmp_path)

    assert found == {"toy.bin": tmp_path / "toy.bin"}


def test_find_in_raw_data_variable(tmp_path, data_home, monkeypatch):
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "toy.bin").write_bytes(CONTENT)
    monkeypatch.setenv("DPM_RAW_DATA", f"{tmp_path / 'empty'}{os.pathsep}{folder}")

    assert find_or_download(spec_for("toy.bin")) == {"toy.bin": folder / "toy.bin"}


def test_content_checksum_accepts_any_gzip(tmp_path):
    raw_file = RawFile("toy.gz", (Checksum("sha256", sha256(CONTENT), of_content=True),))
    for level in (1, 9):
        path = tmp_path / f"level{level}" / "toy.gz"
        path.parent.mkdir()
        path.write_bytes(gzip.compress(CONTENT, compresslevel=level, mtime=level))

        verify(raw_file, path)


def test_file_md5_accepted(tmp_path):
    path = tmp_path / "toy.bin"
    path.write_bytes(CONTENT)
    raw_file = RawFile("toy.bin", (Checksum("md5", hashlib.md5(CONTENT).hexdigest()),))

    verify(raw_file, path)


def test_any_listed_checksum_is_enough(tmp_path):
    path = tmp_path / "toy.gz"
    path.write_bytes(gzip.compress(CONTENT))
    raw_file = RawFile(
        "toy.gz",
        (Checksum("md5", "0" * 32), Checksum("sha256", sha256(CONTENT), of_content=True)),
    )

    verify(raw_file, path)


def test_wrong_checksum_names_file_and_digests(tmp_path, data_home):
    path = tmp_path / "toy.bin"
    path.write_bytes(b"not the published file")

    with pytest.raises(ChecksumMismatchError) as caught:
        find_or_download(spec_for("toy.bin", urls=("file:///nowhere/toy.bin",)), tmp_path)

    message = str(caught.value)
    assert str(path) in message
    assert sha256(CONTENT) in message
    assert sha256(b"not the published file") in message
    assert "replace it" in message
    assert "file:///nowhere/toy.bin" in message


def test_truncated_gzip_fails_content_checksum(tmp_path):
    path = tmp_path / "toy.gz"
    path.write_bytes(gzip.compress(CONTENT)[:-20])
    raw_file = RawFile("toy.gz", (Checksum("sha256", sha256(CONTENT), of_content=True),))

    with pytest.raises(ChecksumMismatchError, match="not a complete gzip file"):
        verify(raw_file, path)


def test_download_from_file_url(tmp_path, data_home):
    source = tmp_path / "published" / "toy.bin"
    source.parent.mkdir()
    source.write_bytes(CONTENT)

    found = find_or_download(spec_for("toy.bin", urls=(source.as_uri(),)))

    destination = data_home / "raw" / "toy" / "toy.bin"
    assert found == {"toy.bin": destination}
    assert destination.read_bytes() == CONTENT
    assert sorted(os.listdir(destination.parent)) == ["toy.bin"]


def test_download_from_local_http_server(http_folder, data_home):
    folder, base_url = http_folder
    (folder / "toy.bin").write_bytes(CONTENT)

    found = find_or_download(spec_for("toy.bin", urls=(f"{base_url}/toy.bin",)))

    assert found["toy.bin"].read_bytes() == CONTENT
    assert sorted(os.listdir(found["toy.bin"].parent)) == ["toy.bin"]


def test_download_falls_back_to_next_url(http_folder, data_home):
    folder, base_url = http_folder
    (folder / "toy.bin").write_bytes(CONTENT)
    urls = (closed_port_url("toy.bin"), f"{base_url}/missing.bin", f"{base_url}/toy.bin")

    found = find_or_download(spec_for("toy.bin", urls=urls))

    assert found["toy.bin"].read_bytes() == CONTENT


def test_offline_error_lists_exactly_missing_files(tmp_path, data_home, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("DPM_RAW_DATA", str(shared))
    from_folder = tmp_path / "from"
    from_folder.mkdir()
    (from_folder / "present.bin").write_bytes(b"present")
    url = closed_port_url("absent.bin")
    spec = RawDataSpec(
        "toy",
        (
            RawFile("present.bin", (Checksum("sha256", sha256(b"present")),)),
            RawFile("absent.bin", (Checksum("sha256", sha256(CONTENT)),), (url,)),
        ),
    )

    with pytest.raises(RawFilesNotFoundError) as caught:
        find_or_download(spec, from_folder)

    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert "not found: absent.bin." in message
    assert "present.bin" not in message
    for folder in (from_folder, shared, data_home / "raw" / "toy"):
        assert str(folder) in message
    assert url in message
    assert "dpm data prepare toy --from DIR" in message
    assert "DPM_RAW_DATA" in message
    assert "\n" not in message
    download_folder = data_home / "raw" / "toy"
    assert not download_folder.exists() or os.listdir(download_folder) == []


def test_downloaded_file_with_wrong_checksum_is_removed(tmp_path, data_home):
    source = tmp_path / "toy.bin"
    source.write_bytes(b"another version")

    with pytest.raises(RawFilesNotFoundError, match="wrong checksum"):
        find_or_download(spec_for("toy.bin", urls=(source.as_uri(),)))

    assert os.listdir(data_home / "raw" / "toy") == []


def test_download_false_fetches_nothing(tmp_path, data_home):
    source = tmp_path / "toy.bin"
    source.write_bytes(CONTENT)

    with pytest.raises(RawFilesNotFoundError, match="Downloading was turned off"):
        find_or_download(spec_for("toy.bin", urls=(source.as_uri(),)), download=False)

    assert not (data_home / "raw" / "toy").exists()


def test_offline_variable_fetches_nothing(tmp_path, data_home, monkeypatch):
    source = tmp_path / "toy.bin"
    source.write_bytes(CONTENT)
    monkeypatch.setenv("DPM_OFFLINE", "1")

    with pytest.raises(RawFilesNotFoundError, match="Downloading was turned off"):
        find_or_download(spec_for("toy.bin", urls=(source.as_uri(),)))

    assert not (data_home / "raw" / "toy").exists()


def test_file_without_url_shows_hint(data_home):
    spec = RawDataSpec(
        "toy",
        (RawFile("toy.bin", (Checksum("sha256", sha256(CONTENT)),)),),
        no_download_hint="ask the data's owner for a copy",
    )

    with pytest.raises(RawFilesNotFoundError, match="no download URL: ask the data's owner"):
        find_or_download(spec)


def test_missing_from_dir_is_rejected(tmp_path, data_home):
    with pytest.raises(NotADirectoryError, match="absent"):
        find_or_download(spec_for("toy.bin"), tmp_path / "absent")


def test_checksum_rejects_unknown_algorithm():
    with pytest.raises(ValueError, match="sha1"):
        Checksum("sha1", "0" * 40)
