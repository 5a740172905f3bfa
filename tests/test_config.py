"""Tests of dpm.config.load_config on TOML files written by each test."""

import copy

import pytest

from dpm.config import ConfigError, load_config

DEFAULTS = {
    "model": {"n_hidden": 16, "schedule": "learned", "beta_1": 1e-3, "learn_schedule": True},
    "training": {"learning_rate": 0.01, "n_epochs": 300},
}


def write(tmp_path, text):
    path = tmp_path / "experiment.toml"
    path.write_text(text)
    return path


def test_empty_file_gives_defaults(tmp_path):
    config = load_config(write(tmp_path, ""), DEFAULTS)

    assert config == DEFAULTS


def test_values_override_defaults(tmp_path):
    path = write(tmp_path, '[model]\nn_hidden = 8\nschedule = "reference"\n')

    config = load_config(path, DEFAULTS)

    assert config["model"]["n_hidden"] == 8
    assert config["model"]["schedule"] == "reference"
    assert config["model"]["beta_1"] == 1e-3
    assert config["training"] == DEFAULTS["training"]


def test_defaults_not_modified(tmp_path):
    before = copy.deepcopy(DEFAULTS)
    path = write(tmp_path, "[model]\nn_hidden = 8\n[quick]\ntraining = { n_epochs = 2 }\n")

    load_config(path, DEFAULTS, quick=True)

    assert DEFAULTS == before


def test_unknown_section(tmp_path):
    path = write(tmp_path, "[optimizer]\nname = 1\n")

    with pytest.raises(ConfigError) as excinfo:
        load_config(path, DEFAULTS)

    message = str(excinfo.value)
    assert "[optimizer]" in message
    assert "['model', 'training']" in message
    assert str(path) in message


def test_unknown_key(tmp_path):
    path = write(tmp_path, "[model]\nn_hiden = 8\n")

    with pytest.raises(ConfigError) as excinfo:
        load_config(path, DEFAULTS)

    message = str(excinfo.value)
    assert "'n_hiden'" in message
    assert "[model]" in message
    assert "['beta_1', 'learn_schedule', 'n_hidden', 'schedule']" in message


@pytest.mark.parametrize(
    ("line", "value_text", "expected"),
    [
        ('n_hidden = "16"', "'16'", "int"),
        ("n_hidden = 16.0", "16.0", "int"),
        ("n_hidden = true", "True", "int"),
        ("beta_1 = true", "True", "float"),
        ('beta_1 = "0.1"', "'0.1'", "float"),
        ("learn_schedule = 1", "1", "bool"),
        ("schedule = 3", "3", "str"),
    ],
)
def test_wrong_type(tmp_path, line, value_text, expected):
    path = write(tmp_path, f"[model]\n{line}\n")

    with pytest.raises(ConfigError) as excinfo:
        load_config(path, DEFAULTS)

    message = str(excinfo.value)
    key = line.split(" =")[0]
    assert f"[model] {key} = {value_text}" in message
    assert f"expected {expected}" in message


def test_int_accepted_for_float(tmp_path):
    path = write(tmp_path, "[training]\nlearning_rate = 1\n")

    value = load_config(path, DEFAULTS)["training"]["learning_rate"]

    assert value == 1.0
    assert type(value) is float


def test_section_not_table(tmp_path):
    path = write(tmp_path, "model = 3\n")

    with pytest.raises(ConfigError, match=r"\[model\] must be a table"):
        load_config(path, DEFAULTS)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.toml"

    with pytest.raises(FileNotFoundError, match="absent.toml"):
        load_config(path, DEFAULTS)


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[model\nn_hidden = 8\n")

    with pytest.raises(ConfigError) as excinfo:
        load_config(path, DEFAULTS)

    message = str(excinfo.value)
    assert str(path) in message
    assert "not valid TOML" in message


def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)


QUICK_TEXT = """
[training]
n_epochs = 100

[quick]
training = { n_epochs = 2 }
"""


def test_quick_ignored_by_default(tmp_path):
    config = load_config(write(tmp_path, QUICK_TEXT), DEFAULTS)

    assert config["training"]["n_epochs"] == 100
    assert "quick" not in config


def test_quick_applied_when_requested(tmp_path):
    config = load_config(write(tmp_path, QUICK_TEXT), DEFAULTS, quick=True)

    assert config["training"]["n_epochs"] == 2
    assert config["training"]["learning_rate"] == 0.01
    assert "quick" not in config


@pytest.mark.parametrize("quick", [False, True])
def test_quick_unknown_key_rejected(tmp_path, quick):
    path = write(tmp_path, "[quick]\ntraining = { n_epoch = 2 }\n")

    with pytest.raises(ConfigError) as excinfo:
        load_config(path, DEFAULTS, quick=quick)

    message = str(excinfo.value)
    assert "[quick]" in message
    assert "'n_epoch'" in message
    assert "['learning_rate', 'n_epochs']" in message


@pytest.mark.parametrize("quick", [False, True])
def test_quick_wrong_type_rejected(tmp_path, quick):
    path = write(tmp_path, '[quick]\ntraining = { n_epochs = "2" }\n')

    with pytest.raises(ConfigError, match=r"\[training\] n_epochs = '2' has the wrong type"):
        load_config(path, DEFAULTS, quick=quick)


@pytest.mark.parametrize("quick", [False, True])
def test_quick_unknown_section_rejected(tmp_path, quick):
    path = write(tmp_path, "[quick]\ndata = { n_train = 2 }\n")

    with pytest.raises(ConfigError, match=r"unknown section \[data\]"):
        load_config(path, DEFAULTS, quick=quick)


@pytest.mark.parametrize("quick", [False, True])
def test_quick_not_table(tmp_path, quick):
    path = write(tmp_path, "quick = 1\n")

    with pytest.raises(ConfigError, match=r"\[quick\] must be a table"):
        load_config(path, DEFAULTS, quick=quick)
