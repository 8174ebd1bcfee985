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
SPEAKER_EXAMPLE = r"^(?P<speaker>[^-]+)-"  # the example the messages give: the speaker before the first "-"
NO_SPEAKER_HINT = (
    "no file name gives a speaker, so a split cannot be speaker-disjoint: pass --speaker-pattern with a "
    f"named group, e.g. {SPEAKER_EXAMPLE!r} for alice-3.wav, or a CSV with a speaker column (--folds)"
)
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


def scan(
    root: str | os.PathLike,
    *,
    workers: int | None = None,
    speaker_pattern: str | re.Pattern | None = None,
    clip_seconds: float | None = None,
) -> pd.DataFrame:
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
    speaker_pattern : str or compiled regex, optional
        Where the speaker id is in a file name that does not follow
        ``<speaker>_nohash_<n>.wav``: a regular expression with a named group
        ``speaker`` (and optionally ``utterance``, digits), searched in the file
        name, e.g. ``^(?P<speaker>[a-z]+)-(?P<utterance>[0-9]+)[.]wav$`` for
        ``alice-3.wav``. Names that follow the Speech Commands pattern keep their
        speaker; a name the pattern does not match is a warning (no speaker).
    clip_seconds : float, optional
        The clip length the data will be cut to (default ``config.CLIP_SECONDS``):
        longer clips get a warning that says so.

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
    pattern = compile_speaker_pattern(speaker_pattern)
    clip_seconds = config.CLIP_SECONDS if clip_seconds is None else float(clip_seconds)
    files = sorted(_walk(folder), key=lambda item: item[1])
    table = _rows_table(_scan_files(files, layout, pattern, clip_seconds, workers=workers))
    _record_scan(table, folder, root, note=note, pattern=pattern, clip_seconds=clip_seconds)
    return table


def _scan_files(files: list[tuple[Path, str]], layout: str, pattern: re.Pattern | None, clip_seconds: float, *,
                workers: int | None) -> list[dict]:  # fmt: skip
    """One row per (path, relpath), read in batches by a thread pool, with a progress bar for many files."""
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
        for batch_rows in pool.map(
            lambda batch: [_scan_file(path, rel, layout, pattern, clip_seconds) for path, rel in batch], batches
        ):
            rows.extend(batch_rows)
            bar.update(len(batch_rows))
    return rows


def _rows_table(rows: list[dict]) -> pd.DataFrame:
    """The scanned rows as a table with :data:`COLUMNS` and integer/float dtypes (also when empty)."""
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.astype(
        {"utterance": "int64", "sample_rate": "int64", "channels": "int64", "frames": "int64", "duration": "float64"}
    )


def _record_scan(table: pd.DataFrame, folder: Path, root: str | os.PathLike, *, note: str,
                 pattern: re.Pattern | None, clip_seconds: float) -> None:  # fmt: skip
    """Write into ``table.attrs`` what was scanned: the folders, the note, the lists and non-default options."""
    table.attrs.update(
        root=str(folder), given_root=str(Path(root).expanduser().resolve()), note=note, lists=find_lists(folder)
    )
    if pattern is not None:
        table.attrs["speaker_pattern"] = pattern.pattern
    if clip_seconds != config.CLIP_SECONDS:
        table.attrs["clip_seconds"] = clip_seconds


def compile_speaker_pattern(pattern: str | re.Pattern | None) -> re.Pattern | None:
    """The compiled ``--speaker-pattern``, checked to have a named group ``speaker``.

    Raises
    ------
    ValueError
        The pattern is not a valid regular expression or has no ``(?P<speaker>...)`` group.
    """
    if pattern is None or (isinstance(pattern, re.Pattern) and "speaker" in pattern.groupindex):
        return pattern
    text = pattern.pattern if isinstance(pattern, re.Pattern) else str(pattern)
    try:
        compiled = re.compile(text)
    except re.error as err:
        raise ValueError(
            f"--speaker-pattern {text!r} is not a regular expression ({err}); e.g. {SPEAKER_EXAMPLE!r}"
        ) from None
    if "speaker" not in compiled.groupindex:
        raise ValueError(
            f"--speaker-pattern {text!r} has no named group 'speaker': mark the speaker id with (?P<speaker>...), "
            f"e.g. {SPEAKER_EXAMPLE!r} for alice-3.wav"
        )
    return compiled


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


def _scan_file(
    path: Path,
    relpath: str,
    layout: str,
    pattern: re.Pattern | None = None,
    clip_seconds: float = config.CLIP_SECONDS,
) -> dict:
    """One row of the table for one file (never raises for a bad file).

    Parameters
    ----------
    path : Path
        The file (absolute).
    relpath : str
        Its POSIX path relative to the scanned folder.
    layout : str
        The folder's layout (:func:`detect_layout`).
    pattern : compiled regex, optional
        The speaker pattern (:func:`compile_speaker_pattern`).
    clip_seconds : float
        The clip length of the data, for the warning about longer clips.

    Returns
    -------
    dict
        The file's values of :data:`COLUMNS`.
    """
    parts = relpath.split("/")
    row = _blank_row(path, relpath, layout)
    if not _is_audio_name(parts[-1]):
        return _not_audio(row)
    errors, warnings = _read_place(row, parts, layout, pattern)
    try:
        info = audio.inspect(path)
    except audio.AudioError as err:
        return _finish(row, [*errors, err.reason], warnings)
    row.update(
        sample_rate=info.sample_rate,
        channels=info.channels,
        frames=info.frames,
        duration=info.duration,
        subtype=info.subtype,
    )
    return _finish(row, errors, [*warnings, *_off_spec(info, row["kind"], clip_seconds)])


def _blank_row(path: Path, relpath: str, layout: str) -> dict:
    """The row of a file before anything is read: where it is, a clip of no known word, speaker or format.

    Returns
    -------
    dict
        Every column of :data:`COLUMNS` but ``status`` and ``reason``.
    """
    parts = relpath.split("/")
    return {
        "path": str(path),
        "relpath": relpath,
        "folder": parts[0] if len(parts) > 1 else "",
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


def _not_audio(row: dict) -> dict:
    """The finished row of a file that is not named like a WAV file.

    An error inside a class folder; a warning at the top level (ignored there).
    """
    row["kind"] = "other"
    if row["folder"]:
        return _finish(row, ["not a WAV file; remove it or move it out of the dataset"], [])
    return _finish(row, [], ["not part of the dataset layout (a file at the top level); ignored"])


def _read_place(
    row: dict, parts: list[str], layout: str, pattern: re.Pattern | None = None
) -> tuple[list[str], list[str]]:
    """Set what an audio file should be from where it is: ``kind``, ``word``, ``speaker``, ``utterance``.

    Parameters
    ----------
    row : dict
        From :func:`_blank_row`; updated in place.
    parts : list of str
        The components of its ``relpath``.
    layout : str
        The folder's layout.
    pattern : compiled regex, optional
        The speaker pattern.

    Returns
    -------
    errors, warnings : list of str
        The problems of its place and name.
    """
    folder = row["folder"]
    if folder == config.BACKGROUND_NOISE_DIR:
        row["kind"] = "noise"
        return [], []
    if folder == config.TEST_SET_SILENCE_DIR and layout == "test_set":
        row["kind"] = "silence"
        return [], []
    if not folder:
        return ["outside any class folder; move it into the folder of its word"], []
    warnings = _read_name(row, parts[-1], layout, pattern)
    if len(parts) > 2:
        warnings.append(f"nested in a subfolder of {folder}/; expected {folder}/<file>.wav (labelled {folder})")
    return [], warnings


def _read_name(row: dict, name: str, layout: str, pattern: re.Pattern | None = None) -> list[str]:
    """Set a clip's ``word``, ``speaker`` and ``utterance`` from its folder and file name.

    Parameters
    ----------
    row : dict
        From :func:`_blank_row`, of a file in a class folder; updated in place.
    name : str
        The file name: ``<speaker>_nohash_<n>.wav``, or ``<word>_<speaker>_nohash_<n>.wav``
        in the test set's ``_unknown_``.
    layout : str
        The folder's layout. In the ``folders`` layout a name without a speaker
        is no warning of its own (the split says once that it cannot be
        speaker-disjoint, and how to fix that).
    pattern : compiled regex, optional
        The speaker pattern, for names that do not follow the Speech Commands pattern.

    Returns
    -------
    list of str
        A warning when the name does not follow its pattern (the speaker is then unknown), else empty.
    """
    if row["folder"] == config.TEST_SET_UNKNOWN_DIR and layout == "test_set":
        match = UNKNOWN_NAME.match(name)
        pattern = "<word>_<speaker>_nohash_<n>.wav"
    else:
        row["word"] = row["folder"]
        match = CLIP_NAME.match(name)
        if match is None and pattern is not None:
            return _read_pattern(row, name, pattern)
        if match is None and layout == "folders":
            return []
        pattern = "<speaker>_nohash_<n>.wav"
    if not match:
        return [
            f"name does not follow {pattern}; its speaker is unknown, so a split cannot keep that "
            "speaker's clips in one set (rename it to follow the pattern)"
        ]
    row["speaker"] = match["speaker"]
    row["utterance"] = int(match["utterance"])
    if "word" in match.groupdict():
        row["word"] = match["word"]
    return []


def _read_pattern(row: dict, name: str, pattern: re.Pattern) -> list[str]:
    """Set a clip's ``speaker`` (and ``utterance``) from the speaker pattern; a warning when it does not match."""
    match = pattern.search(name)
    if match is None or not match["speaker"]:
        return [
            f"name does not match the speaker pattern {pattern.pattern!r}; its speaker is unknown, so a split "
            "cannot keep that speaker's clips in one set (rename it, or change --speaker-pattern)"
        ]
    row["speaker"] = match["speaker"]
    utterance = match.groupdict().get("utterance")
    if utterance is not None and utterance.isdigit():
        row["utterance"] = int(utterance)
    return []


def _off_spec(info: audio.AudioInfo, kind: str, clip_seconds: float = config.CLIP_SECONDS) -> list[str]:
    """Warnings for a readable file that is not what the dataset's format promises (speechlib converts it).

    Parameters
    ----------
    info : speechlib.audio.AudioInfo
        :func:`speechlib.audio.inspect`'s verdict on the file.
    kind : str
        The row's ``kind``; only clips are checked for length.
    clip_seconds : float
        The clip length of the data.

    Returns
    -------
    list of str
        One warning per difference: channels, sample rate, sample format, length.
    """
    warnings = []
    if info.channels != 1:
        warnings.append(f"{info.channels} channels; speechlib mixes to mono")
    if info.sample_rate != config.SAMPLE_RATE:
        warnings.append(f"{info.sample_rate} Hz; resampled to {config.SAMPLE_RATE} Hz")
    if info.subtype != config.SAMPLE_SUBTYPE:
        what = SUBTYPE_NAMES.get(info.subtype, info.subtype_info or info.subtype)
        warnings.append(f"{what} samples ({info.subtype}); converted on load, the dataset's format is 16-bit PCM")
    if kind == "clip" and info.sample_rate and info.frames > math.ceil(clip_seconds * info.sample_rate):
        warnings.append(f"longer than {clip_seconds:g} s ({info.duration:.2f} s); cut to {clip_seconds:g} s on load")
    return warnings


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
    speaker_pattern: str | re.Pattern | None = None,
    clip_seconds: float | None = None,
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
    speaker_pattern : str or compiled regex, optional
        Where the speaker id is in the file names (see :func:`scan`).
    clip_seconds : float, optional
        The clip length the data will be cut to (default ``config.CLIP_SECONDS``).

    Returns
    -------
    int
        0 when usable: a recognised layout, at least one usable clip and (for
        the Speech Commands layout) at least two words; with ``strict``, also no
        file with a problem. 1 otherwise.
    """
    out = file or sys.stdout

    def say(*lines: str) -> None:
        for line in lines:
            print(line, file=out)

    if report is not None:
        _check_report_target(Path(report))
    table = scan(root, speaker_pattern=speaker_pattern, clip_seconds=clip_seconds)
    layout = detect_layout(table.attrs["root"])
    say(*_header_lines(table, layout))
    say(*_label_lines(table, layout))
    say(_speaker_line(table))
    say(*_duration_lines(table, config.CLIP_SECONDS if clip_seconds is None else float(clip_seconds)))
    say(_noise_line(table))
    say(_lists_line(table, layout))
    say(*_problem_lines(table))
    if report is not None:
        say(_write_report(table, Path(report)))
    usable, why = _verdict(table, layout, strict=strict)
    say(f"usable: {'yes' if usable else 'no'} ({why})")
    return 0 if usable else 1


def _good_clips(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of spoken-word clips without an error."""
    clips = table[table["kind"] == "clip"]
    return clips[clips["status"] != "error"]


def _header_lines(table: pd.DataFrame, layout: str) -> list[str]:
    """The summary's first lines: the folder (and how it was read), its layout, its audio files by kind.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`scan`.
    layout : str
        From :func:`detect_layout`.

    Returns
    -------
    list of str
    """
    note = f" ({table.attrs['note']})" if table.attrs["note"] else ""
    audio_files = table[table["kind"] != "other"]
    kinds = ", ".join(f"{(audio_files['kind'] == k).sum():,} {k}" for k in ("clip", "silence", "noise"))
    return [
        f"dataset root: {table.attrs['given_root']}{note}",
        f"layout: {layout}",
        f"audio files: {len(audio_files):,} ({kinds})",
    ]


def _label_lines(table: pd.DataFrame, layout: str) -> list[str]:
    """The classes and their clip counts.

    The test set's label folders (and the words inside ``_unknown_``), or the
    words with usable clips of any other layout.

    Returns
    -------
    list of str
    """
    if layout == "test_set":
        counts = table[table["kind"] != "other"].groupby("folder").size()
        clips = table[table["kind"] == "clip"]
        unknown_words = clips.loc[clips["folder"] == config.TEST_SET_UNKNOWN_DIR, "word"]
        unknown_words = unknown_words[unknown_words != ""]
        return [
            f"labels (folders): {len(counts)}",
            _columns([f"{name} {n:,}" for name, n in counts.items()]),
            f"words inside {config.TEST_SET_UNKNOWN_DIR}: {unknown_words.nunique()}",
        ]
    good = _good_clips(table)
    counts = good[good["word"] != ""].groupby("word").size()
    lines = [f"words: {len(counts)}"]
    if len(counts):
        lines.append(_columns([f"{name} {n:,}" for name, n in counts.items()]))
    return lines


def _speaker_line(table: pd.DataFrame) -> str:
    """The number of speakers of the clips, and of clips whose name gives none."""
    clips = table[table["kind"] == "clip"]
    speakers = clips.loc[clips["speaker"] != "", "speaker"]
    without = (clips["speaker"] == "").sum()
    line = f"speakers: {speakers.nunique():,}" + (f" ({without:,} clips without one)" if without else "")
    if without and without == len(clips) and "speaker_pattern" not in table.attrs:
        line += f"; {NO_SPEAKER_HINT}"
    return line


def _duration_lines(table: pd.DataFrame, clip_seconds: float = config.CLIP_SECONDS) -> list[str]:
    """The shortest, median and longest usable clip and the share shorter than a clip (none without clips).

    When clips are longer than ``clip_seconds``, a second line says how they are
    fitted and which ``--clip-seconds`` keeps every clip whole.
    """
    durations = _good_clips(table)["duration"].to_numpy()
    if not len(durations):
        return []
    short = np.mean(durations < clip_seconds - 1e-9)
    lines = [
        f"durations (clips): min {durations.min():.2f} s, median {np.median(durations):.2f} s, "
        f"max {durations.max():.2f} s; {short:.1%} shorter than {clip_seconds:g} s"
    ]
    longer = np.mean(durations > clip_seconds + 1e-9)
    if longer:
        lines.append(
            f"clip length {clip_seconds:g} s: {longer:.1%} of the clips are longer and keep only their middle "
            f"{clip_seconds:g} s, shorter ones are zero-padded around the centre; --clip-seconds "
            f"{math.ceil(durations.max() * 100) / 100:g} (or auto) keeps every clip whole"
        )
    return lines


def _noise_line(table: pd.DataFrame) -> str:
    """The number and total length of the readable background-noise recordings."""
    noise = table[(table["kind"] == "noise") & (table["status"] != "error")]
    if len(noise):
        return f"background noise: {len(noise)} recordings, {noise['duration'].sum():,.1f} s in total"
    return f"background noise: none (no {config.BACKGROUND_NOISE_DIR}/ folder)"


def _lists_line(table: pd.DataFrame, layout: str) -> str:
    """Which official lists the folder has, their entries and how many of those are in the folder.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`scan`; ``table.attrs["lists"]`` from :func:`find_lists`.
    layout : str
        The test set expects no lists.

    Returns
    -------
    str
    """
    if layout == "test_set":
        return "lists: none expected (the official test set is a test split of its own)"
    present = set(table["relpath"])
    described = []
    for name, path in table.attrs["lists"].items():
        if path is None:
            described.append(f"{name} missing")
        else:
            entries = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            here = sum(entry in present for entry in entries)
            described.append(f"{name} present ({len(entries):,} entries, {here:,} in this folder)")
    return "lists: " + "; ".join(described)


def _problem_lines(table: pd.DataFrame) -> list[str]:
    """The files with a warning or an error: counts by status, by problem (errors first), then each file.

    Returns
    -------
    list of str
        ``["problems: none"]`` when every file is ok.
    """
    problems = table[table["status"] != "ok"]
    if not len(problems):
        return ["problems: none"]
    n_err = (problems["status"] == "error").sum()
    lines = [f"problems: {len(problems):,} files ({n_err:,} errors, {len(problems) - n_err:,} warnings)"]
    by_reason: dict[tuple[str, str], int] = {}
    for status, reason in zip(problems["status"], problems["reason"], strict=True):
        for category in problem_category(reason):
            by_reason[(status, category)] = by_reason.get((status, category), 0) + 1
    for (status, category), n in sorted(by_reason.items(), key=lambda item: (item[0][0] != "error", -item[1])):
        lines.append(f"  {status:<5}  {n:>6,}  {category}")
    lines.append("problem files:")
    order = problems.assign(_e=problems["status"] != "error").sort_values(["_e", "relpath"])
    for status, relpath, reason in zip(order["status"], order["relpath"], order["reason"], strict=True):
        lines.append(f"  {status:<5}  {relpath}: {reason}")
    return lines


def _write_report(table: pd.DataFrame, report: Path) -> str:
    """Write the scan table to the CSV file ``report`` (its folder made as needed); the line that says so."""
    report.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(report, index=False)
    return f"scan table written to {report}"


def _verdict(table: pd.DataFrame, layout: str, *, strict: bool) -> tuple[bool, str]:
    """Whether the scanned folder is usable, and why (see :func:`check`'s return value).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`scan`.
    layout : str
        From :func:`detect_layout`; for an unknown layout, the reason names the
        subfolders that are datasets themselves.
    strict : bool
        Any file with a problem makes the folder unusable.

    Returns
    -------
    usable : bool
    why : str
    """
    labelled = table[table["kind"].isin(["clip", "silence"]) & (table["status"] != "error")]
    usable, why = _usable(layout, labelled, len(table))
    if layout == UNKNOWN_LAYOUT:
        root_dir = Path(table.attrs["root"])
        inner = [name for name in _subdirs(root_dir) if detect_layout(root_dir / name) != UNKNOWN_LAYOUT]
        if inner:
            why += f"; these subfolders are datasets, check one of them instead: {', '.join(inner)}"
    problems = (table["status"] != "ok").sum()
    if usable and strict and problems:
        usable, why = False, f"--strict and {problems:,} files have problems"
    return usable, why


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
