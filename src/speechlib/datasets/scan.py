"""Scan any Speech Commands folder into a table, and say whether it is usable.

:func:`scan` walks a dataset folder and returns one row per file: where it
is, which word and speaker it holds, its audio format read from the header,
and a status with a reason a person can act on. The verdict on each file is
:func:`speechlib.audio.inspect`'s, the one every other command gives (header
and chunk sizes; only float files are decoded, to find NaN or infinite
samples). :func:`check` prints a summary of that table and returns
an exit code; :func:`detect_layout` names the folder's layout.

Three layouts are recognised:

``speech_commands``
    The v0.01/v0.02 archives and Kaggle's ``train/audio``:
    ``<word>/<speaker>_nohash_<n>.wav``, ``_background_noise_/``, and the
    ``validation_list.txt`` / ``testing_list.txt`` lists.
``test_set``
    The official test-set archives: ``yes no ... go _unknown_ _silence_``;
    ``_unknown_/<word>_<speaker>_nohash_<n>.wav`` (some copies end in
    ``.wav.wav``) and numbered noise clips in ``_silence_/``.
``folders``
    Any other folder-per-class layout: ``<label>/<file>.wav``.

A folder whose only subfolder is ``audio/`` (Kaggle's ``train/``) is read
through that subfolder. Scanning only reads: no file is ever modified, moved
or deleted.

Examples
--------
::

    speechlib data check data/raw/speech_commands_v0.01
    speechlib data check ~/kaggle/train --report scan.csv

>>> from speechlib import datasets
>>> table = datasets.scan("data/synthetic")  # doctest: +SKIP
>>> table.groupby("word").size()  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from speechlib import audio, config
from speechlib._files import check_replaceable_csv

COLUMNS = [
    "path",
    "relpath",
    "folder",
    "kind",
    "word",
    "speaker",
    "utterance",
    "layout",
    "sample_rate",
    "channels",
    "frames",
    "duration",
    "subtype",
    "status",
    "reason",
]
LAYOUTS = ("speech_commands", "test_set", "folders")
UNKNOWN_LAYOUT = "unknown"  # no class folders at all: not a dataset this package can read
KAGGLE_AUDIO_DIR = "audio"  # Kaggle's train.7z unpacks to train/audio/<word>/...
LISTS = (config.VALIDATION_LIST, config.TESTING_LIST)
SCAN_BATCH = 256  # files per thread-pool task (one future per file costs more than its header read)
PROGRESS_MIN_FILES = 1000  # show a progress bar from this many files on (and only on a terminal)
IGNORED_DIRS = {"__MACOSX"}  # resource forks that macOS archivers add

# <speaker>_nohash_<n>.wav in a word folder; <word>_<speaker>_nohash_<n>.wav in the test set's _unknown_.
CLIP_NAME = re.compile(r"^(?P<speaker>[^_/]+)_nohash_(?P<utterance>\d+)\.wav(?:\.wav)?$", re.IGNORECASE)
UNKNOWN_NAME = re.compile(
    r"^(?P<word>[^_/]+)_(?P<speaker>[^_/]+)_nohash_(?P<utterance>\d+)\.wav(?:\.wav)?$", re.IGNORECASE
)
# Bit depths of soundfile's subtypes, for the warning about off-spec sample formats.
SUBTYPE_NAMES = {
    "PCM_U8": "8-bit unsigned PCM",
    "PCM_S8": "8-bit PCM",
    "PCM_24": "24-bit PCM",
    "PCM_32": "32-bit PCM",
    "FLOAT": "32-bit float",
    "DOUBLE": "64-bit float",
    "ULAW": "8-bit mu-law",
    "ALAW": "8-bit A-law",
}
MAGIC, CONVERT_HINT = audio.MAGIC, audio.CONVERT_HINT  # one list of magic bytes, in speechlib.audio


# --- layout -------------------------------------------------------------------------------------


def resolve_root(root: str | os.PathLike) -> tuple[Path, str]:
    """Return the folder to scan and a note when it is not ``root`` itself.

    A folder whose only subfolder is ``audio/`` (Kaggle's ``train/``) is read
    through ``audio/``.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        ``root`` does not exist or is a file.
    """
    given = Path(root).expanduser()
    if not given.exists():
        raise FileNotFoundError(f"dataset folder not found: {given}; pass the folder that holds the word folders")
    if not given.is_dir():
        raise NotADirectoryError(
            f"{given} is a file, not a dataset folder; pass the folder that holds the word folders"
        )
    given = given.resolve()
    subdirs = _subdirs(given)
    if subdirs == [KAGGLE_AUDIO_DIR]:
        return given / KAGGLE_AUDIO_DIR, f"reading its {KAGGLE_AUDIO_DIR}/ subfolder (Kaggle layout)"
    return given, ""


def detect_layout(root: str | os.PathLike) -> str:
    """Name the layout of a dataset folder.

    Parameters
    ----------
    root : path-like
        The dataset folder (for Kaggle, ``train/`` or ``train/audio/``).

    Returns
    -------
    str
        ``"test_set"`` when it has ``_unknown_/`` or ``_silence_/``;
        ``"speech_commands"`` when it has ``_background_noise_/``, the official
        lists, or only folders named after Speech Commands words;
        ``"folders"`` for any other folder-per-class layout; ``"unknown"`` when
        no subfolder holds a WAV file directly (an empty or flat folder, or a
        folder that holds dataset folders: pass one of those instead).
    """
    folder, _ = resolve_root(root)
    subdirs = set(_subdirs(folder))
    if not any(_has_audio(folder / name) for name in subdirs - {config.BACKGROUND_NOISE_DIR}):
        return UNKNOWN_LAYOUT  # no folder holds audio directly: empty, flat, or a folder of datasets
    if config.TEST_SET_UNKNOWN_DIR in subdirs or config.TEST_SET_SILENCE_DIR in subdirs:
        return "test_set"
    classes = subdirs - {config.BACKGROUND_NOISE_DIR}
    has_lists = any((folder / name).is_file() for name in LISTS)
    if config.BACKGROUND_NOISE_DIR in subdirs or has_lists or (classes and classes <= set(config.WORDS_V002)):
        return "speech_commands"
    return "folders" if classes else UNKNOWN_LAYOUT


def find_lists(root: str | os.PathLike) -> dict[str, Path | None]:
    """The official list files of a dataset folder: ``{name: path or None}``.

    Looks in the scanned folder and, for Kaggle's ``train/audio``, in ``train/``.
    """
    folder, _ = resolve_root(root)
    found: dict[str, Path | None] = {}
    for name in LISTS:
        candidates = [folder / name, folder.parent / name] if folder.name == KAGGLE_AUDIO_DIR else [folder / name]
        found[name] = next((p for p in candidates if p.is_file()), None)
    return found


def _has_audio(folder: Path) -> bool:
    """True when ``folder`` holds at least one WAV file directly (stops at the first one)."""
    with os.scandir(folder) as entries:
        return any(_is_audio_name(e.name) and not e.name.startswith(".") for e in entries)


def _subdirs(folder: Path) -> list[str]:
    return sorted(
        e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".") and e.name not in IGNORED_DIRS
    )


# --- scan -----------------------------------------------------------------------------------------


def scan(root: str | os.PathLike, *, workers: int | None = None) -> pd.DataFrame:
    """Read every file of a dataset folder into a table, one row per file.

    Each file gets :func:`speechlib.audio.inspect`'s verdict: headers and RIFF
    chunk sizes are read (to detect truncated files and header lies); only
    float files are decoded, to find NaN or infinite samples. No file is
    modified. A folder named like a WAV file inside a class folder, a broken
    symbolic link or another non-regular entry is a row with an error.

    Parameters
    ----------
    root : path-like
        The dataset folder; see :func:`detect_layout` for the layouts read.
    workers : int, optional
        Threads reading headers (default: a few per core; reading is I/O bound).

    Returns
    -------
    pandas.DataFrame
        Columns (in this order):

        - ``path`` (str, absolute), ``relpath`` (str, POSIX, relative to the scanned folder),
          ``folder`` (first component of ``relpath``; ``""`` for a file at the top level);
        - ``kind``: ``"clip"`` (a spoken word), ``"silence"`` (the test set's ``_silence_``),
          ``"noise"`` (``_background_noise_``) or ``"other"`` (not a WAV file);
        - ``word`` (str; ``""`` for silence, noise and other), ``speaker`` (str; ``""`` when the
          name does not follow the pattern), ``utterance`` (int; -1 when unknown);
        - ``layout`` (``"speech_commands"``, ``"test_set"`` or ``"folders"``);
        - ``sample_rate`` (int, Hz; 0 if unreadable), ``channels`` (int), ``frames`` (int),
          ``duration`` (float, s), ``subtype`` (str, soundfile's name such as ``"PCM_16"``);
        - ``status``: ``"ok"``, ``"warn"`` (readable but off-spec: speechlib converts it) or
          ``"error"`` (unusable: skipped downstream); ``reason`` (str, ``""`` when ok; several
          problems are joined by ``" | "``).

        Rows are sorted by ``relpath``. ``table.attrs`` holds ``root`` (the folder
        scanned), ``given_root``, ``note`` and ``lists`` (see :func:`find_lists`).
        Skipped: hidden files and folders, the top-level README/LICENSE and ``*.txt``
        lists, and the documentation inside ``_background_noise_``.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        ``root`` does not exist or is not a folder.
    """
    folder, note = resolve_root(root)
    layout = detect_layout(folder)
    files = sorted(_walk(folder), key=lambda item: item[1])
    workers = workers or min(16, 4 * (os.cpu_count() or 1))
    bar = tqdm(
        total=len(files),
        desc="scanning",
        unit="file",
        leave=False,
        # tqdm's disable=None still draws a widget in Jupyter: decide on the terminal ourselves.
        disable=len(files) < PROGRESS_MIN_FILES or not (sys.stderr and sys.stderr.isatty()),
    )
    batches = [files[start : start + SCAN_BATCH] for start in range(0, len(files), SCAN_BATCH)]
    rows = []
    with bar, ThreadPoolExecutor(max_workers=workers) as pool:
        for batch_rows in pool.map(lambda batch: [_scan_file(path, rel, layout) for path, rel in batch], batches):
            rows.extend(batch_rows)
            bar.update(len(batch_rows))
    table = pd.DataFrame(rows, columns=COLUMNS)
    table = table.astype(
        {"utterance": "int64", "sample_rate": "int64", "channels": "int64", "frames": "int64", "duration": "float64"}
    )
    table.attrs.update(
        root=str(folder), given_root=str(Path(root).expanduser().resolve()), note=note, lists=find_lists(folder)
    )
    return table


def _walk(folder: Path) -> Iterator[tuple[Path, str]]:
    """Yield (absolute path, POSIX relpath) of every file that belongs in the table."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in IGNORED_DIRS)
        rel_dir = Path(dirpath).relative_to(folder).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        top = prefix.split("/", 1)[0]
        if prefix:  # a folder named like a WAV file inside a class folder is an entry (an error), not a class
            entries = [d for d in dirnames if _is_audio_name(d)]
            dirnames[:] = [d for d in dirnames if not _is_audio_name(d)]
            filenames = [*filenames, *entries]
        for name in filenames:
            if name.startswith("."):
                continue
            if top == "" and _is_doc(name):
                continue
            if top == config.BACKGROUND_NOISE_DIR and not _is_audio_name(name) and _is_doc(name):
                continue
            yield Path(dirpath, name), prefix + name


def _is_doc(name: str) -> bool:
    upper = name.upper()
    return upper.startswith(("README", "LICENSE")) or upper.endswith((".TXT", ".MD"))


def _is_audio_name(name: str) -> bool:
    return name.lower().endswith(config.AUDIO_SUFFIXES)


def _scan_file(path: Path, relpath: str, layout: str) -> dict:
    """One row of the table for one file (never raises for a bad file)."""
    parts = relpath.split("/")
    folder = parts[0] if len(parts) > 1 else ""
    name = parts[-1]
    row = {
        "path": str(path),
        "relpath": relpath,
        "folder": folder,
        "kind": "clip",
        "word": "",
        "speaker": "",
        "utterance": -1,
        "layout": layout,
        "sample_rate": 0,
        "channels": 0,
        "frames": 0,
        "duration": 0.0,
        "subtype": "",
    }
    errors: list[str] = []
    warnings: list[str] = []

    # What the file should be, from where it is and what it is called.
    if not _is_audio_name(name):
        row["kind"] = "other"
        if folder:
            errors.append("not a WAV file; remove it or move it out of the dataset")
        else:
            warnings.append("not part of the dataset layout (a file at the top level); ignored")
        return _finish(row, errors, warnings)
    if folder == config.BACKGROUND_NOISE_DIR:
        row["kind"] = "noise"
    elif folder == config.TEST_SET_SILENCE_DIR and layout == "test_set":
        row["kind"] = "silence"
    elif not folder:
        errors.append("outside any class folder; move it into the folder of its word")
    else:
        if folder == config.TEST_SET_UNKNOWN_DIR and layout == "test_set":
            match = UNKNOWN_NAME.match(name)
            pattern = "<word>_<speaker>_nohash_<n>.wav"
        else:
            match = CLIP_NAME.match(name)
            pattern = "<speaker>_nohash_<n>.wav"
            row["word"] = folder
        if match:
            row["speaker"] = match["speaker"]
            row["utterance"] = int(match["utterance"])
            if "word" in match.groupdict():
                row["word"] = match["word"]
        else:
            warnings.append(
                f"name does not follow {pattern}; its speaker is unknown, so a split cannot keep that "
                "speaker's clips in one set (rename it to follow the pattern)"
            )
        if len(parts) > 2:
            warnings.append(f"nested in a subfolder of {folder}/; expected {folder}/<file>.wav (labelled {folder})")

    # What the file is: speechlib.audio's verdict, the one every command gives.
    try:
        info = audio.inspect(path)
    except audio.AudioError as err:
        errors.append(err.reason)
        return _finish(row, errors, warnings)
    row.update(
        sample_rate=info.sample_rate,
        channels=info.channels,
        frames=info.frames,
        duration=info.duration,
        subtype=info.subtype,
    )

    # Readable: is it what the dataset's format promises?
    if info.channels != 1:
        warnings.append(f"{info.channels} channels; speechlib mixes to mono")
    if info.sample_rate != config.SAMPLE_RATE:
        warnings.append(f"{info.sample_rate} Hz; resampled to {config.SAMPLE_RATE} Hz")
    if info.subtype != config.SAMPLE_SUBTYPE:
        what = SUBTYPE_NAMES.get(info.subtype, info.subtype_info or info.subtype)
        warnings.append(f"{what} samples ({info.subtype}); converted on load, the dataset's format is 16-bit PCM")
    if row["kind"] == "clip" and info.sample_rate and info.frames > math.ceil(config.CLIP_SECONDS * info.sample_rate):
        warnings.append(
            f"longer than {config.CLIP_SECONDS:g} s ({row['duration']:.2f} s); cut to {config.CLIP_SECONDS:g} s on load"
        )
    return _finish(row, errors, warnings)


def _finish(row: dict, errors: list[str], warnings: list[str]) -> dict:
    row["status"] = "error" if errors else "warn" if warnings else "ok"
    row["reason"] = " | ".join(errors + warnings)
    return row


# --- check ----------------------------------------------------------------------------------------


def problem_category(reason: str) -> list[str]:
    """The short names of the problems in a ``reason`` (the text before the first ``:``, ``;`` or ``(``)."""
    return [re.split(r"[:;(]", part, maxsplit=1)[0].strip() for part in reason.split(" | ") if part]


def check(
    root: str | os.PathLike,
    *,
    strict: bool = False,
    report: str | os.PathLike | None = None,
    file: TextIO | None = None,
) -> int:
    """Scan a dataset folder, print a summary, and return an exit code.

    The summary gives the folder and its layout, the number of audio files,
    clips per word, speakers, clip durations, background-noise recordings, the
    official lists, every problem file with its reason, and a final line
    ``usable: yes/no (why)``.

    Parameters
    ----------
    root : path-like
        The dataset folder.
    strict : bool
        Also fail when any file has a warning or an error.
    report : path-like, optional
        Write the full scan table (:func:`scan`) to this CSV file; an existing
        file is replaced only when it is such a table (else ``FileExistsError``).
    file : text stream, optional
        Where to print (default: standard output).

    Returns
    -------
    int
        0 when usable: a recognised layout, at least one usable clip and (for
        the Speech Commands layout) at least two words; with ``strict``, also no
        file with a problem. 1 otherwise.
    """
    out = file or sys.stdout
    if report is not None:
        _check_report_target(Path(report))
    table = scan(root)
    layout = detect_layout(table.attrs["root"])

    def say(line: str = "") -> None:
        print(line, file=out)

    note = f" ({table.attrs['note']})" if table.attrs["note"] else ""
    say(f"dataset root: {table.attrs['given_root']}{note}")
    say(f"layout: {layout}")
    audio = table[table["kind"] != "other"]
    clips = table[table["kind"] == "clip"]
    good = clips[clips["status"] != "error"]
    labelled = table[table["kind"].isin(["clip", "silence"]) & (table["status"] != "error")]
    kinds = ", ".join(f"{(audio['kind'] == k).sum():,} {k}" for k in ("clip", "silence", "noise"))
    say(f"audio files: {len(audio):,} ({kinds})")

    if layout == "test_set":
        counts = table[table["kind"] != "other"].groupby("folder").size()
        say(f"labels (folders): {len(counts)}")
        say(_columns([f"{name} {n:,}" for name, n in counts.items()]))
        unknown_words = clips.loc[clips["folder"] == config.TEST_SET_UNKNOWN_DIR, "word"]
        unknown_words = unknown_words[unknown_words != ""]
        say(f"words inside {config.TEST_SET_UNKNOWN_DIR}: {unknown_words.nunique()}")
    else:
        counts = good[good["word"] != ""].groupby("word").size()
        say(f"words: {len(counts)}")
        if len(counts):
            say(_columns([f"{name} {n:,}" for name, n in counts.items()]))
    speakers = clips.loc[clips["speaker"] != "", "speaker"]
    say(
        f"speakers: {speakers.nunique():,}"
        + (f" ({(clips['speaker'] == '').sum():,} clips without one)" if (clips["speaker"] == "").any() else "")
    )

    durations = good["duration"].to_numpy()
    if len(durations):
        short = np.mean(durations < config.CLIP_SECONDS - 1e-9)
        say(
            f"durations (clips): min {durations.min():.2f} s, median {np.median(durations):.2f} s, "
            f"max {durations.max():.2f} s; {short:.1%} shorter than {config.CLIP_SECONDS:g} s"
        )
    noise = table[(table["kind"] == "noise") & (table["status"] != "error")]
    if len(noise):
        say(f"background noise: {len(noise)} recordings, {noise['duration'].sum():,.1f} s in total")
    else:
        say(f"background noise: none (no {config.BACKGROUND_NOISE_DIR}/ folder)")

    lists = table.attrs["lists"]
    if layout == "test_set":
        say("lists: none expected (the official test set is a test split of its own)")
    else:
        present = set(table["relpath"])
        described = []
        for name, path in lists.items():
            if path is None:
                described.append(f"{name} missing")
            else:
                entries = [line.strip() for line in path.read_text().splitlines() if line.strip()]
                here = sum(entry in present for entry in entries)
                described.append(f"{name} present ({len(entries):,} entries, {here:,} in this folder)")
        say("lists: " + "; ".join(described))

    problems = table[table["status"] != "ok"]
    if len(problems):
        n_err = (problems["status"] == "error").sum()
        say(f"problems: {len(problems):,} files ({n_err:,} errors, {len(problems) - n_err:,} warnings)")
        by_reason: dict[tuple[str, str], int] = {}
        for status, reason in zip(problems["status"], problems["reason"], strict=True):
            for category in problem_category(reason):
                by_reason[(status, category)] = by_reason.get((status, category), 0) + 1
        for (status, category), n in sorted(by_reason.items(), key=lambda item: (item[0][0] != "error", -item[1])):
            say(f"  {status:<5}  {n:>6,}  {category}")
        say("problem files:")
        order = problems.assign(_e=problems["status"] != "error").sort_values(["_e", "relpath"])
        for status, relpath, reason in zip(order["status"], order["relpath"], order["reason"], strict=True):
            say(f"  {status:<5}  {relpath}: {reason}")
    else:
        say("problems: none")

    if report is not None:
        report = Path(report)
        report.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(report, index=False)
        say(f"scan table written to {report}")

    usable, why = _usable(layout, labelled, len(table))
    if layout == UNKNOWN_LAYOUT:
        root_dir = Path(table.attrs["root"])
        inner = [name for name in _subdirs(root_dir) if detect_layout(root_dir / name) != UNKNOWN_LAYOUT]
        if inner:
            why += f"; these subfolders are datasets, check one of them instead: {', '.join(inner)}"
    if usable and strict and len(problems):
        usable, why = False, f"--strict and {len(problems):,} files have problems"
    say(f"usable: {'yes' if usable else 'no'} ({why})")
    return 0 if usable else 1


def _check_report_target(report: Path) -> None:
    """Refuse to replace a file that is not an earlier scan table (whose header is ``COLUMNS``)."""
    check_replaceable_csv(report, COLUMNS, what="a scan table of `speechlib data check`", flag="--report",
                          example="scan.csv")  # fmt: skip


def _usable(layout: str, good: pd.DataFrame, n_files: int) -> tuple[bool, str]:
    """Whether the usable rows (clips, and the test set's silence) make a dataset, and why."""
    if layout == UNKNOWN_LAYOUT:
        if n_files == 0:
            return False, "no files found"
        return False, "no class folders with WAV files in them: expected <root>/<word>/<file>.wav"
    if good.empty:
        return False, "no usable clips"
    words = good.loc[good["word"] != "", "word"].nunique() if layout != "test_set" else good["folder"].nunique()
    if layout == "speech_commands" and words < 2:
        return False, f"only {words} word with usable clips; a classifier needs at least 2"
    label = "labels" if layout == "test_set" else "words" if layout == "speech_commands" else "classes"
    return True, f"{len(good):,} usable clips of {words} {label}"


def _columns(items: list[str], *, width: int = 100, indent: int = 2) -> str:
    """Lay short strings out in aligned columns, as compact as fits ``width``."""
    if not items:
        return ""
    cell = max(len(item) for item in items) + 2
    per_line = max(1, (width - indent) // cell)
    lines = []
    for start in range(0, len(items), per_line):
        lines.append(" " * indent + "".join(item.ljust(cell) for item in items[start : start + per_line]).rstrip())
    return "\n".join(lines)
