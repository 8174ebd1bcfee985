"""train_keras.py end to end, as a user runs it: random data, resume, and the small synthetic set via the pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "train_keras.py"
MODEL = "ds_cnn_s"  # the smallest DS-CNN keeps these runs to seconds of training


def run(args: list[str], env_extra: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_help_lists_the_flags():
    proc = run(["--help"])
    for flag in ("--path_to_data", "--random_data", "--resume", "--small", "--logrun", "--batch_size"):
        assert flag in proc.stdout


def test_random_data_then_resume(tmp_path):
    out = tmp_path / "run"
    common = ["--random_data", "--model", MODEL, "--batch_size", "64", "--out", str(out), "--logdir", str(tmp_path)]
    proc = run([*common, "--epochs", "1"])
    assert "Total params" in proc.stdout and "X batch: (batch_size=64, 101, 40)" in proc.stdout
    assert "test accuracy" in proc.stdout
    for name in ("model.keras", "model.json", "model_waveform.keras", "metrics.json", "best.keras"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and "accuracy" in metrics["test"] and "per_class" in metrics["cv"]
    # --resume continues the same run from its last checkpoint: epoch 1 follows epoch 0.
    run([*common, "--epochs", "2", "--resume"])
    log = pd.read_csv(out / "training_log.csv")
    assert list(log["epoch"]) == [0, 1]
    assert json.loads((out / "metrics.json").read_text())["epochs_this_run"] == 1


def test_small_synthetic_set_via_the_pipeline(tmp_path, synthetic_small):
    """No --path_to_data: the script prepares split and features itself (in SPEECHLIB_HOME), then trains."""
    env = {"SPEECHLIB_HOME": str(tmp_path / "home"), "SPEECHLIB_DATA": str(synthetic_small)}
    proc = run(["--small", "--model", MODEL, "--epochs", "1", "--batch_size", "32"], env)
    assert "[3/3] features" in proc.stdout
    out = tmp_path / "home" / "work" / "synthetic_small" / "models" / MODEL
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sizes"]["train"] > 0 and metrics["test"]["num_samples"] == metrics["sizes"]["test"]
    assert metrics["waveform_export_check"]["ok"], metrics["waveform_export_check"]
    meta = json.loads((out / "model.json").read_text())
    assert meta["labels"][-2:] == ["silence", "unknown"] and meta["kind"] == "logmel"
    # The prepared store is reused on the next run (each step skipped when complete).
    store = tmp_path / "home" / "work" / "synthetic_small" / "features" / "logmel"
    assert (store / "zarr.json").is_file()


@pytest.mark.parametrize("flag", ["--random_data"])
def test_random_data_is_a_real_flag(flag):
    """``--random_data`` takes no value (no type=bool trap)."""
    sys.path.insert(0, str(REPO))
    try:
        import train_keras
    finally:
        sys.path.remove(str(REPO))
    assert train_keras.parse_args([flag]).random_data is True
    assert train_keras.parse_args([]).random_data is False
