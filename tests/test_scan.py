"""Tests for speechlib.datasets.scan: every kind of bad file, the three layouts, the real clips, the CLI."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from speechlib import audio, config
from speechlib.cli import main

# The package re-exports the function `scan`, which hides the module of the same name.
scanmod = importlib.import_module("speechlib.datasets.scan")

COLUMNS = [
    "path",
    "relpath",
    "folder",
    "kind",
    "word",
    "speaker",
    "utterance",
    "layout",
    "sample_rate",
    "channels",
    "frames",
    "duration",
    "subtype",
    "status",
    "reason",
]


def write_wav(
    path: Path,
    *,
    seconds: float = 0.5,
    sample_rate: int = config.SAMPLE_RATE,
    channels: int = 1,
    subtype: str = "PCM_16",
) -> Path:
    """A quiet sine tone: a valid WAV file with the given format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    data = np.repeat(tone[:, None], channels, axis=1) if channels > 1 else tone
    sf.write(path, data, sample_rate, subtype=subtype)
    return path


def make_dataset(root: Path) -> Path:
    """A tiny clean dataset in the Speech Commands layout: 2 words, 2 speakers, noise, lists, docs."""
    for word in ("yes", "no"):
        for speaker in ("0a7c2a8d", "1b2c3d4e"):
            write_wav(root / word / f"{speaker}_nohash_0.wav")
    write_wav(root / config.BACKGROUND_NOISE_DIR / "hum.wav", seconds=3.0)
    (root / config.BACKGROUND_NOISE_DIR / "README.md").write_text("noise recordings\n")
    (root / "README.md").write_text("a test dataset\n")
    (root / "LICENSE").write_text("CC BY 4.0\n")
    (root / config.VALIDATION_LIST).write_text("yes/0a7c2a8d_nohash_0.wav\n")
    (root / config.TESTING_LIST).write_text("no/1b2c3d4e_nohash_0.wav\n")
    (root / ".DS_Store").write_bytes(b"\0\1")
    return root


def listing(root: Path) -> dict[str, tuple]:
    """Every file under root with its size, mode, mtime and content digest."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and os.access(path, os.R_OK) else ""
        out[path.relative_to(root).as_posix()] = (st.st_size, st.st_mode, st.st_mtime_ns, digest)
    return out


# Each bad input: (relpath, how to make it, expected status, a key phrase of the reason).
def _truncate(path: Path) -> None:
    write_wav(path, seconds=1.0)
    data = path.read_bytes()
    path.write_bytes(data[:-1000])


BAD_INPUTS = {
    "yes/aaaaaaaa_nohash_0.wav": (lambda p: write_wav(p, channels=2), "warn", "2 channels; speechlib mixes to mono"),
    "yes/bbbbbbbb_nohash_0.wav": (
        lambda p: write_wav(p, sample_rate=44_100),
        "warn",
        "44100 Hz; resampled to 16000 Hz",
    ),
    "no/cccccccc_nohash_0.wav": (
        lambda p: write_wav(p, subtype="PCM_U8"),
        "warn",
        "8-bit unsigned PCM samples (PCM_U8)",
    ),
    "no/cccccccc_nohash_1.wav": (lambda p: write_wav(p, subtype="PCM_24"), "warn", "24-bit PCM samples (PCM_24)"),
    "no/cccccccc_nohash_2.wav": (lambda p: write_wav(p, subtype="FLOAT"), "warn", "32-bit float samples (FLOAT)"),
    "yes/dddddddd_nohash_0.wav": (lambda p: write_wav(p, seconds=1.5), "warn", "longer than 1 s (1.50 s)"),
    "yes/recording 1.wav": (lambda p: write_wav(p), "warn", "name does not follow <speaker>_nohash_<n>.wav"),
    "yes/eeeeeeee_nohash_0.wav": (lambda p: p.write_bytes(b""), "error", "empty file (0 bytes)"),
    "yes/eeeeeeee_nohash_1.wav": (_truncate, "error", "truncated: header says 32,000 bytes of audio, file has 31,000"),
    "yes/eeeeeeee_nohash_2.wav": (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "error", "truncated"),
    "yes/ffffffff_nohash_0.wav": (
        lambda p: p.write_bytes(b"ID3\x04\x00\x00" + bytes(range(256)) * 8),
        "error",
        "not a RIFF/WAV file: it starts with b'ID3\\x04' (looks like an MP3)",
    ),
    "yes/ffffffff_nohash_1.wav": (
        lambda p: p.write_text("this is not audio, just some text\n"),
        "error",
        "(looks like text)",
    ),
    "yes/ffffffff_nohash_2.wav": (lambda p: write_wav(p, seconds=0.0), "error", "no audio (0 frames)"),
    "yes/ffffffff_nohash_3.wav": (
        lambda p: p.write_bytes(b"OggS\x00\x02" + bytes(200)),
        "error",
        "not a RIFF/WAV file: it starts with b'OggS' (looks like an Ogg file)",
    ),
    "yes/ffffffff_nohash_4.wav": (
        lambda p: sf.write(p, np.full(800, np.nan, np.float32), config.SAMPLE_RATE, subtype="FLOAT"),
        "error",
        "NaN or infinite samples",
    ),
    "yes/ffffffff_nohash_5.wav": (lambda p: p.mkdir(), "error", "a folder, not an audio file"),
    "yes/ffffffff_nohash_6.wav": (
        lambda p: p.symlink_to(p.parent / "gone.wav"),
        "error",
        "broken symbolic link (its target ",
    ),
    "yes/notes.txt": (
        lambda p: p.write_text("notes\n"),
        "error",
        "not a WAV file; remove it or move it out of the dataset",
    ),
}


@pytest.fixture(scope="module")
def bad_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, dict, dict]:
    root = make_dataset(tmp_path_factory.mktemp("bad") / "speech")
    for relpath, (make, _, _) in BAD_INPUTS.items():
        make(root / relpath)
    before = listing(root)
    table = scanmod.scan(root)
    return root, table, before, listing(root)


def test_scan_columns_and_types(bad_dataset):
    _, table, _, _ = bad_dataset
    assert list(table.columns) == COLUMNS
    for column in ("utterance", "sample_rate", "channels", "frames"):
        assert table[column].dtype == np.int64, column
    assert table["duration"].dtype == np.float64
    assert set(table["status"]) <= {"ok", "warn", "error"}
    assert set(table["kind"]) <= {"clip", "silence", "noise", "other"}
    assert (table.loc[table["status"] == "ok", "reason"] == "").all()
    assert (table.loc[table["status"] != "ok", "reason"] != "").all()


@pytest.mark.parametrize("relpath", sorted(BAD_INPUTS))
def test_each_bad_input_is_reported(bad_dataset, relpath):
    _, table, _, _ = bad_dataset
    _, status, phrase = BAD_INPUTS[relpath]
    row = table.set_index("relpath").loc[relpath]
    assert row["status"] == status, row["reason"]
    assert phrase in row["reason"]


def test_good_files_and_skipped_files(bad_dataset):
    root, table, _, _ = bad_dataset
    rows = table.set_index("relpath")
    ok = rows.loc["yes/0a7c2a8d_nohash_0.wav"]
    assert (ok["status"], ok["kind"], ok["word"], ok["speaker"], ok["utterance"]) == (
        "ok",
        "clip",
        "yes",
        "0a7c2a8d",
        0,
    )
    assert (ok["sample_rate"], ok["channels"], ok["frames"], ok["subtype"]) == (config.SAMPLE_RATE, 1, 8000, "PCM_16")
    assert ok["duration"] == pytest.approx(0.5)
    assert ok["path"] == str(root.resolve() / "yes" / "0a7c2a8d_nohash_0.wav")
    noise = rows.loc[f"{config.BACKGROUND_NOISE_DIR}/hum.wav"]
    assert (noise["kind"], noise["status"], noise["word"], noise["speaker"]) == ("noise", "ok", "", "")
    # Documentation, lists and hidden files are not rows.
    for skipped in (
        "README.md",
        "LICENSE",
        config.VALIDATION_LIST,
        ".DS_Store",
        f"{config.BACKGROUND_NOISE_DIR}/README.md",
    ):
        assert skipped not in rows.index
    assert rows.loc["yes/notes.txt", "kind"] == "other"
    assert rows.loc["yes/recording 1.wav", "speaker"] == ""
    assert rows.loc["yes/eeeeeeee_nohash_0.wav", "sample_rate"] == 0
    assert list(table["relpath"]) == sorted(table["relpath"])


def test_scan_never_changes_the_folder(bad_dataset):
    root, _, before, after = bad_dataset
    assert after == before
    assert main(["data", "check", str(root)]) == 0
    assert listing(root) == before


def test_unreadable_file_is_an_error(tmp_path):
    root = make_dataset(tmp_path / "speech")
    locked = write_wav(root / "yes" / "abcdef12_nohash_0.wav")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): a chmod 000 file is still readable")
        row = scanmod.scan(root).set_index("relpath").loc["yes/abcdef12_nohash_0.wav"]
        assert row["status"] == "error"
        assert "permission denied" in row["reason"]
    finally:
        locked.chmod(0o644)


def test_permission_error_is_reported_even_as_root(tmp_path, monkeypatch):
    """The same path as a chmod 000 file, simulated so that it also runs where root reads anything."""
    root = make_dataset(tmp_path / "speech")

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(audio, "_open_binary", denied)  # the one place every command opens an audio file
    table = scanmod.scan(root)
    clips = table[table["kind"] == "clip"]
    assert (clips["status"] == "error").all()
    assert clips["reason"].str.contains("cannot read: permission denied; fix its permissions").all()


def test_test_set_layout(tmp_path):
    root = tmp_path / "test_set"
    write_wav(root / "yes" / "0a7c2a8d_nohash_0.wav")
    write_wav(root / "no" / "0a7c2a8d_nohash_1.wav")
    write_wav(root / config.TEST_SET_UNKNOWN_DIR / "bed_1b2c3d4e_nohash_2.wav.wav")
    write_wav(root / config.TEST_SET_UNKNOWN_DIR / "marvin_0a7c2a8d_nohash_0.wav")
    write_wav(root / config.TEST_SET_UNKNOWN_DIR / "strange.wav")
    write_wav(root / config.TEST_SET_SILENCE_DIR / "1024.wav", seconds=1.0)
    assert scanmod.detect_layout(root) == "test_set"
    rows = scanmod.scan(root).set_index("relpath")
    assert set(rows["layout"]) == {"test_set"}
    unknown = rows.loc["_unknown_/bed_1b2c3d4e_nohash_2.wav.wav"]
    assert (unknown["kind"], unknown["word"], unknown["speaker"], unknown["utterance"]) == (
        "clip",
        "bed",
        "1b2c3d4e",
        2,
    )
    assert unknown["status"] == "ok"
    assert rows.loc["_unknown_/marvin_0a7c2a8d_nohash_0.wav", "speaker"] == "0a7c2a8d"
    strange = rows.loc["_unknown_/strange.wav"]
    assert strange["status"] == "warn" and "<word>_<speaker>_nohash_<n>.wav" in strange["reason"]
    silence = rows.loc["_silence_/1024.wav"]
    assert (silence["kind"], silence["word"], silence["speaker"], silence["status"]) == ("silence", "", "", "ok")
    assert rows.loc["yes/0a7c2a8d_nohash_0.wav", "word"] == "yes"


def test_folders_layout_and_kaggle_audio_folder(tmp_path):
    classes = tmp_path / "mine"
    write_wav(classes / "cats" / "a.wav")
    write_wav(classes / "dogs" / "b.wav")
    assert scanmod.detect_layout(classes) == "folders"
    table = scanmod.scan(classes)
    assert set(table["word"]) == {"cats", "dogs"} and set(table["layout"]) == {"folders"}

    train = tmp_path / "train"  # Kaggle's train.7z: train/audio/<word>/..., the lists beside audio/
    make_dataset(train / "audio")
    for name in (config.VALIDATION_LIST, config.TESTING_LIST):
        (train / "audio" / name).rename(train / name)
    for root in (train, train / "audio"):
        table = scanmod.scan(root)
        assert table.attrs["root"] == str((train / "audio").resolve())
        assert "yes/0a7c2a8d_nohash_0.wav" in set(table["relpath"])
        assert table.attrs["lists"][config.VALIDATION_LIST] == (train / config.VALIDATION_LIST).resolve()
        assert scanmod.detect_layout(root) == "speech_commands"
    assert "audio/ subfolder" in scanmod.scan(train).attrs["note"]


def test_unknown_layout_and_missing_folder(tmp_path, capsys):
    flat = tmp_path / "flat"
    write_wav(flat / "0a7c2a8d_nohash_0.wav")
    assert scanmod.detect_layout(flat) == "unknown"
    row = scanmod.scan(flat).iloc[0]
    assert row["status"] == "error" and "outside any class folder" in row["reason"]
    assert main(["data", "check", str(flat)]) == 1
    assert "usable: no (no class folders" in capsys.readouterr().out

    parent = tmp_path / "parent"  # a folder of datasets, not a dataset
    make_dataset(parent / "speech_commands_v0.01")
    assert scanmod.detect_layout(parent) == "unknown"
    assert main(["data", "check", str(parent)]) == 1
    assert "check one of them instead: speech_commands_v0.01" in capsys.readouterr().out

    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err


def test_check_summary_and_exit_codes(bad_dataset, tmp_path, capsys):
    root, table, _, _ = bad_dataset
    report = tmp_path / "report" / "scan.csv"
    assert main(["data", "check", str(root), "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert f"dataset root: {root.resolve()}" in out
    assert "layout: speech_commands" in out
    assert "words: 2" in out
    assert "background noise: 1 recordings, 3.0 s in total" in out
    assert "validation_list.txt present (1 entries, 1 in this folder)" in out
    n_problems = int((table["status"] != "ok").sum())
    assert f"problems: {n_problems} files" in out
    for relpath, (_, status, _) in BAD_INPUTS.items():
        assert f"{status:<5}  {relpath}: " in out
    assert out.rstrip().splitlines()[-1].startswith("usable: yes (")
    written = pd.read_csv(report, keep_default_na=False)
    assert list(written.columns) == COLUMNS and len(written) == len(table)

    assert main(["data", "check", str(root), "--strict"]) == 1
    assert "usable: no (--strict and" in capsys.readouterr().out

    clean = make_dataset(tmp_path / "clean")
    assert main(["data", "check", str(clean), "--strict"]) == 0
    assert "problems: none" in capsys.readouterr().out

    one_word = tmp_path / "one_word"
    write_wav(one_word / "yes" / "0a7c2a8d_nohash_0.wav")
    write_wav(one_word / config.BACKGROUND_NOISE_DIR / "hum.wav", seconds=2.0)
    assert main(["data", "check", str(one_word)]) == 1
    assert "usable: no (only 1 word" in capsys.readouterr().out

    broken = tmp_path / "broken"
    (broken / "yes").mkdir(parents=True)
    (broken / "yes" / "0a7c2a8d_nohash_0.wav").write_bytes(b"")
    (broken / "no").mkdir()
    (broken / "no" / "0a7c2a8d_nohash_0.wav").write_text("text")
    assert main(["data", "check", str(broken)]) == 1
    assert "usable: no (no usable clips)" in capsys.readouterr().out


def test_problem_category():
    reason = "2 channels; speechlib mixes to mono | 44100 Hz; resampled to 16000 Hz | longer than 1 s (1.50 s); cut"
    assert scanmod.problem_category(reason) == ["2 channels", "44100 Hz", "longer than 1 s"]


# --- the real clips beside the checkout -----------------------------------------------------------


def test_real_v001_sample(shared_data, capsys):
    root = shared_data / "speech_commands_v0.01_sample"
    table = scanmod.scan(root)
    assert scanmod.detect_layout(root) == "speech_commands"
    assert (table["status"] == "ok").all(), table.loc[table["status"] != "ok", ["relpath", "reason"]]
    clips = table[table["kind"] == "clip"]
    assert len(clips) == 300
    assert sorted(clips["word"].unique()) == sorted(config.WORDS_V001)
    assert clips["speaker"].nunique() == 41
    assert (clips["sample_rate"] == config.SAMPLE_RATE).all()
    assert main(["data", "check", str(root), "--strict"]) == 0
    out = capsys.readouterr().out
    assert "words: 30" in out and "speakers: 41" in out and "problems: none" in out


def test_real_v002_test_subset(shared_data, capsys):
    root = shared_data / "speech_commands_v0.02_test_subset"
    table = scanmod.scan(root)
    assert scanmod.detect_layout(root) == "test_set"
    assert (table["status"] == "ok").all(), table.loc[table["status"] != "ok", ["relpath", "reason"]]
    # The counts, read from the folder itself (not from the table).
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    expected = {name: sum(1 for f in (root / name).iterdir() if f.name.endswith(".wav")) for name in folders}
    assert len(folders) == 12
    assert set(folders) == set(config.COMMANDS) | {config.TEST_SET_UNKNOWN_DIR, config.TEST_SET_SILENCE_DIR}
    assert table.groupby("folder").size().to_dict() == expected
    assert len(table) == sum(expected.values()) == 2874
    names = [f.name for name in folders if name != config.TEST_SET_SILENCE_DIR for f in (root / name).iterdir()]
    speakers = {n.split("_nohash_")[0].split("_")[-1] for n in names if "_nohash_" in n}
    assert table.loc[table["speaker"] != "", "speaker"].nunique() == len(speakers) == 151
    silence = table[table["folder"] == config.TEST_SET_SILENCE_DIR]
    assert (silence["kind"] == "silence").all() and (silence["speaker"] == "").all()
    unknown = table[table["folder"] == config.TEST_SET_UNKNOWN_DIR]
    assert (unknown["word"] != "").all() and not set(unknown["word"]) & set(config.COMMANDS)
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "layout: test_set" in out and "labels (folders): 12" in out and "speakers: 151" in out
    assert "audio files: 2,874" in out
