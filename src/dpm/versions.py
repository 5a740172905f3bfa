"""Installed versions of the packages a result depends on, for provenance records."""

import importlib.metadata

#: Packages recorded with every result.
PACKAGES = ("dpm", "pytensor", "numpy", "scipy", "h5py", "matplotlib", "tqdm", "numba", "jax")


def package_versions(names=PACKAGES):
    """Return ``{name: version}`` for ``names``, with None for a package that is not installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
