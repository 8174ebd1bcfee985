"""Per-clip statistics and dataset-level tables: how long, how loud, where the word sits, who speaks.

The course looks at these numbers before it models anything (notebook 1): they decide how
clips are padded, whether levels must be normalised, and which augmentations make sense.

Levels are RMS levels in dB relative to full scale (dBFS): ``20 * log10(rms)``, where a
full-scale sine reads -3.01 dBFS and digital silence reads ``-inf``. The word's position is
found from frame energies: frames whose power lies within ``top_db`` of the clip's loudest
frame are "the word"; the first and last of them give the onset and offset, and the
power-weighted mean time of the frames between them gives the word's centre.

Public API
----------
One clip
    :func:`rms_db`, :func:`word_position`
Many clips (a manifest or a ``datasets.scan`` table)
    :func:`load_clips`, :func:`clip_stats`, :func:`feature_summary`
Tables
    :func:`clips_per_speaker`, :func:`speakers_per_class`, :func:`per_class`

Examples
--------
>>> import numpy as np
>>> from speechlib import stats
>>> from speechlib.config import SAMPLE_RATE
>>> t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
>>> round(stats.rms_db(0.5 * np.sin(2 * np.pi * 440 * t)), 2)
-9.03
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import librosa
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from speechlib import audio, features
from speechlib.config import CLIP_SAMPLES, HOP_LENGTH, SAMPLE_RATE, WIN_LENGTH

__all__ = [
    "STAT_COLUMNS",
    "TOP_DB",
    "clip_stats",
    "clips_per_speaker",
    "feature_summary",
    "load_clips",
    "per_class",
    "rms_db",
    "speakers_per_class",
    "word_position",
]

TOP_DB = 30.0  # dB below the loudest frame that still counts as the word (noise floors sit lower)
BATCH_SIZE = 256  # clips read and measured per numpy pass
_TINY = 1e-20  # power below this is treated as digital silence
# Columns clip_stats adds to the rows of the table it measures.
STAT_COLUMNS = ("duration", "rms_db", "peak_db", "onset", "offset", "centre", "word_length")
# Manifest / scan columns that clip_stats carries over to its result, when present.
_KEEP = ("relpath", "label", "label_id", "word", "speaker", "split", "kind", "source")


# --- one clip ---------------------------------------------------------------------------------------


def _as_waveform(waveform: Any) -> np.ndarray:
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected one waveform of shape (n_samples,), got shape {x.shape}")
    return x


def rms_db(waveform: np.ndarray) -> float:
    """RMS level of a waveform in dB relative to full scale.

    Parameters
    ----------
    waveform : np.ndarray, shape (n_samples,), float in [-1, 1]

    Returns
    -------
    float, dBFS
        ``20 * log10(sqrt(mean(waveform ** 2)))``: -3.01 for a full-scale sine, -9.03 for a sine
        of amplitude 0.5, ``-inf`` for digital silence or an empty waveform.
    """
    x = _as_waveform(waveform).astype(np.float64)
    power = float(np.mean(x * x)) if x.size else 0.0
    return 10.0 * np.log10(power) if power > _TINY else -np.inf


def word_position(
    waveform: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    frame_length: int = WIN_LENGTH,
    hop_length: int = HOP_LENGTH,
    top_db: float = TOP_DB,
) -> dict[str, float]:
    """Where the spoken word sits in a clip, from the energy of short frames.

    Parameters
    ----------
    waveform : np.ndarray, shape (n_samples,), float in [-1, 1]
        One clip (any length; a clip shorter than one frame is one frame).
    sample_rate : int, Hz
        Sampling rate of ``waveform``.
    frame_length, hop_length : int, samples
        Frame size and step of the energy envelope (default 25 ms and 10 ms).
    top_db : float, dB
        Frames whose mean power lies within ``top_db`` of the loudest frame belong to the word.

    Returns
    -------
    dict with float values, s
        ``onset`` (middle of the first loud frame), ``offset`` (middle of the last loud frame)
        and ``centre`` (power-weighted mean time of the frame middles from onset to offset), all
        in seconds from the start of the clip and at most its duration; NaN for digital silence.
        Onset and offset are exact to about half a frame.
    """
    x = _as_waveform(waveform)
    onset, offset, centre = _positions(
        x[None, :], np.array([x.size]), sample_rate=sample_rate, frame_length=frame_length,
        hop_length=hop_length, top_db=top_db,
    )  # fmt: skip
    return {"onset": float(onset[0]), "offset": float(offset[0]), "centre": float(centre[0])}


# --- batches ------------------------------------------------------------------------------------------


def _frame_power(batch: np.ndarray, lengths: np.ndarray, *, frame_length: int, hop_length: int):
    """Mean power of each frame of zero-padded clips; frames that start past a clip's end are masked.

    Returns ``(power, valid, starts)``: power and valid of shape (batch, frames), starts (frames,) in samples.
    """
    # Zeros after the end, so that every sample of every clip lies in some frame (the last frames are partial).
    batch = np.pad(batch, ((0, 0), (0, frame_length)))
    frames = librosa.util.frame(batch, frame_length=frame_length, hop_length=hop_length, axis=-1)
    power = np.mean(np.square(frames, dtype=np.float64), axis=-2)  # (batch, frames)
    starts = np.arange(power.shape[1]) * hop_length
    valid = starts[None, :] < np.maximum(lengths[:, None], 1)
    return power, valid, starts


def _positions(
    batch: np.ndarray,
    lengths: np.ndarray,
    *,
    sample_rate: int,
    frame_length: int,
    hop_length: int,
    top_db: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onset, offset and centre (s) of each zero-padded clip of ``batch``; NaN for silent clips."""
    power, valid, starts = _frame_power(batch, lengths, frame_length=frame_length, hop_length=hop_length)
    power = np.where(valid, power, 0.0)
    peak = power.max(axis=1)
    silent = peak <= _TINY
    loud = valid & (power >= peak[:, None] * 10.0 ** (-top_db / 10.0)) & ~silent[:, None]
    n_frames = power.shape[1]
    first = np.argmax(loud, axis=1)
    last = n_frames - 1 - np.argmax(loud[:, ::-1], axis=1)
    # Times are frame middles: a word edge is then off by at most half a frame (12.5 ms), either way.
    mid = (starts + frame_length / 2.0) / sample_rate
    duration = lengths / sample_rate
    onset = np.minimum(mid[first], duration)
    offset = np.minimum(mid[last], duration)
    index = np.arange(n_frames)[None, :]
    inside = valid & (index >= first[:, None]) & (index <= last[:, None])
    weights = np.where(inside, power, 0.0)
    centre = np.minimum((weights @ mid) / np.maximum(weights.sum(axis=1), _TINY), duration)
    nan = np.where(silent, np.nan, 0.0)
    return onset + nan, offset + nan, centre + nan


def _read(rows: list[dict], sample_rate: int, workers: int) -> list[np.ndarray]:
    """The waveforms of manifest rows, read by a few threads (soundfile releases the GIL)."""

    def read(row: dict) -> np.ndarray:
        return audio.load_row(row, sample_rate=sample_rate)

    if workers <= 1:
        return [read(r) for r in rows]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(read, rows))


def _batches(table: pd.DataFrame, batch_size: int) -> Iterable[list[dict]]:
    records = table.to_dict("records")
    for start in range(0, len(records), batch_size):
        yield records[start : start + batch_size]


def _bar(total: int, desc: str, progress: bool):
    return tqdm(total=total, desc=desc, unit="clip", disable=not progress)  # the finished bar stays: count, rate


def _check_table(table: pd.DataFrame) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame (a manifest or a datasets.scan table), got {type(table)}")
    if "path" not in table.columns:
        raise ValueError(
            f"the table has no 'path' column (columns: {list(table.columns)}); pass a manifest "
            "(split.load_manifest) or a datasets.scan table"
        )


def load_clips(
    table: pd.DataFrame,
    *,
    length: int = CLIP_SAMPLES,
    position: str = "center",
    sample_rate: int = SAMPLE_RATE,
    workers: int = 4,
    progress: bool = False,
) -> np.ndarray:
    """Read the clips of a table, each padded or trimmed to ``length`` samples.

    Parameters
    ----------
    table : pandas.DataFrame
        A manifest (``split.load_manifest``) or a ``datasets.scan`` table: rows with ``path`` and,
        for silence windows, ``offset``, ``num_samples`` and ``source``.
    length : int, samples
        Length of every returned clip (default ``CLIP_SAMPLES``, 1 s).
    position : {"center", "left", "right"}
        Where a short clip sits after padding (see ``audio.fix_length``).
    sample_rate : int, Hz
    workers : int
        Threads reading files.
    progress : bool
        Show a progress bar.

    Returns
    -------
    np.ndarray, shape (len(table), length), float32 in [-1, 1]

    Raises
    ------
    speechlib.audio.AudioError
        A file cannot be read (the message names it).
    """
    _check_table(table)
    out = np.zeros((len(table), length), dtype=np.float32)
    i = 0
    with _bar(len(table), "loading clips", progress) as bar:
        for rows in _batches(table, BATCH_SIZE):
            for x in _read(rows, sample_rate, workers):
                out[i] = audio.fix_length(x, length=length, position=position)
                i += 1
            bar.update(len(rows))
    return out


def clip_stats(
    table: pd.DataFrame,
    *,
    sample_rate: int = SAMPLE_RATE,
    frame_length: int = WIN_LENGTH,
    hop_length: int = HOP_LENGTH,
    top_db: float = TOP_DB,
    batch_size: int = BATCH_SIZE,
    workers: int = 4,
    progress: bool = True,
) -> pd.DataFrame:
    """Duration, loudness and word position of every clip of a manifest or scan table.

    Clips are read in batches of ``batch_size`` (by ``workers`` threads) and measured together in
    one numpy pass per batch, unpadded: a clip's statistics never depend on padding.

    Parameters
    ----------
    table : pandas.DataFrame
        A manifest (``split.load_manifest``) or a ``datasets.scan`` table filtered to readable clips
        (``status != "error"``). Needs ``path``; silence windows use ``offset``, ``num_samples``
        and ``source`` (see ``audio.load_row``).
    sample_rate : int, Hz
    frame_length, hop_length : int, samples
        Frames of the energy envelope (see :func:`word_position`).
    top_db : float, dB
        Threshold of the word's frames below the loudest frame (see :func:`word_position`).
    batch_size : int
        Clips per numpy pass.
    workers : int
        Threads reading files.
    progress : bool
        Show a progress bar (tqdm).

    Returns
    -------
    pandas.DataFrame
        One row per row of ``table``, same index; the columns ``relpath``, ``label``,
        ``label_id``, ``word``, ``speaker``, ``split``, ``kind``, ``source`` that ``table`` has, then

        - ``duration`` (float, s): length of the clip as read (a silence window's length);
        - ``rms_db`` (float, dBFS): RMS level of the whole clip, ``-inf`` for digital silence;
        - ``peak_db`` (float, dBFS): level of the largest sample, ``-inf`` for digital silence;
        - ``onset``, ``offset``, ``centre`` (float, s): the word's position (NaN for digital silence);
        - ``word_length`` (float, s): ``offset - onset``.

    Raises
    ------
    speechlib.audio.AudioError
        A file cannot be read (the message names it; drop ``status == "error"`` rows of a scan).
    ValueError
        ``table`` has no ``path`` column, or ``batch_size`` < 1.
    """
    _check_table(table)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    columns: dict[str, list[np.ndarray]] = {c: [] for c in STAT_COLUMNS}
    with _bar(len(table), "clip statistics", progress) as bar:
        for rows in _batches(table, batch_size):
            clips = _read(rows, sample_rate, workers)
            stats = _batch_stats(clips, sample_rate=sample_rate, frame_length=frame_length, hop_length=hop_length,
                                 top_db=top_db)  # fmt: skip
            for name, values in stats.items():
                columns[name].append(values)
            bar.update(len(rows))
    return _with_stats(table, columns)


def _padded(clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The clips zero-padded into one (batch, longest) float32 array, and their lengths in samples."""
    lengths = np.array([x.size for x in clips])
    batch = np.zeros((len(clips), max(int(lengths.max()), 1)), dtype=np.float32)
    for i, x in enumerate(clips):
        batch[i, : x.size] = x
    return batch, lengths


def _batch_stats(clips: list[np.ndarray], *, sample_rate: int, frame_length: int, hop_length: int,
                 top_db: float) -> dict[str, np.ndarray]:  # fmt: skip
    """Every :data:`STAT_COLUMNS` value of a batch of clips, measured in one numpy pass (padding ignored)."""
    batch, lengths = _padded(clips)
    power = np.einsum("ij,ij->i", batch, batch, dtype=np.float64) / np.maximum(lengths, 1)
    peak = np.abs(batch).max(axis=1).astype(np.float64)
    with np.errstate(divide="ignore"):
        rms = np.where(power > _TINY, 10.0 * np.log10(power), -np.inf)
        peak_db = np.where(peak > 0, 20.0 * np.log10(peak), -np.inf)
    onset, offset, centre = _positions(
        batch, lengths, sample_rate=sample_rate, frame_length=frame_length, hop_length=hop_length,
        top_db=top_db,
    )  # fmt: skip
    return {"duration": lengths / sample_rate, "rms_db": rms, "peak_db": peak_db, "onset": onset,
            "offset": offset, "centre": centre, "word_length": offset - onset}  # fmt: skip


def _with_stats(table: pd.DataFrame, columns: dict[str, list[np.ndarray]]) -> pd.DataFrame:
    """The kept columns of ``table`` (same index) followed by the statistics, batches joined."""
    out = table[[c for c in _KEEP if c in table.columns]].copy()
    for name in STAT_COLUMNS:
        out[name] = np.concatenate(columns[name]) if columns[name] else np.empty(0)
    return out


def feature_summary(waveforms: np.ndarray, *, kind: str = "mfcc", **params: Any) -> np.ndarray:
    """One fixed-length vector per clip: the mean and standard deviation over time of each feature bin.

    Simple per-clip features for an embedding (``plot.embed``) or a baseline classifier.

    Parameters
    ----------
    waveforms : np.ndarray, shape (N, n_samples), float32 in [-1, 1]
        Equal-length clips (``load_clips``).
    kind : str
        Feature kind of ``speechlib.features`` (default ``"mfcc"``: 13 coefficients).
    **params
        Keyword parameters of the feature (``features.default_params(kind)``).

    Returns
    -------
    np.ndarray, shape (N, 2 * bins), float32
        ``[mean of bin 0..bins-1, std of bin 0..bins-1]``, e.g. (N, 26) for the default MFCC.
    """
    waveforms = np.asarray(waveforms, dtype=np.float32)
    if waveforms.ndim != 2 or waveforms.shape[0] == 0:
        raise ValueError(f"waveforms must be (N, n_samples) with N >= 1, got shape {waveforms.shape}")
    return features.summary(features.compute_batch(waveforms, kind, **params))


# --- tables ---------------------------------------------------------------------------------------------


def _speaker_rows(table: pd.DataFrame) -> pd.DataFrame:
    if "speaker" not in table.columns:
        raise ValueError(f"the table has no 'speaker' column (columns: {list(table.columns)})")
    speaker = table["speaker"].fillna("").astype(str)
    return table[speaker != ""]


def clips_per_speaker(table: pd.DataFrame) -> pd.Series:
    """Number of clips of each speaker, largest first.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows with a ``speaker`` column (a manifest or a ``datasets.scan`` table); rows with no
        speaker (silence windows, noise recordings) are ignored.

    Returns
    -------
    pandas.Series of int
        Index: speaker id (name ``speaker``); values: clips; sorted descending (ties by speaker id).
    """
    rows = _speaker_rows(table)
    counts = rows.groupby("speaker").size().rename("clips")
    return counts.sort_index().sort_values(ascending=False, kind="stable").astype(int)


def speakers_per_class(table: pd.DataFrame, *, by: str = "label", order: Iterable[str] | None = None) -> pd.Series:
    """Number of distinct speakers of each class (or word).

    Parameters
    ----------
    table : pandas.DataFrame
        Rows with a ``speaker`` column and the ``by`` column; rows with no speaker are ignored.
    by : str
        The grouping column: ``"label"`` (a manifest's class) or ``"word"``.
    order : iterable of str, optional
        Index order of the result (e.g. ``split.load_info(...)["labels"]``); classes with no
        speaker get 0. Default: sorted.

    Returns
    -------
    pandas.Series of int
        Index: class; values: distinct speakers.
    """
    if by not in table.columns:
        raise ValueError(f"the table has no {by!r} column (columns: {list(table.columns)}); pass by='label' or 'word'")
    rows = _speaker_rows(table)
    counts = rows.groupby(by)["speaker"].nunique().rename("speakers")
    if order is not None:
        counts = counts.reindex(list(order), fill_value=0)
    return counts.astype(int)


def per_class(stats: pd.DataFrame, *, by: str = "label", order: Iterable[str] | None = None) -> pd.DataFrame:
    """Per-class summary of :func:`clip_stats`: clip count and medians of the statistics.

    Parameters
    ----------
    stats : pandas.DataFrame
        The result of :func:`clip_stats`.
    by : str
        Grouping column (``"label"`` or ``"word"``).
    order : iterable of str, optional
        Row order (default: sorted).

    Returns
    -------
    pandas.DataFrame
        Index: class; columns ``clips`` (int), ``speakers`` (int, when ``stats`` has speakers), and
        the median ``duration`` (s), ``rms_db`` (dBFS), ``centre`` (s) and ``word_length`` (s);
        infinite levels (digital silence) are left out of the medians.
    """
    if by not in stats.columns:
        raise ValueError(f"the table has no {by!r} column (columns: {list(stats.columns)})")
    missing = [c for c in ("duration", "rms_db", "centre", "word_length") if c not in stats.columns]
    if missing:
        raise ValueError(f"columns {missing} are missing: pass the result of stats.clip_stats")
    finite = stats.replace([np.inf, -np.inf], np.nan)
    grouped = finite.groupby(by)
    out = pd.DataFrame({"clips": grouped.size()})
    if "speaker" in stats.columns:
        out["speakers"] = speakers_per_class(stats, by=by).reindex(out.index, fill_value=0)
    for column in ("duration", "rms_db", "centre", "word_length"):
        out[f"median_{column}"] = grouped[column].median()
    if order is not None:
        out = out.reindex(list(order))
    for column in ("clips", "speakers"):
        if column in out.columns:
            out[column] = out[column].fillna(0).astype(int)
    return out
