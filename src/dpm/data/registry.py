"""The table of data sets that ``dpm data prepare`` accepts, and the calls that prepare them.

Every module in the table provides ``default_path() -> pathlib.Path`` and
``prepare(path=None, overwrite=False, ...) -> pathlib.Path``. The registry passes
``from_dir``, the folder searched first for raw files, only to the entries with
``takes_from_dir=True``, the data sets converted from raw files. The generated data sets
draw their data: swiss_roll and heartbeat take no ``from_dir``, and dead_leaves ignores it.
Modules are imported only when a data set is used, so the table works while a module is
still missing.
"""

import dataclasses
import importlib


class DataSetUnavailableError(LookupError):
    """Error raised when the module of a registered data set cannot be imported."""


@dataclasses.dataclass(frozen=True)
class DataSetEntry:
    """One data set of the registry.

    Attributes
    ----------
    name : str
        Name in ``dpm data prepare NAME``.
    module : str
        Dotted name of the module with ``default_path`` and ``prepare``.
    takes_from_dir : bool
        True for data sets converted from raw files, whose ``prepare`` takes ``from_dir``.
    summary : str
        One line for ``dpm data list``.
    """

    name: str
    module: str
    takes_from_dir: bool
    summary: str


DATASETS = {
    entry.name: entry
    for entry in (
        DataSetEntry("swiss_roll", "dpm.data.swiss_roll", False, "2-D swiss roll (generated)"),
        DataSetEntry("heartbeat", "dpm.data.heartbeat", False,
                     "binary heartbeat sequences (generated)"),
        DataSetEntry("mnist", "dpm.data.mnist", True, "MNIST handwritten digits (raw files)"),
        DataSetEntry("cifar10", "dpm.data.cifar10", True, "CIFAR-10 (raw tarball)"),
        DataSetEntry("cifar10_subset", "dpm.data.cifar10_subset", True,
                     "4000-image CIFAR-10 sample (raw .npz file)"),
        DataSetEntry("dead_leaves", "dpm.data.dead_leaves", False,
                     "dead leaves images (generated)"),
        DataSetEntry("bark", "dpm.data.bark", True,
                     "UIUC bark textures T01-T04 (raw JPEG folder)"),
    )
}


def names():
    """Return the registered data set names, in table order."""
    return list(DATASETS)


def entry(name):
    """Return the :class:`DataSetEntry` of ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the registered names.
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}"
        ) from None


def load_module(name):
    """Import and return the module of data set ``name``.

    Raises
    ------
    DataSetUnavailableError
        If the module itself does not exist. An import error inside an existing module,
        for example a missing dependency, propagates unchanged.
    """
    module_name = entry(name).module
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise DataSetUnavailableError(
            f"data set {name!r} is registered but its module {module_name} is not "
            "installed in this version of dpm; update dpm or choose another data set"
        ) from None


def default_path(name):
    """Return the default file of data set ``name``, from its module."""
    return load_module(name).default_path()


def prepare(name, path=None, overwrite=False, from_dir=None):
    """Prepare data set ``name`` through its module's ``prepare``.

    Parameters
    ----------
    name : str
        A registered name.
    path : str or os.PathLike, optional
        Destination; defaults to the module's ``default_path()``.
    overwrite : bool, default False
        Replace an existing file.
    from_dir : str or os.PathLike, optional
        Folder of raw files, passed only to raw-file data sets.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If ``from_dir`` is given for a generated data set.
    DataSetUnavailableError
        If the module does not exist.
    """
    dataset = entry(name)
    if from_dir is not None and not dataset.takes_from_dir:
        raise ValueError(
            f"{name} is generated and reads no raw files, so it takes no folder of raw "
            f"files (--from {from_dir}); run `dpm data prepare {name}` without --from"
        )
    module = load_module(name)
    if dataset.takes_from_dir:
        return module.prepare(path=path, overwrite=overwrite, from_dir=from_dir)
    return module.prepare(path=path, overwrite=overwrite)
