"""Data augmentation: background noise at an SNR, shift, stretch, pitch, gain, SpecAugment.

Every function is pure numpy on ``float32`` waveforms (shape ``(n_samples,)``,
values in [-1, 1]) and keeps the length and dtype of its input, so the same
code serves on the fly (a keras ``PyDataset`` or ``tf.data`` through
``tf.numpy_function``, a different draw every epoch) and offline (N
augmented copies featurized and stored). Randomness always comes from a
``np.random.Generator`` passed in: the same seed gives the same result, in
any process.

Waveform augmentations
    :func:`mix_noise` (exact SNR), :class:`NoiseBank` (1-s noise windows from
    one split's own noise regions), :func:`time_shift` (zero fill, no
    wrap-around), :func:`time_stretch`, :func:`pitch_shift`, :func:`gain`.
Feature augmentation
    :func:`spec_augment`, :func:`mask_time`, :func:`mask_freq`, :class:`SpecAugment`.
Combined
    :class:`Augmenter` — the waveform augmentations with probabilities, a picklable callable.

Noise of the test split never reaches training: a :class:`NoiseBank` is built
from the ``noise_regions`` of one split in ``split.json`` (disjoint sample
ranges of the background-noise recordings), e.g. ``NoiseBank.from_split(split_dir, "train")``.

Examples
--------
>>> import numpy as np
>>> from speechlib import augment
>>> rng = np.random.default_rng(0)
>>> clip = np.zeros(16000, dtype=np.float32)
>>> noise = augment.NoiseBank.from_arrays([rng.uniform(-0.1, 0.1, 48000).astype(np.float32)])
>>> augmenter = augment.Augmenter(noise=noise)
>>> augmenter(clip, rng=rng).shape
(16000,)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import librosa
import numpy as np

from speechlib import audio
from speechlib.config import CLIP_SAMPLES, SAMPLE_RATE, SEED

__all__ = [
    "Augmenter",
    "NoiseBank",
    "SpecAugment",
    "gain",
    "mask_freq",
    "mask_time",
    "mix_noise",
    "pitch_shift",
    "rms",
    "spec_augment",
    "speed",
    "time_shift",
    "time_stretch",
]

_SILENT_RMS = 1e-8  # below this a signal counts as silent: its SNR is undefined


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _as_clip(waveform: Any) -> np.ndarray:
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"expected one waveform of shape (n_samples,), got {waveform.shape}")
    return waveform


def rms(waveform: np.ndarray) -> float:
    """Root-mean-square level of a waveform."""
    x = np.asarray(waveform, dtype=np.float32).ravel()
    return float(np.sqrt(np.dot(x, x) / x.size)) if x.size else 0.0


# --- Waveform augmentations ----------------------------------------------------------------------


def mix_noise(waveform: np.ndarray, noise: np.ndarray, *, snr_db: float) -> np.ndarray:
    """Add noise scaled to an exact signal-to-noise ratio.

    The noise is scaled so that ``20 log10(rms(waveform) / rms(scaled noise))
    == snr_db``. If the mix would exceed full scale the whole mix is scaled
    down (which keeps the SNR exact) instead of clipped.

    Parameters
    ----------
    waveform : np.ndarray, shape (n_samples,), float32 in [-1, 1]
    noise : np.ndarray, shape (>= n_samples,), float32
        Its first ``n_samples`` samples are used.
    snr_db : float, dB

    Returns
    -------
    np.ndarray, shape (n_samples,), float32 in [-1, 1]
        A silent waveform (digital silence) or silent noise is returned
        unchanged (a copy): an SNR is undefined there.
    """
    waveform = _as_clip(waveform)
    noise = _as_clip(noise)
    if noise.shape[0] < waveform.shape[0]:
        raise ValueError(f"noise has {noise.shape[0]} samples, fewer than the waveform's {waveform.shape[0]}")
    noise = noise[: waveform.shape[0]]
    signal_rms, noise_rms = rms(waveform), rms(noise)
    if signal_rms < _SILENT_RMS or noise_rms < _SILENT_RMS:
        return waveform.copy()
    scale = signal_rms / (noise_rms * 10.0 ** (snr_db / 20.0))
    mixed = noise * np.float32(scale)
    mixed += waveform
    peak = float(np.abs(mixed).max())
    if peak > 1.0:
        mixed *= np.float32(1.0 / peak)
    return mixed


def time_shift(waveform: np.ndarray, *, shift: int) -> np.ndarray:
    """Shift a waveform in time, filling with zeros (no wrap-around).

    Parameters
    ----------
    waveform : np.ndarray, shape (n_samples,)
    shift : int, samples
        Positive: later (zeros enter at the start, the end drops off);
        negative: earlier (zeros at the end).

    Returns
    -------
    np.ndarray, shape (n_samples,), float32
    """
    waveform = _as_clip(waveform)
    n, shift = waveform.shape[0], int(shift)
    out = np.zeros(n, dtype=np.float32)
    if abs(shift) >= n:
        return out
    if shift >= 0:
        out[shift:] = waveform[: n - shift]
    else:
        out[:shift] = waveform[-shift:]
    return out


def gain(waveform: np.ndarray, *, gain_db: float) -> np.ndarray:
    """Multiply by ``10 ** (gain_db / 20)``, clipped to [-1, 1]; float32, same shape."""
    out = _as_clip(waveform) * np.float32(10.0 ** (gain_db / 20.0))
    return np.clip(out, -1.0, 1.0, out=out)


def time_stretch(waveform: np.ndarray, *, rate: float) -> np.ndarray:
    """Speed up (``rate > 1``) or slow down (``rate < 1``) without changing pitch; same length.

    ``librosa.effects.time_stretch`` (phase vocoder), then back to the input
    length: a shorter result is centred and padded with zeros; a longer one
    (slowed down) keeps the window of the input's length that holds the most
    energy, so the word is never cut where it fits (a centred crop would cut
    the onset of a word said early in the clip). A few milliseconds per 1-s
    clip: fine offline and on the fly with workers.
    """
    waveform = _as_clip(waveform)
    n = waveform.shape[0]
    stretched = librosa.effects.time_stretch(waveform, rate=float(rate))
    if stretched.shape[0] <= n:
        return audio.fix_length(stretched, length=n, position="center")
    energy = np.concatenate([[0.0], np.cumsum(stretched.astype(np.float64) ** 2)])
    window = energy[n:] - energy[:-n]  # energy of every window of n samples
    start = int(np.argmax(window))
    return stretched[start : start + n].astype(np.float32)


def speed(waveform: np.ndarray, *, factor: float) -> np.ndarray:
    """Play a clip ``factor`` times faster (pitch and tempo together, as a tape); same length, float32.

    Speed perturbation (Ko, Peddinti, Povey & Khudanpur 2015, "Audio
    Augmentation for Speech Recognition", Interspeech): the waveform is read
    at ``factor`` times the rate by linear interpolation, ``y[n] = x(factor * n)``,
    which raises (``factor > 1``) or lowers every frequency — pitch and formants,
    as between a smaller and a larger speaker — and shortens or lengthens the
    word. The result is centred on the input's centre and fitted back to the
    input length with zeros (a slower word of a 1-s clip loses at most
    ``(1 - 1 / factor) / 2`` of each end, where the clip is silent in Speech
    Commands: words sit near the middle). Tens of microseconds per clip.
    """
    waveform = _as_clip(waveform)
    n = waveform.shape[0]
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, not {factor}")
    centre = (n - 1) / 2.0
    positions = centre + (np.arange(n, dtype=np.float64) - centre) * float(factor)
    return np.interp(positions, np.arange(n), waveform, left=0.0, right=0.0).astype(np.float32)


def pitch_shift(waveform: np.ndarray, *, n_steps: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Shift the pitch by ``n_steps`` semitones without changing duration; same length, float32.

    ``librosa.effects.pitch_shift`` (time stretch + soxr resampling).
    """
    waveform = _as_clip(waveform)
    shifted = librosa.effects.pitch_shift(waveform, sr=sample_rate, n_steps=float(n_steps))
    out = audio.fix_length(shifted, length=waveform.shape[0], position="left")
    return np.clip(out, -1.0, 1.0, out=out)


# --- Noise from a split's own noise regions ------------------------------------------------------


class NoiseBank:
    """Random 1-s windows of background noise, drawn from a fixed set of regions.

    Build it from one split's ``noise_regions`` (``split.json``): each region
    (a ``[start, stop)`` sample range of one noise recording) is read once,
    on first use, with :func:`speechlib.audio.load`; windows never cross a
    region's bounds, so a bank of the training split never yields test noise.

    Pickling sends only the region list (the audio is read again in the
    receiving process), so a bank is cheap to ship to worker processes.

    Parameters
    ----------
    regions : sequence of dict
        Each with ``path`` (str, the recording), ``start`` and ``stop``
        (int, samples at ``sample_rate``); ``relpath`` is kept for reports.
        Regions shorter than ``length`` are ignored.
    length : int, samples
        Window length (default ``CLIP_SAMPLES``).
    sample_rate : int, Hz
    """

    def __init__(self, regions: Sequence[dict], *, length: int = CLIP_SAMPLES, sample_rate: int = SAMPLE_RATE):
        self.regions = [
            {"relpath": r.get("relpath", ""), "path": str(r["path"]), "start": int(r["start"]), "stop": int(r["stop"])}
            for r in regions
        ]
        self.length = int(length)
        self.sample_rate = int(sample_rate)
        self._arrays: list[np.ndarray] | None = None
        if not any(r["stop"] - r["start"] >= self.length for r in self.regions):
            raise ValueError(
                f"no noise region is at least {self.length} samples long ({len(self.regions)} regions given); "
                "check the split's noise_regions in split.json"
            )

    @classmethod
    def from_arrays(cls, arrays: Sequence[np.ndarray], *, length: int = CLIP_SAMPLES) -> NoiseBank:
        """A bank over noise already in memory (each array shape (n_samples,), float32)."""
        bank = cls.__new__(cls)
        bank.regions = []
        bank.length = int(length)
        bank.sample_rate = SAMPLE_RATE
        bank._arrays = [_as_clip(a) for a in arrays if np.asarray(a).shape[0] >= length]
        if not bank._arrays:
            raise ValueError(f"no noise array is at least {length} samples long")
        return bank

    @classmethod
    def from_split(cls, split_dir: str | Path, split: str = "train", **kwargs: Any) -> NoiseBank:
        """The bank of one split from ``<split_dir>/split.json``'s ``noise_regions``."""
        path = Path(split_dir) / "split.json"
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read the split description ({exc}); run `speechlib split` first") from exc
        regions = info.get("noise_regions", {}).get(split)
        if not regions:
            raise ValueError(f"{path}: no noise regions for split {split!r}; the dataset has no background noise?")
        return cls(regions, **kwargs)

    def _load(self) -> list[np.ndarray]:
        if self._arrays is None:
            arrays = []
            for r in self.regions:
                if r["stop"] - r["start"] >= self.length:
                    x = audio.load(
                        r["path"], sample_rate=self.sample_rate, offset=r["start"], num_samples=r["stop"] - r["start"]
                    )
                    if x.shape[0] >= self.length:
                        arrays.append(x)
            if not arrays:
                raise ValueError(f"no noise region yields {self.length} samples: {self.regions}")
            self._arrays = arrays
        return self._arrays

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self.regions:  # the audio is re-read from the files on the other side
            state["_arrays"] = None
        return state

    def __len__(self) -> int:
        return len(self._load())

    def sample(self, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """One random window, shape (length,), float32.

        The region is chosen in proportion to its number of possible windows,
        so every window of the bank is equally likely.
        """
        rng = _rng(rng)
        arrays = self._load()
        room = np.array([a.shape[0] - self.length + 1 for a in arrays], dtype=np.float64)
        i = int(rng.choice(len(arrays), p=room / room.sum())) if len(arrays) > 1 else 0
        start = int(rng.integers(0, room[i]))
        return arrays[i][start : start + self.length].copy()


# --- The combined waveform augmenter ---------------------------------------------------------------


@dataclasses.dataclass
class Augmenter:
    """Random waveform augmentations, each applied with its own probability.

    In order: speed, time stretch, pitch shift, time shift, background noise, gain.
    The output keeps the input's length, is float32 and lies in [-1, 1].

    Parameters
    ----------
    noise : NoiseBank, optional
        Where background noise comes from: the *same split's* noise regions.
        ``None`` disables noise.
    noise_prob : float
        Probability of adding noise (0.8, as in the TensorFlow speech-commands example).
    snr_db : (float, float), dB
        SNR drawn uniformly from this range.
    shift_prob : float
    max_shift : float, seconds
        Shift drawn uniformly from ``[-max_shift, max_shift]`` (100 ms), zero fill.
    gain_prob : float
    gain_db : (float, float), dB
    speed_prob : float
        Probability of speed perturbation (:func:`speed`); 0 by default.
    speed_range : (float, float)
        Factor drawn log-uniformly from this range.
    stretch_prob : float
        0 by default: the phase vocoder costs milliseconds per clip.
    stretch_rate : (float, float)
        Rate drawn log-uniformly from this range.
    pitch_prob : float
        0 by default (slow, as stretch).
    pitch_steps : (float, float), semitones
    sample_rate : int, Hz
    seed : int, optional
        Seeds the generator used when a call passes no ``rng``.

    Examples
    --------
    >>> augmenter = Augmenter(noise=None, gain_prob=1.0)
    >>> rng = np.random.default_rng(0)
    >>> out = augmenter(np.zeros(16000, dtype=np.float32), rng=rng)
    """

    noise: NoiseBank | None = None
    noise_prob: float = 0.8
    snr_db: tuple[float, float] = (0.0, 20.0)
    shift_prob: float = 1.0
    max_shift: float = 0.1
    gain_prob: float = 0.5
    gain_db: tuple[float, float] = (-6.0, 6.0)
    speed_prob: float = 0.0
    speed_range: tuple[float, float] = (0.9, 1.1)
    stretch_prob: float = 0.0
    stretch_rate: tuple[float, float] = (0.85, 1.15)
    pitch_prob: float = 0.0
    pitch_steps: tuple[float, float] = (-2.0, 2.0)
    sample_rate: int = SAMPLE_RATE
    seed: int | None = SEED

    def __post_init__(self) -> None:
        for name in ("noise_prob", "shift_prob", "gain_prob", "speed_prob", "stretch_prob", "pitch_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, waveform: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """One random augmentation of ``waveform`` (shape (n_samples,)); same shape, float32.

        ``rng``: a Generator (advanced by the call), an int seed, or ``None``
        for the augmenter's own generator (seeded with ``seed``).
        """
        rng = self._rng if rng is None else _rng(rng)
        x = _as_clip(waveform)
        if self.speed_prob and rng.random() < self.speed_prob:
            low, high = np.log(self.speed_range)
            x = speed(x, factor=float(np.exp(rng.uniform(low, high))))
        if self.stretch_prob and rng.random() < self.stretch_prob:
            low, high = np.log(self.stretch_rate)
            x = time_stretch(x, rate=float(np.exp(rng.uniform(low, high))))
        if self.pitch_prob and rng.random() < self.pitch_prob:
            x = pitch_shift(x, n_steps=float(rng.uniform(*self.pitch_steps)), sample_rate=self.sample_rate)
        if self.shift_prob and rng.random() < self.shift_prob:
            limit = round(self.max_shift * self.sample_rate)
            x = time_shift(x, shift=int(rng.integers(-limit, limit + 1)))
        if self.noise is not None and self.noise_prob and rng.random() < self.noise_prob:
            window = self.noise.sample(rng)
            if window.shape[0] < x.shape[0]:
                window = audio.fix_length(window, length=x.shape[0], position="left")
            x = mix_noise(x, window, snr_db=float(rng.uniform(*self.snr_db)))
        if self.gain_prob and rng.random() < self.gain_prob:
            x = gain(x, gain_db=float(rng.uniform(*self.gain_db)))
        return np.array(x, dtype=np.float32)  # always a new array, never the input

    def copies(
        self, waveform: np.ndarray, num_copies: int, *, rng: np.random.Generator | int | None = None
    ) -> np.ndarray:
        """``num_copies`` independent augmentations of one clip, shape (num_copies, n_samples), float32."""
        rng = self._rng if rng is None else _rng(rng)
        return (
            np.stack([self(waveform, rng=rng) for _ in range(num_copies)])
            if num_copies
            else np.empty((0, np.shape(waveform)[0]), dtype=np.float32)
        )

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-serialisable data (recorded with stored features)."""
        config = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "noise"}
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
        config["noise_regions"] = None if self.noise is None else self.noise.regions
        return config


# --- SpecAugment (Park et al. 2019) --------------------------------------------------------------


def _fill(features: np.ndarray, value: float | None) -> np.float32:
    return np.float32(features.mean() if value is None else value)


def mask_time(features: np.ndarray, *, start: int, width: int, value: float | None = None) -> np.ndarray:
    """Set frames ``[start, start + width)`` of a (frames, bins) feature to ``value`` (a new array).

    ``value=None`` uses the feature's mean (0 for normalised features, as in Park et al.).
    """
    out = np.array(features, dtype=np.float32)
    out[start : start + width, :] = _fill(features, value)
    return out


def mask_freq(features: np.ndarray, *, start: int, width: int, value: float | None = None) -> np.ndarray:
    """Set bins ``[start, start + width)`` of a (frames, bins) feature to ``value`` (a new array)."""
    out = np.array(features, dtype=np.float32)
    out[:, start : start + width] = _fill(features, value)
    return out


def spec_augment(
    features: np.ndarray,
    *,
    rng: np.random.Generator | int | None = None,
    num_time_masks: int = 2,
    time_width: int = 10,
    num_freq_masks: int = 2,
    freq_width: int = 5,
    fixed_width: bool = False,
    value: float | None = None,
) -> np.ndarray:
    """SpecAugment time and frequency masking (Park et al. 2019, arXiv:1904.08779).

    Each of ``num_time_masks`` masks covers ``t`` consecutive frames, ``t``
    uniform in ``[0, time_width]`` (exactly ``time_width`` with
    ``fixed_width``), starting uniformly in ``[0, frames - t]``; frequency
    masks likewise over bins. Masks may overlap. Time warping, the paper's
    third and least useful policy, is left out.

    Parameters
    ----------
    features : np.ndarray, shape (frames, bins) or (batch, frames, bins)
        Log-mel or similar, time-major. A batch gets independent masks per item.
    rng : np.random.Generator or int, optional
    num_time_masks, num_freq_masks : int
    time_width : int, frames
        ``T`` of the paper (10 frames = 100 ms at a 10 ms hop).
    freq_width : int, bins
        ``F`` of the paper.
    fixed_width : bool
        Use exactly the given widths instead of drawing them.
    value : float, optional
        Fill value; ``None``: the mean of each item (0 once normalised, as the paper).

    Returns
    -------
    np.ndarray, same shape, float32 (a new array)
    """
    rng = _rng(rng)
    out = np.array(features, dtype=np.float32)
    if out.ndim == 3:
        for item in out:
            item[...] = spec_augment(
                item,
                rng=rng,
                num_time_masks=num_time_masks,
                time_width=time_width,
                num_freq_masks=num_freq_masks,
                freq_width=freq_width,
                fixed_width=fixed_width,
                value=value,
            )
        return out
    if out.ndim != 2:
        raise ValueError(f"spec_augment expects (frames, bins) or (batch, frames, bins), got {out.shape}")
    fill = _fill(out, value)
    for axis, count, max_width in ((0, num_time_masks, time_width), (1, num_freq_masks, freq_width)):
        size = out.shape[axis]
        for _ in range(count):
            width = min(int(max_width), size) if fixed_width else int(rng.integers(0, min(max_width, size) + 1))
            start = int(rng.integers(0, size - width + 1))
            if axis == 0:
                out[start : start + width, :] = fill
            else:
                out[:, start : start + width] = fill
    return out


@dataclasses.dataclass
class SpecAugment:
    """:func:`spec_augment` with a fixed configuration, as a picklable callable ``(features, rng) -> features``."""

    num_time_masks: int = 2
    time_width: int = 10
    num_freq_masks: int = 2
    freq_width: int = 5
    fixed_width: bool = False
    value: float | None = None

    def __call__(self, features: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
        return spec_augment(features, rng=rng, **dataclasses.asdict(self))
