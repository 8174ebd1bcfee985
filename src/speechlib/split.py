"""Speaker-disjoint train / cv / test manifests for Speech Commands, silence without leakage.

A split never moves a file: it writes *manifests* (CSV tables, one row per
example) that every later stage reads. Each example is a whole clip of the
raw dataset, a one-second window of a background-noise recording (the
``silence`` class) or a row of true digital silence.

How clips are assigned to splits
--------------------------------
- When the dataset folder has ``validation_list.txt`` and ``testing_list.txt``
  (the v0.01 / v0.02 layout), a clip listed in the validation list goes to
  ``cv``, one in the testing list to ``test``, every other clip to ``train``.
  List entries that are not in the folder are ignored.
- Otherwise (for example the official test-set layout) the dataset's own hash
  rule decides (:mod:`speechlib.hashsplit`, DATA.md): the SHA-1 of the
  speaker id puts all clips of one speaker in the same split (for a test-set
  ``_unknown_/<word>_<speaker>_nohash_<n>.wav`` the speaker, not the word, is
  hashed). Files without a speaker id (the numbered clips of the test set's
  ``_silence_`` folder, or a name without ``_nohash_``) are hashed by their
  file name without suffixes (``_silence_/1024.wav`` -> ``1024``), so they too
  land in one stable split. Under the lists rule too, a word clip without a
  speaker id that no list names is hashed by its file name (not put in train
  by default), and every such clip is reported: printed as a warning and
  listed in ``split.json``'s ``warnings``.

Silence
-------
Silence examples are one-second windows (``CLIP_SAMPLES``) cut from the
``_background_noise_`` recordings. Each recording's timeline is divided into
disjoint regions, one per split, in order: the first 80 % for train, the
next 10 % for cv, the last 10 % for test (the same percentages as the word
split). A window lies entirely inside its split's region, so no second of
noise is in two splits; the regions are saved in ``split.json``
(``noise_regions``) so that noise augmentation of a split uses only that
split's own noise. About 10 % of the silence rows are true digital silence
(``path == ""``, ``source == "digital_silence"``). A folder in the official
test-set layout has no noise recordings: its ``_silence_`` clips are used as
they are, labelled ``silence``.

Public API
----------
- :func:`make_split` — scan (or take a scanned table), split, check, write.
- :func:`load_manifest`, :func:`load_info` — read what :func:`make_split` wrote.
- :func:`check_speakers_disjoint`, :func:`check_files_disjoint`,
  :func:`check_noise_regions_disjoint` — leakage checks, raising
  :class:`LeakageError`; :func:`counts_table` — label x split counts;
  :func:`noise_regions_table` — the noise regions of ``split.json`` as a table.
- :func:`task_labels` — the label list of a task.
- :func:`random_split` — the *wrong* way (shuffle and slice), kept to show
  the leakage it causes.

Examples
--------
>>> from speechlib import split
>>> info = split.make_split("data/synthetic", "data/work/synthetic/split")  # doctest: +SKIP
>>> train = split.load_manifest("data/work/synthetic/split", "train")  # doctest: +SKIP
>>> split.counts_table({"train": train})  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from sklearn.model_selection import StratifiedGroupKFold

from speechlib import __version__, config, datasets, hashsplit, manifest
from speechlib.datasets.scan import SPEAKER_EXAMPLE
from speechlib.manifest import DIGITAL_SILENCE as DIGITAL_SILENCE  # the manifest's names, as split.* too
from speechlib.manifest import DTYPES, MANIFEST_COLUMNS
from speechlib.manifest import MANIFEST_NAMES as MANIFEST_NAMES
from speechlib.manifest import load as load_manifest

# --- Constants of the split --------------------------------------------------
SPLIT_FORMAT_VERSION = 1  # bumped when the manifest columns or split.json keys change
TASKS = ("kaggle12", "all", "folders")  # a custom word list is one more kind of task; "auto" picks one
MIN_FOLDS = 3  # a split from a folds CSV needs a train, a cv and a test fold
FOLDS_FILE = "folds.csv"  # beside the manifests of a split made from a folds CSV: relpath, fold
# Column names a folds CSV may use (lower case), in order of preference; UrbanSound8K's first.
FOLD_COLUMNS = {
    "path": ("slice_file_name", "path", "relpath", "file", "filename", "file_name", "fname"),
    "label": ("class", "label", "word", "category"),
    "fold": ("fold",),
    "speaker": ("speaker", "speaker_id", "fsid", "client_id"),
}
DIGITAL_SILENCE_FRACTION = 0.1  # share of silence rows that are digital silence, not noise
SAMPLE_PER_CLASS = (20, 5, 5)  # sample set: clips per class in train / cv / test, as the original course
SMALL_PER_LABEL = 30  # small mode: about this many train clips per label (cv / test in proportion)
SMALL_MIN_PER_LABEL = 5  # small mode: at least this many cv / test clips per label, when the data has them
_LIST_SPLIT = {config.VALIDATION_LIST: "cv", config.TESTING_LIST: "test"}
_HASH_SPLIT = {"training": "train", "validation": "cv", "testing": "test"}


class LeakageError(ValueError):
    """A split puts the same speaker, file or stretch of noise in two splits."""


# --- Labels --------------------------------------------------------------------


def task_labels(
    task: str = "kaggle12",
    *,
    words: Sequence[str] | None = None,
    dataset_words: Sequence[str] = (),
    include_unknown: bool = True,
    include_silence: bool = True,
) -> list[str]:
    """The ordered label list of a task; a label's position is its ``label_id``.

    Parameters
    ----------
    task : {"kaggle12", "all", "folders"}
        ``folders``: every word (class folder, or label of a folds CSV) present
        in the data, sorted, then ``silence`` when included — a dataset of your
        own words. ``kaggle12``: the ten commands, ``silence``, ``unknown``
        (``config.KAGGLE12_LABELS``; without ``silence`` / ``unknown`` when
        they are excluded). ``all``: every word of the dataset as its
        own class, in ``config.WORDS_V002`` order (30 words for v0.01, 35 for
        v0.02: the v0.02 list is used as soon as one v0.02-only word is
        present), then ``silence``. Ignored when ``words`` is given.
    words : sequence of str, optional
        A custom task: these words in this order, then ``silence`` and
        ``unknown`` (each only when included).
    dataset_words : sequence of str
        The words present in the data (used by ``all``).
    include_unknown, include_silence : bool
        Whether the ``unknown`` / ``silence`` classes exist; ``all`` never has
        ``unknown`` (every word is a class).

    Returns
    -------
    list of str
    """
    if words is not None:
        words = [w.strip() for w in words if w.strip()]
        if not words:
            raise ValueError("the custom word list is empty: give at least one word, e.g. words=['yes', 'no']")
        duplicates = sorted({w for w in words if words.count(w) > 1})
        if duplicates:
            raise ValueError(f"the custom word list repeats {duplicates}: give each word once")
        reserved = {config.SILENCE_LABEL, config.UNKNOWN_LABEL} & set(words)
        if reserved:
            raise ValueError(
                f"{sorted(reserved)} cannot be a word of the list: use include_silence / include_unknown instead"
            )
        labels = list(words)
        if include_silence:
            labels.append(config.SILENCE_LABEL)
        if include_unknown:
            labels.append(config.UNKNOWN_LABEL)
        return labels
    if task == "kaggle12":
        dropped = {config.SILENCE_LABEL} - ({config.SILENCE_LABEL} if include_silence else set())
        dropped |= {config.UNKNOWN_LABEL} - ({config.UNKNOWN_LABEL} if include_unknown else set())
        return [label for label in config.KAGGLE12_LABELS if label not in dropped]
    if task == "folders":
        labels = sorted({w for w in dataset_words if w})
        if not labels:
            raise ValueError("the dataset has no labelled clips: expected <root>/<class>/<file>.wav")
        return [*labels, config.SILENCE_LABEL] if include_silence else labels
    if task == "all":
        present = {w for w in dataset_words if w}
        reference = config.WORDS_V001 if present <= set(config.WORDS_V001) else config.WORDS_V002
        labels = list(reference) + sorted(present - set(reference))
        if include_silence:
            labels.append(config.SILENCE_LABEL)
        return labels
    raise ValueError(f"unknown task {task!r}: use one of {list(TASKS)} or pass a custom word list (words=[...])")


# --- Assigning files to splits ---------------------------------------------------


def _read_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def _hash_split(
    relpath: str,
    validation_percent: float,
    testing_percent: float,
    band: tuple[float, float] = (0.0, 100.0),
    speaker: str | None = None,
) -> str:
    """The split of one file under the dataset's hash rule (:func:`speechlib.hashsplit.which_set`).

    ``speaker``: its speaker id when known (hashed instead of the id in the file name).
    """
    return _HASH_SPLIT[hashsplit.which_set(relpath, validation_percent, testing_percent, band=band, speaker=speaker)]


def _dataset_root(table: pd.DataFrame) -> str:
    """The dataset folder of a scanned table: ``table.attrs["root"]``, else ``path`` minus ``relpath``."""
    if table.attrs.get("root"):
        return str(table.attrs["root"])
    for path, relpath in zip(table["path"], table["relpath"], strict=True):
        if path and relpath and str(path).endswith(str(relpath)):
            return str(path)[: -len(str(relpath))].rstrip("/\\") or "/"
    return ""


# --- Silence -----------------------------------------------------------------------


def _noise_regions(noise: pd.DataFrame, validation_percent: float, testing_percent: float) -> dict[str, list[dict]]:
    """Disjoint regions [start, stop) of every noise recording, one per split (train, cv, test in order)."""
    train_fraction = (100.0 - validation_percent - testing_percent) / 100.0
    cv_fraction = train_fraction + validation_percent / 100.0
    regions: dict[str, list[dict]] = {s: [] for s in config.SPLITS}
    for row in noise.sort_values("relpath").itertuples(index=False):
        total = int(row.frames)
        bounds = [0, int(total * train_fraction), int(total * cv_fraction), total]
        for i, name in enumerate(config.SPLITS):
            regions[name].append({"relpath": row.relpath, "path": row.path, "start": bounds[i], "stop": bounds[i + 1]})
    return regions


def _silence_rows(
    regions: list[dict], count: int, *, seed: int, split_index: int, length: int = config.CLIP_SAMPLES
) -> list[dict]:
    """``count`` silence rows of one split: windows inside the split's regions, plus digital silence.

    Windows are spread over the recordings in proportion to the room in their
    region, at seeded random offsets, and no window is drawn twice in a split
    (unless the regions hold fewer window positions than windows).
    """
    rng = np.random.default_rng([seed, split_index])
    usable = [r for r in regions if r["stop"] - r["start"] >= length]
    n_digital = count if not usable else round(count * DIGITAL_SILENCE_FRACTION)
    n_windows = count - n_digital
    picked: list[tuple[int, int]] = []
    if n_windows:
        room = np.array([r["stop"] - r["start"] - length + 1 for r in usable], dtype=np.float64)
        unique = n_windows <= room.sum()
        seen: set[tuple[int, int]] = set()
        while len(picked) < n_windows:
            for i in rng.choice(len(usable), size=n_windows - len(picked), p=room / room.sum()):
                offset = int(rng.integers(usable[i]["start"], usable[i]["stop"] - length + 1))
                if not unique or (int(i), offset) not in seen:
                    seen.add((int(i), offset))
                    picked.append((int(i), offset))
    rows = [
        {
            "path": usable[i]["path"],
            "relpath": usable[i]["relpath"],
            "source": usable[i]["relpath"],
            "offset": offset,
            "num_samples": length,
        }
        for i, offset in picked
    ]
    rows += [
        {"path": "", "relpath": "", "source": DIGITAL_SILENCE, "offset": 0, "num_samples": length}
        for _ in range(n_digital)
    ]
    return rows


def _external_noise(noise_dir: Path | str) -> pd.DataFrame:
    """Noise recordings of a separate folder, as rows shaped like scan()'s ``noise`` rows."""
    noise_dir = Path(noise_dir).resolve()
    if not noise_dir.is_dir():
        raise FileNotFoundError(
            f"noise folder {noise_dir} does not exist: pass a folder of background-noise .wav files"
        )
    rows = []
    for path in sorted(noise_dir.glob("*.wav")):
        info = sf.info(str(path))
        rows.append(
            {
                "path": str(path),
                "relpath": f"{noise_dir.name}/{path.name}",
                "kind": "noise",
                "sample_rate": info.samplerate,
                "channels": info.channels,
                "frames": info.frames,
                "status": "ok",
                "reason": "",
            }
        )
    if not rows:
        raise FileNotFoundError(f"no .wav files in the noise folder {noise_dir}")
    return pd.DataFrame(rows)


# --- Small mode and the sample set -------------------------------------------------------


def _stable_order(keys: Sequence[str], seed: int) -> list[str]:
    """``keys`` in a seeded order that does not depend on which other keys are present."""
    return sorted(keys, key=lambda k: hashlib.sha1(f"{seed}:{k}".encode()).hexdigest())


def _subsample_by_speaker(clips: pd.DataFrame, targets: Mapping[str, int], *, seed: int) -> pd.DataFrame:
    """Keep whole speakers, in a seeded order, until every label of each split has its target count.

    A file without a speaker id counts as a speaker of its own.
    """
    group = pd.Series(np.where(clips["speaker"] != "", clips["speaker"], clips["relpath"]), index=clips.index)
    keep = []
    for name in config.SPLITS:
        in_split = clips[clips["split"] == name]
        labels_of = in_split["label"].groupby(group[in_split.index]).agg(list).to_dict()
        rows_of = in_split.groupby(group[in_split.index]).groups
        need = {label: targets[name] for label in in_split["label"].unique()}
        for key in _stable_order(list(labels_of), seed):
            if all(n <= 0 for n in need.values()):
                break
            if any(need[label] > 0 for label in labels_of[key]):
                keep.extend(rows_of[key])
                for label in labels_of[key]:
                    need[label] -= 1
    return clips.loc[clips.index.isin(keep)]


def _sample_set(frame: pd.DataFrame, per_class: int, *, seed: int, split_index: int) -> pd.DataFrame:
    """A class-balanced subset of one split's manifest: ``per_class`` rows of every label (fewer if absent)."""
    rng = np.random.default_rng([seed, 100 + split_index])
    picked = []
    for label_id in sorted(frame["label_id"].unique()):
        rows = np.flatnonzero(frame["label_id"].to_numpy() == label_id)
        picked.extend(rng.choice(rows, size=min(per_class, len(rows)), replace=False).tolist())
    return frame.iloc[sorted(picked)].reset_index(drop=True)


# --- Checks ------------------------------------------------------------------------------


def _as_frame(manifests: Mapping[str, pd.DataFrame] | pd.DataFrame) -> pd.DataFrame:
    if isinstance(manifests, pd.DataFrame):
        return manifests
    frames = [m.assign(split=name) if "split" not in m else m for name, m in manifests.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=MANIFEST_COLUMNS)


def _shared(frame: pd.DataFrame, key: pd.Series) -> dict[str, list[str]]:
    """Keys found in more than one split, with their splits."""
    pairs = pd.DataFrame({"key": key.to_numpy(), "split": frame["split"].to_numpy()}).drop_duplicates()
    repeated = pairs[pairs["key"].duplicated(keep=False)]
    return {k: sorted(g) for k, g in repeated.groupby("key", sort=True)["split"]}


def _raise_shared(what: str, shared: Mapping[str, list[str]]) -> None:
    if shared:
        examples = ", ".join(f"{k} in {'+'.join(v)}" for k, v in list(shared.items())[:10])
        raise LeakageError(
            f"{len(shared)} {what} in more than one split (e.g. {examples}): the split leaks; "
            "build it with speechlib.split.make_split (official lists or the hash rule), not by shuffling"
        )


def check_speakers_disjoint(manifests: Mapping[str, pd.DataFrame] | pd.DataFrame) -> dict:
    """Check that no speaker has clips in two splits.

    Parameters
    ----------
    manifests : dict of str to DataFrame, or DataFrame
        Manifests by split name, or one table with a ``split`` column. Rows
        without a speaker (silence) are not checked here.

    Returns
    -------
    dict
        ``{"check": "speakers_disjoint", "ok": True, "speakers": {split: n}, "shared": 0}``.

    Raises
    ------
    LeakageError
        When a speaker is in two splits; the message lists examples.
    """
    frame = _as_frame(manifests)
    frame = frame[frame["speaker"].astype(str) != ""]
    _raise_shared("speakers", _shared(frame, frame["speaker"].astype(str)))
    counts = frame.groupby("split")["speaker"].nunique().to_dict()
    return {"check": "speakers_disjoint", "ok": True, "speakers": {k: int(v) for k, v in counts.items()}, "shared": 0}


def check_files_disjoint(manifests: Mapping[str, pd.DataFrame] | pd.DataFrame) -> dict:
    """Check that no whole file is used in two splits (noise windows are checked by regions).

    Parameters
    ----------
    manifests : dict of str to DataFrame, or DataFrame
        Manifests by split name, or one table with a ``split`` column.

    Returns
    -------
    dict
        ``{"check": "files_disjoint", "ok": True, "files": {split: n}, "shared": 0}``.

    Raises
    ------
    LeakageError
        When a file is in two splits.
    """
    frame = _as_frame(manifests)
    frame = frame[(frame["num_samples"].astype(int) == 0) & (frame["relpath"].astype(str) != "")]
    _raise_shared("files", _shared(frame, frame["relpath"].astype(str)))
    counts = frame.groupby("split")["relpath"].nunique().to_dict()
    return {"check": "files_disjoint", "ok": True, "files": {k: int(v) for k, v in counts.items()}, "shared": 0}


def _overlaps(intervals: list[tuple[int, int, str]]) -> list[tuple[str, str, int]]:
    """Overlaps of [start, stop) intervals of different splits, as (split_a, split_b, first shared sample).

    A sweep in start order that remembers the interval reaching furthest: it
    finds at least one overlap whenever any two intervals of different splits
    overlap (enough for a check that raises).
    """
    found = []
    reach_stop, reach_split = -1, ""
    for start, stop, name in sorted(intervals):
        if start < reach_stop and name != reach_split:
            found.append((reach_split, name, start))
        if stop > reach_stop:
            reach_stop, reach_split = stop, name
    return found


def check_noise_regions_disjoint(
    manifests: Mapping[str, pd.DataFrame] | pd.DataFrame, noise_regions: Mapping[str, list[dict]] | None = None
) -> dict:
    """Check that no stretch of a noise recording is in two splits.

    Two things are checked: the silence windows of different splits never
    overlap, and, when ``noise_regions`` is given (``split.json``'s
    ``noise_regions``), the regions of different splits never overlap and
    every window lies inside a region of its own split.

    Parameters
    ----------
    manifests : dict of str to DataFrame, or DataFrame
        Manifests by split name, or one table with a ``split`` column.
    noise_regions : dict of str to list of dict, optional
        ``{split: [{"relpath", "path", "start", "stop"}, ...]}``, in samples.

    Returns
    -------
    dict
        ``{"check": "noise_regions_disjoint", "ok": True, "windows": {split: n}, "recordings": n}``.

    Raises
    ------
    LeakageError
        When a window or region of one split overlaps one of another split, or
        a window lies outside its split's regions.
    """
    frame = _as_frame(manifests)
    windows = frame[(frame["num_samples"].astype(int) > 0) & (frame["source"].astype(str) != DIGITAL_SILENCE)]
    problems = []
    by_source: dict[str, list[tuple[int, int, str]]] = {}
    for row in windows.itertuples(index=False):
        by_source.setdefault(row.source, []).append(
            (int(row.offset), int(row.offset) + int(row.num_samples), row.split)
        )
    for source, intervals in sorted(by_source.items()):
        for split_a, split_b, sample in _overlaps(intervals):
            problems.append(f"windows of {source} in {split_a} and {split_b} overlap at sample {sample}")
    if noise_regions is not None:
        regions_by_source: dict[str, list[tuple[int, int, str]]] = {}
        for name, regions in noise_regions.items():
            for r in regions:
                regions_by_source.setdefault(r["relpath"], []).append((int(r["start"]), int(r["stop"]), name))
        for source, intervals in sorted(regions_by_source.items()):
            for split_a, split_b, sample in _overlaps([i for i in intervals if i[1] > i[0]]):
                problems.append(f"noise regions of {source} for {split_a} and {split_b} overlap at sample {sample}")
        for source, intervals in sorted(by_source.items()):
            own = regions_by_source.get(source, [])
            for start, stop, name in intervals:
                if not any(r_split == name and r_start <= start and stop <= r_stop for r_start, r_stop, r_split in own):
                    problems.append(
                        f"a {name} window of {source} at samples [{start}, {stop}) is outside the {name} region"
                    )
    if problems:
        raise LeakageError(
            f"{len(problems)} noise leak(s): " + "; ".join(problems[:10]) + ". Silence windows must come from their "
            "split's own region of each recording (speechlib.split.make_split does this)"
        )
    counts = windows.groupby("split").size().to_dict()
    return {
        "check": "noise_regions_disjoint",
        "ok": True,
        "windows": {k: int(v) for k, v in counts.items()},
        "recordings": len(by_source),
    }


def counts_table(manifests: Mapping[str, pd.DataFrame] | pd.DataFrame) -> pd.DataFrame:
    """Number of examples per label (rows, in ``label_id`` order) and split (columns train, cv, test).

    Parameters
    ----------
    manifests : dict of str to DataFrame, or DataFrame
        Manifests by split name, or one table with ``split``, ``label`` and ``label_id`` columns.

    Returns
    -------
    DataFrame
        int counts, index ``label``, columns the splits present (in ``config.SPLITS`` order).
    """
    frame = _as_frame(manifests)
    table = pd.crosstab(frame["label"], frame["split"])
    order = frame.drop_duplicates("label").sort_values("label_id")["label"].tolist()
    columns = [s for s in config.SPLITS if s in table.columns] + [s for s in table.columns if s not in config.SPLITS]
    table = table.reindex(index=order, columns=columns, fill_value=0).astype(int)
    table.index.name, table.columns.name = "label", "split"
    return table


def noise_regions_table(
    noise_regions: Mapping[str, list[dict]], *, sample_rate: int = config.SAMPLE_RATE
) -> pd.DataFrame:
    """The noise regions of a split (``split.json``'s ``noise_regions``) as a table, one row per recording and split.

    Parameters
    ----------
    noise_regions : dict of str to list of dict
        ``{split: [{"relpath", "path", "start", "stop"}, ...]}``, start and stop in samples
        (``load_info(out_dir)["noise_regions"]``).
    sample_rate : int, Hz
        Rate of the recordings, to express the regions in seconds.

    Returns
    -------
    DataFrame
        Columns ``recording`` (relpath), ``split``, ``start``, ``stop`` (int, samples, [start, stop)),
        ``start_s``, ``stop_s``, ``seconds`` (float, s); sorted by recording, then split in
        ``config.SPLITS`` order. Empty (same columns) when there are no regions.
    """
    order = {name: i for i, name in enumerate(config.SPLITS)}
    rows = [
        {"recording": r["relpath"], "split": name, "start": int(r["start"]), "stop": int(r["stop"])}
        for name, regions in noise_regions.items()
        for r in regions
    ]
    table = pd.DataFrame(rows, columns=["recording", "split", "start", "stop"]).astype({"start": int, "stop": int})
    table = table.assign(
        start_s=table["start"] / sample_rate,
        stop_s=table["stop"] / sample_rate,
        seconds=(table["stop"] - table["start"]) / sample_rate,
    )
    rank = table["split"].map(lambda name: order.get(name, len(order)))
    return (
        table.assign(_rank=rank)
        .sort_values(["recording", "_rank"], kind="stable")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


def _run_checks(manifests: Mapping[str, pd.DataFrame], noise_regions: Mapping[str, list[dict]]) -> list[dict]:
    return [
        check_speakers_disjoint(manifests),
        check_files_disjoint(manifests),
        check_noise_regions_disjoint(manifests, noise_regions),
    ]


# --- make_split ----------------------------------------------------------------------------


def _scanned(
    data: pd.DataFrame | str | os.PathLike, *, speaker_pattern: str | None = None, clip_seconds: float | None = None
) -> tuple[pd.DataFrame, str]:
    if isinstance(data, pd.DataFrame):
        return data, _dataset_root(data)
    root = Path(data).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"dataset folder {root} does not exist: pass a Speech Commands folder (or its scan table)"
        )

    table = datasets.scan(root, speaker_pattern=speaker_pattern, clip_seconds=clip_seconds)
    return table, str(table.attrs.get("root") or root)


def _assign(
    clips: pd.DataFrame,
    root: str,
    *,
    found: Mapping[str, Path | str | None] | None,
    rule: str,
    validation_percent: float,
    testing_percent: float,
) -> tuple[pd.Series, str]:
    """The split of every clip and the rule used ("lists" or "hash").

    ``found`` maps list names to their files (scan()'s ``attrs["lists"]``);
    when None the lists are looked for in ``root``.
    """
    if found is None:
        found = {name: Path(root) / name for name in _LIST_SPLIT} if root else {}
    lists = {name: Path(found[name]) for name in _LIST_SPLIT if found.get(name)}
    has_lists = len(lists) == len(_LIST_SPLIT) and all(p.is_file() for p in lists.values())
    if rule not in ("auto", "lists", "hash"):
        raise ValueError(f"unknown rule {rule!r}: use 'auto' (lists when present), 'lists' or 'hash'")
    if rule == "lists" and not has_lists:
        raise FileNotFoundError(
            f"{root or 'the dataset'} has no {config.VALIDATION_LIST} and {config.TESTING_LIST}: use rule='hash'"
        )
    if has_lists and rule != "hash":
        assigned = pd.Series("train", index=clips.index, dtype=object)
        listed = pd.Series(False, index=clips.index)
        for name, path in lists.items():
            hit = clips["relpath"].isin(_read_list(path))
            assigned[hit] = _LIST_SPLIT[name]
            listed |= hit
        # A clip in no list is train only when its speaker is known; one without a speaker id is
        # hashed by its file name, as under the hash rule (reported by make_split).
        nameless = ~listed & _no_speaker(clips)
        assigned[nameless] = [
            _hash_split(relpath, validation_percent, testing_percent) for relpath in clips.loc[nameless, "relpath"]
        ]
        return assigned, "lists"

    # A folder that is itself one official set (the official test set holds only speakers of the
    # testing band) would land whole in one split: apply the same hash, zoomed into that band.
    speakers = clips.loc[clips["speaker"].astype(str) != "", "speaker"].astype(str).unique()
    band = hashsplit.official_band(hashsplit.hash_percentage(s) for s in speakers) or (0.0, 100.0)
    has_speaker = clips["speaker"].astype(str) != ""
    assigned = [
        _hash_split(relpath, validation_percent, testing_percent, band if known else (0.0, 100.0), speaker or None)
        for relpath, known, speaker in zip(clips["relpath"], has_speaker, clips["speaker"].astype(str), strict=True)
    ]
    used = "hash" if band == (0.0, 100.0) else f"hash within the official band [{band[0]:g}%, {band[1]:g}%)"
    return pd.Series(assigned, index=clips.index, dtype=object), used


def _no_speaker(clips: pd.DataFrame) -> pd.Series:
    """Word clips whose file name yields no speaker id (silence clips have none by design)."""
    kind = clips["kind"] if "kind" in clips else pd.Series("clip", index=clips.index)
    return (clips["speaker"].fillna("").astype(str) == "") & (kind == "clip")


def _label_clips(clips: pd.DataFrame, labels: list[str], *, task: str, words: Sequence[str] | None) -> pd.DataFrame:
    """Attach ``label`` to every clip (dropping clips no label takes)."""
    label_set = set(labels)
    if words is None and task in ("all", "folders"):
        word_labels = label_set - {config.SILENCE_LABEL, config.UNKNOWN_LABEL}
    else:
        word_labels = set(words) if words is not None else set(config.COMMANDS)
    is_silence = clips["kind"] == "silence"
    label = np.where(clips["word"].isin(word_labels), clips["word"], config.UNKNOWN_LABEL)
    label = np.where(is_silence, config.SILENCE_LABEL, label)
    out = clips.assign(label=label)
    return out[out["label"].isin(label_set)]


def make_split(
    data: pd.DataFrame | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    task: str = "auto",
    words: Sequence[str] | None = None,
    include_unknown: bool = True,
    include_silence: bool | None = None,
    seed: int = config.SEED,
    validation_percent: float = config.VALIDATION_PERCENT,
    testing_percent: float = config.TESTING_PERCENT,
    silence_per_split: int | Mapping[str, int] | None = None,
    sample_per_class: Sequence[int] = SAMPLE_PER_CLASS,
    small: bool | None = None,
    materialize: bool = False,
    rule: str = "auto",
    noise_dir: str | os.PathLike | None = None,
    speaker_pattern: str | None = None,
    clip_seconds: float | str | None = None,
    folds: str | os.PathLike | None = None,
    test_fold: str | None = None,
    cv_fold: str | None = None,
    test_speakers: Sequence[str] | None = None,
    verbose: bool = True,
) -> dict:
    """Split a dataset into speaker-disjoint train / cv / test manifests and write them to ``out_dir``.

    Writes ``train.csv``, ``cv.csv``, ``test.csv`` (columns ``MANIFEST_COLUMNS``),
    ``sample_train.csv``, ``sample_cv.csv``, ``sample_test.csv`` (the sample set)
    and ``split.json``. Everything is written to a temporary folder beside
    ``out_dir`` and renamed into place at the end, so a folder with a
    ``split.json`` is always complete. The same inputs and seed give the same
    files byte for byte. The raw dataset is only read.

    Parameters
    ----------
    data : path or DataFrame
        A dataset folder (scanned with :func:`speechlib.datasets.scan`) or a
        table shaped like scan()'s output. A table's dataset folder is
        ``data.attrs["root"]`` or else derived from ``path`` and ``relpath``;
        its lists are used when that folder has them.
    out_dir : path
        The split folder. It is replaced as a whole; an existing non-empty
        folder without ``split.json`` is refused (it is not a split folder).
    task : {"auto", "kaggle12", "all", "folders"}
        The label set (see :func:`task_labels`); ignored when ``words`` is given.
        ``auto``: ``kaggle12`` for a Speech Commands folder (one with all ten
        commands, or the official test-set layout), else ``folders`` (every
        class folder, or every label of ``folds``, is a class).
    words : sequence of str, optional
        A custom task: these words, plus ``silence`` / ``unknown`` when included.
    include_unknown : bool
        Keep the ``unknown`` class (every word outside the task's words; when
        excluded those clips are left out). The tasks ``all`` and ``folders`` have no ``unknown``.
    include_silence : bool, optional
        Keep the ``silence`` class. Default: always for ``kaggle12`` and ``all``
        (digital silence when the dataset has no noise); for ``folders`` and a
        custom word list only when there is noise to cut it from (a
        ``_background_noise_`` folder, ``noise_dir``, or ``_silence_`` clips).
    seed : int
        Seeds the silence windows, small mode and the sample set.
    validation_percent, testing_percent : float
        Percentages for the hash rule and the noise regions (10 / 10).
    silence_per_split : int or dict of str to int, optional
        Silence examples per split (an int applies to every split). Default:
        the mean count of the word classes (not ``unknown``) in that split.
        Not used for the test-set layout, whose ``_silence_`` clips are all kept.
    sample_per_class : (int, int, int)
        Sample-set examples per class in train, cv, test.
    small : bool, optional
        Keep only a few hundred clips, chosen by whole speakers (about
        ``SMALL_PER_LABEL`` per label in train). Default ``config.is_small()``.
    materialize : bool
        Also build ``out_dir/materialized/{main,sample}/{train,cv,test}/<label>/``
        with symlinks to the raw clips (the original course's layout). A
        silence window cannot be a symlink, so those are written as 1-s
        16-bit wav files there (digital silence as zeros).
    rule : {"auto", "lists", "hash"}
        ``auto``: the official lists when the folder has them, else the hash rule.
    noise_dir : path, optional
        A folder of background-noise recordings to cut silence from, for a
        dataset that has no ``_background_noise_`` of its own.
    speaker_pattern : str, optional
        A regular expression with a named group ``speaker``, searched in each
        file name that does not follow ``<speaker>_nohash_<n>.wav`` (see
        :func:`speechlib.datasets.scan`). Without a speaker the split cannot
        be speaker-disjoint: it hashes file names instead, and warns once.
    clip_seconds : float or "auto", optional
        The length every example is fitted to (default ``config.CLIP_SECONDS``,
        1 s): a longer clip keeps its middle, a shorter one is zero-padded
        around its centre (``speechlib.audio.fix_length``), silence windows
        are this long. ``"auto"``: the longest usable clip, rounded up to 10 ms.
        Recorded in ``split.json`` (``clip_seconds``) when not 1 s; the
        featurizer and the saved model follow it.
    folds : path, optional
        A metadata CSV that gives every clip's fold (and label, and maybe
        speaker): UrbanSound8K's ``metadata/UrbanSound8K.csv``
        (``slice_file_name, fold, classID, class``; files in ``fold<N>/``)
        or any CSV with ``path``, ``label``, ``fold`` and optional ``speaker``
        columns (:func:`read_folds`). The test fold is ``test_fold`` (default
        the last), the cv fold ``cv_fold`` (default the one before it), the
        other folds are train; ``folds.csv`` (relpath, fold) is written beside
        the manifests, so :func:`write_folds` (``speechlib crossval``) runs
        one training per predefined fold.
    test_fold, cv_fold : str, optional
        The folds of ``folds`` used as test and cv.
    test_speakers : sequence of str, optional
        Hold these speakers out: all their clips (and only theirs) are the test
        split; of the other speakers the ones first in hash order
        (:func:`speechlib.hashsplit.hash_percentage`) holding at least
        ``validation_percent`` of the clips are cv (at least one speaker),
        the rest train.
    verbose : bool
        Print skipped files, warnings, the counts table and the checks.

    Returns
    -------
    dict
        The content of ``split.json``: ``task``, ``labels``, ``seed``, ``rule``,
        ``counts`` ({split: {label: n}}), ``sample_counts``, ``dataset``,
        ``noise_regions`` ({split: [{relpath, path, start, stop}]}, samples),
        ``skipped`` ([{relpath, reason}]), ``warnings``, ``checks``,
        ``version``, ``created_by``, and the other parameters.

    Raises
    ------
    LeakageError
        If a leakage check fails (nothing is written then).
    ValueError, FileNotFoundError
        For a bad task, word list or folder; the message says what to do.
    """
    small = config.is_small() if small is None else small
    if len(sample_per_class) != len(config.SPLITS):
        raise ValueError(f"sample_per_class needs one count per split {config.SPLITS}, got {sample_per_class!r}")
    fixed_seconds = None if clip_seconds in (None, "auto") else float(clip_seconds)
    table, root = _scanned(data, speaker_pattern=speaker_pattern, clip_seconds=fixed_seconds)
    clips, noise, skipped = _usable(table)
    clips, fold_of, warnings = _with_folds(clips, folds, root)
    task = _auto_task(clips, task, words, from_csv=folds is not None)
    if include_silence is None:
        include_silence = (task in ("kaggle12", "all") and words is None) or _has_noise(clips, noise, noise_dir)
    labels, words = _task_of(
        clips, root, task=task, words=words, include_unknown=include_unknown, include_silence=include_silence
    )
    clips = _label_clips(clips, labels, task=task, words=words)
    seconds = _clip_seconds(clips, clip_seconds)
    length = round(seconds * config.SAMPLE_RATE)
    clips["split"], used_rule = _assign_splits(
        clips, table, root, fold_of=fold_of, folds=folds, test_fold=test_fold, cv_fold=cv_fold,
        test_speakers=test_speakers, rule=rule, validation_percent=validation_percent, testing_percent=testing_percent,
    )  # fmt: skip
    warnings += _no_speaker_warnings(clips, summary=_layout(table) == "folders" or folds is not None)
    if small:
        clips = _subsample_by_speaker(clips, _small_targets(validation_percent, testing_percent), seed=seed)
    manifests, noise_regions, noise_warnings = _manifests_with_silence(
        clips, noise, labels, root=root, noise_dir=noise_dir, silence_per_split=silence_per_split, seed=seed,
        length=length, validation_percent=validation_percent, testing_percent=testing_percent,
    )  # fmt: skip
    warnings += noise_warnings
    samples = _sample_sets(manifests, sample_per_class, seed=seed)
    checks = _run_checks(manifests, noise_regions)
    check_speakers_disjoint(samples)
    info = _split_info(
        manifests, samples, labels, words, task=task, seed=seed, rule=used_rule,
        validation_percent=validation_percent, testing_percent=testing_percent, small=small, root=root,
        noise_regions=noise_regions, skipped=skipped, warnings=warnings, checks=checks, materialize=materialize,
    )  # fmt: skip
    extra = _add_own_data_keys(
        info, manifests, seconds=seconds, speaker_pattern=table.attrs.get("speaker_pattern"),
        test_speakers=test_speakers, folds=folds, fold_of=fold_of,
    )  # fmt: skip
    _write(Path(out_dir), manifests, samples, info, materialize=materialize, extra=extra)
    if verbose:
        _report(info, manifests)
    return info


# --- Datasets of one's own: the task, the clip length, folds, held-out speakers ------------------------


def _layout(table: pd.DataFrame) -> str:
    """The layout of a scanned table (its ``layout`` column), ``""`` when it has none."""
    if "layout" not in table or table.empty:
        return ""
    return str(table["layout"].iloc[0])


def _auto_task(clips: pd.DataFrame, task: str, words: Sequence[str] | None, *, from_csv: bool) -> str:
    """``task``, with ``auto`` resolved: ``kaggle12`` for Speech Commands data, ``folders`` for any other.

    Speech Commands data is the test-set layout, or a Speech Commands layout
    holding some of the ten commands *and* other words (which make ``unknown``).
    A folder-per-class set, a folds CSV, a set without any command (a digits
    set) or with commands only (TensorFlow's mini_speech_commands: no word is
    unknown) is ``folders``: every class its own label.
    """
    if task != "auto" or words is not None:
        return "kaggle12" if task == "auto" else task
    layout = _layout(clips)
    present = set(clips.loc[clips["kind"] == "clip", "word"]) - {""}
    commands = set(config.COMMANDS)
    if from_csv or layout == "folders":
        return "folders"
    if layout == "test_set" or (present & commands and present - commands):
        return "kaggle12"
    return "folders"


def _has_noise(clips: pd.DataFrame, noise: pd.DataFrame, noise_dir: str | os.PathLike | None) -> bool:
    """Whether silence can be real: noise recordings, a noise folder, or the test set's ``_silence_`` clips."""
    return bool(len(noise)) or noise_dir is not None or bool((clips["kind"] == "silence").any())


def _clip_seconds(clips: pd.DataFrame, clip_seconds: float | str | None) -> float:
    """The clip length in seconds: the one given, the longest clip's (``"auto"``, up to 10 ms), or 1 s."""
    if clip_seconds is None:
        return config.CLIP_SECONDS
    if clip_seconds == "auto":
        durations = clips.loc[clips["kind"] == "clip", "duration"] if "duration" in clips else pd.Series([])
        if durations.empty:
            return config.CLIP_SECONDS
        return float(np.ceil(float(durations.max()) * 100 - 1e-6) / 100)
    seconds = float(clip_seconds)
    if not 0.1 <= seconds <= 60:
        raise ValueError(f"--clip-seconds {clip_seconds} is out of range: give 0.1 to 60 seconds, or auto")
    return seconds


def read_folds(path: str | os.PathLike, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read a metadata CSV with folds: UrbanSound8K's or one with path / label / fold / speaker columns.

    Parameters
    ----------
    path : path
        The CSV file. Column names are matched case-insensitively
        (:data:`FOLD_COLUMNS`): the file (``slice_file_name``, ``path``,
        ``relpath``, ``file``, ...), its class (``class``, ``label``, ...), its
        ``fold``, and optionally its speaker (``speaker``, ``fsID``, ...).
    root : path, optional
        The dataset folder the paths are relative to. A bare file name (as in
        UrbanSound8K) is looked for in ``fold<N>/`` when that folder exists.

    Returns
    -------
    DataFrame
        Columns ``relpath``, ``label``, ``fold``, ``speaker`` (str; ``""`` when not given).

    Raises
    ------
    ValueError, FileNotFoundError
        The file is missing, or lacks a file, label or fold column (the message names the columns it has).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"folds CSV {path} not found: pass a CSV with path, label and fold columns")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV file ({err}); save it as comma-separated UTF-8 text") from err
    lower = {c.strip().lower(): c for c in frame.columns}
    found = {key: next((lower[n] for n in names if n in lower), None) for key, names in FOLD_COLUMNS.items()}
    missing = [key for key in ("path", "label", "fold") if found[key] is None]
    if missing:
        raise ValueError(
            f"{path}: no {', '.join(missing)} column (it has {', '.join(map(str, frame.columns))}); a folds CSV "
            "needs path, label and fold columns (UrbanSound8K's slice_file_name, class and fold work too)"
        )
    root_dir = Path(root) if root else path.parent
    names = frame[found["path"]].str.strip().str.replace("\\", "/", regex=False)
    folds = frame[found["fold"]].str.strip()
    relpaths = []
    for name, fold in zip(names, folds, strict=True):
        if Path(name).is_absolute():
            try:
                name = Path(name).resolve().relative_to(root_dir.resolve()).as_posix()
            except ValueError:
                pass
        elif "/" not in name and (root_dir / f"fold{fold}").is_dir():
            name = f"fold{fold}/{name}"  # UrbanSound8K: audio/fold<N>/<slice_file_name>
        relpaths.append(name)
    speaker = frame[found["speaker"]].str.strip() if found["speaker"] else ""
    out = pd.DataFrame({"relpath": relpaths, "label": frame[found["label"]].str.strip(), "fold": folds})
    out["speaker"] = speaker
    bad = out[(out["relpath"] == "") | (out["label"] == "") | (out["fold"] == "")]
    if len(bad):
        raise ValueError(f"{path}: {len(bad)} rows without a file, label or fold (first: line {bad.index[0] + 2})")
    duplicated = out["relpath"][out["relpath"].duplicated()]
    if len(duplicated):
        raise ValueError(f"{path}: {duplicated.iloc[0]} is listed more than once: give each file one fold")
    return out


def _apply_folds(
    clips: pd.DataFrame, table: pd.DataFrame, csv: str | os.PathLike
) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """The scanned clips that the folds CSV lists, with its labels and speakers; each clip's fold; warnings."""
    listed = table.set_index("relpath")
    clips = clips[clips["kind"] == "clip"]
    known = clips["relpath"].isin(listed.index)
    warnings = []
    if (~known).any():
        warnings.append(
            f"{int((~known).sum()):,} clips of the folder are not in {Path(csv).name} and are left out "
            f"(e.g. {', '.join(clips.loc[~known, 'relpath'].head(3))})"
        )
    absent = listed.index.difference(clips["relpath"])
    if len(absent) == len(listed):
        raise ValueError(
            f"no file listed in {csv} is a usable clip of the dataset folder (e.g. {listed.index[0]}): pass the "
            "folder the CSV's paths are relative to (for UrbanSound8K, its audio/ folder)"
        )
    if len(absent):
        warnings.append(
            f"{len(absent):,} files listed in {Path(csv).name} are missing or unusable (e.g. {', '.join(absent[:3])})"
        )
    clips = clips[known].copy()
    rows = listed.loc[clips["relpath"]]
    clips["word"] = rows["label"].to_numpy()
    given = rows["speaker"].to_numpy(dtype=str)
    clips["speaker"] = np.where(given != "", given, clips["speaker"].astype(str))
    return clips, dict(zip(clips["relpath"], rows["fold"].astype(str), strict=True)), warnings


def _fold_order(values: Sequence[str]) -> list[str]:
    """Fold names in order: numerically when every name is a number, else as text."""
    names = sorted(set(values))
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def _assign_folds(
    clips: pd.DataFrame,
    fold_of: Mapping[str, str],
    *,
    test_fold: str | None,
    cv_fold: str | None,
    csv: str | os.PathLike,
) -> tuple[pd.Series, str]:
    """The split of every clip from its fold: ``test_fold`` test, ``cv_fold`` cv, the others train."""
    fold_of = clips["relpath"].map(fold_of).astype(str)
    order = _fold_order(fold_of.tolist())
    if len(order) < MIN_FOLDS:
        raise ValueError(
            f"{csv}: {len(order)} fold(s) {order}; a split needs at least {MIN_FOLDS} (train, cv and test)"
        )
    test = str(test_fold) if test_fold is not None else order[-1]
    cv = str(cv_fold) if cv_fold is not None else order[order.index(test) - 1] if test in order else ""
    for name, value in (("test", test), ("cv", cv)):
        if value not in order:
            raise ValueError(f"--{name}-fold {value}: {csv} has the folds {', '.join(order)}; choose one of them")
    if test == cv:
        raise ValueError(f"--test-fold and --cv-fold are both {test}: choose two different folds")
    assigned = pd.Series("train", index=clips.index, dtype=object)
    assigned[fold_of == test] = "test"
    assigned[fold_of == cv] = "cv"
    return assigned, f"folds of {Path(csv).name}: test fold {test}, cv fold {cv}, train the other {len(order) - 2}"


def _assign_held_out(
    clips: pd.DataFrame, test_speakers: Sequence[str], validation_percent: float
) -> tuple[pd.Series, str]:
    """Held-out speakers: theirs is test; the first speakers in hash order with ``validation_percent`` are cv."""
    held = {str(s).strip() for s in test_speakers if str(s).strip()}
    speakers = clips["speaker"].astype(str)
    unknown = sorted(held - set(speakers))
    if unknown:
        known = sorted(set(speakers) - {""})
        raise ValueError(
            f"test speakers {unknown} have no clips; the speakers are {known[:20]}"
            + (" ..." if len(known) > 20 else "")
            + " (check --speaker-pattern)"
        )
    rest = clips[~speakers.isin(held)]
    counts = rest.groupby(rest["speaker"].astype(str)).size()
    named = [s for s in counts.index if s]
    if len(named) < 2:
        raise ValueError(f"after holding out {sorted(held)}, {len(named)} speaker(s) remain: train and cv need two")
    target = len(rest) * validation_percent / 100
    cv, total = [], 0
    for speaker in sorted(named, key=hashsplit.hash_percentage):
        if cv and (total >= target or len(cv) == len(named) - 1):
            break
        cv.append(speaker)
        total += int(counts[speaker])
    assigned = pd.Series("train", index=clips.index, dtype=object)
    assigned[speakers.isin(cv)] = "cv"
    assigned[speakers.isin(held)] = "test"
    nameless = speakers == ""  # no speaker: hashed by file name between train and cv
    assigned[nameless] = [
        "cv" if hashsplit.hash_percentage(hashsplit.speaker_id(r)) < validation_percent else "train"
        for r in clips.loc[nameless, "relpath"]
    ]
    return assigned, f"held-out speakers {', '.join(sorted(held))} as test; {len(cv)} speaker(s) by hash order as cv"


def _folds_table(manifests: Mapping[str, pd.DataFrame], fold_of: Mapping[str, str]) -> pd.DataFrame:
    """``relpath, fold`` of every clip in the manifests, sorted by relpath (``folds.csv``)."""
    relpaths = sorted(set(pd.concat([m["relpath"] for m in manifests.values()], ignore_index=True)) - {""})
    return pd.DataFrame({"relpath": relpaths, "fold": [fold_of[r] for r in relpaths]})


# --- The steps of make_split ------------------------------------------------------------------


def _usable(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """The readable clips (word clips and ``_silence_`` clips), the noise recordings, and the skipped files."""
    usable = table["status"] != "error"
    skipped_rows = table[~usable & table["kind"].isin(["clip", "silence", "noise", "other"])]
    skipped = [
        {"relpath": r, "reason": why} for r, why in zip(skipped_rows["relpath"], skipped_rows["reason"], strict=True)
    ]
    skipped.sort(key=lambda s: s["relpath"])
    clips = table[usable & table["kind"].isin(["clip", "silence"])].copy()
    noise = table[usable & (table["kind"] == "noise")]
    for column in ("word", "speaker"):
        clips[column] = clips[column].fillna("").astype(str)
    return clips, noise, skipped


def _with_folds(
    clips: pd.DataFrame, folds: str | os.PathLike | None, root: str
) -> tuple[pd.DataFrame, dict[str, str] | None, list[str]]:
    """The clips a folds CSV lists, each clip's fold and the warnings; the clips as they are without one."""
    if folds is None:
        return clips, None, []
    clips, fold_of, fold_warnings = _apply_folds(clips, read_folds(folds, root), folds)
    return clips, fold_of, list(fold_warnings)


def _assign_splits(
    clips: pd.DataFrame,
    table: pd.DataFrame,
    root: str,
    *,
    fold_of: Mapping[str, str] | None,
    folds: str | os.PathLike | None,
    test_fold: str | None,
    cv_fold: str | None,
    test_speakers: Sequence[str] | None,
    rule: str,
    validation_percent: float,
    testing_percent: float,
) -> tuple[pd.Series, str]:
    """The split of every clip and the rule used: by fold, by held-out speakers, or by the lists / hash rule."""
    if fold_of is not None:
        return _assign_folds(clips, fold_of, test_fold=test_fold, cv_fold=cv_fold, csv=folds)
    if test_speakers:
        return _assign_held_out(clips, test_speakers, validation_percent)
    return _assign(
        clips,
        root,
        found=table.attrs.get("lists"),
        rule=rule,
        validation_percent=validation_percent,
        testing_percent=testing_percent,
    )


def _task_of(
    clips: pd.DataFrame,
    root: str | None,
    *,
    task: str,
    words: Sequence[str] | None,
    include_unknown: bool,
    include_silence: bool,
) -> tuple[list[str], list[str] | None]:
    """The task's label list and its custom words (stripped; ``None`` for a named task), checked against the data."""
    dataset_words = sorted(set(clips.loc[clips["kind"] == "clip", "word"]) - {""})
    labels = task_labels(
        task,
        words=words,
        dataset_words=dataset_words,
        include_unknown=include_unknown,
        include_silence=include_silence,
    )
    if words is None:
        return labels, None
    missing = [w for w in words if w.strip() and w.strip() not in dataset_words]
    if missing:
        raise ValueError(f"words {missing} are not in the dataset {root or ''}; its words are {dataset_words}")
    return labels, [w.strip() for w in words if w.strip()]


def _no_speaker_warnings(clips: pd.DataFrame, *, summary: bool = False) -> list[str]:
    """One warning per clip without a speaker id: it was split by the hash of its file name.

    With ``summary`` (a folder-per-class dataset or a folds CSV, where names
    without ``_nohash_`` are the rule, not a slip), one warning for all of
    them that says how to give the speakers.
    """
    if summary:
        nameless = clips[_no_speaker(clips)]
        if nameless.empty:
            return []
        examples = ", ".join(nameless["relpath"].head(3))
        return [
            f"{len(nameless):,} of {len(clips):,} clips have no speaker id (e.g. {examples}): the split cannot be "
            "speaker-disjoint for them, so each was assigned by the hash of its file name; give the speakers with "
            f"--speaker-pattern (a regex with a named group, e.g. {SPEAKER_EXAMPLE!r} for "
            "alice-3.wav) or a CSV with a speaker column (--folds)"
        ]
    warnings = []
    for row in clips[_no_speaker(clips)].itertuples(index=False):
        reason = next((part for part in str(getattr(row, "reason", "")).split(" | ") if "speaker" in part), "")
        warnings.append(
            f"{row.relpath}: {reason or 'its file name yields no speaker id'}; "
            f"assigned to {row.split} by the hash of its file name, not by speaker"
        )
    return warnings


def _small_targets(validation_percent: float, testing_percent: float) -> dict[str, int]:
    """Small mode's clips per label in each split: ``SMALL_PER_LABEL`` in train, cv and test in proportion."""
    train_percent = 100 - validation_percent - testing_percent
    return {
        "train": SMALL_PER_LABEL,
        **{
            name: max(SMALL_MIN_PER_LABEL, round(SMALL_PER_LABEL * pct / train_percent))
            for name, pct in (("cv", validation_percent), ("test", testing_percent))
        },
    }


def _word_manifests(clips: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The clips of each split as manifest rows (whole files: offset and num_samples 0, no source)."""
    clips = clips.assign(
        path=clips["path"].astype(str),
        offset=0,
        num_samples=0,
        source="",
        word=np.where(clips["kind"] == "silence", "", clips["word"]),
    )
    return {name: clips[clips["split"] == name] for name in config.SPLITS}


def _usable_noise(
    noise: pd.DataFrame, root: str | None, noise_dir: str | os.PathLike | None
) -> tuple[pd.DataFrame, list[str]]:
    """The noise recordings silence is cut from (``noise_dir``'s when the dataset has none), and warnings.

    Only 16 kHz mono recordings are used; each other one, and a dataset without any, is a warning.
    """
    warnings = []
    if noise.empty and noise_dir is not None:
        noise = _external_noise(noise_dir)
    bad_rate = noise[(noise["sample_rate"] != config.SAMPLE_RATE) | (noise["channels"] != 1)]
    for row in bad_rate.itertuples(index=False):
        warnings.append(
            f"{row.relpath}: noise recording at {row.sample_rate} Hz, {row.channels} channel(s); silence windows "
            f"are cut only from {config.SAMPLE_RATE} Hz mono recordings, so it is not used"
        )
    noise = noise.drop(bad_rate.index)
    if noise.empty:
        warnings.append(
            f"no {config.BACKGROUND_NOISE_DIR} recordings in {root or 'the dataset'}: every silence example is "
            "digital silence; pass noise_dir (--noise) to cut silence from real noise"
        )
    return noise, warnings


def _add_silence(
    manifests: dict[str, pd.DataFrame],
    noise_regions: Mapping[str, list[dict]],
    labels: Sequence[str],
    silence_per_split: int | Mapping[str, int] | None,
    *,
    seed: int,
    length: int = config.CLIP_SAMPLES,
) -> None:
    """Append silence rows (windows of each split's noise regions, some digital silence) to each manifest."""
    word_labels = [lbl for lbl in labels if lbl not in (config.SILENCE_LABEL, config.UNKNOWN_LABEL)]
    for i, name in enumerate(config.SPLITS):
        if isinstance(silence_per_split, Mapping):
            count = int(silence_per_split.get(name, 0))
        elif silence_per_split is not None:
            count = int(silence_per_split)
        else:
            per_word = manifests[name]["label"].value_counts().reindex(word_labels, fill_value=0)
            count = int(np.rint(per_word.mean())) if len(per_word) else 0
        rows = pd.DataFrame(_silence_rows(noise_regions[name], count, seed=seed, split_index=i, length=length))
        if len(rows):
            rows = rows.assign(label=config.SILENCE_LABEL, word="", speaker="", split=name)
            manifests[name] = pd.concat([manifests[name], rows], ignore_index=True)


def _manifests_with_silence(
    clips: pd.DataFrame,
    noise: pd.DataFrame,
    labels: list[str],
    *,
    root: str,
    noise_dir: str | os.PathLike | None,
    silence_per_split: int | Mapping[str, int] | None,
    seed: int,
    length: int,
    validation_percent: float,
    testing_percent: float,
) -> tuple[dict[str, pd.DataFrame], dict[str, list[dict]], list[str]]:
    """The finished manifest of each split, silence cut from the noise when the task has it; noise regions; warnings."""
    manifests = _word_manifests(clips)
    noise_regions: dict[str, list[dict]] = {name: [] for name in config.SPLITS}
    warnings: list[str] = []
    if config.SILENCE_LABEL in labels and not (clips["kind"] == "silence").any():
        # Silence from the noise recordings (the test-set layout brings its own _silence_ clips instead).
        noise, warnings = _usable_noise(noise, root, noise_dir)
        noise_regions = _noise_regions(noise, validation_percent, testing_percent)
        _add_silence(manifests, noise_regions, labels, silence_per_split, seed=seed, length=length)
    return _finished(manifests, labels), noise_regions, warnings


def _sample_sets(
    manifests: Mapping[str, pd.DataFrame], sample_per_class: Sequence[int], *, seed: int
) -> dict[str, pd.DataFrame]:
    """The sample set of each split: ``sample_per_class`` examples per class of its manifest."""
    return {
        name: _sample_set(manifests[name], n, seed=seed, split_index=i)
        for i, (name, n) in enumerate(zip(config.SPLITS, sample_per_class, strict=True))
    }


def _finished(manifests: Mapping[str, pd.DataFrame], labels: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Each manifest with its ``label_id``, the manifest columns and dtypes, in a stable order."""
    label_id = {label: i for i, label in enumerate(labels)}
    out = {}
    for name in config.SPLITS:
        m = manifests[name].assign(label_id=lambda f: f["label"].map(label_id))
        m = m[MANIFEST_COLUMNS].astype(DTYPES)
        out[name] = m.sort_values(["label_id", "relpath", "offset", "source"], kind="stable").reset_index(drop=True)
    return out


def _counts(frames: Mapping[str, pd.DataFrame], labels: Sequence[str]) -> dict:
    """``{split: {label: n}}`` for every split and label (0 where absent)."""
    table = counts_table(_as_frame(dict(frames))) if any(len(f) for f in frames.values()) else None
    return {
        name: {
            lbl: int(table.at[lbl, name]) if table is not None and lbl in table.index and name in table else 0
            for lbl in labels
        }
        for name in config.SPLITS
    }


def _split_info(
    manifests: Mapping[str, pd.DataFrame],
    samples: Mapping[str, pd.DataFrame],
    labels: list[str],
    words: list[str] | None,
    *,
    task: str,
    seed: int,
    rule: str,
    validation_percent: float,
    testing_percent: float,
    small: bool,
    root: str,
    noise_regions: Mapping[str, list[dict]],
    skipped: list[dict],
    warnings: list[str],
    checks: list[dict],
    materialize: bool,
) -> dict:
    """The content of ``split.json``: the task, the parameters, the counts, the noise regions and the checks."""
    return {
        "task": "custom" if words is not None else task,
        "labels": labels,
        "words": list(words) if words is not None else None,
        "include_unknown": config.UNKNOWN_LABEL in labels,
        "include_silence": config.SILENCE_LABEL in labels,
        "seed": int(seed),
        "rule": rule,
        "validation_percent": float(validation_percent),
        "testing_percent": float(testing_percent),
        "small": bool(small),
        "counts": _counts(manifests, labels),
        "sample_counts": _counts(samples, labels),
        "dataset": root,
        "noise_regions": noise_regions,
        "skipped": skipped,
        "warnings": warnings,
        "checks": checks,
        "materialized": bool(materialize),
        "version": SPLIT_FORMAT_VERSION,
        "created_by": f"speechlib {__version__}",
    }


def _add_own_data_keys(
    info: dict,
    manifests: Mapping[str, pd.DataFrame],
    *,
    seconds: float,
    speaker_pattern: str | None,
    test_speakers: Sequence[str] | None,
    folds: str | os.PathLike | None,
    fold_of: Mapping[str, str] | None,
) -> dict[str, pd.DataFrame]:
    """Add the keys of a dataset of one's own to ``info``; the extra files to write beside the manifests.

    Only keys that differ from Speech Commands are added (its ``split.json`` stays as it was).
    """
    if round(seconds * config.SAMPLE_RATE) != config.CLIP_SAMPLES:
        info["clip_seconds"] = seconds
    if speaker_pattern:
        info["speaker_pattern"] = speaker_pattern
    if test_speakers:
        info["test_speakers"] = sorted(str(s) for s in test_speakers)
    extra = {}
    if fold_of is not None:
        info["folds_csv"] = str(Path(folds).resolve())
        extra[FOLDS_FILE] = _folds_table(manifests, fold_of)
    return extra


def _report(info: dict, manifests: Mapping[str, pd.DataFrame]) -> None:
    for item in info["skipped"]:
        print(f"skipped {item['relpath']}: {item['reason']}")
    for warning in info["warnings"]:
        print(f"warning: {warning}")
    print(f"task {info['task']} ({len(info['labels'])} labels), rule {info['rule']}, seed {info['seed']}")
    table = counts_table(dict(manifests))
    print(table.assign(total=table.sum(axis=1)).to_string())
    for check in info["checks"]:
        detail = {k: v for k, v in check.items() if k not in ("check", "ok")}
        print(f"check {check['check']}: {'ok' if check['ok'] else 'FAILED'} {detail}")


# --- Writing -------------------------------------------------------------------------------


def _write(
    out_dir: Path,
    manifests: Mapping[str, pd.DataFrame],
    samples: Mapping[str, pd.DataFrame],
    info: dict,
    *,
    materialize: bool,
    extra: Mapping[str, pd.DataFrame] | None = None,
) -> None:
    out_dir = out_dir.expanduser().resolve()
    if out_dir.exists() and (
        not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / "split.json").is_file())
    ):
        raise FileExistsError(
            f"{out_dir} exists and is not a split folder (no split.json): choose an empty or new folder for the split"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        for name, frame in manifests.items():
            manifest.write(frame, tmp / f"{name}.csv")
        for name, frame in samples.items():
            manifest.write(frame, tmp / f"{manifest.SAMPLE_PREFIX}{name}.csv")
        for file_name, frame in (extra or {}).items():
            manifest.write(frame, tmp / file_name)
        if materialize:
            _materialize(tmp / "materialized", manifests, samples)
        (tmp / "split.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            out_dir.rename(old / out_dir.name)
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _materialized_name(row) -> str:
    """File name of a manifest row inside materialized/<split>/<label>/."""
    if row.source == DIGITAL_SILENCE:
        return ""  # numbered by the caller
    stem = Path(row.relpath).name
    if row.num_samples:
        return f"{Path(stem).stem}_{row.offset:09d}.wav"
    folder = row.relpath.split("/")[0]
    if folder == row.label or not row.word or stem.startswith(f"{row.word}_"):
        return stem
    return f"{row.word}_{stem}"


def _materialize(root: Path, manifests: Mapping[str, pd.DataFrame], samples: Mapping[str, pd.DataFrame]) -> None:
    """The original course's folders: symlinks to raw clips, written wav files for silence windows."""
    written: dict[tuple, Path] = {}
    for part, frames in (("main", manifests), ("sample", samples)):
        for name, frame in frames.items():
            n_digital = 0
            for row in frame.itertuples(index=False):
                folder = root / part / name / row.label
                folder.mkdir(parents=True, exist_ok=True)
                file_name = _materialized_name(row)
                if row.source == DIGITAL_SILENCE:
                    file_name = f"{DIGITAL_SILENCE}_{n_digital:04d}.wav"
                    n_digital += 1
                target = folder / file_name
                copy = 1
                while row.num_samples and (target.exists() or target.is_symlink()):  # a window drawn twice
                    target, copy = folder / f"{Path(file_name).stem}_{copy}.wav", copy + 1
                if target.exists() or target.is_symlink():
                    raise FileExistsError(f"two examples of {part}/{name}/{row.label} would both be named {file_name}")
                key = (name, row.label, row.path, row.offset, file_name)
                if row.num_samples == 0:
                    os.symlink(row.path, target)
                elif key in written:
                    os.symlink(os.path.relpath(written[key], folder), target)
                else:
                    if row.path:
                        waveform, rate = sf.read(
                            row.path, start=row.offset, frames=row.num_samples, dtype="int16", always_2d=False
                        )
                    else:
                        waveform, rate = np.zeros(row.num_samples, dtype=np.int16), config.SAMPLE_RATE
                    sf.write(str(target), waveform, rate, subtype=config.SAMPLE_SUBTYPE)
                    written[key] = target


# --- Reading ---------------------------------------------------------------------------------


def load_info(out_dir: str | os.PathLike) -> dict:
    """Read ``split.json`` of a split folder (task, labels, seed, counts, noise regions, ...)."""
    path = Path(out_dir) / "split.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `speechlib split --out {Path(out_dir)}` (make_split) first")
    return json.loads(path.read_text(encoding="utf-8"))


# --- Speaker-grouped k-fold cross-validation -------------------------------------------------


def fold_groups(frame: pd.DataFrame) -> np.ndarray:
    """The group of each manifest row for k-fold cross-validation: rows of one group share a fold.

    A word clip's group is its speaker; a clip without one (a name without
    ``_nohash_``) is its own group. A silence window's group is its noise
    recording *and* the split it was cut for, so windows of one recording that
    may overlap (cut from the same region) stay together, while the disjoint
    regions of one recording can go to different folds; digital silence rows
    are one group each.

    Returns
    -------
    np.ndarray, shape (len(frame),), object (str)
    """
    groups = []
    for i, row in enumerate(frame.itertuples(index=False)):
        if row.label == config.SILENCE_LABEL or not row.word:
            groups.append(f"noise:{row.path}:{row.split}" if row.path else f"row:{i}")
        else:
            groups.append(f"speaker:{row.speaker}" if row.speaker else f"row:{i}")
    return np.asarray(groups, dtype=object)


def speaker_folds(frame: pd.DataFrame, k: int = 5, *, seed: int = config.SEED) -> np.ndarray:
    """Assign every manifest row to one of ``k`` folds, speakers never crossing folds, labels stratified.

    scikit-learn's ``StratifiedGroupKFold`` over :func:`fold_groups`: each
    fold holds about ``1/k`` of every label, and every clip of a speaker is in
    one fold, so a model tested on fold ``i`` never heard its speakers.

    Parameters
    ----------
    frame : DataFrame
        Manifest rows (e.g. train, cv and test of a split folder concatenated).
    k : int
        Number of folds (at least 2).
    seed : int

    Returns
    -------
    np.ndarray, shape (len(frame),), int
        The fold of each row, 0 .. k - 1.
    """
    if k < 2:
        raise ValueError(f"k-fold cross-validation needs k >= 2 folds, not {k}")
    groups = fold_groups(frame)
    if len(set(groups)) < k:
        raise ValueError(f"{len(set(groups))} speakers/groups cannot fill {k} folds: use fewer folds")
    fold = np.empty(len(frame), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=int(seed))
    for i, (_, test) in enumerate(splitter.split(np.zeros(len(frame)), frame["label"].to_numpy(), groups)):
        fold[test] = i
    return fold


def write_folds(
    split_dir: str | os.PathLike,
    out_root: str | os.PathLike,
    *,
    k: int = 5,
    seed: int = config.SEED,
    cv_percent: float = config.VALIDATION_PERCENT,
) -> list[Path]:
    """Split folders for speaker-grouped k-fold cross-validation over every clip of a split folder.

    The train, cv and test manifests of ``split_dir`` are pooled and cut into
    ``k`` folds by :func:`speaker_folds`. Fold ``i``'s folder has ``test.csv``
    = fold ``i``; of the other rows, a speaker-disjoint ``cv_percent`` (the
    hash rule on the groups) is ``cv.csv`` (for checkpoint selection) and the
    rest ``train.csv``. Each folder gets a ``split.json`` like
    :func:`make_split`'s (same labels and task, the fold recorded, no noise
    regions: noise augmentation then draws on the fold's own training silence).
    Folders already complete (``split.json``) with the same content are left as they are.

    A split made from a folds CSV (``make_split(folds=...)``, with its
    ``folds.csv``) is cut along those predefined folds instead, ``k`` being
    their number: fold ``i``'s test part is predefined fold ``i`` (in order),
    its cv part the fold before it (cyclically), the other folds train, as
    UrbanSound8K's 10-fold protocol asks (each fold tested once). Silence rows,
    which have no fold, go to a fold by the hash of their group.

    Returns
    -------
    list of Path
        ``out_root/fold_0`` ... ``out_root/fold_{k-1}``.
    """
    split_dir, out_root = Path(split_dir), Path(out_root)
    info = load_info(split_dir)
    pooled = pd.concat([load_manifest(split_dir, name) for name in ("train", "cv", "test")], ignore_index=True)
    groups = fold_groups(pooled)
    fold, names, rule = _fold_plan(split_dir, pooled, groups, k=k, seed=seed, cv_percent=cv_percent)
    k = len(names) if names is not None else k
    in_hash_cv = np.array([hashsplit.hash_percentage(g) < cv_percent for g in groups])
    folders = []
    for i in range(k):
        in_cv = fold == (i - 1) % k if names is not None else in_hash_cv
        parts = _fold_parts(pooled, fold == i, in_cv)
        fold_info = _fold_info(info, parts, split_dir, fold=i, folds=k, seed=seed, rule=rule, names=names)
        out = out_root / f"fold_{i}"
        if not _already_written(out, fold_info):
            _write(out, parts, {}, fold_info, materialize=False)
        folders.append(out)
    return folders


def _fold_plan(
    split_dir: Path, pooled: pd.DataFrame, groups: np.ndarray, *, k: int, seed: int, cv_percent: float
) -> tuple[np.ndarray, list[str] | None, str]:
    """The fold of every pooled row, the predefined fold names (None for speaker folds) and the rule's text."""
    predefined = _predefined_folds(split_dir, pooled, groups)
    if predefined is not None:
        fold, names = predefined
        rule = (
            f"the {len(names)} predefined folds of {FOLDS_FILE}: test fold i, cv the fold before it, train the others"
        )
        return fold, names, rule
    rule = f"speaker-grouped {k}-fold over every clip of the source split, cv {cv_percent:g}% of the rest"
    return speaker_folds(pooled, k, seed=seed), None, rule


def _fold_parts(pooled: pd.DataFrame, in_test: np.ndarray, in_cv: np.ndarray) -> dict[str, pd.DataFrame]:
    """The train, cv and test manifests of one fold: ``in_test`` is test, of the rest ``in_cv`` is cv."""
    rest = ~in_test
    parts = {"train": pooled[rest & ~in_cv], "cv": pooled[rest & in_cv], "test": pooled[in_test]}
    return {name: frame.assign(split=name).reset_index(drop=True) for name, frame in parts.items()}


def _fold_info(
    info: dict,
    parts: Mapping[str, pd.DataFrame],
    split_dir: Path,
    *,
    fold: int,
    folds: int,
    seed: int,
    rule: str,
    names: list[str] | None,
) -> dict:
    """The ``split.json`` of one fold's folder: the source split's task and labels, the fold, its counts."""
    return {
        **{key: info[key] for key in ("task", "labels") if key in info},
        "source_split": str(split_dir.resolve()),
        "fold": fold,
        "folds": folds,
        "seed": int(seed),
        "rule": rule,
        **({"fold_name": names[fold]} if names is not None else {}),
        **({"clip_seconds": info["clip_seconds"]} if "clip_seconds" in info else {}),
        "counts": {name: {str(a): int(b) for a, b in frame["label"].value_counts().sort_index().items()}
                   for name, frame in parts.items()},
        "noise_regions": {},
    }  # fmt: skip


def _already_written(out: Path, fold_info: dict) -> bool:
    """Whether ``out`` is a complete split folder (``split.json``) with this content."""
    return (out / "split.json").is_file() and load_info(out) == json.loads(json.dumps(fold_info))


# --- The wrong way ---------------------------------------------------------------------------


def _predefined_folds(split_dir: Path, pooled: pd.DataFrame, groups: np.ndarray) -> tuple[np.ndarray, list[str]] | None:
    """The fold index of every pooled row from the split's ``folds.csv``, and the fold names; None without one."""
    path = split_dir / FOLDS_FILE
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    mapping = dict(zip(table["relpath"], table["fold"], strict=True))
    names = _fold_order(table["fold"].tolist())
    index = {name: i for i, name in enumerate(names)}
    fold = np.array(
        [
            index[mapping[r]] if r in mapping and row_num == 0 else int(hashsplit.hash_percentage(g) * 1e6) % len(names)
            for r, row_num, g in zip(pooled["relpath"], pooled["num_samples"], groups, strict=True)
        ],
        dtype=np.int64,
    )
    return fold, names


def random_split(
    manifests: Mapping[str, pd.DataFrame] | pd.DataFrame,
    *,
    seed: int = config.SEED,
    validation_percent: float = config.VALIDATION_PERCENT,
    testing_percent: float = config.TESTING_PERCENT,
) -> dict[str, pd.DataFrame]:
    """Shuffle every example and slice it into train / cv / test — the WRONG way to split.

    This is what many tutorials do (and what the original course did). It
    ignores speakers, so one person's voice lands in train and in test, and a
    model is rewarded for recognising voices rather than words: the measured
    accuracy is too high. It exists only so that the course can show the
    leak (:func:`check_speakers_disjoint` raises on its result) and measure
    the gap. Never use it to train or report a model; use :func:`make_split`.

    Parameters
    ----------
    manifests : dict of str to DataFrame, or DataFrame
        Examples to reshuffle, e.g. the three manifests of :func:`make_split`.
    seed : int
        Seed of the shuffle.
    validation_percent, testing_percent : float
        Sizes of cv and test, in percent of all examples.

    Returns
    -------
    dict of str to DataFrame
        ``{"train", "cv", "test"}`` with the ``split`` column rewritten.
    """
    frame = _as_frame(manifests).reset_index(drop=True)
    order = np.random.default_rng(seed).permutation(len(frame))
    n_cv = round(len(frame) * validation_percent / 100)
    n_test = round(len(frame) * testing_percent / 100)
    parts = {"cv": order[:n_cv], "test": order[n_cv : n_cv + n_test], "train": order[n_cv + n_test :]}
    return {name: frame.iloc[np.sort(parts[name])].assign(split=name).reset_index(drop=True) for name in config.SPLITS}
