"""Register dpm's JAX and Numba implementations when PyTensor loads those backends.

PyTensor finds an Op's JAX or Numba implementation through the ``jax_funcify`` and
``numba_funcify`` dispatchers. Importing them imports JAX (about 1.7 s on a 2-core
machine) or Numba (about 0.4 s), so dpm does not import them itself. Instead
:func:`install` adds an import hook: right after PyTensor imports
``pytensor.link.jax.dispatch`` or ``pytensor.link.numba.dispatch``, which it does when
it first compiles a function for that backend, the hook registers dpm's
implementations. A dispatcher that is already imported gets them at once.
"""

import importlib.abc
import sys

#: Dispatcher module -> name of the dpm module whose ``register()`` adds the implementations.
DISPATCH_MODULES = {
    "pytensor.link.jax.dispatch": "dpm.ops.jax_implementations",
    "pytensor.link.numba.dispatch": "dpm.ops.numba_implementations",
}


def _register(dispatch_module):
    importlib.import_module(DISPATCH_MODULES[dispatch_module]).register()


class _RegisteringLoader(importlib.abc.Loader):
    """Loader that runs the wrapped loader, then registers dpm's implementations."""

    def __init__(self, loader, dispatch_module):
        self._loader = loader
        self._dispatch_module = dispatch_module

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _register(self._dispatch_module)

    def __getattr__(self, name):
        # Everything else (is_package, get_resource_reader, ...) comes from the real loader.
        return getattr(self._loader, name)


class _DispatchImportHook(importlib.abc.MetaPathFinder):
    """Meta path finder that wraps the loader of PyTensor's dispatcher modules."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in DISPATCH_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader, fullname)
        return spec


def install():
    """Register now for dispatchers already imported, and hook the import of the others. Idempotent."""
    if not any(isinstance(finder, _DispatchImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DispatchImportHook())
    for dispatch_module in DISPATCH_MODULES:
        if dispatch_module in sys.modules:
            _register(dispatch_module)
