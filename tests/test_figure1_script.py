"""The Figure 1 script's --quick mode, end to end, and its manifest."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("figures")
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "reproduce" / "figure1_swiss_roll.py"), "--quick",
         "--output-dir", str(output), "--run-dir", str(output / "run")],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return output, completed.stdout


def test_quick_run_writes_figure_files(quick_run):
    output, _ = quick_run
    for suffix in (".png", ".pdf", ".json"):
        assert (output / f"figure1_swiss_roll_quick{suffix}").stat().st_size > 0
    assert not list(output.glob(".*tmp*"))
    assert (output / "run" / "checkpoint.npz").stat().st_size > 0
    assert (output / "run" / "config.json").stat().st_size > 0


def test_quick_manifest_has_required_fields(quick_run):
    output, stdout = quick_run
    manifest = json.loads((output / "figure1_swiss_roll_quick.json").read_text())
    for key in ("K", "K_stderr", "K_minus_L_null", "L_null", "L_true"):
        assert isinstance(manifest["measured"][key], float), key
    assert manifest["paper"] == {"K": 2.35, "K_minus_L_null": 6.45}
    assert manifest["units"].startswith("bits")
    assert manifest["settings"]["model"]["trajectory_length"] == 40
    assert manifest["settings"]["model"]["n_hidden"] == 16
    provenance = manifest["provenance"]
    for key in ("seed", "backend", "git_commit", "package_versions"):
        assert key in provenance, key
    assert provenance["backend"] == "c"
    assert provenance["package_versions"]["pytensor"]
    assert manifest["measured"]["L_null"] == pytest.approx(-4.0942, abs=1e-3)
    assert "paper 2.35" in stdout


def test_quick_bound_below_truth(quick_run):
    output, _ = quick_run
    measured = json.loads((output / "figure1_swiss_roll_quick.json").read_text())["measured"]
    error = (measured["K_stderr"] ** 2 + measured["L_true_stderr"] ** 2) ** 0.5
    assert measured["K"] < measured["L_true"] + 3 * error
    assert measured["K_minus_L_null"] == pytest.approx(measured["K"] - measured["L_null"])


def test_quick_checkpoint_restores_model(quick_run):
    from dpm.models import SwissRollModel
    from dpm.training import load_checkpoint

    output, _ = quick_run
    config = json.loads((output / "run" / "config.json").read_text())
    parameters, step_rule_state, state = load_checkpoint(output / "run" / "checkpoint.npz")
    model = SwissRollModel(**config["model"])
    model.set_parameter_values(parameters)
    assert state["log"]["status"]["epochs_done"] == config["training"]["n_epochs"]
    assert state["log"]["status"]["nonfinite_steps"] == 0
    assert "draws" in state["extra"]
    assert step_rule_state


def test_invalid_config_value_fails_before_training(tmp_path):
    config = (REPOSITORY / "original_configs" / "swiss_roll.toml").read_text()
    broken = tmp_path / "broken.toml"
    broken.write_text(config.replace("n_points = 20000", "n_points = 0"))
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "reproduce" / "figure1_swiss_roll.py"), "--config",
         str(broken), "--output-dir", str(tmp_path / "figures"), "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode != 0
    assert "[evaluation] n_points = 0 is invalid" in completed.stderr
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "figures").exists()


def test_existing_run_dir_is_rejected(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.npz").write_bytes(b"earlier run")
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "reproduce" / "figure1_swiss_roll.py"), "--quick",
         "--output-dir", str(tmp_path / "figures"), "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode != 0
    assert "already exists and is not empty" in completed.stderr
    assert (run_dir / "checkpoint.npz").read_bytes() == b"earlier run"
