"""Reproduce Figure 2 and the binary heartbeat row of Table 1.

Trains the paper's heartbeat model (binomial diffusion with T = 2000 and pi = Bernoulli(0.2),
a sigmoid MLP with three hidden layers of 50 units and per-step readouts) on length-20 binary
sequences with a pulse every 5th bin, evaluates K on held-out sequences with the exact sum
over time steps, compares it with the true log likelihood log2(1/5) and the paper's -2.414
bits, and draws samples beside the binomial noise they started from, as in Figure 2.

    python reproduce/figure2_heartbeat.py           # the paper's settings
    python reproduce/figure2_heartbeat.py --quick   # a smoke run of a few seconds
"""

import logging
import os
import sys
from pathlib import Path

# The network's matrices are at most 1000 x 50, too small for OpenBLAS's threads to help. When
# the cores are busy, those threads spin and made a training step 10-20 times slower in our
# runs (docs/benchmarks.md). OpenBLAS reads the variable when NumPy loads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

logger = logging.getLogger("figure2_heartbeat")

#: Every key of original_configs/heartbeat.toml, with its default.
DEFAULTS = {
    "data": {"n_train": 20_000, "n_test": 10_000, "seed": 20150503},
    "model": {
        "trajectory_length": 2000, "n_hidden": 50, "n_layers": 3, "p": 0.2,
        "parameterization": "forward_offset", "hidden_std": 0.5, "readout_std": 0.01,
        "readout_basis": 0, "readout_basis_width": "reference",
    },
    "training": {
        "step_rule": "adam", "learning_rate": 3e-3, "final_learning_rate": 1e-4,
        "batch_size": 1000, "n_epochs": 7500, "t_sampling": "stratified", "t_groups": 50,
        "lazy": True, "row_scale": 10.0, "seed": 1,
    },
    "evaluation": {"n_points": 4000, "n_samples": 1000, "n_figure_rows": 30, "seed": 2},
}


def check_config(config, where):
    """Reject invalid values before training starts, naming the file and the key."""
    from dpm.config import ConfigError, check_values, one_of, positive

    whole = (lambda value: value >= 1, "an integer of at least 1")
    rules = {f"{section}.{key}": whole for section, key in (
        ("data", "n_train"), ("data", "n_test"), ("model", "n_hidden"), ("model", "n_layers"),
        ("training", "batch_size"), ("training", "n_epochs"), ("evaluation", "n_points"),
        ("evaluation", "n_samples"), ("evaluation", "n_figure_rows"))}
    rules.update({
        "model.trajectory_length": (lambda value: value >= 2, "an integer of at least 2"),
        "model.p": (lambda value: 0 < value < 1, "a number in (0, 1)"),
        "model.parameterization": one_of("direct", "forward_offset"),
        "model.hidden_std": (positive, "a positive number"),
        "model.readout_std": (positive, "a positive number"),
        "model.readout_basis": (lambda value: value == 0 or value >= 2, "0 or an integer of at least 2"),
        "model.readout_basis_width": one_of("reference", "paper"),
        "training.step_rule": one_of("adam", "rmsprop"),
        "training.learning_rate": (positive, "a positive number"),
        "training.final_learning_rate": (positive, "a positive number"),
        "training.t_sampling": one_of("uniform", "stratified"),
        "training.t_groups": whole,
        "training.lazy": (lambda value: isinstance(value, bool), "true or false"),
        "training.row_scale": (positive, "a positive number"),
    })
    check_values(config, rules, where)
    training = config["training"]
    if training["batch_size"] % training["t_groups"]:
        raise ConfigError(
            f"{where}: [training] t_groups = {training['t_groups']} does not divide "
            f"batch_size = {training['batch_size']}; choose a divisor"
        )
    evaluation = config["evaluation"]
    if evaluation["n_figure_rows"] > evaluation["n_samples"]:
        raise ConfigError(
            f"{where}: [evaluation] n_figure_rows = {evaluation['n_figure_rows']} exceeds "
            f"n_samples = {evaluation['n_samples']}; lower n_figure_rows"
        )


def main(argv=None):
    manifest, stem = common.reproduce(
        "heartbeat", "figure2_heartbeat", __doc__.splitlines()[0], DEFAULTS, check_config,
        run, plot, argv,
    )
    measured, paper = manifest["measured"], manifest["paper"]
    print(
        f"heartbeat: K = {measured['K']:.3f} +- {measured['K_stderr']:.3f} bits/sequence "
        f"(paper {paper['K']}; best per-bit kernel {measured['K_best_factorized']:.3f}), K - L_null = {measured['K_minus_L_null']:.3f} "
        f"(paper {paper['K_minus_L_null']}), true log likelihood {measured['L_true']:.3f} bits; "
        f"{100 * measured['share_true_sequences']:.1f}% of {measured['n_samples']} samples are "
        f"true sequences; {manifest['seconds'] / 60:.1f} min; wrote {stem}.png, .pdf, .json"
    )
    return manifest


def run(config, checkpoint_path=None):
    """Train, evaluate and sample; return the numbers and arrays the figure needs.

    The trained model's final checkpoint goes to ``checkpoint_path`` when given.
    """
    from dpm.data import H5Dataset, heartbeat
    from dpm.diffusion.sampling import BinomialReverseSampler
    from dpm.evaluation import BoundEvaluator
    from dpm.evaluation.factorized_optimum import FactorizedOptimum
    from dpm.models import HeartbeatModel
    from dpm.training.diffusion_training import train_diffusion_model

    data_settings = config["data"]
    path = heartbeat.default_path()
    if data_settings != DEFAULTS["data"]:
        name = "heartbeat_{n_train}_{n_test}_{seed}.hdf5".format(**data_settings)
        path = path.with_name(name)
    path = heartbeat.load_or_prepare(path, n_train=data_settings["n_train"],
                                     n_test=data_settings["n_test"], seed=data_settings["seed"])
    train = H5Dataset(path, "train", load_in_memory=True)
    test = H5Dataset(path, "test", load_in_memory=True)
    (train_x,) = train.get_data(slice(0, train.num_examples))[:1]
    evaluation = config["evaluation"]
    n_points = min(evaluation["n_points"], test.num_examples)
    (test_x,) = test.get_data(slice(0, n_points))[:1]

    model = HeartbeatModel(n_dims=heartbeat.SEQUENCE_LENGTH, **config["model"])
    training = config["training"]
    model.initialize(np.random.default_rng(training["seed"]))
    settings = {key: training[key] for key in
                ("step_rule", "learning_rate", "final_learning_rate", "batch_size", "n_epochs",
                 "t_sampling", "t_groups", "lazy", "row_scale")}
    log = train_diffusion_model(model, train_x, settings, seed=training["seed"],
                                checkpoint_path=checkpoint_path)

    bound = BoundEvaluator(model).evaluate(test_x, seed=evaluation["seed"])
    L_true, L_true_stderr = heartbeat.true_log_likelihood_bits(test_x)
    samples, noise = BinomialReverseSampler(model).sample(evaluation["n_samples"],
                                                          seed=evaluation["seed"] + 1)
    # The ceiling of the model class: the best K of any per-bit Bernoulli reverse kernel.
    best = FactorizedOptimum(model.trajectory_length, model.diffusion.p,
                             heartbeat.true_sequences()).bound(seed=evaluation["seed"] + 2)
    is_true = heartbeat.is_true_sequence(samples)
    share = float(is_true.mean())
    measured = {
        "K": bound["K"],
        "K_stderr": bound["K_stderr"],
        "K_minus_L_null": bound["K_minus_L_null"],
        "K_minus_L_null_stderr": bound["K_minus_L_null_stderr"],
        "L_null": bound["L_null"],
        "L_true": L_true,
        "L_true_stderr": L_true_stderr,
        "gap_L_true_minus_K": L_true - bound["K"],
        "K_best_factorized": best["K"],
        "K_best_factorized_stderr": best["K_stderr"],
        "n_test_points": bound["n_points"],
        "kl_sum": bound["kl_sum"],
        "H_q_XT_given_X0": bound["H_q_XT_given_X0"],
        "H_q_X1_given_X0": bound["H_q_X1_given_X0"],
        "H_p_XT": bound["H_p_XT"],
        "first_step_term": bound["first_step_term"],
        "share_true_sequences": share,
        "share_true_sequences_stderr": float(np.sqrt(share * (1 - share) / len(samples))),
        "n_samples": int(len(samples)),
        "sample_mean_activity": float(samples.mean()),
        "K_train_last_epoch": log.records[-1]["K"],
    }
    if bound["K"] > L_true + 3 * bound["K_stderr"]:
        logger.error("K exceeds the true log likelihood by more than 3 standard errors: a bug")
    return {
        "measured": measured,
        "samples": samples,
        "noise": noise,
        "manifest": {
            "kl_per_step_bits": bound["kl_per_step"],
            "nonfinite_steps": log.status["nonfinite_steps"],
        },
    }


def shift_to_first_pulse(samples, noise):
    """Roll each sample, and its starting noise by the same amount, so its first 1 is in column 0."""
    from dpm.data import heartbeat

    shifts = heartbeat.first_pulse(samples)
    columns = (np.arange(samples.shape[1])[None, :] + shifts[:, None]) % samples.shape[1]
    rows = np.arange(len(samples))[:, None]
    return samples[rows, columns], noise[rows, columns]


def plot(results, config):
    """Lay out Figure 2: generated samples on the left, the noise each started from on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows = config["evaluation"]["n_figure_rows"]
    samples, noise = shift_to_first_pulse(results["samples"][:n_rows], results["noise"][:n_rows])
    figure, axes = plt.subplots(1, 2, figsize=(8, 0.18 * n_rows + 1.2))
    for axis, image, title in ((axes[0], samples, "generated samples"),
                               (axes[1], noise, "binomial noise they started from")):
        axis.imshow(image, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("bin")
        axis.set_xticks(np.arange(0, image.shape[1], 5))
        axis.set_yticks([])
    axes[0].set_ylabel("sample")
    measured = results["measured"]
    T = config["model"]["trajectory_length"]
    figure.suptitle(
        f"Binary heartbeat, T = {T}: K = {measured['K']:.3f} ± {measured['K_stderr']:.3f} "
        f"bits/sequence, true log likelihood {measured['L_true']:.3f}; "
        f"{100 * measured['share_true_sequences']:.1f}% of samples are true sequences",
        fontsize=10)
    figure.tight_layout()
    return figure


if __name__ == "__main__":
    common.run_script(main)
