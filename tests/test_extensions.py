"""Extensions: triggers, the held-out K monitor, plots, the records file and schedules.

Most tests drive the main loop with a stand-in algorithm that takes no step and returns the
batch mean as its cost, so no training function is compiled. The held-out K tests compile
the bound of a tiny swiss roll model (T = 5, 3 RBF units) twice: once inside the extension
and once for the direct comparison.
"""

import json
import logging
import math

import numpy as np
import pytensor
import pytest

from dpm.data.streams import ArrayDataset, DataStream, SequentialScheme
from dpm.evaluation import BoundEvaluator
from dpm.models.swiss_roll import SwissRollModel
from dpm.training import (
    Checkpoint,
    ExponentialDecay,
    FinishAfter,
    LogLikelihood,
    MainLoop,
    PlotMonitors,
    PlotParameters,
    PlotSamples,
    Printing,
    ProgressBar,
    ReferenceDecay,
    SimpleExtension,
    StatsWriter,
    Timing,
    TrainingLog,
    read_stats,
)
from dpm.training.plots import save_png, tile_images
from dpm.training.schedules import REFERENCE_FACTOR, build_schedule
from dpm.training.step_rules import RMSProp

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BATCHES_PER_EPOCH = 4


class MeanAlgorithm:
    """Stands in for GradientDescent: returns the batch mean as ``cost`` and takes no step."""

    def process_batch(self, batch):
        return {"cost": float(np.mean(batch["x"]))}


class ReadBack(SimpleExtension):
    """Read ``stats.jsonl`` after every epoch, to see what is on disk at that moment."""

    def __init__(self, path):
        super().__init__(every_n_epochs=1)
        self.path = path
        self.line_counts = []

    def do(self, event, main_loop):
        self.line_counts.append(len(self.path.read_text().splitlines()))


def make_stream():
    x = np.arange(16.0)
    return DataStream(ArrayDataset(x=x), SequentialScheme(len(x), BATCHES_PER_EPOCH))


def run_loop(extensions, n_epochs=3, log=None):
    main_loop = MainLoop(MeanAlgorithm(), make_stream(),
                         [FinishAfter(after_n_epochs=n_epochs), *extensions], log=log)
    main_loop.run()
    return main_loop.log


def assert_png(path):
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE), path
    assert len(content) > 1000, path


def assert_no_temporaries(folder):
    assert not list(folder.rglob("*.tmp"))


@pytest.fixture(scope="module")
def model():
    model = SwissRollModel(trajectory_length=5, n_hidden=3)
    model.initialize(np.random.default_rng(0))
    return model


@pytest.fixture(scope="module")
def held_out():
    return np.random.default_rng(2).normal(size=(100, 2)).astype(pytensor.config.floatX)


@pytest.fixture(scope="module")
def direct_evaluator(model):
    return BoundEvaluator(model)


@pytest.fixture(scope="module")
def monitored(model, held_out):
    """Run three epochs with LogLikelihood on 30 of the 100 held-out points, seed 5."""
    monitor = LogLikelihood(model, held_out, n_points=30, seed=5)
    log = run_loop([monitor])
    return monitor, log


# Triggers ----------------------------------------------------------------------------


def every_extension(tmp_path, model, evaluator, held_out):
    learning_rate = RMSProp().learning_rate
    triggers = {"every_n_batches": 3, "every_n_epochs": 2, "before_training": True,
                "on_resume": True, "after_training": True, "on_interrupt": True}
    return [
        Timing(**triggers),
        Printing(**triggers),
        ProgressBar(10, **triggers),
        Checkpoint(tmp_path / "checkpoint.npz", model, RMSProp(), **triggers),
        ExponentialDecay(learning_rate, 0.5, **triggers),
        ReferenceDecay(learning_rate, **triggers),
        StatsWriter(tmp_path / "stats.jsonl", **triggers),
        LogLikelihood(model, held_out, evaluator=evaluator, **triggers),
        PlotMonitors(tmp_path / "monitors.png", **triggers),
        PlotParameters(model, tmp_path, **triggers),
        PlotSamples(dict, tmp_path, **triggers),
    ]


def test_every_extension_takes_triggers(tmp_path, model, direct_evaluator, held_out):
    for extension in every_extension(tmp_path, model, direct_evaluator, held_out):
        name = type(extension).__name__
        assert extension.every_n_batches == 3, name
        assert extension.every_n_epochs == 2, name
        assert all(extension.events.values()), name
        assert sorted(extension.events) == ["after_training", "before_training", "on_interrupt",
                                            "on_resume"], name


def test_trigger_schedule():
    calls = []

    class Recorder(SimpleExtension):
        def do(self, event, main_loop):
            calls.append((event, main_loop.log.status["iterations_done"]))

    run_loop([Recorder(every_n_batches=5, every_n_epochs=2, before_training=True,
                       after_training=True)])

    assert calls == [("before_training", 0), ("after_batch", 5), ("after_epoch", 8),
                     ("after_batch", 10), ("after_training", 12)]


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-2, ValueError),
                                              ("2", TypeError), (True, TypeError), (1.5, TypeError)])
def test_trigger_rejects_invalid(value, error):
    with pytest.raises(error, match="every_n_epochs"):
        SimpleExtension(every_n_epochs=value)


def test_finish_after_counts_whole_run():
    log = run_loop([], n_epochs=2)

    same = run_loop([], n_epochs=2, log=log)
    assert same.status["iterations_done"] == 2 * BATCHES_PER_EPOCH
    longer = run_loop([], n_epochs=3, log=log)
    assert longer.status["iterations_done"] == 3 * BATCHES_PER_EPOCH
    assert [record["epoch"] for record in longer.records] == [1, 2, 3]


def test_printing_after_batch(caplog):
    with caplog.at_level(logging.INFO, logger="dpm.training.extensions"):
        run_loop([Printing(every_n_epochs=None, every_n_batches=2, keys=("cost",))], n_epochs=1)

    messages = [r.getMessage() for r in caplog.records if r.name == "dpm.training.extensions"]
    # Batches 1-2 hold x = 0..7 and batches 1-4 x = 0..15.
    assert messages == ["batch 2 (after_batch): cost 3.5", "batch 4 (after_batch): cost 7.5"]


def test_timing_continues_after_resume():
    timing = Timing()
    timing.set_state({"total_seconds": 100.0})

    log = run_loop([timing], n_epochs=1)

    record = log.records[0]
    assert record["total_seconds"] >= 100.0
    assert record["total_seconds"] < 100.0 + 60.0
    assert 0.0 <= record["epoch_seconds"] < 60.0
    assert timing.get_state()["total_seconds"] >= record["total_seconds"]


# LogLikelihood --------------------------------------------------------------------------


def test_loglikelihood_matches_evaluator(monitored, direct_evaluator, held_out):
    monitor, log = monitored
    subset_seed, evaluation_seed = np.random.SeedSequence(5).spawn(2)
    rows = np.sort(np.random.default_rng(subset_seed).choice(100, 30, replace=False))

    expected = direct_evaluator.evaluate(held_out[rows], seed=evaluation_seed, progress=False)

    assert np.array_equal(monitor.points, held_out[rows])
    for record in log.records:
        assert record["test_K"] == expected["K"]
        assert record["test_K_minus_L_null"] == expected["K_minus_L_null"]
    assert expected["K_minus_L_null"] == pytest.approx(expected["K"] - expected["L_null"], rel=1e-12)


def test_loglikelihood_stderr_from_spread(monitored):
    monitor, log = monitored
    per_example = monitor.latest["K_per_example"]

    assert len(per_example) == 30
    expected = np.sqrt(np.sum((per_example - per_example.mean()) ** 2) / 29) / np.sqrt(30)
    assert log.records[-1]["test_K_stderr"] == pytest.approx(expected, rel=1e-10)
    # L_null is the same for every example, so K - L_null has the same spread.
    assert log.records[-1]["test_K_minus_L_null_stderr"] == pytest.approx(expected, rel=1e-6)
    assert log.records[-1]["test_K"] == pytest.approx(per_example.mean(), rel=1e-12)


def test_loglikelihood_other_seed_differs(model, held_out, direct_evaluator):
    first = LogLikelihood(model, held_out, n_points=30, seed=5, evaluator=direct_evaluator)
    other = LogLikelihood(model, held_out, n_points=30, seed=6, evaluator=direct_evaluator)

    assert not np.array_equal(first.points, other.points)


def test_loglikelihood_every_n_batches(model, held_out, direct_evaluator):
    monitor = LogLikelihood(model, held_out, n_points=10, seed=1, prefix="held_out_",
                            evaluator=direct_evaluator, every_n_epochs=None, every_n_batches=6)

    log = run_loop([monitor], n_epochs=2)

    # Batch 6 lies in epoch 2, so its values reach that epoch's record only.
    assert "held_out_K" not in log.records[0]
    assert log.records[1]["held_out_K"] == monitor.latest["K"]
    assert log.current == {}


@pytest.mark.parametrize("n_points", [1, 101])
def test_loglikelihood_rejects_n_points(model, held_out, direct_evaluator, n_points):
    with pytest.raises(ValueError, match=f"got {n_points}"):
        LogLikelihood(model, held_out, n_points=n_points, evaluator=direct_evaluator)


def test_loglikelihood_rejects_shape(model, direct_evaluator):
    with pytest.raises(ValueError, match=r"\(N, 2\), got \(10, 3\)"):
        LogLikelihood(model, np.zeros((10, 3)), evaluator=direct_evaluator)


# Plots ------------------------------------------------------------------------------


def test_plot_monitors_png(tmp_path):
    path = tmp_path / "plots" / "monitors.png"

    run_loop([PlotMonitors(path, keys=("cost", "not_logged"))])

    assert_png(path)
    assert_no_temporaries(tmp_path)


def test_plot_monitors_rejects_keys(tmp_path):
    with pytest.raises(ValueError, match="keys"):
        PlotMonitors(tmp_path / "monitors.png", keys="cost")


def test_plot_parameters_per_brick(tmp_path, model):
    plot = PlotParameters(model, tmp_path)

    run_loop([plot], n_epochs=1)

    bricks = [brick.path for brick in model.iter_bricks() if brick.parameters]
    assert sorted(plot.paths()) == sorted(bricks)
    assert "swiss_roll/rbf" in bricks
    for path in plot.paths().values():
        assert_png(path)
    assert (tmp_path / "parameters-swiss_roll-rbf.png").exists()
    assert_no_temporaries(tmp_path)


def test_plot_parameters_not_finite(tmp_path):
    # Parameters hold NaN until initialized.
    uninitialized = SwissRollModel(trajectory_length=5, n_hidden=3)
    plot = PlotParameters(uninitialized, tmp_path)

    run_loop([plot], n_epochs=1)

    for path in plot.paths().values():
        assert_png(path)


def sample_images():
    rng = np.random.default_rng(0)
    return {
        "samples": rng.random((9, 1, 8, 8)),
        "colour": rng.random((5, 3, 6, 6)),
        "points": rng.normal(size=(200, 2)),
        "sequences": (rng.random((30, 20)) < 0.2).astype(np.float32),
    }


def test_plot_samples_png(tmp_path):
    run_loop([PlotSamples(sample_images, tmp_path / "samples")], n_epochs=1)

    names = sorted(path.name for path in (tmp_path / "samples").iterdir())
    assert names == ["colour.png", "points.png", "samples.png", "sequences.png"]
    for name in names:
        assert_png(tmp_path / "samples" / name)


def test_plot_samples_history(tmp_path):
    plot = PlotSamples(lambda: {"samples": np.zeros((4, 1, 3, 3))}, tmp_path, history=True,
                       every_n_epochs=None, every_n_batches=3, after_training=False)

    run_loop([plot], n_epochs=2)

    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["samples-0000003.png", "samples-0000006.png"]


@pytest.mark.parametrize(("images", "error", "match"), [
    ({"../up": np.zeros((2, 4))}, ValueError, "cannot be a file name"),
    ({".hidden": np.zeros((2, 4))}, ValueError, "cannot be a file name"),
    ({"flat": np.zeros(5)}, ValueError, r"shape \(5,\)"),
    ({"two_channels": np.zeros((2, 2, 4, 4))}, ValueError, r"shape \(2, 2, 4, 4\)"),
    ({"empty": np.zeros((0, 4))}, ValueError, r"shape \(0, 4\)"),
    ([np.zeros((2, 4))], TypeError, "dict of name to array"),
])
def test_plot_samples_rejects(tmp_path, images, error, match):
    with pytest.raises(error, match=match):
        run_loop([PlotSamples(lambda: images, tmp_path)], n_epochs=1)

    assert list(tmp_path.glob("*.png")) == []


def test_tile_images_layout():
    images = np.arange(5 * 2 * 2, dtype=float).reshape(5, 1, 2, 2)

    grid = tile_images(images)

    # Five images of 2x2 in three columns and two rows, one pixel apart.
    assert grid.shape == (5, 8, 1)
    np.testing.assert_allclose(grid[:2, :2, 0], images[0, 0] / 19.0)
    np.testing.assert_allclose(grid[3:5, 3:5, 0], images[4, 0] / 19.0)
    assert np.all(grid[2, :, 0] == 1.0)
    assert np.all(grid[3:, 6:, 0] == 1.0)


def test_save_png_failure_keeps_old(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    path = tmp_path / "monitors.png"
    figure = Figure()
    figure.subplots().plot([0, 1], [1, 0])
    save_png(figure, path)
    before = path.read_bytes()

    def failing_savefig(self, target, **options):
        with open(target, "wb") as file:
            file.write(PNG_SIGNATURE)
        raise OSError("simulated full disk")

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(OSError, match="simulated full disk"):
        save_png(figure, path)

    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["monitors.png"]


# Records file -------------------------------------------------------------------------


def test_stats_written_each_epoch(tmp_path):
    path = tmp_path / "stats.jsonl"
    reader = ReadBack(path)

    log = run_loop([StatsWriter(path), reader])

    assert reader.line_counts == [1, 2, 3]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == log.records
    assert [line["cost"] for line in lines] == [7.5, 7.5, 7.5]


def test_stats_partial_epoch_line(tmp_path):
    path = tmp_path / "stats.jsonl"
    main_loop = MainLoop(MeanAlgorithm(), make_stream(), [FinishAfter(after_n_batches=6),
                                                          StatsWriter(path)])
    main_loop.run()

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert lines[1]["partial"] is True
    assert lines[1]["batches_in_epoch"] == 2
    # Batches 5 and 6 hold x = 0..7.
    assert lines[1]["cost"] == 3.5


def test_stats_after_torn_line(tmp_path, caplog):
    path = tmp_path / "stats.jsonl"
    path.write_text('{"epoch": 1, "cost": 1.0}\n{"epoch": 2, "co')

    run_loop([StatsWriter(path)], n_epochs=1)

    text = path.read_text()
    assert text.startswith('{"epoch": 1, "cost": 1.0}\n{"epoch": 2, "co\n')
    with caplog.at_level(logging.WARNING, logger="dpm.training.stats"):
        records = read_stats(path)
    assert [record["cost"] for record in records] == [7.5]
    assert "skipped line 2" in caplog.text
    assert len(read_stats(path, latest=False)) == 2


def test_read_stats_latest_per_epoch(tmp_path):
    path = tmp_path / "stats.jsonl"
    lines = [{"epoch": 1, "K": 1.0}, {"epoch": 2, "K": 2.0, "partial": True},
             {"epoch": 2, "K": 2.5}, {"epoch": 3, "K": 3.0}, {"epoch": 3, "K": 3.5}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    assert read_stats(path) == [lines[0], lines[2], lines[4]]
    assert read_stats(path, latest=False) == lines


def test_read_stats_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="stats.jsonl not found"):
        read_stats(tmp_path / "stats.jsonl")


# Learning-rate schedules -----------------------------------------------------------------


def shared_rate(value):
    return pytensor.shared(np.asarray(value, dtype="float64"), name="learning_rate")


def test_reference_decay_defaults():
    rate = shared_rate(2e-4)
    decay = ReferenceDecay(rate)

    log = run_loop([decay], n_epochs=3)

    assert decay.factor == math.exp(math.log(0.1) / 1000)
    assert decay.factor == REFERENCE_FACTOR
    assert decay.factor ** 1000 == pytest.approx(0.1, rel=1e-12)
    assert decay.minimum == 1e-4
    expected = [2e-4 * REFERENCE_FACTOR ** n for n in (1, 2, 3)]
    assert [record["learning_rate"] for record in log.records] == pytest.approx(expected, rel=1e-15)


def test_reference_decay_factor_and_floor():
    rate = shared_rate(1e-3)

    log = run_loop([ReferenceDecay(rate, factor=0.25)], n_epochs=3)

    assert [record["learning_rate"] for record in log.records] == [2.5e-4, 1e-4, 1e-4]
    assert float(rate.get_value()) == 1e-4


def test_decay_every_n_batches():
    rate = shared_rate(1.0)

    log = run_loop([ExponentialDecay(rate, 0.5, every_n_epochs=None, every_n_batches=2)], n_epochs=2)

    assert float(rate.get_value()) == 0.5 ** 4
    assert [record["learning_rate"] for record in log.records] == [0.25, 0.0625]


def test_decay_state_round_trip():
    decay = ExponentialDecay(shared_rate(0.3), 0.5)
    other = ExponentialDecay(shared_rate(1.0), 0.5)

    other.set_state(json.loads(json.dumps(decay.get_state())))

    assert float(other.learning_rate.get_value()) == 0.3


@pytest.mark.parametrize(("factor", "minimum"), [(0.0, 0.0), (-0.5, 0.0), (float("nan"), 0.0),
                                                 (0.5, -1.0)])
def test_decay_rejects(factor, minimum):
    with pytest.raises(ValueError, match="must be"):
        ExponentialDecay(shared_rate(1.0), factor, minimum)


def test_build_schedule_by_name():
    rate = shared_rate(1e-2)
    settings = {"learning_rate": 1e-2, "final_learning_rate": 1e-4}

    to_final = build_schedule(settings, rate, 100)
    reference = build_schedule({**settings, "learning_rate_schedule": "reference",
                                "decay_factor": 0.9}, rate, 100)

    assert type(to_final) is ExponentialDecay
    assert to_final.factor ** 100 == pytest.approx(1e-2, rel=1e-10)
    assert type(reference) is ReferenceDecay
    assert reference.factor == 0.9
    assert reference.minimum == 1e-4
    with pytest.raises(ValueError, match="unknown learning_rate_schedule 'cosine'"):
        build_schedule({**settings, "learning_rate_schedule": "cosine"}, rate, 100)


def test_training_log_partial_round_trip():
    log = TrainingLog()
    log.add_batch({"cost": 1.0})
    log.current["note"] = 2.0
    log.close_partial_epoch()

    restored = TrainingLog.from_dict(json.loads(json.dumps(log.to_dict())))
    restored.add_batch({"cost": 3.0})
    record = restored.end_epoch()

    assert record["cost"] == 2.0
    assert record["note"] == 2.0
    assert record["epoch"] == 1
    assert "partial" not in record
    assert restored.records == [record]
