"""The heartbeat data, its exact likelihood, the heartbeat network and training it."""

import math

import numpy as np
import pytensor.tensor as pt
import pytest

from dpm import backend
from dpm.data import H5Dataset, heartbeat, read_attrs, split_names
from dpm.models import HeartbeatModel
from dpm.training.diffusion_training import train_diffusion_model, train_gaussian_model


def test_true_sequences_have_pulse_every_fifth_bin():
    sequences = heartbeat.true_sequences()
    assert sequences.shape == (5, 20)
    assert len({row.tobytes() for row in sequences}) == 5
    for offset, row in enumerate(sequences):
        assert np.flatnonzero(row).tolist() == [offset, offset + 5, offset + 10, offset + 15]
    assert sequences.mean() == pytest.approx(0.2)


def test_sample_offsets_uniform():
    x, offset = heartbeat.sample(50_000, 0, return_offset=True)
    assert x.dtype == np.uint8
    np.testing.assert_array_equal(x, heartbeat.true_sequences()[offset])
    counts = np.bincount(offset, minlength=5)
    expected = 50_000 / 5
    assert np.all(np.abs(counts - expected) < 5 * math.sqrt(expected * 0.8))
    np.testing.assert_array_equal(heartbeat.first_pulse(x), offset)


def test_log_likelihood_exact():
    sequences = heartbeat.true_sequences()
    np.testing.assert_array_equal(heartbeat.log_likelihood_bits(sequences),
                                  np.full(5, math.log2(1 / 5)))
    assert heartbeat.LOG2_PROBABILITY == pytest.approx(-2.321928, abs=1e-6)
    flipped = sequences.copy()
    flipped[np.arange(5), np.arange(5) + 1] = 1
    assert np.all(heartbeat.log_likelihood_bits(flipped) == -np.inf)
    shifted = np.roll(sequences, 3, axis=1)  # a rotation by 3 is still one of the 5
    assert np.all(heartbeat.is_true_sequence(shifted))
    mean, error = heartbeat.true_log_likelihood_bits(heartbeat.sample(100, 1))
    assert mean == pytest.approx(math.log2(1 / 5))
    assert error == 0.0
    with pytest.raises(ValueError, match=r"shape \(n, 20\)"):
        heartbeat.log_likelihood_bits(np.zeros(20))


def test_prepare_writes_splits(tmp_path):
    path = heartbeat.prepare(tmp_path / "h.hdf5", n_train=300, n_test=50, seed=7)
    assert split_names(path) == ["test", "train"]
    assert read_attrs(path)["dataset"] == "heartbeat"
    train = H5Dataset(path, "train", load_in_memory=True)
    test = H5Dataset(path, "test", load_in_memory=True)
    features, offset = train.get_data(slice(0, 300))
    assert features.shape == (300, 20)
    assert np.all(heartbeat.is_true_sequence(features))
    np.testing.assert_array_equal(heartbeat.first_pulse(features), offset)
    assert test.num_examples == 50

    other = heartbeat.prepare(tmp_path / "h2.hdf5", n_train=10, n_test=50, seed=7)
    test_other = H5Dataset(other, "test", load_in_memory=True)
    np.testing.assert_array_equal(test_other.get_data(slice(0, 50))[0], test.get_data(slice(0, 50))[0])

    assert heartbeat.load_or_prepare(path, n_train=300, n_test=50, seed=7) == path
    with pytest.raises(ValueError, match="n_train: file has 300, expected 400"):
        heartbeat.load_or_prepare(path, n_train=400, n_test=50, seed=7)


def test_model_architecture():
    model = HeartbeatModel(trajectory_length=2000)
    shapes = {name.split("/", 1)[1]: value.shape
              for name, value in model.get_parameter_values().items()}
    assert shapes == {
        "mlp/linear_0.W": (20, 50), "mlp/linear_0.b": (50,),
        "mlp/linear_1.W": (50, 50), "mlp/linear_1.b": (50,),
        "mlp/linear_2.W": (50, 50), "mlp/linear_2.b": (50,),
        "readout.W": (1999, 50, 20), "readout.b": (1999, 20),
    }


def test_heartbeat_null_and_first_step_terms():
    model = HeartbeatModel(trajectory_length=2000)
    x0 = pt.matrix("x0")
    terms = model.diffusion.bound_terms(pt.zeros((x0.shape[0],)), x0)
    function = backend.compile_function(
        [x0], [terms["L_null"], terms["first_step_term"], terms["H_q_XT_given_X0"], terms["H_p_XT"]])
    L_null, first_step, H_T, H_p = function(heartbeat.true_sequences().astype("float32"))
    expected = 20 * (0.2 * math.log2(0.2) + 0.8 * math.log2(0.8))
    np.testing.assert_allclose(L_null, expected, rtol=1e-6)
    assert expected == pytest.approx(-14.438, abs=1e-3)
    np.testing.assert_allclose(first_step, 0.0, atol=1e-5)
    np.testing.assert_allclose(H_T, H_p, rtol=1e-7)


def test_training_raises_K_and_old_name_works():
    features = heartbeat.sample(2000, 3).astype("float32")
    settings = {"step_rule": "adam", "learning_rate": 1e-2, "final_learning_rate": 1e-3,
                "batch_size": 100, "n_epochs": 12}
    model = HeartbeatModel(trajectory_length=10)
    model.initialize(np.random.default_rng(0))
    log = train_diffusion_model(model, features, settings, seed=1, progress=False)
    first, last = log.records[0]["K"], log.records[-1]["K"]
    assert first < -13.5  # the initial reverse kernels are about the forward ones: K = L_null
    assert last > first + 3.0
    assert log.status["nonfinite_steps"] == 0
    assert train_gaussian_model is train_diffusion_model
    with pytest.raises(ValueError, match=r"\(N, 20\)"):
        train_diffusion_model(model, features[:, :5], settings, seed=1, progress=False)
