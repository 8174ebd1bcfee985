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


def test_train_every_reads_a_label_stratified_part_of_the_training_split_only(tmp_path):
    store = make_store(tmp_path / "store")
    y_all = FeatureStore(store).open_split("train")[1][:]
    data = train.load_data(store, batch_size=8, seed=1, spec_augment=False, train_every=4)
    assert data.sizes == {"train": 24, "cv": 24, "test": 24}  # cv and test stay whole
    y = np.concatenate([b for _, b in data.train.as_numpy_iterator()])
    assert sorted(y) == sorted(y_all[::4])  # every 4th row: each class in its proportion
    assert np.bincount(y).argmax() == data.labels.index(config.UNKNOWN_LABEL)
    for bad in ({"train_every": 0}, {"train_every": 2, "shard": (0, 2)}):
        with pytest.raises(ValueError, match="train_every"):
            train.load_data(store, **bad)


def test_each_worker_visits_its_shard_in_its_own_order(tmp_path):
    """Worker i shuffles with seed + i: with one seed, the shards' i-th rows (store neighbours) would share batches."""
    store = make_store(tmp_path / "store")
    X_all = FeatureStore(store).open_split("train")[0][:]
    positions = []
    for index in (0, 1):
        data = train.load_data(store, batch_size=48, seed=1, spec_augment=False, shard=(index, 2))
        mean, std = (np.asarray(data.normalization[k], np.float32) for k in ("mean", "std"))
        shard = (X_all[train.shard_rows(len(X_all), (index, 2))] - mean) / std
        X = np.concatenate([b for b, _ in data.train.as_numpy_iterator()])
        visited = [int(np.argmin(np.abs(shard - x).reshape(len(shard), -1).sum(axis=1))) for x in X]
        assert sorted(visited) == list(range(len(shard)))  # every row of the shard once
        positions.append(visited)
    assert positions[0] != positions[1]


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


@pytest.mark.slow
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


def _fit_cnn2d(store, out, *, epochs, resume=False, spec_augment=False, interrupt_at_batch=None):
    """Train cnn2d (it has dropout) as train_keras.py does; optionally interrupt it after a given batch."""
    import keras

    from speechlib import models

    train.set_seed(0)
    done = train.resume_epoch(out) if resume else 0
    data = train.load_data(store, batch_size=32, seed=0, spec_augment=spec_augment, initial_epoch=done)
    model = models.build("cnn2d", input_shape=data.feature_shape, num_classes=data.num_classes)

    class Interrupt(keras.callbacks.Callback):
        seen = 0

        def on_train_batch_end(self, batch, logs=None):
            Interrupt.seen += 1
            if Interrupt.seen == interrupt_at_batch:
                raise KeyboardInterrupt  # as Ctrl-C in the middle of an epoch

    model.fit = _with_callback(model.fit, Interrupt()) if interrupt_at_batch else model.fit
    try:
        train.fit(model, data, epochs=epochs, lr=3e-3, out_dir=out, resume=resume, verbose=0)
    except KeyboardInterrupt:
        return None
    return model


def _with_callback(fit, callback):
    def wrapped(*args, callbacks=(), **kwargs):
        return fit(*args, callbacks=[callback, *callbacks], **kwargs)

    return wrapped


@pytest.mark.slow
@pytest.mark.parametrize("spec_augment", [False, True])  # augmentation on: its draws depend on (seed, epoch) only
def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, spec_augment):
    store = make_store(tmp_path / "store")  # 96 rows: 3 batches of 32 per epoch
    clean = _fit_cnn2d(store, tmp_path / "clean", epochs=3, spec_augment=spec_augment)
    assert _fit_cnn2d(store, tmp_path / "cut", epochs=3, spec_augment=spec_augment, interrupt_at_batch=5) is None
    assert train.resume_epoch(tmp_path / "cut") == 1  # the second epoch was interrupted after 2 of 3 batches
    resumed = _fit_cnn2d(store, tmp_path / "cut", epochs=3, spec_augment=spec_augment, resume=True)
    for a, b in zip(clean.variables, resumed.variables, strict=True):  # dropout's seed states too
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    logs = [train.read_log(tmp_path / name).drop(columns="seconds") for name in ("clean", "cut")]
    assert list(logs[1]["epoch"]) == [0, 1, 2]
    assert logs[0].equals(logs[1])


def test_a_backup_round_trips_every_piece_of_state(tmp_path):
    import random

    from speechlib import models

    store = make_store(tmp_path / "store", sizes={"train": 32, "cv": 16, "test": 16})
    data = train.load_data(store, batch_size=32, seed=0, spec_augment=False)
    model = models.build("cnn2d", input_shape=data.feature_shape, num_classes=data.num_classes)
    train.fit(model, data, epochs=1, lr=1e-3, out_dir=tmp_path / "run", verbose=0)
    state = train.load_backup(tmp_path / "run")
    assert state.epoch == 1 and not state.meta["stopped"] and len(state.meta["rows"]) == 1
    assert state.meta["run"]["steps_per_epoch"] == 1 and state.meta["checkpoint"]["best"] is not None
    saved = state.values("model")
    assert len(saved) == len(model.variables) > len(model.weights)  # the dropout seed states are saved too
    assert int(state.values("optimizer")[0]) == 1  # the step count (it drives the schedule)
    assert sorted(state.path.parent.iterdir()) == [state.path]  # no temporary file left behind
    assert random.getstate()[1] == tuple(state.meta["python_random"][1])


def test_a_truncated_backup_names_the_file_and_the_way_out(tmp_path):
    backup = tmp_path / train.BACKUP_DIR / train.BACKUP_FILE
    backup.parent.mkdir()
    np.savez(backup, meta=np.array("{}"), weights=np.zeros(1000))
    backup.write_bytes(backup.read_bytes()[:300])  # a copy cut short
    with pytest.raises(train.ResumeError, match="truncated or corrupt") as info:
        train.load_backup(tmp_path)
    assert str(backup) in str(info.value) and "run without --resume" in str(info.value)
    with pytest.raises(train.ResumeError, match="older speechlib"):
        backup.unlink()
        (backup.parent / "latest.weights.h5").write_bytes(b"")  # Keras' BackupAndRestore file
        train.resume_epoch(tmp_path)
