"""Tests of speechlib.features: shapes, dtypes, agreement with librosa, normalisation."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import librosa
import numpy as np
import pytest

from speechlib import audio, features
from speechlib.config import CLIP_SAMPLES, HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, WIN_LENGTH

EXPECTED_SHAPES = {
    "logmel": (101, 40),
    "mfcc": (101, 13),
    "stft": (101, 257),
    "fft": (1, 8001),
    "tempogram": (101, 100),
    "chroma": (101, 12),
    "waveform": (CLIP_SAMPLES, 1),
}


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """A 1-s test signal: a chirp with an onset, in noise."""
    rng = np.random.default_rng(0)
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    x = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t) * (t > 0.3) + 0.01 * rng.standard_normal(CLIP_SAMPLES)
    return x.astype(np.float32)


def _tone(freq: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("kind", features.KINDS)
def test_default_shape_and_dtype(kind: str, clip: np.ndarray) -> None:
    assert set(EXPECTED_SHAPES) == set(features.KINDS)
    y = features.compute(clip, kind)
    assert y.shape == EXPECTED_SHAPES[kind] == features.output_shape(kind)
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    silent = features.compute(np.zeros(CLIP_SAMPLES, dtype=np.float32), kind)
    assert silent.shape == y.shape and np.isfinite(silent).all()


@pytest.mark.parametrize(
    ("kind", "params", "shape"),
    [
        ("mfcc", {"deltas": True}, (101, 39)),
        ("stft", {"preset": "spark"}, (50, 1025)),  # 1 + 16000 // 321 frames with center=True
        ("logmel", {"n_mels": 64, "hop_length": 320}, (51, 64)),
        ("logmel", {"center": False}, (97, 40)),  # 1 + (16000 - 512) // 160
        ("fft", {"n_fft": 4000}, (1, 2001)),
    ],
)
def test_shapes_with_params(kind: str, params: dict, shape: tuple, clip: np.ndarray) -> None:
    assert features.compute(clip, kind, **params).shape == shape == features.output_shape(kind, **params)


@pytest.mark.parametrize("num_samples", [8000, 12345, 16001])
def test_output_shape_for_other_lengths(num_samples: int) -> None:
    x = np.zeros(num_samples, dtype=np.float32)
    for kind in features.KINDS:
        assert features.compute(x, kind).shape == features.output_shape(kind, num_samples=num_samples), kind


@pytest.mark.parametrize(
    "params",
    [{}, {"center": False}, {"n_fft": 400}, {"n_fft": 1024, "win_length": 256, "hop_length": 100, "n_mels": 64}],
)
def test_logmel_equals_librosa(params: dict, clip: np.ndarray) -> None:
    p = {"n_fft": N_FFT, "win_length": WIN_LENGTH, "hop_length": HOP_LENGTH, "n_mels": N_MELS, "center": True}
    p.update(params)
    reference = librosa.feature.melspectrogram(
        y=clip, sr=SAMPLE_RATE, fmin=20.0, fmax=SAMPLE_RATE / 2, pad_mode="constant", power=2.0, **p
    )
    expected = np.log(reference + 1e-6).T
    np.testing.assert_allclose(features.logmel(clip, **params), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(features.compute(clip, "logmel", **params), expected, rtol=1e-4, atol=1e-4)


def test_stft_spark_preset_equals_original_recipe(clip: np.ndarray) -> None:
    # The original Spark project: librosa.stft(n_fft=2048, hop_length=321), then amplitude_to_db.
    expected = librosa.amplitude_to_db(np.abs(librosa.stft(clip, n_fft=2048, hop_length=321))).T
    np.testing.assert_allclose(features.compute(clip, "stft", preset="spark"), expected, atol=1e-2)


def test_mfcc_is_dct_of_logmel(clip: np.ndarray) -> None:
    log_mel = features.logmel(clip)
    expected = librosa.feature.mfcc(S=log_mel.T, n_mfcc=13).T  # librosa: DCT-II, orthonormal
    np.testing.assert_allclose(features.compute(clip, "mfcc"), expected, rtol=1e-4, atol=1e-3)
    with_deltas = features.compute(clip, "mfcc", deltas=True)
    np.testing.assert_allclose(with_deltas[:, :13], expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(with_deltas[:, 13:26], librosa.feature.delta(expected.T).T, rtol=1e-3, atol=1e-3)


def test_fft_is_magnitude_of_the_clip(clip: np.ndarray) -> None:
    np.testing.assert_allclose(features.compute(clip, "fft")[0], np.abs(np.fft.rfft(clip)), rtol=1e-4, atol=1e-3)
    peak = int(np.argmax(features.compute(_tone(1000.0), "fft")[0]))
    assert peak == 1000  # 1-Hz bins for a 1-s clip


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_tone_lands_in_its_mel_band(freq: float) -> None:
    band = int(np.argmax(features.compute(_tone(freq)).mean(axis=0)))
    centers = librosa.mel_frequencies(n_mels=N_MELS + 2, fmin=20.0, fmax=SAMPLE_RATE / 2)[1:-1]
    assert band == int(np.argmin(np.abs(centers - freq)))


def test_tone_in_chroma_and_stft() -> None:
    a440 = _tone(440.0)
    assert int(np.argmax(features.compute(a440, "chroma").mean(axis=0))) == 9  # C=0 ... A=9
    stft_bin = int(np.argmax(features.compute(a440, "stft").mean(axis=0)))
    assert stft_bin == round(440 * N_FFT / SAMPLE_RATE)


def test_waveform_is_the_clip(clip: np.ndarray) -> None:
    np.testing.assert_array_equal(features.compute(clip, "waveform")[:, 0], clip)


@pytest.mark.parametrize(("kind", "params"), [(k, {}) for k in features.KINDS] + [("stft", {"preset": "spark"})])
def test_batch_equals_single(kind: str, params: dict, clip: np.ndarray) -> None:
    batch = np.stack([clip, 0.5 * clip[::-1], np.zeros_like(clip)] * 4)  # 12 clips: more than one chunk
    out = features.compute_batch(batch, kind, **params)
    assert out.shape == (len(batch), *features.output_shape(kind, **params)) and out.dtype == np.float32
    for i in (0, 1, 2, 11):
        np.testing.assert_allclose(out[i], features.compute(batch[i], kind, **params), rtol=1e-5, atol=1e-5)
    if kind == "logmel":
        np.testing.assert_array_equal(features.logmel_batch(batch), out)


def test_params_are_recorded_and_checked() -> None:
    for kind in features.KINDS:
        params = features.default_params(kind)
        json.dumps(params)  # recordable in a store's attributes
        assert features.resolve_params(kind) == params
        params["sample_rate"] = -1  # a copy: changing it changes nothing
        assert features.default_params(kind)["sample_rate"] == SAMPLE_RATE
    spark = features.resolve_params("stft", preset="spark")
    assert (spark["n_fft"], spark["hop_length"], spark["preset"]) == (2048, 321, "spark")
    assert features.resolve_params("stft", preset="spark", hop_length=160)["hop_length"] == 160
    with pytest.raises(ValueError, match="n_mel"):
        features.compute(np.zeros(CLIP_SAMPLES, dtype=np.float32), "logmel", n_mel=40)
    with pytest.raises(ValueError, match="unknown feature kind"):
        features.default_params("mel")
    with pytest.raises(ValueError, match="preset"):
        features.default_params("logmel", preset="spark")
    with pytest.raises(TypeError):
        features.logmel(np.zeros(CLIP_SAMPLES, dtype=np.float32), 40)  # parameters are keyword-only


def test_compute_pickles_for_workers(clip: np.ndarray) -> None:
    compute = pickle.loads(pickle.dumps(features.compute))
    np.testing.assert_array_equal(compute(clip), features.compute(clip))


def test_normalizer_streamed_equals_numpy() -> None:
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((103, 101, 40)) * rng.uniform(0.5, 3, 40) + rng.uniform(-20, 5, 40)).astype(np.float32)
    batches = (X[i : i + 17] for i in range(0, len(X), 17))  # uneven batches, a generator
    stats = features.fit_normalizer(batches)
    flat = X.reshape(-1, 40).astype(np.float64)
    np.testing.assert_allclose(stats["mean"], flat.mean(axis=0), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(stats["std"], flat.std(axis=0), rtol=1e-5)
    assert stats["count"] == 103 * 101 and stats["mean"].dtype == np.float32
    whole = features.fit_normalizer(X)
    np.testing.assert_allclose(whole["mean"], stats["mean"], rtol=1e-6, atol=1e-6)
    Z = features.normalize(X, stats)
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z.reshape(-1, 40).mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(Z.reshape(-1, 40).std(axis=0), 1, atol=1e-4)
    as_json = json.loads(json.dumps({k: np.asarray(v).tolist() for k, v in stats.items()}))
    np.testing.assert_allclose(features.normalize(X, as_json), Z, rtol=1e-6, atol=1e-6)


def test_normalizer_constant_band_and_empty_input() -> None:
    X = np.ones((4, 10, 3), dtype=np.float32)
    stats = features.fit_normalizer([X])
    assert np.all(stats["std"] == 0)
    assert np.all(features.normalize(X, stats) == 0)  # no division by zero
    with pytest.raises(ValueError, match="no data"):
        features.fit_normalizer([])


def test_real_speech(shared_data: Path) -> None:
    clips = sorted((shared_data / "speech_commands_v0.01_sample").glob("*/*.wav"))[::25]
    if not clips:
        pytest.skip("no clips in speech_commands_v0.01_sample")
    batch = np.stack([audio.fix_length(audio.load(p)) for p in clips])
    log_mel = features.logmel_batch(batch)
    assert log_mel.shape == (len(clips), 101, 40)
    # Speech: loud frames well above the silent padding floor, energy mostly below 4 kHz.
    assert np.all(log_mel.max(axis=(1, 2)) > -5)
    assert np.all(log_mel.min(axis=(1, 2)) >= np.log(1e-6) - 1e-3)
    assert log_mel[:, :, :20].mean() > log_mel[:, :, 30:].mean()


def test_summary_and_mfcc_from_logmel_are_the_one_mfcc_summary():
    rng = np.random.default_rng(7)
    clips = (0.1 * rng.standard_normal((3, CLIP_SAMPLES))).astype(np.float32)
    log_mel = features.compute_batch(clips, "logmel")
    mfcc = features.compute_batch(clips, "mfcc")  # 13 coefficients, no deltas by default
    np.testing.assert_array_equal(features.mfcc_from_logmel(log_mel, n_mfcc=13), mfcc)
    np.testing.assert_array_equal(features.summary(log_mel, n_mfcc=13), features.summary(mfcc))
    V = features.summary(mfcc)
    assert V.shape == (3, 26) and V.dtype == np.float32
    np.testing.assert_allclose(V[:, 13:], mfcc.std(axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="between 1 and the number of bins"):
        features.mfcc_from_logmel(log_mel, n_mfcc=41)
