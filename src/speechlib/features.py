"""Features of a waveform: log-mel, MFCC, STFT, FFT, tempogram, chroma, raw waveform.

One implementation of each feature, used by the notebooks, the featurizer,
the Spark job, training and inference alike. Every feature is ``float32`` and
time-major: shape ``(frames, bins)``. Every parameter is keyword-only and has
a default listed by :func:`default_params`; the full parameter dict
(:func:`resolve_params`) is recorded with the stored features, so a model is
always fed what it was trained on.

Computing
    :func:`compute` (one clip), :func:`compute_batch` (a batch of clips),
    :func:`logmel`, :func:`logmel_batch`, :data:`KINDS`.
Parameters and shapes
    :func:`default_params`, :func:`resolve_params`, :func:`output_shape`,
    :data:`PRESETS`.
Normalisation
    :func:`fit_normalizer` (streaming per-band mean/std, training split only),
    :func:`normalize`; :func:`summary` (per-clip mean and std over time),
    :func:`mfcc_from_logmel`.

The log-mel spectrogram is the default feature (40 bands, 25 ms window,
10 ms hop, 512-point FFT: 101 frames x 40 bands for a 1-s clip). It is
``log(mel_power + 1e-6)`` (natural log, fixed offset): unlike
``librosa.power_to_db(..., top_db=80)`` it does not depend on the loudest
frame of the clip, so a clip's features do not change with what else is in
it. The power spectrogram is computed with numpy framing and one real FFT
per batch, and the mel filterbank (``librosa.filters.mel``, Slaney scale and
norm, 20 Hz to ``sample_rate / 2``) is built once per parameter set; the
result equals ``np.log(librosa.feature.melspectrogram(...) + 1e-6).T``
(tested) at a fraction of the cost.

Examples
--------
>>> import numpy as np
>>> from speechlib import features
>>> clip = np.zeros(16000, dtype=np.float32)
>>> features.compute(clip).shape
(101, 40)
>>> features.output_shape("stft", preset="spark")
(50, 1025)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import scipy.sparse

from speechlib.config import CLIP_SAMPLES, HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, WIN_LENGTH

__all__ = [
    "KINDS",
    "PRESETS",
    "compute",
    "compute_batch",
    "default_params",
    "fit_normalizer",
    "logmel",
    "logmel_batch",
    "mfcc_from_logmel",
    "normalize",
    "output_shape",
    "resolve_params",
    "summary",
]

KINDS = ("logmel", "mfcc", "stft", "fft", "tempogram", "chroma", "waveform")

_CHUNK = 8  # clips per numpy pass in logmel_batch (cache-sized)
LOG_OFFSET = 1e-6  # added to mel power before the log: -13.8 for digital silence, no -inf

_DEFAULTS: dict[str, dict[str, Any]] = {
    # log(mel power + log_offset), natural log.
    "logmel": {
        "sample_rate": SAMPLE_RATE,
        "n_mels": N_MELS,
        "n_fft": N_FFT,
        "win_length": WIN_LENGTH,
        "hop_length": HOP_LENGTH,
        "fmin": 20.0,
        "fmax": None,  # None: sample_rate / 2
        "center": True,
        "log_offset": LOG_OFFSET,
    },
    # DCT-II (orthonormal) of the log-mel above, first n_mfcc coefficients (+ deltas, delta-deltas).
    "mfcc": {
        "sample_rate": SAMPLE_RATE,
        "n_mfcc": 13,
        "n_mels": N_MELS,
        "n_fft": N_FFT,
        "win_length": WIN_LENGTH,
        "hop_length": HOP_LENGTH,
        "fmin": 20.0,
        "fmax": None,
        "center": True,
        "log_offset": LOG_OFFSET,
        "deltas": False,  # True: stack [mfcc, delta, delta-delta] -> 3 * n_mfcc columns
        "delta_width": 9,  # frames of the Savitzky-Golay window of librosa.feature.delta
    },
    # Log-power STFT in dB: 10 log10(max(|X|^2, 1e-10)), floored at (max - top_db); = librosa.amplitude_to_db(|X|).
    "stft": {
        "sample_rate": SAMPLE_RATE,
        "n_fft": N_FFT,
        "win_length": None,  # None: n_fft
        "hop_length": HOP_LENGTH,
        "center": True,
        "top_db": 80.0,  # None: no floor
        "preset": None,
    },
    # |rfft| of the whole clip as one frame: shape (1, n_fft // 2 + 1), (1, 8001) for 1 s.
    "fft": {
        "sample_rate": SAMPLE_RATE,
        "n_fft": CLIP_SAMPLES,  # the clip is zero-padded / cut to n_fft samples first
        "log": False,  # True: log(|X| + log_offset)
        "log_offset": LOG_OFFSET,
    },
    # librosa.feature.tempogram (autocorrelation of the onset strength), frames x lags.
    "tempogram": {
        "sample_rate": SAMPLE_RATE,
        "hop_length": HOP_LENGTH,
        "win_length": 100,  # lags in frames: 1 s at a 10 ms hop, the length of a clip
    },
    # librosa.feature.chroma_stft with tuning fixed at 0 (no per-clip tuning estimate), frames x 12.
    "chroma": {
        "sample_rate": SAMPLE_RATE,
        "n_chroma": 12,
        "n_fft": 2048,  # 7.8 Hz bins: a 512-point FFT is too coarse for low pitch classes
        "win_length": WIN_LENGTH,
        "hop_length": HOP_LENGTH,
        "center": True,
        "tuning": 0.0,
    },
    # The clip itself as (samples, 1): one channel, ready for a Conv1D.
    "waveform": {
        "sample_rate": SAMPLE_RATE,
    },
}

# Named parameter sets. "spark": the original Spark project's STFT (librosa.stft with n_fft 2048,
# hop 321, then amplitude_to_db): 1025 bins x 50 frames for a 1-s clip (1 + 16000 // 321 = 50, center=True).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "stft": {"spark": {"n_fft": 2048, "hop_length": 321, "win_length": None, "center": True, "top_db": 80.0}},
}


def default_params(kind: str, *, preset: str | None = None) -> dict[str, Any]:
    """All parameters of a feature kind with their defaults (a new dict).

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    preset : str, optional
        A named parameter set of that kind (:data:`PRESETS`), e.g. ``"spark"`` for ``"stft"``.

    Returns
    -------
    dict
        Parameter name -> default value (JSON-serialisable).
    """
    if kind not in _DEFAULTS:
        raise ValueError(f"unknown feature kind {kind!r}; choose one of {KINDS}")
    params = dict(_DEFAULTS[kind])
    if preset is not None:
        presets = PRESETS.get(kind, {})
        if preset not in presets:
            raise ValueError(f"unknown preset {preset!r} for {kind!r}; presets: {sorted(presets) or 'none'}")
        params.update(presets[preset], preset=preset)
    return params


def resolve_params(kind: str, **params: Any) -> dict[str, Any]:
    """The full parameter dict of a feature: defaults, then the preset, then ``params``.

    This is what :func:`compute` uses and what a feature store records.

    Raises
    ------
    ValueError
        Unknown kind, preset or parameter name (the message lists the valid ones).
    """
    resolved = default_params(kind, preset=params.get("preset"))
    unknown = sorted(set(params) - set(resolved))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for feature {kind!r}; valid: {sorted(resolved)}")
    resolved.update(params)
    return resolved


# --- The power spectrogram, shared by logmel, mfcc and stft -----------------------------------


@functools.lru_cache(maxsize=32)
def _window(win_length: int) -> np.ndarray:
    # Periodic Hann, as librosa.filters.get_window("hann", win_length, fftbins=True).
    window = scipy.signal.get_window("hann", win_length, fftbins=True).astype(np.float32)
    window.setflags(write=False)
    return window


@functools.lru_cache(maxsize=32)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> Any:
    """``librosa.filters.mel(...)`` as a sparse matrix, shape (n_mels, n_fft // 2 + 1), float32, cached.

    Each triangular filter covers a few FFT bins (490 non-zeros of 10,280 for
    the defaults). The sparse product runs in scipy's own single-threaded
    loop: as fast as a dense BLAS product on one thread, and immune to BLAS
    threads fighting each other when several featurizer processes share the cores.
    """
    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return scipy.sparse.csr_array(basis.astype(np.float32))


def _num_frames(num_samples: int, *, n_fft: int, hop_length: int, center: bool) -> int:
    if center:
        return 1 + num_samples // hop_length
    return max(0, 1 + (num_samples - n_fft) // hop_length)


def _power_spectrogram(
    waveforms: np.ndarray, *, n_fft: int, win_length: int | None, hop_length: int, center: bool
) -> np.ndarray:
    """|STFT|^2 of a batch, shape (batch, frames, n_fft // 2 + 1), float32.

    Same frames as ``librosa.stft(..., center=center, pad_mode="constant")``:
    with ``center`` the signal is zero-padded by ``n_fft // 2`` on both sides.
    The ``win_length`` window sits in the middle of each ``n_fft`` frame in
    librosa; here only those ``win_length`` samples are taken and the FFT
    zero-pads them at the end: a circular shift, which leaves ``|X|`` unchanged.
    """
    win_length = n_fft if win_length is None else int(win_length)
    if not 0 < win_length <= n_fft:
        raise ValueError(f"win_length ({win_length}) must be in (0, n_fft={n_fft}]")
    n = waveforms.shape[-1]
    num_frames = _num_frames(n, n_fft=n_fft, hop_length=hop_length, center=center)
    if num_frames < 1:
        raise ValueError(f"a waveform of {n} samples is shorter than one frame (n_fft={n_fft}, center=False)")
    lead = (n_fft - win_length) // 2  # where librosa's padded window starts inside the frame
    pad = n_fft // 2 if center else 0
    # Zero-pad so that every frame's window span [t*hop + lead, t*hop + lead + win_length) exists.
    needed = (num_frames - 1) * hop_length + lead + win_length
    padded = np.zeros((waveforms.shape[0], max(needed, n + pad)), dtype=np.float32)
    padded[:, pad : pad + n] = waveforms
    frames = np.lib.stride_tricks.sliding_window_view(padded[:, lead:needed], win_length, axis=-1)[:, ::hop_length]
    spectrum = scipy.fft.rfft(frames * _window(win_length), n=n_fft, axis=-1)
    return (spectrum.real**2 + spectrum.imag**2).astype(np.float32, copy=False)


def _as_batch(waveforms: Any) -> np.ndarray:
    waveforms = np.asarray(waveforms, dtype=np.float32)
    if waveforms.ndim != 2:
        raise ValueError(f"expected a batch of waveforms of shape (batch, n_samples), got {waveforms.shape}")
    return waveforms


def _as_clip(waveform: Any) -> np.ndarray:
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"expected one waveform of shape (n_samples,), got {waveform.shape}")
    return waveform


# --- log-mel -----------------------------------------------------------------------------------


def logmel_batch(
    waveforms: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    win_length: int = WIN_LENGTH,
    hop_length: int = HOP_LENGTH,
    fmin: float = 20.0,
    fmax: float | None = None,
    center: bool = True,
    log_offset: float = LOG_OFFSET,
) -> np.ndarray:
    """Log-mel spectrograms of a batch of clips, in one numpy pass.

    Parameters
    ----------
    waveforms : np.ndarray, shape (batch, n_samples), float32 in [-1, 1]
        Clips of equal length (see ``speechlib.audio.fix_length``).
    sample_rate : int, Hz
    n_mels : int
        Mel bands (Slaney mel scale and area normalisation, as librosa).
    n_fft : int, samples
        FFT size; ``n_fft // 2 + 1`` frequency bins before the mel filterbank.
    win_length : int, samples
        Hann window length (25 ms at 16 kHz by default), zero-padded to ``n_fft``.
    hop_length : int, samples
        Step between frames (10 ms at 16 kHz by default).
    fmin, fmax : float, Hz
        Frequency range of the mel filterbank; ``fmax=None`` means ``sample_rate / 2``.
    center : bool
        Zero-pad ``n_fft // 2`` samples at both ends so that frame ``t`` is
        centred on sample ``t * hop_length``: ``1 + n_samples // hop_length`` frames.
    log_offset : float
        Added to the mel power before the natural log.

    Returns
    -------
    np.ndarray, shape (batch, frames, n_mels), float32
        ``log(mel_power + log_offset)``; (batch, 101, 40) for 1-s clips with
        the defaults. Digital silence gives ``log(1e-6) = -13.8``.
    """
    waveforms = _as_batch(waveforms)
    fmax = sample_rate / 2 if fmax is None else fmax
    basis = _mel_basis(int(sample_rate), int(n_fft), int(n_mels), float(fmin), float(fmax))
    frames = _num_frames(waveforms.shape[1], n_fft=n_fft, hop_length=hop_length, center=center)
    out = np.empty((waveforms.shape[0], frames, n_mels), dtype=np.float32)
    # A few clips at a time: the frames and spectra of a small chunk stay in the CPU cache,
    # which is faster per clip than one pass over a large batch.
    for i in range(0, waveforms.shape[0], _CHUNK):
        chunk = waveforms[i : i + _CHUNK]
        power = _power_spectrogram(chunk, n_fft=n_fft, win_length=win_length, hop_length=hop_length, center=center)
        mel = basis @ power.reshape(-1, power.shape[-1]).T  # (n_mels, chunk * frames)
        out[i : i + len(chunk)] = mel.T.reshape(len(chunk), frames, n_mels)
    out += np.float32(log_offset)
    return np.log(out, out=out)


def logmel(waveform: np.ndarray, **params: Any) -> np.ndarray:
    """Log-mel spectrogram of one clip, shape (frames, n_mels), float32; parameters of :func:`logmel_batch`."""
    return logmel_batch(_as_clip(waveform)[None, :], **params)[0]


# --- The other kinds (each takes one waveform and its resolved params) ------------------------


def mfcc_from_logmel(log_mel: np.ndarray, *, n_mfcc: int) -> np.ndarray:
    """MFCCs of log-mel features: the orthonormal type-II DCT over the bands, first ``n_mfcc`` coefficients.

    What ``librosa.feature.mfcc`` does to a log-mel spectrogram, and the ``"mfcc"`` kind of :func:`compute`.

    Parameters
    ----------
    log_mel : np.ndarray, shape (..., n_mels), float32
        Log-mel features, bands on the last axis (e.g. (N, 101, 40)).
    n_mfcc : int, keyword-only
        Coefficients kept, 1 to ``n_mels``.

    Returns
    -------
    np.ndarray, shape (..., n_mfcc)
    """
    if not 0 < n_mfcc <= log_mel.shape[-1]:
        raise ValueError(f"n_mfcc={n_mfcc} must be between 1 and the number of bins ({log_mel.shape[-1]})")
    return scipy.fft.dct(log_mel, type=2, norm="ortho", axis=-1)[..., :n_mfcc]


def _mfcc_batch(waveforms: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    coefs = mfcc_from_logmel(_logmel_batch(waveforms, p), n_mfcc=p["n_mfcc"])
    if not p["deltas"]:
        return np.ascontiguousarray(coefs, dtype=np.float32)

    width = int(p["delta_width"])
    mode = "interp" if coefs.shape[1] >= width else "nearest"  # interp needs at least `width` frames
    d1 = librosa.feature.delta(coefs, width=width, order=1, axis=1, mode=mode)
    d2 = librosa.feature.delta(coefs, width=width, order=2, axis=1, mode=mode)
    return np.concatenate([coefs, d1, d2], axis=-1).astype(np.float32)


def _stft_batch(waveforms: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    power = _power_spectrogram(
        waveforms, n_fft=p["n_fft"], win_length=p["win_length"], hop_length=p["hop_length"], center=p["center"]
    )
    db = 10.0 * np.log10(np.maximum(power, np.float32(1e-10)))
    if p["top_db"] is not None:
        floor = db.max(axis=(1, 2), keepdims=True) - np.float32(p["top_db"])
        db = np.maximum(db, floor)
    return db.astype(np.float32, copy=False)


def _fft_batch(waveforms: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    magnitude = np.abs(scipy.fft.rfft(waveforms, n=int(p["n_fft"]), axis=-1)).astype(np.float32)
    if p["log"]:
        magnitude = np.log(magnitude + np.float32(p["log_offset"]))
    return magnitude[:, None, :]


def _tempogram(waveform: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    t = librosa.feature.tempogram(
        y=waveform, sr=p["sample_rate"], hop_length=p["hop_length"], win_length=p["win_length"]
    )
    return np.ascontiguousarray(t.T, dtype=np.float32)


def _chroma(waveform: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    c = librosa.feature.chroma_stft(
        y=waveform,
        sr=p["sample_rate"],
        n_chroma=p["n_chroma"],
        n_fft=p["n_fft"],
        win_length=p["win_length"],
        hop_length=p["hop_length"],
        center=p["center"],
        tuning=p["tuning"],
    )
    return np.ascontiguousarray(c.T, dtype=np.float32)


def _logmel_batch(waveforms: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    return logmel_batch(waveforms, **{k: p[k] for k in _DEFAULTS["logmel"]})


def _waveform_batch(waveforms: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    return np.array(waveforms[:, :, None], dtype=np.float32)


_BATCHED = {
    "logmel": _logmel_batch,
    "mfcc": _mfcc_batch,
    "stft": _stft_batch,
    "fft": _fft_batch,
    "waveform": _waveform_batch,
}
_PER_CLIP = {"tempogram": _tempogram, "chroma": _chroma}


def compute(waveform: np.ndarray, kind: str = "logmel", **params: Any) -> np.ndarray:
    """One feature of one clip.

    Parameters
    ----------
    waveform : np.ndarray, shape (n_samples,), float32 in [-1, 1]
        Pad or trim it first (``speechlib.audio.fix_length``) to get the
        documented shapes; the features accept any length.
    kind : str
        One of :data:`KINDS`:

        - ``"logmel"``: log mel power, (101, 40) by default;
        - ``"mfcc"``: MFCC from the same log-mel, (101, 13); ``deltas=True`` -> (101, 39);
        - ``"stft"``: log-power STFT in dB, (101, 257); ``preset="spark"`` -> (50, 1025);
        - ``"fft"``: |rfft| of the whole clip as one frame, (1, 8001);
        - ``"tempogram"``: onset autocorrelation, (101, 100);
        - ``"chroma"``: 12 pitch classes, (101, 12);
        - ``"waveform"``: the clip itself, (16000, 1).
    **params
        Keyword parameters of the kind (:func:`default_params`); ``preset``
        picks a named set (:data:`PRESETS`).

    Returns
    -------
    np.ndarray, shape (frames, bins), float32
    """
    p = resolve_params(kind, **params)
    waveform = _as_clip(waveform)
    if kind in _PER_CLIP:
        return _PER_CLIP[kind](waveform, p)
    return _BATCHED[kind](waveform[None, :], p)[0]


def compute_batch(waveforms: np.ndarray, kind: str = "logmel", **params: Any) -> np.ndarray:
    """One feature of a batch of equal-length clips, shape (batch, frames, bins), float32.

    Vectorised in one numpy pass for logmel, mfcc, stft, fft and waveform;
    a loop over clips for tempogram and chroma. Same values as :func:`compute`.
    """
    p = resolve_params(kind, **params)
    waveforms = _as_batch(waveforms)
    if kind in _PER_CLIP:
        shape = output_shape(kind, num_samples=waveforms.shape[1], **params)
        out = np.empty((waveforms.shape[0], *shape), dtype=np.float32)
        for i, waveform in enumerate(waveforms):
            out[i] = _PER_CLIP[kind](waveform, p)
        return out
    return _BATCHED[kind](waveforms, p)


def output_shape(kind: str = "logmel", *, num_samples: int = CLIP_SAMPLES, **params: Any) -> tuple[int, ...]:
    """Shape of ``compute(waveform, kind, **params)`` for a clip of ``num_samples`` samples.

    Examples
    --------
    >>> output_shape("logmel")
    (101, 40)
    >>> output_shape("mfcc", deltas=True)
    (101, 39)
    """
    p = resolve_params(kind, **params)
    if kind == "waveform":
        return (num_samples, 1)
    if kind == "fft":
        return (1, int(p["n_fft"]) // 2 + 1)
    frames = _num_frames(num_samples, n_fft=p.get("n_fft", 0), hop_length=p["hop_length"], center=p.get("center", True))
    bins = {
        "logmel": lambda: p["n_mels"],
        "mfcc": lambda: p["n_mfcc"] * (3 if p["deltas"] else 1),
        "stft": lambda: p["n_fft"] // 2 + 1,
        "tempogram": lambda: p["win_length"],
        "chroma": lambda: p["n_chroma"],
    }[kind]()
    return (frames, int(bins))


# --- Per-clip summary -----------------------------------------------------------------------------


def summary(X: np.ndarray, *, n_mfcc: int | None = None) -> np.ndarray:
    """One fixed-length vector per clip: the mean and standard deviation over time of each bin.

    Parameters
    ----------
    X : np.ndarray, shape (N, frames, bins)
        Time-major features, e.g. log-mel (N, 101, 40) or MFCC.
    n_mfcc : int or None, keyword-only
        When an int, X is taken to be log-mel and turned into its first
        ``n_mfcc`` MFCCs first (:func:`mfcc_from_logmel`); ``None``
        summarises the bins of X as they are.

    Returns
    -------
    np.ndarray, shape (N, 2 * k), float32
        ``[mean_1..mean_k, std_1..std_k]`` with k = ``n_mfcc`` or ``bins``.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3:
        raise ValueError(f"a summary needs (N, frames, bins) features, got shape {X.shape}")
    if n_mfcc is not None:
        X = mfcc_from_logmel(X, n_mfcc=n_mfcc)
    return np.concatenate([X.mean(axis=1), X.std(axis=1)], axis=1).astype(np.float32)


# --- Normalisation -----------------------------------------------------------------------------


def fit_normalizer(X_iter: Iterable[np.ndarray] | np.ndarray) -> dict[str, Any]:
    """Per-band mean and standard deviation, streamed over batches.

    Fit it on the training split only; apply it to every split with
    :func:`normalize`. Statistics are accumulated in float64 and batches are
    merged with Chan et al.'s parallel update, so the result does not depend
    on how the data is batched and memory does not grow with the dataset.

    Parameters
    ----------
    X_iter : iterable of np.ndarray, each shape (..., bins), or one such array
        Batches of features, e.g. (batch, frames, bins); every axis except the
        last is reduced.

    Returns
    -------
    dict
        ``mean`` and ``std`` (np.ndarray, shape (bins,), float32; population
        std, ``ddof=0``) and ``count`` (int, values per band).
    """
    batches = [X_iter] if isinstance(X_iter, np.ndarray) else X_iter
    count, mean, m2 = 0, None, None
    for batch in batches:
        batch = np.asarray(batch)
        values = batch.reshape(-1, batch.shape[-1]).astype(np.float64, copy=False)
        n = values.shape[0]
        if n == 0:
            continue
        batch_mean = values.mean(axis=0)
        batch_m2 = ((values - batch_mean) ** 2).sum(axis=0)
        if mean is None:
            count, mean, m2 = n, batch_mean, batch_m2
            continue
        if batch_mean.shape != mean.shape:
            raise ValueError(f"batches disagree on the number of bands: {batch_mean.shape[0]} vs {mean.shape[0]}")
        total = count + n
        delta = batch_mean - mean
        mean = mean + delta * (n / total)
        m2 = m2 + batch_m2 + delta**2 * (count * n / total)
        count = total
    if mean is None:
        raise ValueError("fit_normalizer got no data (an empty training split?)")
    std = np.sqrt(m2 / count)
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32), "count": int(count)}


def normalize(X: np.ndarray, stats: dict[str, Any], *, eps: float = 1e-6) -> np.ndarray:
    """``(X - mean) / max(std, eps)`` per band (last axis), float32.

    Parameters
    ----------
    X : np.ndarray, shape (..., bins)
    stats : dict
        From :func:`fit_normalizer` (lists, as read back from JSON, work too).
    eps : float
        Floor of the std, so constant bands do not divide by zero.
    """
    mean = np.asarray(stats["mean"], dtype=np.float32)
    std = np.maximum(np.asarray(stats["std"], dtype=np.float32), np.float32(eps))
    return ((np.asarray(X, dtype=np.float32) - mean) / std).astype(np.float32, copy=False)
