"""Shared test settings: a data directory per test session and the C backend."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory):
    """Keep generated data sets out of the user's data directory."""
    previous = os.environ.get("DPM_DATA")
    os.environ["DPM_DATA"] = str(tmp_path_factory.mktemp("dpm_data"))
    yield
    if previous is None:
        os.environ.pop("DPM_DATA", None)
    else:
        os.environ["DPM_DATA"] = previous


@pytest.fixture(scope="session", autouse=True)
def c_backend():
    from dpm import backend

    backend.configure("c", "float32")
