"""Atomic writes: the file appears whole or not at all, with the usual permissions."""

import json
import os

import pytest

from dpm.atomic import atomic_path, write_json


def test_write_json_round_trip_and_mode(tmp_path):
    path = tmp_path / "sub" / "result.json"
    write_json(path, {"K": 1.5})
    assert json.loads(path.read_text()) == {"K": 1.5}
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "result.json"
    write_json(path, {"K": 1.0})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as temporary:
            temporary.write_text("{partial")
            raise RuntimeError("interrupted")
    assert json.loads(path.read_text()) == {"K": 1.0}
    assert [entry.name for entry in tmp_path.iterdir()] == ["result.json"]
