"""Tests of speechlib.featurize and `speechlib featurize`: reports, bad files, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from speechlib import config, store
from speechlib.featurize import featurize, format_report
from speechlib.manifest import MANIFEST_COLUMNS

LABELS = ["yes", "no", "unknown"]


def make_split_dir(root: Path, *, n_train: int = 24, n_cv: int = 6, corrupt: bool = False) -> Path:
    """A tiny dataset of tones and noise plus manifests and split.json, as speechlib.split writes them."""
    rng = np.random.default_rng(0)
    audio_dir, split_dir = root / "clips", root / "split"
    audio_dir.mkdir(parents=True)
    split_dir.mkdir()
    noise = (0.1 * rng.standard_normal(config.SAMPLE_RATE * 3)).astype(np.float32)
    noise_path = audio_dir / "noise.wav"
    sf.write(noise_path, noise, config.SAMPLE_RATE, subtype=config.SAMPLE_SUBTYPE)
    rows = {"train": [], "cv": []}
    for name, count in (("train", n_train), ("cv", n_cv)):
        for i in range(count):
            label_id = i % len(LABELS)
            length = config.SAMPLE_RATE - 1000 * (i % 4)  # some clips are shorter than 1 s
            t = np.arange(length) / config.SAMPLE_RATE
            clip = 0.3 * np.sin(2 * np.pi * (300 + 200 * label_id + 7 * i) * t) + 0.01 * rng.standard_normal(length)
            relpath = f"{LABELS[label_id]}/{name}{i:03d}_nohash_0.wav"
            path = audio_dir / relpath
            path.parent.mkdir(exist_ok=True)
            sf.write(path, clip.astype(np.float32), config.SAMPLE_RATE, subtype=config.SAMPLE_SUBTYPE)
            rows[name].append(
                [str(path), relpath, LABELS[label_id], label_id, LABELS[label_id], f"{name}{i:03d}", name, 0, 0, ""]
            )
    rows["train"].append(["", "", "unknown", 2, "", "", "train", 0, 0, "digital_silence"])
    if corrupt:
        bad = audio_dir / "yes" / "broken_nohash_0.wav"
        bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
        rows["train"].insert(5, [str(bad), "yes/broken_nohash_0.wav", "yes", 0, "yes", "broken", "train", 0, 0, ""])
    for name, table in rows.items():
        pd.DataFrame(table, columns=MANIFEST_COLUMNS).to_csv(split_dir / f"{name}.csv", index=False)
    region = {"relpath": "noise.wav", "path": str(noise_path), "start": 0, "stop": len(noise)}
    info = {"task": "test", "labels": LABELS, "seed": config.SEED, "noise_regions": {"train": [region], "cv": []}}
    (split_dir / "split.json").write_text(json.dumps(info))
    return split_dir


@pytest.fixture
def split_dir(tmp_path: Path) -> Path:
    return make_split_dir(tmp_path / "data")


def assert_stores_equal(a: Path, b: Path) -> None:
    fa, fb = store.FeatureStore(a), store.FeatureStore(b)
    assert fa.splits() == fb.splits()
    for split in fa.splits():
        Xa, ya = fa.load_array(split)
        Xb, yb = fb.load_array(split)
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(ya, yb)
        pd.testing.assert_frame_equal(fa.manifest(split), fb.manifest(split))
    np.testing.assert_array_equal(fa.normalization["mean"], fb.normalization["mean"])
    np.testing.assert_array_equal(fa.normalization["std"], fb.normalization["std"])


def test_featurize_writes_every_split_with_labels_and_stats(split_dir: Path, tmp_path: Path) -> None:
    report = featurize(split_dir, tmp_path / "fs", workers=1, chunk_size=7, progress=False)
    fs = store.FeatureStore(tmp_path / "fs")
    assert fs.splits() == ["cv", "train"]
    assert fs.labels == LABELS and fs.kind == "logmel" and fs.feature_shape == (101, 40)
    X, y = fs.load_array("train")
    assert X.shape == (25, 101, 40) and X.dtype == np.float32 and y.dtype == np.int32
    manifest = pd.read_csv(split_dir / "train.csv")
    np.testing.assert_array_equal(y, manifest["label_id"].to_numpy())
    counts = {key: report["splits"]["train"][key] for key in ("manifest_rows", "processed", "skipped")}
    assert counts == {"manifest_rows": 25, "processed": 25, "skipped": 0}
    assert fs.normalization["fit_on"] == "train" and fs.normalization["mean"].shape == (40,)
    train_mean = X.reshape(-1, 40).mean(axis=0)
    np.testing.assert_allclose(fs.normalization["mean"], train_mean, rtol=1e-4, atol=1e-4)
    saved = json.loads((tmp_path / "fs" / store.REPORT_FILE).read_text())
    assert saved["splits"]["cv"]["processed"] == 6
    # Running again finds everything done and changes nothing.
    again = featurize(split_dir, tmp_path / "fs", workers=1, progress=False)
    assert {entry["status"] for entry in again["splits"].values()} == {"already complete"}


def test_corrupt_file_is_reported_and_every_other_clip_stored(tmp_path: Path) -> None:
    split_dir = make_split_dir(tmp_path / "data", corrupt=True)
    report = featurize(split_dir, tmp_path / "fs", workers=1, chunk_size=4, progress=False, splits=["train"])
    entry = report["splits"]["train"]
    assert entry["manifest_rows"] == 26 and entry["processed"] == 25 and entry["skipped"] == 1
    assert entry["processed"] + entry["skipped"] == entry["manifest_rows"]
    [skipped] = report["skipped"]
    assert skipped["row"] == 5 and "broken_nohash_0.wav" in skipped["path"]
    assert skipped["reason"].startswith("truncated: the file ends (16 bytes) before its audio data begins;")
    assert f"{skipped['path']}: {skipped['reason']}" in format_report(report)
    fs = store.FeatureStore(tmp_path / "fs")
    manifest = fs.manifest("train")
    assert len(manifest) == 25 and "yes/broken_nohash_0.wav" not in set(manifest["relpath"])
    source = pd.read_csv(split_dir / "train.csv", keep_default_na=False)
    assert set(manifest["relpath"]) == set(source["relpath"]) - {"yes/broken_nohash_0.wav"}


def test_augmented_copies_only_in_train_and_deterministic(split_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("speechlib.augment")
    a = featurize(split_dir, tmp_path / "a", workers=1, augment=2, chunk_size=5, progress=False)
    assert a["splits"]["train"]["rows"] == 25 * 3 and a["splits"]["cv"]["rows"] == 6
    fs = store.FeatureStore(tmp_path / "a")
    manifest = fs.manifest("train")
    assert list(manifest["augment"][:4]) == [0, 1, 2, 0] and list(manifest["row"][:4]) == [0, 0, 0, 1]
    X, _ = fs.load_array("train")
    assert not np.array_equal(X[0], X[1])
    featurize(split_dir, tmp_path / "b", workers=1, augment=2, chunk_size=11, progress=False)
    assert_stores_equal(tmp_path / "a", tmp_path / "b")


def _featurize_command(split_dir: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "speechlib", "featurize", "--split-dir", str(split_dir), "--out", str(out), *extra]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_store(tmp_path: Path) -> None:
    split_dir = make_split_dir(tmp_path / "data", n_train=60, corrupt=True)
    reference = tmp_path / "reference"
    featurize(split_dir, reference, workers=1, chunk_size=4, progress=False)

    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = ["--workers", "2", "--chunk-size", "4", "--splits", "train,cv", "--no-progress"]
    proc = subprocess.Popen(_featurize_command(split_dir, out, *args), env=env, stdout=subprocess.DEVNULL)
    train_attrs = out / "train" / "zarr.json"
    deadline = time.monotonic() + 120
    committed = 0
    while proc.poll() is None and time.monotonic() < deadline:
        if train_attrs.is_file():
            try:
                committed = json.loads(train_attrs.read_text())["attributes"].get("rows_committed", 0)
            except (json.JSONDecodeError, KeyError):
                committed = 0
            if committed > 0:
                break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.fail(f"the run finished before it could be killed (exit {proc.returncode}): make the dataset larger")
    assert committed > 0
    fs = store.FeatureStore(out)
    assert not fs.is_complete("train")
    with pytest.raises(store.IncompleteStoreError, match=r"was not finished.*speechlib featurize"):
        fs.open_split("train")

    result = subprocess.run(_featurize_command(split_dir, out, *args), env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "resumed" in result.stdout and "broken_nohash_0.wav" in result.stdout, result.stdout
    assert_stores_equal(reference, out)
    assert store.FeatureStore(out).info("train")["skipped"] == store.FeatureStore(reference).info("train")["skipped"]


def test_other_settings_refused_on_an_existing_store(split_dir: Path, tmp_path: Path) -> None:
    featurize(split_dir, tmp_path / "fs", workers=1, progress=False, splits=["cv"])
    with pytest.raises(store.StoreError, match="other settings"):
        featurize(split_dir, tmp_path / "fs", workers=1, progress=False, splits=["cv"], params={"n_mels": 20})
    report = featurize(
        split_dir, tmp_path / "fs", workers=1, progress=False, splits=["cv"], params={"n_mels": 20}, overwrite=True
    )
    assert store.FeatureStore(tmp_path / "fs").feature_shape == (101, 20)
    assert report["normalization_fit_on"] is None


def test_cli_featurize_prints_the_report(split_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from speechlib import cli

    code = cli.main(["featurize", "--split-dir", str(split_dir), "--workers", "1", "--splits", "cv", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "cv" in out and "6 processed" in out
    assert store.FeatureStore(split_dir.parent / "features" / "logmel").splits() == ["cv"]
    assert cli.main(["featurize", "--split-dir", str(tmp_path / "missing"), "--no-progress"]) == 2


def test_out_folder_of_someones_files_survives(split_dir: Path, tmp_path: Path) -> None:
    """`featurize --out` (with or without --overwrite) on a folder that is not a store: exit 2, nothing deleted."""
    from speechlib.cli import main

    thesis = tmp_path / "thesis"
    (thesis / "chapters").mkdir(parents=True)
    (thesis / "chapters" / "results.tex").write_text("\\chapter{Results}\n")
    (thesis / "main.pdf").write_bytes(b"%PDF-1.5")
    before = sorted(p.relative_to(thesis).as_posix() for p in thesis.rglob("*"))
    for extra in ([], ["--overwrite"]):
        code = main(["featurize", "--split-dir", str(split_dir), "--out", str(thesis), "--workers", "1", *extra])
        assert code == 2
        assert sorted(p.relative_to(thesis).as_posix() for p in thesis.rglob("*")) == before
    assert (thesis / "chapters" / "results.tex").read_text() == "\\chapter{Results}\n"
