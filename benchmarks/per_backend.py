"""Run a benchmark's measurement once per backend, each in a new process, and save the report.

A script calls :func:`run` with its measuring function. With ``--worker NAME`` the process
measures one backend and prints the result as JSON. Without it the process starts one
worker per backend, so that one backend's compiled code and threads do not disturb the
next one's. It then writes the report through a temporary file.
"""

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from dpm.atomic import write_json
from dpm.versions import package_versions

BACKENDS = ("c", "numba", "jax")


def run(script, description, measure, default_output, settings, argv=None):
    """Parse the options, measure every chosen backend and return the report.

    Parameters
    ----------
    script : str
        The benchmark script's path (``__file__``), started again for each worker.
    description : str
    measure : callable
        ``measure(backend_name)`` returns a JSON-serializable result.
    default_output : pathlib.Path
    settings : dict
        What the benchmark fixes (batch size and the like), copied into the report.

    Returns
    -------
    dict or None
        The report, or None in a worker process.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backends", nargs="+", default=None, choices=BACKENDS)
    parser.add_argument("--output", type=Path, default=default_output)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker)))
        return None

    backends = args.backends or [name for name in BACKENDS
                                 if name != "jax" or importlib.util.find_spec("jax")]
    report = dict(settings)
    report.update({"openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                   "machine": {"processor": platform.processor(), "cpus": os.cpu_count()},
                   "versions": package_versions(), "backends": {}})
    for name in backends:
        completed = subprocess.run([sys.executable, script, "--worker", name],
                                   capture_output=True, text=True, check=True)
        report["backends"][name] = json.loads(completed.stdout.strip().splitlines()[-1])
    write_json(args.output, report)
    return report
