"""The dpm command: package information, data sets, and training, evaluating and sampling image models."""

import argparse
import json
import logging
import sys
from pathlib import Path

from dpm.data import registry


def main(argv=None):
    parser = argparse.ArgumentParser(prog="dpm", description=__doc__)
    parser.add_argument("--backend", choices=("c", "numba", "jax"), default=None,
                        help="PyTensor backend (default: DPM_BACKEND or c)")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("info", help="show package versions, the backend and whether BLAS is linked")

    data = commands.add_parser("data", help="prepare or inspect data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    prepare = data_commands.add_parser("prepare", help="generate or convert a data set into $DPM_DATA")
    prepare.add_argument("name", choices=registry.names())
    prepare.add_argument("--from", dest="from_dir", metavar="DIR",
                         help="folder searched first for the raw files of a converted data set; "
                              "then come the folders of $DPM_RAW_DATA and raw/NAME in the data "
                              "folder, where downloads go")
    prepare.add_argument("--force", action="store_true", help="overwrite an existing file")
    data_commands.add_parser("list", help="show each data set, whether it is prepared, its file and size")
    info = data_commands.add_parser("info", help="show the sources, splits and attributes of a file")
    info.add_argument("file", help="an HDF5 data file, or a data set name for its prepared file")
    _add_model_commands(commands)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("pytensor").setLevel(logging.WARNING)
    try:
        if args.command == "info":
            return show_info(args.backend)
        if args.command in MODEL_COMMANDS:
            return MODEL_COMMANDS[args.command](args)
        if args.data_command == "prepare":
            return prepare_data(args.name, args.force, args.from_dir)
        if args.data_command == "list":
            return list_data()
        return show_file(args.file)
    except (OSError, ValueError, registry.DataSetUnavailableError) as error:
        # Missing or damaged files, invalid values and missing modules: the message names
        # the fix. Whitespace is collapsed so that the error stays on one line.
        print(f"dpm: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1


def _add_model_commands(commands):
    train = commands.add_parser("train", help="train an image model from a configuration file")
    train.add_argument("config", help="an image configuration, e.g. original_configs/reference_mnist.toml")
    train.add_argument("--quick", action="store_true",
                       help="apply the file's [quick] overrides, a short smoke run")
    _add_backend_option(train)
    train.add_argument("--resume", metavar="RUN",
                       help="run folder to continue from its checkpoint, e.g. runs/reference_mnist/001")
    train.add_argument("--runs", metavar="DIR", default="runs",
                       help="folder of the numbered run folders (default: runs)")

    evaluate = commands.add_parser(
        "evaluate", help="evaluate K on held-out images of a trained run and write "
                         "RUN/evaluation.json, or RUN/evaluation-tN.json with --t-per-image N")
    evaluate.add_argument("run", help="run folder, e.g. runs/reference_mnist/001")
    _add_backend_option(evaluate)
    evaluate.add_argument("--n-images", type=positive_int, default=None,
                          help="held-out images to evaluate (default: [evaluation] n_images)")
    evaluate.add_argument("--t-per-image", type=positive_int, default=None, metavar="N",
                          help="estimate each image's KL sum from N time steps drawn stratified "
                               "over 2..T and scaled by (T - 1) / N, unbiased and about "
                               "(T - 1) / N times faster; the standard errors include the "
                               "variance of the drawn steps; written to "
                               "RUN/evaluation-tN.json, so that evaluation.json keeps the exact "
                               "value (default: every step, exact)")

    sample = commands.add_parser("sample", help="draw images from a trained run as a PNG grid")
    sample.add_argument("run", help="run folder, e.g. runs/reference_mnist/001")
    _add_backend_option(sample)
    kind = sample.add_mutually_exclusive_group()
    kind.add_argument("--inpaint", action="store_true",
                      help="fill in the centre of held-out images")
    kind.add_argument("--denoise", type=float, metavar="SIGMA",
                      help="denoise held-out images with Gaussian noise of standard deviation "
                           "SIGMA added, in units of the training data's standard deviation")
    sample.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="height and width of plain samples (default: the training size)")
    sample.add_argument("--n-images", type=positive_int, default=36,
                        help="images to draw (default: 36)")
    sample.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")
    sample.add_argument("--output", metavar="PNG",
                        help="the PNG file (default: RUN/samples/KIND-seedSEED.png, with "
                             "-sigmaSIGMA after denoising and -HxW after samples of another "
                             "size, e.g. denoising-sigma0.5-seed0.png)")


def _add_backend_option(command):
    # SUPPRESS keeps the value given before the command, as in `dpm --backend c train ...`.
    command.add_argument("--backend", choices=("c", "numba", "jax"), default=argparse.SUPPRESS,
                         help="PyTensor backend (default: DPM_BACKEND or c)")


def positive_int(text):
    """Parse an option's value as an integer of at least 1, for argparse's ``type``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


#: Exit status after Ctrl-C: 128 + 2 (SIGINT), the status that shells report for it.
INTERRUPTED_STATUS = 130


def train_model(args):
    from dpm import backend
    from dpm.image_training import TrainingInterrupted, train_image_model

    chosen = backend.configure(args.backend)
    try:
        run = train_image_model(args.config, quick=args.quick, resume_from=args.resume,
                                root=args.runs)
    except TrainingInterrupted as interrupt:
        options = " --quick" if args.quick else ""
        if args.backend is not None:
            options += f" --backend {chosen}"
        print(f"interrupted; checkpoint written to {interrupt.run_dir}; continue with: "
              f"dpm train {args.config}{options} --resume {interrupt.run_dir}", file=sys.stderr)
        return INTERRUPTED_STATUS
    except KeyboardInterrupt:
        # Before the main loop, while loading data or compiling: nothing was trained.
        print("interrupted before training started, so no checkpoint was written",
              file=sys.stderr)
        return INTERRUPTED_STATUS
    print(run.run_dir)
    return 0


def evaluate_model(args):
    from dpm import backend
    from dpm.image_run import as_json, evaluate_run

    backend.configure(args.backend)
    print(as_json(evaluate_run(args.run, n_images=args.n_images, progress=True,
                               t_per_image=args.t_per_image)))
    return 0


def sample_model(args):
    from dpm import backend
    from dpm.image_run import sample_run

    backend.configure(args.backend)
    if args.inpaint:
        kind = "inpainting"
    elif args.denoise is not None:
        kind = "denoising"
    else:
        kind = "samples"
    paths = sample_run(args.run, kind, n_images=args.n_images, seed=args.seed,
                       denoise_sigma=args.denoise, size=args.size, output=args.output)
    for path in paths:
        print(path)
    return 0


MODEL_COMMANDS = {"train": train_model, "evaluate": evaluate_model, "sample": sample_model}


def prepare_data(name, force, from_dir=None):
    path = registry.default_path(name)
    if path.exists() and not force:
        # Files are written under a temporary name and renamed, so an existing one is
        # complete; keeping it lets scripts call prepare every time.
        print(f"{path} is already prepared; pass --force to rebuild it", file=sys.stderr)
        print(path)
        return 0
    print(registry.prepare(name, path=path, overwrite=force, from_dir=from_dir))
    return 0


def list_data():
    rows = []
    for name in registry.names():
        try:
            path = registry.default_path(name)
        except registry.DataSetUnavailableError:
            module = registry.entry(name).module
            rows.append((name, "unavailable", f"(module {module} not installed)", "-"))
            continue
        if path.is_file():
            rows.append((name, "prepared", str(path), _format_size(path.stat().st_size)))
        else:
            rows.append((name, "not prepared", str(path), "-"))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)) + "  " + row[3])
    return 0


def _format_size(n_bytes):
    """Return a file size in binary units, for example ``'52.4 MiB'``."""
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{n_bytes} B" if unit == "B" else f"{size:.1f} {unit}"


def show_info(backend_name):
    from dpm import backend
    from dpm.versions import package_versions

    import pytensor

    from dpm.data.paths import data_dir

    chosen = backend.configure(backend_name)
    report = {"backend": chosen, "mode": backend.mode(), "floatX": pytensor.config.floatX,
              "blas_ldflags": backend.blas_ldflags(), "data_dir": str(data_dir()),
              "versions": package_versions()}
    print(json.dumps(report, indent=2))
    return 0


def show_file(path):
    from dpm.data.hdf5 import read_attrs, split_table

    path = resolve_data_file(path)
    splits = [{"split": split, "source": source, "rows": [start, stop]}
              for split, source, start, stop in split_table(path)]
    print(json.dumps({"splits": splits, "attributes": read_attrs(path)}, indent=2, default=str))
    return 0


def resolve_data_file(argument):
    """Return ``argument``, or the prepared file of the data set it names if no such file exists.

    Raises
    ------
    FileNotFoundError
        If ``argument`` names a registered data set whose file is not prepared.
    """
    if Path(argument).exists() or argument not in registry.names():
        return argument
    path = registry.default_path(argument)
    if not path.is_file():
        raise FileNotFoundError(
            f"data set {argument} is not prepared ({path} not found); run "
            f"`dpm data prepare {argument}`"
        )
    return path


if __name__ == "__main__":
    sys.exit(main())
