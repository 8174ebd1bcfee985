"""Tests for speechlib.pipeline.resolve: what --path_to_data accepts, and the one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

from speechlib import config, pipeline
from speechlib.store import FeatureStore

SHAPE = (101, 40)


def make_store(path, *, splits=("train", "cv", "test"), unfinished=(), statistics=True):
    """A tiny store with ``splits``; those in ``unfinished`` are left half-written (no completion marker)."""
    labels = list(config.KAGGLE12_LABELS)
    command = f"speechlib featurize --split-dir /data/split --features logmel --out {path}"
    fs = FeatureStore.create(path, kind="logmel", params={}, labels=labels, feature_shape=SHAPE, command=command)
    rng = np.random.default_rng(0)
    for split in splits:
        writer = fs.new_split(split, chunk_rows=16)
        writer.append(rng.normal(size=(24, *SHAPE)).astype(np.float32), np.arange(24, dtype=np.int32) % 12)
        if split not in unfinished:
            writer.finish()
    if statistics and "train" not in unfinished:
        fs.fit_normalization("train")
    return path


def test_a_complete_store_is_used_as_it_is(tmp_path):
    store = make_store(tmp_path / "store")
    assert pipeline.resolve(store) == store.resolve()


@pytest.mark.slow
def test_a_dataset_folder_is_split_and_featurized_once(tmp_path, monkeypatch, synthetic_small):
    monkeypatch.setenv("SPEECHLIB_HOME", str(tmp_path / "home"))
    store = pipeline.resolve(synthetic_small, small=True, workers=1, verbose=False)
    assert store == (tmp_path / "home" / "work" / "synthetic_small" / "features" / "logmel").resolve()
    assert set(pipeline.TRAINING_SPLITS) <= set(FeatureStore(store).splits())
    modified = (store / "zarr.json").stat().st_mtime_ns
    assert pipeline.resolve(synthetic_small, small=True, verbose=False) == store  # every step skipped
    assert (store / "zarr.json").stat().st_mtime_ns == modified


def test_prepare_can_stop_after_the_split(tmp_path, monkeypatch, synthetic_small, capsys):
    """features=False (notebook 1, before features are taught): the split is written, no store is made."""
    monkeypatch.setenv("SPEECHLIB_HOME", str(tmp_path / "home"))
    prepared = pipeline.prepare(synthetic_small, small=True, workers=1, features=False)
    assert (prepared.split_dir / "split.json").is_file()
    assert prepared.store == tmp_path / "home" / "work" / "synthetic_small" / "features" / "logmel"
    assert not prepared.store.exists()
    assert "[3/3] features: not computed here" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "does not exist: pass a Speech Commands dataset folder or a feature store"),
        ("file", "is a file: pass a dataset folder or a feature store folder"),
        ("empty", "is an empty folder"),
        ("no_wavs", "has no class folders with WAV files in them"),
        ("work_dir", "is a work folder, not a dataset: pass its feature store"),
        ("half_store", "was not finished (24 of ? manifest rows done); run `speechlib featurize --split-dir"),
        ("no_cv_test", "has no cv, test split (it has train); training needs train, cv, test"),
        ("no_statistics", "has no normalisation statistics"),
    ],
)
def test_unusable_input_is_one_sentence_that_says_what_to_do(tmp_path, case, message):
    path = tmp_path / case
    if case == "file":
        path.write_text("not data")
    elif case == "empty":
        path.mkdir()
    elif case == "no_wavs":
        (path / "yes").mkdir(parents=True)
        (path / "yes" / "notes.txt").write_text("no audio")
    elif case == "work_dir":
        make_store(path / "features" / "logmel")
    elif case == "half_store":
        make_store(path, unfinished=("train",))
    elif case == "no_cv_test":
        make_store(path, splits=("train",))
    elif case == "no_statistics":
        make_store(path, statistics=False)
    with pytest.raises(pipeline.InputError) as info:
        pipeline.resolve(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text
