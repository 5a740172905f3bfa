"""Shared parts of the reproduce scripts: arguments, provenance, paper values, manifests."""

import argparse
import logging
import os
import platform
import subprocess
import sys
import time
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


def display_path(path):
    """Return ``path`` relative to the repository when it lies inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPOSITORY))
    except ValueError:
        return str(path)


def new_run_dir(name, requested=None):
    """Create and return a new run folder: ``requested``, or the next ``runs/<name>/NNN``.

    A requested folder that already has files is rejected, so no run overwrites another's
    checkpoint (see :func:`dpm.training.run_dir.create_run_dir`).
    """
    from dpm.training.run_dir import create_run_dir

    return create_run_dir(name, root=RUNS, requested=requested)


def save_figure(figure, path_stem):
    """Save ``figure`` as PNG and PDF next to each other, each written atomically."""
    from dpm.atomic import atomic_path

    for suffix in ("png", "pdf"):
        with atomic_path(Path(path_stem).with_suffix(f".{suffix}")) as temporary:
            # No creation date in the PDF, so the same result gives the same bytes.
            metadata = {"CreationDate": None} if suffix == "pdf" else None
            figure.savefig(temporary, format=suffix, dpi=150, bbox_inches="tight",
                           metadata=metadata)


def check_sizes(config, where):
    """Reject held-out or batch sizes larger than the data they are drawn from."""
    from dpm.config import ConfigError

    evaluation, data = config["evaluation"], config["data"]
    if evaluation["n_points"] > data["n_test"]:
        raise ConfigError(
            f"{where}: [evaluation] n_points = {evaluation['n_points']} exceeds "
            f"[data] n_test = {data['n_test']}; lower n_points or raise n_test"
        )
    if config["training"]["batch_size"] > data["n_train"]:
        raise ConfigError(
            f"{where}: [training] batch_size = {config['training']['batch_size']} exceeds "
            f"[data] n_train = {data['n_train']}; lower batch_size"
        )


def reproduce(experiment, name, description, defaults, check_config, run, plot, argv=None):
    """Run one reproduction end to end and write its figure and JSON manifest.

    Parses the common options, reads ``original_configs/<experiment>.toml`` (or ``--config``),
    checks it with ``check_config`` before any work, records provenance, makes a new run
    folder, calls ``run(config, checkpoint_path)`` and ``plot(results, config)``, and writes
    ``<output-dir>/<name>.{png,pdf,json}``.

    ``run`` returns a dict with ``measured`` (the manifest's numbers) and ``manifest`` (other
    fields for the manifest), plus whatever ``plot`` needs.

    Returns
    -------
    manifest : dict
    stem : pathlib.Path
        The output path without suffix.
    """
    args = parser(description).parse_args(argv)
    config_path = args.config or CONFIGS / f"{experiment}.toml"
    setup_logging()

    from dpm import backend
    from dpm.atomic import write_json
    from dpm.config import load_config
    from dpm.training.run_dir import write_config

    backend_name = backend.configure(args.backend, args.floatX)
    import pytensor

    config = load_config(config_path, defaults, quick=args.quick)
    check_config(config, config_path)
    check_sizes(config, config_path)
    if args.seed is not None:
        config["training"]["seed"] = args.seed
        config["evaluation"]["seed"] = args.seed + 1
    name = name + ("_quick" if args.quick else "")
    # Provenance is taken before any output is written, so that the outputs themselves do
    # not make the work tree look modified.
    record = provenance(config["training"]["seed"], backend_name, pytensor.config.floatX)
    run_dir = new_run_dir(name, args.run_dir)
    write_config(run_dir, config)
    started = time.perf_counter()
    results = run(config, checkpoint_path=run_dir / "checkpoint.npz")
    seconds = time.perf_counter() - started

    paper = paper_values(experiment)
    manifest = {
        "experiment": experiment,
        "config_file": display_path(config_path),
        "quick": args.quick,
        "measured": results["measured"],
        "paper": {key: paper[key] for key in ("K", "K_minus_L_null", "L_true") if key in paper},
        "units": paper["units"],
        "settings": config,
        "provenance": record,
        "seconds": seconds,
        **results["manifest"],
        "checkpoint": display_path(run_dir / "checkpoint.npz"),
    }
    stem = args.output_dir / name
    save_figure(plot(results, config), stem)
    write_json(stem.with_suffix(".json"), manifest)
    return manifest, stem


def run_script(main):
    """Call ``main()``; report invalid settings and missing or existing files in one line.

    These errors name the value and the fix, so a traceback would only hide the message.
    """
    from dpm.config import ConfigError

    try:
        main()
    except (ConfigError, FileExistsError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
