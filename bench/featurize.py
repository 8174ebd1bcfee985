"""Benchmark: the featurizer against the original projects' per-file loops, on the same clips.

Measures, in one run:

- files/s of ``speechlib featurize`` (40-band log-mel, end to end: decode,
  features, compressed store write, normalisation fit) with ``--workers``
  worker processes (2 by default), run as a separate process;
- files/s of the original Spark project's per-file loop (soundfile read, pad
  to one second, ``librosa.stft(n_fft=2048, hop_length=321)``,
  ``librosa.amplitude_to_db``) and of the original course's loop
  (``librosa.load(path, sr=16000)``, ``librosa.feature.mfcc``), one process
  each, as they were written;
- peak resident memory of the featurizer (its whole process tree, sampled
  from /proc), store write and read MB/s, and the compression ratio;
- the machine (cores, CPU model).

Ratios are against the baselines measured in the same run. Nothing is
asserted: the figures are printed and saved to ``bench/results/featurize.json``.

Examples
--------
::

    python bench/featurize.py                          # the real clips of SPEECHLIB_REAL_DATA when set
    python bench/featurize.py --n 64727                # as many files as Speech Commands v0.01
    python bench/featurize.py --data path/to/speech_commands_v0.01 --n 20000 --workers 2

Files are never copied: when ``--n`` exceeds the clips found, the manifest
lists the same clips several times (the page cache then serves them, as it
would on a second epoch over a dataset that fits in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from _machine import cpu_model  # bench/_machine.py (bench/ is on sys.path when run)

from speechlib import __version__, config

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "featurize.json"
SPARK_N_FFT, SPARK_HOP = 2048, 321  # the original Spark project's STFT
TARGET_FILES_PER_S = 1400  # 64,727 clips of v0.01 in under 50 s
TARGET_SPEEDUP = 3.0
TARGET_PEAK_BYTES = 1.5 * 2**30


def machine() -> dict:
    """Cores, CPU model, memory and library versions of this machine."""
    model = cpu_model()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    import librosa
    import zarr

    return {
        "cores": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "librosa": librosa.__version__,
        "zarr": zarr.__version__,
        "speechlib": __version__,
    }


def find_clips(data: Path | None) -> tuple[list[Path], str]:
    """Word clips of a dataset folder (noise recordings excluded), or synthetic tones when there is none."""
    data = data or config.real_data_dir()  # SPEECHLIB_REAL_DATA
    if data is not None:
        clips = sorted(
            p
            for p in Path(data).rglob("*.wav")
            if config.BACKGROUND_NOISE_DIR not in p.parts and config.TEST_SET_SILENCE_DIR not in p.parts
        )
        if not clips:
            raise SystemExit(f"no .wav clips under {data}")
        return clips, Path(data).name
    folder = Path(tempfile.mkdtemp(prefix="bench_clips_"))
    rng = np.random.default_rng(config.SEED)
    clips = []
    for i in range(500):
        t = np.arange(config.CLIP_SAMPLES) / config.SAMPLE_RATE
        clip = 0.3 * np.sin(2 * np.pi * (200 + 3 * i) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"tone_{i:03d}.wav"
        sf.write(path, clip.astype(np.float32), config.SAMPLE_RATE, subtype=config.SAMPLE_SUBTYPE)
        clips.append(path)
    return clips, f"synthetic tones in {folder}"


def write_manifest(clips: list[Path], n: int, split_dir: Path) -> list[Path]:
    """A train manifest of ``n`` rows cycling through ``clips``, and split.json; returns the listed files."""
    split_dir.mkdir(parents=True, exist_ok=True)
    listed = [clips[i % len(clips)] for i in range(n)]
    labels = sorted({p.parent.name for p in clips})
    frame = pd.DataFrame(
        {
            "path": [str(p) for p in listed],
            "relpath": [f"{p.parent.name}/{p.name}" for p in listed],
            "label": [p.parent.name for p in listed],
            "label_id": [labels.index(p.parent.name) for p in listed],
            "word": [p.parent.name for p in listed],
            "speaker": [p.name.split("_")[0] for p in listed],
            "split": "train",
            "offset": 0,
            "num_samples": 0,
            "source": "",
        }
    )
    frame.to_csv(split_dir / "train.csv", index=False)
    (split_dir / "split.json").write_text(json.dumps({"task": "bench", "labels": labels, "noise_regions": {}}))
    return listed


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            statm = Path(f"/proc/{entry}/statm").read_text().split()
        except OSError:  # the process ended while we looked
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = int(statm[1]) * page
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def run_featurizer(split_dir: Path, out: Path, workers: int) -> dict:
    """``featurize`` in a fresh process; returns its report plus wall time and the peak tree RSS."""
    code = (
        "import json, sys; from speechlib.featurize import featurize; "
        f"r = featurize({str(split_dir)!r}, {str(out)!r}, workers={workers}, splits=['train'], progress=False); "
        "print(json.dumps(r))"
    )
    peak = [0]
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"the featurizer failed (exit {proc.returncode})")
    report = json.loads(stdout.strip().splitlines()[-1])
    return {"report": report, "wall_s": wall, "peak_tree_rss_bytes": peak[0]}


def spark_loop(paths: list[Path]) -> float:
    """The original Spark project's per-file loop; returns seconds."""
    import librosa

    start = time.perf_counter()
    for path in paths:
        waveform, _ = sf.read(path, dtype="float32")
        waveform = np.pad(waveform, (0, max(0, config.CLIP_SAMPLES - len(waveform))))[: config.CLIP_SAMPLES]
        spectrum = np.abs(librosa.stft(waveform, n_fft=SPARK_N_FFT, hop_length=SPARK_HOP))
        librosa.amplitude_to_db(spectrum)
    return time.perf_counter() - start


def course_loop(paths: list[Path]) -> float:
    """The original course's per-file loop (librosa.load with resampling to 16 kHz, MFCC); returns seconds."""
    import librosa

    start = time.perf_counter()
    for path in paths:
        waveform, rate = librosa.load(path, sr=config.SAMPLE_RATE)
        librosa.feature.mfcc(y=waveform, sr=rate)
    return time.perf_counter() - start


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def store_io(store_path: Path, tmp: Path) -> dict:
    """Write and read throughput of the store (uncompressed MB/s) and its compression ratio."""
    from speechlib import store

    fs = store.FeatureStore(store_path)
    X, y = fs.open_split("train")
    step = X.chunks[0]
    raw = X.shape[0] * int(np.prod(X.shape[1:])) * 4
    copy = store.FeatureStore.create(
        tmp / "copy", kind=fs.kind, params=fs.params, labels=fs.labels, feature_shape=fs.feature_shape
    )
    writer = copy.new_split("train")
    write_s = 0.0
    for start in range(0, X.shape[0], step):
        block, labels = X[start : start + step], y[start : start + step]
        t0 = time.perf_counter()
        writer.append(block, labels)
        write_s += time.perf_counter() - t0
    writer.finish()
    t0 = time.perf_counter()
    for start in range(0, X.shape[0], step):
        X[start : start + step]
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = sum(len(batch_y) for _, batch_y in fs.batches("train", batch_size=64))
    batches_s = time.perf_counter() - t0
    stored = dir_bytes(store_path / "train" / "X")
    return {
        "rows": int(X.shape[0]),
        "uncompressed_mb": round(raw / 1e6, 1),
        "stored_mb": round(stored / 1e6, 1),
        "compression_ratio": round(raw / stored, 2),
        "write_mb_per_s": round(raw / 1e6 / write_s, 1),
        "read_mb_per_s": round(raw / 1e6 / read_s, 1),
        "shuffled_batches_mb_per_s": round(raw / 1e6 / batches_s, 1),
        "shuffled_batches_rows": rows,
        "shuffled_batches_rows_per_s": round(rows / batches_s, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=None, help="a folder of clips (default: SPEECHLIB_REAL_DATA, else tones)"
    )
    parser.add_argument("--n", type=int, default=20_000, help="files the featurizer processes (default 20000)")
    parser.add_argument("--baseline-n", type=int, default=600, help="files each per-file baseline loop reads")
    parser.add_argument("--workers", type=int, default=2, help="featurizer worker processes (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    args = parser.parse_args(argv)

    clips, source = find_clips(args.data)
    tmp = Path(tempfile.mkdtemp(prefix="bench_featurize_"))
    try:
        listed = write_manifest(clips, args.n, tmp / "split")
        baseline_paths = listed[: args.baseline_n]
        for path in clips:  # warm the page cache for every contender: this measures compute, not the disk
            sf.read(path)
        load_before = os.getloadavg()
        print(
            f"{len(clips)} distinct clips from {source}; featurizer on {args.n} files, baselines on "
            f"{len(baseline_paths)}"
        )
        spark_s = spark_loop(baseline_paths)
        course_s = course_loop(baseline_paths)
        ours = run_featurizer(tmp / "split", tmp / "store", args.workers)
        ours_1 = run_featurizer(tmp / "split", tmp / "store1", 1) if args.workers != 1 else ours
        io = store_io(tmp / "store", tmp)
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    report = ours["report"]
    files_per_s = report["files_processed_this_run"] / ours["wall_s"]
    files_per_s_1 = ours_1["report"]["files_processed_this_run"] / ours_1["wall_s"]
    spark_fps = len(baseline_paths) / spark_s
    course_fps = len(baseline_paths) / course_s
    results = {
        "benchmark": "featurize",
        "machine": machine(),
        # Other programs running at the same time slow every contender alike; ratios stay comparable.
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "data": source,
        "distinct_clips": len(clips),
        "files": args.n,
        "featurizer": {
            "kind": report["kind"],
            "shape": [101, config.N_MELS],
            "workers": args.workers,
            "wall_s": round(ours["wall_s"], 2),
            "files_per_s": round(files_per_s, 1),
            "files_per_s_inside": report["files_per_second"],
            "skipped": len(report["skipped"]),
            "peak_rss_mb": round(ours["peak_tree_rss_bytes"] / 1e6, 1),
            "one_worker_files_per_s": round(files_per_s_1, 1),
        },
        "baselines": {
            "spark_loop": {
                "files": len(baseline_paths),
                "seconds": round(spark_s, 2),
                "files_per_s": round(spark_fps, 1),
            },
            "course_loop": {
                "files": len(baseline_paths),
                "seconds": round(course_s, 2),
                "files_per_s": round(course_fps, 1),
            },
        },
        "ratios": {
            "vs_spark_loop": round(files_per_s / spark_fps, 2),
            "vs_course_loop": round(files_per_s / course_fps, 2),
            "one_worker_vs_spark_loop": round(files_per_s_1 / spark_fps, 2),
        },
        "store": io,
        "targets": {
            "files_per_s": TARGET_FILES_PER_S,
            "speedup_vs_spark_loop": TARGET_SPEEDUP,
            "peak_rss_mb": round(TARGET_PEAK_BYTES / 1e6),
            "met": {
                "files_per_s": files_per_s >= TARGET_FILES_PER_S,
                "speedup": files_per_s / spark_fps >= TARGET_SPEEDUP,
                "peak_rss": ours["peak_tree_rss_bytes"] < TARGET_PEAK_BYTES,
            },
        },
        "command": " ".join(["python", "bench/featurize.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    f = results["featurizer"]
    print(
        f"machine: {results['machine']['cores']} cores, {results['machine']['cpu_model']}; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print(
        f"speechlib featurize (log-mel 101x40, {args.workers} workers): {f['files_per_s']:.0f} files/s "
        f"({args.n} files in {f['wall_s']:.1f} s, process start included); peak RSS {f['peak_rss_mb']:.0f} MB"
    )
    print(f"  1 worker: {f['one_worker_files_per_s']:.0f} files/s")
    print(
        f"Spark per-file loop (stft 2048/321 + amplitude_to_db): {spark_fps:.0f} files/s -> "
        f"{results['ratios']['vs_spark_loop']:.1f}x"
    )
    print(
        f"course per-file loop (librosa.load + mfcc): {course_fps:.0f} files/s -> "
        f"{results['ratios']['vs_course_loop']:.1f}x"
    )
    print(
        f"store: {io['compression_ratio']}x compression, write {io['write_mb_per_s']} MB/s, read "
        f"{io['read_mb_per_s']} MB/s, shuffled batches {io['shuffled_batches_mb_per_s']} MB/s (uncompressed)"
    )
    print(f"targets met: {results['targets']['met']}; saved {args.out}")
    return results


if __name__ == "__main__":
    main()
