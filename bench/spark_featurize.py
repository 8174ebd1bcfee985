"""Benchmark: Spark featurization against the original Spark project and the local featurizer, same clips.

Measures, in one run and on the same clips:

- files/s of ``speechlib.spark.featurize`` on ``local[2]`` (binaryFile read,
  Arrow mapInPandas, Parquet write), for the default log-mel and for the
  original project's STFT (``stft`` preset ``spark``: n_fft 2048, hop 321);
- files/s of the original Spark project's approach on the same session:
  ``sc.binaryFiles`` + an RDD ``map`` decoding with soundfile, padding to
  one second, ``librosa.stft(n_fft=2048, hop_length=321)`` and
  ``librosa.amplitude_to_db``, then ``collect()`` to the driver;
- files/s of the local multi-process featurizer (``speechlib.featurize``,
  2 workers, zarr store), skipped with a message when it is not installed.

Each Spark figure is measured after a warm-up job (Python workers started,
libraries imported), the best of ``--repeat`` runs. Ratios are against the
baselines of the same run. Nothing is asserted: figures are printed and
saved to ``bench/results/spark_featurize.json`` with the machine.

Examples
--------
::

    python bench/spark_featurize.py                   # the real clips of SPEECHLIB_REAL_DATA
    python bench/spark_featurize.py --data path/to/speech_commands_v0.01 --n 5000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _machine import cpu_model  # bench/_machine.py (bench/ is on sys.path when run)

from speechlib import config, split

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "spark_featurize.json"
MANIFEST_COLUMNS = split.MANIFEST_COLUMNS
ORIGINAL_N_FFT = 2048  # the original Spark project's STFT
ORIGINAL_HOP = 321


def _find_data(data: Path | None) -> Path:
    """``--data``, else ``SPEECHLIB_REAL_DATA``: a folder of real clips."""
    data = data or config.real_data_dir()
    if data is None or not Path(data).is_dir():
        sys.exit(f"no clips found: pass --data or set SPEECHLIB_REAL_DATA to a folder of clips (got {data})")
    return Path(data).resolve()


def _write_split(root: Path, split_dir: Path, n: int | None) -> list[str]:
    """A one-split manifest of the clips under ``root`` (all in ``train``) and its split.json."""
    paths = sorted(p for p in root.rglob("*.wav") if config.BACKGROUND_NOISE_DIR not in p.parts)[:n]
    labels = config.KAGGLE12_LABELS
    rows = []
    for p in paths:
        rel = p.relative_to(root).as_posix()
        folder = rel.split("/")[0].strip("_")
        label = folder if folder in labels else config.UNKNOWN_LABEL
        rows.append([str(p), rel, label, labels.index(label), folder, "", "train", 0, 0, ""])
    split_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(split_dir / "train.csv", index=False)
    info = {"task": "kaggle12", "labels": labels, "dataset": str(root), "noise_regions": {}}
    (split_dir / "split.json").write_text(json.dumps(info))
    return [str(p) for p in paths]


def _original_map(item: tuple[str, bytes]) -> tuple[str, np.ndarray]:
    """The original project's per-file function: soundfile, pad to 1 s, librosa STFT in dB."""
    import librosa
    import soundfile as sf

    name, content = item
    data, _ = sf.read(io.BytesIO(content))
    data = np.pad(data, (0, max(0, config.CLIP_SAMPLES - len(data))))[: config.CLIP_SAMPLES]
    spec = librosa.amplitude_to_db(np.abs(librosa.stft(data, n_fft=ORIGINAL_N_FFT, hop_length=ORIGINAL_HOP)))
    return name, spec


def _time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, default=None, help="folder of clips (default: the shared real clips)")
    parser.add_argument("--n", type=int, default=None, help="use the first N clips (default: all found)")
    parser.add_argument("--cores", type=int, default=2, help="Spark local[N] and local featurizer workers (default 2)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per method; the best is kept (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    args = parser.parse_args(argv)

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from speechlib import spark as spark_mod

    root = _find_data(args.data)
    tmp = Path(tempfile.mkdtemp(prefix="speechlib-bench-spark-"))
    files = _write_split(root, tmp / "split", args.n)
    n = len(files)
    _write_split(root, tmp / "warmup", 64)
    print(f"{n} clips from {root}; Spark local[{args.cores}], {args.cores} local workers")

    # The original approach collects every (50, 1025) float64 spectrogram to the driver (~400 KB a clip):
    # with Spark's default 1 GB driver heap it dies of OutOfMemoryError at ~2,500 clips, so give it room.
    conf = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": "6g",
        "spark.driver.maxResultSize": "4g",  # the original collects ~1.1 GB for 2,874 clips
    }
    spark = spark_mod.session(f"local[{args.cores}]", app_name="bench", **conf)
    spark.sparkContext.setLogLevel("ERROR")
    sc = spark.sparkContext
    results: dict[str, dict] = {}

    def spark_run(kind: str, params: dict | None, split: str = "split") -> dict:
        return spark_mod.featurize(tmp / split, tmp / f"parquet_{kind}", kind=kind, params=params, spark=spark)

    for kind, params in (("logmel", None), ("stft", {"preset": "spark"})):
        spark_run(kind, params, "warmup")
        report: dict = {}

        def once(kind=kind, params=params, report=report) -> None:
            report.update(spark_run(kind, params))

        seconds = _time(once, args.repeat)
        key = f"spark_{kind}"
        results[key] = {"seconds": seconds, "files_per_s": n / seconds, "partitions": report["partitions"]}
        results[key]["errors"] = report["error"]
        print(f"{key:24s} {n / seconds:8.1f} files/s  ({seconds:.1f} s, {report['partitions']} partitions)")

    # The original approach: binaryFiles over the same files, an RDD map, everything collected to the driver.
    paths = ",".join(files)
    sc.binaryFiles(",".join(files[:64])).map(_original_map).count()  # warm-up: workers import librosa
    parts = sc.binaryFiles(paths).getNumPartitions()
    seconds = _time(lambda: sc.binaryFiles(paths).map(_original_map).collect(), args.repeat)
    results["original_binaryfiles_rdd"] = {"seconds": seconds, "files_per_s": n / seconds, "partitions": parts}
    print(f"{'original_binaryfiles_rdd':24s} {n / seconds:8.1f} files/s  ({seconds:.1f} s, {parts} partition(s))")
    spark.stop()

    try:
        from speechlib.featurize import featurize as local_featurize
    except ImportError as err:
        print(f"local featurizer skipped: speechlib.featurize is not available ({err})")
    else:
        counter = iter(range(1000))

        def local() -> None:
            out = tmp / f"store_{next(counter)}"
            local_featurize(tmp / "split", out, workers=args.cores, progress=False)

        local_featurize(tmp / "warmup", tmp / "store_warmup", workers=args.cores, progress=False)
        seconds = _time(local, args.repeat)
        results["local_featurizer"] = {"seconds": seconds, "files_per_s": n / seconds, "workers": args.cores}
        print(f"{'local_featurizer':24s} {n / seconds:8.1f} files/s  ({seconds:.1f} s)")

    ratios = {}
    if "local_featurizer" in results:
        ratios["spark_logmel_vs_local_featurizer"] = (
            results["spark_logmel"]["files_per_s"] / results["local_featurizer"]["files_per_s"]
        )
    ratios["spark_logmel_vs_original"] = (
        results["spark_logmel"]["files_per_s"] / results["original_binaryfiles_rdd"]["files_per_s"]
    )
    ratios["spark_stft_vs_original"] = (
        results["spark_stft"]["files_per_s"] / results["original_binaryfiles_rdd"]["files_per_s"]
    )
    for key, value in ratios.items():
        print(f"{key:36s} {value:6.2f}x  (target: >= {0.7 if 'local' in key else 3}x)")
    record = {
        "benchmark": "spark_featurize",
        "clips": n,
        "data": root.name,
        "cores_used": args.cores,
        "repeat": args.repeat,
        "results": results,
        "ratios": ratios,
        "targets": {"spark_logmel_vs_local_featurizer": 0.7, "spark_logmel_vs_original": 3.0},
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model(),
            "loadavg_at_end": list(os.getloadavg()),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "command": "python bench/spark_featurize.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
