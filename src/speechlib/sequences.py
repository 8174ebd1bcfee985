"""Word sequences: utterances of 2-6 spoken words built from one split's clips, and their word error rate.

The course's data are one word per second. :class:`SequenceBuilder` joins
them into sentences on the fly: a few clips of one split (train, cv or
test: speakers never cross splits), each trimmed to its speech, joined
with random pauses and laid on that split's own background noise at a
random SNR. The transcript and the time of every word are kept. An
utterance is a pure function of the builder's seed and its index, so a
training run sees the same data whether or not it was resumed, and cv
and test sets are written once (:func:`fixed_set`) and read back.

Building
    :func:`trim_speech` (energy-based, ``librosa.effects.trim``),
    :class:`SequenceBuilder` (:meth:`~SequenceBuilder.utterance`,
    :meth:`~SequenceBuilder.batch`), :class:`Utterance`.
Fixed sets
    :func:`fixed_set` writes a folder of WAV files with ``utterances.csv``
    and ``words.csv`` (the timings) atomically, or reads the one written
    before; :func:`default_sets_dir`.
Scoring
    :func:`word_errors` — WER with its substitutions, deletions and
    insertions (``jiwer``); :func:`to_labels` maps words to a classifier's
    labels (a word it does not know becomes ``unknown``), so a keyword
    detector and a CTC model are scored on the same sequences.

The CTC model that reads these utterances is in ``speechlib.ctc``.

Example
-------
>>> from speechlib import sequences
>>> builder = sequences.SequenceBuilder("data/work/synthetic/features/logmel", "train")  # doctest: +SKIP
>>> u = builder.utterance(0)  # doctest: +SKIP
>>> u.transcript, round(u.duration, 2)  # doctest: +SKIP
('four house no', 2.31)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jiwer
import librosa
import numpy as np
import pandas as pd
import soundfile

from speechlib import audio, augment, config, inference, stream, train
from speechlib.store import FeatureStore

__all__ = [
    "MAX_WORDS",
    "MIN_WORDS",
    "SET_SIZES",
    "SequenceBuilder",
    "Utterance",
    "default_sets_dir",
    "fixed_set",
    "label_errors",
    "paired_word_errors",
    "standard_sets",
    "to_labels",
    "trim_speech",
    "word_errors",
]

MIN_WORDS, MAX_WORDS = 2, 6  # words per utterance, uniform in this range
PAUSE_SECONDS = (0.05, 0.35)  # noise alone between two words, uniform
EDGE_SECONDS = (0.1, 0.3)  # noise alone before the first and after the last word, uniform
MAX_SECONDS = 6.0  # every utterance fits this length; training batches and the fixed sets are padded to it with noise
SNR_DB = (5.0, 20.0)  # speech against the noise, one draw per utterance (every word at that SNR)
NOISE_RMS = stream.NOISE_RMS  # level of the noise bed (-40 dBFS), as the streaming benchmark's
TRIM_TOP_DB = 30.0  # a 10-ms frame within 30 dB of the clip's loudest frame is speech
TRIM_MARGIN_SECONDS = 0.03  # kept on both sides of the speech: the soft onset and release of a word
SET_SIZES = {"cv": 100, "test": 150}  # utterances of the fixed sets (small mode: SMALL_SET_SIZES)
SMALL_SET_SIZES = {"cv": 24, "test": 32}
SETS_FORMAT = "speechlib-sequences"
SETS_FORMAT_VERSION = 1


def trim_speech(waveform: np.ndarray, *, top_db: float = TRIM_TOP_DB, margin_seconds: float = TRIM_MARGIN_SECONDS,
                sample_rate: int = config.SAMPLE_RATE) -> tuple[int, int]:  # fmt: skip
    """Where the speech of a clip is: its energy above ``top_db`` below the loudest frame, with a margin.

    ``librosa.effects.trim`` on 25-ms frames every 10 ms (the log-mel's frames).

    Parameters
    ----------
    waveform : np.ndarray, shape (n_samples,), float32 in [-1, 1]
    top_db : float, dB
    margin_seconds : float, seconds
    sample_rate : int, Hz

    Returns
    -------
    (start, stop) : int, samples
        ``waveform[start:stop]`` is the word; the whole clip when it is silent.
    """
    waveform = np.asarray(waveform, np.float32)
    if not len(waveform) or not np.any(waveform):
        return 0, len(waveform)
    _, (start, stop) = librosa.effects.trim(waveform, top_db=top_db, frame_length=config.WIN_LENGTH,
                                            hop_length=config.HOP_LENGTH)  # fmt: skip
    margin = round(margin_seconds * sample_rate)
    start, stop = max(0, int(start) - margin), min(len(waveform), int(stop) + margin)
    return (start, stop) if stop > start else (0, len(waveform))


@dataclasses.dataclass
class Utterance:
    """One built utterance.

    Attributes
    ----------
    waveform : np.ndarray, shape (n_samples,), float32 in [-1, 1]
    words : list of str
        The spoken words, in order.
    starts, stops : np.ndarray, shape (n_words,), seconds
        Where each (trimmed) word lies in ``waveform``.
    speakers, relpaths : list of str
        The speaker and the clip (relative to the dataset) of each word.
    snr_db : float, dB
    sample_rate : int, Hz
    """

    waveform: np.ndarray
    words: list[str]
    starts: np.ndarray
    stops: np.ndarray
    speakers: list[str]
    relpaths: list[str]
    snr_db: float
    sample_rate: int = config.SAMPLE_RATE

    @property
    def transcript(self) -> str:
        """The words joined by spaces."""
        return " ".join(self.words)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.waveform) / self.sample_rate

    def timings(self) -> pd.DataFrame:
        """One row per word: ``word``, ``start``, ``stop`` (s), ``speaker``, ``relpath``."""
        return pd.DataFrame({"word": self.words, "start": self.starts, "stop": self.stops,
                             "speaker": self.speakers, "relpath": self.relpaths})  # fmt: skip


class SequenceBuilder:
    """Utterances of 2-6 words from one split of a feature store: its clips only, on its own noise.

    Every word clip of the split (silence rows and augmented copies left out)
    is read once from its file and trimmed to its speech (:func:`trim_speech`).
    An utterance draws ``MIN_WORDS``-``MAX_WORDS`` clips at random (any
    speakers of the split), pauses of ``pause_seconds`` between them and
    ``EDGE_SECONDS`` of noise at both ends, and one SNR from ``snr_db``; the
    noise bed is the split's own background noise
    (``speechlib.train.noise_bank``: its noise regions, or its silence clips
    in the test-set layout) at ``NOISE_RMS``, each word scaled so that its rms
    over its trimmed samples is ``snr_db`` above it.

    Parameters
    ----------
    store_path : str or Path
        A feature store (``speechlib.pipeline.prepare``); its manifest names the clips.
    split : str
        ``train``, ``cv`` or ``test``.
    vocabulary : sequence of str, optional
        The words a model knows; clips of other words are left out. Default:
        every word of the split, sorted.
    seed : int
        Utterance ``i`` is a function of ``(seed, i)``.
    words : (int, int)
        Fewest and most words per utterance.
    pause_seconds, snr_db : (float, float)
        Uniform ranges.
    max_clips : int, optional
        Read only a random subset of the split's clips (quicker, for tests).
    max_seconds : float, seconds
        No utterance is longer: words are dropped from its end (down to the
        fewest) until it fits. :meth:`batch` pads every utterance to it, so a
        model is always trained on one input length (one traced graph).

    Raises
    ------
    ValueError
        The split has no word clips of the vocabulary, or no background noise.
    """

    def __init__(
        self,
        store_path: str | Path,
        split: str,
        *,
        vocabulary: Sequence[str] | None = None,
        seed: int = config.SEED,
        words: tuple[int, int] = (MIN_WORDS, MAX_WORDS),
        pause_seconds: tuple[float, float] = PAUSE_SECONDS,
        snr_db: tuple[float, float] = SNR_DB,
        max_clips: int | None = None,
        max_seconds: float = MAX_SECONDS,
    ) -> None:
        fs = FeatureStore(store_path)
        self.store_path, self.split, self.seed = Path(store_path), split, int(seed)
        self.params, self.kind, self.normalization = fs.params, fs.kind, fs.normalization
        self.sample_rate = int(self.params.get("sample_rate", config.SAMPLE_RATE))
        self.words_range, self.pause_seconds, self.snr_db = tuple(words), tuple(pause_seconds), tuple(snr_db)
        self.max_samples = round(float(max_seconds) * self.sample_rate)
        if not 1 <= self.words_range[0] <= self.words_range[1]:
            raise ValueError(f"words={words}: give (fewest, most) with 1 <= fewest <= most")
        rows = fs.manifest(split)
        rows = rows[(rows["augment"] == 0) & (rows["word"].fillna("") != "")]
        self.vocabulary = sorted(set(rows["word"])) if vocabulary is None else list(vocabulary)
        rows = rows[rows["word"].isin(self.vocabulary)]
        if max_clips is not None and len(rows) > max_clips:
            rows = rows.sample(int(max_clips), random_state=self.seed)
        if rows.empty:
            raise ValueError(f"{store_path}: split {split!r} has no word clips of the vocabulary {self.vocabulary}")
        self.rows = rows.reset_index(drop=True)[["word", "speaker", "relpath", "label"]]
        self._clips = []
        for r in rows.to_dict("records"):
            clip = audio.load_row(r, sample_rate=self.sample_rate)
            start, stop = trim_speech(clip, sample_rate=self.sample_rate)
            self._clips.append(clip[start:stop].copy())
        self._levels = np.array([augment.rms(c) for c in self._clips])
        self.noise = train.noise_bank(fs, split)
        if self.noise is None:
            raise ValueError(f"{store_path}: split {split!r} has no background noise to build utterances on")

    def __repr__(self) -> str:
        return (f"SequenceBuilder({self.split!r}: {len(self._clips)} clips of {self.rows['speaker'].nunique()} "
                f"speakers, {len(self.vocabulary)} words, seed {self.seed})")  # fmt: skip

    @property
    def speakers(self) -> set[str]:
        """The speakers whose clips this builder uses."""
        return set(self.rows["speaker"])

    def _layout(self, index: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray, float, int]:
        """The random draws of utterance ``index`` but its noise: clips, start samples, SNR, length."""
        rng = np.random.default_rng([self.seed, int(index)])
        n = int(rng.integers(self.words_range[0], self.words_range[1] + 1))
        picks = rng.integers(0, len(self._clips), n)
        pauses = rng.uniform(*self.pause_seconds, n - 1) if n > 1 else np.zeros(0)
        edges = rng.uniform(*EDGE_SECONDS, 2)
        snr = float(rng.uniform(*self.snr_db))
        gaps = np.round(np.concatenate([edges[:1], pauses]) * self.sample_rate).astype(int)
        lengths = np.array([len(self._clips[i]) for i in picks])
        starts = np.cumsum(gaps) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ends = starts + lengths + round(edges[1] * self.sample_rate)
        keep = max(self.words_range[0], int(np.sum(ends <= self.max_samples)))  # words dropped from the end to fit
        picks, starts = picks[:keep], starts[:keep]
        return rng, picks, starts, snr, int(ends[keep - 1])

    def num_samples(self, index: int) -> int:
        """The length of utterance ``index`` in samples (without building it)."""
        return self._layout(index)[-1]

    def utterance(self, index: int, *, min_samples: int = 0) -> Utterance:
        """Build utterance ``index`` (the same for the same seed and index, in any process).

        Parameters
        ----------
        index : int
        min_samples : int
            Continue the noise after the last word up to this length (to pad a batch).

        Returns
        -------
        Utterance
        """
        rng, picks, starts, snr, total = self._layout(index)
        wave = stream.noise_bed(self.noise, max(total, int(min_samples)), rng=rng, level=NOISE_RMS)
        gain = NOISE_RMS * 10.0 ** (snr / 20.0)
        for i, start in zip(picks.tolist(), starts.tolist(), strict=True):
            clip = self._clips[i]
            if self._levels[i] > 1e-8:
                wave[start : start + len(clip)] += clip * np.float32(gain / self._levels[i])
        peak = float(np.abs(wave).max())
        if peak > 1.0:
            wave /= np.float32(peak)  # speech and noise alike: the SNR stays exact
        rows = self.rows.iloc[picks]
        stops = starts + np.array([len(self._clips[i]) for i in picks])
        return Utterance(wave, rows["word"].tolist(), starts / self.sample_rate, stops / self.sample_rate,
                         rows["speaker"].tolist(), rows["relpath"].tolist(), snr, self.sample_rate)  # fmt: skip

    def batch(self, indices: Sequence[int]) -> list[Utterance]:
        """Utterances of one length: each padded with its own noise to ``max_seconds``."""
        return [self.utterance(i, min_samples=self.max_samples) for i in indices]

    def description(self) -> dict:
        """What the utterances depend on (recorded with a fixed set)."""
        return {"store": str(self.store_path.resolve()), "split": self.split, "seed": self.seed,
                "vocabulary": self.vocabulary, "words": list(self.words_range),
                "pause_seconds": list(self.pause_seconds), "snr_db": list(self.snr_db),
                "max_seconds": self.max_samples / self.sample_rate, "clips": len(self._clips)}  # fmt: skip


# --- Fixed cv / test sets, written once ----------------------------------------------------------------


def default_sets_dir(store_path: str | Path) -> Path:
    """Where the fixed sets of a store go: ``<work dir>/sequences`` beside its ``features/`` folder."""
    store_path = Path(store_path).resolve()
    work = store_path.parent.parent if store_path.parent.name == "features" else store_path.parent
    return work / "sequences"


UTTERANCE_COLUMNS = ("index", "file", "transcript", "duration", "snr_db")
WORD_COLUMNS = ("index", "word", "start", "stop", "speaker", "relpath")


def _write_set(builder: SequenceBuilder, n: int, folder: Path) -> None:
    folder.mkdir(parents=True)
    utterances, words = [], []
    for i in range(n):
        u = builder.utterance(i, min_samples=builder.max_samples)
        name = f"{i:05d}.wav"
        soundfile.write(folder / name, u.waveform, u.sample_rate, subtype=config.SAMPLE_SUBTYPE)
        utterances.append({"index": i, "file": name, "transcript": u.transcript, "duration": round(u.duration, 5),
                           "snr_db": round(u.snr_db, 3)})  # fmt: skip
        words += [{"index": i, **row} for row in u.timings().to_dict("records")]
    pd.DataFrame(utterances, columns=UTTERANCE_COLUMNS).to_csv(folder / "utterances.csv", index=False)
    pd.DataFrame(words, columns=WORD_COLUMNS).to_csv(folder / "words.csv", index=False)
    info = {"format": SETS_FORMAT, "format_version": SETS_FORMAT_VERSION, "count": n, **builder.description()}
    (folder / "set.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")  # last: the set is whole


def _read_set(folder: Path) -> list[Utterance]:
    table = pd.read_csv(folder / "utterances.csv", keep_default_na=False)
    words = pd.read_csv(folder / "words.csv", keep_default_na=False, dtype={"speaker": str, "word": str})
    by_index = dict(tuple(words.groupby("index")))
    out = []
    for row in table.to_dict("records"):
        w = by_index[row["index"]]
        out.append(Utterance(audio.load(folder / row["file"]), w["word"].tolist(), w["start"].to_numpy(float),
                             w["stop"].to_numpy(float), w["speaker"].tolist(), w["relpath"].tolist(),
                             float(row["snr_db"])))  # fmt: skip
    return out


def fixed_set(builder: SequenceBuilder, n: int | None = None, *, out_dir: str | Path | None = None) -> list[Utterance]:
    """The fixed set of a split: utterances ``0 .. n-1`` of ``builder``, written once and then read back.

    Each is padded with its noise to ``max_seconds``, as the training batches are.

    The folder (default ``default_sets_dir(store) / <split>``) holds one WAV
    file per utterance, ``utterances.csv`` (transcripts), ``words.csv`` (word
    timings, speakers, clips) and ``set.json`` (what they were built from). It
    is written under a temporary name and renamed when whole, so an
    interrupted run leaves no partial set; a later call reads it.

    Parameters
    ----------
    builder : SequenceBuilder
        Of the cv or test split.
    n : int, optional
        Utterances (default ``SET_SIZES[split]``, ``SMALL_SET_SIZES`` in small mode).
    out_dir : str or Path, optional
        The set's folder.

    Returns
    -------
    list of Utterance

    Raises
    ------
    FileExistsError
        The folder exists but holds another set (other data, seed or size) or
        something else: the message says to remove it or pass another folder.
    """
    sizes = SMALL_SET_SIZES if config.is_small() else SET_SIZES
    n = int(n if n is not None else sizes.get(builder.split, sizes["test"]))
    folder = Path(out_dir) if out_dir is not None else default_sets_dir(builder.store_path) / builder.split
    wanted = {"format": SETS_FORMAT, "format_version": SETS_FORMAT_VERSION, "count": n, **builder.description()}
    if folder.exists():
        try:
            info = json.loads((folder / "set.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = None
        if info != wanted:
            differ = sorted(k for k in wanted if info and info.get(k) != wanted[k]) if info else "no set.json"
            raise FileExistsError(f"{folder} exists and is not this sequence set ({differ}): nothing was written; "
                                  "remove the folder or pass another out_dir")  # fmt: skip
        return _read_set(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)  # ours: this process's name, left by nothing else
    try:
        _write_set(builder, n, partial)
        os.rename(partial, folder)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not (folder / "set.json").is_file():  # another process finished it first: read that one
            raise
    return _read_set(folder)


# --- Scoring -------------------------------------------------------------------------------------------


def _as_text(words: str | Sequence[str]) -> str:
    return words if isinstance(words, str) else " ".join(words)


def word_errors(references: Sequence[str | Sequence[str]], hypotheses: Sequence[str | Sequence[str]]) -> dict:
    """Word error rate over a corpus, with its parts (``jiwer.process_words``).

    ``WER = (substitutions + deletions + insertions) / reference words``,
    from the minimum-edit alignment of each hypothesis to its reference.

    Parameters
    ----------
    references, hypotheses : sequences of str or of lists of words
        One transcript per utterance; an empty hypothesis deletes every word.

    Returns
    -------
    dict
        ``wer`` (float), ``words`` (reference words), ``hits``,
        ``substitutions``, ``deletions``, ``insertions`` (int), ``utterances``.
    """
    refs, hyps = [_as_text(r) for r in references], [_as_text(h) for h in hypotheses]
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs or any(not r.strip() for r in refs):
        raise ValueError("every reference needs at least one word")
    out = jiwer.process_words(refs, hyps)
    words = out.hits + out.substitutions + out.deletions
    return {"wer": float(out.wer), "words": int(words), "hits": int(out.hits),
            "substitutions": int(out.substitutions), "deletions": int(out.deletions),
            "insertions": int(out.insertions), "utterances": len(refs)}  # fmt: skip


def to_labels(words: Sequence[str], labels: Sequence[str]) -> list[str]:
    """Words as a classifier's labels: a word it knows stays, any other is ``unknown`` (``inference.label_for``)."""
    out = [inference.label_for(w, "word", labels) for w in words]
    return [w for w in out if w is not None]


def label_errors(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]],
                 labels: Sequence[str]) -> dict:  # fmt: skip
    """:func:`word_errors` after mapping both sides to a classifier's labels (:func:`to_labels`).

    How a word model is compared with a keyword detector that only knows the
    commands and ``unknown``.
    """
    return word_errors([to_labels(r, labels) for r in references], [to_labels(h, labels) for h in hypotheses])


def paired_word_errors(
    references: Sequence[Sequence[str]],
    hypotheses_a: Sequence[Sequence[str]],
    hypotheses_b: Sequence[Sequence[str]],
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> dict:
    """Two recognisers on the *same* utterances: the WER difference ``a - b`` with its 95% interval.

    The interval is a bootstrap over utterances (each utterance's errors and
    words resampled together), so it reflects which utterances happened to be
    in the test set; a difference whose interval excludes 0 is one the set can
    tell apart.

    Returns
    -------
    dict
        ``wer_a``, ``wer_b``, ``difference`` (``wer_a - wer_b``), ``ci95``
        (``[low, high]``), ``utterances``; rounded to 4 decimals.
    """
    if not len(references) == len(hypotheses_a) == len(hypotheses_b):
        raise ValueError(f"{len(references)} references but {len(hypotheses_a)} and {len(hypotheses_b)} hypotheses")

    def errors(hyps: Sequence[Sequence[str]]) -> np.ndarray:
        rows = [word_errors([r], [h]) for r, h in zip(references, hyps, strict=True)]
        return np.array([r["substitutions"] + r["deletions"] + r["insertions"] for r in rows], float)

    words = np.array([word_errors([r], [r])["words"] for r in references], float)
    err_a, err_b = errors(hypotheses_a), errors(hypotheses_b)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(words), (int(resamples), len(words)))
    diffs = (err_a[picks].sum(axis=1) - err_b[picks].sum(axis=1)) / words[picks].sum(axis=1)
    return {
        "wer_a": round(float(err_a.sum() / words.sum()), 4), "wer_b": round(float(err_b.sum() / words.sum()), 4),
        "difference": round(float((err_a.sum() - err_b.sum()) / words.sum()), 4),
        "ci95": [round(float(np.quantile(diffs, 0.025)), 4), round(float(np.quantile(diffs, 0.975)), 4)],
        "utterances": len(words),
    }  # fmt: skip


def standard_sets(store_path: str | Path, *, seed: int = config.SEED, sizes: dict | None = None) -> dict:
    """The training builder and the fixed cv and test sets of a store: what notebook 8 and ``bench/ctc.py`` use.

    Returns
    -------
    dict
        ``train`` (:class:`SequenceBuilder` of the train split), ``cv`` and
        ``test`` (lists of :class:`Utterance`, :func:`fixed_set` with the
        train split's vocabulary).
    """
    train = SequenceBuilder(store_path, "train", seed=seed)
    sizes = sizes or (SMALL_SET_SIZES if config.is_small() else SET_SIZES)
    out: dict[str, Any] = {"train": train}
    for name in ("cv", "test"):
        out[name] = fixed_set(SequenceBuilder(store_path, name, vocabulary=train.vocabulary, seed=seed), sizes[name])
    return out
