"""Compare PyTensor backends (C, Numba, JAX) on the swiss roll model's compiled functions.

Each backend runs twice, each time in a new subprocess. Both runs point PyTensor's
``base_compiledir`` at the same temporary folder, which is empty for the first run
(cold compile cache) and filled by it for the second (warm compile cache). The
folder contains both the C module cache and PyTensor's Numba cache
(``<base_compiledir>/numba``), which ``compiledir`` alone would not move. This script
configures no on-disk cache for JAX, so its two runs should differ only by noise.

Every run builds ``SwissRollModel(trajectory_length=40, n_hidden=16,
parameterization='paper')`` in float32 and measures:

* compiling the training function (``GradientDescent`` with Adam wrapped in
  ``RemoveNotFinite``, built as ``train_gaussian_model`` builds it), and its first call,
  which is when Numba and JAX compile lazily;
* the time of single training steps at batch 200 and 1000 (median and interquartile
  range of the compiled function call, inputs drawn in advance);
* compiling ``BoundEvaluator`` and evaluating K on held-out points, twice (the first
  evaluation includes any lazy compile).

Usage::

    python benchmarks/backends.py                      # every installed backend
    python benchmarks/backends.py --backends c numba   # a subset
    python benchmarks/backends.py --blas-ldflags=-lopenblas   # adds C linked to OpenBLAS

The results go to ``--output`` as JSON (written to a temporary file, then renamed)
and to standard output as a Markdown table.
"""

import argparse
import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from dpm.atomic import write_json
from dpm.versions import package_versions

logger = logging.getLogger("benchmarks.backends")

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "backends.json"
BACKENDS = ("c", "numba", "jax")
PACKAGES = ("dpm", "pytensor", "numpy", "scipy", "numba", "llvmlite", "jax", "jaxlib")
#: PyTensor flags that this script sets itself for each subprocess.
CACHE_FLAGS = ("base_compiledir", "compiledir")
#: Calls made before timing starts, so that one-time costs stay out of the step times.
WARMUP_CALLS = 50
#: Distinct input batches drawn in advance and cycled through during the timed steps.
INPUT_POOL = 32
#: Mini-batch size of ``BoundEvaluator.evaluate`` (its default).
EVAL_BATCH_SIZE = 4096


# Parent process -------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=None,
                        help="backends to measure (default: every installed one)")
    parser.add_argument("--steps", type=int, default=2000,
                        help="timed training steps at batch 200 (default: 2000)")
    parser.add_argument("--large-steps", type=int, default=300,
                        help="timed training steps at batch 1000 (default: 300)")
    parser.add_argument("--eval-points", type=int, default=20_000,
                        help="held-out points for the bound evaluation (default: 20000)")
    parser.add_argument("--blas-ldflags", default=None,
                        help="also measure the C backend with PyTensor's blas__ldflags set to "
                             "this value, e.g. --blas-ldflags=-lopenblas")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"JSON file for the results (default: {DEFAULT_OUTPUT.relative_to(REPOSITORY)})")
    # Internal: run one measurement in this process and write it to --result-file.
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("steps", "large_steps", "eval_points"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return args


def installed_backends():
    """Return the backends whose packages are importable here, in :data:`BACKENDS` order."""
    found = ["c"]
    for name in ("numba", "jax"):
        if importlib.util.find_spec(name) is not None:
            found.append(name)
    return found


def inherited_pytensor_flags():
    """Return the caller's PYTENSOR_FLAGS without the cache folders this script sets."""
    kept = []
    for flag in filter(None, os.environ.get("PYTENSOR_FLAGS", "").split(",")):
        if flag.split("=", 1)[0].strip() in CACHE_FLAGS:
            logger.warning("ignoring %r from PYTENSOR_FLAGS: each run uses its own cache folder", flag)
        else:
            kept.append(flag)
    return kept


def run_worker_process(args, variant, cache_state, cache_dir):
    """Run one measurement in a fresh interpreter and return its result dict."""
    flags = [*inherited_pytensor_flags(), f"base_compiledir={cache_dir}", *variant["flags"]]
    env = dict(os.environ, PYTENSOR_FLAGS=",".join(flags))
    with tempfile.TemporaryDirectory(prefix="dpm-bench-result-") as folder:
        result_file = Path(folder) / "result.json"
        command = [
            sys.executable, str(Path(__file__).resolve()), "--worker", variant["backend"],
            "--result-file", str(result_file), "--steps", str(args.steps),
            "--large-steps", str(args.large_steps), "--eval-points", str(args.eval_points),
        ]
        logger.info("%s, %s compile cache: starting (PYTENSOR_FLAGS=%s)",
                    variant["label"], cache_state, env["PYTENSOR_FLAGS"])
        start = time.perf_counter()
        completed = subprocess.run(command, env=env, cwd=REPOSITORY, check=False)
        wall = time.perf_counter() - start
        if result_file.exists():
            result = json.loads(result_file.read_text())
        else:
            result = {"error": f"the worker exited with status {completed.returncode} "
                               "and wrote no result"}
    result.update(label=variant["label"], backend=variant["backend"], cache=cache_state,
                  pytensor_flags=env["PYTENSOR_FLAGS"], process_wall_s=wall,
                  returncode=completed.returncode)
    if "error" in result:
        logger.error("%s, %s compile cache failed: %s", variant["label"], cache_state,
                     result["error"])
    else:
        logger.info("%s, %s compile cache: done in %.1f s", variant["label"], cache_state, wall)
    return result


def cpu_model():
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info():
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "package_versions": package_versions(PACKAGES),
        "git_commit": git_commit(),
        "load_average_at_start": list(os.getloadavg()),
    }


def format_seconds(value):
    return "n/a" if value is None else f"{value:.2f}"


def format_step(stats):
    if stats is None:
        return "n/a"
    return f"{stats['median_ms']:.3f} ({stats['iqr_ms']:.3f})"


def markdown_table(runs):
    """Return the results as a Markdown table, one row per backend and cache state."""
    header = [
        "backend", "compile cache", "train: compile + 1st call (s)",
        "step, batch 200: median (IQR) ms", "step, batch 1000: median (IQR) ms",
        "bound: compile (s)", "bound: 1st evaluation (s)", "bound: 2nd evaluation (s)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        if "error" in run:
            cells = [run["label"], run["cache"], f"failed: {run['error']}", *[""] * (len(header) - 3)]
        else:
            cells = [
                run["label"], run["cache"],
                format_seconds(run["train_compile_s"] + run["train_first_call_s"]),
                format_step(run["step_batch_200"]), format_step(run["step_batch_1000"]),
                format_seconds(run["bound_compile_s"]),
                format_seconds(run["bound_evaluation_s"][0]),
                format_seconds(run["bound_evaluation_s"][1]),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_parent(args):
    backends = args.backends or installed_backends()
    missing = [name for name in backends if name != "c" and importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"backend(s) {missing} requested but not installed; "
                         "install JAX with `pip install -e '.[jax]'`")
    variants = [{"label": name, "backend": name, "flags": []} for name in backends]
    if args.blas_ldflags is not None:
        variants.append({"label": f"c, blas__ldflags={args.blas_ldflags}", "backend": "c",
                         "flags": [f"blas__ldflags={args.blas_ldflags}"]})

    info = machine_info()
    runs = []
    with tempfile.TemporaryDirectory(prefix="dpm-bench-cache-") as cache_root:
        for index, variant in enumerate(variants):
            cache_dir = Path(cache_root) / f"variant{index}"
            for cache_state in ("cold", "warm"):
                runs.append(run_worker_process(args, variant, cache_state, cache_dir))
    info["load_average_at_end"] = list(os.getloadavg())

    results = {
        "command": " ".join(["python", "benchmarks/backends.py", *sys.argv[1:]]),
        "settings": {
            "model": {"trajectory_length": 40, "n_hidden": 16, "parameterization": "paper",
                      "floatX": "float32"},
            "step_rule": "adam, wrapped in RemoveNotFinite",
            "steps_batch_200": args.steps, "steps_batch_1000": args.large_steps,
            "warmup_calls": WARMUP_CALLS, "eval_points": args.eval_points,
            "eval_batch_size": EVAL_BATCH_SIZE,
        },
        "machine": info,
        "runs": runs,
    }
    write_json(args.output, results)
    logger.info("wrote %s", args.output)
    print(markdown_table(runs))
    return 1 if any("error" in run for run in runs) else 0


# Worker process -------------------------------------------------------------------


def step_statistics(seconds):
    """Return the median, quartiles and interquartile range of per-call times, in ms."""
    milliseconds = 1000.0 * np.asarray(seconds)
    q1, median, q3 = np.percentile(milliseconds, [25, 50, 75])
    return {"n": int(len(milliseconds)), "median_ms": float(median), "q1_ms": float(q1),
            "q3_ms": float(q3), "iqr_ms": float(q3 - q1), "mean_ms": float(milliseconds.mean())}


def time_steps(function, inputs, n_steps, description):
    """Call ``function`` on the batches in ``inputs`` in turn and return each call's duration.

    Each duration includes converting the outputs to NumPy, as
    ``GradientDescent.process_batch`` does. JAX dispatches asynchronously and returns
    before the computation ends, so without the conversion only the dispatch is timed.
    """
    from tqdm.auto import tqdm

    for index in range(WARMUP_CALLS):
        [np.asarray(output) for output in function(*inputs[index % len(inputs)])]
    durations = np.empty(n_steps)
    for index in tqdm(range(n_steps), desc=description, unit="step", disable=None):
        batch = inputs[index % len(inputs)]
        start = time.perf_counter()
        [np.asarray(output) for output in function(*batch)]
        durations[index] = time.perf_counter() - start
    return durations


def draw_training_inputs(batch_size, seed):
    """Draw :data:`INPUT_POOL` batches of swiss roll points with their ``t`` and noise."""
    import pytensor

    from dpm.data import swiss_roll
    from dpm.diffusion import DiffusionInputs

    rng = np.random.default_rng(seed)
    draws = DiffusionInputs(40, 2, seed)
    batches = []
    for _ in range(INPUT_POOL):
        x0 = swiss_roll.sample(batch_size, rng).astype(pytensor.config.floatX)
        batches.append((x0, *draws(batch_size)))
    return batches


def measure(backend_name, args):
    """Measure one backend in this process and return the results as a dict."""
    start = time.perf_counter()
    import pytensor
    import pytensor.tensor as pt

    from dpm import backend
    from dpm.data import swiss_roll
    from dpm.evaluation.bound import BoundEvaluator
    from dpm.models.swiss_roll import SwissRollModel
    from dpm.training.algorithm import GradientDescent
    from dpm.training.step_rules import build_step_rule

    backend.configure(backend_name, "float32")
    result = {"import_s": time.perf_counter() - start, "mode": backend.mode(),
              "blas_ldflags": backend.blas_ldflags()}

    model = SwissRollModel(trajectory_length=40, n_hidden=16, parameterization="paper")
    model.initialize(np.random.default_rng(0))
    floatX = pytensor.config.floatX
    x0 = pt.matrix("x0", dtype=floatX)
    t = pt.ivector("t")
    noise = pt.matrix("noise", dtype=floatX)

    # The training function as train_gaussian_model builds it.
    start = time.perf_counter()
    terms = model.bound_estimate(x0, t, noise)
    monitored = {"K": pt.mean(terms["K"]), "K_minus_L_null": pt.mean(terms["K_minus_L_null"])}
    step_rule = build_step_rule("adam", 0.01)
    result["graph_build_s"] = time.perf_counter() - start
    start = time.perf_counter()
    algorithm = GradientDescent(-monitored["K"], model.all_parameters, step_rule, [x0, t, noise],
                                monitored, prepare_inputs=None)
    result["train_compile_s"] = time.perf_counter() - start

    small = draw_training_inputs(200, seed=1)
    large = draw_training_inputs(1000, seed=2)
    start = time.perf_counter()
    first_outputs = [np.asarray(output) for output in algorithm.function(*small[0])]
    result["train_first_call_s"] = time.perf_counter() - start
    # The first step's cost from the same parameters and inputs, to check that backends agree.
    result["first_step_cost"] = float(np.asarray(first_outputs[0]))

    result["step_batch_200"] = step_statistics(
        time_steps(algorithm.function, small, args.steps, "steps at batch 200"))
    start = time.perf_counter()
    [np.asarray(output) for output in algorithm.function(*large[0])]
    result["first_call_batch_1000_s"] = time.perf_counter() - start
    result["step_batch_1000"] = step_statistics(
        time_steps(algorithm.function, large, args.large_steps, "steps at batch 1000"))
    logger.info("steps: median %.3f ms at batch 200, %.3f ms at batch 1000",
                result["step_batch_200"]["median_ms"], result["step_batch_1000"]["median_ms"])

    logger.info("compiling the bound evaluator")
    start = time.perf_counter()
    evaluator = BoundEvaluator(model)
    result["bound_compile_s"] = time.perf_counter() - start
    points = swiss_roll.sample(args.eval_points, np.random.default_rng(3)).astype(floatX)
    result["bound_evaluation_s"] = []
    for repeat in range(2):
        start = time.perf_counter()
        bound = evaluator.evaluate(points, seed=4, batch_size=EVAL_BATCH_SIZE, progress=False)
        result["bound_evaluation_s"].append(time.perf_counter() - start)
    result["bound_K"] = bound["K"]
    logger.info("bound: compile %.2f s, evaluations %s s", result["bound_compile_s"],
                ", ".join(f"{value:.2f}" for value in result["bound_evaluation_s"]))
    return result


def run_worker(args):
    logging.getLogger("pytensor").setLevel(logging.WARNING)
    try:
        result = measure(args.worker, args)
        status = 0
    except Exception as error:  # reported to the parent, which records it per backend
        logger.exception("measuring backend %r failed", args.worker)
        result = {"error": f"{type(error).__name__}: {error}".splitlines()[0][:300],
                  "traceback": traceback.format_exc()}
        status = 1
    write_json(args.result_file, result)
    return status


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, datefmt="%H:%M:%S",
                        format=f"%(asctime)s {args.worker or 'main'}: %(message)s")
    if args.worker:
        if args.result_file is None:
            raise SystemExit("--worker requires --result-file")
        return run_worker(args)
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
