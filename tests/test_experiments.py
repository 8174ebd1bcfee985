"""Tests for speechlib.experiments: one run per model family, the final-model rule and its record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from speechlib import config, experiments
from speechlib.store import FeatureStore, StoreError

SHAPE = (101, 40)
EXPECTED_KEYS = {
    "model", "accuracy", "macro_precision", "macro_recall", "macro_f1", "params", "seconds_per_epoch",
    "ms_per_clip", "num_samples", "name", "seed", "epochs", "input", "train_split", "cv_split", "train_rows",
}  # fmt: skip


def make_store(path, *, kind="logmel", shape=SHAPE, sizes=None, seed=0):
    """A tiny store whose classes are easy to tell apart: one band per class lights up."""
    sizes = sizes or {"sample_train": 96, "sample_cv": 48}
    rng = np.random.default_rng(seed)
    labels = list(config.KAGGLE12_LABELS)
    fs = FeatureStore.create(path, kind=kind, params={}, labels=labels, feature_shape=shape)
    for split, n in sizes.items():
        y = (np.arange(n) % len(labels)).astype(np.int32)
        X = rng.normal(0, 0.1, (n, *shape)).astype(np.float32)
        if kind == "waveform":
            X[np.arange(n), y * 100, 0] += 0.5
        else:
            X[np.arange(n), :, y * 3] += 3.0
        writer = fs.new_split(split, chunk_rows=32)
        writer.append(X, y)
        writer.finish()
    fs.fit_normalization("sample_train")
    return path


@pytest.fixture(scope="module")
def logmel(tmp_path_factory):
    return experiments.load(make_store(tmp_path_factory.mktemp("exp") / "logmel"))


def test_load_defaults_and_missing_split(tmp_path, logmel):
    assert logmel.normalize and logmel.feature_shape == SHAPE and logmel.num_classes == 12
    X, y = logmel.arrays("sample_train")
    assert X.shape == (96, *SHAPE) and y.dtype == np.int32
    assert abs(float(X.mean())) < 0.1  # normalised with the train statistics
    # The featurizer stores waveforms as (CLIP_SAMPLES, 1); the raw-waveform model takes (CLIP_SAMPLES,).
    wave = experiments.load(make_store(tmp_path / "wave", kind="waveform", shape=(config.CLIP_SAMPLES, 1)))
    assert not wave.normalize  # waveforms stay in [-1, 1]
    assert wave.feature_shape == (config.CLIP_SAMPLES,)
    assert wave.arrays("sample_cv")[0].shape == (48, config.CLIP_SAMPLES)
    with pytest.raises(StoreError, match="no complete split"):
        experiments.load(tmp_path / "wave", train="train")


def test_sklearn_baseline_row(logmel):
    row = experiments.run_experiment("logistic_regression", logmel, epochs=1, seed=3, timing_repeats=2)
    assert set(row) == EXPECTED_KEYS
    assert row["params"] is None and row["epochs"] == 0 and row["input"] == "logmel"
    assert row["num_samples"] == 48 and row["train_rows"] == 96
    assert row["accuracy"] > 0.5  # the classes are separable: far above chance (1/12)
    majority = experiments.run_experiment("majority", logmel, epochs=1, timing_repeats=2)
    assert majority["accuracy"] == pytest.approx(1 / 12)


def test_keras_row_and_seed_reproducibility(logmel):
    kwargs = dict(epochs=2, seed=5, timing_repeats=2, batch_size=32)
    a = experiments.run_experiment("ds_cnn_s", logmel, label="dscnn", **kwargs)
    b = experiments.run_experiment("ds_cnn_s", logmel, label="dscnn", **kwargs)
    assert a["model"] == "dscnn" and a["name"] == "ds_cnn_s" and a["epochs"] == 2
    assert a["params"] == 23_180  # trainable weights, the paper's convention
    assert a["seconds_per_epoch"] > 0 and a["ms_per_clip"] > 0
    assert a["accuracy"] == b["accuracy"]  # same seed, same result


def test_wrong_input_kind_is_explained(logmel):
    with pytest.raises(ValueError, match="takes 'waveform' input"):
        experiments.run_experiment("course_cnn1d", logmel, epochs=1)
    with pytest.raises(KeyError, match="unknown model"):
        experiments.run_experiment("no_such_model", logmel, epochs=1)


def test_choose_final_accuracy_first_then_cost():
    table = pd.DataFrame(
        {
            "model": ["big", "small", "weak"],
            "name": ["res15", "res8", "dense"],
            "accuracy": [0.900, 0.895, 0.70],
            "ms_per_clip": [20.0, 2.0, 0.5],
        }
    )
    assert experiments.choose_final(table, tolerance=0.01)["model"] == "small"  # tied on accuracy: cheaper wins
    assert experiments.choose_final(table, tolerance=0.0)["model"] == "big"  # strict: most accurate wins
    assert experiments.choose_final(table, tolerance=0.5)["model"] == "weak"
    with pytest.raises(ValueError, match="empty"):
        experiments.choose_final(table.iloc[:0])


def test_final_model_record_round_trip(tmp_path):
    path = experiments.save_final_model(tmp_path / "x" / "final_model.json", "res8", cv_accuracy=np.float32(0.9))
    record = experiments.read_final_model(path)
    assert record["model"] == "res8" and record["cv_accuracy"] == pytest.approx(0.9)
    with pytest.raises(KeyError):
        experiments.save_final_model(tmp_path / "bad.json", "no_such_model")
    with pytest.raises(FileNotFoundError, match="notebook 3"):
        experiments.read_final_model(tmp_path / "missing.json")


def test_final_model_path_is_in_the_work_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHLIB_HOME", str(tmp_path))
    path = experiments.final_model_path(tmp_path / "mydata", small=True)
    assert path == tmp_path / "work" / "mydata-small" / "experiments" / "final_model.json"
