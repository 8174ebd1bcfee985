"""Featurization and inference on Spark: the same features as the local featurizer, at cluster scale.

The job reads the raw clips with Spark's ``binaryFile`` source, joins them with
the split manifests (``speechlib.split``), decodes and featurizes them in an
Arrow-backed ``mapInPandas`` that calls :mod:`speechlib.audio` and
:mod:`speechlib.features` (the functions the local featurizer uses: one
implementation), and writes Parquet partitioned by split. Distributed
inference runs a saved Keras model over that Parquet with
``pyspark.ml.functions.predict_batch_udf``.

Public API
----------
- :func:`session` — a SparkSession (``local[*]`` unless told otherwise) with Arrow on.
- :func:`featurize` — split folder -> Parquet features; returns a report dict.
- :func:`load_parquet` — Parquet -> ``(X, y, manifest)``, the same arrays as the feature store.
- :func:`to_store` — Parquet -> a :class:`speechlib.store.FeatureStore` (for train_keras.py / notebook 4).
- :func:`predict` — label ids and probabilities of a saved Keras model (or model bundle), on Spark.
- :func:`bundle_normalization` — the normalisation a model bundle expects (applied by :func:`predict`).
- :func:`write_predictions` — :func:`predict` of a featurize output, written as Parquet.
- :func:`format_report` — the summary of a :func:`featurize` report that the command prints.

The command lines (``speechlib spark featurize|predict|train``, ``python -m
speechlib.spark``, ``spark-submit .../spark_job.py``) are parsed in
:mod:`speechlib.cli`, which calls these functions.

Output layout and schema
------------------------
``OUT/split=<train|cv|test>/part-*.parquet`` plus ``OUT/_SUCCESS``,
``OUT/_speechlib.json`` (the report: kind, params, labels, feature shape,
counts, errors) and ``OUT/_manifests/<split>.csv`` (copies of the source
manifests). One row per manifest row — rows out = manifest rows in:

===========  ==============  ====================================================
column       type            meaning
===========  ==============  ====================================================
row          long            index of the row in its split's manifest
path         string          the manifest's path ("" for digital silence)
relpath      string          path relative to the dataset root (the join key)
label        string          class name
label_id     int             class index (``labels[label_id] == label``)
word         string          spoken word ("" for silence)
speaker      string          speaker id
offset       long            first sample of a silence window (0 for clips)
num_samples  long            window length in samples (0 = whole file)
source       string          "" for clips; the noise relpath or "digital_silence"
features     array<float>    the feature matrix flattened in C order
shape        array<int>      its shape, e.g. [101, 40]
status       string          "ok" or "error"
error        string          "" when ok; else what went wrong, naming the file
split        string          partition column: train, cv or test
===========  ==============  ====================================================

How rows are made
-----------------
- **Word clips** (``source == ""``) come from the ``binaryFile`` read of the
  dataset root (recursive, ``*.wav``). The join key is ``relpath``: the
  file's path relative to the root, with ``file:`` / ``hdfs://host`` schemes
  removed, so manifests written on a laptop join with data on HDFS or S3.
  The manifest (a few MB) is broadcast; the clips are never shuffled by key.
- **Silence windows** (``num_samples > 0``: one second of a background-noise
  recording) are not single files: the UDF reads the window from the noise
  recording by path with :func:`speechlib.audio.load_row` (there are six
  recordings, about 10 MB). On a cluster the recordings must be readable at
  that path on every executor, or ship them with ``--files`` and pass
  ``--noise-dir .`` (the executors' working folder).
- **Digital silence** (``path == ""``) is zeros, from the same function.
- A file that is missing, truncated or not audio becomes a row with
  ``status="error"`` and ``error = "<relpath>: <reason>"``, the sentence of
  :func:`speechlib.audio.inspect` (what ``speechlib data check`` says of the
  file); the job never fails for one file and never drops one. A file the
  ``binaryFile`` read does not return (an empty file, a broken link, a
  folder named ``x.wav``, an unreadable file) is judged by its path when the
  dataset root is local. The report counts ok and error rows per split.

Partitions, on purpose
----------------------
The original course read the clips with ``sc.binaryFiles``, which packs
small files into as few splits as it can — for Speech Commands, everything
in one partition, so one core did all the work. Here the rows are
repartitioned (round-robin) into ``partitions`` tasks, by default 3 x the
cores Spark has (``defaultParallelism``): enough tasks that a slow one does
not leave cores idle at the end, few enough that per-task start-up (a Python
worker, the mel filterbank) stays small. The one shuffle moves about 32 KB
of raw audio per clip.

Idempotent writes
-----------------
Spark writes into ``OUT.tmp-<uuid>``; only when the job has succeeded is the
old ``OUT`` removed and the temporary folder renamed to ``OUT`` (through the
Hadoop FileSystem API, so it works on local disks, HDFS and S3A). A re-run
replaces the output instead of adding rows; readers refuse a folder without
``_SUCCESS``. ``OUT`` must be new, empty or an earlier output
(:func:`check_output_target`): a folder of other files is refused before the
job starts, and is never deleted.

Running it
----------
Locally (all cores)::

    speechlib spark featurize --split-dir data/work/synthetic/split --out data/work/synthetic/parquet
    speechlib spark-featurize --split-dir DIR --out DIR   # the same command, its older name
    python -m speechlib.spark featurize --split-dir DIR --out DIR --master 'local[4]'

On a cluster, ship the package to the executors and point at shared storage.
The driver reads the manifests (a local folder in client mode, or any Hadoop
URI); the clips are read by the executors from ``--data-root``::

    # 1. the package for the executors: a zip of src/speechlib (or a wheel in a packed venv)
    (cd src && zip -qr ../dist/speechlib.zip speechlib)
    # 2. the data on shared storage
    hdfs dfs -put speech_commands_v0.01 /data/
    # 3. the job: 8 executors x 4 cores, 4 GB each (about 1 GB per concurrent task is plenty)
    spark-submit --master yarn --deploy-mode client \\
        --num-executors 8 --executor-cores 4 --executor-memory 4g \\
        --conf spark.executorEnv.SPEECHLIB_SMALL=0 \\
        --py-files dist/speechlib.zip \\
        --files /data/speech_commands_v0.01/_background_noise_/*.wav \\
        src/speechlib/spark_job.py featurize \\
        --split-dir data/work/speech_commands_v0.01/split \\
        --data-root hdfs:///data/speech_commands_v0.01 --noise-dir . \\
        --out hdfs:///data/features/logmel --partitions 96

The executors need the same Python packages as the driver (numpy, scipy,
soundfile, librosa, pandas, pyarrow): install them on every node, or pack a
virtual environment with ``venv-pack -o env.tar.gz`` and add
``--archives env.tar.gz#env --conf spark.pyspark.python=./env/bin/python``.
For S3 use ``s3a://bucket/prefix`` URIs (hadoop-aws on the classpath). A
standalone cluster is ``--master spark://host:7077``.

Distributed inference with a saved model::

    speechlib spark predict --features-dir OUT --model model.keras --out preds.parquet

A model bundle of ``train_keras.py`` (``model.keras`` with ``model.json``
beside it) expects normalised features: :func:`predict` reads the bundle's
per-band mean and std and applies them on the executors before the model.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import scipy.special

from speechlib import __version__, audio, config, features, inference, models
from speechlib import split as split_mod
from speechlib._stderr import redirected
from speechlib.manifest import DIGITAL_SILENCE, MANIFEST_COLUMNS
from speechlib.manifest import load as load_manifest
from speechlib.manifest import read as read_manifest
from speechlib.store import FeatureStore

__all__ = [
    "FEATURE_SCHEMA_DDL",
    "bundle_normalization",
    "check_output_target",
    "featurize",
    "format_report",
    "load_parquet",
    "predict",
    "session",
    "to_store",
    "write_predictions",
]

ARROW_BATCH_ROWS = 256  # rows per Arrow batch into the UDF: 256 x 16 KB of log-mel = 4 MB, bounded memory
PARTITIONS_PER_CORE = 3  # default tasks per core Spark has (see "Partitions, on purpose")
REPORT_FILE = "_speechlib.json"  # the report, inside the output (a leading "_": Parquet readers skip it)
MANIFEST_DIR = "_manifests"  # copies of the source manifests, for to_store()
MAX_REPORTED_ERRORS = 50  # error rows listed in the report (all are counted)

FEATURE_SCHEMA_DDL = (
    "row long, path string, relpath string, label string, label_id int, word string, speaker string, "
    "split string, offset long, num_samples long, source string, "
    "features array<float>, shape array<int>, status string, error string"
)


# --- The session -----------------------------------------------------------------------------


def session(master: str | None = None, app_name: str = "speechlib", **conf: Any):
    """A SparkSession with Arrow-backed pandas UDFs.

    Parameters
    ----------
    master : str, optional
        ``"local[*]"``, ``"local[2]"``, ``"spark://host:7077"``, ``"yarn"``, ...
        ``None`` keeps the master that ``spark-submit`` (or a running session)
        set, else uses ``local[*]``.
    app_name : str
        Name shown in the Spark UI.
    **conf
        More Spark settings; underscores in keys stand for dots only when the
        key has no dot (``spark_ui_enabled=False`` or ``**{"spark.ui.enabled": "false"}``).

    Returns
    -------
    pyspark.sql.SparkSession
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    elif not SparkConf().contains("spark.master"):  # not under spark-submit: use this machine's cores
        builder = builder.master("local[*]")
    settings = {
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_BATCH_ROWS),
        "spark.sql.session.timeZone": "UTC",
    }
    for key, value in conf.items():
        name = key if "." in key else key.replace("_", ".")
        settings[name] = str(value).lower() if isinstance(value, bool) else str(value)
    for key, value in settings.items():
        builder = builder.config(key, value)
    with _jvm_output_to(log_path()):
        return builder.getOrCreate()


SPARK_LOG = "spark.log"  # in the project home: what the JVM and the executors' Python workers print


def log_path() -> Path:
    """Where the local JVM's own output goes: ``<project home>/spark.log`` (``SPEECHLIB_SPARK_LOG`` overrides)."""
    return Path(os.environ.get("SPEECHLIB_SPARK_LOG") or config.project_home() / SPARK_LOG)


@contextlib.contextmanager
def _jvm_output_to(path: Path):
    """Start the JVM with its standard error on ``path`` instead of the caller's (a notebook cell, a terminal).

    pyspark launches the JVM as a child process that inherits file
    descriptor 2, and the executors' Python workers inherit it from the JVM:
    Spark's start-up banner, its log4j warnings and TensorFlow's start-up lines
    in the workers would otherwise land in the user's output. The descriptor is
    pointed at the log only while the session starts; the child keeps it, this
    process gets its own back. Errors still reach the user: a failed job raises
    in Python with the worker's traceback. Under ``spark-submit`` (or with a
    running session) no JVM is launched and nothing changes.
    """
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None or os.environ.get("PYSPARK_GATEWAY_PORT"):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with redirected(path):
        yield


# --- Paths -------------------------------------------------------------------------------------


def _has_scheme(path: str) -> bool:
    """True for a URI (``file:/a``, ``hdfs://nn/a``, ``s3a://b/a``); False for a local path, a Windows drive too."""
    return len(urllib.parse.urlsplit(str(path)).scheme) > 1


def _uri_path(path: str) -> str:
    """The path part of a local path or URI: ``file:/a/b``, ``file:///a/b``, ``hdfs://nn:8020/a/b`` -> ``/a/b``."""
    text = str(path)
    text = "/" + urllib.parse.urlsplit(text).path.lstrip("/") if _has_scheme(text) else os.path.abspath(text)
    return text.replace("\\", "/").rstrip("/") or "/"


def _to_uri(path: str | os.PathLike) -> str:
    """A URI Spark understands: local paths become absolute ``file:`` URIs, URIs stay."""
    text = str(path)
    return text if _has_scheme(text) else Path(text).expanduser().resolve().as_uri()


def _hadoop_fs(spark, uri: str):
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(uri)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def _qualified(spark, uri: str) -> str:
    """``uri`` as Hadoop names it and the files under it: ``file:///a/`` -> ``file:/a``, ``hdfs:///a`` -> ``hdfs://nn:8020/a``."""
    fs, hpath = _hadoop_fs(spark, uri)
    return str(fs.makeQualified(hpath).toString()).rstrip("/")


def _write_text(spark, uri: str, text: str) -> None:
    """Write a small text file through the Hadoop FileSystem API (local disk, HDFS, S3A)."""
    fs, hpath = _hadoop_fs(spark, uri)
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


# Names inside a Spark Parquet output: _SUCCESS, part files, their .crc checksums, partition folders
# (split=train), and what featurize adds (_speechlib.json, _manifests/).
_OUTPUT_ENTRY = re.compile(r"^(_SUCCESS|_speechlib\.json|_manifests|part-[^/]*|\.[^/]*\.crc|[A-Za-z_]\w*=[^/]*)$")


def check_output_target(spark, uri: str) -> None:
    """Refuse an output path that holds anything but an earlier Spark output of speechlib.

    Accepted: a path that does not exist, an empty folder, and a folder with
    Spark's ``_SUCCESS`` marker whose entries are all a Parquet output's
    (``part-*``, checksums, ``split=*`` folders, ``_speechlib.json``,
    ``_manifests``). Works on local disks, HDFS and S3A (Hadoop FileSystem API).

    Raises
    ------
    FileExistsError
        The message names the path and says what to do; nothing was changed.
    """
    fs, path = _hadoop_fs(spark, uri)
    if not fs.exists(path):
        return
    if not fs.getFileStatus(path).isDirectory():
        raise FileExistsError(f"{uri} is a file: choose a new or empty folder for --out; nothing was written")
    names = [status.getPath().getName() for status in fs.listStatus(path)]
    if not names or ("_SUCCESS" in names and all(_OUTPUT_ENTRY.match(name) for name in names)):
        return
    others = [name for name in names if not _OUTPUT_ENTRY.match(name)] or ["no _SUCCESS marker"]
    raise FileExistsError(
        f"{uri} exists and is not an earlier Spark output of speechlib ({', '.join(sorted(others)[:3])}): "
        "nothing was written or deleted; choose a new or empty folder for --out"
    )


# --- Manifests ---------------------------------------------------------------------------------


def _read_manifests(split_dir: str, splits: list[str] | None, spark) -> tuple[pd.DataFrame, dict, dict[str, str]]:
    """The split manifests as one table (with ``row`` = index in its manifest), split.json, and the CSV texts."""

    if _has_scheme(split_dir) and not split_dir.startswith("file:"):
        # Manifests on HDFS / S3: read the small files through Spark.
        texts = {}
        for name in [*(splits or config.SPLITS), "split"]:
            file_name = "split.json" if name == "split" else f"{name}.csv"
            rows = spark.sparkContext.wholeTextFiles(f"{split_dir.rstrip('/')}/{file_name}").collect()
            if rows:
                texts[name] = rows[0][1]
        if "split" not in texts:
            raise FileNotFoundError(f"{split_dir}/split.json not found: run `speechlib split` first")
        info = json.loads(texts.pop("split"))
        frames = {name: read_manifest(io.StringIO(text)) for name, text in texts.items()}
    else:
        local = _uri_path(split_dir)
        info = split_mod.load_info(local)
        wanted = splits or [s for s in config.SPLITS if (Path(local) / f"{s}.csv").is_file()]
        frames = {name: load_manifest(local, name) for name in wanted}
        texts = {name: (Path(local) / f"{name}.csv").read_text(encoding="utf-8") for name in wanted}
    if not frames:
        raise FileNotFoundError(f"no manifests ({', '.join(config.SPLITS)}.csv) in {split_dir}: run `speechlib split`")
    parts = []
    for name, frame in frames.items():
        frame = frame.reset_index(drop=True)
        frame.insert(0, "row", np.arange(len(frame), dtype=np.int64))
        frame["split"] = name  # the manifest's own name wins (sample_train etc. keep their rows apart)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True), info, texts


def _is_file_row(frame: pd.DataFrame) -> pd.Series:
    """Rows whose audio is one whole file of the dataset (read by the binaryFile source)."""
    return (frame["path"] != "") & (frame["source"] != DIGITAL_SILENCE) & (frame["num_samples"] == 0)


# --- The UDF -------------------------------------------------------------------------------------


def _waveform(row: Any, noise_dir: str | None, local_root: str | None = None) -> np.ndarray:
    """The 1-s waveform of one joined row: decoded bytes for a file, audio.load_row for silence.

    A file the ``binaryFile`` read did not return (Spark lists no empty file, no
    broken link, no folder named ``x.wav``, and skips a file it cannot read) is
    looked at where it should be when the dataset root is a local folder, so
    that its verdict is :func:`speechlib.audio.load`'s, as in every other command.
    """
    if row["_file"]:
        if row["content"] is not None:
            waveform = audio.load(row["content"], name=row["relpath"])
        elif local_root is not None:
            waveform = audio.load(os.path.join(local_root, row["relpath"]), name=row["relpath"])
        else:
            raise audio.AudioError(
                row["relpath"],
                "not found under the dataset root (listed in the manifest, missing from the binaryFile read); "
                "check --data-root, or run `speechlib split` again",
            )
    else:
        fields = {k: row[k] for k in ("path", "source", "offset", "num_samples")}
        if noise_dir and fields["path"] and fields["source"] != DIGITAL_SILENCE:
            fields["path"] = os.path.join(noise_dir, os.path.basename(fields["source"] or fields["path"]))
        waveform = audio.load_row(fields)
    return audio.fix_length(waveform)


def _featurize_batches(
    batches: Iterator[pd.DataFrame],
    *,
    kind: str,
    params: dict,
    shape: tuple[int, ...],
    noise_dir: str | None,
    local_root: str | None = None,
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: decode + featurize each Arrow batch; a failing row becomes an error row.

    The ``error`` of a bad file is ``"<relpath>: <reason>"`` with the sentence of
    :func:`speechlib.audio.inspect` (what ``speechlib data check`` says of it).
    """
    for pdf in batches:
        n = len(pdf)
        waveforms, good, errors = [], [], [""] * n
        for i, row in enumerate(pdf.to_dict("records")):
            try:
                waveforms.append(_waveform(row, noise_dir, local_root))
                good.append(i)
            except audio.AudioError as exc:  # a bad file: its verdict, naming it
                errors[i] = str(exc)
            except Exception as exc:  # one bad row must not fail the job: it becomes an error row
                errors[i] = f"{row.get('relpath') or row.get('source') or row.get('path')}: {type(exc).__name__}: {exc}"
        feats: list[np.ndarray | None] = [None] * n
        if good:
            try:
                batch = features.compute_batch(np.stack(waveforms), kind=kind, **params)
                for j, i in enumerate(good):
                    feats[i] = batch[j].ravel()
            except Exception:  # a batch failure (should not happen): retry one clip at a time to name the culprit
                for j, i in enumerate(good):
                    try:
                        feats[i] = features.compute(waveforms[j], kind=kind, **params).ravel()
                    except Exception as exc:
                        errors[i] = f"{type(exc).__name__}: {exc}"
        out = pdf.drop(columns=["content", "_file"])
        out["label_id"] = out["label_id"].astype(np.int32)
        out["features"] = feats
        out["shape"] = [list(shape) if f is not None else None for f in feats]
        out["status"] = ["ok" if f is not None else "error" for f in feats]
        out["error"] = errors
        yield out


# --- featurize -------------------------------------------------------------------------------------


def featurize(
    split_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    kind: str = "logmel",
    params: dict | None = None,
    master: str | None = None,
    partitions: int | None = None,
    spark=None,
    data_root: str | os.PathLike | None = None,
    splits: list[str] | None = None,
    noise_dir: str | None = None,
) -> dict:
    """Featurize every row of the split manifests on Spark and write Parquet partitioned by split.

    Parameters
    ----------
    split_dir : path or URI
        Folder written by ``speechlib split`` (``train.csv``, ``cv.csv``,
        ``test.csv``, ``split.json``).
    out : path or URI
        Output folder (see the module docstring for its schema): new, empty,
        or an earlier output, which is replaced on success; never left
        half-written. Anything else raises ``FileExistsError`` before the job.
    kind : str
        Feature kind of :mod:`speechlib.features` (default ``"logmel"``).
    params : dict, optional
        Feature parameters (default :func:`speechlib.features.default_params`).
    master : str, optional
        Spark master when this function creates the session (default
        ``local[*]``, or what ``spark-submit`` set).
    partitions : int, optional
        Tasks for the featurization stage (default 3 x ``defaultParallelism``).
    spark : SparkSession, optional
        Use this session instead of creating one.
    data_root : path or URI, optional
        Dataset root where the clips are (default: ``dataset`` of
        ``split.json``). Give ``hdfs:///...`` or ``s3a://...`` on a cluster.
    splits : list of str, optional
        Manifests to featurize (default: those of train, cv, test present).
    noise_dir : str, optional
        Folder holding the background-noise recordings on the executors
        (e.g. ``"."`` with ``spark-submit --files``); default: the manifest paths.

    Returns
    -------
    dict
        The report (also saved as ``OUT/_speechlib.json``): ``rows``, ``ok``,
        ``error``, ``by_split`` counts, the first error rows, ``kind``,
        ``params``, ``feature_shape``, ``labels``, ``partitions``, ``seconds``,
        ``rows_per_second``.
    """
    started = time.perf_counter()
    spark = spark or session(master)
    params = features.resolve_params(kind, **(params or {}))
    manifest, info, texts = _read_manifests(str(split_dir), splits, spark)
    root = str(data_root or info.get("dataset") or "")
    if not root:
        raise ValueError(f"{split_dir}/split.json names no dataset folder: pass data_root (--data-root)")
    out_uri = _to_uri(out).rstrip("/")
    check_output_target(spark, out_uri)  # before any work: never replace a folder of someone's files
    job = _job(
        spark, out_uri, split_dir=split_dir, root=root, kind=kind, params=params, info=info, partitions=partitions
    )
    rows = _featurized_rows(spark, manifest, job, noise_dir=noise_dir)
    tmp_uri = f"{out_uri}.tmp-{uuid.uuid4().hex[:12]}"
    with _removed_on_failure(spark, tmp_uri):
        rows.write.mode("error").partitionBy("split").parquet(tmp_uri)
        by_split, failed = _count_written(spark.read.parquet(tmp_uri), len(manifest))
        report = _report(job, by_split, failed, seconds=time.perf_counter() - started)
        _commit(spark, tmp_uri, out_uri, report=report, manifest_texts=texts)
    return report


def _job(spark, out_uri: str, *, split_dir, root: str, kind: str, params: dict, info: dict, partitions) -> dict:
    """What a featurize run is: the head of its report (output, inputs, features, labels, tasks, master)."""
    return {
        "format": "speechlib-spark-features",
        "speechlib_version": __version__,
        "out": out_uri,
        "split_dir": str(split_dir),
        "data_root": root,
        "kind": kind,
        "params": params,
        "feature_shape": [int(d) for d in features.output_shape(kind, **params)],
        "labels": list(info.get("labels", [])),
        "partitions": int(partitions or PARTITIONS_PER_CORE * spark.sparkContext.defaultParallelism),
        "master": spark.sparkContext.master,
    }


def _featurized_rows(spark, manifest: pd.DataFrame, job: dict, *, noise_dir: str | None):
    """The output rows, not yet computed: the clips joined to the manifest, repartitioned, featurized by the UDF."""
    root = job["data_root"]
    local_root = _uri_path(root) if not _has_scheme(root) or root.startswith("file:") else None
    manifest = manifest.assign(_file=_is_file_row(manifest))
    manifest["_key"] = np.where(manifest["_file"], manifest["relpath"], None)
    joined = _join_clips(spark, manifest, root, local_root)
    kind, params, shape = job["kind"], job["params"], tuple(job["feature_shape"])

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return _featurize_batches(
            batches, kind=kind, params=params, shape=shape, noise_dir=noise_dir, local_root=local_root
        )

    columns = ["row", *MANIFEST_COLUMNS, "content", "_file"]
    return joined.select(*columns).repartition(job["partitions"]).mapInPandas(run, schema=FEATURE_SCHEMA_DDL)


def _report(job: dict, by_split: dict[str, dict[str, int]], failed: list[dict], *, seconds: float) -> dict:
    """The report of a finished run: the job, the rows per split (ok, error), the first error rows, the time."""
    total = sum(e["rows"] for e in by_split.values())
    head = {key: value for key, value in job.items() if key not in ("partitions", "master")}
    return {
        **head,
        "rows": total,
        "ok": sum(e["ok"] for e in by_split.values()),
        "error": sum(e["error"] for e in by_split.values()),
        "by_split": by_split,
        "errors": failed,
        "partitions": job["partitions"],
        "master": job["master"],
        "seconds": round(seconds, 3),
        "rows_per_second": round(total / seconds, 1) if seconds else None,
    }


@contextlib.contextmanager
def _removed_on_failure(spark, tmp_uri: str):
    """Delete the temporary output ``tmp_uri`` when the block fails (or is interrupted), then re-raise."""
    fs, tmp_path = _hadoop_fs(spark, tmp_uri)
    try:
        yield
    except BaseException:
        if fs.exists(tmp_path):
            fs.delete(tmp_path, True)
        raise


def _join_clips(spark, manifest: pd.DataFrame, root: str, local_root: str | None):
    """The manifest rows (a Spark DataFrame) with the bytes of their clips (``content``) from a binaryFile read.

    Every ``*.wav`` under the root is read, keyed by its path relative to the
    root. Hadoop's file listing skips names that start with "_" or "." (as it
    does _SUCCESS files), so the official test-set layout's ``_unknown_`` and
    ``_silence_`` folders are named as roots of their own. A right join keeps
    every manifest row (rows out = rows in); the small manifest is broadcast.
    """
    from pyspark.sql import functions as F  # noqa: N812 (the usual Spark alias)

    hidden = sorted(
        {key.split("/", 1)[0] for key in manifest.loc[manifest["_file"], "relpath"] if "/" in key}
        - {config.BACKGROUND_NOISE_DIR}
    )
    hidden = [folder for folder in hidden if folder.startswith(("_", "."))]
    roots = [_to_uri(root)] + [_to_uri(root.rstrip("/") + "/" + folder) for folder in hidden]
    reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true").option("pathGlobFilter", "*.wav")
    if local_root is not None:  # a file Spark cannot read is left out, then judged by path in the UDF
        reader = reader.option("ignoreCorruptFiles", "true")
    prefix = _qualified(spark, roots[0]) + "/"  # the root as the binaryFile source names the files under it
    files = (
        reader.load(roots)
        .where(F.col("path").startswith(prefix))
        .select(F.expr(f"substring(path, {len(prefix) + 1})").alias("_key"), "content")
    )
    rows = spark.createDataFrame(manifest)
    return files.join(F.broadcast(rows), on="_key", how="right").drop("_key")


def _count_written(written, expected_rows: int) -> tuple[dict[str, dict[str, int]], list[dict]]:
    """Rows, ok rows and error rows per split of the written Parquet, and the first error rows.

    Raises ``RuntimeError`` when the Parquet does not hold ``expected_rows`` rows (one per manifest row).
    """
    from pyspark.sql import functions as F  # noqa: N812 (the usual Spark alias)

    counts = written.groupBy("split", "status").count().collect()
    failed = (
        written.where(F.col("status") != "ok")
        .select("split", "relpath", "source", "offset", "error")
        .limit(MAX_REPORTED_ERRORS)
        .collect()
    )
    by_split: dict[str, dict[str, int]] = {}
    for item in counts:
        entry = by_split.setdefault(item["split"], {"rows": 0, "ok": 0, "error": 0})
        entry["rows"] += item["count"]
        entry[item["status"]] = entry.get(item["status"], 0) + item["count"]
    total = sum(e["rows"] for e in by_split.values())
    if total != expected_rows:
        raise RuntimeError(f"wrote {total} rows for {expected_rows} manifest rows: please report this as a bug")
    return by_split, [item.asDict() for item in failed]


def _commit(spark, tmp_uri: str, out_uri: str, *, report: dict, manifest_texts: dict[str, str]) -> None:
    """Add the report and the manifests' copies to the temporary output, then move it to ``out_uri``.

    The old output is dropped first (only an earlier output, or an empty folder).
    """
    for name, text in manifest_texts.items():
        _write_text(spark, f"{tmp_uri}/{MANIFEST_DIR}/{name}.csv", text)
    _write_text(spark, f"{tmp_uri}/{REPORT_FILE}", json.dumps(report, indent=2, default=str) + "\n")
    check_output_target(spark, out_uri)
    fs, tmp_path = _hadoop_fs(spark, tmp_uri)
    out_fs, out_path = _hadoop_fs(spark, out_uri)
    if out_fs.exists(out_path) and not out_fs.delete(out_path, True):
        raise OSError(f"cannot remove the previous output {out_uri}: check its permissions")
    if not fs.rename(tmp_path, out_path):
        raise OSError(f"cannot rename {tmp_uri} to {out_uri}: check the folder's permissions")


# --- Reading the output ------------------------------------------------------------------------------


def _local_out(out: str | os.PathLike) -> Path:
    path = Path(_uri_path(str(out))) if _has_scheme(str(out)) else Path(out).expanduser().resolve()
    if str(out).startswith(("hdfs:", "s3a:", "s3:", "gs:")):
        raise ValueError(f"{out}: load_parquet/to_store read local folders; copy the output here first")
    if not (path / "_SUCCESS").is_file():
        raise FileNotFoundError(
            f"{path} is not a complete Spark feature output (no _SUCCESS marker): run `speechlib spark-featurize` again"
        )
    return path


def read_report(out: str | os.PathLike) -> dict:
    """The report that :func:`featurize` saved in ``OUT/_speechlib.json``."""
    return json.loads((_local_out(out) / REPORT_FILE).read_text(encoding="utf-8"))


def load_parquet(out: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """One split of the Parquet output as arrays, in manifest order, without Spark.

    Parameters
    ----------
    out : path
        A local output folder of :func:`featurize`.
    split : str
        ``"train"``, ``"cv"`` or ``"test"``.

    Returns
    -------
    X : np.ndarray, shape (N, *feature_shape), float32
        Features of the ``status == "ok"`` rows.
    y : np.ndarray, shape (N,), int32
        Their ``label_id``.
    manifest : pandas.DataFrame
        Their manifest rows (``row`` = index in the split's manifest), aligned with X —
        the same rows, order and values as ``FeatureStore.load_array`` / ``.manifest``.
    """
    path = _local_out(out)
    folder = path / f"split={split}"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{path} has no split {split!r}; splits: {sorted(p.name[6:] for p in path.glob('split=*'))}"
        )
    table = pq.read_table(folder, filters=[("status", "=", "ok")])
    frame = table.drop_columns(["features"]).to_pandas()
    order = np.argsort(frame["row"].to_numpy(), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    frame["split"] = split
    shape = read_report(path)["feature_shape"]
    flat = table.column("features").combine_chunks()
    values = flat.values.to_numpy(zero_copy_only=False) if len(flat) else np.zeros(0, np.float32)
    X = np.asarray(values, dtype=np.float32).reshape(-1, *shape)[order]
    y = frame["label_id"].to_numpy(dtype=np.int32)
    manifest = frame.drop(columns=["shape", "status", "error"])
    return X, y, manifest


def to_store(out: str | os.PathLike, store_path: str | os.PathLike, *, overwrite: bool = False):
    """Copy the Parquet output into a feature store (:class:`speechlib.store.FeatureStore`).

    The store then feeds ``train_keras.py`` and notebook 4 as if
    ``speechlib featurize`` had written it; error rows are recorded as
    skipped clips.

    Returns
    -------
    speechlib.store.FeatureStore
    """
    path = _local_out(out)
    report = read_report(path)
    store = FeatureStore.create(
        store_path,
        kind=report["kind"],
        params=report["params"],
        labels=report["labels"],
        feature_shape=report["feature_shape"],
        overwrite=overwrite,
        created_from=str(path),
    )
    for split in report["by_split"]:
        X, y, manifest = load_parquet(path, split)
        bad = pq.read_table(
            path / f"split={split}", columns=["row", "path", "error"], filters=[("status", "=", "error")]
        )
        skipped = [{"row": int(r), "path": p, "reason": e} for r, p, e in zip(*bad.to_pydict().values(), strict=True)]
        manifest_csv = path / MANIFEST_DIR / f"{split}.csv"
        writer = store.new_split(
            split, manifest_path=manifest_csv if manifest_csv.is_file() else None, overwrite=overwrite
        )
        writer.append(
            X, y, rows=manifest["row"].to_numpy(), manifest_rows=len(manifest) + len(skipped), skipped=skipped
        )
        writer.finish(source="spark", manifest_rows=len(manifest) + len(skipped))
    if "train" in report["by_split"] and store.num_rows("train"):
        store.fit_normalization("train")  # as `speechlib featurize` does: train_keras.py needs the statistics
    return store


# --- Distributed inference -------------------------------------------------------------------------------


def make_predict_fn(model_path: str, feature_shape: tuple[int, ...], normalization: dict | None = None):
    """A ``make_predict_fn`` for ``predict_batch_udf``: loads the Keras model once per Python worker.

    Parameters
    ----------
    model_path : str
        A ``.keras`` file. When it was shipped with ``SparkContext.addFile``
        the executor's copy (``SparkFiles.get``) is used, else the path itself.
    feature_shape : tuple of int
        Shape of one input row, e.g. ``(101, 40)``; the flat feature arrays are reshaped to it.
    normalization : dict, optional
        ``mean`` and ``std`` per band (a model bundle's ``normalization``): the
        features are normalised with :func:`speechlib.features.normalize`
        before the model sees them, as in training. ``None``: used as stored.
    """
    stats = None
    if normalization is not None:
        stats = {key: np.asarray(normalization[key], dtype=np.float32).tolist() for key in ("mean", "std")}

    def make():
        from pyspark import SparkFiles

        local = model_path
        try:
            shipped = SparkFiles.get(os.path.basename(model_path))
            if os.path.isfile(shipped):
                local = shipped
        except Exception:  # no SparkFiles root outside a Spark worker: use the path as given
            local = model_path
        model = models.load_model(local, compile=False)

        def predict(inputs: np.ndarray) -> dict[str, np.ndarray]:
            x = np.asarray(inputs, dtype=np.float32).reshape(-1, *feature_shape)
            if stats is not None:
                x = features.normalize(x, stats)
            logits = np.asarray(model.predict(x, verbose=0, batch_size=len(x)), dtype=np.float64)
            probs = scipy.special.softmax(logits, axis=1)  # speechlib's models output logits
            return {"prediction": logits.argmax(axis=1).astype(np.int32), "probabilities": probs.astype(np.float32)}

        return predict

    return make


def bundle_normalization(model_path: str | os.PathLike) -> dict | None:
    """The normalisation of a model bundle (``model.json`` beside ``model.keras``), or ``None``.

    A model saved by ``train_keras.py`` / :func:`speechlib.inference.save_bundle`
    expects features normalised with the train split's per-band mean and std;
    a plain ``.keras`` file without the sidecar takes its input as stored.
    """
    text = str(model_path)
    if _has_scheme(text) and not text.startswith("file:"):
        return None  # a model on HDFS / S3: pass normalization= explicitly
    path = Path(_uri_path(text)) if _has_scheme(text) else Path(text)
    if path.is_dir() or path.suffix != ".keras":
        path = path / inference.MODEL_FILE
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    if meta.get("format") != inference.BUNDLE_FORMAT:
        return None
    return meta.get("normalization")


def predict(
    parquet_or_df,
    model_path: str | os.PathLike,
    *,
    batch_size: int = 256,
    spark=None,
    feature_shape=None,
    normalization: dict | str | None = "auto",
):
    """Predict with a saved Keras model on Spark (``pyspark.ml.functions.predict_batch_udf``).

    Parameters
    ----------
    parquet_or_df : path, URI or pyspark DataFrame
        Output of :func:`featurize`, or a DataFrame with its ``features``
        column (rows with ``status != "ok"`` are dropped).
    model_path : path or URI
        A saved ``.keras`` model taking ``(batch, *feature_shape)`` float32
        and returning ``(batch, num_classes)`` logits (as speechlib's models do). It is
        shipped to the executors with ``SparkContext.addFile``.
    batch_size : int
        Rows per model call on an executor.
    spark : SparkSession, optional
    feature_shape : tuple of int, optional
        Default: the ``shape`` of the first row.
    normalization : dict, "auto" or None
        Per-band ``mean`` and ``std`` applied to the features before the
        model. ``"auto"`` (default): the bundle's normalisation when
        ``model_path`` is a bundle (``model.json`` beside it, as written by
        ``train_keras.py``), else none. ``None``: the features as stored.

    Returns
    -------
    pyspark.sql.DataFrame
        The input's columns except ``features``, plus ``prediction`` (int,
        the predicted ``label_id``) and ``probabilities`` (array<float>,
        num_classes, summing to 1).
    """
    from pyspark.sql import functions as F  # noqa: N812 (the usual Spark alias)

    spark = spark or session()
    df = _rows_with_features(spark, parquet_or_df)
    feature_shape = tuple(int(d) for d in (_first_shape(df) if feature_shape is None else feature_shape))
    if isinstance(normalization, str):
        if normalization != "auto":
            raise ValueError(f"normalization must be a dict, 'auto' or None, not {normalization!r}")
        normalization = bundle_normalization(model_path)
    udf = _predict_udf(_ship_model(spark, model_path), feature_shape, normalization, batch_size=batch_size)
    keep = [c for c in df.columns if c != "features"]
    return df.withColumn("_pred", udf(F.col("features"))).select(
        *keep, F.col("_pred.prediction").alias("prediction"), F.col("_pred.probabilities").alias("probabilities")
    )


def _rows_with_features(spark, parquet_or_df):
    """The rows of a featurize output (a path, a URI or a DataFrame) whose features were computed."""
    from pyspark.sql import functions as F  # noqa: N812 (the usual Spark alias)

    df = parquet_or_df if hasattr(parquet_or_df, "schema") else spark.read.parquet(_to_uri(parquet_or_df))
    return df.where(F.col("status") == "ok") if "status" in df.columns else df


def _first_shape(df) -> list[int]:
    """The feature shape of the first row (all rows of one output share it)."""
    first = df.select("shape").first()
    if first is None:
        raise ValueError("no rows with features to predict on")
    return first["shape"]


def _ship_model(spark, model_path: str | os.PathLike) -> str:
    """Send the ``.keras`` file (a bundle folder's ``model.keras``) to the executors; return the path shipped."""
    model_uri = str(model_path) if _has_scheme(str(model_path)) else str(Path(model_path).resolve())
    if not _has_scheme(model_uri) and Path(model_uri).is_dir():
        model_uri = str(Path(model_uri) / inference.MODEL_FILE)  # a bundle folder
    spark.sparkContext.addFile(model_uri)  # the same path again is only a warning; another of the name fails
    return model_uri


def _predict_udf(model_uri: str, feature_shape: tuple[int, ...], normalization: dict | None, *, batch_size: int):
    """The ``predict_batch_udf`` column function: flat features -> struct of ``prediction`` and ``probabilities``."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType, IntegerType, StructField, StructType

    return predict_batch_udf(
        make_predict_fn(model_uri, feature_shape, normalization),
        return_type=StructType(
            [StructField("prediction", IntegerType()), StructField("probabilities", ArrayType(FloatType()))]
        ),
        batch_size=batch_size,
        input_tensor_shapes=[[int(np.prod(feature_shape))]],
    )


def write_predictions(
    features_dir: str | os.PathLike,
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    batch_size: int = 256,
    master: str | None = None,
    spark=None,
) -> str:
    """Write the :func:`predict` output for a featurize output as Parquet (``speechlib spark predict``).

    Parameters
    ----------
    features_dir : path or URI
        Output of :func:`featurize`.
    model_path : path or URI
        A saved ``.keras`` model or model bundle (its normalisation is applied).
    out : path or URI
        New, empty, or an earlier predictions output (replaced).
    batch_size : int
        Rows per model call on an executor.
    master : str, optional
        Spark master when this function creates the session.
    spark : SparkSession, optional

    Returns
    -------
    str
        The URI written.

    Raises
    ------
    FileExistsError
        ``out`` holds anything but an earlier Spark output (checked before the job; nothing is changed).
    """
    spark = spark or session(master)
    out_uri = _to_uri(out).rstrip("/")
    check_output_target(spark, out_uri)  # replaces only an earlier output, never someone's folder
    predict(features_dir, model_path, batch_size=batch_size, spark=spark).write.mode("overwrite").parquet(out_uri)
    return out_uri


def format_report(report: dict) -> str:
    """The summary ``speechlib spark featurize`` prints of a :func:`featurize` report: rows, splits, first errors."""
    lines = [
        f"wrote {report['rows']} rows ({report['ok']} ok, {report['error']} error) to {report['out']} "
        f"in {report['seconds']:.1f} s ({report['rows_per_second']} rows/s, {report['partitions']} partitions, "
        f"master {report['master']})"
    ]
    for name, entry in report["by_split"].items():
        lines.append(f"  {name}: {entry['rows']} rows, {entry['ok']} ok, {entry['error']} error")
    for item in report["errors"][:10]:
        lines.append(f"  error {item['split']}: {item['error']}")
    if report["error"] > 10:
        lines.append(f"  ... {report['error'] - 10} more error rows: read them with status = 'error' from the output")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    # `python -m speechlib.spark ...` is `speechlib spark ...`; the library itself never imports the command line.
    from speechlib import cli

    sys.exit(cli.main(["spark", *sys.argv[1:]]))
