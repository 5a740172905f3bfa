"""The dpm command: package information and data sets."""

import argparse
import json
import logging
import sys

PREPARERS = ("swiss_roll",)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="dpm", description=__doc__)
    parser.add_argument("--backend", choices=("c", "numba", "jax"), default=None,
                        help="PyTensor backend (default: DPM_BACKEND or c)")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("info", help="show package versions, the backend and whether BLAS is linked")

    data = commands.add_parser("data", help="prepare or inspect data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    prepare = data_commands.add_parser("prepare", help="generate or convert a data set into $DPM_DATA")
    prepare.add_argument("name", choices=PREPARERS)
    prepare.add_argument("--force", action="store_true", help="overwrite an existing file")
    info = data_commands.add_parser("info", help="show the sources, splits and attributes of a file")
    info.add_argument("file")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("pytensor").setLevel(logging.WARNING)
    try:
        if args.command == "info":
            return show_info(args.backend)
        if args.data_command == "prepare":
            return prepare_data(args.name, args.force)
        return show_file(args.file)
    except (OSError, ValueError) as error:
        # Missing or damaged files and invalid values: the message names the fix.
        print(f"dpm: error: {error}", file=sys.stderr)
        return 1


def prepare_data(name, force):
    from dpm.data import swiss_roll

    path = swiss_roll.default_path()
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; pass --force to replace it")
    print(swiss_roll.prepare(path, overwrite=force))
    return 0


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

    splits = [{"split": split, "source": source, "rows": [start, stop]}
              for split, source, start, stop in split_table(path)]
    print(json.dumps({"splits": splits, "attributes": read_attrs(path)}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
