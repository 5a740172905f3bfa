"""Time one training step of the heartbeat model: per-example readouts against grouped, lazy ones.

The heartbeat network has a readout of 50 x 20 weights for each of its 1999 time steps. This
script builds ``HeartbeatModel()`` (T = 2000, float32) with Adam wrapped in
``RemoveNotFinite`` for each backend and each way of training the readouts:

* ``per_example``: every example has its own ``t`` and gathers its own readout; Adam updates
  all 2M readout weights every step;
* ``grouped_lazy``: the batch is 50 blocks of 20 sequences, each block with one ``t``
  (stratified), each block's readout one matrix product, and Adam updates only the 50 rows
  used;
* ``grouped_lazy_basis``: as ``grouped_lazy``, with the readouts' shared part of 20 bumps
  (``readout_basis``), which Adam updates whole (the settings of
  ``original_configs/heartbeat.toml``).

All variants of one backend are built in one process and timed in alternating rounds, so
load from other processes affects them alike. The median over rounds is reported. Inputs
(data rows, ``t`` and noise) are drawn fresh for every call, as in training.

``OPENBLAS_NUM_THREADS`` is 1 unless set: the C backend's matrix products go through NumPy's
OpenBLAS, whose threads slowed steps of this small network by a factor of 10-20 when another
process kept the cores busy.

Usage::

    python benchmarks/heartbeat_step.py                  # c, numba and jax if installed
    python benchmarks/heartbeat_step.py --backends c     # a subset

Writes ``benchmarks/results/heartbeat_step.json`` (through a temporary file) and prints a
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
DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "heartbeat_step.json"
BATCH_SIZE = 1000
T_GROUPS = 50
#: Name -> (t_groups, lazy, readout_basis) of each way of training the readouts.
VARIANTS = {"per_example": (None, False, 0), "grouped_lazy": (T_GROUPS, True, 0),
            "grouped_lazy_basis": (T_GROUPS, True, 20)}
ROUNDS = 7
CALLS_PER_ROUND = 50


def measure(backend_name):
    """Build every variant on ``backend_name`` and return its compile and step times."""
    from dpm import backend

    backend.configure(backend_name, "float32")
    import pytensor.tensor as pt

    from dpm.data import heartbeat
    from dpm.diffusion.draws import draw_t
    from dpm.models import HeartbeatModel
    from dpm.training.algorithm import GradientDescent
    from dpm.training.step_rules import build_step_rule

    rng = np.random.default_rng(0)
    data = heartbeat.sample(20_000, rng).astype(np.float32)
    steps = {}
    results = {}
    for name, (t_groups, lazy, readout_basis) in VARIANTS.items():
        model = HeartbeatModel(readout_basis=readout_basis)
        model.initialize(np.random.default_rng(1))
        x0 = pt.matrix("x0", dtype="float32")
        t = pt.ivector("t")
        noise = pt.matrix("noise", dtype="float32")
        shape = (BATCH_SIZE, model.n_dims)
        K = pt.mean(model.bound_estimate(pt.specify_shape(x0, shape), t,
                                         pt.specify_shape(noise, shape), t_groups=t_groups)["K"])
        start = time.perf_counter()
        algorithm = GradientDescent(-K, model.all_parameters,
                                    build_step_rule("adam", 3e-3, lazy=lazy), [x0, t, noise],
                                    {"K": K}, prepare_inputs=lambda batch: batch)

        def step(function=algorithm.function, t_groups=t_groups):
            rows = rng.integers(0, len(data), BATCH_SIZE)
            function(data[rows], draw_t(rng, BATCH_SIZE, model.trajectory_length, "stratified",
                                        t_groups),
                     rng.random(shape, dtype=np.float32))

        step()  # Numba and JAX compile on the first call
        results[name] = {"compile_and_first_call_s": time.perf_counter() - start, "step_ms": []}
        steps[name] = step
    for _ in range(ROUNDS):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(CALLS_PER_ROUND):
                step()
            results[name]["step_ms"].append(1e3 * (time.perf_counter() - start) / CALLS_PER_ROUND)
    for result in results.values():
        result["step_ms_median"] = float(np.median(result["step_ms"]))
    return results


def main(argv=None):
    report = per_backend.run(__file__, __doc__.splitlines()[0], measure, DEFAULT_OUTPUT,
                             {"batch_size": BATCH_SIZE, "t_groups": T_GROUPS, "rounds": ROUNDS,
                              "calls_per_round": CALLS_PER_ROUND}, argv)
    if report is None:
        return 0

    print("| backend | variant | compile + first call (s) | step (ms, median) |")
    print("|---|---|---|---|")
    for name, variants in report["backends"].items():
        for variant, result in variants.items():
            print(f"| {name} | {variant} | {result['compile_and_first_call_s']:.1f} | "
                  f"{result['step_ms_median']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
