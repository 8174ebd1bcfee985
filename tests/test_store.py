"""Tests of speechlib.store: round-trip, completion marker, appending, lazy batches, bcolz compatibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from speechlib import store

SHAPE = (6, 5)  # small rows keep the tests fast; chunk_rows is set explicitly
LABELS = ["a", "b", "c"]


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, *SHAPE)).astype(np.float32)
    X[:, 0, 0] = np.arange(n)  # row identity, to check every row is read once
    return X, (np.arange(n) % len(LABELS)).astype(np.int32)


def new_store(path: Path) -> store.FeatureStore:
    return store.FeatureStore.create(path, kind="test", params={"p": 1}, labels=LABELS, feature_shape=SHAPE)


def write_split(
    fs: store.FeatureStore, split: str, X: np.ndarray, y: np.ndarray, *, step: int = 10, finish: bool = True
) -> None:
    writer = fs.new_split(split, chunk_rows=8)
    for start in range(0, len(X), step):
        writer.append(X[start : start + step], y[start : start + step])
    if finish:
        writer.finish()


def test_round_trip(tmp_path: Path) -> None:
    X, y = make_data(53)
    write_split(new_store(tmp_path / "fs"), "train", X, y)
    fs = store.FeatureStore(tmp_path / "fs")
    X2, y2 = fs.load_array("train")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    assert X2.dtype == np.float32 and y2.dtype == np.int32
    assert fs.kind == "test" and fs.params == {"p": 1} and fs.labels == LABELS and fs.feature_shape == SHAPE
    assert fs.splits() == ["train"] and fs.num_rows("train") == 53
    assert fs.attrs["speechlib_version"]
    assert list(fs.manifest("train")["row"]) == list(range(53))


def test_incomplete_split_is_refused_on_open(tmp_path: Path) -> None:
    fs = new_store(tmp_path / "fs")
    X, y = make_data(30)
    write_split(fs, "train", X, y, finish=False)
    reopened = store.FeatureStore(tmp_path / "fs")
    assert reopened.splits() == [] and reopened.all_splits() == ["train"]
    with pytest.raises(store.IncompleteStoreError, match=r"'train'.*was not finished.*speechlib featurize.*resume"):
        reopened.load_array("train")
    with pytest.raises(store.IncompleteStoreError):
        reopened.batches("train")


def test_resume_cuts_rows_written_after_the_last_commit(tmp_path: Path) -> None:
    fs = new_store(tmp_path / "fs")
    X, y = make_data(30)
    writer = fs.new_split("train", chunk_rows=8)
    writer.append(X[:10], y[:10])
    # A killed run may have resized and written X beyond the committed rows.
    writer.group["X"].resize((17, *SHAPE))
    writer.group["X"][10:17] = 99.0
    resumed = store.FeatureStore(tmp_path / "fs", mode="a").new_split("train")
    assert resumed.rows_committed == 10 and resumed.group["X"].shape[0] == 10
    resumed.append(X[10:], y[10:])
    resumed.finish()
    np.testing.assert_array_equal(store.FeatureStore(tmp_path / "fs").load_array("train")[0], X)


def test_append_to_a_complete_split(tmp_path: Path) -> None:
    fs = new_store(tmp_path / "fs")
    X, y = make_data(40)
    write_split(fs, "train", X[:25], y[:25])
    writer = fs.append("train")
    assert not fs.is_complete("train")
    writer.append(X[25:], y[25:])
    writer.finish()
    np.testing.assert_array_equal(store.FeatureStore(tmp_path / "fs").load_array("train")[0], X)


def test_mismatched_settings_are_refused(tmp_path: Path) -> None:
    new_store(tmp_path / "fs")
    with pytest.raises(store.StoreError, match="other settings"):
        store.FeatureStore.create(tmp_path / "fs", kind="test", params={"p": 2}, labels=LABELS, feature_shape=SHAPE)
    with pytest.raises(FileNotFoundError, match="not a speechlib feature store"):
        store.FeatureStore(tmp_path / "nothing")


def test_batches_cover_every_row_once_per_epoch_shuffled(tmp_path: Path) -> None:
    X, y = make_data(101)
    write_split(new_store(tmp_path / "fs"), "train", X, y, step=13)
    fs = store.FeatureStore(tmp_path / "fs")
    reader = fs.batches("train", batch_size=16, window_chunks=3, seed=7)
    assert len(reader) == 7
    epochs = []
    for _ in range(2):
        seen = []
        for X_batch, y_batch in reader:  # one epoch, then a new order
            assert 1 <= len(X_batch) <= 16 and X_batch.shape[1:] == SHAPE and X_batch.dtype == np.float32
            ids = X_batch[:, 0, 0].astype(int)
            np.testing.assert_array_equal(X_batch, X[ids])
            np.testing.assert_array_equal(y_batch, y[ids])
            seen.append(ids)
        order = np.concatenate(seen)
        assert sorted(order) == list(range(101))
        assert not np.array_equal(order, np.arange(101))
        epochs.append(order)
    assert not np.array_equal(epochs[0], epochs[1])
    # The decoded-chunk cache stays bounded by the window.
    assert len(reader._cache) <= 3 + 1
    # Same seed, same epoch: same order.
    again = np.concatenate([b[0][:, 0, 0] for b in fs.batches("train", batch_size=16, window_chunks=3, seed=7)])
    np.testing.assert_array_equal(again.astype(int), epochs[0])
    plain = fs.batches("train", batch_size=50, shuffle=False, drop_remainder=True)
    assert len(plain) == 2 and np.array_equal(plain[1][0], X[50:100])


def test_normalisation_and_transform_hook(tmp_path: Path) -> None:
    X, y = make_data(40)
    fs = new_store(tmp_path / "fs")
    write_split(fs, "train", X, y)
    with pytest.raises(store.StoreError, match="no normalisation statistics"):
        fs.batches("train", normalize=True)
    stats = fs.fit_normalization("train")
    assert stats["fit_on"] == "train" and stats["mean"].shape == (SHAPE[-1],)
    Xn, _ = store.FeatureStore(tmp_path / "fs").load_array("train", normalize=True)
    np.testing.assert_allclose(Xn.reshape(-1, SHAPE[-1]).mean(axis=0), 0, atol=1e-5)
    reader = fs.batches("train", batch_size=8, shuffle=False, normalize=True, transform=lambda batch: batch * 0 + 1)
    assert np.all(reader[0][0] == 1)


def test_keras_and_tf_datasets(tmp_path: Path) -> None:
    X, y = make_data(37)
    write_split(new_store(tmp_path / "fs"), "cv", X, y)
    fs = store.FeatureStore(tmp_path / "fs")
    pydataset = fs.keras_dataset("cv", batch_size=10)
    assert len(pydataset) == 4 and pydataset[3][0].shape == (7, *SHAPE)
    import keras

    assert isinstance(pydataset, keras.utils.PyDataset)
    dataset = fs.tf_dataset("cv", batch_size=10)
    for _ in range(2):  # every pass is a full epoch
        ids = np.concatenate([X_batch.numpy()[:, 0, 0] for X_batch, _ in dataset]).astype(int)
        assert sorted(ids) == list(range(37))


def test_bcolz_export_import_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("bcolz")
    import bcolz

    X, y = make_data(45)
    fs = new_store(tmp_path / "fs")
    write_split(fs, "train", X, y)
    write_split(fs, "cv", X[:9], y[:9])
    x_dir, y_dir = store.export_bcolz(fs, "train", tmp_path / "bc")
    store.export_bcolz(fs, "cv", tmp_path / "bc")
    assert x_dir.name == "train_X.bc" and y_dir.name == "train_y.bc"
    np.testing.assert_array_equal(bcolz.open(str(x_dir))[:], X)  # as the original course read them
    imported = store.import_bcolz(tmp_path / "bc", tmp_path / "imported")
    assert imported.splits() == ["cv", "train"] and imported.labels == LABELS and imported.kind == "test"
    for split, n in (("train", 45), ("cv", 9)):
        X2, y2 = imported.load_array(split)
        np.testing.assert_array_equal(X2, X[:n])
        np.testing.assert_array_equal(y2, y[:n])
    assert isinstance(imported.manifest("cv"), pd.DataFrame)


def _someones_files(folder: Path) -> dict[str, bytes]:
    """A folder of someone's files (a copy of a dataset and a thesis): what must survive."""
    files = {"thesis.tex": b"\\chapter{Results}\n", "data/yes/0a7c2a8d_nohash_0.wav": b"RIFF....WAVE"}
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return files


@pytest.mark.parametrize("overwrite", [False, True])
def test_create_refuses_a_folder_that_is_not_a_store(tmp_path: Path, overwrite: bool) -> None:
    folder = tmp_path / "thesis"
    files = _someones_files(folder)
    with pytest.raises(store.StoreError, match=r"thesis is a folder that is not a speechlib feature store"):
        store.FeatureStore.create(
            folder, kind="test", params={"p": 1}, labels=LABELS, feature_shape=SHAPE, overwrite=overwrite
        )
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == set(files)
    assert all((folder / name).read_bytes() == content for name, content in files.items())
    with pytest.raises(store.StoreError, match="is a file"):
        new_store(folder / "thesis.tex")


def test_overwrite_removes_only_the_store(tmp_path: Path) -> None:
    X, y = make_data(20)
    fs = new_store(tmp_path / "fs")
    write_split(fs, "train", X, y)
    (tmp_path / "fs" / "notes.txt").write_text("mine\n")  # a file someone put beside the store's groups
    fresh = store.FeatureStore.create(
        tmp_path / "fs", kind="test", params={"p": 1}, labels=LABELS, feature_shape=SHAPE, overwrite=True
    )
    assert fresh.all_splits() == []
    assert (tmp_path / "fs" / "notes.txt").read_text() == "mine\n"
    assert store.is_store(tmp_path / "fs") and not store.is_store(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert new_store(empty).all_splits() == []  # an empty folder is fine
    with pytest.raises(store.StoreError, match="not a speechlib feature store"):
        store.remove_store(tmp_path)
