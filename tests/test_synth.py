"""Tests of the synthetic Speech Commands generator and of the dataset's hash rule."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlib import config, hashsplit
from speechlib.datasets import espeak, synth

NAME = re.compile(r"^[0-9a-f]{8}_nohash_\d+\.wav$")


def _clips(root: Path) -> list[Path]:
    return sorted(p for word in config.WORDS_V001 for p in (root / word).glob("*.wav"))


def _hashes(root: Path) -> dict[str, str]:
    """sha1 of every file under root (hidden files included), by relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- The hash rule -------------------------------------------------------------------


def test_hash_rule_reproduces_the_official_v001_lists(shared_data: Path) -> None:
    root = shared_data / "speech_commands_v0.01_sample"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    validation = (root / config.VALIDATION_LIST).read_text().split()
    testing = (root / config.TESTING_LIST).read_text().split()
    assert len(validation) > 1000 and len(testing) > 1000
    # Every 20th line: a few hundred entries of each list, from all words.
    for line in validation[::20]:
        assert hashsplit.which_set(line) == "validation", line
    for line in testing[::20]:
        assert hashsplit.which_set(line) == "testing", line
    listed = set(validation) | set(testing)
    clips = [p.relative_to(root).as_posix() for p in _clips(root)]
    unlisted = [c for c in clips if c not in listed]
    assert unlisted, "the sample should hold training clips too"
    assert all(hashsplit.which_set(c) == "training" for c in unlisted)
    assert all(hashsplit.which_set(c) != "training" for c in clips if c in listed)


def test_hash_rule_values() -> None:
    # Fixed by the definition: (sha1 mod 2**27) * 100 / (2**27 - 1).
    digest = int(hashlib.sha1(b"0a7c2a8d").hexdigest(), 16)
    assert hashsplit.hash_percentage("0a7c2a8d") == pytest.approx((digest % 2**27) * 100 / (2**27 - 1))
    assert 0 <= hashsplit.hash_percentage("ffffffff") <= 100
    # The official test-set layout prefixes the word: the speaker, not the prefix, is hashed.
    assert hashsplit.speaker_id("_unknown_/bed_0a7c2a8d_nohash_0.wav.wav") == "0a7c2a8d"
    assert hashsplit.speaker_id("yes/0a7c2a8d_nohash_3.wav") == "0a7c2a8d"
    assert hashsplit.which_set("bed_0a7c2a8d_nohash_0.wav") == hashsplit.which_set("yes/0a7c2a8d_nohash_1.wav")
    # All speakers to validation, none, or all to testing.
    assert hashsplit.which_set("yes/0a7c2a8d_nohash_0.wav", 100.0, 0.0) == "validation"
    assert hashsplit.which_set("yes/0a7c2a8d_nohash_0.wav", 0.0, 100.0) == "testing"
    assert hashsplit.which_set("yes/0a7c2a8d_nohash_0.wav", 0.0, 0.0) == "training"
    with pytest.raises(ValueError, match="at most 100"):
        hashsplit.which_set("yes/0a7c2a8d_nohash_0.wav", 60.0, 50.0)


# --- Layout and format -----------------------------------------------------------------


def test_layout(synthetic_small: Path) -> None:
    root = synthetic_small
    folders = {p.name for p in root.iterdir() if p.is_dir()}
    assert folders == set(config.WORDS_V001) | {config.BACKGROUND_NOISE_DIR}
    for name in ("README.md", "LICENSE", config.VALIDATION_LIST, config.TESTING_LIST, synth.MARKER):
        assert (root / name).is_file(), name
    readme = (root / "README.md").read_text()
    assert "synthetic" in readme.lower() and "espeak-ng" in readme and "CC BY 4.0" in readme
    assert "speechlib data download --version v0.01" in readme and "1804.03209" in readme

    clips = _clips(root)
    assert 200 <= len(clips) <= 1000  # a few hundred in small mode
    assert all(NAME.match(p.name) for p in clips), [p.name for p in clips if not NAME.match(p.name)][:5]
    for word in config.WORDS_V001:
        assert len(list((root / word).glob("*.wav"))) >= 5, word
    speakers = {p.name.split(config.NOHASH)[0] for p in clips}
    assert len(speakers) == synth.SMALL_SIZES.num_speakers
    assert not list(root.rglob(".*.tmp")), "temporary files left behind"

    marker = json.loads((root / synth.MARKER).read_text())
    assert marker["clips"] == len(clips) and marker["speakers"] == len(speakers)


def test_background_noise(synthetic_small: Path) -> None:
    noise = synthetic_small / config.BACKGROUND_NOISE_DIR
    wavs = sorted(p.name for p in noise.glob("*.wav"))
    assert wavs == sorted(synth.NOISE_FILES)
    assert len(wavs) >= 6
    for name in wavs:
        info = sf.info(noise / name)
        assert (info.samplerate, info.channels, info.subtype) == (config.SAMPLE_RATE, 1, config.SAMPLE_SUBTYPE)
        assert info.frames >= synth.SMALL_SIZES.noise_seconds * config.SAMPLE_RATE, name
        x, _ = sf.read(noise / name, frames=5 * config.SAMPLE_RATE)
        assert np.sqrt(np.mean(x**2)) > 1e-3, f"{name} is silent at its start"
    readme = (noise / "README.md").read_text()
    assert all(name in readme for name in wavs)
    assert synth.DEFAULT_SIZES.noise_seconds >= 60  # the default dataset's recordings are >= 60 s


def test_lists_follow_the_hash_rule(synthetic_small: Path) -> None:
    root = synthetic_small
    validation = (root / config.VALIDATION_LIST).read_text().splitlines()
    testing = (root / config.TESTING_LIST).read_text().splitlines()
    clips = [p.relative_to(root).as_posix() for p in _clips(root)]
    assert validation == sorted(validation) and testing == sorted(testing)
    assert set(validation) == {c for c in clips if hashsplit.which_set(c) == "validation"}
    assert set(testing) == {c for c in clips if hashsplit.which_set(c) == "testing"}
    assert validation and testing, "small mode must have speakers in every set"
    assert not set(validation) & set(testing)
    assert {Path(c).parts[0] for c in validation + testing} <= set(config.WORDS_V001)


def test_audio_format(synthetic_small: Path) -> None:
    clips = _clips(synthetic_small)
    lengths = []
    for path in clips:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (
            config.SAMPLE_RATE,
            1,
            config.SAMPLE_SUBTYPE,
            "WAV",
        ), path
        lengths.append(info.frames)
    lengths = np.array(lengths)
    assert lengths.max() <= config.CLIP_SAMPLES
    assert (lengths == config.CLIP_SAMPLES).mean() > 0.5  # most clips are one second
    assert 0.03 < (lengths < config.CLIP_SAMPLES).mean() < 0.35  # many are shorter, as in the real data
    assert lengths.min() > config.SAMPLE_RATE // 4


def test_clips_hold_a_word_at_varying_position_and_loudness(synthetic_small: Path) -> None:
    peaks, centres = [], []
    for path in _clips(synthetic_small)[::3]:
        x, _ = sf.read(path)
        peak = np.abs(x).max()
        assert 0.02 < peak < 1.0, path
        frames = np.sqrt(np.mean(x[: len(x) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
        loud = np.flatnonzero(frames > frames.max() * 10 ** (-20 / 20))
        assert 0.1 < len(loud) * 0.01 < 1.0, f"{path}: {len(loud) * 10} ms of speech"
        # A noise floor, not digital silence, outside the word.
        assert frames.min() > 0, path
        peaks.append(20 * np.log10(peak))
        centres.append(loud.mean() / len(frames))
    assert np.ptp(peaks) > 12  # loudness varies over more than 12 dB
    assert np.std(centres) > 0.05  # the word is not always at the same place


def test_speakers_are_stable_and_distinct() -> None:
    ids = synth._speaker_ids(7, 40)
    assert len(set(ids)) == 40 and all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)
    assert ids == synth._speaker_ids(7, 40)
    assert ids[:20] != synth._speaker_ids(8, 20)
    sets = [hashsplit.which_set(f"{i}_nohash_0.wav") for i in ids]
    assert sets.count("validation") == 4 and sets.count("testing") == 4
    speakers = [synth._make_speaker(i, 7) for i in ids]
    assert speakers[0] == synth._make_speaker(ids[0], 7)
    assert len({(s.voice, round(s.pitch), round(s.rate)) for s in speakers}) == 40
    assert len({s.accent for s in speakers}) >= 4
    assert any(s.female for s in speakers) and not all(s.female for s in speakers)


# --- Determinism, idempotence, resume ------------------------------------------------


@pytest.mark.slow
def test_same_seed_same_bytes_whatever_the_workers(synthetic_small: Path, tmp_path: Path) -> None:
    # The fixture used the default worker count; one worker in this process must give the same bytes.
    again = synth.synthesize(tmp_path / "again", small=True, seed=1234, workers=1)
    assert _hashes(again) == _hashes(synthetic_small)


def test_other_seed_other_speakers() -> None:
    speakers_a = synth._speaker_ids(1234, synth.SMALL_SIZES.num_speakers)
    speakers_b = synth._speaker_ids(1235, synth.SMALL_SIZES.num_speakers)
    assert not set(speakers_a) & set(speakers_b)


def test_second_run_does_nothing(synthetic_small: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in synthetic_small.rglob("*")}
    assert synth.synthesize(synthetic_small, small=True, seed=1234) == synthetic_small.resolve()
    assert {p: p.stat().st_mtime_ns for p in synthetic_small.rglob("*")} == before


def test_complete_folder_with_other_params_is_refused(synthetic_small: Path) -> None:
    before = _hashes(synthetic_small)
    with pytest.raises(FileExistsError, match="another --out"):
        synth.synthesize(synthetic_small, small=True, seed=99)
    with pytest.raises(FileExistsError, match="another --out"):
        synth.synthesize(synthetic_small, small=False, seed=1234)
    assert _hashes(synthetic_small) == before


def test_foreign_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("not a dataset")
    with pytest.raises(FileExistsError, match="not empty"):
        synth.synthesize(tmp_path, small=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="seed"):
        synth.synthesize("unused", small=True, seed=-1)
    with pytest.raises(ValueError, match="workers"):
        synth.synthesize("unused", small=True, workers=0)


def test_partial_folder_is_completed(synthetic_small: Path, tmp_path: Path) -> None:
    root = tmp_path / "partial"
    shutil.copytree(synthetic_small, root)
    expected = _hashes(root)
    clips = _clips(root)
    removed = [clips[0], clips[len(clips) // 2], clips[-1]]
    for path in removed:
        path.unlink()
    (root / config.BACKGROUND_NOISE_DIR / "babble.wav").unlink()
    (root / config.TESTING_LIST).unlink()
    (root / synth.MARKER).unlink()  # as if the run had been killed
    # A half-written temporary file of the killed run.
    (root / "yes" / ".00000000_nohash_0.wav.123.tmp").write_bytes(b"RIFF")
    kept = {p: p.stat().st_mtime_ns for p in _clips(root)}

    synth.synthesize(root, small=True, seed=1234, workers=1)

    assert _hashes(root) == expected
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # clips already there were not rewritten


def test_espeak_is_reproducible_after_reset() -> None:
    engine = espeak.engine()

    def say() -> list[np.ndarray]:
        engine.reset()
        return [engine.speak(w, voice="en-us+f2", rate=160, pitch=50, pitch_range=50) for w in ("yes", "sheila")]

    first = say()
    engine.reset()
    engine.speak("marvin", voice="en-gb-scotland+klatt2", rate=120, pitch=30, pitch_range=80)
    second = say()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert engine.sample_rate == 22050
    with pytest.raises(espeak.EspeakError, match="no voice"):
        engine.speak("yes", voice="xx-nonexistent", rate=160, pitch=50, pitch_range=50)
