"""Tests of speechlib.audio: decoding, resampling, windows, manifest rows, padding."""

from __future__ import annotations

import pickle
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlib import audio
from speechlib.config import CLIP_SAMPLES, SAMPLE_RATE


def _tone(num_samples: int, sample_rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(num_samples) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_load_16bit_mono(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    x = _tone(CLIP_SAMPLES, SAMPLE_RATE)
    sf.write(path, x, SAMPLE_RATE, subtype="PCM_16")
    y = audio.load(path)
    assert y.dtype == np.float32 and y.shape == (CLIP_SAMPLES,)
    np.testing.assert_allclose(y, x, atol=1 / 2**15)


@pytest.mark.parametrize(
    ("channels", "rate", "subtype"),
    [
        (2, SAMPLE_RATE, "PCM_16"),  # stereo
        (1, 44_100, "PCM_16"),  # another rate
        (1, SAMPLE_RATE, "PCM_U8"),  # 8-bit
        (1, SAMPLE_RATE, "PCM_24"),
        (1, SAMPLE_RATE, "FLOAT"),
        (2, 8_000, "FLOAT"),
    ],
)
def test_load_off_spec_files(tmp_path: Path, channels: int, rate: int, subtype: str) -> None:
    path = tmp_path / "x.wav"
    mono = _tone(rate // 2, rate)  # 0.5 s
    data = np.stack([mono, -0.5 * mono], axis=1) if channels == 2 else mono
    sf.write(path, data, rate, subtype=subtype)
    y = audio.load(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert y.shape[0] == SAMPLE_RATE // 2
    assert np.abs(y).max() <= 1.0
    expected = _tone(SAMPLE_RATE // 2, SAMPLE_RATE) * (0.25 if channels == 2 else 1.0)  # mean of x and -x/2
    # resampling and 8-bit quantisation change samples a little; the tone survives
    inner = slice(200, -200)
    assert np.corrcoef(y[inner], expected[inner])[0, 1] > 0.99
    np.testing.assert_allclose(np.sqrt(np.mean(y**2)), np.sqrt(np.mean(expected**2)), rtol=0.05)


def test_float_file_beyond_full_scale_is_clipped(tmp_path: Path) -> None:
    path = tmp_path / "loud.wav"
    sf.write(path, np.full(100, 3.0, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    y = audio.load(path)
    assert y.max() == 1.0


def test_offset_window(tmp_path: Path) -> None:
    path = tmp_path / "ramp.wav"
    ramp = (np.arange(5 * SAMPLE_RATE) % 30000 - 15000).astype(np.int16)
    sf.write(path, ramp, SAMPLE_RATE, subtype="PCM_16")
    y = audio.load(path, offset=2 * SAMPLE_RATE + 7, num_samples=CLIP_SAMPLES)
    expected = ramp[2 * SAMPLE_RATE + 7 :][:CLIP_SAMPLES].astype(np.float32) / 2**15
    np.testing.assert_array_equal(y, expected)
    tail = audio.load(path, offset=5 * SAMPLE_RATE - 10, num_samples=CLIP_SAMPLES)
    assert tail.shape == (10,)  # a window past the end comes back shorter
    whole_from = audio.load(path, offset=4 * SAMPLE_RATE)
    assert whole_from.shape == (SAMPLE_RATE,)


def test_offset_window_resampled(tmp_path: Path) -> None:
    path = tmp_path / "tone44.wav"
    sf.write(path, _tone(3 * 44_100, 44_100), 44_100, subtype="PCM_16")
    full = audio.load(path)
    window = audio.load(path, offset=SAMPLE_RATE, num_samples=CLIP_SAMPLES)
    assert window.shape == (CLIP_SAMPLES,)
    inner = slice(100, -100)
    assert np.corrcoef(window[inner], full[SAMPLE_RATE : 2 * SAMPLE_RATE][inner])[0, 1] > 0.99


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "file not found"),
        (b"", "empty file (0 bytes)"),
        (b"hello, not a wav file", "not a RIFF/WAV file: it starts with b'hell' (looks like text)"),
        ("truncated", "truncated: header says 32,000 bytes of audio, file has 0"),
    ],
)
def test_audio_error_names_the_file(tmp_path: Path, content: bytes | str | None, problem: str) -> None:
    path = tmp_path / "bad file.wav"
    if content == "truncated":
        sf.write(path, _tone(CLIP_SAMPLES, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:44])  # header only, no samples
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(audio.AudioError) as info:
        audio.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert problem in message and info.value.reason in message
    assert "remove it" in info.value.reason or "check the path" in info.value.reason  # says what to do
    assert isinstance(info.value, ValueError)
    with pytest.raises(audio.AudioError) as again:
        audio.inspect(path)
    assert again.value.reason == info.value.reason  # one verdict


def test_bad_files_same_verdict_from_inspect_load_and_bytes(tmp_path: Path) -> None:
    """inspect(), load() and load(bytes) give the same sentence; soundfile's BytesIO repr never leaks."""
    good = tmp_path / "good.wav"
    sf.write(good, _tone(CLIP_SAMPLES, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    cases = {
        "lie.wav": good.read_bytes()[:-1000],  # the data chunk claims 1000 more bytes than the file holds
        "mp3.wav": b"ID3\x04\x00\x00" + bytes(range(256)) * 8,
        "ogg.wav": b"OggS\x00\x02" + bytes(200),
        "text.wav": b"this is not audio, just some text\n",
        "riff_junk.wav": b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(40),
    }
    nan = np.zeros(CLIP_SAMPLES, np.float32)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    for name in [*cases, "nan.wav"]:
        path = tmp_path / name
        with pytest.raises(audio.AudioError) as from_inspect:
            audio.inspect(path)
        with pytest.raises(audio.AudioError) as from_file:
            audio.load(path)
        with pytest.raises(audio.AudioError) as from_bytes:
            audio.load(path.read_bytes(), name=f"yes/{name}")
        assert from_inspect.value.reason == from_file.value.reason == from_bytes.value.reason, name
        assert str(from_bytes.value) == f"yes/{name}: {from_file.value.reason}"
        assert "BytesIO" not in str(from_bytes.value) and str(tmp_path) not in from_bytes.value.reason
    with pytest.raises(audio.AudioError, match="NaN or infinite samples"):
        audio.inspect(tmp_path / "nan.wav")
    with pytest.raises(audio.AudioError, match="looks like an Ogg file"):
        audio.load(tmp_path / "ogg.wav")
    # A file not named .wav may be any format soundfile reads.
    flac = tmp_path / "clip.flac"
    sf.write(flac, _tone(CLIP_SAMPLES, SAMPLE_RATE), SAMPLE_RATE, format="FLAC")
    assert audio.inspect(flac).frames == CLIP_SAMPLES


def test_entries_that_are_not_files(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "dir.wav").mkdir()
    (tmp_path / "broken.wav").symlink_to(tmp_path / "gone.wav")
    with pytest.raises(audio.AudioError, match="a folder, not an audio file"):
        audio.load(tmp_path / "dir.wav")
    with pytest.raises(audio.AudioError, match=r"broken symbolic link \(its target .*gone.wav does not exist\)"):
        audio.inspect(tmp_path / "broken.wav")
    locked = tmp_path / "locked.wav"
    sf.write(locked, _tone(100, SAMPLE_RATE), SAMPLE_RATE)

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(audio, "_open_binary", denied)
    with pytest.raises(audio.AudioError, match=r"cannot read: permission denied; fix its permissions"):
        audio.load(locked)


def test_offset_past_end_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    sf.write(path, _tone(100, SAMPLE_RATE), SAMPLE_RATE)
    with pytest.raises(audio.AudioError, match="past the end"):
        audio.load(path, offset=500, num_samples=10)


def test_load_row_variants(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * SAMPLE_RATE).astype(np.float32)
    sf.write(path, noise, SAMPLE_RATE, subtype="FLOAT")
    word = {"path": str(path), "offset": 0, "num_samples": 0, "source": ""}
    np.testing.assert_array_equal(audio.load_row(word), noise)
    window = {"path": str(path), "offset": 100, "num_samples": CLIP_SAMPLES, "source": "_background_noise_/x.wav"}
    np.testing.assert_array_equal(audio.load_row(window), noise[100 : 100 + CLIP_SAMPLES])
    for silence in (
        {"path": "", "offset": 0, "num_samples": 0, "source": "digital_silence"},
        {"path": float("nan"), "offset": float("nan"), "num_samples": float("nan"), "source": float("nan")},
    ):
        y = audio.load_row(silence)
        assert y.dtype == np.float32 and y.shape == (CLIP_SAMPLES,) and not y.any()


def test_load_row_pandas_and_namedtuple(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    path = tmp_path / "a.wav"
    sf.write(path, _tone(8000, SAMPLE_RATE), SAMPLE_RATE)
    frame = pd.DataFrame(
        {"path": [str(path), ""], "offset": [0, 0], "num_samples": [0, 0], "source": ["", "digital_silence"]}
    )
    assert audio.load_row(frame.iloc[0]).shape == (8000,)
    rows = list(frame.itertuples(index=False))
    assert audio.load_row(rows[0]).shape == (8000,)
    assert audio.load_row(rows[1]).shape == (CLIP_SAMPLES,)
    Row = namedtuple("Row", "path")
    assert audio.load_row(Row(str(path))).shape == (8000,)


def test_fix_length_positions() -> None:
    x = np.arange(1, 11, dtype=np.float32)
    np.testing.assert_array_equal(audio.fix_length(x, length=14, position="left"), [*range(1, 11), 0, 0, 0, 0])
    np.testing.assert_array_equal(audio.fix_length(x, length=14, position="right"), [0, 0, 0, 0, *range(1, 11)])
    np.testing.assert_array_equal(audio.fix_length(x, length=13, position="center"), [0, *range(1, 11), 0, 0])
    np.testing.assert_array_equal(audio.fix_length(x, length=4, position="left"), [1, 2, 3, 4])
    np.testing.assert_array_equal(audio.fix_length(x, length=4, position="right"), [7, 8, 9, 10])
    np.testing.assert_array_equal(audio.fix_length(x, length=4, position="center"), [4, 5, 6, 7])
    same = audio.fix_length(x, length=10)
    np.testing.assert_array_equal(same, x)
    assert same is not x and same.dtype == np.float32


def test_fix_length_random_is_seeded_and_covers_offsets() -> None:
    x = np.ones(10, dtype=np.float32)
    a = audio.fix_length(x, length=20, position="random", rng=np.random.default_rng(3))
    b = audio.fix_length(x, length=20, position="random", rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.sum() == 10 and a.shape == (20,)
    rng = np.random.default_rng(0)
    starts = {int(np.argmax(audio.fix_length(x, length=20, position="random", rng=rng))) for _ in range(300)}
    assert starts == set(range(11))  # every offset from 0 to 10 occurs
    long = np.arange(30, dtype=np.float32)
    window = audio.fix_length(long, length=10, position="random", rng=5)
    assert window.shape == (10,) and np.all(np.diff(window) == 1)


def test_fix_length_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="position"):
        audio.fix_length(np.zeros(3), position="middle")
    with pytest.raises(ValueError, match="1-D"):
        audio.fix_length(np.zeros((2, 3)))


def test_functions_pickle() -> None:
    for func in (audio.load, audio.load_row, audio.fix_length):
        assert pickle.loads(pickle.dumps(func)) is func


def test_real_clips(shared_data: Path) -> None:
    clips = sorted((shared_data / "speech_commands_v0.01_sample").glob("*/*.wav"))[::30]
    if not clips:
        pytest.skip("no clips in speech_commands_v0.01_sample")
    for path in clips:
        y = audio.load(path)
        assert y.dtype == np.float32 and 0 < y.shape[0] <= CLIP_SAMPLES
        assert 0 < np.abs(y).max() <= 1.0
        assert audio.fix_length(y).shape == (CLIP_SAMPLES,)


def test_load_from_bytes_equals_load_from_file(tmp_path) -> None:
    """Content already in memory (a Spark binaryFile row) decodes exactly like the file."""
    rng = np.random.default_rng(0)
    path = tmp_path / "stereo_44k.wav"
    sf.write(path, rng.uniform(-0.5, 0.5, (44_100, 2)).astype(np.float32), 44_100, subtype="PCM_16")
    from_file = audio.load(path)
    from_bytes = audio.load(path.read_bytes(), name="yes/stereo_44k.wav")
    np.testing.assert_array_equal(from_file, from_bytes)
    with pytest.raises(audio.AudioError, match=r"yes/empty.wav: empty file \(0 bytes\)"):
        audio.load(b"", name="yes/empty.wav")
    with pytest.raises(audio.AudioError, match=r"yes/junk.wav: not a RIFF/WAV file"):
        audio.load(b"not a wav file at all", name="yes/junk.wav")
    with pytest.raises(audio.AudioError, match=r"^<audio bytes>: unreadable WAV: Format not recognised;"):
        audio.load(b"not a wav file at all")  # no name: any format soundfile reads, and none matched
