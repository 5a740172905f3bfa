"""Time the held-out bound of the reference MNIST network, exact and with a few steps per image.

Builds the model of ``original_configs/reference_mnist.toml`` at full size (T = 1000, the
multi-scale convolution and the dense pathway, float32) with untrained weights, and its
:class:`~dpm.evaluation.BoundEvaluator`, on the C backend. The images are random
unit-variance rows, which cost what MNIST's would. It measures:

* ``exact``: ``evaluate`` on ``--exact-images`` images over all 999 steps, one chunk;
* ``kl_call``: single calls of the compiled KL at several batch sizes, the median of one
  call at each of the steps 2, 500 and 1000, as milliseconds per image and step;
* ``sampled``: ``evaluate`` with ``t_per_example = --t-per-image`` on ``--sampled-images``
  images in chunks of 4096, as ``dpm evaluate RUN --t-per-image N`` runs it.

From these it extrapolates both evaluations to the 10,000 images of the MNIST test split.
``dpm evaluate`` evaluates chunks of 4096 images, so the exact evaluation makes calls of
4096 images, and the extrapolation uses the cost per image and step of that batch size.
The sampled evaluation makes about ``4096 * N / 999`` images per call and is timed as it
runs. ``OPENBLAS_NUM_THREADS`` is 1 unless set.

Usage::

    python benchmarks/evaluation_cost.py
    python benchmarks/evaluation_cost.py --exact-images 4 --sampled-images 512   # shorter

Writes ``benchmarks/results/evaluation_cost.json`` (through a temporary file) and prints
the same report as JSON.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPOSITORY = Path(__file__).resolve().parent.parent
CONFIG = REPOSITORY / "original_configs" / "reference_mnist.toml"
DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "evaluation_cost.json"
#: Images of the MNIST test split, the target of the extrapolation.
TEST_IMAGES = 10_000
#: The chunk size of ``dpm evaluate`` (``LogLikelihood``'s default ``batch_size``).
CHUNK_SIZE = 4096
CALL_BATCH_SIZES = (16, 256, CHUNK_SIZE)
CALL_STEPS = (2, 500, 1000)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exact-images", type=int, default=16,
                        help="images of the exact evaluation over all steps (default: 16)")
    parser.add_argument("--sampled-images", type=int, default=TEST_IMAGES,
                        help=f"images of the sampled evaluation (default: {TEST_IMAGES})")
    parser.add_argument("--t-per-image", type=int, default=10,
                        help="steps per image of the sampled evaluation (default: 10)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return parser.parse_args(argv)


def time_kl_calls(evaluator, n_dims, rng):
    """Return the median milliseconds per image and step of one KL call, per batch size."""
    per_image_step = {}
    for batch_size in CALL_BATCH_SIZES:
        x0 = rng.standard_normal((batch_size, n_dims)).astype(np.float32)
        times = []
        for step in CALL_STEPS:
            t = np.full(batch_size, step, dtype=np.int32)
            noise = rng.standard_normal((batch_size, n_dims)).astype(np.float32)
            start = time.perf_counter()
            evaluator.kl_function(x0, t, noise)
            times.append(time.perf_counter() - start)
        per_image_step[str(batch_size)] = 1e3 * float(np.median(times)) / batch_size
    return per_image_step


def measure(args):
    from dpm import backend

    backend.configure("c", "float32")
    from dpm.evaluation import BoundEvaluator
    from dpm.models.image_config import build_image_model, load_image_config

    config = load_image_config(CONFIG)
    model = build_image_model(config)
    model.initialize(np.random.default_rng(0))
    T = model.trajectory_length
    start = time.perf_counter()
    evaluator = BoundEvaluator(model)
    compile_seconds = time.perf_counter() - start
    rng = np.random.default_rng(1)

    exact_images = rng.standard_normal((args.exact_images, model.n_dims)).astype(np.float32)
    start = time.perf_counter()
    evaluator.evaluate(exact_images, seed=2, batch_size=CHUNK_SIZE, progress=False)
    exact_seconds = time.perf_counter() - start

    kl_call_ms = time_kl_calls(evaluator, model.n_dims, rng)

    sampled_images = rng.standard_normal((args.sampled_images, model.n_dims)).astype(np.float32)
    start = time.perf_counter()
    evaluator.evaluate(sampled_images, seed=3, batch_size=CHUNK_SIZE, progress=False,
                       t_per_example=args.t_per_image)
    sampled_seconds = time.perf_counter() - start

    exact_ms = 1e3 * exact_seconds / (args.exact_images * (T - 1))
    return {
        "compile_s": compile_seconds,
        "exact": {"images": args.exact_images, "steps": T - 1, "seconds": exact_seconds,
                  "ms_per_image_step": exact_ms},
        "kl_call_ms_per_image_step": kl_call_ms,
        "sampled": {"images": args.sampled_images, "t_per_image": args.t_per_image,
                    "seconds": sampled_seconds,
                    "ms_per_image_step": 1e3 * sampled_seconds
                    / (args.sampled_images * args.t_per_image)},
        "extrapolated_to_test_split": {
            "images": TEST_IMAGES,
            "exact_s": TEST_IMAGES * (T - 1) * kl_call_ms[str(CHUNK_SIZE)] / 1e3,
            "exact_s_from_exact_run": TEST_IMAGES * (T - 1) * exact_ms / 1e3,
            "sampled_s": TEST_IMAGES * sampled_seconds / args.sampled_images,
        },
    }


def main(argv=None):
    args = parse_args(argv)
    from dpm import backend
    from dpm.atomic import write_json
    from dpm.versions import package_versions

    report = {"config": CONFIG.name, "backend": "c", "floatX": "float32",
              "chunk_size": CHUNK_SIZE,
              "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
              "machine": {"processor": platform.processor(), "cpus": os.cpu_count()},
              "versions": package_versions()}
    report.update(measure(args))
    report["blas_ldflags"] = backend.blas_ldflags()
    write_json(args.output, report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
