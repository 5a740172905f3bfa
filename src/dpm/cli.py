"""The ``dpm`` command."""

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
    if args.command == "info":
        return show_info(args.backend)
    if args.data_command == "prepare":
        from dpm.data import swiss_roll

        path = swiss_roll.prepare(overwrite=args.force)
        print(path)
        return 0
    return show_file(args.file)


def show_info(backend_name):
    from dpm import backend
    from dpm.versions import package_versions

    chosen = backend.configure(backend_name)
    report = {"backend": chosen, "mode": backend.mode(), "blas_ldflags": backend.blas_ldflags(),
              "versions": package_versions()}
    print(json.dumps(report, indent=2))
    return 0


def show_file(path):
    from dpm.data.hdf5 import read_attrs, split_table

    print(json.dumps({"splits": [list(row) for row in split_table(path)],
                      "attributes": read_attrs(path)}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
