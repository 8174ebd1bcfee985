"""speechlib.stats: levels of known signals, positions of tone bursts, durations, speaker tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from speechlib import stats
from speechlib.config import CLIP_SAMPLES, SAMPLE_RATE


def _tone(seconds: float = 1.0, amplitude: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _burst(start_s: float, stop_s: float, *, seconds: float = 1.0, noise: float = 1e-3, seed: int = 0) -> np.ndarray:
    """A 0.5-amplitude 440 Hz burst from start_s to stop_s in a clip of faint noise."""
    x = noise * np.random.default_rng(seed).standard_normal(round(seconds * SAMPLE_RATE))
    a, b = round(start_s * SAMPLE_RATE), round(stop_s * SAMPLE_RATE)
    x[a:b] += _tone((b - a) / SAMPLE_RATE)
    return x.astype(np.float32)


def _write(path, x: np.ndarray) -> str:
    sf.write(path, x, SAMPLE_RATE, subtype="PCM_16")
    return str(path)


# --- rms_db --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("amplitude", "expected"), [(1.0, -3.0103), (0.5, -9.0309), (0.1, -23.0103)])
def test_rms_db_of_a_sine(amplitude: float, expected: float) -> None:
    assert stats.rms_db(_tone(amplitude=amplitude)) == pytest.approx(expected, abs=1e-3)


def test_rms_db_of_a_square_wave_and_silence() -> None:
    square = np.where(np.arange(CLIP_SAMPLES) % 40 < 20, 0.25, -0.25).astype(np.float32)
    assert stats.rms_db(square) == pytest.approx(20 * np.log10(0.25))
    assert stats.rms_db(np.zeros(CLIP_SAMPLES)) == -np.inf
    assert stats.rms_db(np.zeros(0)) == -np.inf


def test_rms_db_rejects_2d() -> None:
    with pytest.raises(ValueError, match="shape"):
        stats.rms_db(np.zeros((2, 10)))


# --- word_position -------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "stop"), [(0.25, 0.5), (0.1, 0.3), (0.6, 0.95), (0.0, 1.0)])
def test_word_position_of_a_tone_burst(start: float, stop: float) -> None:
    pos = stats.word_position(_burst(start, stop))
    half_frame = 0.0125 + 1e-9  # onset/offset are frame middles: exact to half a 25 ms frame
    assert pos["onset"] == pytest.approx(start, abs=half_frame)
    assert pos["offset"] == pytest.approx(stop, abs=half_frame)
    assert pos["centre"] == pytest.approx((start + stop) / 2, abs=0.005)


def test_word_position_follows_the_louder_part() -> None:
    """A loud burst and a much quieter one: the centre sits at the loud one, the threshold drops the quiet one."""
    x = _burst(0.1, 0.2)
    x[round(0.7 * SAMPLE_RATE) : round(0.8 * SAMPLE_RATE)] += 0.001 * _tone(0.1)  # 54 dB below
    pos = stats.word_position(x)
    assert pos["offset"] < 0.25
    assert pos["centre"] == pytest.approx(0.15, abs=0.005)
    # A looser threshold takes the quiet burst in.
    assert stats.word_position(x, top_db=70)["offset"] > 0.75


def test_word_position_of_silence_is_nan() -> None:
    pos = stats.word_position(np.zeros(CLIP_SAMPLES, dtype=np.float32))
    assert all(np.isnan(v) for v in pos.values())


def test_word_position_of_a_short_clip_stays_inside_it() -> None:
    pos = stats.word_position(_tone(seconds=0.01))  # shorter than one 25 ms frame
    assert 0 <= pos["onset"] <= pos["centre"] <= pos["offset"] <= 0.01


# --- clip_stats and load_clips on files ---------------------------------------------------------------


@pytest.fixture()
def manifest(tmp_path) -> pd.DataFrame:
    noise = np.random.default_rng(1).uniform(-0.2, 0.2, 3 * SAMPLE_RATE).astype(np.float32)
    rows = [
        {"path": _write(tmp_path / "a.wav", _burst(0.25, 0.5)), "label": "yes", "speaker": "aaaaaaaa"},
        {"path": _write(tmp_path / "b.wav", _burst(0.1, 0.3, seconds=0.6)), "label": "no", "speaker": "aaaaaaaa"},
        {"path": _write(tmp_path / "c.wav", _tone(amplitude=0.1)), "label": "yes", "speaker": "bbbbbbbb"},
        {"path": "", "label": "silence", "speaker": "", "source": "digital_silence", "num_samples": CLIP_SAMPLES},
        {
            "path": _write(tmp_path / "noise.wav", noise), "label": "silence", "speaker": "",
            "source": "_background_noise_/noise.wav", "offset": SAMPLE_RATE, "num_samples": SAMPLE_RATE // 2,
        },
    ]  # fmt: skip
    table = pd.DataFrame(rows)
    table["offset"] = table["offset"].fillna(0).astype(int)
    table["num_samples"] = table["num_samples"].fillna(0).astype(int)
    table["source"] = table["source"].fillna("")
    table.index = [10, 11, 12, 13, 14]  # results keep the table's index
    return table


@pytest.mark.parametrize("batch_size", [1, 2, 256])
def test_clip_stats_on_files(manifest: pd.DataFrame, batch_size: int) -> None:
    out = stats.clip_stats(manifest, batch_size=batch_size, progress=False)
    assert list(out.index) == list(manifest.index)
    assert set(stats.STAT_COLUMNS) <= set(out.columns)
    assert {"label", "speaker", "source"} <= set(out.columns)
    assert out["duration"].tolist() == pytest.approx([1.0, 0.6, 1.0, 1.0, 0.5])
    a, b, c, silent, noise = (out.loc[i] for i in manifest.index)
    # Batching pads short clips with zeros; their statistics must not see the padding.
    assert b["rms_db"] == pytest.approx(stats.rms_db(_burst(0.1, 0.3, seconds=0.6)), abs=0.01)
    assert c["rms_db"] == pytest.approx(-23.01, abs=0.01)  # 0.1 sine, through 16-bit PCM
    assert c["peak_db"] == pytest.approx(-20.0, abs=0.01)
    assert a["onset"] == pytest.approx(0.25, abs=0.0126)
    assert a["offset"] == pytest.approx(0.5, abs=0.0126)
    assert a["centre"] == pytest.approx(0.375, abs=0.005)
    assert a["word_length"] == pytest.approx(a["offset"] - a["onset"])
    assert b["centre"] == pytest.approx(0.2, abs=0.005)
    assert silent["rms_db"] == -np.inf and np.isnan(silent["centre"])
    assert noise["rms_db"] == pytest.approx(20 * np.log10(0.2 / np.sqrt(3)), abs=0.2)  # uniform noise


def test_clip_stats_matches_single_clip_functions(manifest: pd.DataFrame) -> None:
    out = stats.clip_stats(manifest.iloc[:3], progress=False, workers=1)
    for (_, row), (_, result) in zip(manifest.iloc[:3].iterrows(), out.iterrows(), strict=True):
        x = sf.read(row["path"], dtype="float32")[0]
        assert result["rms_db"] == pytest.approx(stats.rms_db(x), abs=1e-6)
        assert result["centre"] == pytest.approx(stats.word_position(x)["centre"], abs=1e-9)


def test_clip_stats_names_the_missing_column_and_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="'path'"):
        stats.clip_stats(pd.DataFrame({"label": ["yes"]}), progress=False)
    missing = tmp_path / "gone.wav"
    with pytest.raises(ValueError, match=r"gone\.wav"):
        stats.clip_stats(pd.DataFrame({"path": [str(missing)]}), progress=False)


def test_load_clips_pads_and_centres(manifest: pd.DataFrame) -> None:
    X = stats.load_clips(manifest, workers=2)
    assert X.shape == (5, CLIP_SAMPLES) and X.dtype == np.float32
    b = X[1]  # 0.6 s clip padded in the middle: 0.2 s of zeros on each side
    assert np.all(b[: round(0.2 * SAMPLE_RATE)] == 0) and np.all(b[-round(0.2 * SAMPLE_RATE) :] == 0)
    assert np.all(X[3] == 0)


def test_feature_summary_shape_and_values() -> None:
    X = np.stack([_tone(), _tone(amplitude=0.05, freq=1000.0), np.zeros(CLIP_SAMPLES, np.float32)])
    V = stats.feature_summary(X)
    assert V.shape == (3, 26) and V.dtype == np.float32
    assert np.allclose(V[2, 13:], 0.0)  # digital silence: constant features, zero spread
    assert not np.allclose(V[0], V[1])
    assert stats.feature_summary(X, kind="logmel").shape == (3, 80)


# --- tables --------------------------------------------------------------------------------------


@pytest.fixture()
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": ["yes", "yes", "yes", "no", "no", "unknown", "silence", "silence"],
            "speaker": ["s1", "s1", "s2", "s1", "s3", "s3", "", None],
            "duration": [1.0, 0.8, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0],
            "rms_db": [-20.0, -30.0, -25.0, -10.0, -12.0, -40.0, -np.inf, -50.0],
            "centre": [0.5, 0.4, 0.6, 0.5, 0.3, 0.5, np.nan, 0.5],
            "word_length": [0.4, 0.3, 0.5, 0.4, 0.2, 0.6, np.nan, 1.0],
        }
    )


def test_clips_per_speaker(table: pd.DataFrame) -> None:
    counts = stats.clips_per_speaker(table)
    assert counts.to_dict() == {"s1": 3, "s3": 2, "s2": 1}
    assert list(counts.index) == ["s1", "s3", "s2"]  # largest first; rows without a speaker ignored


def test_speakers_per_class(table: pd.DataFrame) -> None:
    assert stats.speakers_per_class(table).to_dict() == {"no": 2, "unknown": 1, "yes": 2}
    ordered = stats.speakers_per_class(table, order=["yes", "no", "silence", "unknown"])
    assert list(ordered.index) == ["yes", "no", "silence", "unknown"]
    assert ordered.tolist() == [2, 2, 0, 1]
    with pytest.raises(ValueError, match="'word'"):
        stats.speakers_per_class(table, by="word")


def test_per_class(table: pd.DataFrame) -> None:
    out = stats.per_class(table, order=["yes", "no", "silence", "unknown", "left"])
    assert list(out.index) == ["yes", "no", "silence", "unknown", "left"]
    assert out["clips"].tolist() == [3, 2, 2, 1, 0]
    assert out["speakers"].tolist() == [2, 2, 0, 1, 0]
    assert out.loc["yes", "median_duration"] == pytest.approx(1.0)
    assert out.loc["yes", "median_rms_db"] == pytest.approx(-25.0)
    assert out.loc["silence", "median_rms_db"] == pytest.approx(-50.0)  # -inf left out of the median
    assert np.isnan(out.loc["left", "median_centre"])
    with pytest.raises(ValueError, match="clip_stats"):
        stats.per_class(table.drop(columns="centre"))
