"""Tests for the training recipe of speechlib.train: on-the-fly waveform augmentation, its switches, mixup."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from speechlib import augment, train
from speechlib.store import FeatureStore

PLAIN = train.Recipe(shift=False, noise=False, gain=False, spec_augment=False)


def reader(store, recipe, *, seed=1, batch_size=32):
    fs = FeatureStore(store)
    clips, y = train._train_waveforms(fs, "train")
    return train.WaveformBatches(
        clips, y, kind=fs.kind, params=fs.params, normalization=fs.normalization, recipe=recipe,
        noise=train.noise_bank(fs) if recipe.noise else None, batch_size=batch_size, seed=seed,
    )  # fmt: skip


def test_on_the_fly_features_without_augmentation_equal_the_stored_ones(small_store):
    """The same clips through the same featurizer: featurizing on the fly adds nothing but the augmentation."""
    fs = FeatureStore(small_store)
    r = reader(small_store, PLAIN, batch_size=fs.num_rows("train"))
    X, y = r[0]
    order = np.random.default_rng([1, 0]).permutation(r.num_rows)
    stored = fs.normalize(fs.load_array("train")[0])
    manifest = fs.manifest("train")
    keep = np.flatnonzero(manifest["augment"].to_numpy() == 0)
    np.testing.assert_allclose(X, stored[keep][order], atol=2e-3)
    assert np.array_equal(y, manifest["label_id"].to_numpy()[keep][order])


@pytest.mark.parametrize("switch", ["shift", "noise", "gain", "speed", "spec_augment", "mixup"])
def test_each_switch_changes_the_training_batches(small_store, switch):
    value = 0.4 if switch == "mixup" else True
    r0, r1 = reader(small_store, PLAIN), reader(small_store, PLAIN.__class__(**{**PLAIN.to_dict(), switch: value}))
    X0, y0 = r0[0]
    X1, y1 = r1[0]
    assert X1.shape == X0.shape and X1.dtype == np.float32
    assert not np.allclose(X0, X1)
    if switch == "mixup":
        assert y1.shape == (len(y0), 12) and np.allclose(y1.sum(1), 1) and np.all(y1.max(1) >= 0.5 - 1e-6)
        assert np.array_equal(y1.argmax(1)[y1.max(1) > 0.5], y0[y1.max(1) > 0.5])
    else:
        assert np.array_equal(y0, y1)


def test_draws_are_a_function_of_seed_epoch_and_batch(small_store):
    """Batch i of epoch e is the same whenever it is built (exact resume); epochs differ; seeds differ."""
    a, b = reader(small_store, train.Recipe()), reader(small_store, train.Recipe())
    first = a[1]
    a.on_epoch_end()
    second = a[1]
    b.epoch_index = 1
    np.testing.assert_array_equal(b[1][0], second[0])
    np.testing.assert_array_equal(reader(small_store, train.Recipe())[1][0], first[0])
    assert not np.array_equal(first[0], second[0])
    assert not np.array_equal(reader(small_store, train.Recipe(), seed=2)[1][0], first[0])
    # Every clip once per epoch.
    labels = np.concatenate([a[i][1] for i in range(len(a))])
    assert sorted(labels) == sorted(a.y)


def test_noise_comes_from_the_training_split_only(small_store):
    fs = FeatureStore(small_store)
    bank = train.noise_bank(fs, "train")
    assert isinstance(bank, augment.NoiseBank) and len(bank) > 0
    from speechlib import split

    info = split.load_info(fs.attrs["split_dir"])
    regions = {(r["path"], r["start"], r["stop"]) for r in info["noise_regions"]["train"]}
    assert {(r["path"], r["start"], r["stop"]) for r in bank.regions} == regions
    for other in ("cv", "test"):
        for r in info["noise_regions"][other]:
            for t in bank.regions:
                assert r["path"] != t["path"] or r["stop"] <= t["start"] or t["stop"] <= r["start"]


def test_load_data_uses_the_recipe_and_records_it(small_store):
    data = train.load_data(small_store, batch_size=16, recipe=train.Recipe(mixup=0.2))
    X, y = next(iter(data.train.as_numpy_iterator()))
    assert X.shape == (16, *data.feature_shape) and y.shape == (16, data.num_classes)
    assert data.recipe.mixup == 0.2 and data.recipe.to_dict()["snr_db"] == [0.0, 20.0]
    cv_plain = next(iter(train.load_data(small_store, recipe=PLAIN).cv.as_numpy_iterator()))[0]
    assert np.array_equal(next(iter(data.cv.as_numpy_iterator()))[0][:16], cv_plain[:16])  # cv never augmented


def test_the_flags_switch_the_recipe():
    parser = train.add_arguments(argparse.ArgumentParser())
    assert train.Recipe.from_args(parser.parse_args([])) == train.Recipe()
    recipe = train.Recipe.from_args(parser.parse_args(["--no_noise", "--no_shift", "--mixup", "0.3"]))
    assert (recipe.noise, recipe.shift, recipe.gain, recipe.spec_augment) == (False, False, True, True)
    assert recipe.mixup == 0.3


def test_mixup_batch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 5, 3)).astype(np.float32)
    y = np.arange(8) % 4
    same = train.mixup_batch(X, y, alpha=0.0, rng=rng, num_classes=4)
    assert same[0] is X and np.array_equal(same[1], y)
    Xm, ym = train.mixup_batch(X, y, alpha=0.4, rng=np.random.default_rng(1), num_classes=4)
    assert Xm.shape == X.shape and ym.shape == (8, 4) and np.allclose(ym.sum(1), 1)
    assert np.all(ym.max(1) >= 0.5)


@pytest.mark.slow
def test_a_model_trains_with_soft_labels(small_store, tmp_path):
    from speechlib import models

    data = train.load_data(small_store, batch_size=32, recipe=train.Recipe(mixup=0.3))
    model = models.build("ds_cnn_s", input_shape=data.feature_shape, num_classes=data.num_classes)
    history = train.fit(model, data, epochs=1, lr=1e-3, out_dir=tmp_path / "run", verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "val_accuracy" in history.history
    best = train.best_model(tmp_path / "run")  # compiled with the soft-label loss: it loads again
    assert best is not None and train.evaluate_split(best, data, "cv")["accuracy"] >= 0


def test_the_budget_is_a_step_count(monkeypatch):
    monkeypatch.setenv("SPEECHLIB_SMALL", "0")
    assert train.auto_epochs(2400, 64) == round(train.DEFAULT_STEPS / 38)  # 38 batches an epoch
    assert train.auto_epochs(8052, 64) == round(train.DEFAULT_STEPS / 126)
    assert train.auto_epochs(85_000, 64) == 10  # at least `low` epochs
    assert train.auto_epochs(10, 64) == 300  # at most `high`
    monkeypatch.setenv("SPEECHLIB_SMALL", "1")
    assert train.auto_epochs(370, 64) == round(train.SMALL_STEPS / 6)


def test_the_default_model_is_read_from_the_final_model_record(tmp_path):
    assert train.DEFAULT_MODEL == train.default_model() == "res8"
    record = tmp_path / "final_model.json"
    record.write_text('{"model": "ds_cnn_m", "rule": "test"}')
    assert train.default_model(record) == "ds_cnn_m"
    record.write_text("not json")
    assert train.default_model(record) == train.FALLBACK_MODEL
    assert train.default_model(tmp_path / "missing.json") == train.FALLBACK_MODEL


def test_real_data_dir_comes_from_the_environment(monkeypatch, tmp_path):
    from speechlib import config

    monkeypatch.delenv("SPEECHLIB_REAL_DATA", raising=False)
    assert config.real_data_dir() is None
    monkeypatch.setenv("SPEECHLIB_REAL_DATA", str(tmp_path / "missing"))
    assert config.real_data_dir() is None
    monkeypatch.setenv("SPEECHLIB_REAL_DATA", str(tmp_path))
    assert config.real_data_dir() == tmp_path.resolve()
