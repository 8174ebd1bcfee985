"""Read audio files into clean waveforms: decode, mono, resample, pad or trim.

Every stage of speechlib (the featurizer, the Spark job, training, inference)
reads audio through these functions, so every clip reaches the features in
one format: a 1-D ``float32`` array in [-1, 1] at ``SAMPLE_RATE`` (16 kHz).

- :func:`load` — one file (or a window of it) as a mono 16 kHz float32 waveform.
- :func:`inspect` — whether a file is usable audio, and its format: the one verdict
  that every command gives on a file (``load`` gives the same one).
- :func:`load_row` — the waveform of one manifest row (word clip, noise window or digital silence).
- :func:`fix_length` — pad with zeros or trim to a fixed length (1 s by default).
- :class:`AudioError` — raised for a file that cannot be used; its message names the file,
  and its ``reason`` is the sentence (what is wrong, what to do) every command prints.

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
import os
import stat
import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
import soxr

from speechlib.config import AUDIO_SUFFIXES, CLIP_SAMPLES, CLIP_SECONDS, SAMPLE_RATE
from speechlib.manifest import DIGITAL_SILENCE

__all__ = [
    "CONVERT_HINT",
    "DIGITAL_SILENCE",
    "POSITIONS",
    "AudioError",
    "AudioInfo",
    "fix_length",
    "inspect",
    "load",
    "load_row",
]

POSITIONS = ("center", "left", "right", "random")  # where fix_length puts the clip
CONVERT_HINT = "convert it to 16 kHz mono 16-bit WAV or remove it"
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # the only sample formats that can hold NaN or infinity
CHECK_BLOCK_FRAMES = 1 << 16  # frames decoded at a time when inspect() checks float samples
# First bytes of common non-WAV files, to say what a misnamed file probably is.
MAGIC = [
    (b"ID3", "an MP3"),
    (b"\xff\xfb", "an MP3"),
    (b"\xff\xf3", "an MP3"),
    (b"\xff\xf2", "an MP3"),
    (b"fLaC", "a FLAC file"),
    (b"OggS", "an Ogg file"),
    (b"FORM", "an AIFF file"),
    (b"\x1aE\xdf\xa3", "a WebM/Matroska file"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7z archive"),
]

# The verdicts on a file, one sentence each: what is wrong and what to do. Every command prints these.
NOT_FOUND = "file not found; check the path, or run `speechlib split` again if the dataset changed"
BROKEN_LINK = "broken symbolic link (its target {target} does not exist); fix the link or remove it"
A_FOLDER = "a folder, not an audio file; rename it or move it out of the dataset"
NOT_REGULAR = "not a regular file (a device, FIFO or socket); remove it"
PERMISSION = "cannot read: permission denied; fix its permissions (chmod a+r) or remove it"
UNREADABLE = "cannot read: {why}; copy the file again or remove it"
EMPTY = "empty file (0 bytes); download it again or remove it"
NO_FRAMES = "no audio (0 frames); remove it"
NOT_FINITE = "NaN or infinite samples; convert it again from the original recording or remove it"


class AudioError(ValueError):
    """A file that cannot be used as audio.

    ``str(error)`` is ``"<file>: <reason>"``; ``reason`` alone is the
    sentence that every command prints for that file (what is wrong and what
    to do), the same as the ``reason`` of ``speechlib data check``.

    Attributes
    ----------
    path : str
        The file, as it was named to the function that raised.
    reason : str
        What is wrong with it and what to do.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple:  # picklable across worker processes
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class AudioInfo:
    """The format of a usable audio file, read from its header by :func:`inspect`.

    Attributes
    ----------
    sample_rate : int, Hz
    channels : int
    frames : int
        Samples per channel.
    subtype : str
        soundfile's name of the sample format, e.g. ``"PCM_16"``.
    subtype_info : str
        Its description, e.g. ``"Signed 16 bit PCM"``.
    """

    sample_rate: int
    channels: int
    frames: int
    subtype: str
    subtype_info: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _is_wav_name(name: str) -> bool:
    return str(name).lower().endswith(AUDIO_SUFFIXES)


def _open_binary(path: Path) -> BinaryIO:
    """Open a file for reading (its own function so that tests can simulate a permission error)."""
    return open(path, "rb")  # closed by the caller


def _path_problem(path: Path) -> str:
    """The verdict on what sits at ``path`` before any byte is read; ``""`` for a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return NOT_FOUND
    except OSError as err:
        return UNREADABLE.format(why=err.strerror or err)
    if os.path.islink(path):
        if not path.exists():
            return BROKEN_LINK.format(target=os.readlink(path))
        st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        return A_FOLDER
    if not stat.S_ISREG(st.st_mode):
        return NOT_REGULAR
    return ""


def _riff_problem(f: BinaryIO, size: int) -> str:
    """Why a file is not a complete RIFF/WAVE file, from its chunk headers; ``""`` when it is.

    This is a check of the chunk sizes against the file size, not a WAV reader
    (soundfile reads the audio format): a file whose ``data`` chunk claims more
    bytes than the file holds is truncated, and soundfile would still report
    (and return) frames for it.
    """
    f.seek(0)
    head = f.read(12)
    if head[:4] not in (b"RIFF", b"RIFX", b"RF64"):
        what = _guess_content(head + f.read(52))
        return f"not a RIFF/WAV file: it starts with {head[:4]!r} ({what}); {CONVERT_HINT}"
    if len(head) < 12 or head[8:12] != b"WAVE":
        return f"not a RIFF/WAV file: a RIFF file of type {head[8:12]!r}, not WAVE; {CONVERT_HINT}"
    if head[:4] == b"RF64":  # 64-bit sizes live in a ds64 chunk: leave those files to soundfile
        return ""
    endian = "<" if head[:4] == b"RIFF" else ">"
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8:
            break
        (chunk_size,) = struct.unpack(endian + "I", chunk[4:])
        if chunk[:4] == b"data":
            have = size - (pos + 8)
            if chunk_size != 0xFFFFFFFF and chunk_size > have:  # 0xFFFFFFFF: size unknown (streamed)
                return (
                    f"truncated: header says {chunk_size:,} bytes of audio, file has {have:,}; "
                    "download or copy it again, or remove it"
                )
            return ""
        pos += 8 + chunk_size + (chunk_size & 1)
    return (
        f"truncated: the file ends ({size:,} bytes) before its audio data begins; "
        "download or copy it again, or remove it"
    )


def _guess_content(head: bytes) -> str:
    for magic, what in MAGIC:
        if head.startswith(magic):
            return f"looks like {what}"
    if head[4:8] == b"ftyp":
        return "looks like an MP4/M4A file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown content"
    return "looks like text" if all(c.isprintable() or c.isspace() for c in text) else "unknown content"


def _decoder_message(err: Exception) -> str:
    """libsndfile's reason without the file name it was given (a path, or ``<_io.BytesIO object at ...>``)."""
    text = getattr(err, "error_string", "") or str(err)
    return text.strip().rstrip(".") or type(err).__name__


@contextmanager
def _open(source: str | os.PathLike | bytes | bytearray, name: str | None) -> Iterator[tuple[str, sf.SoundFile]]:
    """Validate a file up to its header and yield ``(name, open SoundFile)``; raise :class:`AudioError`.

    The checks, in order (the first that fails is the verdict): the entry
    exists, is not a broken link, a folder or another non-regular file; it
    can be read; it is not empty; a ``.wav`` is a complete RIFF/WAVE file
    (``data`` chunk within the file); soundfile can open it; it holds frames.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        label = name or "<audio bytes>"
        wav = _is_wav_name(name or "")
        f: BinaryIO = io.BytesIO(source)
        size = len(source)
    else:
        path = Path(source)
        label = name or str(path)
        wav = _is_wav_name(name or path.name)
        problem = _path_problem(path)
        if problem:
            raise AudioError(label, problem)
        try:
            f = _open_binary(path)
            size = os.fstat(f.fileno()).st_size
        except PermissionError:
            raise AudioError(label, PERMISSION) from None
        except OSError as err:
            raise AudioError(label, UNREADABLE.format(why=err.strerror or err)) from None
    with f:
        if size == 0:
            raise AudioError(label, EMPTY)
        try:
            problem = _riff_problem(f, size) if wav else ""
            f.seek(0)
        except PermissionError:
            raise AudioError(label, PERMISSION) from None
        except OSError as err:
            raise AudioError(label, UNREADABLE.format(why=err.strerror or err)) from None
        if problem:
            raise AudioError(label, problem)
        try:
            sound = sf.SoundFile(f)
        except (sf.SoundFileError, RuntimeError, TypeError) as err:  # libsndfile: not audio, unsupported format
            raise AudioError(label, f"unreadable WAV: {_decoder_message(err)}; {CONVERT_HINT}") from None
        with sound:
            if sound.frames == 0:
                raise AudioError(label, NO_FRAMES)
            yield label, sound


def inspect(source: str | os.PathLike | bytes, *, name: str | None = None) -> AudioInfo:
    """Say whether a file is usable audio, and its format; the one verdict every command gives.

    The header and the chunk sizes are read; the samples are decoded only for
    float files (``FLOAT``/``DOUBLE``, the only formats that can hold NaN or
    infinity). :func:`load` gives the same verdict on the same file, with the
    same sentence, so ``speechlib data check``, ``split``, ``featurize``,
    ``spark-featurize``, ``evaluate``, ``predict`` and ``submit`` agree.

    Parameters
    ----------
    source : str, Path or bytes
        The file, or its content in memory.
    name : str, optional
        The file's name in the error (default: ``source``; give it for bytes).
        A name ending in ``.wav`` must be a RIFF/WAVE file.

    Returns
    -------
    AudioInfo

    Raises
    ------
    AudioError
        The file cannot be used; ``reason`` says why and what to do.
    """
    with _open(source, name) as (label, sound):
        info = AudioInfo(
            sample_rate=int(sound.samplerate),
            channels=int(sound.channels),
            frames=int(sound.frames),
            subtype=str(sound.subtype),
            subtype_info=str(sf.available_subtypes().get(sound.subtype, sound.subtype)),
        )
        if sound.subtype in FLOAT_SUBTYPES:
            try:
                for block in sound.blocks(blocksize=CHECK_BLOCK_FRAMES, dtype="float32", always_2d=True):
                    if not np.isfinite(block).all():
                        raise AudioError(label, NOT_FINITE)
            except (sf.SoundFileError, RuntimeError) as err:
                raise AudioError(label, f"unreadable WAV: {_decoder_message(err)}; {CONVERT_HINT}") from None
    return info


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
    WAV, FLAC, ...), but a file named ``.wav`` must be a complete RIFF/WAVE
    file: the file is checked as :func:`inspect` does, with the same verdicts.
    Several channels are averaged to one; another sample rate is resampled
    with soxr (high quality). Only the requested window is decoded, so
    cutting 1-s windows out of minute-long noise recordings is cheap.

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
        The file is missing, unreadable, not audio, empty, truncated, holds
        non-finite samples (in the window read), or ``offset`` lies past its
        end. ``reason`` is the sentence of :func:`inspect`.
    """
    if offset < 0 or num_samples < 0:
        raise ValueError(f"{name or path}: offset ({offset}) and num_samples ({num_samples}) must be >= 0")
    with _open(path, name) as (label, f):
        file_rate = f.samplerate
        data = _read_window(f, label, offset=offset, num_samples=num_samples, sample_rate=sample_rate)
    waveform = _finite_mono(data, label)
    if file_rate != sample_rate:
        waveform = soxr.resample(waveform, file_rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
        if num_samples:
            waveform = waveform[:num_samples]
    # Float files may exceed full scale; resampling may overshoot by a hair.
    np.clip(waveform, -1.0, 1.0, out=waveform)
    return np.ascontiguousarray(waveform, dtype=np.float32)


def _read_window(f: sf.SoundFile, label: str, *, offset: int, num_samples: int, sample_rate: int) -> np.ndarray:
    """Decode the window of ``num_samples`` at ``sample_rate`` from ``offset`` (0: to the end), (frames, channels)."""
    file_rate, file_frames = f.samplerate, f.frames
    if file_rate == sample_rate:
        start, frames = offset, num_samples
    else:  # the window in the file's own samples, with a little context for the resampler
        start = math.floor(offset * file_rate / sample_rate)
        frames = math.ceil(num_samples * file_rate / sample_rate) + 1 if num_samples else 0
    if start >= file_frames:
        raise AudioError(
            label,
            f"offset {offset} is past the end of the file ({file_frames} samples at {file_rate} Hz); "
            "run `speechlib split` again if the recording changed",
        )
    try:
        f.seek(start)
        return f.read(frames if frames else -1, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioError(label, f"unreadable WAV: {_decoder_message(err)}; {CONVERT_HINT}") from None


def _finite_mono(data: np.ndarray, label: str) -> np.ndarray:
    """The decoded (frames, channels) samples averaged to one channel; refused when empty or not finite."""
    if data.shape[0] == 0:
        raise AudioError(label, "no audio samples could be read; download or copy it again, or remove it")
    waveform = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(waveform).all():
        raise AudioError(label, NOT_FINITE)
    return waveform


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
