"""Read audio files into clean waveforms: decode, mono, resample, pad or trim.

Every stage of speechlib (the featurizer, the Spark job, training, inference)
reads audio through these functions, so every clip reaches the features in
one format: a 1-D ``float32`` array in [-1, 1] at ``SAMPLE_RATE`` (16 kHz).

- :func:`load` — one file (or a window of it) as a mono 16 kHz float32 waveform.
- :func:`load_row` — the waveform of one manifest row (word clip, noise window or digital silence).
- :func:`fix_length` — pad with zeros or trim to a fixed length (1 s by default).
- :class:`AudioError` — raised for a file that cannot be used; its message names the file.

Examples
--------
>>> from speechlib import audio
>>> waveform = audio.load("yes/0a7c2a8d_nohash_0.wav")  # doctest: +SKIP
>>> clip = audio.fix_length(waveform)  # doctest: +SKIP
>>> clip.shape, clip.dtype  # doctest: +SKIP
((16000,), dtype('float32'))
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from speechlib.config import CLIP_SAMPLES, CLIP_SECONDS, SAMPLE_RATE

__all__ = ["DIGITAL_SILENCE", "POSITIONS", "AudioError", "fix_length", "load", "load_row"]

DIGITAL_SILENCE = "digital_silence"  # manifest `source` of an all-zero silence clip (no file)
POSITIONS = ("center", "left", "right", "random")  # where fix_length puts the clip

_CHECK_HINT = "run `speechlib data check <dataset folder>` to list every unusable file"


class AudioError(ValueError):
    """A file that cannot be read as audio; the message names the file, the problem and what to do."""


def _error(path: Path | str, problem: str) -> AudioError:
    return AudioError(f"{path}: {problem}. Replace or remove the file; {_CHECK_HINT}.")


def load(
    path: str | Path | bytes,
    *,
    sample_rate: int = SAMPLE_RATE,
    offset: int = 0,
    num_samples: int = 0,
    name: str | None = None,
) -> np.ndarray:
    """Read an audio file as a mono float32 waveform at ``sample_rate``.

    Any format soundfile reads is accepted (16-bit, 8-bit, 24-bit, float
    WAV, ...). Several channels are averaged to one; another sample rate is
    resampled with soxr (high quality). Only the requested window is decoded,
    so cutting 1-s windows out of minute-long noise recordings is cheap.

    Parameters
    ----------
    path : str, Path or bytes
        The audio file, or its content already in memory (for example a
        Spark ``binaryFile`` row).
    sample_rate : int, Hz
        Rate of the returned waveform (default ``SAMPLE_RATE``, 16 kHz).
    offset : int, samples
        First sample to read, counted at ``sample_rate`` (for a 16 kHz file,
        the file's own sample index).
    num_samples : int, samples
        How many samples to read, counted at ``sample_rate``; 0 reads to the
        end of the file. A window that runs past the end of the file is
        returned shorter (pad it with :func:`fix_length`).
    name : str, optional
        The file's name in error messages (default: ``path``; give it when
        ``path`` is bytes).

    Returns
    -------
    waveform : np.ndarray, shape (n_samples,), float32 in [-1, 1]

    Raises
    ------
    AudioError
        The file is missing, unreadable, not audio, empty, holds non-finite
        samples, or ``offset`` lies past its end. The message names the file.
    """
    if isinstance(path, bytes | bytearray):
        source: Path | io.BytesIO = io.BytesIO(path)
        path = name or "<audio bytes>"
        if not source.getbuffer().nbytes:
            raise _error(path, "the file is empty (0 bytes)")
    else:
        path = source = Path(path)
        if not path.is_file():
            raise _error(name or path, "file not found" if not path.exists() else "not a regular file")
        path = name or path
    if offset < 0 or num_samples < 0:
        raise ValueError(f"{path}: offset ({offset}) and num_samples ({num_samples}) must be >= 0")
    try:
        with sf.SoundFile(source) as f:
            file_rate, file_frames = f.samplerate, f.frames
            if file_rate == sample_rate:
                start, frames = offset, num_samples
            else:  # the window in the file's own samples, with a little context for the resampler
                start = math.floor(offset * file_rate / sample_rate)
                frames = math.ceil(num_samples * file_rate / sample_rate) + 1 if num_samples else 0
            if file_frames == 0:
                raise _error(path, "the file holds no audio samples (empty)")
            if start >= file_frames:
                raise _error(
                    path, f"offset {offset} is past the end of the file ({file_frames} samples at {file_rate} Hz)"
                )
            f.seek(start)
            data = f.read(frames if frames else -1, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, TypeError) as exc:  # libsndfile: truncated, not RIFF, unsupported
        raise _error(path, f"cannot decode audio ({exc})") from exc
    if data.shape[0] == 0:
        raise _error(path, "no audio samples could be read (truncated file?)")
    waveform = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(waveform).all():
        raise _error(path, "the audio holds NaN or infinite samples")
    if file_rate != sample_rate:
        import soxr  # installed with librosa; imported here so plain 16 kHz reading never needs it

        waveform = soxr.resample(waveform, file_rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
        if num_samples:
            waveform = waveform[:num_samples]
    # Float files may exceed full scale; resampling may overshoot by a hair.
    np.clip(waveform, -1.0, 1.0, out=waveform)
    return np.ascontiguousarray(waveform, dtype=np.float32)


def _field(row: Any, name: str, default: Any) -> Any:
    """``row[name]`` for a mapping / pandas Series, ``row.name`` for a namedtuple; NaN/None -> default."""
    if isinstance(row, Mapping) or (hasattr(row, "__getitem__") and not isinstance(row, tuple)):
        try:
            value = row[name]
        except (KeyError, IndexError):
            value = default
    else:
        value = getattr(row, name, default)
    if value is None or type(value).__name__ == "NAType" or (isinstance(value, float) and math.isnan(value)):
        return default
    return value


def load_row(row: Any, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The waveform of one manifest row.

    Parameters
    ----------
    row : mapping, pandas Series or namedtuple
        A manifest row (see ``speechlib.split``) with the fields ``path``,
        ``offset``, ``num_samples`` and ``source``. Missing ``offset`` /
        ``num_samples`` mean the whole file.
    sample_rate : int, Hz

    Returns
    -------
    waveform : np.ndarray, shape (n_samples,), float32 in [-1, 1]
        The whole clip for a word row; the window ``[offset, offset +
        num_samples)`` of the noise recording for a silence row; zeros of
        one clip length (``num_samples`` when given) for digital silence
        (``path`` empty or ``source == "digital_silence"``). Not padded:
        call :func:`fix_length` for a fixed length.

    Raises
    ------
    AudioError
        The file cannot be used (see :func:`load`).
    """
    path = str(_field(row, "path", "") or "")
    source = str(_field(row, "source", "") or "")
    offset = int(_field(row, "offset", 0) or 0)
    num_samples = int(_field(row, "num_samples", 0) or 0)
    if not path or source == DIGITAL_SILENCE:
        length = num_samples or round(sample_rate * CLIP_SECONDS)
        return np.zeros(length, dtype=np.float32)
    return load(path, sample_rate=sample_rate, offset=offset, num_samples=num_samples)


def fix_length(
    waveform: np.ndarray,
    *,
    length: int = CLIP_SAMPLES,
    position: str = "center",
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Pad with zeros or trim a waveform to exactly ``length`` samples.

    Parameters
    ----------
    waveform : np.ndarray, shape (n_samples,)
    length : int, samples
        Target length (default ``CLIP_SAMPLES``, 1 s at 16 kHz).
    position : {"center", "left", "right", "random"}
        Where the clip sits in the output. A short clip is padded with
        zeros: "center" splits the zeros evenly (the extra one goes to the
        end), "left" puts the clip first (zeros after it), "right" puts it
        last, "random" at a uniform random offset (data augmentation in
        training). A long clip is trimmed the same way: "center" keeps the
        middle, "left" the start, "right" the end, "random" a uniform random
        window.
    rng : np.random.Generator or int, optional
        Random source for ``position="random"`` (an int seeds a new
        generator). ``None`` draws fresh OS entropy: not reproducible.

    Returns
    -------
    np.ndarray, shape (length,), float32
        Always a new array (never a view of ``waveform``).
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"fix_length expects a 1-D waveform, got shape {waveform.shape}")
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    n = waveform.shape[0]
    extra = abs(length - n)  # zeros to add, or samples to drop
    if position == "center":
        start = extra // 2
    elif position == "left":
        start = 0
    elif position == "right":
        start = extra
    else:
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        start = int(rng.integers(0, extra + 1))
    if n >= length:
        return waveform[start : start + length].copy()
    out = np.zeros(length, dtype=np.float32)
    out[start : start + n] = waveform
    return out
