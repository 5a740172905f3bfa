"""Run folders: numbering, no reuse of a run's folder, config.json and left-over temporary files."""

import json
import sys
from pathlib import Path

import pytest

from dpm.training.run_dir import (
    checkpoint_file,
    create_run_dir,
    read_config,
    remove_stale_temporaries,
    write_config,
)

REPOSITORY = Path(__file__).resolve().parent.parent


def test_numbers_start_at_one(tmp_path):
    first = create_run_dir("swiss_roll", root=tmp_path)
    second = create_run_dir("swiss_roll", root=tmp_path)

    assert first == tmp_path / "swiss_roll" / "001"
    assert second == tmp_path / "swiss_roll" / "002"
    assert first.is_dir()
    assert second.is_dir()


def test_numbers_follow_highest(tmp_path):
    (tmp_path / "run" / "004").mkdir(parents=True)
    (tmp_path / "run" / "004" / "checkpoint.npz").write_bytes(b"earlier run")
    (tmp_path / "run" / "notes").mkdir()

    created = create_run_dir("run", root=tmp_path)

    assert created.name == "005"
    assert (tmp_path / "run" / "004" / "checkpoint.npz").read_bytes() == b"earlier run"


def test_taken_number_skipped(tmp_path, monkeypatch):
    # Another process creates 001 between the listing and the mkdir.
    parent = tmp_path / "run"
    real_mkdir = Path.mkdir

    def mkdir_after_other_process(self, *args, **kwargs):
        if self == parent / "001" and not self.exists():
            real_mkdir(self)
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir_after_other_process)
    created = create_run_dir("run", root=tmp_path)

    assert created.name == "002"


def test_requested_new_folder(tmp_path):
    requested = tmp_path / "a" / "b"

    assert create_run_dir("ignored", root=tmp_path, requested=requested) == requested
    assert requested.is_dir()
    assert not (tmp_path / "ignored").exists()


def test_requested_empty_folder_accepted(tmp_path):
    requested = tmp_path / "run"
    requested.mkdir()

    assert create_run_dir("x", root=tmp_path, requested=requested) == requested


@pytest.mark.parametrize("content", ["file_inside", "is_a_file"])
def test_requested_existing_rejected(tmp_path, content):
    requested = tmp_path / "run"
    if content == "file_inside":
        requested.mkdir()
        (requested / "checkpoint.npz").write_bytes(b"earlier run")
    else:
        requested.write_text("not a folder")

    with pytest.raises(FileExistsError) as excinfo:
        create_run_dir("x", root=tmp_path, requested=requested)

    message = str(excinfo.value)
    assert str(requested) in message
    assert "already exists and is not empty" in message
    assert "choose a new run directory" in message


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", None])
def test_invalid_name_rejected(tmp_path, name):
    with pytest.raises(ValueError, match="run name must be a folder name"):
        create_run_dir(name, root=tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_config_round_trip(tmp_path):
    config = {
        "model": {"trajectory_length": 40, "n_hidden": 16, "schedule": "learned"},
        "training": {"learning_rate": 1e-2, "final_learning_rate": 1e-4, "seed": 1,
                     "quick": False, "layers": [50, 50]},
        "data": {"path": tmp_path / "data.hdf5", "note": "unicode µ"},
    }

    path = write_config(tmp_path, config)
    restored = read_config(tmp_path)

    assert path == tmp_path / "config.json"
    assert restored["model"] == config["model"]
    assert restored["training"] == config["training"]
    assert restored["data"] == {"path": str(tmp_path / "data.hdf5"), "note": "unicode µ"}
    assert json.loads(path.read_text()) == restored
    assert [entry.name for entry in tmp_path.iterdir()] == ["config.json"]


def test_config_not_overwritten(tmp_path):
    write_config(tmp_path, {"seed": 1})

    with pytest.raises(FileExistsError, match="config.json already exists"):
        write_config(tmp_path, {"seed": 2})

    assert read_config(tmp_path) == {"seed": 1}


def test_config_unserializable_rejected(tmp_path):
    with pytest.raises(TypeError, match="set"):
        write_config(tmp_path, {"keys": {1, 2}})

    assert list(tmp_path.iterdir()) == []


def test_read_config_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        read_config(tmp_path)


def test_checkpoint_file_of_folder_and_file(tmp_path):
    assert checkpoint_file(tmp_path) == tmp_path / "checkpoint.npz"
    assert checkpoint_file(tmp_path / "other.npz") == tmp_path / "other.npz"


def test_stale_temporaries_removed(tmp_path):
    (tmp_path / ".checkpoint.npz.a1b2c3.tmp").write_bytes(b"PK truncated")
    (tmp_path / ".monitors.png.x.tmp").write_bytes(b"")
    (tmp_path / "checkpoint.npz").write_bytes(b"kept")
    (tmp_path / "notes.tmp").write_text("kept: not a temporary name")

    removed = remove_stale_temporaries(tmp_path)

    assert removed == [".checkpoint.npz.a1b2c3.tmp", ".monitors.png.x.tmp"]
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["checkpoint.npz", "notes.tmp"]


def test_reproduce_scripts_use_package(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPOSITORY / "reproduce"))
    sys.modules.pop("common", None)
    import common

    monkeypatch.setattr(common, "RUNS", tmp_path)
    first = common.new_run_dir("figure")
    second = common.new_run_dir("figure")

    assert (first, second) == (tmp_path / "figure" / "001", tmp_path / "figure" / "002")
    sys.modules.pop("common", None)
