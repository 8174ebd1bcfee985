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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_head_only_needs_init_from(capsys):
    """``--head_only`` freezes a pre-trained body: without ``--init_from`` there is none, a one-line usage error."""
    sys.path.insert(0, str(REPO))
    try:
        import train_keras
    finally:
        sys.path.remove(str(REPO))
    assert train_keras.parse_args(["--init_from", "m", "--head_only"]).head_only is True
    with pytest.raises(SystemExit) as exit_info:
        train_keras.parse_args(["--head_only"])
    assert exit_info.value.code == 2 and "--head_only needs --init_from" in capsys.readouterr().err


# --- --path_to_data takes what a user has; bad input is one line and exit code 2 ---------------------------------

KILLER = """
import os, signal, sys
import keras
sys.path.insert(0, {repo!r})
import train_keras
from speechlib import train

make_callbacks = train.callbacks


class KillNine(keras.callbacks.Callback):
    seen = 0

    def on_train_batch_end(self, batch, logs=None):
        KillNine.seen += 1
        if KillNine.seen == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)  # as a machine that goes away: no cleanup at all


train.callbacks = lambda *args, **kwargs: [KillNine(), *make_callbacks(*args, **kwargs)]
train_keras.main(train_keras.parse_args(sys.argv[1:]))
"""


def run_failing(args: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )


@pytest.mark.slow
def test_a_raw_dataset_folder_is_prepared_and_trained_on(tmp_path, synthetic_small):
    env = {"SPEECHLIB_HOME": str(tmp_path / "home")}
    out = tmp_path / "run"
    args = ["--path_to_data", str(synthetic_small), "--small", "--epochs", "1", "--model", MODEL, "--out", str(out)]
    proc = run(args, env)
    assert "[2/3] split: writing" in proc.stdout and "[3/3] features: computing logmel" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"] == str(tmp_path / "home" / "work" / "synthetic_small" / "features" / "logmel")
    assert metrics["test"]["num_samples"] == metrics["sizes"]["test"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "does not exist: pass a Speech Commands dataset folder or a feature store"),
        ("empty", "is an empty folder"),
        ("half_store", "was not finished"),
        ("no_cv_test", "has no cv, test split"),
        ("truncated_backup", "the file is truncated or corrupt"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, case, message):
    from test_pipeline import make_store

    path, extra = tmp_path / case, []
    if case == "empty":
        path.mkdir()
    elif case == "half_store":
        make_store(path, unfinished=("train",))
    elif case == "no_cv_test":
        make_store(path, splits=("train",))
    elif case == "truncated_backup":
        common = ["--random_data", "--model", MODEL, "--epochs", "1", "--out", str(path)]
        run(common)
        backup = path / "backup" / "state.npz"
        backup.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
        proc = run_failing([*common, "--epochs", "2", "--resume"])
    if case != "truncated_backup":
        proc = run_failing(["--path_to_data", str(path), "--model", MODEL, "--epochs", "1", *extra])
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("train_keras.py: error: ") and message in last and str(path) in last


@pytest.mark.slow
@pytest.mark.parametrize("augment", [[], ["--no_spec_augment"]], ids=["spec_augment", "no_spec_augment"])
def test_kill_9_mid_epoch_then_resume_ends_as_an_uninterrupted_run(tmp_path, small_store, augment):
    import numpy as np

    common = ["--path_to_data", str(small_store), "--epochs", "3", "--batch_size", "64", "--logdir", str(tmp_path),
              *augment]  # fmt: skip  # cnn2d, the default: it has dropout; 370 rows: 6 batches an epoch
    run([*common, "--out", str(tmp_path / "clean")])
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER.format(repo=str(REPO), kill_at=9))  # the 3rd batch of the 2nd epoch
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cut = subprocess.run([sys.executable, str(killer), *common, "--out", str(tmp_path / "cut")], env=env,
                         capture_output=True, text=True, cwd=REPO, timeout=600)  # fmt: skip
    assert cut.returncode == -9, cut.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "cut" / "training_log.csv")) == 1
    run([*common, "--out", str(tmp_path / "cut"), "--resume"])
    states = [np.load(tmp_path / name / "backup" / "state.npz") for name in ("clean", "cut")]
    keys = [key for key in states[0].files if key.startswith(("model/", "optimizer/", "best/"))]
    assert keys and set(keys) == {k for k in states[1].files if k.startswith(("model/", "optimizer/", "best/"))}
    for key in keys:  # every variable of the model (dropout seed states too) and the optimizer, and the best weights
        np.testing.assert_array_equal(states[0][key], states[1][key], err_msg=key)
    logs = [pd.read_csv(tmp_path / name / "training_log.csv").drop(columns="seconds") for name in ("clean", "cut")]
    assert list(logs[1]["epoch"]) == [0, 1, 2] and logs[0].equals(logs[1])
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("clean", "cut")]
    assert metrics[0]["cv"] == metrics[1]["cv"] and metrics[0]["test"] == metrics[1]["test"]


@pytest.mark.slow
def test_init_from_fine_tunes_gives_other_labels_a_new_head_and_refuses_other_features(tmp_path, small_store):
    """Pre-training then fine-tuning: --init_from starts from a bundle's weights (its model replaces --model)."""
    import shutil

    import keras
    import numpy as np

    from speechlib import inference, models, train

    common = ["--path_to_data", str(small_store), "--epochs", "1", "--logdir", str(tmp_path)]
    base = tmp_path / "base"
    run([*common, "--model", MODEL, "--out", str(base)])
    tuned = tmp_path / "tuned"
    proc = run([*common, "--model", "cnn2d", "--init_from", str(base), "--out", str(tuned)])
    assert f"fine-tuning {MODEL} from {base}" in proc.stdout
    assert json.loads((tuned / "model.json").read_text())["model_name"] == MODEL
    before, after = inference.load_bundle(base).model, keras.saving.load_model(tuned / "model.keras")
    assert [w.shape for w in before.get_weights()] == [w.shape for w in after.get_weights()]
    assert any(not np.array_equal(a, b) for a, b in zip(before.get_weights(), after.get_weights(), strict=True))
    data = train.load_data(small_store)
    start, name, note = train.init_model(base, data)  # what the fine-tuning started from
    assert name == MODEL and note == ""
    for a, b in zip(before.get_weights(), start.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    # A bundle of other labels (here the same ones in reverse) keeps its body and gets a new output layer
    # whose rows follow the data's labels: every label the bundle knows keeps its weights.
    other = tmp_path / "other"
    shutil.copytree(base, other, ignore=shutil.ignore_patterns("backup", "*.csv"))
    meta = json.loads((other / "model.json").read_text())
    meta["labels"] = meta["labels"][::-1]
    (other / "model.json").write_text(json.dumps(meta))
    start, name, note = train.init_model(other, data)
    n = len(data.labels)
    assert name == MODEL
    assert note == f"a new output layer for the data's {n} labels ({n} of them kept from the bundle's {n})"
    old_kernel, old_bias = before.get_layer("logits").get_weights()
    new_kernel, new_bias = start.get_layer("logits").get_weights()
    np.testing.assert_array_equal(new_kernel, old_kernel[:, ::-1])
    np.testing.assert_array_equal(new_bias, old_bias[::-1])
    body = [w for layer in before.layers if layer.name != "logits" for w in layer.get_weights()]
    new_body = [w for layer in start.layers if layer.name != "logits" for w in layer.get_weights()]
    assert all(np.array_equal(a, b) for a, b in zip(body, new_body, strict=True))
    proc = run([*common, "--init_from", str(other), "--out", str(tmp_path / "relabelled")])
    assert f"fine-tuning {MODEL} from {other}: a new output layer" in proc.stdout

    # --head_only: the body is frozen (batch norm statistics too), only the new output layer learns; the bundle
    # is saved whole (every layer trainable, the parameters counted as for any model), and a bundle saved so
    # fine-tunes as a whole again.
    head = tmp_path / "head"
    proc = run([*common, "--init_from", str(other), "--head_only", "--out", str(head)])
    assert "only the output layer trains (the body frozen)" in proc.stdout
    trained = keras.saving.load_model(head / "model.keras")
    frozen = [w for layer in trained.layers if layer.name != "logits" for w in layer.get_weights()]
    assert all(np.array_equal(a, b) for a, b in zip(new_body, frozen, strict=True))
    assert not np.array_equal(trained.get_layer("logits").get_weights()[0], new_kernel)
    assert all(layer.trainable for layer in trained.layers)
    assert json.loads((head / "metrics.json").read_text())["params"] == models.count_params(before, trainable_only=True)
    start, _, note = train.init_model(head, data)
    assert note == "" and all(layer.trainable for layer in start.layers)

    # A bundle of other features is refused with one line naming it; so is a path without a bundle.
    meta["labels"] = meta["labels"][::-1]
    meta["params"] = {**meta["params"], "n_mels": int(meta["params"]["n_mels"]) + 8}
    (other / "model.json").write_text(json.dumps(meta))
    for path, message in ((other, "its features differ from the data's"), (tmp_path / "nothing", "no model file here")):
        proc = run_failing([*common, "--init_from", str(path), "--out", str(tmp_path / "refused")])
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("train_keras.py: error: --init_from") and message in last and str(path) in last


@pytest.mark.slow
def test_strategy_mirrored_on_two_logical_cpus(tmp_path):
    """--strategy mirrored trains with MirroredStrategy over two logical CPU devices, and its bundle loads."""
    from speechlib import inference

    out = tmp_path / "mirrored"
    common = ["--random_data", "--model", MODEL, "--batch_size", "64", "--out", str(out), "--logdir", str(tmp_path)]
    proc = run([*common, "--epochs", "1", "--strategy", "mirrored", "--cpu_replicas", "2"])
    assert "MirroredStrategy over 2 devices, 32 rows of each batch on each" in proc.stdout
    bundle = inference.load_bundle(out / "model.keras")
    assert bundle.model.output_shape[-1] == len(bundle.labels)
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 1
