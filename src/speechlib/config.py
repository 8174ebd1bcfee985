"""Constants and settings shared by every stage of speechlib.

Everything that would otherwise be typed twice lives here: the audio format,
the word lists of the dataset versions, the 12-class task, the seed, the
default feature parameters, and where data lives on disk.

Environment variables
---------------------
SPEECHLIB_DATA
    Path to a real Speech Commands folder. When set, notebooks and commands
    use it instead of the embedded synthetic dataset.
SPEECHLIB_REAL_DATA
    Path to a folder of *real* Speech Commands clips (any layout the scanner
    reads, e.g. the official v0.02 test set) used where the course checks a
    model on real speech beside the default dataset (notebooks 1 and 4,
    ``bench/real_speech.py``). Unset: those checks say so and are skipped.
SPEECHLIB_SMALL
    ``1`` shrinks every size (clips, epochs, models) so the whole course runs
    in minutes. Small mode changes sizes, never code paths.
SPEECHLIB_HOME
    The working folder for generated data and artifacts (default: the
    project's ``data/`` folder, found by walking up from the current
    directory; else ``./data``).
SPEECHLIB_IMGS
    Where notebooks save the figures the README shows (default: the
    project's ``imgs/`` folder).
"""

from __future__ import annotations

import os
from pathlib import Path

# --- Audio format of Speech Commands -------------------------------------
SAMPLE_RATE = 16_000  # Hz: every clip of the dataset is 16 kHz mono
CLIP_SECONDS = 1.0  # clips are at most one second long
CLIP_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS)  # 16,000 samples per padded clip
SAMPLE_SUBTYPE = "PCM_16"  # 16-bit signed PCM, as soundfile names it

# --- Dataset layout (DATA.md) ---------------------------------------------
BACKGROUND_NOISE_DIR = "_background_noise_"
TEST_SET_UNKNOWN_DIR = "_unknown_"  # official test-set layout
TEST_SET_SILENCE_DIR = "_silence_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
NOHASH = "_nohash_"  # separates the speaker id from the repetition number

WORDS_V001 = (
    "yes no up down left right on off stop go "
    "zero one two three four five six seven eight nine "
    "bed bird cat dog happy house marvin sheila tree wow"
).split()
WORDS_V002 = WORDS_V001 + "backward forward follow learn visual".split()

# --- The 12-class task (Kaggle TensorFlow Speech Recognition Challenge) ---
COMMANDS = "yes no up down left right on off stop go".split()
SILENCE_LABEL = "silence"
UNKNOWN_LABEL = "unknown"
KAGGLE12_LABELS = [*COMMANDS, SILENCE_LABEL, UNKNOWN_LABEL]

# Percentages of the dataset's own hash split (DATA.md), as in the official lists.
VALIDATION_PERCENT = 10.0
TESTING_PERCENT = 10.0
SPLITS = ("train", "cv", "test")

# --- Reproducibility --------------------------------------------------------
SEED = 1234  # the one default seed of the project; every random step takes a `seed`

# --- Default feature parameters (log-mel, as in most keyword-spotting work) --
N_MELS = 40  # mel bands
WIN_LENGTH = 400  # 25 ms window at 16 kHz
HOP_LENGTH = 160  # 10 ms hop -> 101 frames for a 1 s clip (centered frames)
N_FFT = 512  # FFT size: next power of two above the window

# --- Audio file types the scanner looks at ----------------------------------
AUDIO_SUFFIXES = (".wav",)


def is_small() -> bool:
    """Return True when small mode is on (``SPEECHLIB_SMALL=1``)."""
    return os.environ.get("SPEECHLIB_SMALL", "").strip().lower() in {"1", "true", "yes", "on"}


def set_small(on: bool = True) -> None:
    """Switch small mode on or off for this process and the ones it starts."""
    os.environ["SPEECHLIB_SMALL"] = "1" if on else "0"


def project_root() -> Path | None:
    """The speechlib checkout that contains the current directory, or None.

    Found by walking up from the current directory to a folder that holds
    ``req.txt`` and ``notebooks/``, so notebooks (run from ``notebooks/``) and
    scripts (run from the root) agree on where things are.
    """
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "req.txt").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def project_home() -> Path:
    """The working folder for generated datasets and artifacts.

    ``SPEECHLIB_HOME`` when set; otherwise the ``data/`` folder of the
    speechlib checkout that contains the current directory (see
    :func:`project_root`); otherwise ``./data``.
    """
    env = os.environ.get("SPEECHLIB_HOME")
    if env:
        return Path(env).expanduser().resolve()
    root = project_root()
    return (root or Path.cwd().resolve()) / "data"


def imgs_dir() -> Path:
    """Where the course saves the figures that the README shows (``SPEECHLIB_IMGS`` overrides)."""
    env = os.environ.get("SPEECHLIB_IMGS")
    if env:
        return Path(env).expanduser().resolve()
    root = project_root()
    return (root or Path.cwd().resolve()) / "imgs"


def synthetic_dir(small: bool | None = None) -> Path:
    """Where the embedded synthetic dataset is generated (small mode has its own folder)."""
    small = is_small() if small is None else small
    return project_home() / ("synthetic_small" if small else "synthetic")


def dataset_dir(small: bool | None = None) -> Path:
    """The dataset the course uses: ``SPEECHLIB_DATA`` if set, else the synthetic one."""
    env = os.environ.get("SPEECHLIB_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return synthetic_dir(small)


def real_data_dir() -> Path | None:
    """The folder of real clips for real-speech checks: ``SPEECHLIB_REAL_DATA``, or None when unset or missing."""
    env = os.environ.get("SPEECHLIB_REAL_DATA")
    if not env:
        return None
    path = Path(env).expanduser().resolve()
    return path if path.is_dir() else None


def work_dir(dataset: Path | str, small: bool | None = None) -> Path:
    """The folder for everything derived from ``dataset`` (manifests, features, models).

    Derived files never go inside the raw dataset folder, which may be
    read-only and is never modified. The name combines the dataset folder's
    name and the mode, e.g. ``data/work/synthetic`` or
    ``data/work/speech_commands_v0.01-small``.
    """
    small = is_small() if small is None else small
    name = Path(dataset).resolve().name
    if small and not name.endswith("_small"):
        name += "-small"
    return project_home() / "work" / name
