"""Resuming training: a stopped and resumed run ends with the same parameters as a straight one.

Every run trains a tiny swiss roll model (T = 5, 3 RBF units) with Adam, a per-epoch
learning-rate decay, shuffled batches, seeded draws of t and noise, and uniform
dequantization noise in the stream, so every kind of state a checkpoint stores matters.
The stops fall in the middle of an epoch. Each run builds and compiles its own model and
algorithm, as a new process would, which costs about 2 s each with a warm compile cache.
"""

import json

import numpy as np
import pytest

import dpm
import dpm.training.checkpoint as checkpoint_module
from dpm.data.transformers import Mapping, UniformDequantize
from dpm.models.swiss_roll import SwissRollModel
from dpm.training import (
    FinishAfter,
    MainLoop,
    SimpleExtension,
    Timing,
    TrainingLog,
    load_checkpoint,
    read_stats,
    resume,
    run_training,
    save_checkpoint,
)
from dpm.training.diffusion_training import build_diffusion_training
from dpm.training.schedules import ExponentialDecay
from dpm.training.step_rules import RMSProp

SETTINGS = {"step_rule": "adam", "learning_rate": 1e-2, "batch_size": 4}
# 24 rows in batches of 4 make 6 batches per epoch, so batch 7 is the first of epoch 2.
N_ROWS = 24
TOTAL_BATCHES = 15
HALF = 7
CONFIG = {"model": {"trajectory_length": 5, "n_hidden": 3}, "training": SETTINGS}
# Values that depend on the wall clock.
TIME_KEYS = ("epoch_seconds", "total_seconds")


class Training:
    """A freshly built model, compiled algorithm and stream, as a new process would build them."""

    def __init__(self, features, interrupt_reading=None):
        self.model = SwissRollModel(trajectory_length=5, n_hidden=3)
        self.model.initialize(np.random.default_rng(0))
        self.parts = build_diffusion_training(self.model, features, SETTINGS, seed=3)
        self.stream = UniformDequantize(self.parts.stream, width=0.05, seed=7)
        if interrupt_reading is not None:
            # Ctrl-C while the stream reads batch interrupt_reading, after the dequantization
            # noise of that batch is drawn. Mapping has no random state, so the stream's
            # random parts stay those of the other runs.
            self.reads = 0
            self.stream = Mapping(self.stream, self._interrupt_at(interrupt_reading))

    def _interrupt_at(self, batch_number):
        def read(sources):
            self.reads += 1
            if self.reads == batch_number:
                raise KeyboardInterrupt
            return {}
        return read

    def extensions(self, after_n_batches, *more):
        learning_rate = self.parts.step_rule.learning_rate
        return [FinishAfter(after_n_batches=after_n_batches), ExponentialDecay(learning_rate, 0.7),
                Timing(), *more]

    def run(self, after_n_batches, *more, **options):
        return run_training(self.model, self.parts.algorithm, self.stream,
                            self.extensions(after_n_batches, *more), config=CONFIG,
                            random_states=self.parts.random_states, **options)

    def values(self):
        """Return every parameter and step-rule state value, keyed by name."""
        values = self.model.get_parameter_values()
        values.update({variable.name: variable.get_value() for variable in self.parts.step_rule.state})
        return values


class InterruptAt(SimpleExtension):
    """Raise KeyboardInterrupt after batch ``at``, as Ctrl-C would."""

    def __init__(self, at):
        super().__init__(every_n_batches=at)

    def do(self, event, main_loop):
        raise KeyboardInterrupt


def without_time(records):
    return [{key: value for key, value in record.items() if key not in TIME_KEYS} for record in records]


def assert_same_values(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        assert actual[name].dtype == value.dtype, name
        assert np.array_equal(actual[name], value), name


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(1).normal(size=(N_ROWS, 2)).astype(np.float32)


@pytest.fixture(scope="module")
def straight(features, tmp_path_factory):
    training = Training(features)
    run = training.run(TOTAL_BATCHES, root=tmp_path_factory.mktemp("runs"), name="straight")
    return {"values": training.values(), "run": run}


@pytest.fixture(scope="module")
def interrupted(features, tmp_path_factory):
    """Stop by KeyboardInterrupt after batch HALF, then resume."""
    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.raises(KeyboardInterrupt):
        Training(features).run(TOTAL_BATCHES, InterruptAt(HALF), run_dir=run_dir)
    return resume_after_stop(features, run_dir)


@pytest.fixture(scope="module")
def interrupted_reading(features, tmp_path_factory):
    """Stop by KeyboardInterrupt while the stream reads batch HALF + 1, then resume."""
    run_dir = tmp_path_factory.mktemp("interrupted_reading") / "run"
    with pytest.raises(KeyboardInterrupt):
        Training(features, interrupt_reading=HALF + 1).run(TOTAL_BATCHES, run_dir=run_dir)
    return resume_after_stop(features, run_dir)


@pytest.fixture(scope="module")
def finished(features, tmp_path_factory):
    """Stop by FinishAfter at batch HALF, then resume with the full limit."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    Training(features).run(HALF, run_dir=run_dir)
    return resume_after_stop(features, run_dir)


def resume_after_stop(features, run_dir):
    """Keep the files that the stop left, then resume in a new build."""
    stopped = {"stats": (run_dir / "stats.jsonl").read_bytes(),
               "config": (run_dir / "config.json").read_bytes(),
               "checkpoint": load_checkpoint(run_dir / "checkpoint.npz")}
    training = Training(features)
    run = training.run(TOTAL_BATCHES, resume_from=run_dir)
    return {"values": training.values(), "run": run, "stopped": stopped, "training": training}


def test_interrupted_resume_bit_identical(straight, interrupted):
    assert_same_values(interrupted["values"], straight["values"])


def test_interrupted_reading_resume_bit_identical(straight, interrupted_reading):
    assert_same_values(interrupted_reading["values"], straight["values"])


def test_finished_resume_bit_identical(straight, finished):
    assert_same_values(finished["values"], straight["values"])


def test_resume_trains_remaining_batches(straight, interrupted, interrupted_reading, finished):
    for scenario in (straight, interrupted, interrupted_reading, finished):
        status = scenario["run"].log.status
        assert status["iterations_done"] == TOTAL_BATCHES
        assert status["epochs_done"] == 2
        assert status["batches_in_epoch"] == 3


def test_resumed_log_matches_straight(straight, interrupted, interrupted_reading, finished):
    expected = without_time(straight["run"].log.records)
    assert [record["epoch"] for record in expected] == [1, 2, 3]
    assert expected[-1]["partial"] is True
    for scenario in (interrupted, interrupted_reading, finished):
        assert without_time(scenario["run"].log.records) == expected


def test_stop_checkpoint_mid_epoch(finished):
    _, step_rule, state = finished["stopped"]["checkpoint"]

    assert state["dpm_version"] == dpm.__version__
    status = state["log"]["status"]
    assert status["iterations_done"] == HALF
    assert status["epochs_done"] == 1
    assert status["batches_in_epoch"] == 1
    assert "finish_requested" not in status
    assert state["log"]["running_epoch"]["counts"]["K"] == 1
    loop = state["loop"]
    assert sorted(loop["random_states"]) == ["draws"]
    parts = ["UniformDequantize", "ShuffledScheme"]
    assert [part["part"] for part in loop["stream"]] == parts
    assert [part["part"] for part in loop["epoch_start_stream"]] == parts
    assert loop["stream"] != loop["epoch_start_stream"]
    assert sorted(loop["extensions"]) == ["ExponentialDecay", "StatsWriter", "Timing"]
    assert float(step_rule["step_rule.time"]) == HALF
    assert float(step_rule["step_rule.learning_rate"]) == pytest.approx(1e-2 * 0.7, rel=1e-6)


@pytest.mark.parametrize("scenario", ["interrupted", "interrupted_reading"])
def test_interrupt_checkpoint_mid_epoch(request, scenario):
    _, _, state = request.getfixturevalue(scenario)["stopped"]["checkpoint"]

    assert state["log"]["status"]["iterations_done"] == HALF
    assert state["log"]["status"]["batches_in_epoch"] == 1
    assert state["log"]["records"][-1]["partial"] is True


@pytest.mark.parametrize("scenario", ["interrupted", "interrupted_reading", "finished"])
def test_stats_append_only(request, straight, scenario):
    resumed = request.getfixturevalue(scenario)
    path = resumed["run"].run_dir / "stats.jsonl"
    content = path.read_bytes()

    assert content.startswith(resumed["stopped"]["stats"])
    lines = [json.loads(line) for line in content.decode().splitlines()]
    # Epoch 1, the partial epoch 2 of the stop, then epoch 2 and the partial epoch 3.
    assert [(line["epoch"], line.get("partial", False)) for line in lines] == [
        (1, False), (2, True), (2, False), (3, True)]
    assert without_time(read_stats(path)) == without_time(straight["run"].log.records)


def test_resume_keeps_config(finished):
    config = (finished["run"].run_dir / "config.json").read_bytes()

    assert config == finished["stopped"]["config"]
    assert json.loads(config) == json.loads(json.dumps(CONFIG))


def test_killed_checkpoint_write_then_resume(features, straight, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    real_savez = np.savez
    writes = []

    def savez_failing_on_second_write(file, **arrays):
        writes.append(file)
        if len(writes) == 1:
            return real_savez(file, **arrays)
        file.write(b"PK\x03\x04 partial archive")
        raise OSError("simulated full disk")

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_module.np, "savez", savez_failing_on_second_write)
        with pytest.raises(OSError, match="simulated full disk"):
            Training(features).run(TOTAL_BATCHES, run_dir=run_dir, checkpoint_every_n_epochs=1)

    # The write after epoch 1 survives, and the one after epoch 2 failed and left no file.
    _, _, state = load_checkpoint(run_dir / "checkpoint.npz")
    assert state["log"]["status"]["iterations_done"] == 6
    names = sorted(path.name for path in run_dir.iterdir())
    assert names == ["checkpoint.npz", "config.json", "stats.jsonl"]

    # A process killed by a signal during a write leaves its temporary file behind.
    (run_dir / ".checkpoint.npz.k1ll3d.tmp").write_bytes(b"PK\x03\x04 truncated")
    training = Training(features)
    training.run(TOTAL_BATCHES, resume_from=run_dir)

    assert_same_values(training.values(), straight["values"])
    assert not list(run_dir.glob(".*.tmp"))


def test_resume_rejects_other_stream(finished):
    training = finished["training"]
    # Without the dequantization transformer the stream has other random parts.
    main_loop = MainLoop(training.parts.algorithm, training.parts.stream, [],
                         random_states=training.parts.random_states)

    with pytest.raises(ValueError, match="UniformDequantize"):
        resume(finished["run"].run_dir, main_loop, training.model)


def test_resume_rejects_other_random_sources(finished):
    training = finished["training"]
    main_loop = MainLoop(training.parts.algorithm, training.stream, [])

    with pytest.raises(ValueError, match="random states \\['draws'\\]"):
        resume(finished["run"].run_dir, main_loop, training.model)


def test_resume_rejects_plain_checkpoint(tmp_path):
    model = SwissRollModel(trajectory_length=5, n_hidden=3)
    model.initialize(np.random.default_rng(0))
    save_checkpoint(tmp_path / "checkpoint.npz", model, RMSProp(), TrainingLog(), {})

    with pytest.raises(ValueError, match="no main-loop state"):
        resume(tmp_path, MainLoop(None, [], []), model)


def test_resume_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint.npz"):
        resume(tmp_path, MainLoop(None, [], []), None)
