"""A dataset of one's own through the command line: folder per class at 44.1 kHz stereo, 2-3 s clips, speakers
in a pattern; a CSV-folds set; k-fold cross-validation with one row per fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from speechlib import cli, split

CLASSES = {"low": 300.0, "mid": 800.0, "high": 2000.0}
SPEAKERS = [f"spk{i}" for i in range(1, 7)]
PATTERN = r"^(?P<speaker>spk[0-9]+)-take(?P<utterance>[0-9]+)"


def write_set(root: Path, *, rate: int = 44_100, takes: int = 2, seed: int = 0) -> list[dict]:
    """Tones per class, 2-3 s long, stereo 24-bit at ``rate``; rows of (relpath, label, speaker)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, freq in CLASSES.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i, speaker in enumerate(SPEAKERS):
            for take in range(takes):
                seconds = rng.uniform(2.0, 3.0)
                t = np.arange(int(seconds * rate)) / rate
                left = 0.5 * np.exp(-(((t - seconds / 2) / 0.3) ** 2)) * np.sin(2 * np.pi * freq * (1 + 0.03 * i) * t)
                left += 0.01 * rng.standard_normal(len(t))
                relpath = f"{label}/{speaker}-take{take}.wav"
                sf.write(root / relpath, np.stack([left, 0.8 * left], axis=1), rate, subtype="PCM_24")
                rows.append({"relpath": relpath, "label": label, "speaker": speaker})
    return rows


@pytest.mark.slow
def test_folder_set_with_speaker_pattern_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPEECHLIB_HOME", str(tmp_path / "home"))
    data = tmp_path / "tones"
    write_set(data)
    assert cli.main(["data", "check", str(data), "--speaker-pattern", PATTERN]) == 0
    out = capsys.readouterr().out
    assert "speakers: 6" in out and ("--clip-seconds 3" in out or "--clip-seconds 2.9" in out)

    # Without a pattern: one warning that names the fix.
    assert cli.main(["split", "--data", str(data), "--out", str(tmp_path / "nospk")]) == 0
    assert "cannot be speaker-disjoint" in capsys.readouterr().out

    split_dir = tmp_path / "split"
    assert cli.main(["split", "--data", str(data), "--out", str(split_dir), "--speaker-pattern", PATTERN,
                     "--clip-seconds", "auto", "--test-speakers", "spk1"]) == 0  # fmt: skip
    info = split.load_info(split_dir)
    assert info["labels"] == ["high", "low", "mid"]  # every folder a class; no noise folder: no silence
    assert 2.9 <= info["clip_seconds"] <= 3.0
    test = pd.read_csv(split_dir / "test.csv", keep_default_na=False)
    assert set(test["speaker"]) == {"spk1"} and len(test) == 6

    store = tmp_path / "store"
    assert cli.main(["featurize", "--split-dir", str(split_dir), "--out", str(store), "--workers", "1",
                     "--no-progress"]) == 0  # fmt: skip
    import train_keras

    model_dir = tmp_path / "model"
    summary = train_keras.main(train_keras.parse_args(
        ["--path_to_data", str(store), "--model", "res8", "--epochs", "1", "--out", str(model_dir)]))  # fmt: skip
    assert summary["test"]["num_samples"] == 6
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["clip_samples"] == round(info["clip_seconds"] * 16_000)
    import train_tensorflow

    # The raw-TensorFlow script on the same 3-s store: its SavedModel's waveform signature takes 3-s clips.
    tf_summary = train_tensorflow.main(train_tensorflow.parse_args(
        ["--path_to_data", str(store), "--model", "res8", "--epochs", "1", "--out", str(tmp_path / "tf")]))  # fmt: skip
    check = tf_summary["waveform_export_check"]
    assert tf_summary["test"]["num_samples"] == 6 and check["num_clips"] == 6 and check["label_agreement"] == 1.0
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "ev")]) == 0
    assert "accuracy" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["num_samples"] == 36 and 0.0 <= metrics["accuracy"] <= 1.0
    assert cli.main(["predict", "--model", str(model_dir), str(data / "low" / "spk2-take0.wav")]) == 0


@pytest.mark.slow
def test_csv_folds_split_and_crossval_one_row_per_fold(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPEECHLIB_HOME", str(tmp_path / "home"))
    data = tmp_path / "tones"
    rows = write_set(data, rate=22_050, takes=1, seed=1)
    meta = pd.DataFrame(rows).assign(fold=[SPEAKERS.index(r["speaker"]) % 3 + 1 for r in rows])
    meta.rename(columns={"relpath": "path"}).to_csv(tmp_path / "meta.csv", index=False)
    split_dir = tmp_path / "split"
    assert cli.main(["split", "--data", str(data), "--out", str(split_dir), "--folds", str(tmp_path / "meta.csv")]) == 0
    info = split.load_info(split_dir)
    assert info["rule"].startswith("folds of meta.csv: test fold 3, cv fold 2")
    test = pd.read_csv(split_dir / "test.csv", keep_default_na=False)
    assert set(test["speaker"]) == {"spk3", "spk6"}
    assert len(pd.read_csv(split_dir / "folds.csv")) == len(rows)
    capsys.readouterr()
    assert cli.main(["crossval", "--split-dir", str(split_dir), "--out", str(tmp_path / "cv"), "--model", "res8",
                     "--epochs", "1", "--workers", "1"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "cv" / "crossval.json").read_text())
    assert [r["fold"] for r in result["rows"]] == [0, 1, 2]
    assert sum(r["test"] for r in result["rows"]) == len(rows)  # every clip tested once
    assert "3-fold cross-validation" in printed and "±" in printed
    accs = [r["accuracy"] for r in result["rows"]]
    assert result["summary"]["accuracy_mean"] == pytest.approx(np.mean(accs), abs=1e-4)


def test_folds_csv_without_a_fold_column_is_one_line(tmp_path):
    (tmp_path / "meta.csv").write_text("file,label\na.wav,x\n")
    with pytest.raises(ValueError, match="no fold column"):
        split.read_folds(tmp_path / "meta.csv", tmp_path)
