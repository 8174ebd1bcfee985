"""Training throughput on Spark with 1 and 2 workers (speechlib spark train), written to bench/results/distributed.json.

Each run is ``speechlib.spark_train.train`` on a ``local-cluster[N,1,2048]``
Spark cluster on this machine (N executors of one core, each a TensorFlow
worker under MultiWorkerMirroredStrategy), the same store, model, recipe,
global batch and seed. Throughput is training rows per second of an epoch
(training plus the cv pass, the epoch's ``seconds`` in the CSV log; the
median over the epochs after the first, which includes tracing). The
baseline is the 1-worker run of the same invocation.

On a 2-core machine two workers share the cores the one worker had, so no
speed-up is expected: the figure shows the price of the all-reduce and the
extra process, not what a cluster of separate machines gains.

    SPEECHLIB_REAL_DATA=... python bench/distributed.py --store data/work/synthetic/features/logmel --epochs 3

``--accuracy`` answers the other question (issue: "same data, epochs, global
batch and seed: accuracy within 1 point of single-machine training"): the
same model trained by ``train_keras.py`` on one machine and by ``speechlib
spark train`` on 2 workers, both to the end of their budget (early stopping and
the best-on-cv checkpoint alike), scored on the same test clips; the
difference with its paired 95% interval and McNemar's p, written to
bench/results/distributed_accuracy.json:

    python bench/distributed.py --store data/work/synthetic/features/logmel --accuracy --model res8 --epochs 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model

RESULTS = Path(__file__).resolve().parent / "results" / "distributed.json"
ACCURACY_RESULTS = RESULTS.with_name("distributed_accuracy.json")
REPO = Path(__file__).resolve().parents[1]


def scored_on_test(store: Path, bundle_path: Path) -> tuple[list[bool], dict]:
    """Whether the bundle's model gets each test row of ``store`` right (the store's row order), and its metrics."""
    from speechlib import evaluate, inference, train

    bundle = inference.load_bundle(bundle_path)
    data = train.load_data(store, batch_size=256)
    y_true, proba = train.predict_split(bundle.model, data, "test")
    correct = proba.argmax(axis=1) == y_true
    metrics = evaluate.classification_metrics(y_true, proba.argmax(axis=1), data.labels)
    return correct.tolist(), {"accuracy": round(float(correct.mean()), 4), "macro_f1": round(metrics["macro_f1"], 4),
                              "ci95": evaluate.wilson_interval(int(correct.sum()), len(correct))}  # fmt: skip


def run(store: Path, workers: int, *, epochs: int, model: str, batch_size: int, keep: Path | None = None) -> dict:
    """One run on a fresh local cluster of ``workers`` executors; its rows per second.

    With ``keep`` the run's folder (bundle, log) is ``keep`` and stays; else a temporary folder.
    """
    from speechlib import spark as spark_mod
    from speechlib import spark_train, train

    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = spark_mod.session(
        f"local-cluster[{workers},1,2048]", app_name=f"bench-distributed-{workers}",
        **{"spark.ui.enabled": "false", "spark.python.worker.reuse": "false"},
    )  # fmt: skip
    session.sparkContext.setLogLevel("OFF")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = keep if keep is not None else Path(tmp) / "run"
            metrics = spark_train.train(
                store, out, num_workers=workers, model=model, epochs=epochs, batch_size=batch_size,
                spark=session, logdir=Path(tmp) / "logs",
            )  # fmt: skip
            log = train.read_log(out)
    finally:
        session.stop()
    rows = metrics["sizes"]["train"] * workers  # each worker's shard
    seconds = float(np.median(log["seconds"].to_numpy()[1:] if len(log) > 1 else log["seconds"].to_numpy()))
    return {
        "workers": workers,
        "train_rows": int(rows),
        "epochs": len(log),
        "seconds_per_epoch": round(seconds, 2),
        "samples_per_second": round(rows / seconds, 1),
        "test_accuracy": metrics["test"]["accuracy"],
        "total_seconds": metrics["seconds"],
    }


def accuracy(args: argparse.Namespace) -> dict:
    """train_keras.py on one machine against speechlib spark train on 2 workers: test accuracy, paired."""
    from speechlib import evaluate, train

    with tempfile.TemporaryDirectory() as tmp:
        single_out, spark_out = Path(tmp) / "single", Path(tmp) / "spark_2w"
        command = [sys.executable, "train_keras.py", "--path_to_data", str(args.store), "--model", args.model,
                   "--epochs", str(args.epochs), "--batch_size", str(args.batch_size), "--out", str(single_out),
                   "--logdir", str(Path(tmp) / "logs")]  # fmt: skip
        subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        single_correct, single = scored_on_test(args.store, single_out / "model.keras")
        single["epochs"] = len(train.read_log(single_out))
        spark = run(args.store, 2, epochs=args.epochs, model=args.model, batch_size=args.batch_size, keep=spark_out)
        spark_correct, spark_scores = scored_on_test(args.store, spark_out / "model.keras")
    paired = evaluate.paired_comparison(spark_correct, single_correct)
    return {
        "machine": {"cores": os.cpu_count(), "cpu_model": cpu_model()},
        "store": args.store.name if args.store.name != "logmel" else f"{args.store.parent.parent.name}/logmel",
        "cores_used": len(os.sched_getaffinity(0)),  # taskset: the runs share these cores (samples/s depends on it)
        "model": args.model, "max_epochs": args.epochs, "global_batch": args.batch_size,
        "single_machine": {"command": "train_keras.py", **single},
        "spark_2_workers": {"command": "speechlib spark train (local-cluster[2,1,2048])", **spark_scores,
                            "epochs": spark["epochs"], "samples_per_second": spark["samples_per_second"]},
        "spark_minus_single": paired,
        "within_1_point": bool(abs(paired["difference"]) <= 0.01),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", type=Path, required=True, help="feature store (speechlib featurize)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="ds_cnn_s")
    parser.add_argument("--batch_size", type=int, default=64, help="global batch")
    parser.add_argument(
        "--accuracy",
        action="store_true",
        help=f"train_keras.py against 2 Spark workers, test accuracy paired ({ACCURACY_RESULTS.name})",
    )
    args = parser.parse_args(argv)
    if args.accuracy:
        result = accuracy(args)
        ACCURACY_RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(result, indent=2))
        return result
    runs = [run(args.store, n, epochs=args.epochs, model=args.model, batch_size=args.batch_size) for n in (1, 2)]
    result = {
        "machine": {"cores": os.cpu_count(), "cpu_model": cpu_model()},
        "store": args.store.name if args.store.name != "logmel" else f"{args.store.parent.parent.name}/logmel",
        "model": args.model,
        "global_batch": args.batch_size,
        "runs": runs,
        "speedup_2_over_1": round(runs[1]["samples_per_second"] / runs[0]["samples_per_second"], 3),
        "gpu": "not measured: no GPU on this machine (CPU against 1 and all GPUs: run train_keras.py and "
        "train_keras.py --strategy mirrored on a GPU machine)",
        "note": "local-cluster executors of one core each on one 2-core machine shared with other work: "
        "1 worker uses one core, 2 workers both, so the speed-up mixes a second core with the cost of the "
        "all-reduce; not a cluster's gain",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
