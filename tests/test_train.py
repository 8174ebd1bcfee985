"""Tests for speechlib.train: class weights, store-streamed data, fit with checkpoints and resume, evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from speechlib import config, train
from speechlib.store import FeatureStore

SHAPE = (101, 40)


def make_store(path, *, sizes=None, seed=0):
    """A tiny feature store: class-dependent features (learnable), train/cv/test, train statistics."""
    sizes = sizes or {"train": 96, "cv": 24, "test": 24}
    rng = np.random.default_rng(seed)
    labels = list(config.KAGGLE12_LABELS)
    fs = FeatureStore.create(path, kind="logmel", params={}, labels=labels, feature_shape=SHAPE)
    for split, n in sizes.items():
        y = (np.arange(n) % len(labels)).astype(np.int32)
        if split == "train":
            y[: n // 2] = labels.index(config.UNKNOWN_LABEL)  # imbalanced on purpose
        X = rng.normal(-5, 2, (n, *SHAPE)).astype(np.float32)
        X[np.arange(n), :, y * 3] += 8.0  # one band per class lights up
        writer = fs.new_split(split, chunk_rows=32)
        writer.append(X, y)
        writer.finish()
    fs.fit_normalization("train")
    return path


def test_class_weights_balance_the_classes():
    w = train.class_weights([10, 30, 0, 60])
    assert w[2] == 0.0
    # Each present class gets the same total weight n_c * w_c = n / k.
    totals = [n * w[i] for i, n in enumerate([10, 30, 0, 60]) if n]
    assert np.allclose(totals, 100 / 3)


def test_load_data_streams_normalised_batches(tmp_path):
    store = make_store(tmp_path / "store")
    data = train.load_data(store, batch_size=16, seed=1, spec_augment=False)
    assert data.feature_shape == SHAPE and data.num_classes == 12
    assert data.sizes == {"train": 96, "cv": 24, "test": 24}
    assert int(data.train.cardinality()) == 6
    X, y = next(iter(data.train.as_numpy_iterator()))
    assert X.shape == (16, *SHAPE) and X.dtype == np.float32 and y.dtype == np.int32
    Xs = np.concatenate([x for x, _ in data.train.as_numpy_iterator()])
    assert abs(float(Xs.mean())) < 0.1 and abs(float(Xs.std()) - 1) < 0.1  # train statistics applied
    unknown = data.labels.index(config.UNKNOWN_LABEL)
    assert data.class_weight[unknown] < data.class_weight[0]  # the big class weighs less
    # Every epoch reads every row once, in a new order.
    y1 = np.concatenate([b for _, b in data.train.as_numpy_iterator()])
    y2 = np.concatenate([b for _, b in data.train.as_numpy_iterator()])
    assert sorted(y1) == sorted(y2) and len(y1) == 96 and not np.array_equal(y1, y2)
    assert "class weights" in data.describe()


def test_spec_augment_masks_training_batches_only(tmp_path):
    store = make_store(tmp_path / "store")
    plain = train.load_data(store, batch_size=96, seed=1, spec_augment=False)
    masked = train.load_data(store, batch_size=96, seed=1, spec_augment=True)
    X0, y0 = next(iter(plain.train.as_numpy_iterator()))
    X1, y1 = next(iter(masked.train.as_numpy_iterator()))
    assert np.array_equal(y0, y1)  # same order for the same seed
    assert not np.array_equal(X0, X1)
    cv0 = next(iter(plain.cv.as_numpy_iterator()))[0]
    cv1 = next(iter(masked.cv.as_numpy_iterator()))[0]
    assert np.array_equal(cv0, cv1)


def test_fit_checkpoints_logs_and_resumes(tmp_path):
    from speechlib import models

    store = make_store(tmp_path / "store")
    out = tmp_path / "run"
    train.set_seed(0)
    data = train.load_data(store, batch_size=32, seed=0)
    model = models.build("ds_cnn_s", num_classes=data.num_classes)
    history = train.fit(model, data, epochs=1, lr=3e-3, out_dir=out, logdir=tmp_path / "logs" / "run", verbose=0)
    assert len(history.epoch) == 1
    assert (out / train.BEST_FILE).is_file() and (out / train.BACKUP_DIR).is_dir()
    log = train.read_log(out)
    assert list(log["epoch"]) == [0] and "seconds" in log and "val_accuracy" in log
    # Resume: a new model object continues from the backup at epoch 1, and the log is appended.
    model = models.build("ds_cnn_s", num_classes=data.num_classes)
    history = train.fit(model, data, epochs=2, lr=3e-3, out_dir=out, resume=True, verbose=0)
    assert history.epoch == [1]
    assert list(train.read_log(out)["epoch"]) == [0, 1]
    # Without resume, the run starts over.
    model = models.build("ds_cnn_s", num_classes=data.num_classes)
    history = train.fit(model, data, epochs=1, lr=3e-3, out_dir=out, verbose=0)
    assert history.epoch == [0] and list(train.read_log(out)["epoch"]) == [0]
    metrics = train.evaluate_split(train.best_model(out), data, "test")
    assert metrics["num_samples"] == 24 and len(metrics["confusion_matrix"]) == 12
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_random_data_has_the_right_shapes():
    data = train.random_data(batch_size=8, sizes={"train": 16, "cv": 8, "test": 8})
    X, y = next(iter(data.train.as_numpy_iterator()))
    assert X.shape == (8, 101, 40) and y.max() < 12
    assert data.normalization["std"].shape == (40,)


def test_default_out_sits_beside_the_features(tmp_path):
    store = tmp_path / "work" / "features" / "logmel"
    assert train.default_out(store, "run1") == (tmp_path / "work" / "models" / "run1").resolve()


def test_load_data_refuses_a_store_without_statistics(tmp_path):
    from speechlib.store import StoreError

    fs = FeatureStore.create(tmp_path / "s", kind="logmel", params={}, labels=["a", "b"], feature_shape=SHAPE)
    for split in ("train", "cv", "test"):
        w = fs.new_split(split)
        w.append(np.zeros((2, *SHAPE), np.float32), np.array([0, 1]))
        w.finish()
    with pytest.raises(StoreError, match="normalisation"):
        train.load_data(tmp_path / "s")
