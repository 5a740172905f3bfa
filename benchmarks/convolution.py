"""Compare implementations of dpm.ops.conv2d_same on PyTensor's C, Numba and JAX backends.

The benchmark layer is a 3x3 convolution from 20 to 20 channels, with bias, on 28x28
images in float32. For each candidate the script compiles one function that returns
the cost ``sum(conv2d_same(x, W, b) * r)`` and its gradients with respect to ``x``,
``W`` and ``b``, and measures:

* the compile time and the first call at batch 128 (Numba and JAX compile during the
  first call, C during the compile), and the first call at batch 512, which includes
  JAX's compile for the new shape;
* the time of single calls at batch 128 and 512, as the median and interquartile range
  (IQR) of repeated calls. The candidates are called in turn, one call each per round,
  so that load from other jobs on the machine affects all of them alike. Compare
  ratios within one run;
* the largest relative difference of each output from the ``op`` candidate's, as a
  check that all candidates compute the same function.

The candidates are the three implementations of ``conv2d_same`` ('op', 'join',
'shifted_sum') and, on C and JAX, 'op, unchunked': the custom Op with its batch
chunking turned off (``NUMPY_BATCH_CHUNK`` and ``JAX_BATCH_CHUNK`` set above the batch
size). The Numba kernels compile their chunk size in, so Numba has no such candidate.
Under JAX the 'join' and 'shifted_sum' graphs need static input shapes, so they are
compiled once per batch size.

Each backend runs three times, each time in a new subprocess, with PyTensor's
``base_compiledir`` set to one new temporary folder: empty for the first run (cold
compile cache) and filled by it for the other two (warm). The third run sets
``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` to 1, because on a
2-core machine shared with other jobs OpenBLAS's two threads wait on each other. JAX's
convolutions do not use BLAS, so that setting should not change them. Within a run the
candidates compile one after another, so a later candidate can reuse cached code of
Ops that an earlier one shares (the two 'op' candidates have identical graphs on C).

Usage::

    python benchmarks/convolution.py                     # every installed backend
    python benchmarks/convolution.py --backends c jax    # a subset

The results go to ``--output`` as JSON (written to a temporary file, then renamed) and
to standard output as a Markdown table.
"""

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from backends import inherited_pytensor_flags, machine_info, step_statistics
from dpm.atomic import write_json

logger = logging.getLogger("benchmarks.convolution")

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "convolution.json"
BACKENDS = ("c", "numba", "jax")
CANDIDATES = ("op", "op, unchunked", "join", "shifted_sum")
#: (compile cache, BLAS threads) of each run of a backend; None keeps the library default.
RUNS = (("cold", None), ("warm", None), ("warm", 1))
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BATCH_SIZES = (128, 512)
CHANNELS = 20
KERNEL_SIZE = 3
IMAGE_SIZE = 28
#: Untimed calls per candidate and batch size before the timed rounds.
WARMUP_CALLS = 2
#: Larger than any batch here, so the Op's perform and JAX implementation use one chunk.
NO_CHUNKING = 1 << 30


# Parent process -------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=None,
                        help="backends to measure (default: every installed one)")
    parser.add_argument("--rounds", type=int, default=20,
                        help="timed calls of each candidate at batch 128 (default: 20)")
    parser.add_argument("--large-rounds", type=int, default=10,
                        help="timed calls of each candidate at batch 512 (default: 10)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"JSON file for the results (default: {DEFAULT_OUTPUT.relative_to(REPOSITORY)})")
    # Internal: run one measurement in this process and write it to --result-file.
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("rounds", "large_rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return args


def installed_backends():
    """Return the backends whose packages are importable here, in :data:`BACKENDS` order."""
    return ["c"] + [name for name in ("numba", "jax") if importlib.util.find_spec(name) is not None]


def candidates_for(backend_name):
    """Return the candidates measured on ``backend_name``."""
    if backend_name == "numba":
        return tuple(name for name in CANDIDATES if name != "op, unchunked")
    return CANDIDATES


def run_worker_process(args, backend_name, cache_state, threads, cache_dir):
    """Measure one backend in a fresh interpreter and return its result dict."""
    flags = [*inherited_pytensor_flags(), f"base_compiledir={cache_dir}"]
    env = dict(os.environ, PYTENSOR_FLAGS=",".join(flags))
    if threads is not None:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    label = f"{backend_name}, {cache_state} compile cache, BLAS threads {threads or 'default'}"
    with tempfile.TemporaryDirectory(prefix="dpm-bench-result-") as folder:
        result_file = Path(folder) / "result.json"
        command = [
            sys.executable, __file__, "--worker", backend_name, "--result-file", str(result_file),
            "--rounds", str(args.rounds), "--large-rounds", str(args.large_rounds),
        ]
        logger.info("%s: starting", label)
        start = time.perf_counter()
        completed = subprocess.run(command, env=env, cwd=REPOSITORY)
        wall = time.perf_counter() - start
        if result_file.exists():
            result = json.loads(result_file.read_text())
        else:
            result = {"error": f"worker exited with status {completed.returncode} and no result"}
    result.update(backend=backend_name, cache=cache_state, blas_threads=threads or "default",
                  thread_environment={name: env.get(name) for name in THREAD_VARIABLES},
                  wall_s=wall, returncode=completed.returncode)
    if "error" in result:
        logger.error("%s: failed: %s", label, result["error"])
    else:
        logger.info("%s: done in %.1f s", label, wall)
    return result


def format_seconds(value):
    return "n/a" if value is None else f"{value:.2f}"


def format_timing(candidate, batch_size, fastest):
    stats = candidate["timing"].get(str(batch_size))
    if stats is None:
        return "n/a"
    ratio = stats["median_ms"] / fastest[batch_size]
    return f"{stats['median_ms']:.0f} ({stats['iqr_ms']:.0f}), {ratio:.2f}x"


def markdown_table(runs):
    """Return the results as a Markdown table, one row per backend, candidate and cache state."""
    header = [
        "backend", "candidate", "compile cache", "BLAS threads", "compile + 1st call, batch 128 (s)",
        "1st call, batch 512 (s)", "batch 128: median (IQR) ms, x fastest",
        "batch 512: median (IQR) ms, x fastest", "max relative difference from 'op'",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        if "error" in run:
            cells = [run["backend"], "all", run["cache"], str(run["blas_threads"]), f"failed: {run['error']}"]
            lines.append("| " + " | ".join(cells + [""] * (len(header) - len(cells))) + " |")
            continue
        candidates = [candidate for candidate in run["candidates"] if "error" not in candidate]
        fastest = {
            size: min(candidate["timing"][str(size)]["median_ms"] for candidate in candidates)
            for size in BATCH_SIZES
        }
        for candidate in run["candidates"]:
            if "error" in candidate:
                cells = [run["backend"], candidate["name"], run["cache"], str(run["blas_threads"]),
                         f"failed: {candidate['error']}"]
                cells += [""] * (len(header) - len(cells))
            else:
                cells = [
                    run["backend"], candidate["name"], run["cache"], str(run["blas_threads"]),
                    format_seconds(candidate["compile_s"] + candidate["first_call_s"]),
                    format_seconds(candidate["first_call_large_s"]),
                    format_timing(candidate, 128, fastest),
                    format_timing(candidate, 512, fastest),
                    f"{max(candidate['relative_difference'].values()):.1e}",
                ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_parent(args):
    backends = args.backends or installed_backends()
    missing = [name for name in backends if name != "c" and importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"backend(s) {missing} requested but not installed; "
                         "install JAX with `pip install -e '.[jax]'`")
    info = machine_info()
    runs = []
    with tempfile.TemporaryDirectory(prefix="dpm-bench-cache-") as cache_root:
        for backend_name in backends:
            cache_dir = Path(cache_root) / backend_name
            for cache_state, threads in RUNS:
                runs.append(run_worker_process(args, backend_name, cache_state, threads, cache_dir))
    info["load_average_at_end"] = list(os.getloadavg())

    results = {
        "command": " ".join(["python", "benchmarks/convolution.py", *sys.argv[1:]]),
        "settings": {
            "layer": {"in_channels": CHANNELS, "out_channels": CHANNELS,
                      "kernel_size": KERNEL_SIZE, "image_size": IMAGE_SIZE, "bias": True,
                      "floatX": "float32"},
            "outputs": "cost, gradients with respect to x, W and b",
            "batch_sizes": list(BATCH_SIZES), "rounds": args.rounds,
            "large_rounds": args.large_rounds, "warmup_calls": WARMUP_CALLS,
            "candidates": {name: list(candidates_for(name)) for name in BACKENDS},
            "runs_per_backend": [{"cache": cache, "blas_threads": threads or "default"}
                                 for cache, threads in RUNS],
        },
        "machine": info,
        "runs": runs,
    }
    write_json(args.output, results)
    logger.info("wrote %s", args.output)
    print(markdown_table(runs))
    failed = any("error" in run or any("error" in c for c in run["candidates"]) for run in runs)
    return 1 if failed else 0


# Worker process -------------------------------------------------------------------


@contextlib.contextmanager
def batch_chunking(enabled):
    """Turn the Op's batch chunking off inside the block when ``enabled`` is False.

    The NumPy chunk size is read on every call and the JAX one while JAX traces, that
    is at the first call for each input shape, so the block must cover both.
    """
    from dpm.ops import convolution_op, jax_implementations

    saved = convolution_op.NUMPY_BATCH_CHUNK, jax_implementations.JAX_BATCH_CHUNK
    if not enabled:
        convolution_op.NUMPY_BATCH_CHUNK = NO_CHUNKING
        jax_implementations.JAX_BATCH_CHUNK = NO_CHUNKING
    try:
        yield
    finally:
        convolution_op.NUMPY_BATCH_CHUNK, jax_implementations.JAX_BATCH_CHUNK = saved


def draw_inputs(batch_size, seed):
    """Return float32 ``(x, W, b, r)`` for one call, drawn from a seeded generator."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    x = rng.standard_normal(shape, dtype=np.float32)
    weights = (0.1 * rng.standard_normal((CHANNELS, CHANNELS, KERNEL_SIZE, KERNEL_SIZE))).astype(np.float32)
    bias = rng.standard_normal(CHANNELS, dtype=np.float32)
    upstream = rng.standard_normal(shape, dtype=np.float32)
    return x, weights, bias, upstream


def build_function(implementation, batch_size):
    """Compile cost and gradients of one conv2d_same layer; ``batch_size`` None keeps shapes symbolic."""
    import pytensor
    import pytensor.tensor as pt

    from dpm import backend
    from dpm.ops import conv2d_same

    if batch_size is None:
        image_shape = (None, CHANNELS, None, None)
    else:
        image_shape = (batch_size, CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    x = pt.tensor4("x", shape=image_shape, dtype="float32")
    weights = pt.tensor4("W", shape=(CHANNELS, CHANNELS, KERNEL_SIZE, KERNEL_SIZE), dtype="float32")
    bias = pt.vector("b", shape=(CHANNELS,), dtype="float32")
    upstream = pt.tensor4("r", shape=image_shape, dtype="float32")
    cost = pt.sum(conv2d_same(x, weights, bias, implementation=implementation) * upstream)
    gradients = pytensor.grad(cost, [x, weights, bias])
    return backend.compile_function([x, weights, bias, upstream], [cost, *gradients])


def call(function, inputs):
    """Call ``function`` and convert its outputs to NumPy, so that JAX's work has finished."""
    return [np.asarray(output) for output in function(*inputs)]


class Candidate:
    """One implementation to measure, with a compiled function per batch size."""

    def __init__(self, name, backend_name):
        self.name = name
        self.implementation = name.split(",")[0]
        self.chunked = "unchunked" not in name
        # PyTensor's JAX backend cannot trace the graph formulations with symbolic shapes.
        self.static_shapes = backend_name == "jax" and self.implementation != "op"
        self.functions = {}
        self.result = {"name": name, "static_shapes": self.static_shapes}

    def compile(self, inputs_by_size):
        small, large = BATCH_SIZES
        with batch_chunking(self.chunked):
            start = time.perf_counter()
            self.functions[small] = build_function(self.implementation, small if self.static_shapes else None)
            self.result["compile_s"] = time.perf_counter() - start
            start = time.perf_counter()
            outputs = call(self.functions[small], inputs_by_size[small])
            self.result["first_call_s"] = time.perf_counter() - start

            start = time.perf_counter()
            if self.static_shapes:
                self.functions[large] = build_function(self.implementation, large)
            else:
                self.functions[large] = self.functions[small]
            call(self.functions[large], inputs_by_size[large])
            self.result["first_call_large_s"] = time.perf_counter() - start
        return outputs

    def timed_call(self, batch_size, inputs):
        with batch_chunking(self.chunked):
            start = time.perf_counter()
            call(self.functions[batch_size], inputs)
            return time.perf_counter() - start


def relative_differences(outputs, reference):
    """Return ``max |a - b| / max |b|`` for each output, keyed by output name."""
    names = ("cost", "grad_x", "grad_W", "grad_b")
    return {
        name: float(np.max(np.abs(value - expected)) / np.max(np.abs(expected)))
        for name, value, expected in zip(names, outputs, reference, strict=True)
    }


def measure(backend_name, args):
    """Measure every candidate on one backend in this process and return the results."""
    from dpm import backend

    backend.configure(backend_name, "float32")
    result = {"mode": backend.mode(), "blas_ldflags": backend.blas_ldflags(), "candidates": [],
              "load_average_at_start": list(os.getloadavg())}
    inputs_by_size = {size: draw_inputs(size, seed=size) for size in BATCH_SIZES}

    candidates = []
    reference = None
    for name in candidates_for(backend_name):
        candidate = Candidate(name, backend_name)
        logger.info("compiling %s", name)
        try:
            outputs = candidate.compile(inputs_by_size)
        except Exception as error:  # recorded per candidate; the others still run
            logger.exception("candidate %s failed", name)
            candidate.result["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            result["candidates"].append(candidate.result)
            continue
        if reference is None:
            reference = outputs
        candidate.result["relative_difference"] = relative_differences(outputs, reference)
        logger.info("%s: compile %.2f s, first call %.2f s", name, candidate.result["compile_s"],
                    candidate.result["first_call_s"])
        candidates.append(candidate)
        result["candidates"].append(candidate.result)

    for batch_size, rounds in zip(BATCH_SIZES, (args.rounds, args.large_rounds), strict=True):
        inputs = inputs_by_size[batch_size]
        for candidate in candidates:
            for _ in range(WARMUP_CALLS):
                candidate.timed_call(batch_size, inputs)
        durations = {candidate.name: [] for candidate in candidates}
        for _ in range(rounds):
            for candidate in candidates:
                durations[candidate.name].append(candidate.timed_call(batch_size, inputs))
        for candidate in candidates:
            stats = step_statistics(durations[candidate.name])
            candidate.result.setdefault("timing", {})[str(batch_size)] = stats
            logger.info("%s at batch %d: median %.1f ms (IQR %.1f)", candidate.name, batch_size,
                        stats["median_ms"], stats["iqr_ms"])
    result["load_average_at_end"] = list(os.getloadavg())
    return result


def run_worker(args):
    logging.getLogger("pytensor").setLevel(logging.WARNING)
    try:
        result = measure(args.worker, args)
        status = 0
    except Exception as error:  # reported to the parent, which records it per backend
        logger.exception("measuring backend %r failed", args.worker)
        result = {"error": f"{type(error).__name__}: {error}".splitlines()[0][:300],
                  "traceback": traceback.format_exc(), "candidates": []}
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
