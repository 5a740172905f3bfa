"""Reproduce Figure 1 and the swiss roll row of Table 1.

Trains the paper's swiss roll model (T = 40, a normalized RBF network of 16 units, per-step
readouts, learned schedule) on the 2-D swiss roll, evaluates K on held-out points with the
exact sum over time steps, compares it with the roll's true log likelihood and the paper's
2.35 bits, and draws the forward and reverse trajectories and the drift as in Figure 1.

    python reproduce/figure1_swiss_roll.py           # the paper's settings
    python reproduce/figure1_swiss_roll.py --quick   # a smoke run of a few seconds
"""

import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

logger = logging.getLogger("figure1_swiss_roll")

#: Every key of original_configs/swiss_roll.toml, with its default.
DEFAULTS = {
    "data": {"n_train": 100_000, "n_test": 20_000, "seed": 20150312},
    "model": {
        "trajectory_length": 40, "n_hidden": 16, "schedule": "learned", "beta_1": 1e-3,
        "parameterization": "reference", "readout_std": 0.1,
    },
    "training": {
        "step_rule": "adam", "learning_rate": 1e-2, "final_learning_rate": 1e-4,
        "batch_size": 200, "n_epochs": 1000, "seed": 1,
    },
    "evaluation": {"n_points": 20_000, "n_samples": 2_000, "seed": 2},
}


def check_config(config, where):
    """Reject invalid values before training starts, naming the file and the key."""
    from dpm.config import check_values, one_of, positive

    whole = (lambda value: value >= 1, "an integer of at least 1")
    rules = {f"{section}.{key}": whole for section, key in (
        ("data", "n_train"), ("data", "n_test"), ("model", "n_hidden"), ("training", "batch_size"),
        ("training", "n_epochs"), ("evaluation", "n_points"), ("evaluation", "n_samples"))}
    rules.update({
        "model.trajectory_length": (lambda value: value >= 2, "an integer of at least 2"),
        "model.schedule": one_of("learned", "reference", "inverse_remaining"),
        "model.parameterization": one_of("direct", "paper", "reference"),
        "model.beta_1": (lambda value: 0 < value < 1, "a number in (0, 1)"),
        "model.readout_std": (positive, "a positive number"),
        "training.step_rule": one_of("adam", "rmsprop"),
        "training.learning_rate": (positive, "a positive number"),
        "training.final_learning_rate": (positive, "a positive number"),
    })
    check_values(config, rules, where)


def main(argv=None):
    manifest, stem = common.reproduce(
        "swiss_roll", "figure1_swiss_roll", __doc__.splitlines()[0], DEFAULTS, check_config,
        run, plot, argv,
    )
    measured, paper = manifest["measured"], manifest["paper"]
    print(
        f"swiss roll: K = {measured['K']:.3f} +- {measured['K_stderr']:.3f} bits "
        f"(paper {paper['K']}), K - L_null = {measured['K_minus_L_null']:.3f} "
        f"(paper {paper['K_minus_L_null']}), true log likelihood {measured['L_true']:.3f} "
        f"+- {measured['L_true_stderr']:.3f} bits; wrote {stem}.png, .pdf, .json"
    )
    return manifest


def run(config, checkpoint_path=None):
    """Train, evaluate and sample; return the numbers and arrays the figure needs.

    The trained model's final checkpoint goes to ``checkpoint_path`` when given.
    """
    from dpm.data import H5Dataset, swiss_roll
    from dpm.diffusion.sampling import ReverseSampler
    from dpm.evaluation import BoundEvaluator
    from dpm.models import SwissRollModel
    from dpm.training.diffusion_training import train_gaussian_model

    data_settings = config["data"]
    path = swiss_roll.default_path()
    if (data_settings != DEFAULTS["data"]):
        name = "swiss_roll_{n_train}_{n_test}_{seed}.hdf5".format(**data_settings)
        path = path.with_name(name)
    path = swiss_roll.load_or_prepare(path, n_train=data_settings["n_train"],
                                      n_test=data_settings["n_test"], seed=data_settings["seed"])
    train = H5Dataset(path, "train", load_in_memory=True)
    test = H5Dataset(path, "test", load_in_memory=True)
    (train_x,) = train.get_data(slice(0, train.num_examples))[:1]
    evaluation = config["evaluation"]
    n_points = min(evaluation["n_points"], test.num_examples)
    (test_x,) = test.get_data(slice(0, n_points))[:1]

    model = SwissRollModel(**config["model"])
    training = config["training"]
    model.initialize(np.random.default_rng(training["seed"]))
    settings = {key: training[key] for key in
                ("step_rule", "learning_rate", "final_learning_rate", "batch_size", "n_epochs")}
    log = train_gaussian_model(model, train_x, settings, seed=training["seed"],
                               checkpoint_path=checkpoint_path)

    bound = BoundEvaluator(model).evaluate(test_x, seed=evaluation["seed"])
    L_true, L_true_stderr = swiss_roll.true_log_likelihood_bits(test_x)
    measured = {
        "K": bound["K"],
        "K_stderr": bound["K_stderr"],
        "K_minus_L_null": bound["K_minus_L_null"],
        "K_minus_L_null_stderr": bound["K_stderr"],  # L_null is a constant
        "L_null": bound["L_null"],
        "L_true": L_true,
        "L_true_stderr": L_true_stderr,
        "gap_L_true_minus_K": L_true - bound["K"],
        "n_test_points": bound["n_points"],
        "kl_sum": bound["kl_sum"],
        "H_q_XT_given_X0": bound["H_q_XT_given_X0"],
        "H_q_X1_given_X0": bound["H_q_X1_given_X0"],
        "H_p_XT": bound["H_p_XT"],
        "K_train_last_epoch": log.records[-1]["K"],
    }
    if bound["K"] > L_true + 3 * np.hypot(bound["K_stderr"], L_true_stderr):
        logger.error("K exceeds the true log likelihood by more than 3 standard errors: a bug")

    sampler = ReverseSampler(model)
    T = model.trajectory_length
    samples, snapshots = sampler.sample(evaluation["n_samples"], seed=evaluation["seed"],
                                        snapshot_steps=(0, T // 2, T))
    forward_rng = np.random.default_rng(evaluation["seed"] + 1)
    forward = forward_trajectory(model, test_x[:evaluation["n_samples"]], (0, T // 2, T), forward_rng)
    grid = np.stack(np.meshgrid(np.linspace(-2.5, 2.5, 17), np.linspace(-2.5, 2.5, 17)), -1).reshape(-1, 2)
    drift_steps = (2, T // 2, T)
    drifts = {step: sampler.drift(grid, step) for step in drift_steps}
    return {
        "measured": measured,
        "forward": forward,
        "reverse": snapshots,
        "grid": grid,
        "drift": drifts,
        "manifest": {
            "learned_beta": model.schedule.beta_numpy().tolist(),
            "kl_per_step_bits": bound["kl_per_step"],
            "nonfinite_steps": log.status["nonfinite_steps"],
        },
    }


def forward_trajectory(model, x0, steps, rng):
    """Return ``{t: xt}`` drawn from the forward marginals ``q(xt | x0)`` of the model's schedule."""
    beta = model.schedule.beta_numpy()
    alphabar = np.concatenate([[1.0], np.cumprod(1.0 - beta)])
    return {t: np.sqrt(alphabar[t]) * x0 + np.sqrt(1 - alphabar[t]) * rng.standard_normal(x0.shape)
            for t in steps}


def plot(results, config):
    """Lay out Figure 1: forward q, reverse p and the drift, at t = 0, T/2, T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = config["model"]["trajectory_length"]
    steps = (0, T // 2, T)
    figure, axes = plt.subplots(3, 3, figsize=(9, 9), sharex=True, sharey=True)
    limit = 2.6
    for column, step in enumerate(steps):
        for row, (label, trajectory) in enumerate((("q", results["forward"]), ("p", results["reverse"]))):
            points = trajectory[step]
            axes[row, column].scatter(points[:, 0], points[:, 1], s=1.5, alpha=0.5, color="C0",
                                      linewidths=0)
            axes[row, column].set_title(f"${label}(\\mathbf{{x}}^{{({step})}})$", fontsize=10)
        drift_step = sorted(results["drift"])[column]
        grid, drift = results["grid"], results["drift"][drift_step]
        axis = axes[2, column]
        axis.scatter(results["reverse"][0][:, 0], results["reverse"][0][:, 1], s=1, alpha=0.15,
                     color="0.6", linewidths=0)
        # Arrows are scaled per panel so that the longest spans one grid cell: the drift's
        # size varies by two orders of magnitude between t = 2 and t = T.
        cell = grid[1, 0] - grid[0, 0]
        longest = np.max(np.linalg.norm(drift, axis=1))
        axis.quiver(grid[:, 0], grid[:, 1], drift[:, 0], drift[:, 1], color="C3",
                    angles="xy", scale_units="xy", scale=longest / cell, width=0.004)
        axis.set_title(f"$f_\\mu(\\mathbf{{x}}^{{({drift_step})}}, {drift_step}) - "
                       f"\\mathbf{{x}}^{{({drift_step})}}$", fontsize=10)
    for axis in axes.flat:
        axis.set_xlim(-limit, limit)
        axis.set_ylim(-limit, limit)
        axis.set_aspect("equal")
        axis.set_xticks([])
        axis.set_yticks([])
    for row, label in enumerate(("forward $q$", "reverse $p$", "drift")):
        axes[row, 0].set_ylabel(label)
    measured = results["measured"]
    figure.suptitle(
        f"Swiss roll, T = {T}: K = {measured['K']:.2f} ± {measured['K_stderr']:.2f} bits, "
        f"true log likelihood {measured['L_true']:.2f} bits", fontsize=11)
    figure.tight_layout()
    return figure


if __name__ == "__main__":
    common.run_script(main)
