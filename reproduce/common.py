"""Shared parts of the reproduce scripts: arguments, provenance, paper values, manifests."""

import argparse
import logging
import os
import platform
import subprocess
import sys
import tomllib
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
FIGURES = REPOSITORY / "figures"
RUNS = REPOSITORY / "runs"
CONFIGS = REPOSITORY / "original_configs"


def parser(description):
    """Return an argument parser with the options every reproduce script takes."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--quick", action="store_true",
                        help="a short smoke run with the [quick] settings of the configuration")
    result.add_argument("--backend", choices=("c", "numba", "jax"), default=None,
                        help="PyTensor backend (default: DPM_BACKEND or c)")
    result.add_argument("--floatX", choices=("float32", "float64"), default=None,
                        help="float type of the graphs (default: DPM_FLOATX or float32)")
    result.add_argument("--output-dir", type=Path, default=FIGURES,
                        help="folder for the figure and its JSON manifest (default: figures/)")
    result.add_argument("--run-dir", type=Path, default=None,
                        help="new folder for the final checkpoint and the resolved "
                             "configuration (default: the next runs/<figure name>/NNN)")
    result.add_argument("--config", type=Path, default=None,
                        help="configuration file (default: the experiment's file in original_configs/)")
    result.add_argument("--seed", type=int, default=None,
                        help="overrides the configuration's seed for training and evaluation")
    return result


def setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    # PyTensor logs every C module it compiles at INFO.
    logging.getLogger("pytensor").setLevel(logging.WARNING)


def paper_values(experiment):
    """Return the paper's numbers for ``experiment`` from ``reproduce/paper_values.toml``."""
    with (Path(__file__).parent / "paper_values.toml").open("rb") as file:
        return tomllib.load(file)[experiment]


def git_commit():
    """Return the repository's commit, with ``-dirty`` when the work tree has changes, or None."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True,
                                text=True, check=True).stdout.strip()
        # Outputs of the reproduce scripts do not count as changes to the code.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":!figures", ":!runs"],
                               cwd=REPOSITORY, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty.strip() else "")


def provenance(seed, backend, floatX):
    """Return what is needed to rerun a result: seed, versions, backend, commit, machine."""
    from dpm.versions import package_versions

    return {
        "seed": seed,
        "backend": backend,
        "floatX": floatX,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "package_versions": package_versions(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def new_run_dir(name, requested=None):
    """Create and return a new run folder: ``requested``, or the next ``runs/<name>/NNN``.

    A requested folder that already has files is rejected, so no run overwrites another's
    checkpoint.
    """
    if requested is not None:
        requested = Path(requested)
        if requested.exists() and any(requested.iterdir()):
            raise FileExistsError(
                f"run directory {requested} already exists and is not empty; "
                "pass a new --run-dir, or delete it"
            )
        requested.mkdir(parents=True, exist_ok=True)
        return requested
    parent = RUNS / name
    parent.mkdir(parents=True, exist_ok=True)
    numbers = [int(entry.name) for entry in parent.iterdir() if entry.name.isdigit()]
    while True:
        candidate = parent / f"{max(numbers, default=0) + 1:03d}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            numbers.append(int(candidate.name))


def save_figure(figure, path_stem):
    """Save ``figure`` as PNG and PDF next to each other, each written atomically."""
    from dpm.atomic import atomic_path

    for suffix in ("png", "pdf"):
        with atomic_path(Path(path_stem).with_suffix(f".{suffix}")) as temporary:
            # No creation date in the PDF, so the same result gives the same bytes.
            metadata = {"CreationDate": None} if suffix == "pdf" else None
            figure.savefig(temporary, format=suffix, dpi=150, bbox_inches="tight",
                           metadata=metadata)
