"""Reading and validating experiment configurations (TOML files in ``original_configs/``).

A configuration is a table of sections. Every key must appear in the experiment's defaults,
whose value also fixes its type; a ``[quick]`` section overrides keys of the other sections
for a short smoke run.
"""

import copy
import tomllib
from pathlib import Path


class ConfigError(ValueError):
    """An invalid configuration file or key."""


def load_config(path, defaults, quick=False):
    """Read ``path``, check it against ``defaults`` and return the merged configuration.

    Parameters
    ----------
    path : path-like
        A TOML file with sections named as in ``defaults`` and optionally ``[quick]``, whose
        subsections override the others when ``quick`` is true.
    defaults : dict of dict
        Section -> key -> default value.
    quick : bool

    Returns
    -------
    dict of dict
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"configuration {path} not found; pass a file from original_configs/")
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from error
    overrides = raw.pop("quick", {})
    if not isinstance(overrides, dict):
        raise ConfigError(
            f"{path}: [quick] must be a table of sections such as "
            f"training = {{ n_epochs = 2 }}, got {overrides!r}"
        )
    config = merge(defaults, raw, str(path))
    if quick:
        config = merge(config, overrides, f"{path} [quick]")
    else:
        merge(config, overrides, f"{path} [quick]")  # validated even when unused
    return config


def merge(base, update, where):
    """Return a copy of ``base`` with ``update``'s values, rejecting unknown keys and wrong types."""
    merged = copy.deepcopy(base)
    for section, values in update.items():
        if section not in base:
            raise ConfigError(
                f"{where}: unknown section [{section}]; valid sections are {sorted(base)}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: [{section}] must be a table of keys")
        for key, value in values.items():
            if key not in base[section]:
                raise ConfigError(
                    f"{where}: unknown key {key!r} in [{section}]; valid keys are {sorted(base[section])}"
                )
            merged[section][key] = _check_type(value, base[section][key], f"{where}: [{section}] {key}")
    return merged


def _check_type(value, default, where):
    if isinstance(default, bool) or default is None:
        expected = (bool,) if isinstance(default, bool) else (object,)
    elif isinstance(default, float):
        expected = (int, float)
    else:
        expected = (type(default),)
    if not isinstance(value, expected) or (isinstance(value, bool) and not isinstance(default, bool)):
        raise ConfigError(f"{where} = {value!r} has the wrong type; expected {type(default).__name__}")
    return float(value) if isinstance(default, float) else value


def check_values(config, rules, where):
    """Check configuration values against ``rules`` before any work starts.

    Parameters
    ----------
    config : dict of dict
    rules : dict
        ``"section.key"`` -> ``(predicate, description)``; ``predicate(value)`` must be true.
    where : str
        The configuration file, named in the error.

    Raises
    ------
    ConfigError
        Naming the file, the key, the value and what is expected.
    """
    for name, (predicate, description) in rules.items():
        section, key = name.split(".")
        value = config[section][key]
        if not predicate(value):
            raise ConfigError(f"{where}: [{section}] {key} = {value!r} is invalid; expected {description}")


def positive(value):
    """Return whether ``value`` is a number greater than zero."""
    return value > 0


def one_of(*choices):
    """Return a predicate that accepts only ``choices``, and its description."""
    return (lambda value: value in choices), f"one of {list(choices)}"
