"""The manifest schema: one set of columns, dtypes and names for every reader and writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from speechlib import audio, featurize, manifest, split


def _frame() -> pd.DataFrame:
    rows = [
        ["/d/yes/a_nohash_0.wav", "yes/a_nohash_0.wav", "yes", 0, "yes", "a", "train", 0, 0, ""],
        ["", "", "silence", 10, "", "", "train", 0, 16000, manifest.DIGITAL_SILENCE],
    ]
    return pd.DataFrame(rows, columns=manifest.MANIFEST_COLUMNS)


def test_write_then_read_keeps_empty_strings_and_dtypes(tmp_path):
    path = tmp_path / "train.csv"
    manifest.write(_frame(), path)
    assert b"\r" not in path.read_bytes()
    back = manifest.read(path)
    assert list(back.columns) == manifest.MANIFEST_COLUMNS
    assert back.loc[1, "path"] == "" and back.loc[0, "source"] == ""  # not NaN
    assert back["label_id"].dtype == np.int64 and back["num_samples"].tolist() == [0, 16000]
    pd.testing.assert_frame_equal(back, _frame().astype(manifest.DTYPES))


def test_read_in_chunks(tmp_path):
    path = tmp_path / "train.csv"
    manifest.write(_frame(), path)
    with manifest.read(path, chunksize=1) as reader:
        assert [len(chunk) for chunk in reader] == [1, 1]


def test_load_names_the_missing_file_and_refuses_other_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="speechlib split"):
        manifest.load(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown manifest"):
        manifest.load(tmp_path, "training")
    manifest.write(_frame(), tmp_path / "sample_train.csv")
    assert len(manifest.load(tmp_path, "sample_train")) == 2


def test_one_definition_of_each_name():
    assert manifest.MANIFEST_NAMES == ("train", "cv", "test", "sample_train", "sample_cv", "sample_test")
    assert split.MANIFEST_NAMES is manifest.MANIFEST_NAMES and featurize.MANIFEST_NAMES is manifest.MANIFEST_NAMES
    assert split.DIGITAL_SILENCE is manifest.DIGITAL_SILENCE and audio.DIGITAL_SILENCE is manifest.DIGITAL_SILENCE
    assert split.load_manifest is manifest.load
