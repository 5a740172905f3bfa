"""Data sets stored as HDF5 files with named splits, and the folder that contains them.

Each data set has its own module (for example :mod:`dpm.data.swiss_roll`) that
samples or converts the data and writes it with :func:`write_dataset`.
"""

from dpm.data.hdf5 import (
    DataFileError,
    H5Dataset,
    read_attrs,
    split_names,
    split_table,
    write_dataset,
)
from dpm.data.paths import data_dir

__all__ = [
    "DataFileError",
    "H5Dataset",
    "data_dir",
    "read_attrs",
    "split_names",
    "split_table",
    "write_dataset",
]
