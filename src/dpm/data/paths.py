"""Location of the folder that contains prepared data files."""

import os
from pathlib import Path

#: Environment variable that overrides the data folder.
DATA_DIR_VARIABLE = "DPM_DATA"


def data_dir():
    """Return the folder for prepared data files.

    The folder is ``$DPM_DATA`` when that variable is set and not empty, otherwise
    ``~/.local/share/dpm``. It is not created here: functions that write a file
    create the folder first.

    Returns
    -------
    pathlib.Path
        The data folder, with ``~`` expanded.
    """
    configured = os.environ.get(DATA_DIR_VARIABLE, "")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".local" / "share" / "dpm"
