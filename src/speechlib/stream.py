"""Keyword detection on audio of any length: a one-second classifier turned into a detector.

A model of ``speechlib`` classifies one-second clips. :class:`Detector` slides
that second over a stream of audio, one window every ``hop_seconds``, and
turns the sequence of posteriors into detections, with the classic posterior
handling of TensorFlow's micro_speech (``RecognizeCommands``): average the
scores over a few windows, compare them with a threshold per keyword, and stay
quiet for a refractory period after a hit so that one utterance fires once.
Memory is constant whatever the length of the audio.

Incremental features
    The log-mel of a window is the log-mel of the training clips (centred
    frames with ``n_fft // 2`` zeros on both sides, ``speechlib.features``). A
    frame whose samples lie wholly inside the window is the same in every
    window that holds it, so it is computed once per stream and kept in a ring
    buffer; only the few frames that touch the window's zero padding (2 at each
    end for the defaults) are computed again for each window. A window hop is
    a multiple of the feature hop (10 ms by default). The assembled features
    equal ``features.compute`` of the window (tested).
Detection
    :class:`Detection` ``(time, label, score)``: ``time`` in seconds from the
    start of the stream is the middle of the run of windows above the
    threshold, an estimate of the middle of the spoken word.
Sources
    :meth:`Detector.feed` takes chunks of any size (the web app's, a
    microphone's); :meth:`Detector.detect` a whole waveform; :func:`file_chunks`
    and :func:`microphone_chunks` (needs the optional package ``sounddevice``)
    give chunks for :meth:`Detector.run`. Chunked and whole input give the same
    detections.
Evaluation as the field does it
    :func:`long_audio` places keyword clips at known times into background
    noise at a given SNR, with other words and silence between;
    :func:`match_detections` counts hits, misses and false accepts (per hour),
    and :func:`false_accept_sources` says what each false accept fired on (an
    unknown word, a keyword again, or noise); :func:`det_curve` sweeps the
    threshold over one score trace (:meth:`Detector.scores`), and
    :func:`smooth` re-smooths a raw trace as a detector with another
    smoothing length would; :func:`choose_threshold` and
    :func:`choose_operating_point` (threshold and smoothing) pick an operating
    point (on cv audio, never on test).

Example
-------
>>> from speechlib import inference, stream
>>> bundle = inference.load_bundle("data/work/synthetic/models/res8/model.keras")  # doctest: +SKIP
>>> detector = stream.Detector(bundle, threshold=0.8)  # doctest: +SKIP
>>> for d in detector.run(stream.file_chunks("long.wav")):  # doctest: +SKIP
...     print(f"{d.time:7.2f} s  {d.label:6s} {d.score:.2f}")
"""

from __future__ import annotations

import dataclasses
import math
import queue
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from speechlib import audio, augment, config, features, train
from speechlib.store import FeatureStore

__all__ = [
    "DEFAULT_HOP_SECONDS",
    "FALSE_ACCEPT_SOURCES",
    "Detection",
    "Detector",
    "LongAudio",
    "choose_operating_point",
    "choose_threshold",
    "det_curve",
    "false_accept_sources",
    "file_chunks",
    "keras_scorer",
    "long_audio",
    "long_audio_from_store",
    "match_detections",
    "microphone_chunks",
    "noise_bed",
    "smooth",
    "trigger",
]

DEFAULT_HOP_SECONDS = 0.05  # 50 ms between windows: 20 model calls per second of audio
DEFAULT_SMOOTH_WINDOWS = 3  # posteriors averaged over 3 windows (150 ms at the default hop), as micro_speech does
DEFAULT_THRESHOLD = 0.5  # smoothed posterior a keyword needs; choose it on cv audio (choose_threshold)
DEFAULT_REFRACTORY_SECONDS = 1.0  # nothing fires within 1 s of a detection: a word lasts well under a second
DEFAULT_MAX_RUN_SECONDS = 0.8  # a run above the threshold is followed for at most 0.8 s: a word's whole plateau
RELEASE = 0.5  # hysteresis: a run lasts while its keyword's score stays above half its threshold
DEFAULT_BLOCK_WINDOWS = 64  # windows scored in one batch when a long chunk is fed: bounds memory and latency
MATCH_TOLERANCE_SECONDS = 0.5  # a detection within 0.5 s of a spoken keyword's centre (half a clip) is a hit
NOISE_RMS = 0.01  # level of the noise bed of long_audio (-40 dBFS); speech is scaled against it to the SNR
GAP_SECONDS = (0.5, 2.0)  # noise alone between two clips in long_audio, uniform in this range
CROSSFADE_SAMPLES = 160  # 10 ms fades between the noise windows of the bed: no clicks
SECONDS_PER_HOUR = 3600.0


class Detection(NamedTuple):
    """One detected keyword.

    Attributes
    ----------
    time : float, seconds
        From the start of the stream: the middle of the run of windows whose
        smoothed score was above the threshold (window centres).
    label : str
    score : float in [0, 1]
        The smoothed posterior of ``label`` at that time.
    """

    time: float
    label: str
    score: float


def keras_scorer(bundle: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The bundle's Keras model as a scorer: normalised features (n, frames, bins) -> probabilities (n, num_classes)."""
    model = bundle.model

    def score(X: np.ndarray) -> np.ndarray:
        logits = np.asarray(model.predict_on_batch(X), np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    return score


# --- The ring buffer ---------------------------------------------------------------------------------


class _Ring:
    """A fixed-capacity circular buffer of rows, addressed by absolute index (0 = first row ever written)."""

    def __init__(self, capacity: int, shape: tuple[int, ...] = ()) -> None:
        self.data = np.zeros((capacity, *shape), np.float32)
        self.end = 0  # rows written so far

    def extend(self, rows: np.ndarray) -> None:
        n, cap = len(rows), len(self.data)
        if n > cap:
            raise ValueError(f"{n} rows do not fit a ring of {cap}")
        idx = (self.end + np.arange(n)) % cap
        self.data[idx] = rows
        self.end += n

    def take(self, index: np.ndarray) -> np.ndarray:
        """Rows at absolute ``index`` (any shape); indices before 0 or not yet written read as zeros."""
        index = np.asarray(index)
        stale = (index >= 0) & (index < self.end - len(self.data))
        if stale.any():
            raise IndexError(f"ring row {index[stale].min()} was overwritten (capacity {len(self.data)})")
        out = self.data[np.clip(index, 0, None) % len(self.data)]
        out[(index < 0) | (index >= self.end)] = 0.0
        return out


# --- Posterior handling --------------------------------------------------------------------------------


def _trailing_mean(values: np.ndarray, windows: int, *, first: int = 0) -> np.ndarray:
    """Mean of each row ``i >= first`` of ``values`` and the ``windows - 1`` rows before it (fewer at the start)."""
    csum = np.cumsum(np.concatenate([np.zeros((1, values.shape[1])), values.astype(np.float64)]), axis=0)
    idx = np.arange(first, len(values))
    lo = np.maximum(idx - windows + 1, 0)
    return ((csum[idx + 1] - csum[lo]) / (idx + 1 - lo)[:, None]).astype(np.float32)


def smooth(times: np.ndarray, scores: np.ndarray, windows: int, *, hop_seconds: float = DEFAULT_HOP_SECONDS,
           ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Smooth a raw score trace after the fact, exactly as a :class:`Detector` with ``smooth_windows=windows`` does.

    A trace scored once without smoothing (``Detector(..., smooth_windows=1).scores``)
    can then be tried with several smoothing lengths without scoring the audio
    again (``bench/streaming.py`` picks the length on cv audio this way).

    Parameters
    ----------
    times : np.ndarray, shape (n_windows,), seconds
        Window centres of the raw trace.
    scores : np.ndarray, shape (n_windows, num_classes)
        Raw posteriors.
    windows : int
        Windows averaged (1: unchanged).
    hop_seconds : float, seconds
        The trace's window hop.

    Returns
    -------
    times : np.ndarray
        Each smoothed score's time: the middle of the windows it averages.
    scores : np.ndarray, float32
    """
    windows = max(1, int(windows))
    shifted = np.asarray(times, np.float64) - (windows - 1) * hop_seconds / 2
    return shifted, _trailing_mean(np.asarray(scores), windows)


class _Trigger:
    """Threshold with hysteresis, run tracking and refractory period over smoothed keyword scores.

    A run starts when the best keyword's score reaches its threshold (outside
    the refractory period) and lasts while the score of the keyword it names
    stays at or above ``release`` times its threshold, for at most ``max_run``
    seconds (so the next word, once this one's score has fallen, starts a run
    of its own). The run names the keyword of its highest score among those at
    or above their thresholds — not the first to cross: a window that holds only
    the onset of a word often favours a keyword that starts alike ("go" for
    "no"), and committing to it would turn the word into a substitution and,
    through the refractory period, a miss. The detection's time is the middle
    of the run (a posterior saturates, and wavers, over the word's plateau:
    its first maximum or first dip would come early).
    """

    def __init__(self, thresholds: np.ndarray, *, refractory: float, max_run: float, release: float = RELEASE) -> None:
        self.thresholds = np.asarray(thresholds, np.float64)
        self.release_levels = self.thresholds * float(release)
        self.refractory, self.max_run = float(refractory), float(max_run)
        self.run: list | None = None  # [first time, last time, keyword index, highest score]
        self.quiet_until = -math.inf

    def _emit(self) -> tuple[float, int, float]:
        first, last, k, s = self.run
        self.run = None
        t = (first + last) / 2
        self.quiet_until = t + self.refractory
        return t, k, s

    def step(self, t: float, scores: np.ndarray) -> tuple[float, int, float] | None:
        """Advance by one window (time ``t``, smoothed keyword scores); return a detection when one is due."""
        out = None
        run = self.run
        if run is not None:
            k = run[2]  # the keyword the run names so far
            if scores[k] >= self.release_levels[k] and t - run[0] <= self.max_run:
                run[1] = t
                above = np.flatnonzero(scores >= self.thresholds)
                if len(above):
                    k = int(above[scores[above].argmax()])
                    if scores[k] > run[3]:
                        run[2], run[3] = k, float(scores[k])
                return None
            out = self._emit()
        best = int(scores.argmax())
        score = float(scores[best])
        if out is None and score >= self.thresholds[best] and t >= self.quiet_until:
            self.run = [t, t, best, score]
        return out

    def flush(self) -> tuple[float, int, float] | None:
        """The pending detection at the end of the stream, if any."""
        return self._emit() if self.run is not None else None


def trigger(
    times: np.ndarray,
    scores: np.ndarray,
    keyword_ids: Sequence[int],
    labels: Sequence[str],
    *,
    threshold: float | Mapping[str, float] = DEFAULT_THRESHOLD,
    refractory_seconds: float = DEFAULT_REFRACTORY_SECONDS,
    max_run_seconds: float = DEFAULT_MAX_RUN_SECONDS,
) -> list[Detection]:
    """Detections from a whole score trace, exactly as :class:`Detector` makes them while streaming.

    Parameters
    ----------
    times : np.ndarray, shape (n_windows,), seconds
    scores : np.ndarray, shape (n_windows, num_classes), float
        Smoothed posteriors (:meth:`Detector.scores`).
    keyword_ids : sequence of int
        Columns of ``scores`` that are keywords.
    labels : sequence of str
        Every class name (columns of ``scores``).
    threshold : float or mapping label -> float
    refractory_seconds, max_run_seconds : float, seconds

    Returns
    -------
    list of Detection
    """
    keyword_ids = list(keyword_ids)
    thresholds = _thresholds(threshold, [labels[i] for i in keyword_ids])
    machine = _Trigger(thresholds, refractory=refractory_seconds, max_run=max_run_seconds)
    kw = np.asarray(scores, np.float64)[:, keyword_ids]
    out = [hit for t, row in zip(np.asarray(times).tolist(), kw, strict=True) if (hit := machine.step(t, row))]
    hit = machine.flush()
    if hit is not None:
        out.append(hit)
    return [Detection(round(t, 4), labels[keyword_ids[k]], round(s, 4)) for t, k, s in out]


def _thresholds(threshold: float | Mapping[str, float], keywords: Sequence[str]) -> np.ndarray:
    if isinstance(threshold, Mapping):
        unknown = sorted(set(threshold) - set(keywords))
        if unknown:
            raise ValueError(f"thresholds given for {unknown}, which are not keywords of the model ({list(keywords)})")
        return np.array([float(threshold.get(k, DEFAULT_THRESHOLD)) for k in keywords])
    return np.full(len(keywords), float(threshold))


# --- The detector ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Geometry:
    """Where the frames of one window come from (all in samples / frames of the bundle's log-mel)."""

    window: int  # samples per window (the model's clip)
    hop: int  # samples between windows
    H: int  # feature hop, samples
    n_fft: int
    pad: int  # zeros before and after a window (centred frames)
    frames: int  # frames per window
    lo: int  # first frame wholly inside the window
    hi: int  # last frame wholly inside the window

    @classmethod
    def of(cls, params: dict, window: int, hop: int) -> _Geometry:
        H, n_fft, win = int(params["hop_length"]), int(params["n_fft"]), int(params["win_length"])
        pad = n_fft // 2 if params["center"] else 0
        off = (n_fft - win) // 2 - pad  # frame t of a window covers samples [t*H + off, t*H + off + win)
        frames = features.output_shape("logmel", num_samples=window, **params)[0]
        lo = max(0, -(off // H)) if off < 0 else 0
        hi = min(frames - 1, (window - off - win) // H)
        return cls(window, hop, H, n_fft, pad, frames, lo, hi)


class Detector:
    """A keyword detector over audio of any length, in constant memory.

    Parameters
    ----------
    bundle : speechlib.inference.Bundle
        A log-mel model (``inference.load_bundle``): its feature parameters,
        normalisation and labels define the windows.
    scorer : callable, optional
        Normalised features (n, frames, bins) float32 -> probabilities
        (n, num_classes); default the bundle's Keras model
        (:func:`keras_scorer`); ``speechlib.export.LiteRTModel(...).predict``
        runs a TFLite export instead.
    hop_seconds : float, seconds
        Time between two windows; a multiple of the feature hop (10 ms).
    smooth_windows : int
        Posteriors averaged over this many consecutive windows.
    threshold : float or mapping label -> float
        Smoothed score a keyword needs (one for all, or one per keyword;
        keywords not named get ``DEFAULT_THRESHOLD``).
    refractory_seconds : float, seconds
        No detection within this time after one.
    max_run_seconds : float, seconds
        A run starts when a keyword's score reaches its threshold and lasts
        while the score of the keyword it names stays above half of its
        threshold (``RELEASE``), for at most this long; the detection names the keyword
        of the run's highest score, at the run's middle (so a detection is
        due at most this long after the crossing).
    keywords : sequence of str, optional
        Labels that can fire (default every label except silence and unknown).
    block_windows : int
        Windows scored in one batch when a long chunk arrives.
    """

    def __init__(
        self,
        bundle: Any,
        *,
        scorer: Callable[[np.ndarray], np.ndarray] | None = None,
        hop_seconds: float = DEFAULT_HOP_SECONDS,
        smooth_windows: int = DEFAULT_SMOOTH_WINDOWS,
        threshold: float | Mapping[str, float] = DEFAULT_THRESHOLD,
        refractory_seconds: float = DEFAULT_REFRACTORY_SECONDS,
        max_run_seconds: float = DEFAULT_MAX_RUN_SECONDS,
        keywords: Sequence[str] | None = None,
        block_windows: int = DEFAULT_BLOCK_WINDOWS,
    ) -> None:
        if bundle.kind != "logmel":
            raise ValueError(f"the detector computes log-mel features; this model uses {bundle.kind!r}")
        self.labels = bundle.labels
        self.sample_rate = int(bundle.meta["sample_rate"])
        self.params = features.resolve_params("logmel", **bundle.params)
        self.norm = bundle.normalization
        hop = round(hop_seconds * self.sample_rate)
        H = int(self.params["hop_length"])
        if hop <= 0 or hop % H:
            raise ValueError(f"hop_seconds={hop_seconds} must be a positive multiple of the feature hop "
                             f"({H / self.sample_rate * 1000:g} ms)")  # fmt: skip
        self.geometry = _Geometry.of(self.params, int(bundle.meta["clip_samples"]), hop)
        self.scorer = scorer or keras_scorer(bundle)
        self.smooth_windows = max(1, int(smooth_windows))
        self.keywords = list(keywords) if keywords is not None else [
            label for label in self.labels if label not in (config.SILENCE_LABEL, config.UNKNOWN_LABEL)
        ]  # fmt: skip
        missing = sorted(set(self.keywords) - set(self.labels))
        if missing:
            raise ValueError(f"keywords {missing} are not labels of the model ({self.labels})")
        self.keyword_ids = [self.labels.index(k) for k in self.keywords]
        self.threshold, self.refractory_seconds, self.max_run_seconds = threshold, refractory_seconds, max_run_seconds
        self._thresholds = _thresholds(threshold, self.keywords)
        self.block_windows = max(1, int(block_windows))
        self.reset()

    @property
    def hop_seconds(self) -> float:
        """Seconds between two windows."""
        return self.geometry.hop / self.sample_rate

    def reset(self) -> None:
        """Forget the stream: the next sample fed is time 0."""
        g = self.geometry
        block = self.block_windows * g.hop
        self._samples = _Ring(g.window + g.n_fft + g.hop + block)
        self._frames = _Ring(g.frames + (block + g.hop) // g.H + 2, (int(self.params["n_mels"]),))
        self._frames.end = g.lo  # ring row i is stream frame i; frames before lo are never used
        self._next_window = 0  # index of the next window to score
        self._next_frame = g.lo  # next stream frame to compute
        self._history = np.zeros((0, len(self.labels)), np.float32)  # last raw posteriors, for smoothing
        self._trigger = _Trigger(self._thresholds, refractory=self.refractory_seconds, max_run=self.max_run_seconds)
        self.last_times = np.zeros(0)
        self.last_scores = np.zeros((0, len(self.labels)), np.float32)

    # --- features --------------------------------------------------------------------------------

    def _logmel(self, spans: np.ndarray) -> np.ndarray:
        """Uncentred log-mel frames of equal-length sample spans, shape (n, frames, n_mels)."""
        return features.logmel_batch(spans, **{**self.params, "center": False})

    def _update_frames(self, stop: int) -> None:
        """Compute stream frames up to (not including) ``stop`` into the frame ring."""
        g = self.geometry
        start = self._next_frame
        if stop <= start:
            return
        first = start * g.H - g.pad  # frame j of a span starting here is stream frame start + j
        span = self._samples.take(np.arange(first, first + (stop - start - 1) * g.H + g.n_fft))
        self._frames.extend(self._logmel(span[None, :])[0])
        self._next_frame = stop

    def _edges(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The frames of each window that touch its zero padding: (n, lo, bins) and (n, frames - hi - 1, bins)."""
        g = self.geometry
        head_len = (g.lo - 1) * g.H + g.n_fft if g.lo else 0
        tail_frames = g.frames - g.hi - 1
        tail_len = (tail_frames - 1) * g.H + g.n_fft if tail_frames else 0
        bins = int(self.params["n_mels"])
        head = np.zeros((len(starts), 0, bins), np.float32)
        tail = np.zeros((len(starts), 0, bins), np.float32)
        if head_len:
            offsets = np.arange(head_len) - g.pad  # relative to the window start; before it: the window's zeros
            spans = self._samples.take(starts[:, None] + offsets)
            spans[:, offsets < 0] = 0.0
            head = self._logmel(spans)
        if tail_len:
            offsets = (g.hi + 1) * g.H - g.pad + np.arange(tail_len)
            spans = self._samples.take(starts[:, None] + offsets)
            spans[:, offsets >= g.window] = 0.0  # past the window's end: the window's zeros, not the stream
            tail = self._logmel(spans)
        return head, tail

    def window_features(self, first: int, count: int) -> np.ndarray:
        """Log-mel of windows ``first .. first + count - 1`` (not normalised), shape (count, frames, n_mels).

        Equal to ``features.compute(waveform[k * hop : k * hop + window])`` for each
        window ``k``; the samples must have been fed and still be buffered.
        """
        g = self.geometry
        ks = np.arange(first, first + count)
        starts = ks * g.hop
        self._update_frames((ks[-1] * g.hop) // g.H + g.hi + 1)
        interior = self._frames.take((starts // g.H)[:, None] + np.arange(g.lo, g.hi + 1))
        head, tail = self._edges(starts)
        return np.concatenate([head, interior, tail], axis=1)

    # --- scoring and detection -------------------------------------------------------------------

    def _score_ready(self) -> tuple[np.ndarray, np.ndarray]:
        """Score every window whose samples have all arrived; return their times and smoothed posteriors."""
        g = self.geometry
        ready = (self._samples.end - g.window) // g.hop + 1 - self._next_window
        if ready <= 0:
            return np.zeros(0), np.zeros((0, len(self.labels)), np.float32)
        X = features.normalize(self.window_features(self._next_window, ready), self.norm)
        proba = np.asarray(self.scorer(X), np.float32)
        both = np.concatenate([self._history, proba])
        K = self.smooth_windows
        smoothed = _trailing_mean(both, K, first=len(self._history))
        self._history = both[-(K - 1) :] if K > 1 else both[:0]
        ks = np.arange(self._next_window, self._next_window + ready)
        times = (ks * g.hop + g.window / 2 - (K - 1) * g.hop / 2) / self.sample_rate
        self._next_window += ready
        return times, smoothed

    def _detect(self, times: np.ndarray, smoothed: np.ndarray) -> list[Detection]:
        kw = smoothed[:, self.keyword_ids].astype(np.float64)
        hits = [hit for t, row in zip(times.tolist(), kw, strict=True) if (hit := self._trigger.step(t, row))]
        return [self._detection(hit) for hit in hits]

    def _detection(self, hit: tuple[float, int, float]) -> Detection:
        t, k, s = hit
        return Detection(round(t, 4), self.keywords[k], round(s, 4))

    def feed(self, chunk: np.ndarray) -> list[Detection]:
        """Add samples to the stream; return the detections that became due.

        Parameters
        ----------
        chunk : np.ndarray, shape (n_samples,), float32 in [-1, 1]
            The next samples at the bundle's sample rate (any length, 0 included).

        Returns
        -------
        list of Detection
            Detections are due up to ``max_run_seconds`` plus half a window after the word.
        """
        chunk = np.asarray(chunk, np.float32).ravel()
        block = self.block_windows * self.geometry.hop
        found: list[Detection] = []
        times, scores = [], []
        for start in range(0, len(chunk), block):
            self._samples.extend(chunk[start : start + block])
            t, s = self._score_ready()
            times.append(t)
            scores.append(s)
            found += self._detect(t, s)
        if times:
            self.last_times, self.last_scores = np.concatenate(times), np.concatenate(scores)
        else:
            self.last_times, self.last_scores = np.zeros(0), np.zeros((0, len(self.labels)), np.float32)
        return found

    def _tail_padding(self) -> int:
        """Zeros that end the stream: windows then reach half a window past the last sample."""
        g = self.geometry
        return math.ceil(g.window / 2 / g.hop) * g.hop

    def flush(self) -> list[Detection]:
        """End the stream: score the last half-second (padded with zeros) and emit a pending detection."""
        found = self.feed(np.zeros(self._tail_padding(), np.float32))
        hit = self._trigger.flush()
        return found + ([self._detection(hit)] if hit is not None else [])

    def run(self, chunks: Iterable[np.ndarray]) -> Iterator[Detection]:
        """Detections over a stream of chunks (a file, an app, a microphone), as they become due; then flush."""
        self.reset()
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.flush()

    def detect(self, waveform: np.ndarray, *, chunk_samples: int | None = None) -> list[Detection]:
        """Every detection in a waveform (shape (n_samples,), float32), fed whole or in chunks."""
        waveform = np.asarray(waveform, np.float32)
        step = chunk_samples or max(1, len(waveform))
        return list(self.run(waveform[i : i + step] for i in range(0, len(waveform), step)))

    def scores(self, chunks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The whole smoothed score trace of a stream (for plots and threshold sweeps).

        Returns
        -------
        times : np.ndarray, shape (n_windows,), seconds
        scores : np.ndarray, shape (n_windows, num_classes), float32
            Smoothed posteriors; :func:`trigger` on them gives :meth:`run`'s detections.
        """
        self.reset()
        times, scores = [], []
        for chunk in [*chunks, np.zeros(self._tail_padding(), np.float32)]:
            self.feed(chunk)
            times.append(self.last_times)
            scores.append(self.last_scores)
        self.reset()
        return np.concatenate(times), np.concatenate(scores)


# --- Sources ---------------------------------------------------------------------------------------------


def file_chunks(path: str | Path, *, chunk_seconds: float = 10.0, sample_rate: int = config.SAMPLE_RATE):
    """Chunks of an audio file, read one at a time (constant memory), shape (n,), float32.

    Raises
    ------
    speechlib.audio.AudioError
        The file cannot be read (checked before the first chunk).
    """
    info = audio.inspect(path)
    total = math.ceil(info.frames * sample_rate / info.sample_rate)
    step = max(1, round(chunk_seconds * sample_rate))
    for offset in range(0, total, step):
        yield audio.load(path, sample_rate=sample_rate, offset=offset, num_samples=min(step, total - offset))


def microphone_chunks(
    *, sample_rate: int = config.SAMPLE_RATE, chunk_seconds: float = DEFAULT_HOP_SECONDS, seconds: float | None = None,
    device: int | str | None = None,
):  # fmt: skip
    """Chunks from the default microphone (mono float32) until ``seconds`` have passed or Ctrl-C.

    Needs the optional package ``sounddevice`` (``pip install sounddevice``).

    Raises
    ------
    ImportError
        ``sounddevice`` is not installed (the message says how to install it).
    """
    try:
        import sounddevice
    except (ImportError, OSError) as err:  # OSError: the package is there but PortAudio is not
        raise ImportError(f"listening to a microphone needs the optional package sounddevice ({err}): "
                          "pip install sounddevice") from None  # fmt: skip

    blocks: queue.Queue = queue.Queue()
    step = max(1, round(chunk_seconds * sample_rate))
    total = None if seconds is None else round(seconds * sample_rate)
    read = 0
    with sounddevice.InputStream(samplerate=sample_rate, channels=1, dtype="float32", blocksize=step, device=device,
                                 callback=lambda data, *_: blocks.put(data[:, 0].copy())):  # fmt: skip
        while total is None or read < total:
            block = blocks.get()
            read += len(block)
            yield block


# --- Evaluation: long audio with known keywords ------------------------------------------------------------


@dataclasses.dataclass
class LongAudio:
    """A long recording built by :func:`long_audio`.

    Attributes
    ----------
    waveform : np.ndarray, shape (n_samples,), float32 in [-1, 1]
    events : pandas.DataFrame
        One row per placed clip: ``time`` (s, the clip's energy centre), ``start``,
        ``stop`` (s), ``label`` (the model's label), ``keyword`` (bool: a detection target).
    snr_db : float
    sample_rate : int, Hz
    """

    waveform: np.ndarray
    events: pd.DataFrame
    snr_db: float
    sample_rate: int = config.SAMPLE_RATE

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.waveform) / self.sample_rate

    @property
    def truth(self) -> pd.DataFrame:
        """The keyword events (``time``, ``label``): what a detector must find."""
        return self.events[self.events["keyword"]].reset_index(drop=True)


def _noise_bed(bank: Any, n_samples: int, rng: np.random.Generator, *, level: float | None) -> np.ndarray:
    """Noise windows of ``bank`` (each scaled to rms ``level``, or as recorded for None), joined with crossfades."""
    bed = np.zeros(n_samples + bank.length, np.float32)
    fade = np.linspace(0.0, 1.0, CROSSFADE_SAMPLES, dtype=np.float32)
    step = bank.length - CROSSFADE_SAMPLES
    for start in range(0, n_samples, step):
        piece = bank.sample(rng)
        r = augment.rms(piece)
        if level is not None and r > 1e-5:  # digital silence stays silent
            piece *= np.float32(level / r)
        if start:
            piece[:CROSSFADE_SAMPLES] *= fade
        piece[-CROSSFADE_SAMPLES:] *= fade[::-1]
        bed[start : start + bank.length] += piece
    return bed[:n_samples]


def noise_bed(bank: Any, n_samples: int, *, rng: np.random.Generator, level: float | None = NOISE_RMS) -> np.ndarray:
    """Background noise of any length, shape (n_samples,), float32: 1-s windows of ``bank`` joined with crossfades.

    The bed that :func:`long_audio` lays its clips on (each window scaled to rms
    ``level``; None keeps the recorded level); ``speechlib.sequences`` builds its
    utterances on it too.
    """
    return _noise_bed(bank, int(n_samples), rng, level=level)


def _centre(clip: np.ndarray) -> float:
    """Energy centroid of a clip, in samples: where the word is."""
    energy = clip.astype(np.float64) ** 2
    total = energy.sum()
    return float((np.arange(len(clip)) * energy).sum() / total) if total > 0 else len(clip) / 2


def long_audio(
    clips: Sequence[tuple[str, np.ndarray]],
    noise: Any,
    *,
    snr_db: float,
    keywords: Sequence[str],
    gap_seconds: tuple[float, float] = GAP_SECONDS,
    passes: int = 1,
    noise_rms: float | None = NOISE_RMS,
    seed: int = config.SEED,
    sample_rate: int = config.SAMPLE_RATE,
) -> LongAudio:
    """Place clips at known times into background noise: the field's long-audio benchmark.

    Every clip appears ``passes`` times, in a new random order each pass, with
    noise alone (a random gap of ``gap_seconds``) between two clips. The noise
    bed is 1-s windows of ``noise``, each scaled to rms ``noise_rms`` (None:
    at their recorded level); every clip is scaled so that
    ``20 log10(rms(clip) / rms(noise under it)) = snr_db`` (rms over the clip's
    padded second, as ``augment.mix_noise`` defines the SNR).

    Parameters
    ----------
    clips : sequence of (label, waveform)
        The model's label and the clip (any length; fitted to one second).
        Clips whose label is in ``keywords`` are targets; the others (unknown
        words, silence) are what a detector must not fire on.
    noise : speechlib.augment.NoiseBank
        Background noise (of the same split as the clips).
    snr_db : float, dB
    keywords : sequence of str
    gap_seconds : (float, float), seconds
    passes : int
    noise_rms : float or None
    seed : int

    Returns
    -------
    LongAudio
    """
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(clips)) for _ in range(passes)]).astype(int)
    gaps = rng.uniform(*gap_seconds, size=len(order) + 1)
    n = config.CLIP_SAMPLES
    starts = np.round((np.cumsum(gaps[:-1]) + np.arange(len(order)) * n / sample_rate) * sample_rate).astype(int)
    total = int(starts[-1] + n + round(gaps[-1] * sample_rate)) if len(order) else round(gaps[0] * sample_rate)
    wave = _noise_bed(noise, total, rng, level=noise_rms)

    gain = 10.0 ** (snr_db / 20.0)
    rows = []
    for i, start in zip(order.tolist(), starts.tolist(), strict=True):
        label, clip = clips[i]
        clip = audio.fix_length(np.asarray(clip, np.float32), length=n)
        level = augment.rms(clip)
        under = noise_rms if noise_rms is not None else augment.rms(wave[start : start + n])
        if level > 1e-5:
            wave[start : start + n] += clip * np.float32(under * gain / level)
        rows.append({"time": (start + _centre(clip)) / sample_rate, "start": start / sample_rate,
                     "stop": (start + n) / sample_rate, "label": label, "keyword": label in keywords})  # fmt: skip
    peak = float(np.abs(wave).max()) if len(wave) else 0.0
    if peak > 1.0:
        wave /= np.float32(peak)  # scales speech and noise alike: the SNR stays exact
    events = pd.DataFrame(rows, columns=["time", "start", "stop", "label", "keyword"])
    return LongAudio(wave, events, float(snr_db), sample_rate)


def long_audio_from_store(store_path: str | Path, split: str, *, snr_db: float, keywords: Sequence[str],
                          max_clips: int | None = None, **kwargs: Any) -> LongAudio:  # fmt: skip
    """:func:`long_audio` from one split of a feature store: its clips (read from their files) and its own noise.

    The noise is ``speechlib.train.noise_bank(store, split)``: the split's
    regions of the background-noise recordings, or its silence clips where
    the layout has no recordings (the official test-set layout). ``kwargs`` go
    to :func:`long_audio`. Silence rows are left out of the clips: the noise
    bed between the words is the silence. ``max_clips`` keeps a random subset
    of that many clips (seeded by ``kwargs["seed"]``), for a shorter recording.
    """
    fs = FeatureStore(store_path)
    rows = fs.manifest(split)
    rows = rows[(rows["augment"] == 0) & (rows["label"] != config.SILENCE_LABEL)]
    if max_clips is not None and len(rows) > max_clips:
        rows = rows.sample(max_clips, random_state=kwargs.get("seed", config.SEED))
    clips = [(r["label"], audio.load_row(r)) for r in rows.to_dict("records")]
    bank = train.noise_bank(fs, split)
    if bank is None:
        raise ValueError(f"{store_path}: split {split!r} has no background noise to build long audio from")
    return long_audio(clips, bank, snr_db=snr_db, keywords=keywords, **kwargs)


def _outcomes(detections: Sequence[Detection], truth: pd.DataFrame, tolerance: float,
              ) -> list[tuple[Detection, str]]:  # fmt: skip
    """Each detection, in time order, with what it was: ``hit``, ``substitution`` or ``false accept``."""
    times = truth["time"].to_numpy(float)
    labels = truth["label"].to_numpy(str)
    taken = np.zeros(len(times), bool)
    out = []
    for d in sorted(detections, key=lambda d: d.time):
        close = np.abs(times - d.time) <= tolerance
        near = np.flatnonzero(~taken & (labels == d.label) & close)
        if len(near):
            taken[near[np.argmin(np.abs(times[near] - d.time))]] = True
            out.append((d, "hit"))
        elif np.any(close & (labels != d.label)):
            out.append((d, "substitution"))
        else:
            out.append((d, "false accept"))
    return out


FALSE_ACCEPT_SOURCES = ("unknown word", "keyword", "noise")  # what was under a false accept (false_accept_sources)


def false_accept_sources(detections: Sequence[Detection], events: pd.DataFrame, *,
                         tolerance: float = MATCH_TOLERANCE_SECONDS) -> dict[str, int]:  # fmt: skip
    """What each false accept of :func:`match_detections` fired on: an unknown word, a keyword, or noise alone.

    A false accept whose time falls inside a placed clip that is not a keyword
    (an unknown word) fired on that word: the classifier heard it as a keyword.
    One inside a keyword's clip fired on that word a second time, or far off
    its centre. One outside every clip fired on the background noise. The
    split tells what to improve: the model's ``unknown`` class, the detector's
    smoothing and refractory period, or its threshold.

    Parameters
    ----------
    detections : sequence of Detection
    events : pandas.DataFrame
        Every placed clip (:attr:`LongAudio.events`: ``time``, ``start``,
        ``stop``, ``label``, ``keyword``).
    tolerance : float, seconds

    Returns
    -------
    dict
        A count for each of ``FALSE_ACCEPT_SOURCES``.
    """
    truth = events[events["keyword"]].reset_index(drop=True)
    starts, stops = events["start"].to_numpy(float), events["stop"].to_numpy(float)
    keyword = events["keyword"].to_numpy(bool)
    counts = dict.fromkeys(FALSE_ACCEPT_SOURCES, 0)
    for d, outcome in _outcomes(detections, truth, tolerance):
        if outcome != "false accept":
            continue
        under = (starts <= d.time) & (d.time <= stops)
        counts["unknown word" if np.any(under & ~keyword) else "keyword" if np.any(under) else "noise"] += 1
    return counts


def match_detections(
    detections: Sequence[Detection], truth: pd.DataFrame, *, duration: float,
    tolerance: float = MATCH_TOLERANCE_SECONDS,
) -> dict:  # fmt: skip
    """Hits, misses, substitutions and false accepts of detections against the spoken keywords.

    A detection is a *hit* when it names a keyword event within ``tolerance``
    seconds of the event's time that no earlier detection took; a
    *substitution* when another keyword was spoken there (the word was heard
    as the wrong keyword: it also leaves a miss); a *false accept* when no
    other keyword was spoken within ``tolerance`` — the detector fired on
    noise, on an unknown word, or twice on one word. These are the three
    counts of TensorFlow's ``test_streaming_accuracy`` tool for Speech
    Commands ("matched", "wrongly matched", "false positives").

    Parameters
    ----------
    detections : sequence of Detection
    truth : pandas.DataFrame
        ``time`` (s) and ``label`` of each keyword event (:attr:`LongAudio.truth`).
    duration : float, seconds
        Length of the audio (false accepts per hour are counted over all of it).
    tolerance : float, seconds

    Returns
    -------
    dict
        ``keywords``, ``hits``, ``misses``, ``substitutions``, ``false_accepts`` (int),
        ``recall``, ``substitutions_per_hour``, ``false_accepts_per_hour`` (float), ``hours``.
    """
    outcomes = [outcome for _, outcome in _outcomes(detections, truth, tolerance)]
    hits, substitutions = outcomes.count("hit"), outcomes.count("substitution")
    times = truth["time"].to_numpy(float)
    hours = duration / SECONDS_PER_HOUR
    false = len(detections) - hits - substitutions
    return {
        "keywords": len(times), "hits": hits, "misses": len(times) - hits, "substitutions": substitutions,
        "false_accepts": false, "recall": hits / len(times) if len(times) else float("nan"),
        "substitutions_per_hour": substitutions / hours if hours else float("nan"),
        "false_accepts_per_hour": false / hours if hours else float("nan"), "hours": hours,
    }  # fmt: skip


def det_curve(
    times: np.ndarray, scores: np.ndarray, labels: Sequence[str], keywords: Sequence[str], truth: pd.DataFrame, *,
    duration: float, thresholds: Sequence[float] | None = None, tolerance: float = MATCH_TOLERANCE_SECONDS,
    events: pd.DataFrame | None = None, **trigger_kwargs: Any,
) -> pd.DataFrame:  # fmt: skip
    """The detection-error trade-off over the threshold, from one score trace.

    ``events`` (every placed clip, :attr:`LongAudio.events`) adds what the
    false accepts fired on (:func:`false_accept_sources`).

    Returns
    -------
    pandas.DataFrame
        One row per threshold: ``threshold``, ``recall``, ``miss_rate``,
        ``false_accepts``, ``false_accepts_per_hour``, ``substitutions``,
        ``substitutions_per_hour``, ``hits``, ``keywords`` (:func:`match_detections`);
        with ``events``, ``false_accepts_on_unknown_word``, ``false_accepts_on_keyword``
        and ``false_accepts_on_noise``.
    """
    thresholds = np.round(np.linspace(0.3, 0.99, 24), 3) if thresholds is None else thresholds
    ids = [list(labels).index(k) for k in keywords]
    rows = []
    for th in thresholds:
        found = trigger(times, scores, ids, labels, threshold=float(th), **trigger_kwargs)
        m = match_detections(found, truth, duration=duration, tolerance=tolerance)
        rows.append({"threshold": float(th), "recall": m["recall"], "miss_rate": 1 - m["recall"],
                     "false_accepts": m["false_accepts"], "false_accepts_per_hour": m["false_accepts_per_hour"],
                     "substitutions": m["substitutions"], "substitutions_per_hour": m["substitutions_per_hour"],
                     "hits": m["hits"], "keywords": m["keywords"]})  # fmt: skip
        if events is not None:
            sources = false_accept_sources(found, events, tolerance=tolerance)
            rows[-1].update({f"false_accepts_on_{k.replace(' ', '_')}": n for k, n in sources.items()})
    return pd.DataFrame(rows)


def choose_operating_point(curves: Mapping[int, pd.DataFrame], *, max_false_accepts_per_hour: float = 1.0,
                           ) -> tuple[int, float]:  # fmt: skip
    """The smoothing length and threshold with the highest recall at most the given false accepts per hour.

    ``curves`` maps a smoothing length (windows averaged) to the DET curve of
    the same cv audio smoothed that way (:func:`smooth`, :func:`det_curve`).
    For each length the threshold is :func:`choose_threshold`'s; among the
    lengths, the highest recall wins, then the fewest false accepts, then the
    shortest smoothing (the earliest detection). Choose on cv audio, report test.

    Returns
    -------
    (int, float)
        Windows to average, threshold.
    """
    if not curves:
        raise ValueError("no DET curves to choose an operating point from")
    ranked = []
    for windows, curve in curves.items():
        threshold = choose_threshold(curve, max_false_accepts_per_hour=max_false_accepts_per_hour)
        at = curve[curve["threshold"] == threshold].iloc[0]
        ranked.append((-float(at["recall"]), float(at["false_accepts_per_hour"]), int(windows), threshold))
    _, _, windows, threshold = min(ranked)
    return windows, threshold


def choose_threshold(curve: pd.DataFrame, *, max_false_accepts_per_hour: float = 1.0) -> float:
    """The operating point: the lowest threshold (highest recall) with at most the given false accepts per hour.

    Pick it on cv audio, then report test audio at it. When no threshold of
    the curve is that quiet, the highest one is returned.
    """
    ok = curve[curve["false_accepts_per_hour"] <= max_false_accepts_per_hour]
    return float(ok["threshold"].min()) if len(ok) else float(curve["threshold"].max())
