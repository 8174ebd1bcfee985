"""Training across Spark executors: a barrier stage of N tasks, one TensorFlow worker each.

``speechlib spark train`` (:func:`train`) runs a Spark *barrier* stage of
``num_workers`` tasks, which Spark starts all at once or not at all. Each
task learns its peers' addresses from ``BarrierTaskContext``: it picks a free
port, and ``allGather`` gives every task the list of ``host:port`` of all
tasks, in partition order. From it each task writes ``TF_CONFIG``
(``{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}}``)
and starts one training process, which trains under
``tf.distribute.MultiWorkerMirroredStrategy`` through
:func:`speechlib.train.fit` — the same model (:mod:`speechlib.models`),
recipe and augmentation (:func:`speechlib.train.load_data`), learning-rate
schedule, class weights and callbacks as ``train_keras.py``.

The step
--------
Keras 3's ``model.fit`` does not work under ``MultiWorkerMirroredStrategy``
(checked with Keras 3.15.1 and TensorFlow 2.21: its symbolic build reduces
the first input batch across workers and fails to convert the ``PerReplica``
values), so the step is written with ``strategy.run`` and an all-reduce
(:func:`speechlib.train._fit_in_steps`): each worker computes the loss of its
part of the global batch and its gradients, the gradients are summed across
workers (the optimizer's ``apply_gradients`` all-reduces them in replica
context) and every worker applies the same update. ``MirroredStrategy`` on
one machine (``train_keras.py --strategy mirrored``) keeps ``model.fit``.

Data
----
Input is a feature store on storage every executor reads at the same path
(an NFS or a cluster file system mount; ``speechlib featurize`` or
``speechlib.spark.to_store`` writes one). Each worker reads only its shard of
the training and cv rows (rows ``i::N``, :func:`speechlib.train.shard_rows`),
with a batch of ``batch_size / N`` rows, so one step covers ``batch_size``
rows as on one machine. Nothing is collected to the driver.

Files, faults, recovery
-----------------------
The chief (task 0) writes into ``out``: checkpoints (``best.keras`` and the
whole training state ``backup/state.npz`` after every epoch), the CSV log,
TensorBoard logs and at the end the bundle (``model.keras`` + ``model.json``,
``model_waveform.keras``, ``metrics.json``), which ``speechlib evaluate``,
``predict`` and ``serve`` use unchanged. The other workers write their copies
into a temporary folder. ``out/_workers/<i>.json`` records where task ``i``
runs (host, port, the training process's pid, the stage attempt).

When a task fails (its executor or its training process is killed), Spark
fails the barrier stage, kills the other tasks (each training process ends
with its task) and runs the whole stage again, up to
``spark.stage.maxConsecutiveAttempts`` (4) times. The stage is a shuffle-map
stage on purpose (the driver collects after a one-partition shuffle): Spark
can retry a failed barrier map stage but aborts a failed barrier result
stage. The new attempt resumes from the chief's last backup (every worker
loads it, so they start equal) and ends with the run an uninterrupted one
would have made, and a complete bundle.

Running it
----------
::

    speechlib spark train --store data/work/synthetic/features/logmel --out data/work/synthetic/models/spark \\
        --num-workers 2 --master 'local-cluster[2,1,2048]'
    spark-submit --master yarn --num-executors 4 --executor-cores 4 --conf spark.task.cpus=4 \\
        --archives env.tar.gz#env --conf spark.pyspark.python=./env/bin/python \\
        src/speechlib/spark_job.py train --store /mnt/shared/features/logmel --out /mnt/shared/models/spark \\
        --num-workers 4

One task per executor: give each task all of its executor's cores
(``spark.task.cpus`` = ``spark.executor.cores``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from speechlib import config, models
from speechlib import train as train_mod
from speechlib.pipeline import InputError
from speechlib.spark import session
from speechlib.store import FeatureStore

__all__ = ["WORKERS_DIR", "cluster_spec", "tf_config", "train"]

WORKERS_DIR = "_workers"  # in out: one JSON per task (host, port, pid, attempt)
RUN_FILE = "_spark_train.json"  # in out: the run's id and settings (a retried stage resumes this run)
COLLECTIVE_TIMEOUT_S = 600  # a collective op waiting longer than this for a peer fails instead of hanging


def tf_config(addresses: list[str], index: int) -> dict:
    """The ``TF_CONFIG`` of worker ``index`` of a cluster of ``addresses`` (``host:port``, in task order)."""
    return {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": int(index)}}


def cluster_spec(context: Any) -> tuple[int, list[str]]:
    """This barrier task's index and the ``host:port`` of every task, from ``BarrierTaskContext``.

    Each task binds a free port on its executor's host and announces it with
    ``allGather``; the messages come back in partition order.
    """
    index = int(context.partitionId())
    host = context.getTaskInfos()[index].address.rsplit(":", 1)[0]
    with socket.socket() as sock:
        sock.bind(("", 0))
        port = sock.getsockname()[1]
    messages = context.allGather(json.dumps({"index": index, "address": f"{host}:{port}"}))
    ordered = sorted((json.loads(m) for m in messages), key=lambda m: m["index"])
    return index, [m["address"] for m in ordered]


def _task(settings: dict):
    """The barrier task: find the peers, start this worker's training process, wait for it."""

    def run(_rows):
        from pyspark import BarrierTaskContext

        context = BarrierTaskContext.get()
        index, addresses = cluster_spec(context)
        out = Path(settings["out"])
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(tf_config(addresses, index)),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONWARNINGS": "ignore",
        }
        worker = {**settings, "index": index, "count": len(addresses)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "speechlib.spark_train", json.dumps(worker)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        record = {"index": index, "address": addresses[index], "pid": proc.pid, "attempt": context.attemptNumber()}
        (out / WORKERS_DIR).mkdir(parents=True, exist_ok=True)
        (out / WORKERS_DIR / f"{index}.json").write_text(json.dumps(record), encoding="utf-8")
        output = proc.communicate()[0]
        if proc.returncode != 0:
            raise RuntimeError(f"training worker {index} exited with {proc.returncode}: {output[-3000:]}")
        yield json.dumps({"index": index, "output": output[-20000:]})

    return run


def train(
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    num_workers: int = 2,
    model: str | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    lr: float | None = None,
    seed: int = config.SEED,
    recipe: Any = None,
    logdir: str | os.PathLike | None = None,
    resume: bool = False,
    spark: Any = None,
    master: str | None = None,
) -> dict:
    """Train on ``num_workers`` Spark executors at once; return the metrics of the bundle saved in ``out``.

    Parameters
    ----------
    store : path
        A feature store every executor can read at this path.
    out : path
        The chief's folder (shared storage): checkpoints, logs, the bundle.
    num_workers : int
        Barrier tasks, one TensorFlow worker each (the cluster needs that many free task slots).
    model, epochs, lr, seed, recipe
        As in ``train_keras.py`` (defaults: the final model, ``train.auto_epochs``, ``train.DEFAULT_LR``,
        the project seed, :class:`speechlib.train.Recipe`).
    batch_size : int
        The global batch: rows of one optimizer step over all workers (a multiple of ``num_workers``).
    logdir : path, optional
        TensorBoard folder (default ``<out>/../../logs/<out name>``).
    resume : bool
        Continue the run in ``out`` from its last backup (a retried stage always resumes its own run).
    spark, master
        A SparkSession, or the master of the one to create (default ``local[*]`` / spark-submit's).

    Returns
    -------
    dict
        The chief's ``metrics.json`` (cv and test metrics, sizes, epochs) plus ``seconds`` and ``num_workers``.
    """
    settings = _settings(
        store, out, num_workers=num_workers, model=model, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
        recipe=recipe, logdir=logdir, resume=resume,
    )  # fmt: skip
    spark = spark or session(master)
    started = time.perf_counter()
    stage = spark.sparkContext.parallelize(range(num_workers), num_workers).barrier().mapPartitions(_task(settings))
    results = [json.loads(text) for text in stage.repartition(1).collect()]  # a shuffle: a retryable map stage
    seconds = time.perf_counter() - started
    chief = next(r for r in results if r["index"] == 0)
    metrics = json.loads((Path(settings["out"]) / "metrics.json").read_text(encoding="utf-8"))
    metrics.update({"seconds": round(seconds, 1), "num_workers": num_workers, "output": chief["output"]})
    return metrics


def _settings(store, out, *, num_workers: int, model, epochs, batch_size: int, lr, seed: int, recipe, logdir, resume):
    """The run's settings every worker gets (JSON): paths resolved, defaults filled; checks the store and batch.

    Creates ``out``. Raises :class:`speechlib.pipeline.InputError` for a batch that the workers cannot share.
    """
    if num_workers < 1 or batch_size % num_workers:
        raise InputError(f"--batch-size {batch_size} must be a multiple of --num-workers {num_workers}")
    FeatureStore(store).open_split("train")  # a missing or unfinished store fails here, with its message
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return {
        "run": uuid.uuid4().hex,
        "store": str(Path(store).resolve()),
        "out": str(out),
        "logdir": str(Path(logdir).resolve() if logdir else out.parent.parent / "logs" / out.name),
        "model": model or train_mod.DEFAULT_MODEL,
        "epochs": epochs,
        "batch_size": int(batch_size),
        "lr": float(lr or train_mod.DEFAULT_LR),
        "seed": int(seed),
        "recipe": (recipe or train_mod.Recipe()).to_dict(),
        "resume": bool(resume),
        "small": config.is_small(),
    }


def _parent_watch() -> None:
    """End this process when its barrier task's process goes (Spark killed the task): never an orphan."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker(settings: dict) -> None:
    """One training process: MultiWorkerMirroredStrategy, this worker's shard, train.fit; the chief saves."""
    _parent_watch()
    import tensorflow as tf

    config.set_small(bool(settings["small"]))
    index, count = int(settings["index"]), int(settings["count"])
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    chief = index == 0
    out = Path(settings["out"])
    run_file = out / RUN_FILE
    before = json.loads(run_file.read_text(encoding="utf-8")) if run_file.is_file() else {}
    work = out if chief else Path(tempfile.mkdtemp(prefix=f"speechlib-worker{index}-"))
    try:
        _train_worker(settings, strategy, out=out, work=work, before=before, index=index, count=count)
    finally:
        if not chief:  # its own checkpoints and backup, in a folder this process made: gone with it
            shutil.rmtree(work, ignore_errors=True)


def _train_worker(settings: dict, strategy: Any, *, out: Path, work: Path, before: dict, index: int,
                  count: int) -> None:  # fmt: skip
    """Train this worker's part in ``work`` (the chief's: ``out``, where it also saves the bundle)."""
    chief = index == 0
    run_file = out / RUN_FILE
    # A retried stage of this run resumes from the chief's last backup; a new run only when asked.
    resume = bool(settings["resume"]) or before.get("run") == settings["run"]
    if not chief and resume and train_mod.load_backup(out, arrays=False) is not None:
        (work / train_mod.BACKUP_DIR).mkdir(parents=True, exist_ok=True)  # start from the chief's state
        state = out / train_mod.BACKUP_DIR / train_mod.BACKUP_FILE
        (work / train_mod.BACKUP_DIR / train_mod.BACKUP_FILE).write_bytes(state.read_bytes())
    done = train_mod.resume_epoch(work) if resume else 0
    train_mod.set_seed(settings["seed"])
    recipe = train_mod.Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings["recipe"].items()})
    data = train_mod.load_data(
        settings["store"], batch_size=settings["batch_size"] // count, seed=settings["seed"], recipe=recipe,
        initial_epoch=done, shard=(index, count),
    )  # fmt: skip
    if chief:
        run_file.write_text(json.dumps({k: settings[k] for k in ("run", "store", "model", "batch_size")}), "utf-8")
    with strategy.scope():
        model = models.build(settings["model"], input_shape=data.feature_shape, num_classes=data.num_classes)
    started = time.perf_counter()
    history = train_mod.fit(
        model, data, epochs=settings["epochs"], lr=settings["lr"], out_dir=work,
        logdir=settings["logdir"] if chief else None, resume=resume, strategy=strategy, verbose=1 if chief else 0,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if chief:
        args = {**settings, "num_workers": count, "strategy": "MultiWorkerMirroredStrategy"}
        train_mod.finish(
            model, dataclasses.replace(data, batch_size=settings["batch_size"] // count), out,
            model_name=settings["model"], store=settings["store"], history=history, seconds=seconds, args=args,
        )  # fmt: skip


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
