"""Tests of speechlib.augment: lengths, dtypes, determinism, zero fill, SNR, noise regions, SpecAugment."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlib import augment
from speechlib.config import CLIP_SAMPLES, SAMPLE_RATE


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """A 1-s voiced-like test signal: harmonics of 150 Hz in a 0.5-s burst."""
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8)) * 0.2 * ((t > 0.25) & (t < 0.75))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(7).uniform(-0.3, 0.3, 3 * CLIP_SAMPLES).astype(np.float32)


def _snr_db(clean: np.ndarray, noise: np.ndarray, mixed: np.ndarray) -> float:
    """SNR of a mix ``s * (clean + c * noise)``: solve for s and c, then compare the two parts."""
    basis = np.stack([clean, noise[: len(clean)]], axis=1).astype(np.float64)
    (a, b), *_ = np.linalg.lstsq(basis, mixed.astype(np.float64), rcond=None)
    np.testing.assert_allclose(basis @ [a, b], mixed, atol=1e-5)  # nothing else was added
    return 20 * np.log10(augment.rms(a * clean) / augment.rms(b * noise[: len(clean)]))


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 3.0, 10.0, 20.0, 40.0])
def test_mix_noise_exact_snr(clip: np.ndarray, noise: np.ndarray, snr_db: float) -> None:
    mixed = augment.mix_noise(clip, noise, snr_db=snr_db)
    assert mixed.shape == clip.shape and mixed.dtype == np.float32
    assert np.abs(mixed).max() <= 1.0
    assert abs(_snr_db(clip, noise, mixed) - snr_db) < 0.5


def test_mix_noise_loud_mix_is_scaled_not_clipped(noise: np.ndarray) -> None:
    loud = np.full(CLIP_SAMPLES, 0.9, dtype=np.float32)
    loud[::2] = -0.9
    mixed = augment.mix_noise(loud, noise, snr_db=0.0)
    assert np.abs(mixed).max() == pytest.approx(1.0, abs=1e-6)
    assert float(np.dot(mixed, loud) / np.dot(loud, loud)) < 1.0  # the whole mix was scaled down
    assert abs(_snr_db(loud, noise, mixed)) < 0.5


def test_mix_noise_silence_and_short_noise(clip: np.ndarray, noise: np.ndarray) -> None:
    silent = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    np.testing.assert_array_equal(augment.mix_noise(silent, noise, snr_db=10), silent)
    with pytest.raises(ValueError, match="fewer"):
        augment.mix_noise(clip, noise[:100], snr_db=10)


@pytest.mark.parametrize("shift", [0, 1, 1600, -1600, -1, CLIP_SAMPLES, -CLIP_SAMPLES - 5])
def test_time_shift_zero_fills(shift: int) -> None:
    x = np.arange(1, CLIP_SAMPLES + 1, dtype=np.float32) / CLIP_SAMPLES
    y = augment.time_shift(x, shift=shift)
    assert y.shape == x.shape and y.dtype == np.float32
    k = min(abs(shift), CLIP_SAMPLES)
    if shift >= 0:
        assert not y[:k].any()  # zeros where the clip moved away, not the wrapped end
        np.testing.assert_array_equal(y[k:], x[: CLIP_SAMPLES - k])
    else:
        assert not y[CLIP_SAMPLES - k :].any()
        np.testing.assert_array_equal(y[: CLIP_SAMPLES - k], x[k:])


def test_gain(clip: np.ndarray) -> None:
    y = augment.gain(clip, gain_db=-6.0)
    assert y.dtype == np.float32
    assert 20 * np.log10(augment.rms(y) / augment.rms(clip)) == pytest.approx(-6.0, abs=1e-3)
    assert np.abs(augment.gain(clip, gain_db=40.0)).max() <= 1.0


@pytest.mark.parametrize("rate", [0.8, 1.25])
@pytest.mark.slow
def test_time_stretch_keeps_length(clip: np.ndarray, rate: float) -> None:
    y = augment.time_stretch(clip, rate=rate)
    assert y.shape == clip.shape and y.dtype == np.float32
    # the burst (0.5 s) gets longer when slowed down, shorter when sped up
    active = lambda w: int((np.abs(w) > 0.05).sum())  # noqa: E731
    assert (active(y) > active(clip)) == (rate < 1)


def test_pitch_shift_keeps_length_and_moves_pitch(clip: np.ndarray) -> None:
    y = augment.pitch_shift(clip, n_steps=12)
    assert y.shape == clip.shape and y.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(int(np.argmax(spectrum)) - 300) <= 3  # 150 Hz fundamental -> 300 Hz (1-Hz bins)


def _bank_files(tmp_path: Path) -> list[dict]:
    """Two noise recordings: split regions 'train' = first 3 s, 'test' = last 2 s, with distinct content."""
    regions = []
    for i in range(2):
        path = tmp_path / f"noise{i}.wav"
        data = np.concatenate([np.full(3 * SAMPLE_RATE, 0.1 * (i + 1)), np.full(2 * SAMPLE_RATE, -0.5)])
        sf.write(path, data.astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
        regions.append({"relpath": f"_background_noise_/noise{i}.wav", "path": str(path), "start": 0, "stop": 48000})
    return regions


def test_noise_bank_draws_only_its_regions(tmp_path: Path) -> None:
    regions = _bank_files(tmp_path)
    bank = augment.NoiseBank(regions)
    rng = np.random.default_rng(0)
    windows = np.stack([bank.sample(rng) for _ in range(200)])
    assert windows.shape == (200, CLIP_SAMPLES) and windows.dtype == np.float32
    assert windows.min() > 0  # never a sample of the -0.5 'test' region
    assert set(np.round(windows[:, 0].astype(float), 3).tolist()) == {0.1, 0.2}  # both recordings used
    # split.json round-trip
    (tmp_path / "split.json").write_text(
        json.dumps(
            {"noise_regions": {"train": regions, "test": [{**r, "start": 48000, "stop": 80000} for r in regions]}}
        )
    )
    test_bank = augment.NoiseBank.from_split(tmp_path, "test")
    assert np.all(test_bank.sample(rng) == -0.5)
    with pytest.raises(ValueError, match="cv"):
        augment.NoiseBank.from_split(tmp_path, "cv")


def test_noise_bank_pickles_without_audio(tmp_path: Path) -> None:
    bank = augment.NoiseBank(_bank_files(tmp_path))
    first = bank.sample(np.random.default_rng(1))
    payload = pickle.dumps(bank)
    assert len(payload) < 5000  # the region list, not 2 x 3 s of audio
    np.testing.assert_array_equal(pickle.loads(payload).sample(np.random.default_rng(1)), first)
    with pytest.raises(ValueError, match="at least"):
        augment.NoiseBank([{"path": "x.wav", "start": 0, "stop": 100}])


def _all_on(noise: np.ndarray) -> augment.Augmenter:
    return augment.Augmenter(
        noise=augment.NoiseBank.from_arrays([noise]),
        noise_prob=1.0,
        shift_prob=1.0,
        gain_prob=1.0,
        stretch_prob=1.0,
        pitch_prob=1.0,
    )


def test_augmenter_keeps_length_dtype_and_is_deterministic(clip: np.ndarray, noise: np.ndarray) -> None:
    augmenter = _all_on(noise)
    a = augmenter(clip, rng=np.random.default_rng(42))
    b = augmenter(clip, rng=np.random.default_rng(42))
    c = augmenter(clip, rng=np.random.default_rng(43))
    assert a.shape == clip.shape and a.dtype == np.float32
    assert np.abs(a).max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(augmenter(clip, rng=42), a)  # an int seed is the same as its generator
    # the augmenter's own seeded generator: same sequence for the same seed
    cheap = augment.Augmenter(noise=augment.NoiseBank.from_arrays([noise]), seed=5)
    again = augment.Augmenter(noise=augment.NoiseBank.from_arrays([noise]), seed=5)
    np.testing.assert_array_equal(np.stack([cheap(clip) for _ in range(3)]), np.stack([again(clip) for _ in range(3)]))
    # the input is never modified
    before = clip.copy()
    augmenter(clip, rng=0)
    np.testing.assert_array_equal(clip, before)


def test_augmenter_pickles_and_copies(clip: np.ndarray, noise: np.ndarray) -> None:
    augmenter = augment.Augmenter(noise=augment.NoiseBank.from_arrays([noise]), noise_prob=1.0)
    clone = pickle.loads(pickle.dumps(augmenter))
    np.testing.assert_array_equal(clone(clip, rng=3), augmenter(clip, rng=3))
    copies = augmenter.copies(clip, 4, rng=np.random.default_rng(0))
    assert copies.shape == (4, CLIP_SAMPLES) and copies.dtype == np.float32
    assert len({c.tobytes() for c in copies}) == 4
    assert augmenter.copies(clip, 0).shape == (0, CLIP_SAMPLES)
    json.dumps(augmenter.to_dict())
    with pytest.raises(ValueError, match="noise_prob"):
        augment.Augmenter(noise_prob=1.5)


def test_augmenter_without_noise_and_probabilities_zero(clip: np.ndarray) -> None:
    off = augment.Augmenter(noise=None, noise_prob=1.0, shift_prob=0.0, gain_prob=0.0)
    np.testing.assert_array_equal(off(clip, rng=0), clip)


def test_mask_time_and_freq_widths() -> None:
    X = np.arange(101 * 40, dtype=np.float32).reshape(101, 40)
    t = augment.mask_time(X, start=10, width=7, value=-1.0)
    assert np.all(t[10:17] == -1) and not np.any(t[:10] == -1) and not np.any(t[17:] == -1)
    f = augment.mask_freq(X, start=3, width=5, value=-1.0)
    assert np.all(f[:, 3:8] == -1) and (f == -1).sum() == 5 * 101
    assert not np.any(X == -1)  # input untouched


@pytest.mark.parametrize(("time_width", "freq_width"), [(10, 5), (1, 1), (30, 8)])
def test_spec_augment_masks_requested_widths(time_width: int, freq_width: int) -> None:
    X = np.random.default_rng(0).standard_normal((101, 40)).astype(np.float32) + 5.0
    out = augment.spec_augment(
        X,
        rng=np.random.default_rng(1),
        num_time_masks=1,
        time_width=time_width,
        num_freq_masks=1,
        freq_width=freq_width,
        fixed_width=True,
        value=0.0,
    )
    assert out.shape == X.shape and out.dtype == np.float32
    masked_rows = np.flatnonzero((out == 0).all(axis=1))
    masked_cols = np.flatnonzero((out == 0).all(axis=0))
    assert len(masked_rows) == time_width and np.all(np.diff(masked_rows) == 1)
    assert len(masked_cols) == freq_width and np.all(np.diff(masked_cols) == 1)
    assert (out == 0).sum() == time_width * 40 + freq_width * 101 - time_width * freq_width


def test_spec_augment_random_widths_bounded_deterministic_batched() -> None:
    X = np.random.default_rng(0).standard_normal((16, 101, 40)).astype(np.float32) + 5.0
    spec = augment.SpecAugment(num_time_masks=1, time_width=12, num_freq_masks=1, freq_width=6, value=0.0)
    out = spec(X, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(out, spec(X, rng=np.random.default_rng(2)))
    for item in out:
        assert (item == 0).all(axis=1).sum() <= 12 and (item == 0).all(axis=0).sum() <= 6
    assert len({item.tobytes() for item in (out == 0)}) > 1  # independent masks per item
    mean_filled = augment.spec_augment(X[0], rng=0, fixed_width=True)  # default fill: the mean
    assert np.isclose(mean_filled, X[0].mean()).any()
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_real_speech_and_noise(shared_data: Path) -> None:
    from speechlib import audio

    clips = sorted((shared_data / "speech_commands_v0.01_sample").glob("*/*.wav"))[::15]
    noise_files = sorted((shared_data / "_background_noise_").glob("*.wav"))
    if not clips or not noise_files:
        pytest.skip("real clips or background noise missing in the shared data")
    bank = augment.NoiseBank([{"path": str(p), "start": 0, "stop": 5 * SAMPLE_RATE} for p in noise_files])
    augmenter = augment.Augmenter(noise=bank, noise_prob=1.0)
    rng = np.random.default_rng(0)
    for path in clips:
        x = audio.fix_length(audio.load(path))
        noise = bank.sample(rng)
        for snr_db in (0.0, 10.0):
            assert abs(_snr_db(x, noise, augment.mix_noise(x, noise, snr_db=snr_db)) - snr_db) < 0.5
        y = augmenter(x, rng=rng)
        assert y.shape == x.shape and y.dtype == np.float32 and np.abs(y).max() <= 1.0


def test_time_stretch_never_cuts_an_early_word() -> None:
    """Slowed down, a word said early in the clip keeps its onset (a centred crop would cut it)."""
    clip = np.zeros(16000, dtype=np.float32)
    t = np.arange(4000) / 16000
    clip[500:4500] = 0.5 * np.sin(2 * np.pi * 440 * t)  # a 0.25-s "word" starting at 31 ms
    y = augment.time_stretch(clip, rate=0.7)
    assert y.shape == clip.shape
    import librosa

    whole = librosa.effects.time_stretch(clip, rate=0.7)  # 1.43 s long: a centred crop drops 0.21 s each end
    assert float(np.sum(y**2)) > 0.99 * float(np.sum(whole**2))  # all of the (longer) word is kept
    assert float(np.sum(whole[3428 : 3428 + 16000] ** 2)) < 0.5 * float(np.sum(whole**2))  # what a centre crop kept


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_moves_pitch_and_keeps_length(factor: float) -> None:
    t = np.arange(16000) / 16000
    clip = (0.5 * np.sin(2 * np.pi * 300 * t) * np.hanning(16000)).astype(np.float32)
    y = augment.speed(clip, factor=factor)
    assert y.shape == clip.shape and y.dtype == np.float32
    peak = int(np.argmax(np.abs(np.fft.rfft(y))))
    assert abs(peak - 300 * factor) <= 3  # 1-Hz bins: every frequency scales by the factor
    np.testing.assert_allclose(augment.speed(clip, factor=1.0), clip, atol=1e-6)
    with pytest.raises(ValueError):
        augment.speed(clip, factor=0)


def test_augmenter_speed_probability_is_checked_and_applied() -> None:
    with pytest.raises(ValueError):
        augment.Augmenter(speed_prob=1.5)
    clip = np.sin(np.arange(16000) / 10).astype(np.float32)
    out = augment.Augmenter(noise=None, shift_prob=0, gain_prob=0, speed_prob=1.0)(clip, rng=0)
    assert not np.allclose(out, clip)
