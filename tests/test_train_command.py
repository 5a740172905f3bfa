"""`dpm train`, `dpm evaluate` and `dpm sample` end to end on a tiny synthetic image data set.

The data file takes the place of MNIST at its default path: 80 random 8-bit 1x8x8 images, 64 for
training and 16 held out. The model is tiny (T = 10, one convolutional layer of 2 channels),
so a 2-epoch run of 4 batches per epoch takes a few seconds, most of it compiling.
"""

import json
import logging
import math
import shutil

import numpy as np
import pytest

from dpm import image_training
from dpm.cli import main
from dpm.data.hdf5 import write_dataset
from dpm.data.mnist import default_path
from dpm.data.pixel_statistics import statistics_attrs
from dpm.image_run import bits_per_dimension, evaluation_file_name, sample_file_name
from dpm.training import read_stats
from dpm.training.checkpoint import load_checkpoint
from dpm.training.extensions import SimpleExtension

N_TRAIN, N_TEST = 64, 16
CONFIG = """
[data]
dataset = "mnist"
n_colors = 1
height = 8
width = 8

[model]
trajectory_length = 10
n_temporal_basis = 3
n_layers_conv = 1
n_hidden_conv = 2
n_hidden_dense_lower = 8
n_hidden_dense_upper = 4

[training]
batch_size = 16
n_epochs = {n_epochs}
seed = 3

[evaluation]
n_images = 16
seed = 4
"""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def pixels():
    """Write the data file at MNIST's default path and return its uint8 images."""
    images = np.random.default_rng(0).integers(0, 256, size=(N_TRAIN + N_TEST, 1, 8, 8),
                                               dtype=np.uint8)
    write_dataset(
        default_path(),
        sources={"features": (images, ("batch", "channel", "height", "width"))},
        splits={"train": (0, N_TRAIN), "test": (N_TRAIN, N_TRAIN + N_TEST)},
        attrs=statistics_attrs(images[:N_TRAIN]),
        overwrite=True,
    )
    return images


def write_config(folder, name, n_epochs=2, extra="", training=""):
    """Write the tiny configuration, with ``training`` lines added to its [training] section."""
    path = folder / f"{name}.toml"
    text = CONFIG.format(n_epochs=n_epochs).replace("seed = 3\n", "seed = 3\n" + training)
    path.write_text(text + extra)
    return path


@pytest.fixture(scope="module")
def trained(pixels, tmp_path_factory):
    """Train the tiny model for 2 epochs with `dpm train` and return its run folder."""
    folder = tmp_path_factory.mktemp("train")
    config = write_config(folder, "tiny")
    assert main(["train", str(config), "--runs", str(folder / "runs")]) == 0
    return folder / "runs" / "tiny" / "001"


def assert_png(path):
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path


def test_train_writes_run_folder(trained):
    for name in ("config.json", "stats.jsonl", "checkpoint.npz"):
        assert (trained / name).is_file(), name
    for name in ("monitors", "samples", "inpainting", "inpainting_input", "denoising",
                 "denoising_input"):
        assert_png(trained / "plots" / f"{name}.png")
    config = json.loads((trained / "config.json").read_text())
    assert config["training"]["n_epochs"] == 2
    assert config["data_file"] == str(default_path())


def test_train_logs_held_out_bound(trained):
    records = [record for record in read_stats(trained / "stats.jsonl") if "test_K" in record]
    assert [record["epoch"] for record in records] == [1, 2]
    for record in records:
        assert np.isfinite(record["test_K_minus_L_null"])
        assert record["test_K_minus_L_null_stderr"] > 0


def test_evaluate_matches_training_log(trained, capsys):
    assert main(["evaluate", str(trained)]) == 0
    report = json.loads(capsys.readouterr().out)
    last = [record for record in read_stats(trained / "stats.jsonl") if "test_K" in record][-1]
    # Same points, dequantization noise and draws of xt as the run's last evaluation.
    assert report["K_minus_L_null"] == pytest.approx(last["test_K_minus_L_null"], rel=1e-5)
    assert report["K_stderr"] == pytest.approx(last["test_K_stderr"], rel=1e-5)
    assert report["n_points"] == N_TEST
    assert report["n_dims"] == 64
    assert json.loads((trained / "evaluation.json").read_text()) == report


def test_evaluate_bits_per_dimension(trained, pixels, capsys):
    assert main(["evaluate", str(trained)]) == 0
    report = json.loads(capsys.readouterr().out)
    # The data were scaled by s = 1 / std of the training pixels in [0, 1] units, so the
    # bits per dimension of the 8-bit data are -K / D + log2(255 / s).
    s = 1.0 / np.std(pixels[:N_TRAIN] / 255.0)
    expected = -report["K"] / 64 + np.log2(255.0 / s)
    assert report["bits_per_dimension"] == pytest.approx(expected, rel=1e-9)
    assert bits_per_dimension(-64 * 3.0, 64, 1.0) == 3.0


@pytest.mark.parametrize("options, names", [
    ([], ["samples-seed0.png"]),
    (["--inpaint"], ["inpainting-seed0.png", "inpainting-seed0-input.png"]),
    (["--denoise", "0.5"], ["denoising-sigma0.5-seed0.png", "denoising-sigma0.5-seed0-input.png"]),
    (["--denoise", "2", "--seed", "1"],
     ["denoising-sigma2-seed1.png", "denoising-sigma2-seed1-input.png"]),
    (["--size", "8", "8"], ["samples-seed0.png"]),
])
def test_sample_writes_png(trained, capsys, options, names):
    assert main(["sample", str(trained), "--n-images", "4", *options]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(trained / "samples" / name) for name in names]
    for name in names:
        assert_png(trained / "samples" / name)


def test_sample_size_needs_conv_only_model(trained, capsys):
    assert main(["sample", str(trained), "--size", "16", "16"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("dpm: error: ")
    assert error.count("\n") == 1
    assert "dense pathway" in error


def test_resume_continues_run(trained, tmp_path):
    run = tmp_path / "001"
    shutil.copytree(trained, run)
    before = [record for record in read_stats(run / "stats.jsonl") if not record.get("partial")]
    longer = write_config(tmp_path, "tiny", n_epochs=3)
    assert main(["train", str(longer), "--resume", str(run), "--runs", str(tmp_path / "runs")]) == 0
    after = [record for record in read_stats(run / "stats.jsonl") if not record.get("partial")]
    assert [record["epoch"] for record in after if "test_K" in record] == [1, 2, 3]
    assert after[:len(before)] == before
    assert not (tmp_path / "runs").exists()


def test_train_rejects_unknown_key(pixels, tmp_path, capsys):
    config = write_config(tmp_path, "bad", extra="\n[quick]\nmodel = { n_hiden_conv = 3 }\n")
    assert main(["train", str(config), "--runs", str(tmp_path / "runs")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("dpm: error: ")
    assert error.count("\n") == 1
    assert "'n_hiden_conv'" in error
    assert not (tmp_path / "runs").exists()


def test_evaluate_n_images(trained, capsys):
    assert main(["evaluate", str(trained), "--n-images", "8"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_points"] == 8


def test_evaluate_all_steps_equal_exact(trained, capsys):
    assert main(["evaluate", str(trained)]) == 0
    exact = json.loads(capsys.readouterr().out)
    # T = 10: 9 stratified steps per image are the steps 2..10, each once.
    assert main(["evaluate", str(trained), "--t-per-image", "9"]) == 0
    every_step = json.loads(capsys.readouterr().out)
    assert exact["exact"] is True
    assert every_step["exact"] is False
    assert exact["t_per_image"] == every_step["t_per_image"] == 9
    for name in ("K", "K_stderr", "K_minus_L_null", "K_minus_L_null_stderr"):
        assert every_step[name] == exact[name], name


def test_evaluate_t_per_image_agrees(trained, capsys, caplog):
    assert main(["evaluate", str(trained)]) == 0
    exact = json.loads(capsys.readouterr().out)
    with caplog.at_level(logging.INFO, logger="dpm.image_run"):
        assert main(["evaluate", str(trained), "--t-per-image", "2"]) == 0
    sampled = json.loads(capsys.readouterr().out)
    assert sampled["t_per_image"] == 2
    assert abs(sampled["K"] - exact["K"]) < 4 * sampled["K_stderr"]
    # The estimate goes to its own file and leaves the exact value in place.
    assert json.loads((trained / "evaluation-t2.json").read_text()) == sampled
    assert json.loads((trained / "evaluation.json").read_text()) == exact
    assert f"wrote {trained / 'evaluation-t2.json'}" in [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("arguments, name", [
    (("samples", 0), "samples-seed0.png"),
    (("samples", 3, None, (32, 16)), "samples-32x16-seed3.png"),
    (("inpainting", 0), "inpainting-seed0.png"),
    (("denoising", 0, 0.5), "denoising-sigma0.5-seed0.png"),
    (("denoising", 2, 1.0), "denoising-sigma1-seed2.png"),
    (("denoising", 0, 0.125), "denoising-sigma0.125-seed0.png"),
])
def test_sample_file_name_cases(arguments, name):
    assert sample_file_name(*arguments) == name


def test_evaluation_file_name_cases():
    assert evaluation_file_name() == "evaluation.json"
    assert evaluation_file_name(5) == "evaluation-t5.json"


def test_evaluate_rejects_too_many_steps(trained, capsys):
    assert main(["evaluate", str(trained), "--t-per-image", "10"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("dpm: error: ")
    assert error.count("\n") == 1
    assert "t_per_image must be an integer from 1 to T - 1 = 9, got 10" in error


def test_evaluate_run_without_decay_key(trained, tmp_path, capsys):
    """A run folder written before learning_rate_decay existed still evaluates."""
    run = tmp_path / "001"
    shutil.copytree(trained, run)
    config = json.loads((run / "config.json").read_text())
    del config["training"]["learning_rate_decay"]
    del config["training"]["decay_every_n_batches"]
    (run / "config.json").write_text(json.dumps(config))
    assert main(["evaluate", str(run)]) == 0
    assert json.loads(capsys.readouterr().out)["n_points"] == N_TEST


# Learning-rate decay -------------------------------------------------------------------------

# 4 batches per epoch, a decay every 3 batches. The initial rate is so close to the floor of
# 1e-4 that the rate reaches it at the 4th decay, after 12 batches, in the resumed third
# epoch: 1.007e-4 * 0.9977**4 < 1e-4 < 1.007e-4 * 0.9977**3.
INITIAL_RATE = 1.007e-4
DECAY_EVERY = 3
BATCHES_PER_EPOCH = N_TRAIN // 16
DECAY = f"""learning_rate = {INITIAL_RATE}
learning_rate_decay = "reference"
decay_every_n_batches = {DECAY_EVERY}
"""


def closed_form_rate(n_batches):
    """Return the reference code's rate after ``n_batches`` batches."""
    factor = math.exp(math.log(0.1) / 1000)
    return max(INITIAL_RATE * factor ** (n_batches // DECAY_EVERY), 1e-4)


def checkpoint_values(run):
    with np.load(run / "checkpoint.npz") as checkpoint:
        return {key: checkpoint[key] for key in checkpoint.files if ":" in key}


@pytest.fixture(scope="module")
def decayed(pixels, tmp_path_factory):
    """Train 2 epochs with the reference decay and return the run folder."""
    folder = tmp_path_factory.mktemp("decay")
    config = write_config(folder, "decay", training=DECAY)
    assert main(["train", str(config), "--runs", str(folder / "runs")]) == 0
    return folder / "runs" / "decay" / "001"


def test_decay_follows_closed_form(decayed):
    records = [record for record in read_stats(decayed / "stats.jsonl")
               if not record.get("partial")]
    assert [record["epoch"] for record in records] == [1, 2]
    for record in records:
        expected = closed_form_rate(record["epoch"] * BATCHES_PER_EPOCH)
        assert record["learning_rate"] == pytest.approx(expected, rel=1e-6)
    rate = checkpoint_values(decayed)["step_rule:step_rule.learning_rate"]
    assert float(rate) == pytest.approx(closed_form_rate(2 * BATCHES_PER_EPOCH), rel=1e-6)
    assert closed_form_rate(2 * BATCHES_PER_EPOCH) > 1e-4


def test_decay_resumed_equals_uninterrupted(decayed, tmp_path):
    run = tmp_path / "001"
    shutil.copytree(decayed, run)
    longer = write_config(tmp_path, "decay", n_epochs=3, training=DECAY)
    assert main(["train", str(longer), "--resume", str(run), "--runs", str(tmp_path / "runs")]) == 0
    assert main(["train", str(longer), "--runs", str(tmp_path / "runs")]) == 0
    straight = tmp_path / "runs" / "decay" / "001"

    resumed_values, straight_values = checkpoint_values(run), checkpoint_values(straight)
    rate = "step_rule:step_rule.learning_rate"
    assert float(resumed_values[rate]) == float(straight_values[rate])
    assert float(resumed_values[rate]) == pytest.approx(closed_form_rate(12), rel=1e-6)
    assert closed_form_rate(12) == 1e-4
    assert sorted(resumed_values) == sorted(straight_values)
    for key, value in straight_values.items():
        np.testing.assert_array_equal(resumed_values[key], value, err_msg=key)


def test_train_rejects_unknown_decay(pixels, tmp_path, capsys):
    config = write_config(tmp_path, "bad", training='learning_rate_decay = "cosine"\n')
    assert main(["train", str(config), "--runs", str(tmp_path / "runs")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("dpm: error: ")
    assert "[training] learning_rate_decay = 'cosine' is invalid" in error
    assert "['none', 'reference']" in error
    assert not (tmp_path / "runs").exists()


# Resuming with another configuration, or a finished run ------------------------------------


def test_resume_rejects_other_model(trained, tmp_path, capsys):
    run = tmp_path / "001"
    shutil.copytree(trained, run)
    checkpoint = (run / "checkpoint.npz").read_bytes()
    other = write_config(tmp_path, "tiny").read_text().replace("n_hidden_conv = 2", "n_hidden_conv = 3")
    (tmp_path / "other.toml").write_text(other)
    assert main(["train", str(tmp_path / "other.toml"), "--resume", str(run)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("dpm: error: ")
    assert error.count("\n") == 1
    started_from = json.loads((run / "config.json").read_text())["config_file"]
    assert f"started from {started_from} without --quick" in error
    assert "differs in [model]" in error
    assert "Resume with the same CONFIG and --quick as the run was started with" in error
    assert f"resolved configuration is {run / 'config.json'}" in error
    assert (run / "checkpoint.npz").read_bytes() == checkpoint


def test_resume_rejects_other_quick_flag(trained, tmp_path, capsys):
    run = tmp_path / "001"
    shutil.copytree(trained, run)
    config = write_config(tmp_path, "tiny", extra="\n[quick]\nevaluation = { n_images = 8 }\n")
    assert main(["train", str(config), "--quick", "--resume", str(run)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"and {config} with --quick differs in --quick" in error
    assert "resolved configuration is" in error


def test_resume_finished_run_reports_complete(trained, tmp_path, capsys, caplog):
    run = tmp_path / "001"
    shutil.copytree(trained, run)
    stats = (run / "stats.jsonl").read_text()
    config = write_config(tmp_path, "tiny")
    with caplog.at_level(logging.INFO, logger="dpm.image_training"):
        assert main(["train", str(config), "--resume", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run)
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"run {run} is complete: 2 of 2 epochs done" in message
               and "n_epochs is larger than 2" in message for message in messages), messages
    assert not any("resuming training" in message for message in messages)
    assert (run / "stats.jsonl").read_text() == stats


# Ctrl-C during training ----------------------------------------------------------------------


class InterruptAfterFirstBatch(SimpleExtension):
    """Raise KeyboardInterrupt after the run's first batch, as Ctrl-C there would."""

    def __init__(self):
        super().__init__(every_n_batches=1)

    def do(self, event, main_loop):
        raise KeyboardInterrupt


def test_train_interrupt_prints_resume_command(pixels, tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, "stopped")
    # The decay extension is the one optional extension, so it is where the test adds its own.
    monkeypatch.setattr(image_training, "build_learning_rate_decay",
                        lambda training, learning_rate: InterruptAfterFirstBatch())
    assert main(["train", str(config), "--runs", str(tmp_path / "runs")]) == 130
    run = tmp_path / "runs" / "stopped" / "001"
    captured = capsys.readouterr()
    assert captured.out == ""
    # The progress bar writes to stderr before the message, which is the last line.
    assert captured.err.endswith("\n")
    assert captured.err.splitlines()[-1] == (f"interrupted; checkpoint written to {run}; "
                                             f"continue with: dpm train {config} --resume {run}")
    assert "Traceback" not in captured.err
    _, _, state = load_checkpoint(run / "checkpoint.npz")
    assert state["log"]["status"]["iterations_done"] == 1

    monkeypatch.undo()
    assert main(["train", str(config), "--resume", str(run)]) == 0
    _, _, state = load_checkpoint(run / "checkpoint.npz")
    assert state["log"]["status"]["epochs_done"] == 2


@pytest.mark.parametrize("command", [["evaluate"], ["sample"], ["train", "CONFIG", "--resume"]])
def test_missing_run_folder_named(tmp_path, capsys, command):
    missing = tmp_path / "runs" / "x" / "099"
    config = write_config(tmp_path, "tiny")
    argv = [str(config) if word == "CONFIG" else word for word in command]
    assert main([*argv, str(missing)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"run folder {missing} not found" in error
    assert "`dpm train CONFIG` creates run folders" in error
    assert "run_training" not in error


def test_folder_without_config_rejected(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert f"{tmp_path / 'config.json'} not found, so {tmp_path} is not a run folder" in error
    assert "`dpm train` created" in error


def test_train_interrupt_before_training(pixels, tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, "early")

    def interrupt(training, learning_rate):
        raise KeyboardInterrupt

    # The decay extension is built after compiling and before the run folder exists.
    monkeypatch.setattr(image_training, "build_learning_rate_decay", interrupt)
    assert main(["train", str(config), "--runs", str(tmp_path / "runs")]) == 130
    error = capsys.readouterr().err
    assert error == "interrupted before training started, so no checkpoint was written\n"
    assert not (tmp_path / "runs").exists()


def test_checkpoint_file_as_run_rejected(trained, capsys):
    checkpoint = trained / "checkpoint.npz"
    assert main(["evaluate", str(checkpoint)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"{checkpoint} is a file, not a run folder" in error
    assert f"e.g. {trained} for its checkpoint" in error
