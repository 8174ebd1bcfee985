"""Tests of speechlib.split: official lists, the hash rule, silence regions, leakage checks, determinism."""

from __future__ import annotations

import hashlib
import itertools
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speechlib import config, split

FAKE_ROOT = "/nonexistent/speech_commands"  # tables built here point at no real files

# --- helpers -------------------------------------------------------------------------


def scan_row(
    relpath: str, *, kind: str = "clip", word: str = "", speaker: str = "", frames: int = 16_000, **extra
) -> dict:
    """One row shaped like datasets.scan()'s output."""
    row = {
        "path": f"{FAKE_ROOT}/{relpath}",
        "relpath": relpath,
        "folder": relpath.split("/")[0],
        "kind": kind,
        "word": word,
        "speaker": speaker,
        "utterance": 0,
        "layout": "speech_commands",
        "sample_rate": config.SAMPLE_RATE,
        "channels": 1,
        "frames": frames,
        "duration": frames / config.SAMPLE_RATE,
        "subtype": config.SAMPLE_SUBTYPE,
        "status": "ok",
        "reason": "",
    }
    row.update(extra)
    return row


def clip_table(clips: list[tuple[str, str, int]], noise_frames: list[int] = ()) -> pd.DataFrame:
    """A scan table of (speaker, word, repetition) clips plus noise recordings of the given lengths."""
    rows = [
        scan_row(f"{word}/{speaker}_nohash_{n}.wav", word=word, speaker=speaker)
        for speaker, word, n in sorted(set(clips))
    ]
    rows += [
        scan_row(f"{config.BACKGROUND_NOISE_DIR}/noise_{i}.wav", kind="noise", frames=frames)
        for i, frames in enumerate(noise_frames)
    ]
    return pd.DataFrame(rows)


def manifests(out_dir: Path, prefix: str = "") -> dict[str, pd.DataFrame]:
    return {name: split.load_manifest(out_dir, f"{prefix}{name}") for name in config.SPLITS}


def listing(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (symlinks by their target)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


speaker_ids = st.text(alphabet="0123456789abcdef", min_size=8, max_size=8)
clip_lists = st.lists(
    st.tuples(speaker_ids, st.sampled_from(config.WORDS_V001), st.integers(0, 4)), min_size=1, max_size=120
)
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- the real folders -------------------------------------------------------------------


def test_v001_sample_agrees_with_official_lists(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "speech_commands_v0.01_sample"
    info = split.make_split(root, tmp_path / "split", verbose=False)
    assert info["rule"] == "lists"
    assert info["labels"] == config.KAGGLE12_LABELS
    validation = set((root / config.VALIDATION_LIST).read_text().split())
    testing = set((root / config.TESTING_LIST).read_text().split())
    rows = pd.concat(manifests(tmp_path / "split").values())
    clips = rows[rows["num_samples"] == 0]
    on_disk = {p.relative_to(root).as_posix() for p in root.glob("*/*.wav")}
    assert set(clips["relpath"]) == on_disk  # every clip is used once
    assert len(clips) == len(on_disk)
    for relpath, name in zip(clips["relpath"], clips["split"], strict=True):
        expected = "cv" if relpath in validation else "test" if relpath in testing else "train"
        assert name == expected, relpath
    assert set(clips["split"]) == set(config.SPLITS)


def test_v002_test_subset_is_read_as_test_set_layout(shared_data: Path, tmp_path: Path) -> None:
    from speechlib import datasets

    root = shared_data / "speech_commands_v0.02_test_subset"
    table = datasets.scan(root)
    assert (table["layout"] == "test_set").all()
    info = split.make_split(table, tmp_path / "split", verbose=False)
    # These speakers are the official test set: all hash into the official testing band [10, 20),
    # so the rule is applied within that band (the plain 10 / 10 rule would put every one in test).
    assert info["rule"] == "hash within the official band [10%, 20%)"
    assert info["noise_regions"] == {name: [] for name in config.SPLITS}
    rows = pd.concat(manifests(tmp_path / "split").values())
    on_disk = {p.relative_to(root).as_posix() for p in root.glob("*/*.wav")}
    assert set(rows["relpath"]) == on_disk
    silence = rows[rows["label"] == config.SILENCE_LABEL]
    assert silence["relpath"].str.startswith(f"{config.TEST_SET_SILENCE_DIR}/").all()
    unknown = rows[rows["label"] == config.UNKNOWN_LABEL]
    assert unknown["relpath"].str.startswith(f"{config.TEST_SET_UNKNOWN_DIR}/").all()
    # The speaker of an _unknown_ file is the part between the word and _nohash_.
    assert unknown["speaker"].str.fullmatch(r"[0-9a-f]{8}").all()
    # With the hash rule every speaker falls in exactly one split, and every split gets speakers.
    speakers = rows[rows["speaker"] != ""].groupby("speaker")["split"].agg(["nunique", "first"])
    assert (speakers["nunique"] == 1).all()
    assert len(speakers) > 100
    shares = speakers["first"].value_counts(normalize=True)
    assert shares["train"] > 0.6 and 0.03 < shares["cv"] < 0.2 and 0.03 < shares["test"] < 0.2, shares
    assert all(info["counts"][name][config.SILENCE_LABEL] > 0 for name in config.SPLITS)
    assert all(info["counts"][name]["yes"] > 0 for name in config.SPLITS)
    # The speakers' plain percentages agree: all in [10, 20).
    from speechlib import hashsplit

    assert hashsplit.official_band(hashsplit.hash_percentage(s) for s in speakers.index) == (10.0, 20.0)


def test_which_set_band_zooms_into_the_official_band() -> None:
    from speechlib import hashsplit

    names = [f"yes/{i:08x}_nohash_0.wav" for i in range(4000)]
    in_band = [n for n in names if 10 <= hashsplit.hash_percentage(hashsplit.speaker_id(n)) < 20]
    sets = [hashsplit.which_set(n, band=(10.0, 20.0)) for n in in_band]
    shares = pd.Series(sets).value_counts(normalize=True)
    assert abs(shares["validation"] - 0.1) < 0.05 and abs(shares["testing"] - 0.1) < 0.05
    # The default band is the official rule itself.
    assert all(hashsplit.which_set(n) == hashsplit.which_set(n, band=(0.0, 100.0)) for n in names[:200])
    assert hashsplit.official_band([12.0, 19.9]) == (10.0, 20.0)
    assert hashsplit.official_band([5.0, 50.0]) is None


def test_raw_folder_unchanged_and_errors_listed(shared_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "speech_commands_v0.01_sample"
    shutil.copytree(shared_data / "speech_commands_v0.01_sample", root)
    shutil.copytree(shared_data / "_background_noise_", root / config.BACKGROUND_NOISE_DIR)
    (root / "yes" / "0000beef_nohash_0.wav").write_bytes(b"")  # an unusable clip
    before = listing(root)
    info = split.make_split(root, tmp_path / "split", materialize=True, verbose=False)
    assert listing(root) == before
    assert {"relpath": "yes/0000beef_nohash_0.wav"} in [{"relpath": s["relpath"]} for s in info["skipped"]]
    rows = pd.concat(manifests(tmp_path / "split").values())
    assert "yes/0000beef_nohash_0.wav" not in set(rows["relpath"])
    # Silence now comes from the real noise, in disjoint regions.
    windows = rows[(rows["label"] == config.SILENCE_LABEL) & (rows["path"] != "")]
    assert len(windows) > 0 and windows["source"].str.startswith(config.BACKGROUND_NOISE_DIR).all()
    split.check_noise_regions_disjoint(rows, info["noise_regions"])


# --- determinism and disjointness (property tests) ----------------------------------------


@FAST
@given(clips=clip_lists, seed=st.integers(0, 2**31 - 1))
@pytest.mark.slow
def test_hash_split_is_speaker_disjoint_and_deterministic(tmp_path_factory, clips, seed) -> None:
    table = clip_table(clips, noise_frames=[5 * config.SAMPLE_RATE])
    first, second = tmp_path_factory.mktemp("a") / "split", tmp_path_factory.mktemp("b") / "split"
    split.make_split(table, first, seed=seed, verbose=False)
    split.make_split(table.sample(frac=1.0, random_state=seed % 1000), second, seed=seed, verbose=False)
    assert listing(first) == listing(second)  # byte for byte, whatever the row order of the input
    rows = pd.concat(manifests(first).values())
    speakers = rows[rows["speaker"] != ""].groupby("speaker")["split"].nunique()
    assert (speakers == 1).all()
    assert len(rows[rows["num_samples"] == 0]) == len(set(clips))  # every clip used exactly once
    samples = pd.concat(manifests(first, "sample_").values())
    assert samples.groupby(["split", "label"]).size().max() <= max(split.SAMPLE_PER_CLASS)


@FAST
@given(
    noise_frames=st.lists(st.integers(0, 20 * config.SAMPLE_RATE), min_size=1, max_size=4),
    percents=st.sampled_from([(10, 10), (20, 10), (5, 15), (30, 30)]),
    silence=st.integers(0, 40),
    seed=st.integers(0, 2**31 - 1),
)
def test_silence_regions_never_overlap(tmp_path_factory, noise_frames, percents, silence, seed) -> None:
    table = clip_table([("0a7c2a8d", "yes", 0), ("1b2c3d4e", "no", 0)], noise_frames)
    out = tmp_path_factory.mktemp("split") / "split"
    info = split.make_split(
        table,
        out,
        seed=seed,
        validation_percent=percents[0],
        testing_percent=percents[1],
        silence_per_split=silence,
        verbose=False,
    )
    rows = pd.concat(manifests(out).values())
    for relpath in {r["relpath"] for regions in info["noise_regions"].values() for r in regions}:
        spans = sorted(
            (r["start"], r["stop"])
            for regions in info["noise_regions"].values()
            for r in regions
            if r["relpath"] == relpath
        )
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    regions = {(name, r["relpath"]): (r["start"], r["stop"]) for name, rs in info["noise_regions"].items() for r in rs}
    windows = rows[(rows["label"] == config.SILENCE_LABEL) & (rows["source"] != split.DIGITAL_SILENCE)]
    for row in windows.itertuples():
        start, stop = regions[(row.split, row.source)]
        assert start <= row.offset and row.offset + row.num_samples <= stop
        assert row.num_samples == config.CLIP_SAMPLES
    assert all(info["counts"][name][config.SILENCE_LABEL] == silence for name in config.SPLITS)


# --- leakage checks -------------------------------------------------------------------------


def test_checks_catch_leaks(tmp_path: Path) -> None:
    clips = [(f"{i:08x}", word, n) for i in range(40) for word in ("yes", "no", "bed") for n in range(2)]
    out = tmp_path / "split"
    info = split.make_split(clip_table(clips, [30 * config.SAMPLE_RATE]), out, verbose=False)
    good = manifests(out)
    assert split.check_speakers_disjoint(good)["ok"]
    assert split.check_files_disjoint(good)["ok"]
    assert split.check_noise_regions_disjoint(good, info["noise_regions"])["ok"]

    wrong = split.random_split(good, seed=0)
    assert sum(len(m) for m in wrong.values()) == sum(len(m) for m in good.values())
    with pytest.raises(split.LeakageError, match="speakers"):
        split.check_speakers_disjoint(wrong)

    leaked = {**good, "test": pd.concat([good["test"], good["train"].iloc[:1].assign(split="test")])}
    with pytest.raises(split.LeakageError, match="files"):
        split.check_files_disjoint(leaked)

    window = good["train"][good["train"]["source"].str.startswith(config.BACKGROUND_NOISE_DIR)].iloc[:1]
    noisy = {**good, "test": pd.concat([good["test"], window.assign(split="test")])}
    with pytest.raises(split.LeakageError, match="overlap"):
        split.check_noise_regions_disjoint(noisy)
    with pytest.raises(split.LeakageError, match="outside"):
        split.check_noise_regions_disjoint(
            {"train": good["train"], "test": window.assign(split="test", offset=window["offset"] + 1)},
            info["noise_regions"],
        )


def test_counts_table(tmp_path: Path) -> None:
    clips = [(f"{i:08x}", word, 0) for i in range(30) for word in ("yes", "no", "bed", "cat")]
    info = split.make_split(clip_table(clips), tmp_path / "split", silence_per_split=3, verbose=False)
    table = split.counts_table(manifests(tmp_path / "split"))
    assert list(table.columns) == list(config.SPLITS)
    assert table.loc[config.UNKNOWN_LABEL].sum() == 60
    assert table.loc[config.SILENCE_LABEL].tolist() == [3, 3, 3]
    assert table.to_dict() == {name: {k: v for k, v in info["counts"][name].items() if v} for name in config.SPLITS}


def test_noise_regions_table(tmp_path: Path) -> None:
    clips = [(f"{i:08x}", "yes", 0) for i in range(10)]
    frames = [10 * config.SAMPLE_RATE, 20 * config.SAMPLE_RATE]
    info = split.make_split(clip_table(clips, frames), tmp_path / "split", silence_per_split=2, verbose=False)
    table = split.noise_regions_table(info["noise_regions"])
    assert len(table) == 2 * len(config.SPLITS)
    assert table["split"].tolist() == list(config.SPLITS) * 2  # recording by recording, splits in order
    first = table[table["recording"] == f"{config.BACKGROUND_NOISE_DIR}/noise_0.wav"]
    assert first["start"].tolist() == [0, 8 * config.SAMPLE_RATE, 9 * config.SAMPLE_RATE]
    assert first["stop_s"].tolist() == [8.0, 9.0, 10.0]
    assert table.groupby("recording")["seconds"].sum().tolist() == [10.0, 20.0]  # the regions tile each recording
    empty = split.noise_regions_table({name: [] for name in config.SPLITS})
    assert empty.empty and list(empty.columns) == list(table.columns)


# --- tasks ------------------------------------------------------------------------------------


def test_task_all_and_custom_words(tmp_path: Path) -> None:
    clips = [(f"{i:08x}", word, 0) for i in range(12) for word in config.WORDS_V001]
    table = clip_table(clips, [10 * config.SAMPLE_RATE])

    info = split.make_split(table, tmp_path / "all", task="all", include_silence=False, verbose=False)
    assert info["labels"] == config.WORDS_V001
    rows = pd.concat(manifests(tmp_path / "all").values())
    assert (rows["label"] == rows["word"]).all()
    assert (rows["label_id"] == rows["label"].map(info["labels"].index)).all()

    v002 = pd.concat([table, clip_table([("0a7c2a8d", "learn", 0)])], ignore_index=True)
    assert split.make_split(v002, tmp_path / "v2", task="all", verbose=False)["labels"] == [
        *config.WORDS_V002,
        config.SILENCE_LABEL,
    ]

    words = ["zero", "one", "two"]
    info = split.make_split(table, tmp_path / "digits", words=words, include_unknown=False, verbose=False)
    assert info["labels"] == [*words, config.SILENCE_LABEL]
    rows = pd.concat(manifests(tmp_path / "digits").values())
    assert set(rows["label"]) == set(info["labels"])
    assert set(rows.loc[rows["label"] != config.SILENCE_LABEL, "word"]) == set(words)

    info = split.make_split(table, tmp_path / "digits_u", words=words, include_silence=False, verbose=False)
    assert info["labels"] == [*words, config.UNKNOWN_LABEL]
    assert sum(info["counts"][name][config.UNKNOWN_LABEL] for name in config.SPLITS) == 12 * 27

    info = split.make_split(table, tmp_path / "k10", include_unknown=False, include_silence=False, verbose=False)
    assert info["labels"] == config.COMMANDS
    assert sum(sum(c.values()) for c in info["counts"].values()) == 12 * len(config.COMMANDS)

    with pytest.raises(ValueError, match="not in the dataset"):
        split.make_split(table, tmp_path / "bad", words=["yes", "backward"], verbose=False)
    with pytest.raises(ValueError, match="unknown task"):
        split.make_split(table, tmp_path / "bad", task="kaggle13", verbose=False)


def test_small_mode_keeps_whole_speakers(tmp_path: Path) -> None:
    clips = [(f"{i:08x}", word, n) for i in range(200) for word in ("yes", "no", "cat") for n in range(2)]
    out = tmp_path / "split"
    split.make_split(clip_table(clips), out, small=True, verbose=False)
    full = split.make_split(clip_table(clips), tmp_path / "full", small=False, verbose=False)
    rows = pd.concat(manifests(out).values())
    clips_rows = rows[rows["speaker"] != ""]
    assert len(clips_rows) < sum(sum(c.values()) for c in full["counts"].values()) / 2
    assert (clips_rows.groupby("speaker").size() == 6).all()  # a kept speaker keeps every clip
    train = rows[rows["split"] == "train"]
    assert (train["label"].value_counts()[["yes", "no"]] >= split.SMALL_PER_LABEL).all()


# --- writing ----------------------------------------------------------------------------------


def test_outputs_and_materialize(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    rng = np.random.default_rng(0)
    clips = [(f"{i:08x}", word, 0) for i in range(20) for word in ("yes", "no", "bed")]
    for speaker, word, n in clips:
        (root / word).mkdir(parents=True, exist_ok=True)
        sf.write(root / word / f"{speaker}_nohash_{n}.wav", rng.normal(0, 0.1, 8000), config.SAMPLE_RATE)
    (root / config.BACKGROUND_NOISE_DIR).mkdir()
    sf.write(
        root / config.BACKGROUND_NOISE_DIR / "hum.wav", rng.normal(0, 0.1, 12 * config.SAMPLE_RATE), config.SAMPLE_RATE
    )
    table = clip_table(clips, [12 * config.SAMPLE_RATE])
    table["path"] = [str(root / r) for r in table["relpath"]]
    table.loc[table["kind"] == "noise", ["path", "relpath"]] = [
        str(root / config.BACKGROUND_NOISE_DIR / "hum.wav"),
        f"{config.BACKGROUND_NOISE_DIR}/hum.wav",
    ]
    before = listing(root)

    out = tmp_path / "work" / "split"
    (out / "stale.txt").parent.mkdir(parents=True)
    info = split.make_split(table, out, materialize=True, sample_per_class=(3, 1, 1), verbose=False)
    assert listing(root) == before
    assert info["dataset"] == str(root)
    assert split.load_info(out) == info
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.csv" for n in split.MANIFEST_NAMES] + ["split.json", "materialized"]
    )
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no partial folder left behind
    train = split.load_manifest(out, "train")
    assert list(train.columns) == split.MANIFEST_COLUMNS
    digital = train[train["source"] == split.DIGITAL_SILENCE]
    assert (digital["path"] == "").all()

    main = out / "materialized" / "main"
    for row in train[train["num_samples"] == 0].itertuples():
        link = (
            main
            / "train"
            / row.label
            / (Path(row.relpath).name if row.label == row.word else f"{row.word}_{Path(row.relpath).name}")
        )
        assert link.is_symlink() and link.resolve() == Path(row.path)
    silence = sorted((main / "train" / config.SILENCE_LABEL).iterdir())
    assert len(silence) == info["counts"]["train"][config.SILENCE_LABEL]
    assert all(not p.is_symlink() and sf.info(p).frames == config.CLIP_SAMPLES for p in silence)
    sample = out / "materialized" / "sample" / "train"
    assert {p.name for p in sample.iterdir()} == {lbl for lbl, n in info["sample_counts"]["train"].items() if n}

    # Re-running replaces the folder as a whole; a folder that is not a split is refused.
    assert split.make_split(table, out, verbose=False)["materialized"] is False
    assert not (out / "materialized").exists()
    other = tmp_path / "notasplit"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a split folder"):
        split.make_split(table, other, verbose=False)
    assert (other / "keep.txt").read_text() == "mine"


def test_cli_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from speechlib import cli

    root = tmp_path / "dataset"
    for speaker, word in [("0a7c2a8d", "yes"), ("1b2c3d4e", "no"), ("2c3d4e5f", "up"), ("3d4e5f60", "bed")]:
        (root / word).mkdir(parents=True)
        sf.write(root / word / f"{speaker}_nohash_0.wav", np.zeros(config.CLIP_SAMPLES), config.SAMPLE_RATE)
    out = tmp_path / "split"
    assert cli.main(["split", "--data", str(root), "--out", str(out), "--words", "yes,no", "--seed", "7"]) == 0
    printed = capsys.readouterr().out
    assert "speakers_disjoint" in printed and "label" in printed
    info = split.load_info(out)
    # No background-noise folder: no silence class (nothing to cut it from); the other words are unknown.
    assert info["labels"] == ["yes", "no", config.UNKNOWN_LABEL] and info["seed"] == 7
    assert cli.main(["split", "--data", str(root), "--out", str(out), "--words", "nope"]) == 2


def test_few_window_positions(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    (root / config.BACKGROUND_NOISE_DIR).mkdir(parents=True)
    noise = root / config.BACKGROUND_NOISE_DIR / "short.wav"
    # 10 s: the cv and test regions (1 s each) hold exactly one window position.
    sf.write(noise, np.linspace(-0.5, 0.5, 10 * config.SAMPLE_RATE), config.SAMPLE_RATE)
    table = clip_table([("0a7c2a8d", "yes", 0)], [10 * config.SAMPLE_RATE])
    table.loc[table["kind"] == "noise", ["path", "relpath"]] = [str(noise), f"{config.BACKGROUND_NOISE_DIR}/short.wav"]
    out = tmp_path / "split"
    info = split.make_split(table, out, silence_per_split=20, materialize=True, verbose=False)
    test = split.load_manifest(out, "test")
    windows = test[test["source"] != split.DIGITAL_SILENCE]
    assert len(windows) == 18 and set(windows["offset"]) == {9 * config.SAMPLE_RATE}  # the only position
    assert len(list((out / "materialized" / "main" / "test" / config.SILENCE_LABEL).iterdir())) == 20
    train = split.load_manifest(out, "train")
    train_windows = train[train["source"] != split.DIGITAL_SILENCE]
    assert train_windows["offset"].is_unique  # enough room in train: no window twice
    assert info["noise_regions"]["test"][0] == {
        "relpath": f"{config.BACKGROUND_NOISE_DIR}/short.wav",
        "path": str(noise),
        "start": 9 * config.SAMPLE_RATE,
        "stop": 10 * config.SAMPLE_RATE,
    }


def test_clip_without_speaker_is_reported_not_put_in_train(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A unicode name without _nohash_ under the lists rule: hashed by file name and named in a warning."""
    from speechlib import cli, hashsplit

    root = tmp_path / "dataset"
    for speaker, word in [("0a7c2a8d", "yes"), ("1b2c3d4e", "no"), ("2c3d4e5f", "yes"), ("3d4e5f60", "no")]:
        (root / word).mkdir(parents=True, exist_ok=True)
        sf.write(root / word / f"{speaker}_nohash_0.wav", np.zeros(config.CLIP_SAMPLES), config.SAMPLE_RATE)
    # Names without a speaker id whose file-name hash is not "training" (so train would be silent and wrong).
    names = [f"grabación_ñandú_{i}.wav" for i in range(40)]
    name = next(n for n in names if hashsplit.which_set(f"yes/{n}") != hashsplit.TRAINING)
    sf.write(root / "yes" / name, np.zeros(config.CLIP_SAMPLES), config.SAMPLE_RATE)
    (root / config.VALIDATION_LIST).write_text("yes/2c3d4e5f_nohash_0.wav\n")
    (root / config.TESTING_LIST).write_text("no/3d4e5f60_nohash_0.wav\n")
    out = tmp_path / "split"
    assert cli.main(["split", "--data", str(root), "--out", str(out), "--words", "yes,no"]) == 0
    printed = capsys.readouterr().out
    info = split.load_info(out)
    assert info["rule"] == "lists"
    expected = {"validation": "cv", "testing": "test"}[hashsplit.which_set(f"yes/{name}")]
    found = {n: m for n, m in manifests(out).items() if f"yes/{name}" in set(m["relpath"])}
    assert list(found) == [expected]
    [warning] = [w for w in info["warnings"] if name in w]
    assert f"yes/{name}: name does not follow <speaker>_nohash_<n>.wav; its speaker is unknown" in warning
    assert f"assigned to {expected} by the hash of its file name" in warning
    assert f"warning: {warning}" in printed
    assert cli.main(["data", "check", str(root)]) == 0
    assert f"yes/{name}: name does not follow <speaker>_nohash_<n>.wav" in capsys.readouterr().out


def test_speaker_folds_cover_every_clip_once_and_keep_speakers_whole(synthetic_small: Path, tmp_path: Path) -> None:
    split.make_split(synthetic_small, tmp_path / "split", small=True, verbose=False)
    folders = split.write_folds(tmp_path / "split", tmp_path / "folds", k=3, seed=1)
    pooled = pd.concat([split.load_manifest(tmp_path / "split", n) for n in ("train", "cv", "test")])
    tests = [split.load_manifest(f, "test") for f in folders]
    # Every clip is tested exactly once.
    keys = lambda frame: list(zip(frame["path"], frame["offset"], frame["label"], strict=True))  # noqa: E731
    assert sorted(key for t in tests for key in keys(t)) == sorted(keys(pooled))
    for folder, test in zip(folders, tests, strict=True):
        parts = {n: split.load_manifest(folder, n) for n in ("train", "cv")}
        words = {n: set(f.loc[f["speaker"] != "", "speaker"]) for n, f in parts.items()}
        tested = set(test.loc[test["speaker"] != "", "speaker"])
        assert not (words["train"] & tested) and not (words["cv"] & tested) and not (words["train"] & words["cv"])
        assert len(parts["train"]) + len(parts["cv"]) + len(test) == len(pooled)
        assert split.load_info(folder)["fold"] == folders.index(folder)
        assert set(test["label"]) == set(pooled["label"])  # stratified: every label in every fold
    # Deterministic, and a second call leaves complete folders as they are.
    stamp = (folders[0] / "split.json").stat().st_mtime_ns
    assert split.write_folds(tmp_path / "split", tmp_path / "folds", k=3, seed=1) == folders
    assert (folders[0] / "split.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="k >= 2"):
        split.speaker_folds(pooled, 1)
