"""Choose and configure the PyTensor mode (C, Numba or JAX) and the float type.

The mode is always set explicitly: PyTensor 3's own default linker is Numba, which
compiles on a function's first call, so a script would pause there without saying why.
C compiles when the function is built and is the fastest to compile with a warm cache
(docs/benchmarks.md).
"""

import logging
import os
import warnings

import pytensor

logger = logging.getLogger(__name__)

#: Backend names accepted by ``--backend`` and ``DPM_BACKEND``, and the PyTensor mode each selects.
MODES = {"c": "CVM", "numba": "NUMBA", "jax": "JAX"}

#: Chosen from compile and step times measured on a 2-core CPU machine (docs/benchmarks.md).
DEFAULT_BACKEND = "c"
DEFAULT_FLOATX = "float32"

_state = {"backend": None, "blas_reported": False}


def resolve_backend(name=None):
    """Return a valid backend name from ``name``, else ``DPM_BACKEND``, else the default."""
    chosen = name or os.environ.get("DPM_BACKEND") or DEFAULT_BACKEND
    chosen = chosen.lower()
    if chosen not in MODES:
        raise ValueError(
            f"unknown backend {chosen!r}; choose one of {sorted(MODES)} "
            "(with --backend or the DPM_BACKEND environment variable)"
        )
    return chosen


def configure(backend=None, floatX=None):
    """Set the PyTensor float type and select the backend for later compiles.

    Parameters
    ----------
    backend : {'c', 'numba', 'jax'}, optional
        Defaults to ``DPM_BACKEND`` or :data:`DEFAULT_BACKEND`.
    floatX : {'float32', 'float64'}, optional
        Defaults to ``DPM_FLOATX`` or float32 (the reference code ran in float32 on GPUs).

    Returns
    -------
    str
        The backend name in effect.
    """
    backend = resolve_backend(backend)
    floatX = floatX or os.environ.get("DPM_FLOATX") or DEFAULT_FLOATX
    if floatX not in ("float32", "float64"):
        raise ValueError(f"unknown floatX {floatX!r}; choose 'float32' or 'float64'")
    if backend == "jax":
        _require_jax()
    pytensor.config.floatX = floatX
    _state["backend"] = backend
    if backend == "c":
        report_missing_blas()
    return backend


def current_backend():
    """Return the configured backend, configuring the default one on first use."""
    if _state["backend"] is None:
        configure()
    return _state["backend"]


def mode():
    """Return the PyTensor mode name of the configured backend, for ``pytensor.function``."""
    return MODES[current_backend()]


def compile_function(inputs, outputs, **kwargs):
    """Compile ``pytensor.function(inputs, outputs)`` with the configured backend's mode."""
    return pytensor.function(inputs, outputs, mode=mode(), **kwargs)


def blas_ldflags():
    """Return the linker flags PyTensor found for BLAS; empty when it found none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytensor.config.blas__ldflags


def report_missing_blas():
    """Log once per process, at INFO level, that the C backend runs without BLAS, with the fix.

    INFO, because the programs still run correctly, only slower. ``dpm`` shows INFO messages.
    """
    if _state["blas_reported"] or blas_ldflags():
        return
    _state["blas_reported"] = True
    logger.info(
        "PyTensor's C backend found no BLAS library, so matrix products use its slower "
        "built-in code. This slows the models with matrix products, which are all but the "
        "swiss roll network. To link OpenBLAS on Debian or Ubuntu: `apt-get install "
        "libopenblas-dev`, then set PYTENSOR_FLAGS=blas__ldflags=-lopenblas."
    )


def _require_jax():
    try:
        import jax  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "backend 'jax' needs JAX: install it with `pip install -e '.[jax]'`"
        ) from error
