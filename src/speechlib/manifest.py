"""The manifest: the table of examples that every stage after the split reads.

A manifest is a CSV file, one row per example, written by
:func:`speechlib.split.make_split` into a split folder (``train.csv``,
``cv.csv``, ``test.csv`` and the sample set ``sample_train.csv``, ...).
The featurizer, the feature store and the Spark job read it back with
:func:`read`, so every reader sees the same columns with the same dtypes.

Columns (:data:`MANIFEST_COLUMNS`)
----------------------------------
``path``        absolute path of the clip or noise recording ("" for digital silence)
``relpath``     path relative to the dataset root
``label``       class name; ``label_id`` its index in the task's label list
``word``        spoken word ("" for silence)
``speaker``     speaker id ("" when the file name has none)
``split``       train, cv or test
``offset``      first sample of a silence window (0 for a whole clip)
``num_samples`` window length in samples (0 = the whole file)
``source``      "" for clips; the noise recording's relpath, or :data:`DIGITAL_SILENCE`

Public API
----------
- :data:`MANIFEST_COLUMNS`, :data:`DTYPES`, :data:`MANIFEST_NAMES`, :data:`DIGITAL_SILENCE`
- :func:`read`, :func:`write` — one CSV file; :func:`load` — one manifest of a split folder.

Examples
--------
>>> from speechlib import manifest
>>> train = manifest.load("data/work/synthetic/split", "train")  # doctest: +SKIP
>>> list(train.columns) == manifest.MANIFEST_COLUMNS  # doctest: +SKIP
True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from speechlib import config

__all__ = ["DIGITAL_SILENCE", "DTYPES", "MANIFEST_COLUMNS", "MANIFEST_NAMES", "load", "read", "write"]

MANIFEST_COLUMNS = [
    "path",
    "relpath",
    "label",
    "label_id",
    "word",
    "speaker",
    "split",
    "offset",
    "num_samples",
    "source",
]
DTYPES = {
    "path": str,
    "relpath": str,
    "label": str,
    "label_id": np.int64,
    "word": str,
    "speaker": str,
    "split": str,
    "offset": np.int64,
    "num_samples": np.int64,
    "source": str,
}
SAMPLE_PREFIX = "sample_"  # the sample set's manifests: sample_train, sample_cv, sample_test
MANIFEST_NAMES = (*config.SPLITS, *(f"{SAMPLE_PREFIX}{name}" for name in config.SPLITS))
DIGITAL_SILENCE = "digital_silence"  # `source` of a row of true digital silence (all zeros, no file)


def read(source: str | os.PathLike | IO[str], **kwargs: Any) -> Any:
    """Read one manifest CSV file with the manifest's dtypes; empty strings stay empty strings.

    Parameters
    ----------
    source : path or text stream
        A CSV file with the columns :data:`MANIFEST_COLUMNS` (a column that is
        absent is simply not there in the result).
    **kwargs
        More keyword arguments of ``pandas.read_csv`` (``chunksize``, ``skiprows``, ...).

    Returns
    -------
    pandas.DataFrame, or a ``TextFileReader`` of DataFrames when ``chunksize`` is given
    """
    return pd.read_csv(source, dtype=DTYPES, keep_default_na=False, **kwargs)


def write(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write one manifest as CSV: no index, ``\\n`` line ends (the same bytes on every system)."""
    frame.to_csv(path, index=False, lineterminator="\n")


def load(split_dir: str | os.PathLike, name: str) -> pd.DataFrame:
    """Read one manifest of a split folder written by :func:`speechlib.split.make_split`.

    Parameters
    ----------
    split_dir : path
        The split folder.
    name : str
        One of :data:`MANIFEST_NAMES`: train, cv, test, sample_train, sample_cv, sample_test.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`MANIFEST_COLUMNS`; empty strings stay empty strings.

    Raises
    ------
    ValueError
        ``name`` is not a manifest name.
    FileNotFoundError
        The file is missing; the message says which command writes it.
    """
    if name not in MANIFEST_NAMES:
        raise ValueError(f"unknown manifest {name!r}: use one of {list(MANIFEST_NAMES)}")
    path = Path(split_dir) / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `speechlib split --out {Path(split_dir)}` (make_split) first")
    return read(path)
