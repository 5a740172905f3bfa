"""Tests of ``dpm data prepare``, ``dpm data list`` and the data set registry."""

import inspect
import json
import os
import urllib.error

import numpy as np
import pytest

from dpm import cli
from dpm.data import raw, registry
from dpm.data.hdf5 import H5Dataset, read_attrs


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Fail every download as on a machine without network, and isolate the data folders."""

    def offline_open(url, timeout):
        raise urllib.error.URLError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(raw, "_open_url", offline_open)
    monkeypatch.setenv("DPM_DATA", str(tmp_path / "data_home"))


def error_line(capsys):
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("dpm: error: ")
    return error


def test_prepare_cifar10_offline_names_fix(tmp_path, monkeypatch, capsys):
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("DPM_RAW_DATA", str(shared))

    assert cli.main(["data", "prepare", "cifar10"]) == 1

    error = error_line(capsys)
    assert "cifar-10-python.tar.gz" in error
    assert str(shared) in error
    assert str(tmp_path / "data_home" / "raw" / "cifar10") in error
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in error
    assert "Network is unreachable" in error
    assert "dpm data prepare cifar10 --from DIR" in error
    assert not (tmp_path / "data_home" / "cifar10.hdf5").exists()
    assert os.listdir(tmp_path / "data_home" / "raw" / "cifar10") == []


def test_prepare_from_missing_folder(tmp_path, capsys):
    assert cli.main(["data", "prepare", "mnist", "--from", str(tmp_path / "absent")]) == 1

    assert str(tmp_path / "absent") in error_line(capsys)


def test_prepare_mnist_wrong_files(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DPM_RAW_DATA", raising=False)
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not MNIST")

    assert cli.main(["data", "prepare", "mnist", "--from", str(folder)]) == 1

    error = error_line(capsys)
    assert "train-images-idx3-ubyte.gz has the wrong checksum" in error
    assert not (tmp_path / "data_home" / "mnist.hdf5").exists()


def test_prepare_subset_without_file(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DPM_RAW_DATA", raising=False)

    assert cli.main(["data", "prepare", "cifar10_subset"]) == 1

    error = error_line(capsys)
    assert "cifar10_subset_4000.npz" in error
    assert "not published for download" in error


def test_generated_set_rejects_from(tmp_path, capsys):
    assert cli.main(["data", "prepare", "heartbeat", "--from", str(tmp_path)]) == 1

    assert "heartbeat is generated" in error_line(capsys)
    assert not (tmp_path / "data_home" / "heartbeat.hdf5").exists()


def test_prepare_heartbeat_then_list(tmp_path, capsys):
    assert cli.main(["data", "prepare", "heartbeat"]) == 0
    path = tmp_path / "data_home" / "heartbeat.hdf5"
    assert capsys.readouterr().out.strip() == str(path)

    assert cli.main(["data", "list"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == registry.names()
    listed = {line.split()[0]: line for line in lines}
    assert listed["heartbeat"].split()[1:3] == ["prepared", str(path)]
    size_mib = path.stat().st_size / 1024**2
    assert listed["heartbeat"].endswith(f"{size_mib:.1f} MiB")
    assert listed["mnist"].split()[1:4] == ["not", "prepared", str(tmp_path / "data_home" / "mnist.hdf5")]


def test_prepare_twice_keeps_file(tmp_path, capsys):
    assert cli.main(["data", "prepare", "heartbeat"]) == 0
    path = tmp_path / "data_home" / "heartbeat.hdf5"
    before = path.read_bytes()
    capsys.readouterr()

    assert cli.main(["data", "prepare", "heartbeat"]) == 0

    captured = capsys.readouterr()
    assert captured.out.strip() == str(path)
    assert "already prepared; pass --force to rebuild it" in captured.err
    assert path.read_bytes() == before


def test_unavailable_module_one_line(monkeypatch, capsys):
    future = registry.DataSetEntry("future_set", "dpm.data.no_such_module", True, "not written yet")
    monkeypatch.setitem(registry.DATASETS, "future_set", future)

    assert cli.main(["data", "prepare", "future_set"]) == 1

    error = error_line(capsys)
    assert "'future_set'" in error
    assert "dpm.data.no_such_module" in error

    assert cli.main(["data", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()[-1]
    assert listed.split()[:2] == ["future_set", "unavailable"]


def test_registry_modules_follow_contract():
    for name in registry.names():
        try:
            module = registry.load_module(name)
        except registry.DataSetUnavailableError:
            continue
        parameters = inspect.signature(module.prepare).parameters
        assert "path" in parameters, name
        assert "overwrite" in parameters, name
        if registry.entry(name).takes_from_dir:
            assert "from_dir" in parameters, name
        assert module.default_path().name == f"{name}.hdf5", name


def test_registry_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
        registry.prepare("imagenet")


def test_prepare_subset_real_file(tmp_path, capsys):
    folders = [entry for entry in os.environ.get("DPM_RAW_DATA", "").split(os.pathsep) if entry]
    if not any(os.path.isfile(os.path.join(entry, "cifar10_subset_4000.npz")) for entry in folders):
        pytest.skip("no folder of DPM_RAW_DATA contains cifar10_subset_4000.npz")

    assert cli.main(["data", "prepare", "cifar10_subset"]) == 0

    path = tmp_path / "data_home" / "cifar10_subset.hdf5"
    assert capsys.readouterr().out.strip() == str(path)
    with H5Dataset(path, "test") as test:
        assert test.num_examples == 500
        assert test.get_data([0])[0].dtype == np.uint8


def test_info_by_name_reads_prepared_file(capsys):
    assert cli.main(["data", "info", "swiss_roll"]) == 1
    error = error_line(capsys)
    assert "data set swiss_roll is not prepared" in error
    assert str(registry.default_path("swiss_roll")) in error
    assert "run `dpm data prepare swiss_roll`" in error

    assert cli.main(["data", "prepare", "swiss_roll"]) == 0
    capsys.readouterr()
    assert cli.main(["data", "info", "swiss_roll"]) == 0
    described = json.loads(capsys.readouterr().out)
    path = registry.default_path("swiss_roll")
    assert {split["split"] for split in described["splits"]} == {"train", "test"}
    assert described["attributes"] == json.loads(json.dumps(read_attrs(path), default=str))


def test_info_prefers_existing_file_to_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "swiss_roll").write_bytes(b"not HDF5")
    assert cli.main(["data", "info", "swiss_roll"]) == 1
    error = error_line(capsys)
    # The damaged file in the working folder is read, not the data set's prepared file.
    assert "swiss_roll is not a valid HDF5 file" in error
    assert "is not prepared" not in error
