"""The Figure 2 script's --quick mode, end to end, and its manifest."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("figures")
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "reproduce" / "figure2_heartbeat.py"), "--quick",
         "--output-dir", str(output), "--run-dir", str(output / "run")],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return output, completed.stdout


def test_quick_run_writes_figure_files(quick_run):
    output, _ = quick_run
    for suffix in (".png", ".pdf", ".json"):
        assert (output / f"figure2_heartbeat_quick{suffix}").stat().st_size > 0
    assert not list(output.glob(".*tmp*"))
    assert (output / "run" / "checkpoint.npz").stat().st_size > 0


def test_quick_manifest_has_required_fields(quick_run):
    output, stdout = quick_run
    manifest = json.loads((output / "figure2_heartbeat_quick.json").read_text())
    measured = manifest["measured"]
    for key in ("K", "K_stderr", "K_minus_L_null", "L_null", "L_true", "share_true_sequences"):
        assert isinstance(measured[key], float), key
    assert manifest["paper"] == {"K": -2.414, "K_minus_L_null": 12.024, "L_true": -2.322}
    assert manifest["units"] == "bits per sequence"
    assert measured["L_true"] == pytest.approx(math.log2(1 / 5))
    assert measured["L_null"] == pytest.approx(20 * (0.2 * math.log2(0.2) + 0.8 * math.log2(0.8)),
                                               rel=1e-5)
    assert 0.0 <= measured["share_true_sequences"] <= 1.0
    assert manifest["settings"]["model"]["n_hidden"] == 50
    assert manifest["settings"]["model"]["p"] == 0.2
    provenance = manifest["provenance"]
    for key in ("seed", "backend", "git_commit", "package_versions"):
        assert key in provenance, key
    assert provenance["backend"] == "c"
    assert "paper -2.414" in stdout


def test_quick_bound_below_truth(quick_run):
    output, _ = quick_run
    measured = json.loads((output / "figure2_heartbeat_quick.json").read_text())["measured"]
    assert measured["K"] < measured["L_true"] + 3 * measured["K_stderr"]
    assert measured["K_minus_L_null"] == pytest.approx(measured["K"] - measured["L_null"], abs=1e-9)


def test_invalid_setting_fails_before_training(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[model]\np = 1.5\n")
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "reproduce" / "figure2_heartbeat.py"), "--quick",
         "--config", str(config), "--output-dir", str(tmp_path), "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode != 0
    assert "[model] p = 1.5 is invalid" in completed.stderr
    assert not (tmp_path / "run").exists()


def test_shift_puts_pulse_in_first_column():
    sys.path.insert(0, str(REPOSITORY / "reproduce"))
    from figure2_heartbeat import shift_to_first_pulse

    from dpm.data import heartbeat

    sequences = heartbeat.true_sequences()
    samples = np.stack([sequences[2], np.zeros(20, np.uint8), sequences[0]])
    samples[0, 9] = 1  # a stray bit, which moves with its row
    noise = np.tile(np.arange(20), (3, 1))
    shifted, shifted_noise = shift_to_first_pulse(samples, noise)
    expected = np.stack([sequences[0], np.zeros(20, np.uint8), sequences[0]])
    expected[0, 7] = 1
    np.testing.assert_array_equal(shifted, expected)
    np.testing.assert_array_equal(shifted_noise[0], np.roll(np.arange(20), -2))
    np.testing.assert_array_equal(shifted_noise[1:], noise[1:])
