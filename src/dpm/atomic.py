"""Writing files atomically: to a temporary name in the same folder, then a rename.

A reader sees either the old file or the complete new one, and an interrupted write leaves
no partial file behind.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path


def _default_mode():
    # The mode that open() would give a new file, since mkstemp creates it as 0600.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``, renamed over ``path`` when the block succeeds.

    If the block raises (KeyboardInterrupt included), the temporary file is deleted and
    ``path`` is left as it was. Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    os.chmod(temporary, _default_mode())
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path, data):
    """Write ``data`` as indented JSON to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2) + "\n")
