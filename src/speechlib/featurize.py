"""Featurize manifests into a feature store: parallel, streaming, resumable.

:func:`featurize` reads the manifests that ``speechlib split`` wrote
(``train.csv``, ``cv.csv``, ... and ``split.json``), computes one feature kind
for every clip (``speechlib.audio`` + ``speechlib.features``) in worker
processes, and writes the results into a :class:`speechlib.store.FeatureStore`.

- **Parallel**: a pool of worker processes (all cores by default) started
  with ``forkserver`` (``spawn`` where that does not exist), never ``fork``,
  so it is safe from a notebook that has imported TensorFlow.
- **Streaming**: manifests are read in chunks and at most a few chunks are
  in flight, so memory does not grow with the dataset.
- **Nothing silently dropped**: a file that cannot be read is skipped and
  listed with its reason; for every split, processed + skipped = manifest rows.
  The report is returned, saved as ``report.json`` in the store, and printed
  by the command.
- **Resumable**: after each chunk the store commits the rows written; a
  killed run (even SIGKILL) re-run with the same command continues from there
  and ends with the same store as an uninterrupted run.
- **Offline augmentation**: ``augment=N`` stores N augmented copies of every
  clip of the training splits (``train``, ``sample_train``), right after the
  clip, mixing noise from the training split's own noise regions only;
  deterministic for a seed (each copy's random state depends only on the
  seed, the row and the copy number, never on chunking or workers).
- **Normalisation**: per-band mean/std fitted on the ``train`` split only
  (``sample_train`` when ``train`` is not in the store) and saved in the store.

Example
-------
::

    speechlib featurize --split-dir data/work/synthetic/split --features logmel
    speechlib featurize --split-dir data/work/synthetic/split --augment 2 --workers 2 --out /tmp/logmel_aug2

>>> from speechlib.featurize import featurize
>>> report = featurize("data/work/synthetic/split", "data/work/synthetic/features/logmel")  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import contextlib
import csv
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from speechlib import __version__, audio, augment, config, features
from speechlib.manifest import MANIFEST_NAMES, SAMPLE_PREFIX
from speechlib.manifest import read as read_manifest
from speechlib.store import REPORT_FILE, FeatureStore, SplitWriter, StoreError, file_sha256

TRAINING_SPLITS = ("train", "sample_train")  # the splits that get augmented copies
IN_FLIGHT_PER_WORKER = 2  # chunks queued per worker: keeps workers busy, bounds memory

__all__ = ["MANIFEST_NAMES", "TRAINING_SPLITS", "default_out", "featurize", "format_report"]


def default_out(split_dir: str | Path, kind: str = "logmel") -> Path:
    """The default store folder: ``<split-dir>/../features/<kind>``."""
    return Path(split_dir).resolve().parent / "features" / kind


# --- worker side -------------------------------------------------------------------------------

_STATE: dict[str, Any] = {}  # per worker process: kind, params, seed, noise regions, augmenters


def _init_worker(
    kind: str,
    params: dict,
    seed: int,
    noise_regions: dict,
    main_pid: int | None = None,
    clip_samples: int = config.CLIP_SAMPLES,
) -> None:
    _STATE.clear()
    _STATE.update(
        kind=kind, params=params, seed=seed, noise_regions=noise_regions, augmenters={}, clip_samples=clip_samples
    )
    if main_pid is not None:  # a pool worker: one BLAS thread (the pool already uses every core); exit with main
        threadpool_limits(1)
        threading.Thread(target=_exit_with, args=(main_pid,), daemon=True).start()


def _exit_with(main_pid: int) -> None:
    """End this worker when the main process is gone (killed): pool workers otherwise wait forever."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(main_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # the pid was reused by another user's process: ours is gone
            os._exit(1)


def make_augmenter(noise_regions: dict, noise_split: str, clip_samples: int = config.CLIP_SAMPLES) -> Any:
    """The ``speechlib.augment.Augmenter`` of the stored copies: noise from ``noise_split``'s own regions only."""
    regions = noise_regions.get(noise_split, [])
    return augment.Augmenter(noise=augment.NoiseBank(regions, length=clip_samples) if regions else None)


def _augmenter(noise_split: str) -> Any:
    """The augmenter of a split, built once per worker (its noise is read on first use)."""
    cache = _STATE["augmenters"]
    if noise_split not in cache:
        cache[noise_split] = make_augmenter(_STATE["noise_regions"], noise_split, _STATE["clip_samples"])
    return cache[noise_split]


def _featurize_chunk(task: tuple[str, int, list[dict], int]) -> dict:
    """Featurize one chunk of manifest rows (runs in a worker).

    Parameters
    ----------
    task : (noise_split, start, records, copies)
        ``records`` are manifest rows as dicts, the first at manifest index
        ``start``; ``copies`` augmented copies per clip.

    Returns
    -------
    dict
        ``X`` (n, ...) float32, ``y`` (n,) int32, ``row`` (n,) int64,
        ``augment`` (n,) int16, ``skipped`` list, ``manifest_rows`` int.
    """
    noise_split, start, records, copies = task
    waveforms, y, rows, aug, skipped = [], [], [], [], []
    for i, record in enumerate(records):
        index = start + i
        try:
            waveform = audio.load_row(record)
        except audio.AudioError as err:  # the verdict of speechlib.audio: the sentence `data check` prints too
            path = record.get("path") or record.get("relpath", "")
            skipped.append({"row": index, "path": path, "reason": err.reason})
            continue
        waveform = audio.fix_length(waveform, length=_STATE["clip_samples"])
        for k in range(copies + 1):
            if k:
                rng = np.random.default_rng([_STATE["seed"], index, k])
                waveforms.append(_augmenter(noise_split)(waveform, rng=rng))
            else:
                waveforms.append(waveform)
            y.append(int(record["label_id"]))
            rows.append(index)
            aug.append(k)
    kind, params = _STATE["kind"], _STATE["params"]
    if waveforms:
        X = features.compute_batch(np.stack(waveforms), kind, **params)
    else:
        X = np.empty((0, *features.output_shape(kind, num_samples=_STATE["clip_samples"], **params)), dtype=np.float32)
    return {
        "X": X,
        "y": np.asarray(y, dtype=np.int32),
        "row": np.asarray(rows, dtype=np.int64),
        "augment": np.asarray(aug, dtype=np.int16),
        "skipped": skipped,
        "manifest_rows": len(records),
    }


# --- main side ---------------------------------------------------------------------------------


def _count_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


def _tasks(path: Path, *, start: int, chunk_size: int, noise_split: str, copies: int) -> Iterator[tuple]:
    """Chunks of manifest rows from ``start`` on, read lazily."""
    reader = read_manifest(path, chunksize=chunk_size, skiprows=range(1, start + 1))
    index = start
    with reader:
        for frame in reader:
            yield noise_split, index, frame.to_dict("records"), copies
            index += len(frame)


def _ordered_map(executor: ProcessPoolExecutor | None, tasks: Iterable[tuple], in_flight: int) -> Iterator[dict]:
    """Results of ``_featurize_chunk`` in task order, with at most ``in_flight`` tasks submitted."""
    if executor is None:
        for task in tasks:
            yield _featurize_chunk(task)
        return
    pending: collections.deque[Future] = collections.deque()
    for task in tasks:
        pending.append(executor.submit(_featurize_chunk, task))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _mp_context() -> multiprocessing.context.BaseContext:
    # Never fork: a forked copy of a process that runs TensorFlow threads can deadlock.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["speechlib.featurize", "speechlib.audio", "speechlib.features"])
    return context


def _noise_split(name: str) -> str:
    return name.removeprefix(SAMPLE_PREFIX)


def featurize(
    split_dir: str | Path,
    out: str | Path | None = None,
    *,
    kind: str = "logmel",
    params: dict | None = None,
    augment: int = 0,
    workers: int | None = None,
    chunk_size: int | None = None,
    splits: Sequence[str] | None = None,
    progress: bool = True,
    seed: int = config.SEED,
    overwrite: bool = False,
) -> dict:
    """Compute features for the manifests of ``split_dir`` into a feature store.

    Parameters
    ----------
    split_dir : str or Path
        Folder written by ``speechlib split`` (``<name>.csv`` manifests and ``split.json``).
    out : str or Path, optional
        The store folder (default :func:`default_out`: ``<split_dir>/../features/<kind>``).
    kind : str
        Feature kind (``speechlib.features.KINDS``); default log-mel (101, 40).
    params : dict, optional
        Feature parameters (keyword arguments of ``speechlib.features.compute``); all
        resolved parameters are recorded in the store.
    augment : int
        Augmented copies of each clip of the training splits to store (0: none).
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs in this process.
    chunk_size : int, optional
        Manifest rows per task and per commit (default: one chunk of the store's X).
    splits : sequence of str, optional
        Manifests to featurize (default: every one of ``MANIFEST_NAMES`` present).
    progress : bool
        Show a tqdm progress bar.
    seed : int
        Seed of the augmentation.
    overwrite : bool
        Delete an existing store at ``out`` first instead of resuming it (only
        a feature store: a folder of other files is refused, with or without it).

    Returns
    -------
    dict
        The report (also saved as ``report.json`` in the store): per split
        ``manifest_rows``, ``processed``, ``skipped``, ``rows`` (rows of X),
        ``status``; the list of skipped files with reasons; timings.

    Raises
    ------
    FileNotFoundError
        ``split_dir`` lacks ``split.json`` or a requested manifest.
    speechlib.store.StoreError
        ``out`` holds a store made with other settings or from other manifests,
        or is a file or a non-empty folder that is not a feature store.
    """
    if augment < 0:
        raise ValueError(f"augment must be >= 0, not {augment}")
    split_dir = Path(split_dir)
    info, splits = _read_split_dir(split_dir, splits)
    params = features.resolve_params(kind, **(params or {}))
    out = Path(out) if out is not None else default_out(split_dir, kind)
    workers = max(1, int(workers or os.cpu_count() or 1))
    clip_samples = split_clip_samples(info)
    store = _create_store(
        out, split_dir, info, kind=kind, params=params, clip_samples=clip_samples, overwrite=overwrite, seed=seed,
        augment=augment,
    )  # fmt: skip
    noise_regions = info.get("noise_regions", {}) if augment else {}
    report = _new_report(out, split_dir, kind=kind, params=params, augment=augment, workers=workers)
    started = time.perf_counter()
    with _worker_pool(
        workers, kind=kind, params=params, seed=seed, noise_regions=noise_regions, clip_samples=clip_samples
    ) as executor:
        processed_now = _featurize_splits(
            store, splits, split_dir, report, executor=executor, in_flight=IN_FLIGHT_PER_WORKER * workers,
            augment=augment, noise_regions=noise_regions, chunk_size=chunk_size, progress=progress,
        )  # fmt: skip
    report["normalization_fit_on"] = _fit_normalization(store, report["splits"])
    _add_timings(report, started=started, processed_now=processed_now)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _create_store(
    out: Path,
    split_dir: Path,
    info: dict,
    *,
    kind: str,
    params: dict,
    clip_samples: int,
    overwrite: bool,
    seed: int,
    augment: int,
) -> FeatureStore:
    """The feature store at ``out`` for the split's labels and these features (created, or opened to resume)."""
    return FeatureStore.create(
        out,
        kind=kind,
        params=params,
        labels=info["labels"],
        feature_shape=features.output_shape(kind, num_samples=clip_samples, **params),
        overwrite=overwrite,
        split_dir=str(split_dir.resolve()),
        seed=seed,
        command=_command(split_dir, out, kind=kind, params=params, augment=augment),
        # Only a clip length other than Speech Commands' 1 s is recorded (a Speech Commands store stays as it was).
        **({"clip_samples": clip_samples} if clip_samples != config.CLIP_SAMPLES else {}),
    )


def _new_report(out: Path, split_dir: Path, *, kind: str, params: dict, augment: int, workers: int) -> dict[str, Any]:
    """The report of a run before any split is featurized: its settings, no splits, nothing skipped."""
    return {
        "store": str(out),
        "split_dir": str(split_dir),
        "kind": kind,
        "params": params,
        "augment": augment,
        "workers": workers,
        "speechlib_version": __version__,
        "splits": {},
        "skipped": [],
    }


def _featurize_splits(
    store: FeatureStore,
    splits: Sequence[str],
    split_dir: Path,
    report: dict[str, Any],
    *,
    executor: ProcessPoolExecutor | None,
    in_flight: int,
    augment: int,
    noise_regions: dict,
    chunk_size: int | None,
    progress: bool,
) -> int:
    """Featurize every split in turn, adding its entry and skipped files to ``report``; the files processed."""
    processed_now = 0
    for name in splits:
        copies = augment if name in TRAINING_SPLITS else 0
        entry, processed = _featurize_split(
            store, name, split_dir / f"{name}.csv", executor=executor, in_flight=in_flight, copies=copies,
            noise_regions=noise_regions, chunk_size=chunk_size, progress=progress,
        )  # fmt: skip
        processed_now += processed
        report["splits"][name] = entry
        report["skipped"].extend({"split": name, **item} for item in store.info(name).get("skipped", []))
    return processed_now


def _add_timings(report: dict[str, Any], *, started: float, processed_now: int) -> None:
    """Add the run's seconds, files processed and files per second to ``report``."""
    seconds = time.perf_counter() - started
    report["seconds"] = round(seconds, 3)
    report["files_processed_this_run"] = processed_now
    report["files_per_second"] = round(processed_now / seconds, 1) if seconds > 0 else None


def _read_split_dir(split_dir: Path, splits: Sequence[str] | None) -> tuple[dict, list[str]]:
    """``split.json`` of a split folder and the manifests to featurize (default: every one present), checked."""
    info_path = split_dir / "split.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path} not found: run `speechlib split` first, or pass the folder it wrote")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if splits is None:
        splits = [name for name in MANIFEST_NAMES if (split_dir / f"{name}.csv").is_file()]
        if not splits:
            raise FileNotFoundError(f"no manifests ({', '.join(MANIFEST_NAMES)}.csv) in {split_dir}")
    for name in splits:
        if not (split_dir / f"{name}.csv").is_file():
            raise FileNotFoundError(
                f"{split_dir / f'{name}.csv'} not found: available manifests are "
                f"{sorted(p.stem for p in split_dir.glob('*.csv'))}"
            )
    return info, list(splits)


def _command(split_dir: Path, out: Path, *, kind: str, params: dict, augment: int) -> str:
    """The ``speechlib featurize`` command that makes this store (recorded in it)."""
    command = f"speechlib featurize --split-dir {split_dir} --features {kind}"
    command += f" --preset {params['preset']}" if params.get("preset") else ""
    command += f" --augment {augment}" if augment else ""
    return command + f" --out {out}"


def _start_workers(
    workers: int, *, kind: str, params: dict, seed: int, noise_regions: dict, clip_samples: int = config.CLIP_SAMPLES
) -> ProcessPoolExecutor | None:
    """A pool of ``workers`` worker processes, or ``None`` (and this process set up as the worker) for one."""
    if workers == 1:
        _init_worker(kind, params, seed, noise_regions, clip_samples=clip_samples)
        return None
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_mp_context(),
        initializer=_init_worker,
        initargs=(kind, params, seed, noise_regions, os.getpid(), clip_samples),
    )


@contextlib.contextmanager
def _worker_pool(workers: int, **settings: Any) -> Iterator[ProcessPoolExecutor | None]:
    """The workers of :func:`_start_workers` for the duration of a run, shut down at its end (even on an error)."""
    executor = _start_workers(workers, **settings)
    try:
        yield executor
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def split_clip_samples(info: dict) -> int:
    """The clip length of a split (``split.json``'s ``clip_seconds``, default 1 s) in samples at ``SAMPLE_RATE``."""
    return round(float(info.get("clip_seconds", config.CLIP_SECONDS)) * config.SAMPLE_RATE)


def _featurize_split(
    store: FeatureStore,
    name: str,
    manifest: Path,
    *,
    executor: ProcessPoolExecutor | None,
    in_flight: int,
    copies: int,
    noise_regions: dict,
    chunk_size: int | None,
    progress: bool,
) -> tuple[dict, int]:
    """Featurize one manifest into the store's split ``name`` (or resume it, or accept it as complete).

    Returns
    -------
    (dict, int)
        The split's report entry, and the files processed in this call.
    """
    total = _count_rows(manifest)
    started = time.perf_counter()
    processed = 0
    if store.is_complete(name):
        _check_complete_split(store, name, manifest, copies=copies)
        status = "already complete"
    else:
        writer = _open_writer(store, name, manifest, copies=copies, noise_regions=noise_regions, total=total)
        status = "resumed" if writer.manifest_rows_done else "written"
        processed = _write_chunks(
            store, writer, name, manifest, executor=executor, in_flight=in_flight, copies=copies,
            chunk_size=chunk_size, progress=progress, total=total,
        )  # fmt: skip
        if writer.manifest_rows_done != total:
            raise RuntimeError(f"{manifest}: {writer.manifest_rows_done} rows featurized but {total} listed")
        writer.finish(
            processed=total - len(writer.skipped),
            speechlib_version=__version__,
            finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
    return _split_entry(store, name, total=total, copies=copies, status=status, started=started), processed


def _check_complete_split(store: FeatureStore, name: str, manifest: Path, *, copies: int) -> None:
    """Refuse a complete split made from another manifest or another number of augmented copies."""
    old = store.info(name)
    if old.get("source_manifest_sha256") != file_sha256(manifest) or old.get("augment", 0) != copies:
        raise StoreError(
            f"split {name!r} of {store.path} was made from another manifest or --augment value: "
            "pass --overwrite (overwrite=True) to recompute the store, or choose another --out"
        )


def _open_writer(
    store: FeatureStore, name: str, manifest: Path, *, copies: int, noise_regions: dict, total: int
) -> SplitWriter:
    """A writer of split ``name`` (new, or resuming one started with the same ``copies``)."""
    clip_samples = int(store.attrs.get("clip_samples", config.CLIP_SAMPLES))
    augmenter = make_augmenter(noise_regions, _noise_split(name), clip_samples).to_dict() if copies else None
    writer = store.new_split(name, manifest_path=manifest, augment=copies, augmenter=augmenter, manifest_rows=total)
    if int(store.info(name).get("augment", 0)) != copies:
        raise StoreError(
            f"split {name!r} of {store.path} was started with --augment {store.info(name).get('augment')}: "
            "re-run with that value to resume, or pass --overwrite to start over"
        )
    return writer


def _write_chunks(
    store: FeatureStore,
    writer: SplitWriter,
    name: str,
    manifest: Path,
    *,
    executor: ProcessPoolExecutor | None,
    in_flight: int,
    copies: int,
    chunk_size: int | None,
    progress: bool,
    total: int,
) -> int:
    """Featurize the manifest rows not yet written, chunk by chunk, committing each; the files processed."""
    processed = 0
    size = chunk_size or max(1, writer.group["X"].chunks[0] // (copies + 1))
    tasks = _tasks(
        manifest, start=writer.manifest_rows_done, chunk_size=size, noise_split=_noise_split(name), copies=copies
    )
    bar = tqdm(total=total, initial=writer.manifest_rows_done, desc=f"{store.kind} {name}", unit="file",
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    with bar:
        for result in _ordered_map(executor, tasks, in_flight):
            writer.append(
                result["X"],
                result["y"],
                rows=result["row"],
                augment=result["augment"],
                manifest_rows=result["manifest_rows"],
                skipped=result["skipped"],
            )
            processed += result["manifest_rows"] - len(result["skipped"])
            bar.update(result["manifest_rows"])
    return processed


def _split_entry(store: FeatureStore, name: str, *, total: int, copies: int, status: str, started: float) -> dict:
    """The report entry of one split: its rows and files processed and skipped, its status and time."""
    attrs = store.info(name)
    skipped = attrs.get("skipped", [])
    return {
        "manifest_rows": total,
        "processed": total - len(skipped),
        "skipped": len(skipped),
        "rows": int(attrs["rows_committed"]),
        "augment": copies,
        "status": status,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _fit_normalization(store: FeatureStore, done: dict[str, dict]) -> str | None:
    """Fit the normalisation on the training split only (refitted when it changed in this run); its name."""
    fit_on = "train" if store.is_complete("train") else "sample_train" if store.is_complete("sample_train") else None
    norm = store.normalization
    changed = fit_on in done and done[fit_on]["status"] != "already complete"
    if fit_on and (norm is None or norm["fit_on"] != fit_on or changed):
        store.fit_normalization(fit_on)
    return fit_on


def format_report(report: dict, *, max_skipped: int = 20) -> str:
    """A readable summary of a :func:`featurize` report (what the command prints)."""
    lines = [f"feature store {report['store']} ({report['kind']}, {report['workers']} workers)"]
    for name, entry in report["splits"].items():
        lines.append(
            f"  {name:<13} {entry['manifest_rows']:>7} clips: {entry['processed']:>7} processed, "
            f"{entry['skipped']:>4} skipped -> {entry['rows']:>7} rows"
            + (f" (with {entry['augment']} augmented copies each)" if entry["augment"] else "")
            + f"  [{entry['status']}]"
        )
    skipped = report["skipped"]
    if skipped:
        lines.append(f"skipped files ({len(skipped)}):")
        lines += [f"  {s['split']} row {s['row']}, {s['path']}: {s['reason']}" for s in skipped[:max_skipped]]
        if len(skipped) > max_skipped:
            lines.append(f"  ... and {len(skipped) - max_skipped} more: see {Path(report['store']) / REPORT_FILE}")
    lines.append(f"normalisation statistics fitted on: {report['normalization_fit_on'] or 'none (no train split)'}")
    lines.append(
        f"{report['files_processed_this_run']} files in {report['seconds']:.1f} s "
        f"({report['files_per_second'] or 0:.0f} files/s); report: {Path(report['store']) / REPORT_FILE}"
    )
    return "\n".join(lines)
