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
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model

RESULTS = Path(__file__).resolve().parent / "results" / "distributed.json"


def run(store: Path, workers: int, *, epochs: int, model: str, batch_size: int) -> dict:
    """One run on a fresh local cluster of ``workers`` executors; its rows per second."""
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
            metrics = spark_train.train(
                store, Path(tmp) / "run", num_workers=workers, model=model, epochs=epochs, batch_size=batch_size,
                spark=session, logdir=Path(tmp) / "logs",
            )  # fmt: skip
            log = train.read_log(Path(tmp) / "run")
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", type=Path, required=True, help="feature store (speechlib featurize)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="ds_cnn_s")
    parser.add_argument("--batch_size", type=int, default=64, help="global batch")
    args = parser.parse_args(argv)
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
