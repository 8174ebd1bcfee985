"""The embedded default dataset: synthetic Speech Commands, made offline with espeak-ng.

A new user has no 1.4 GB download, yet the course must run end to end. This
module writes a folder that a reader of the real Speech Commands v0.01 cannot
tell apart by layout (DATA.md)::

    <out>/
      README.md  LICENSE  validation_list.txt  testing_list.txt
      _background_noise_/  white_noise.wav pink_noise.wav brown_noise.wav
                           mains_hum.wav babble.wav running_water.wav README.md
      <word>/<speaker>_nohash_<n>.wav        (30 words, 16 kHz mono 16-bit PCM)

How a clip is made
------------------
Each synthetic speaker is a stable combination of an English accent of espeak-ng
(``en-us``, ``en-gb-scotland``, ``en-029``, ...), a voice variant (``m3``,
``f2``, ``klatt2``, ...), a base pitch, a pitch range, a speaking rate, a
vocal-tract length (a resampling factor that moves formants and pitch
together), a microphone (high-pass, low-pass, a peaking EQ and a spectral
tilt), a room (a short synthetic reverb), a noise floor and a loudness. The
speaker's id is 8 hex digits derived from the seed. For each repetition ``n``
of a word the speaker's rate, pitch and range are jittered a little; the word
is synthesized at 22,050 Hz, trimmed, given the speaker's timbre and room,
resampled to 16 kHz, made shorter with a faster rate when it would not fit in
one second, scaled to a random loudness, placed at a random position in a clip
of one second (about one clip in eight is shorter, as in the real data) and
mixed with a little noise.

Every random draw comes from a generator seeded by ``(seed, speaker, word,
n)``, and espeak-ng is reloaded before each utterance (it keeps state between
calls), so the output is byte-identical for a seed whatever the number of
worker processes, and a partial folder can be completed clip by clip.

Example
-------
.. code-block:: console

    speechlib data synth --out data/synthetic            # ~10,000 clips, 250 speakers
    speechlib data synth --out data/synthetic_small --small

.. code-block:: python

    from speechlib import datasets
    root = datasets.synthesize("data/synthetic_small", small=True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import signal
from tqdm import tqdm

from speechlib import __version__, config, hashsplit
from speechlib.datasets import espeak, synth_text
from speechlib.datasets.espeak import EspeakError as EspeakError  # raised by synthesize

# --- What is generated -------------------------------------------------------
# Bump when the generated audio changes for a given seed: it is recorded in the
# completion marker, so an old folder is never silently mixed with new clips.
SYNTH_FORMAT = 1
MARKER = ".speechlib_complete.json"  # written last: the folder is complete
PROGRESS = ".speechlib_synth.json"  # written first: the folder is ours and being filled

NOISE_FILES = {
    "white_noise.wav": "white noise: every frequency at equal power (a flat spectrum).",
    "pink_noise.wav": "pink noise: power falls 3 dB per octave (1/f), like many natural sounds.",
    "brown_noise.wav": "brown (red) noise: power falls 6 dB per octave (1/f^2), a deep rumble.",
    "mains_hum.wav": "mains hum: a 50 or 60 Hz tone with its harmonics and a little hiss, like a "
    "transformer or a badly grounded microphone.",
    "babble.wav": "babble: eight synthetic talkers (espeak-ng) reading random English words at once, "
    "in a small room; none of the 30 dataset words is spoken.",
    "running_water.wav": "running water: band-passed noise with a slow random swell, plus thousands of "
    "short rising tones (bubbles) at random times.",
}


@dataclasses.dataclass(frozen=True)
class _Sizes:
    """Everything that differs between the default and the small dataset (sizes only)."""

    num_speakers: int  # speakers in all; 10% validation and 10% testing by the hash rule
    word_share: tuple[float, float]  # each speaker says a random share of the words, drawn in this range
    repetitions: tuple[float, ...]  # probability that a speaker says a word 1, 2, 3, ... times
    noise_seconds: float  # length of each _background_noise_ recording


# Default: ~250 speakers x 30 words x 0.75 x 1.75 repetitions ~ 10,000 clips (v0.01: 64,727, 1,881 speakers).
DEFAULT_SIZES = _Sizes(250, (0.5, 1.0), (0.55, 0.25, 0.12, 0.05, 0.03), 60.0)
# Small: 20 speakers, mostly one repetition: a few hundred clips for CI.
SMALL_SIZES = _Sizes(20, (0.5, 0.9), (0.9, 0.1), 20.0)

# --- The voices ----------------------------------------------------------------
# English languages of espeak-ng's data, with how often a speaker gets each.
ACCENTS = {
    "en-us": 0.30,  # General American
    "en-us-nyc": 0.08,  # New York City
    "en": 0.14,  # British (southern England)
    "en-gb-x-rp": 0.10,  # Received Pronunciation
    "en-gb-scotland": 0.10,  # Scottish
    "en-gb-x-gbclan": 0.08,  # Lancastrian
    "en-gb-x-gbcwmd": 0.08,  # West Midlands
    "en-029": 0.12,  # Caribbean
}
# Voice variants (espeak-ng-data/voices/!v) that stay intelligible. Left out: whispered
# or breathy ones (whisper, caleb, Reed), robots and heavy echoes (robosoft*, UniRobot,
# RicishayMax*, announcer), novelty voices (Demonic, zac, Alicia, shelby, kaukovalta),
# and the ones an automatic check (nearest-neighbour DTW on MFCCs against the plain
# voices) recognised worst.
MALE_VARIANTS = (
    "m1 m2 m3 m4 m5 m6 m7 m8 Alex Andy Denis Diogo Gene Gene2 Henrique Hugo Jacky Mario Michael Mike "
    "Nguyen Storm antonio boris ed grandpa gustave iven iven2 iven3 iven4 john max michel miguel pablo "
    "paul pedro quincy rob robert sandro travis victor klatt klatt2 klatt3 klatt4 marcelo"
).split()
FEMALE_VARIANTS = "f1 f2 f3 f4 f5 Andrea Annie anika aunty belinda grandma linda steph steph2 steph3".split()
FEMALE_SHARE = 0.35  # share of female voices (the real data has more men than women)

# Words the babble talkers say: ordinary English, none of them a dataset word.
_BABBLE_WORDS = (
    "the of and to in is was that for it with as his he be at by this had not are but from or have an "
    "they which you were her she there would their we him been has when who will more if so said what "
    "its about into than them can only other new some could time these may then first any like now "
    "such make over our even most me state after also made many before must through back years where "
    "much your way well should because each just those people mister how too little good very world "
    "still own see men work long here get both between life being under never same another know while "
    "last might us great old year come since against came used take place water paper garden window "
    "morning evening market number problem table kitchen letter picture river mountain station "
    "village question answer because money family country animal country weather summer winter "
    "coffee bread apple orange yellow purple quiet gentle simple careful quickly slowly always maybe "
    "perhaps together finally nothing something everybody tomorrow yesterday afternoon"
).split()
_BABBLE_WORDS = sorted(set(_BABBLE_WORDS) - set(config.WORDS_V001))

# --- Audio processing constants ------------------------------------------------
_TRIM_DB = 50.0  # espeak's leading/trailing silence: samples more than 50 dB below the peak
_MAX_WORD = config.CLIP_SAMPLES - config.SAMPLE_RATE // 20  # a word (with reverb tail) leaves >= 50 ms free
_SHORT_CLIP_SHARE = 0.12  # about one clip in eight is shorter than one second, as in the real data
_MIN_PEAK_DB, _MAX_PEAK_DB = -22.0, -0.5  # clip loudness (peak, dBFS) ranges over ~20 dB, as in the real data
_FS = config.SAMPLE_RATE


# --- Speakers ------------------------------------------------------------------------
# Tags keep the random streams of different purposes apart.
_TAG_ID, _TAG_SPEAKER, _TAG_PLAN, _TAG_CLIP, _TAG_NOISE, _TAG_BABBLE = 1, 2, 3, 4, 5, 6


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


@dataclasses.dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: the stable voice, microphone and room of an 8-hex-digit id."""

    id: str  # 8 hex digits, as in the real data
    accent: str  # espeak-ng language, e.g. "en-gb-scotland"
    variant: str  # espeak-ng voice variant, e.g. "m3"
    female: bool
    pitch: float  # espeak base pitch, 0-100 (50 = the variant's normal)
    pitch_range: float  # espeak pitch range, 0-100 (0 = monotone)
    rate: float  # words per minute
    tract: float  # resampling factor: > 1 raises formants and pitch (a shorter vocal tract)
    highpass_hz: float
    lowpass_hz: float
    eq_hz: float  # centre of a peaking EQ
    eq_db: float  # its gain
    eq_q: float
    tilt: float  # first-order tilt: y[t] = x[t] - tilt * x[t-1] (> 0 brighter, < 0 darker)
    rt60: float  # room reverberation time, s
    reverb: float  # reverb-to-direct energy ratio
    noise_color: float  # noise floor spectrum ~ 1/f**color (0 white, 1 pink)
    snr_db: float  # speech-to-noise-floor ratio, dB
    peak_db: float  # typical loudness (peak, dBFS)

    @property
    def voice(self) -> str:
        """The espeak-ng voice name, e.g. ``"en-us+m3"``."""
        return f"{self.accent}+{self.variant}"


def _make_speaker(speaker_id: str, seed: int) -> Speaker:
    rng = _rng(seed, _TAG_SPEAKER, int(speaker_id, 16))
    accents = list(ACCENTS)
    accent = accents[rng.choice(len(accents), p=np.array(list(ACCENTS.values())) / sum(ACCENTS.values()))]
    female = bool(rng.random() < FEMALE_SHARE)
    variants = FEMALE_VARIANTS if female else MALE_VARIANTS
    return Speaker(
        id=speaker_id,
        accent=accent,
        variant=variants[rng.integers(len(variants))],
        female=female,
        pitch=float(np.clip(rng.normal(50, 10), 28, 72)),
        pitch_range=float(rng.uniform(25, 80)),
        rate=float(rng.uniform(130, 200)),
        tract=float(rng.uniform(0.92, 1.08)),
        highpass_hz=float(rng.uniform(50, 200)),
        lowpass_hz=float(rng.uniform(3400, 5500) if rng.random() < 0.35 else rng.uniform(6000, 7600)),
        eq_hz=float(np.exp(rng.uniform(np.log(300), np.log(3500)))),
        eq_db=float(rng.uniform(-6, 6)),
        eq_q=float(rng.uniform(0.7, 2.0)),
        tilt=float(rng.uniform(-0.5, 0.7)),
        rt60=float(rng.uniform(0.1, 0.45)),
        reverb=float(rng.uniform(0.02, 0.25)),
        noise_color=float(rng.uniform(0.0, 1.3)),
        snr_db=float(rng.uniform(24, 48)),
        peak_db=float(rng.uniform(_MIN_PEAK_DB + 2, _MAX_PEAK_DB - 1)),
    )


def _speaker_ids(seed: int, count: int, *, tag: int = _TAG_ID, balanced: bool = True) -> list[str]:
    """``count`` distinct 8-hex-digit ids derived from ``seed``.

    With ``balanced``, exactly round(10%) of them hash to validation and as many to
    testing (DATA.md's rule), so even a small dataset has speakers in every set.
    """
    quota = {hashsplit.VALIDATION: 0, hashsplit.TESTING: 0, hashsplit.TRAINING: count}
    if balanced:
        quota[hashsplit.VALIDATION] = round(count * config.VALIDATION_PERCENT / 100)
        quota[hashsplit.TESTING] = round(count * config.TESTING_PERCENT / 100)
        quota[hashsplit.TRAINING] = count - quota[hashsplit.VALIDATION] - quota[hashsplit.TESTING]
    ids: list[str] = []
    index = 0
    while len(ids) < count:
        candidate = hashlib.sha1(f"speechlib-synth:{seed}:{tag}:{index}".encode()).hexdigest()[:8]
        index += 1
        which = hashsplit.which_set(f"{candidate}{config.NOHASH}0.wav") if balanced else hashsplit.TRAINING
        if candidate not in ids and quota[which] > 0:
            quota[which] -= 1
            ids.append(candidate)
    return ids


def _plan(speakers: list[Speaker], seed: int, sizes: _Sizes) -> dict[str, list[tuple[str, int]]]:
    """Which words each speaker says and how often: speaker id -> [(word, n), ...]."""
    plan = {}
    reps = np.array(sizes.repetitions) / sum(sizes.repetitions)
    for speaker in speakers:
        rng = _rng(seed, _TAG_PLAN, int(speaker.id, 16))
        share = rng.uniform(*sizes.word_share)
        said = rng.random(len(config.WORDS_V001)) < share
        if not said.any():
            said[rng.integers(len(said))] = True
        counts = 1 + rng.choice(len(reps), size=len(said), p=reps)
        plan[speaker.id] = [
            (w, n) for w, s, c in zip(config.WORDS_V001, said, counts, strict=True) if s for n in range(c)
        ]
    return plan


# --- Signal processing ------------------------------------------------------------


def _peaking_sos(freq: float, gain_db: float, q: float) -> np.ndarray:
    """One second-order section of a peaking EQ (the audio-EQ cookbook's biquad)."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq / _FS
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def _microphone_sos(speaker: Speaker) -> np.ndarray:
    """The speaker's microphone and timbre as second-order sections at 16 kHz."""
    return np.concatenate(
        [
            signal.butter(2, speaker.highpass_hz, "highpass", fs=_FS, output="sos"),
            signal.butter(4, speaker.lowpass_hz, "lowpass", fs=_FS, output="sos"),
            _peaking_sos(speaker.eq_hz, speaker.eq_db, speaker.eq_q),
            np.array([[1.0, -speaker.tilt, 0.0, 1.0, 0.0, 0.0]]),
        ]
    )


def _room_ir(speaker: Speaker, seed: int) -> np.ndarray:
    """A short synthetic room response: a direct path, then exponentially decaying noise."""
    rng = _rng(seed, _TAG_SPEAKER, int(speaker.id, 16), 1)
    n = int(speaker.rt60 * _FS)
    t = np.arange(n) / _FS
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / speaker.rt60)  # -60 dB at rt60
    tail = signal.lfilter([0.4], [1, -0.6], tail)  # walls absorb high frequencies
    delay = int(rng.uniform(0.003, 0.015) * _FS)
    tail[:delay] = 0
    tail *= np.sqrt(speaker.reverb / np.sum(tail**2))
    tail[0] = 1.0  # the direct sound
    return tail


def _colored_noise(rng: np.random.Generator, n: int, color: float) -> np.ndarray:
    """Noise whose power falls as 1/f**color (0 white, 1 pink, 2 brown), unit RMS, float64 (n,)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / _FS)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (-color / 2)
    spectrum[freqs < 20] = 0  # no DC or sub-audio drift
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise**2))


def _trim(x: np.ndarray, top_db: float = _TRIM_DB, pad: int = 0) -> np.ndarray:
    """Cut leading and trailing samples more than ``top_db`` below the peak (keep ``pad`` of them)."""
    loud = np.flatnonzero(np.abs(x) > np.abs(x).max() * 10 ** (-top_db / 20))
    if loud.size == 0:
        return x[:0]
    return x[max(loud[0] - pad, 0) : loud[-1] + 1 + pad]


def _voice(
    engine: espeak.Espeak,
    speaker: Speaker,
    text: str,
    *,
    rate: float,
    pitch: float,
    pitch_range: float,
    tract: float,
    sos: np.ndarray,
) -> np.ndarray:
    """Speak ``text`` in the speaker's voice and timbre; float64 (n,) at 16 kHz, trimmed, no room."""
    raw = engine.speak(text, voice=speaker.voice, rate=round(rate), pitch=round(pitch), pitch_range=round(pitch_range))
    raw = _trim(raw, pad=int(0.005 * engine.sample_rate))
    # Reading the samples as if recorded at tract * 22,050 Hz scales formants and pitch by `tract`.
    x = soxr.resample(raw.astype(np.float64), engine.sample_rate * tract, _FS)
    return signal.sosfilt(sos, x)


def _render_clip(engine: espeak.Espeak, speaker: Speaker, word: str, n: int, seed: int, sos, ir) -> np.ndarray:
    """One clip of ``speaker`` saying ``word`` (repetition ``n``): int16 (num_samples,), at most 1 s."""
    rng = _rng(seed, _TAG_CLIP, int(speaker.id, 16), config.WORDS_V001.index(word), n)
    rate = speaker.rate * np.exp(rng.normal(0, 0.07))
    pitch = speaker.pitch + rng.normal(0, 4)
    pitch_range = speaker.pitch_range + rng.normal(0, 6)
    tract = speaker.tract * np.exp(rng.normal(0, 0.01))
    for _ in range(4):  # too long for one second: say it faster (up to three times)
        dry = _voice(engine, speaker, word, rate=rate, pitch=pitch, pitch_range=pitch_range, tract=tract, sos=sos)
        wet = _trim(signal.fftconvolve(dry, ir)[: len(dry) + len(ir)], top_db=60)
        if len(wet) <= _MAX_WORD or rate >= 450:
            break
        rate = min(rate * len(wet) / _MAX_WORD * 1.1, 450)
    if len(wet) > _MAX_WORD:  # still too long: compress in time by resampling
        wet = soxr.resample(wet, len(wet), _MAX_WORD)
    peak_db = np.clip(speaker.peak_db + rng.normal(0, 2.5), _MIN_PEAK_DB, _MAX_PEAK_DB)
    wet *= 10 ** (peak_db / 20) / np.abs(wet).max()
    if rng.random() < _SHORT_CLIP_SHARE:
        length = min(len(wet) + int(rng.uniform(0.05, 0.35) * _FS), config.CLIP_SAMPLES - 1)
    else:
        length = config.CLIP_SAMPLES
    start = int(rng.beta(2.5, 2.5) * (length - len(wet)))
    clip = np.zeros(length)
    clip[start : start + len(wet)] = wet
    speech_rms = np.sqrt(np.mean(wet**2))
    snr_db = speaker.snr_db + rng.normal(0, 2)
    clip += _colored_noise(rng, length, speaker.noise_color) * speech_rms * 10 ** (-snr_db / 20)
    return np.clip(np.round(clip * 32767), -32768, 32767).astype(np.int16)


# --- Background noise ---------------------------------------------------------------


def _at_rms(x: np.ndarray, rms_db: float) -> np.ndarray:
    return x * 10 ** (rms_db / 20) / np.sqrt(np.mean(x**2))


def _babble(engine: espeak.Espeak, seed: int, n: int) -> np.ndarray:
    """Eight synthetic talkers reading random words at once, in one small room."""
    rng = _rng(seed, _TAG_BABBLE)
    preroll = 4 * _FS  # made and dropped, so that every talker is already talking at the start
    n += preroll
    mix = np.zeros(n)
    talkers = [_make_speaker(s, seed) for s in _speaker_ids(seed, 8, tag=_TAG_BABBLE, balanced=False)]
    room = _room_ir(talkers[0], seed)
    for speaker in talkers:
        engine.reset()
        sos = _microphone_sos(speaker)
        track = np.zeros(n)
        position = int(rng.uniform(0, 1.5) * _FS)
        while position < n:
            text = " ".join(rng.choice(_BABBLE_WORDS, size=rng.integers(5, 13)))
            speech = _voice(
                engine,
                speaker,
                text,
                rate=speaker.rate * 1.1,
                pitch=speaker.pitch,
                pitch_range=speaker.pitch_range,
                tract=speaker.tract,
                sos=sos,
            )
            speech = speech[: n - position]
            track[position : position + len(speech)] += speech / (np.abs(speech).max() + 1e-9)
            position += len(speech) + int(rng.uniform(0.1, 0.8) * _FS)
        mix += track * 10 ** (rng.uniform(-8, 0) / 20)
    return _at_rms(signal.fftconvolve(mix, room)[preroll:n], -32)


def _running_water(rng: np.random.Generator, n: int) -> np.ndarray:
    """Band-passed noise with a slow random swell, plus many short rising tones (bubbles)."""
    hiss = signal.sosfilt(signal.butter(4, [400, 6000], "bandpass", fs=_FS, output="sos"), rng.standard_normal(n))
    swell = signal.sosfilt(signal.butter(2, 3, "lowpass", fs=_FS, output="sos"), rng.standard_normal(n))
    hiss *= 1 + 0.4 * swell / (np.abs(swell).max() + 1e-9)
    bubbles = np.zeros(n)
    count = int(rng.uniform(120, 180) * n / _FS)
    for start, f0, tau, rise, amp in zip(
        rng.integers(0, n, count),
        np.exp(rng.uniform(np.log(500), np.log(4000), count)),  # Hz: small bubbles ring higher
        rng.uniform(0.003, 0.015, count),  # s: decay time
        rng.uniform(5, 40, count),  # 1/s: the tone rises as the bubble shrinks
        rng.lognormal(0, 0.5, count),
        strict=True,
    ):
        t = np.arange(int(5 * tau * _FS)) / _FS
        tone = np.sin(2 * np.pi * f0 * (t + rise * t**2 / 2)) * np.exp(-t / tau) * amp * np.sqrt(1000 / f0)
        tone = tone[: n - start]
        bubbles[start : start + len(tone)] += tone
    return _at_rms(_at_rms(hiss, 0) * 0.5 + _at_rms(bubbles, 0), -38)


def _mains_hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """A 50 or 60 Hz hum with harmonics (odd ones stronger), slow drift, and a little hiss."""
    f0 = float(rng.choice([50.0, 60.0]))
    t = np.arange(n) / _FS
    drift = 0.05 * np.sin(2 * np.pi * t / rng.uniform(7, 19))  # Hz: the grid frequency wanders
    phase = 2 * np.pi * np.cumsum(f0 + drift) / _FS
    hum = np.zeros(n)
    for k in range(1, 13):
        amp = (1 if k % 2 else 0.4) / k**1.1 * rng.uniform(0.6, 1.4)
        hum += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    hum *= 1 + 0.1 * np.sin(2 * np.pi * 0.2 * t)
    return _at_rms(_at_rms(hum, 0) + 0.03 * rng.standard_normal(n), -40)


def _noise_recording(name: str, seed: int, seconds: float) -> np.ndarray:
    """The background recording ``name`` (a key of :data:`NOISE_FILES`): int16 (seconds * 16000,)."""
    n = int(seconds * _FS)
    rng = _rng(seed, _TAG_NOISE, list(NOISE_FILES).index(name))
    if name == "white_noise.wav":
        x = _at_rms(rng.standard_normal(n), -45)
    elif name == "pink_noise.wav":
        x = _at_rms(_colored_noise(rng, n, 1.0), -45)
    elif name == "brown_noise.wav":
        x = _at_rms(_colored_noise(rng, n, 2.0), -42)
    elif name == "mains_hum.wav":
        x = _mains_hum(rng, n)
    elif name == "babble.wav":
        x = _babble(espeak.engine(), seed, n)
    elif name == "running_water.wav":
        x = _running_water(rng, n)
    else:  # pragma: no cover - NOISE_FILES lists every name
        raise ValueError(f"unknown noise recording {name!r}")
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


# --- Writing ---------------------------------------------------------------------------


def _write_wav(path: Path, samples: np.ndarray) -> None:
    """Write int16 samples as 16 kHz mono PCM_16, under a temporary name first (no half file under ``path``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sf.write(tmp, samples, _FS, subtype=config.SAMPLE_SUBTYPE, format="WAV")
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` (atomically) unless the file already holds exactly it."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _clip_path(out: Path, word: str, speaker_id: str, n: int) -> Path:
    return out / word / f"{speaker_id}{config.NOHASH}{n}.wav"


def _speaker_task(args: tuple[str, Speaker, list[tuple[str, int]], set[tuple[str, int]], int]) -> int:
    """Worker: say a speaker's planned clips in order, write the missing ones; return how many were written.

    espeak-ng is reset once per speaker and the speaker's clips are always said in
    the plan's order (those already on disk too, up to the last missing one), so
    each clip comes out the same whichever process makes it and whatever is
    already written.
    """
    out, speaker, plan, missing, seed = args
    engine = espeak.engine()
    engine.reset()
    sos = _microphone_sos(speaker)
    ir = _room_ir(speaker, seed)
    written = 0
    for word, n in plan:
        if written == len(missing):
            break
        waveform = _render_clip(engine, speaker, word, n, seed, sos, ir)
        if (word, n) in missing:
            _write_wav(_clip_path(Path(out), word, speaker.id, n), waveform)
            written += 1
    return written


def _noise_task(args: tuple[str, str, int, float]) -> int:
    """Worker: write one background noise recording; return 1."""
    out, name, seed, seconds = args
    _write_wav(Path(out) / config.BACKGROUND_NOISE_DIR / name, _noise_recording(name, seed, seconds))
    return 1


def _run(task: tuple) -> int:
    kind, args = task
    return _speaker_task(args) if kind == "speaker" else _noise_task(args)


# --- The public function --------------------------------------------------------------


def _params(small: bool, seed: int) -> dict:
    return {"generator": "speechlib.datasets.synthesize", "format": SYNTH_FORMAT, "seed": seed, "small": small}


def _describe(params: dict | None) -> str:
    """``params`` as a person reads them: 'seed 1234, small size, generator format 1'."""
    if not isinstance(params, dict):
        return "unknown settings"
    size = "small" if params.get("small") else "default"
    return f"seed {params.get('seed')}, {size} size, generator format {params.get('format')}"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def synthesize(
    out: str | os.PathLike, *, small: bool = False, seed: int = config.SEED, workers: int | None = None
) -> Path:
    """Generate the synthetic Speech Commands dataset into ``out`` (or complete it); return its path.

    Parameters
    ----------
    out : str or path
        The dataset folder. Created when missing; it must be empty, or a folder
        that this function started (it then completes it).
    small : bool, default False
        Small mode: 20 speakers, ~450 clips and 20 s noise recordings (~18 MB,
        about 5 s of CPU time) instead of 250 speakers, ~9,800 clips and 60 s
        recordings (~310 MB, about 45 s of CPU time, spread over the workers).
    seed : int, default config.SEED
        Seed of every random choice (speaker ids, voices, clips, noise); >= 0.
    workers : int, optional
        Worker processes; default ``os.cpu_count()``. 1 runs in this process.
        The output does not depend on it.

    Returns
    -------
    pathlib.Path
        ``out``, resolved, holding the dataset (layout in the module docstring).

    Raises
    ------
    FileExistsError
        If ``out`` holds a complete synthetic dataset made with another seed or
        size, or files that this function did not write: choose another folder.
    ValueError
        If ``seed`` is negative or ``workers`` is below 1.
    EspeakError
        If espeak-ng cannot be loaded.

    Notes
    -----
    A complete folder holds ``.speechlib_complete.json`` with the parameters;
    running again with the same parameters returns at once without touching a
    file. Every file is written under a temporary name and renamed, so a killed
    run leaves no half-written clip and the next run completes the folder.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out).expanduser().resolve()
    params = _params(small, seed)
    if _is_complete(out, params):
        return out
    sizes = SMALL_SIZES if small else DEFAULT_SIZES
    speakers = [_make_speaker(s, seed) for s in _speaker_ids(seed, sizes.num_speakers)]
    plan = _plan(speakers, seed, sizes)
    engine_version = espeak.engine().version
    _start_folder(out, params)
    _run_tasks(_pending_tasks(out, speakers, plan, seed, sizes), workers, desc=f"synthesizing {out.name}")
    clips = [(w, s.id, n) for s in speakers for w, n in plan[s.id]]
    lists = _write_lists(out, clips)
    info = _summary(params, engine_version, speakers, clips, lists, sizes)
    _write_texts(out, info, seed=seed, noise_seconds=sizes.noise_seconds)
    _mark_complete(out, clips, info)
    return out


def _summary(params: dict, engine_version: str, speakers: list[Speaker], clips: list[tuple[str, str, int]],
             lists: dict[str, list[str]], sizes: _Sizes) -> dict:  # fmt: skip
    """What the completion marker records: the parameters, the versions, and the counts of clips and speakers."""
    per_word = Counter(w for w, _, _ in clips)
    return {
        "params": params,
        "created_by": f"speechlib {__version__}",
        "espeak_ng": engine_version,
        "seed": params["seed"],
        "small": params["small"],
        "clips": len(clips),
        "speakers": len(speakers),
        "clips_per_word": {w: per_word[w] for w in config.WORDS_V001},
        "validation_clips": len(lists[hashsplit.VALIDATION]),
        "testing_clips": len(lists[hashsplit.TESTING]),
        "noise_seconds": sizes.noise_seconds,
        "accents": sorted({s.accent for s in speakers}),
        "voices": sorted({s.voice for s in speakers}),
    }


def _mark_complete(out: Path, clips: list[tuple[str, str, int]], info: dict) -> None:
    """Check that every clip was written, then write the completion marker (last)."""
    missing = [p for w, s, n in clips if not (p := _clip_path(out, w, s, n)).is_file()]
    if missing:  # pragma: no cover - a worker failing raises before this
        raise RuntimeError(f"{len(missing)} clips were not written, e.g. {missing[0]}; run the command again")
    (out / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _is_complete(out: Path, params: dict) -> bool:
    """True when ``out`` is complete with ``params``; raise when it is anything but new, empty or ours to finish."""
    marker = _read_json(out / MARKER)
    if marker is not None:
        if marker.get("params") == params:
            return True
        raise FileExistsError(
            f"{out} already holds a complete synthetic dataset made with {_describe(marker.get('params'))}, "
            f"not {_describe(params)}; choose another --out (or delete that folder first)"
        )
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder; choose another --out")
    progress = _read_json(out / PROGRESS)
    if progress is not None and progress.get("params") != params:
        raise FileExistsError(
            f"{out} holds an unfinished synthetic dataset made with {_describe(progress.get('params'))}, "
            f"not {_describe(params)}; run again with those settings to complete it, or choose another --out"
        )
    if progress is None and out.is_dir() and any(out.iterdir()):
        raise FileExistsError(
            f"{out} is not empty and was not made by `speechlib data synth`; choose an empty or new --out"
        )
    return False


def _start_folder(out: Path, params: dict) -> None:
    """Mark ``out`` as ours (the progress file), drop a killed run's temporary files, make the folders."""
    out.mkdir(parents=True, exist_ok=True)
    _write_text(out / PROGRESS, json.dumps({"params": params}, indent=2) + "\n")
    for stale in out.glob("**/.*.tmp"):  # temporary files of a run that was killed
        stale.unlink()
    for word in config.WORDS_V001:
        (out / word).mkdir(exist_ok=True)
    (out / config.BACKGROUND_NOISE_DIR).mkdir(exist_ok=True)


def _pending_tasks(
    out: Path, speakers: list[Speaker], plan: dict[str, list[tuple[str, int]]], seed: int, sizes: _Sizes
) -> list[tuple]:
    """The work still to do: one task per missing noise recording, one per speaker with missing clips."""
    tasks: list[tuple] = [
        ("noise", (str(out), name, seed, sizes.noise_seconds))
        for name in NOISE_FILES
        if not (out / config.BACKGROUND_NOISE_DIR / name).is_file()
    ]
    for speaker in speakers:
        todo = {(w, n) for w, n in plan[speaker.id] if not _clip_path(out, w, speaker.id, n).is_file()}
        if todo:
            tasks.append(("speaker", (str(out), speaker, plan[speaker.id], todo, seed)))
    return tasks


def _run_tasks(tasks: list[tuple], workers: int | None, *, desc: str) -> None:
    """Run the tasks in this process (one worker) or in a pool of spawned processes, with a progress bar."""
    total = sum(1 if kind == "noise" else len(args[3]) for kind, args in tasks)
    workers = min(workers or os.cpu_count() or 1, max(len(tasks), 1))
    # A progress bar on a terminal only (in Jupyter, tqdm would leave an empty widget in the outputs).
    show = total > 0 and bool(sys.stderr) and sys.stderr.isatty()
    with tqdm(total=total, desc=desc, unit="file", disable=not show) as bar:
        if workers == 1:
            for task in tasks:
                bar.update(_run(task))
        else:
            # "spawn": safe even when the caller has threads (TensorFlow) running.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for done in pool.imap_unordered(_run, tasks):
                    bar.update(done)


def _write_lists(out: Path, clips: list[tuple[str, str, int]]) -> dict[str, list[str]]:
    """``validation_list.txt`` and ``testing_list.txt`` by the dataset's hash rule; their relpaths."""
    lists: dict[str, list[str]] = {hashsplit.VALIDATION: [], hashsplit.TESTING: []}
    for word, speaker_id, n in clips:
        relpath = f"{word}/{speaker_id}{config.NOHASH}{n}.wav"
        which = hashsplit.which_set(relpath)
        if which in lists:
            lists[which].append(relpath)
    _write_text(out / config.VALIDATION_LIST, "".join(f"{p}\n" for p in sorted(lists[hashsplit.VALIDATION])))
    _write_text(out / config.TESTING_LIST, "".join(f"{p}\n" for p in sorted(lists[hashsplit.TESTING])))
    return lists


def _write_texts(out: Path, info: dict, *, seed: int, noise_seconds: float) -> None:
    """README.md, LICENSE and the noise folder's README.md (:mod:`speechlib.datasets.synth_text`)."""
    readme = synth_text.readme(
        info,
        noise_files=NOISE_FILES,
        num_voices=len(MALE_VARIANTS) + len(FEMALE_VARIANTS),
        peak_db=(_MIN_PEAK_DB, _MAX_PEAK_DB),
        synth_format=SYNTH_FORMAT,
    )
    _write_text(out / "README.md", readme)
    _write_text(out / "LICENSE", synth_text.LICENSE)
    noise_readme = synth_text.noise_readme(noise_seconds, seed, noise_files=NOISE_FILES)
    _write_text(out / config.BACKGROUND_NOISE_DIR / "README.md", noise_readme)
