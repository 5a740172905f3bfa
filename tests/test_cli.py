"""The ``dpm`` command: info, data prepare and data info."""

import json
import logging

import pytest

from dpm import cli
from dpm.data import H5Dataset


def test_info_reports_backend_and_versions(capsys):
    assert cli.main(["info"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "c"
    assert report["mode"] == "CVM"
    assert report["versions"]["pytensor"]


def test_data_prepare_writes_swiss_roll(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DPM_DATA", str(tmp_path))
    assert cli.main(["data", "prepare", "swiss_roll"]) == 0
    path = tmp_path / "swiss_roll.hdf5"
    assert capsys.readouterr().out.strip() == str(path)
    assert H5Dataset(path, "train").num_examples == 100_000
    assert H5Dataset(path, "test").num_examples == 20_000

    assert cli.main(["data", "info", str(path)]) == 0
    described = json.loads(capsys.readouterr().out)
    assert {"split": "test", "source": "features", "rows": [100_000, 120_000]} in described["splits"]

    # A second prepare keeps the file; --force rebuilds it.
    assert cli.main(["data", "prepare", "swiss_roll"]) == 0
    assert "pass --force" in capsys.readouterr().err
    assert cli.main(["data", "prepare", "swiss_roll", "--force"]) == 0


def test_data_info_missing_file_fails_cleanly(tmp_path, capsys):
    assert cli.main(["data", "info", str(tmp_path / "absent.hdf5")]) == 1
    error = capsys.readouterr().err
    assert "absent.hdf5" in error
    assert "dpm data prepare" in error


def test_unknown_backend_is_rejected(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--backend", "cuda", "info"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("argv, option", [
    (["evaluate", "RUN", "--n-images", "0"], "--n-images"),
    (["evaluate", "RUN", "--t-per-image", "-1"], "--t-per-image"),
    (["sample", "RUN", "--n-images", "0"], "--n-images"),
    (["sample", "RUN", "--n-images", "two"], "--n-images"),
])
def test_count_options_must_be_positive(capsys, argv, option):
    # The parser rejects the value before any run folder is read.
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {option}: " in error
    assert f"{argv[-1]!r}" in error or f"got {argv[-1]}" in error


@pytest.mark.parametrize("command", ["train", "evaluate", "sample"])
def test_backend_accepted_after_model_command(tmp_path, capsys, command):
    # The run folder or configuration file is missing, so the command fails after parsing.
    missing = str(tmp_path / "missing")
    argv = [command, missing, "--backend", "c"]
    if command == "train":
        argv = ["train", str(tmp_path / "absent.toml"), "--backend", "c"]
    assert cli.main(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith("dpm: error: ")
    assert "unrecognized arguments" not in error


@pytest.mark.parametrize("argv, expected", [
    (["evaluate", "RUN", "--backend", "numba"], "numba"),
    (["--backend", "numba", "sample", "RUN"], "numba"),
    (["--backend", "numba", "sample", "RUN", "--backend", "c"], "c"),
    (["evaluate", "RUN"], None),
])
def test_backend_parsed_before_or_after_command(monkeypatch, argv, expected):
    chosen = []

    def record_backend(args):
        chosen.append(args.backend)
        return 0

    # Only the parsing is under test, so the command's function records the backend it gets.
    command = next(word for word in argv if word in cli.MODEL_COMMANDS)
    monkeypatch.setitem(cli.MODEL_COMMANDS, command, record_backend)
    assert cli.main(argv) == 0
    assert chosen == [expected]


def test_missing_blas_note_logged_once(monkeypatch, caplog):
    from dpm import backend

    # A fresh process state and no BLAS flags, as with a pip-installed PyTensor.
    monkeypatch.setitem(backend._state, "blas_reported", False)
    monkeypatch.setattr(backend, "blas_ldflags", lambda: "")
    with caplog.at_level(logging.INFO, logger="dpm.backend"):
        for _ in range(3):
            backend.report_missing_blas()
    records = [record for record in caplog.records if record.name == "dpm.backend"]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    message = records[0].getMessage()
    assert "found no BLAS library" in message
    assert "all but the swiss roll network" in message
    assert "runs the same either way" not in message
    assert "PYTENSOR_FLAGS=blas__ldflags=-lopenblas" in message
