"""Time one training step of the reference code's MNIST network on each backend.

Builds the model of ``original_configs/reference_mnist.toml`` at full size (T = 1000, the
multi-scale convolution and the dense pathway, float32) with the step rule of that
configuration, compiles its training step as ``dpm train`` does, and times it at batch 128
on random unit-variance images. Each backend runs in its own process. The table gives the
compile time (with the first call, when Numba and JAX compile) and the median of the timed
steps. ``OPENBLAS_NUM_THREADS`` is 1 unless set (docs/benchmarks.md).

Usage::

    python benchmarks/image_step.py                  # c, numba and jax if installed
    python benchmarks/image_step.py --backends c     # a subset

Writes ``benchmarks/results/image_step.json`` (through a temporary file) and prints a
Markdown table.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import per_backend  # noqa: E402  (benchmarks/per_backend.py, next to this script)


REPOSITORY = Path(__file__).resolve().parent.parent
CONFIG = REPOSITORY / "original_configs" / "reference_mnist.toml"
DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "image_step.json"
BATCH_SIZE = 128
TIMED_STEPS = 10


def measure(backend_name):
    """Compile and time the reference MNIST training step on ``backend_name``."""
    from dpm import backend

    backend.configure(backend_name, "float32")
    from dpm.image_training import build_algorithm
    from dpm.models.image_config import build_image_model, load_image_config

    config = load_image_config(CONFIG)
    model = build_image_model(config)
    model.initialize(np.random.default_rng(0))
    training = dict(config["training"], batch_size=BATCH_SIZE)
    start = time.perf_counter()
    algorithm, _ = build_algorithm(model, training, seed=1)
    rng = np.random.default_rng(2)

    def step():
        batch = {"features": rng.standard_normal((BATCH_SIZE, model.n_dims)).astype(np.float32)}
        algorithm.process_batch(batch)

    step()
    compile_seconds = time.perf_counter() - start
    times = []
    for _ in range(TIMED_STEPS):
        start = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - start))
    return {"compile_and_first_call_s": compile_seconds, "step_ms": times,
            "step_ms_median": float(np.median(times)),
            "n_parameters": int(sum(p.get_value().size for p in model.all_parameters))}


def main(argv=None):
    report = per_backend.run(__file__, __doc__.splitlines()[0], measure, DEFAULT_OUTPUT,
                             {"config": CONFIG.name, "batch_size": BATCH_SIZE,
                              "timed_steps": TIMED_STEPS}, argv)
    if report is None:
        return 0

    print("| backend | compile + first call (s) | step at batch 128 (ms, median) |")
    print("|---|---|---|")
    for name, result in report["backends"].items():
        print(f"| {name} | {result['compile_and_first_call_s']:.1f} | "
              f"{result['step_ms_median']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
