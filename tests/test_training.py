"""Tests of dpm.training: step rules, the main loop, extensions, checkpoints and schedules.

Step rules are checked in float64 against NumPy reimplementations on a two-parameter
quadratic cost. Each compiled function is built once per module fixture, because a
PyTensor compile costs seconds, and tests reset the shared values before use.
"""

import json
import logging

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import dpm.training.checkpoint as checkpoint_module
from dpm.bricks import Brick, Constant
from dpm.data.streams import ArrayDataset, DataStream, SequentialScheme
from dpm.models.swiss_roll import SwissRollModel
from dpm.training import (
    Adam,
    Checkpoint,
    FinishAfter,
    GradientDescent,
    MainLoop,
    RemoveNotFinite,
    RMSProp,
    SimpleExtension,
    StatsWriter,
    TrainingLog,
    load_checkpoint,
    restore_step_rule,
    save_checkpoint,
)
from dpm.training.diffusion_training import train_gaussian_model
from dpm.training.schedules import ExponentialDecay, decay_factor

INITIAL_W = np.array([0.5, -1.0])
# Small enough that RMSProp's floor 1 / max_scaling bounds c's step (see RMSPROP_SETTINGS).
INITIAL_C = 0.01

RMSPROP_SETTINGS = {"learning_rate": 0.05, "decay_rate": 0.7, "max_scaling": 4.0}
ADAM_SETTINGS = {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-3}


# NumPy float64 references ------------------------------------------------------------


def quadratic_cost_and_gradients(w, c, batch):
    """Return the cost ``mean(s |x - w|^2) + mean(k) c^2`` and its gradients in w and c."""
    x, s, k = batch["x"], batch["s"], batch["k"]
    cost = np.mean(s * np.sum((x - w) ** 2, axis=1)) + np.mean(k) * c**2
    grad_w = np.mean(s[:, None] * 2.0 * (w - x), axis=0)
    grad_c = 2.0 * np.mean(k) * c
    return cost, [grad_w, np.asarray(grad_c)]


class ReferenceRMSProp:
    def __init__(self, learning_rate, decay_rate, max_scaling):
        self.learning_rate = learning_rate
        self.decay_rate = decay_rate
        self.max_scaling = max_scaling
        self.mean_squares = None

    def step(self, parameters, gradients):
        if self.mean_squares is None:
            self.mean_squares = [np.zeros_like(p) for p in parameters]
        new_parameters = []
        for index, (parameter, gradient) in enumerate(zip(parameters, gradients)):
            mean_square = self.decay_rate * self.mean_squares[index] + (1 - self.decay_rate) * gradient**2
            self.mean_squares[index] = mean_square
            denominator = np.maximum(np.sqrt(mean_square), 1.0 / self.max_scaling)
            new_parameters.append(parameter - self.learning_rate * gradient / denominator)
        return new_parameters

    def state(self):
        return {
            "quadratic.w.mean_square": self.mean_squares[0],
            "quadratic.c.mean_square": self.mean_squares[1],
        }


class ReferenceAdam:
    """Adam with both bias corrections folded into the step size.

    So epsilon is added to the uncorrected ``sqrt(v)``, as in ``dpm.training.Adam``.
    """

    def __init__(self, learning_rate, beta1, beta2, epsilon):
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.time = 0
        self.first = self.second = None

    def step(self, parameters, gradients):
        if self.first is None:
            self.first = [np.zeros_like(p) for p in parameters]
            self.second = [np.zeros_like(p) for p in parameters]
        self.time += 1
        rate = self.learning_rate * np.sqrt(1 - self.beta2**self.time) / (1 - self.beta1**self.time)
        new_parameters = []
        for index, (parameter, gradient) in enumerate(zip(parameters, gradients)):
            self.first[index] = self.beta1 * self.first[index] + (1 - self.beta1) * gradient
            self.second[index] = self.beta2 * self.second[index] + (1 - self.beta2) * gradient**2
            step = rate * self.first[index] / (np.sqrt(self.second[index]) + self.epsilon)
            new_parameters.append(parameter - step)
        return new_parameters

    def state(self):
        return {
            "step_rule.time": np.asarray(float(self.time)),
            "quadratic.w.adam_m": self.first[0],
            "quadratic.w.adam_v": self.second[0],
            "quadratic.c.adam_m": self.first[1],
            "quadratic.c.adam_v": self.second[1],
        }


def reference_run(reference, batches):
    """Apply ``reference`` to ``batches`` except those with a non-finite gradient.

    Returns the final ``w`` and ``c`` and the cost of each applied batch.
    """
    w, c = INITIAL_W.copy(), np.asarray(INITIAL_C)
    costs = []
    for batch in batches:
        cost, gradients = quadratic_cost_and_gradients(w, c, batch)
        if not all(np.all(np.isfinite(g)) for g in gradients):
            continue
        costs.append(cost)
        w, c = reference.step([w, c], gradients)
    return w, c, costs


# Compiled problems -----------------------------------------------------------------------


class QuadraticProblem:
    """A brick with parameters ``w`` (2,) and ``c`` (), a wrapped step rule and its training function."""

    def __init__(self, rule_class, settings):
        self.initial_learning_rate = settings["learning_rate"]
        self.interrupt_at = None
        self.calls = 0
        with pytensor.config.change_flags(floatX="float64"):
            self.brick = Brick(name="quadratic")
            self.w = self.brick.add_parameter("w", (2,), Constant(0.0))
            self.c = self.brick.add_parameter("c", (), Constant(0.0))
            x = pt.matrix("x", dtype="float64")
            s = pt.vector("s", dtype="float64")
            k = pt.vector("k", dtype="float64")
            cost = pt.mean(s * pt.sum(pt.sqr(x - self.w), axis=1)) + pt.mean(k) * pt.sqr(self.c)
            self.rule = RemoveNotFinite(rule_class(**settings))
            self.algorithm = GradientDescent(
                cost, [self.w, self.c], self.rule, [x, s, k], {"mean_scale": pt.mean(s)}, self.prepare_inputs,
            )

    def prepare_inputs(self, batch):
        """Return the inputs of ``batch``, raising KeyboardInterrupt on call ``interrupt_at`` as Ctrl-C would."""
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return batch["x"], batch["s"], batch["k"]

    def reset(self):
        self.brick.set_parameter_values({"quadratic.w": INITIAL_W, "quadratic.c": INITIAL_C})
        for variable in self.rule.state:
            value = variable.get_value()
            variable.set_value(np.zeros_like(value))
        self.rule.learning_rate.set_value(np.asarray(self.initial_learning_rate))
        self.interrupt_at = None
        self.calls = 0
        return self

    def values(self):
        """Return every parameter and step-rule state value, keyed by variable name."""
        values = self.brick.get_parameter_values()
        values.update({variable.name: variable.get_value() for variable in self.rule.state})
        return values


@pytest.fixture(scope="module")
def rmsprop_problem():
    return QuadraticProblem(RMSProp, RMSPROP_SETTINGS)


@pytest.fixture(scope="module")
def adam_problem():
    return QuadraticProblem(Adam, ADAM_SETTINGS)


@pytest.fixture
def rmsprop(rmsprop_problem):
    return rmsprop_problem.reset()


@pytest.fixture
def adam(adam_problem):
    return adam_problem.reset()


def make_batches(n_batches, batch_size=4, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "x": rng.normal(size=(batch_size, 2)),
            "s": rng.uniform(0.5, 2.0, size=batch_size),
            "k": rng.uniform(0.5, 2.0, size=batch_size),
        }
        for _ in range(n_batches)
    ]


def make_stream(n_rows=16, batch_size=4, bad_row=None, seed=0):
    """Return a sequential stream over ``n_rows`` rows and the same data as a list of batches."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, 2))
    s = rng.uniform(0.5, 2.0, size=n_rows)
    k = rng.uniform(0.5, 2.0, size=n_rows)
    if bad_row is not None:
        s[bad_row] = np.nan
    stream = DataStream(ArrayDataset(x=x, s=s, k=k), SequentialScheme(n_rows, batch_size))
    batches = [
        {"x": x[i:i + batch_size], "s": s[i:i + batch_size], "k": k[i:i + batch_size]}
        for i in range(0, n_rows, batch_size)
    ]
    return stream, batches


class EventRecorder(SimpleExtension):
    """Record every event the main loop dispatches."""

    def __init__(self):
        super().__init__()
        self.events = []

    def dispatch(self, event, main_loop):
        self.events.append(event)


class CallRecorder(SimpleExtension):
    """Record ``(event, iterations_done, epochs_done)`` each time :meth:`do` runs."""

    def __init__(self, **options):
        super().__init__(**options)
        self.calls = []

    def do(self, event, main_loop):
        status = main_loop.log.status
        self.calls.append((event, status["iterations_done"], status["epochs_done"]))


def run_loop(problem, stream, extensions):
    log = TrainingLog()
    MainLoop(problem.algorithm, stream, extensions, log).run()
    return log


# Step rules --------------------------------------------------------------------------------


def test_rmsprop_matches_reference(rmsprop):
    reference = ReferenceRMSProp(**RMSPROP_SETTINGS)
    w, c = INITIAL_W.copy(), np.asarray(INITIAL_C)
    for batch in make_batches(3):
        _, gradients = quadratic_cost_and_gradients(w, c, batch)
        w, c = reference.step([w, c], gradients)
        rmsprop.algorithm.process_batch(batch)

        values = rmsprop.values()
        np.testing.assert_allclose(values["quadratic.w"], w, rtol=1e-12)
        np.testing.assert_allclose(values["quadratic.c"], c, rtol=1e-12)
        for name, expected in reference.state().items():
            np.testing.assert_allclose(values[name], expected, rtol=1e-12, err_msg=name)


def test_rmsprop_floor_reached():
    # The reference test covers the floor only if c's root mean square stays under 1 / max_scaling.
    reference = ReferenceRMSProp(**RMSPROP_SETTINGS)
    reference_run(reference, make_batches(3))

    assert np.sqrt(reference.mean_squares[1]) < 1.0 / RMSPROP_SETTINGS["max_scaling"]
    assert np.all(np.sqrt(reference.mean_squares[0]) > 1.0 / RMSPROP_SETTINGS["max_scaling"])


def test_adam_matches_reference(adam):
    reference = ReferenceAdam(**ADAM_SETTINGS)
    w, c = INITIAL_W.copy(), np.asarray(INITIAL_C)
    for batch in make_batches(3):
        _, gradients = quadratic_cost_and_gradients(w, c, batch)
        w, c = reference.step([w, c], gradients)
        adam.algorithm.process_batch(batch)

        values = adam.values()
        np.testing.assert_allclose(values["quadratic.w"], w, rtol=1e-12)
        np.testing.assert_allclose(values["quadratic.c"], c, rtol=1e-12)
        for name, expected in reference.state().items():
            np.testing.assert_allclose(values[name], expected, rtol=1e-12, err_msg=name)


def test_process_batch_outputs(adam):
    batch = make_batches(1)[0]
    expected_cost, _ = quadratic_cost_and_gradients(INITIAL_W, np.asarray(INITIAL_C), batch)

    outputs = adam.algorithm.process_batch(batch)

    assert sorted(outputs) == ["cost", "finite", "mean_scale"]
    assert outputs["cost"] == pytest.approx(expected_cost, rel=1e-12)
    assert outputs["mean_scale"] == pytest.approx(np.mean(batch["s"]), rel=1e-12)
    assert outputs["finite"] == 1.0


# A non-finite x reaches only w's gradient and a non-finite k only c's, so every gradient is checked.
@pytest.mark.parametrize("rule_name", ["rmsprop", "adam"])
@pytest.mark.parametrize(
    ("source", "bad_value"), [("s", np.nan), ("s", np.inf), ("x", np.nan), ("k", np.inf)]
)
def test_nonfinite_step_changes_nothing(request, rule_name, source, bad_value):
    problem = request.getfixturevalue(rule_name)
    first = make_batches(1)[0]
    bad = {name: value.copy() for name, value in first.items()}
    bad[source][1] = bad_value

    problem.algorithm.process_batch(first)
    before = problem.values()
    outputs = problem.algorithm.process_batch(bad)
    after = problem.values()

    assert outputs["finite"] == 0.0
    assert sorted(after) == sorted(before)
    for name, value in before.items():
        assert np.array_equal(after[name], value), name


@pytest.mark.parametrize("rule_name", ["rmsprop", "adam"])
def test_finite_step_after_skip(request, rule_name):
    problem = request.getfixturevalue(rule_name)
    first, second = make_batches(2)
    bad = {"x": first["x"], "s": np.full(4, np.nan), "k": first["k"]}
    if rule_name == "rmsprop":
        reference = ReferenceRMSProp(**RMSPROP_SETTINGS)
    else:
        reference = ReferenceAdam(**ADAM_SETTINGS)
    w, c, _ = reference_run(reference, [first, bad, second])

    for batch in (first, bad, second):
        problem.algorithm.process_batch(batch)

    values = problem.values()
    np.testing.assert_allclose(values["quadratic.w"], w, rtol=1e-12)
    np.testing.assert_allclose(values["quadratic.c"], c, rtol=1e-12)
    for name, expected in reference.state().items():
        np.testing.assert_allclose(values[name], expected, rtol=1e-12, err_msg=name)


# Main loop -----------------------------------------------------------------------------


def test_loop_counts_nonfinite(adam, caplog):
    # Row 5 is in the second of four batches of four rows.
    stream, batches = make_stream(bad_row=5)

    with caplog.at_level(logging.WARNING, logger="dpm.training.main_loop"):
        log = run_loop(adam, stream, [FinishAfter(after_n_epochs=1)])

    warnings = [r for r in caplog.records if r.name == "dpm.training.main_loop"]
    assert log.status["nonfinite_steps"] == 1
    assert log.status["iterations_done"] == 4
    assert log.records[0]["nonfinite_steps"] == 1
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "non-finite gradient at batch 2" in warnings[0].getMessage()


def test_nonfinite_count_in_stats_file(adam, tmp_path):
    # Row 5 is in the second of four batches of four rows, in both epochs.
    stream, _ = make_stream(bad_row=5)
    path = tmp_path / "stats.jsonl"

    run_loop(adam, stream, [FinishAfter(after_n_epochs=2), StatsWriter(path)])

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["nonfinite_steps"] for line in lines] == [1, 2]
    assert [line["iterations_done"] for line in lines] == [4, 8]
    assert all(np.isfinite(line["cost"]) for line in lines)


def test_loop_averages_finite_batches(adam):
    stream, batches = make_stream(bad_row=5)
    w, c, costs = reference_run(ReferenceAdam(**ADAM_SETTINGS), batches)
    finite_scales = [np.mean(batches[i]["s"]) for i in (0, 2, 3)]

    log = run_loop(adam, stream, [FinishAfter(after_n_epochs=1)])

    record = log.records[0]
    assert len(costs) == 3
    assert record["cost"] == pytest.approx(np.mean(costs), rel=1e-12)
    assert record["mean_scale"] == pytest.approx(np.mean(finite_scales), rel=1e-12)
    np.testing.assert_allclose(adam.w.get_value(), w, rtol=1e-12)
    np.testing.assert_allclose(adam.c.get_value(), c, rtol=1e-12)


def test_loop_event_order(rmsprop):
    stream, _ = make_stream(n_rows=8, batch_size=4)
    recorder = EventRecorder()

    run_loop(rmsprop, stream, [FinishAfter(after_n_epochs=2), recorder])

    epoch = ["before_epoch", "after_batch", "after_batch", "after_epoch"]
    assert recorder.events == ["before_training", *epoch, *epoch, "after_training"]


def test_extension_every_n_batches(rmsprop):
    stream, _ = make_stream()
    recorder = CallRecorder(every_n_batches=3)

    run_loop(rmsprop, stream, [FinishAfter(after_n_epochs=4), recorder])

    assert recorder.calls == [("after_batch", n, (n - 1) // 4) for n in (3, 6, 9, 12, 15)]


def test_extension_every_n_epochs(rmsprop):
    stream, _ = make_stream()
    recorder = CallRecorder(every_n_epochs=2)

    run_loop(rmsprop, stream, [FinishAfter(after_n_epochs=4), recorder])

    assert recorder.calls == [("after_epoch", 8, 2), ("after_epoch", 16, 4)]


def test_extension_after_training(rmsprop):
    stream, _ = make_stream()
    recorder = CallRecorder(after_training=True)

    run_loop(rmsprop, stream, [FinishAfter(after_n_epochs=2), recorder])

    assert recorder.calls == [("after_training", 8, 2)]


def test_finish_after_epochs(rmsprop):
    stream, _ = make_stream()

    log = run_loop(rmsprop, stream, [FinishAfter(after_n_epochs=3)])

    assert log.status["epochs_done"] == 3
    assert log.status["iterations_done"] == 12
    assert [record["epoch"] for record in log.records] == [1, 2, 3]
    assert log.status["finish_requested"] is True


def test_finish_after_batches(rmsprop):
    stream, _ = make_stream()

    log = run_loop(rmsprop, stream, [FinishAfter(after_n_batches=6)])

    assert log.status["iterations_done"] == 6
    assert log.status["epochs_done"] == 1
    assert log.status["batches_in_epoch"] == 2
    assert len(log.records) == 2
    partial = log.records[-1]
    assert partial["partial"] is True
    assert partial["epoch"] == 2
    assert partial["batches_in_epoch"] == 2
    assert partial["iterations_done"] == 6
    assert np.isfinite(partial["cost"])
    assert "partial" not in log.records[0]


def test_finish_at_epoch_end_closes_epoch(rmsprop):
    stream, _ = make_stream()

    log = run_loop(rmsprop, stream, [FinishAfter(after_n_batches=8)])

    assert log.status["epochs_done"] == 2
    assert log.status["batches_in_epoch"] == 0
    assert [record["epoch"] for record in log.records] == [1, 2]
    assert not any(record.get("partial") for record in log.records)


def test_finish_after_needs_limit():
    with pytest.raises(ValueError, match="after_n_epochs or after_n_batches"):
        FinishAfter()


def test_interrupt_fires_on_interrupt(rmsprop, tmp_path, caplog):
    stream, _ = make_stream()
    recorder = EventRecorder()
    path = tmp_path / "run" / "checkpoint.npz"
    rmsprop.interrupt_at = 3
    extensions = [FinishAfter(after_n_epochs=2), Checkpoint(path, rmsprop.brick, rmsprop.rule), recorder]

    with caplog.at_level(logging.WARNING, logger="dpm.training.main_loop"):
        with pytest.raises(KeyboardInterrupt):
            run_loop(rmsprop, stream, extensions)

    messages = [r.getMessage() for r in caplog.records if r.name == "dpm.training.main_loop"]
    assert messages == ["training interrupted after 2 batches"]
    expected = ["before_training", "before_epoch", "after_batch", "after_batch", "on_interrupt"]
    assert recorder.events == expected
    parameters, _, state = load_checkpoint(path)
    assert state["log"]["status"]["iterations_done"] == 2
    np.testing.assert_array_equal(parameters["quadratic.w"], rmsprop.w.get_value())


# Training log --------------------------------------------------------------------------


def test_log_skips_nonfinite_values():
    log = TrainingLog()
    log.add_batch({"cost": 1.0, "other": float("nan")})
    log.add_batch({"cost": float("inf"), "other": 4.0})
    log.add_batch({"cost": 3.0, "other": 6.0})

    record = log.end_epoch()

    assert record["cost"] == 2.0
    assert record["other"] == 5.0
    assert record["iterations_done"] == 3


def test_log_dict_round_trip():
    log = TrainingLog()
    log.add_batch({"cost": 1.5})
    log.end_epoch()
    log.status["nonfinite_steps"] = 2

    restored = TrainingLog.from_dict(json.loads(json.dumps(log.to_dict())))

    assert restored.status == log.status
    assert restored.records == log.records


# Checkpoints ----------------------------------------------------------------------------


def train_steps(problem, batches):
    log = TrainingLog()
    for batch in batches:
        log.add_batch(problem.algorithm.process_batch(batch))
    log.end_epoch()
    return log


EXTRA_STATE = {"draws": np.random.default_rng(5).bit_generator.state, "note": "after two steps"}


def test_checkpoint_round_trip(adam, tmp_path):
    path = tmp_path / "checkpoint.npz"
    log = train_steps(adam, make_batches(2))
    saved = adam.values()

    save_checkpoint(path, adam.brick, adam.rule, log, EXTRA_STATE)
    parameters, step_rule, state = load_checkpoint(path)

    assert sorted(parameters) == ["quadratic.c", "quadratic.w"]
    assert sorted(step_rule) == sorted(variable.name for variable in adam.rule.state)
    for name, value in {**parameters, **step_rule}.items():
        assert np.array_equal(value, saved[name]), name
        assert value.dtype == saved[name].dtype, name
    assert state["log"] == json.loads(json.dumps(log.to_dict()))
    assert state["extra"] == EXTRA_STATE


def test_checkpoint_resume_matches(adam, tmp_path):
    path = tmp_path / "checkpoint.npz"
    batches = make_batches(3)
    train_steps(adam, batches[:2])
    save_checkpoint(path, adam.brick, adam.rule, TrainingLog(), {})
    adam.algorithm.process_batch(batches[2])
    uninterrupted = adam.values()

    adam.reset()
    parameters, step_rule, _ = load_checkpoint(path)
    adam.brick.set_parameter_values(parameters)
    restore_step_rule(adam.rule, step_rule)
    adam.algorithm.process_batch(batches[2])

    resumed = adam.values()
    for name, value in uninterrupted.items():
        assert np.array_equal(resumed[name], value), name


@pytest.mark.parametrize("error", [OSError("simulated full disk"), KeyboardInterrupt()])
def test_checkpoint_write_atomic(adam, tmp_path, monkeypatch, error):
    path = tmp_path / "checkpoint.npz"
    first_log = train_steps(adam, make_batches(1))
    save_checkpoint(path, adam.brick, adam.rule, first_log, {"version": 1})
    second_log = train_steps(adam, make_batches(2, seed=1))

    def failing_savez(file, **arrays):
        file.write(b"PK\x03\x04 partial archive")
        raise error

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_module.np, "savez", failing_savez)
        with pytest.raises(type(error)):
            save_checkpoint(path, adam.brick, adam.rule, second_log, {"version": 2})

    _, _, state = load_checkpoint(path)
    assert state["extra"] == {"version": 1}
    assert state["log"]["status"]["iterations_done"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_checkpoint_first_write_fails(adam, tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"

    def failing_savez(file, **arrays):
        raise OSError("simulated full disk")

    monkeypatch.setattr(checkpoint_module.np, "savez", failing_savez)
    with pytest.raises(OSError):
        save_checkpoint(path, adam.brick, adam.rule, TrainingLog(), {})

    assert list(tmp_path.iterdir()) == []


def test_checkpoint_unserializable_state(adam, tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, adam.brick, adam.rule, TrainingLog(), {"version": 1})

    with pytest.raises(TypeError):
        save_checkpoint(path, adam.brick, adam.rule, TrainingLog(), {"rng": object()})

    assert load_checkpoint(path)[2]["extra"] == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


@pytest.mark.parametrize("damage", ["truncated", "empty", "text", "flipped", "no_state"])
def test_checkpoint_corrupt(adam, tmp_path, damage):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, adam.brick, adam.rule, TrainingLog(), {})
    content = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "text":
        path.write_text("not a checkpoint\n")
    elif damage == "flipped":
        # Zeroing 16 bytes of the first stored member breaks its CRC-32.
        path.write_bytes(content[:120] + bytes(16) + content[136:])
    else:
        np.savez(path, **{"parameter:quadratic.w": INITIAL_W})

    with pytest.raises(ValueError) as excinfo:
        load_checkpoint(path)

    assert str(path) in str(excinfo.value)


def test_checkpoint_missing_file(tmp_path):
    path = tmp_path / "absent.npz"

    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load_checkpoint(path)


def test_restore_missing_name(adam):
    values = {variable.name: variable.get_value() for variable in adam.rule.state}
    del values["quadratic.c.adam_v"]

    with pytest.raises(KeyError) as excinfo:
        restore_step_rule(adam.rule, values)

    message = excinfo.value.args[0]
    assert "'quadratic.c.adam_v'" in message
    assert "another step rule" in message


def test_restore_other_rule(rmsprop, adam, tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, rmsprop.brick, rmsprop.rule, TrainingLog(), {})
    _, step_rule, _ = load_checkpoint(path)

    with pytest.raises(KeyError, match="step_rule.time"):
        restore_step_rule(adam.rule, step_rule)


# Learning-rate schedules ------------------------------------------------------------------


def test_decay_reaches_final_rate(rmsprop):
    stream, _ = make_stream()
    factor = decay_factor(0.05, 0.005, 3)
    decay = ExponentialDecay(rmsprop.rule.learning_rate, factor)

    log = run_loop(rmsprop, stream, [FinishAfter(after_n_epochs=3), decay])

    rates = [record["learning_rate"] for record in log.records]
    np.testing.assert_allclose(rates, 0.05 * factor ** np.arange(1, 4), rtol=1e-12)
    assert float(rmsprop.rule.learning_rate.get_value()) == pytest.approx(0.005, rel=1e-12)


def test_decay_respects_floor(rmsprop):
    stream, _ = make_stream()
    decay = ExponentialDecay(rmsprop.rule.learning_rate, 0.5, minimum=0.03)

    log = run_loop(rmsprop, stream, [FinishAfter(after_n_epochs=3), decay])

    assert [record["learning_rate"] for record in log.records] == [0.03, 0.03, 0.03]
    assert float(rmsprop.rule.learning_rate.get_value()) == 0.03


def test_decay_factor_value():
    assert decay_factor(1.0, 0.1, 1000) == pytest.approx(np.exp(np.log(0.1) / 1000), rel=1e-15)
    assert decay_factor(1e-2, 1e-4, 300) ** 300 == pytest.approx(1e-2, rel=1e-12)


@pytest.mark.parametrize(
    ("initial", "final", "n_epochs"), [(1e-2, 1e-4, 0), (0.0, 1e-4, 10), (1e-2, -1.0, 10)]
)
def test_decay_factor_rejects(initial, final, n_epochs):
    with pytest.raises(ValueError, match="need n_epochs >= 1 and positive rates"):
        decay_factor(initial, final, n_epochs)


# Training a diffusion model ------------------------------------------------------------

TRAIN_SETTINGS = {
    "step_rule": "adam",
    "learning_rate": 1e-2,
    "final_learning_rate": 1e-3,
    "batch_size": 16,
    "n_epochs": 2,
}


def tiny_model():
    model = SwissRollModel(trajectory_length=4, n_hidden=4)
    model.initialize(np.random.default_rng(0))
    return model


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(1).normal(size=(64, 2))


@pytest.fixture(scope="module")
def trained_runs(features, tmp_path_factory):
    """Train the tiny model three times: seed 3 with a checkpoint, seed 3 again and seed 4."""
    path = tmp_path_factory.mktemp("training") / "checkpoint.npz"
    runs = {}
    for label, seed, checkpoint_path in [("first", 3, path), ("repeat", 3, None), ("other", 4, None)]:
        model = tiny_model()
        log = train_gaussian_model(model, features, TRAIN_SETTINGS, seed, checkpoint_path, progress=False)
        runs[label] = (model.get_parameter_values(), log)
    runs["checkpoint"] = path
    return runs


def test_train_same_seed_identical(trained_runs):
    first, _ = trained_runs["first"]
    repeat, _ = trained_runs["repeat"]

    assert sorted(first) == sorted(repeat)
    for name, value in first.items():
        assert np.array_equal(repeat[name], value), name


def test_train_other_seed_differs(trained_runs):
    first, _ = trained_runs["first"]
    other, _ = trained_runs["other"]

    assert any(not np.array_equal(other[name], value) for name, value in first.items())


def test_train_changes_parameters(trained_runs):
    first, _ = trained_runs["first"]
    initial = tiny_model().get_parameter_values()

    assert any(not np.array_equal(initial[name], value) for name, value in first.items())


def test_train_log(trained_runs):
    _, log = trained_runs["first"]

    assert log.status["epochs_done"] == 2
    assert log.status["iterations_done"] == 8
    assert log.status["nonfinite_steps"] == 0
    assert log.records[-1]["learning_rate"] == pytest.approx(1e-3, rel=1e-6)
    assert np.isfinite(log.records[-1]["K"])


def test_train_checkpoint(trained_runs):
    first, _ = trained_runs["first"]
    parameters, _, state = load_checkpoint(trained_runs["checkpoint"])

    assert sorted(parameters) == sorted(first)
    for name, value in first.items():
        assert np.array_equal(parameters[name], value), name
    assert state["log"]["status"]["epochs_done"] == 2
    assert sorted(state["extra"]) == ["batches", "draws"]


class InterruptAt(SimpleExtension):
    """Raise KeyboardInterrupt after batch ``at``, as Ctrl-C would."""

    def __init__(self, at):
        super().__init__(every_n_batches=at)

    def do(self, event, main_loop):
        raise KeyboardInterrupt


def test_train_resume_matches(trained_runs, features, tmp_path):
    path = tmp_path / "checkpoint.npz"
    # Batch 3 is in the first of two epochs of 4 batches.
    with pytest.raises(KeyboardInterrupt):
        train_gaussian_model(tiny_model(), features, TRAIN_SETTINGS, 3, path, progress=False,
                             extensions=[InterruptAt(3)])
    model = tiny_model()

    log = train_gaussian_model(model, features, TRAIN_SETTINGS, 3, path, progress=False,
                               resume_from=path)

    first, first_log = trained_runs["first"]
    resumed = model.get_parameter_values()
    for name, value in first.items():
        assert np.array_equal(resumed[name], value), name
    assert log.status == first_log.status
    lines = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [(line["epoch"], line.get("partial", False)) for line in lines] == [
        (1, True), (1, False), (2, False)]


@pytest.mark.parametrize("shape", [(64, 3), (64,)])
def test_train_rejects_feature_shape(shape):
    with pytest.raises(ValueError) as excinfo:
        train_gaussian_model(tiny_model(), np.zeros(shape), TRAIN_SETTINGS, seed=0, progress=False)

    message = str(excinfo.value)
    assert str(shape) in message
    assert "(N, 2)" in message
