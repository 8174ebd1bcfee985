"""speechlib spark train on a real Spark cluster on 127.0.0.1: executors are separate processes.

``local-cluster[2,1,1024]`` starts a master and two workers with one executor
each (separate JVMs, their Python workers separate processes), so the two
TensorFlow workers of the barrier stage exchange gradients over the network.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import pytest

pytest.importorskip("pyspark")

from speechlib import inference, train

pytestmark = pytest.mark.spark

MODEL = "ds_cnn_s"
EPOCHS = 20
BATCH = 32  # the global batch: 16 rows a worker
RECIPE = train.Recipe(shift=False, noise=False, gain=False)  # stored features + SpecAugment: quick


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of two one-core executors, the driver on the loopback; stopped at the end."""
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from speechlib import spark as spark_mod

    session = spark_mod.session(
        "local-cluster[2,1,1024]", app_name="speechlib-train-tests",
        **{"spark.ui.enabled": "false", "spark.python.worker.reuse": "false"},
    )  # fmt: skip
    session.sparkContext.setLogLevel("OFF")
    yield session
    session.stop()


def test_two_workers_train_and_a_killed_worker_resumes(cluster, small_store, tmp_path):
    """Two TensorFlow workers in a barrier stage; one is killed after the first checkpoint; the stage is
    run again, resumes from the chief's backup and ends with every epoch logged and a complete bundle."""
    from speechlib import spark_train

    out = tmp_path / "spark"
    result = {}

    def run():
        result["metrics"] = spark_train.train(
            small_store, out, num_workers=2, model=MODEL, epochs=EPOCHS, batch_size=BATCH, recipe=RECIPE,
            spark=cluster,
        )  # fmt: skip

    thread = threading.Thread(target=run)
    thread.start()
    backup = out / train.BACKUP_DIR / train.BACKUP_FILE
    deadline = time.monotonic() + 300
    while not backup.is_file() and time.monotonic() < deadline:  # after the first epoch
        time.sleep(0.2)
    assert backup.is_file(), "no checkpoint was written"
    killed = json.loads((out / spark_train.WORKERS_DIR / "1.json").read_text())["pid"]
    os.kill(killed, signal.SIGKILL)
    thread.join(600)
    metrics = result["metrics"]
    assert json.loads((out / spark_train.WORKERS_DIR / "1.json").read_text())["pid"] != killed  # a new attempt
    log = train.read_log(out)
    assert list(log["epoch"]) == list(range(EPOCHS)) and metrics["epochs_run"] == EPOCHS
    assert "resuming from" in metrics["output"]
    addresses = {json.loads((out / spark_train.WORKERS_DIR / f"{i}.json").read_text())["address"] for i in (0, 1)}
    assert len(addresses) == 2  # two TensorFlow servers, exchanging gradients over the network
    bundle = inference.load_bundle(out / "model.keras")  # what speechlib evaluate / predict / serve load
    assert bundle.meta["test_accuracy"] == metrics["test"]["accuracy"] and (out / inference.WAVEFORM_FILE).is_file()
    chance = 1 / len(bundle.labels)
    assert metrics["test"]["accuracy"] >= 2 * chance, metrics["test"]["accuracy"]  # the two workers learned together
