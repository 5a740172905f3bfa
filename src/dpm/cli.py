"""The dpm command: package information and data sets."""

import argparse
import json
import logging
import sys

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
    info.add_argument("file")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("pytensor").setLevel(logging.WARNING)
    try:
        if args.command == "info":
            return show_info(args.backend)
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


def prepare_data(name, force, from_dir=None):
    path = registry.default_path(name)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; pass --force to replace it")
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

    splits = [{"split": split, "source": source, "rows": [start, stop]}
              for split, source, start, stop in split_table(path)]
    print(json.dumps({"splits": splits, "attributes": read_attrs(path)}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
