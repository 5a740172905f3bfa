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


@pytest.fixture(scope="module")
def float64_mode():
    """Build and compile a module's graphs on the C backend in float64, then restore the settings.

    A module uses it for all its tests with ``pytestmark = pytest.mark.usefixtures("float64_mode")``.
    """
    import pytensor

    from dpm import backend

    previous_backend = backend.current_backend()
    previous_floatx = pytensor.config.floatX
    backend.configure("c", "float64")
    yield
    backend.configure(previous_backend, previous_floatx)
