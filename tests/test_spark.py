"""Tests of speechlib.spark: Parquet features equal the local ones, bad files, re-runs, predict_batch_udf.

One local[2] Spark session serves the whole file (starting one takes ~10 s).
The dataset is generated here (a few tones and noises in the Speech Commands
layout, manifests written by hand) so these tests depend on no other stage.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")
sf = pytest.importorskip("soundfile")

from speechlib import audio, config, features  # noqa: E402
from speechlib import split as split_mod  # noqa: E402
from speechlib.manifest import DIGITAL_SILENCE, MANIFEST_COLUMNS  # noqa: E402

pytestmark = pytest.mark.spark

LABELS = config.KAGGLE12_LABELS
WORDS = ["yes", "no", "up", "bed"]  # "bed" is an unknown word


@pytest.fixture(scope="session")
def spark():
    """One local[2] session for the file; the UI is off, the driver binds to the loopback."""
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from speechlib import spark as spark_mod

    session = spark_mod.session("local[2]", app_name="speechlib-tests", **{"spark.ui.enabled": "false"})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _write_dataset(root: Path, split_dir: Path, *, seed: int = 0) -> None:
    """~20 clips (some shorter than 1 s, one stereo), one noise recording, manifests and split.json."""
    rng = np.random.default_rng(seed)
    rows = []
    t = np.arange(config.CLIP_SAMPLES) / config.SAMPLE_RATE
    for w, word in enumerate(WORDS):
        for s in range(5):
            speaker = f"{w:02x}{s:06x}"
            relpath = f"{word}/{speaker}_nohash_0.wav"
            n = config.CLIP_SAMPLES if s % 2 == 0 else config.CLIP_SAMPLES * 3 // 4
            wave = 0.3 * np.sin(2 * np.pi * (200 + 100 * w + 30 * s) * t[:n]) + 0.05 * rng.standard_normal(n)
            if s == 4:
                wave = np.stack([wave, 0.5 * wave], axis=1)  # a stereo file: mixed down to mono
            (root / word).mkdir(parents=True, exist_ok=True)
            sf.write(root / relpath, wave.astype(np.float32), config.SAMPLE_RATE, subtype=config.SAMPLE_SUBTYPE)
            label = word if word in config.COMMANDS else config.UNKNOWN_LABEL
            split = ("train", "train", "train", "cv", "test")[s]
            rows.append([str(root / relpath), relpath, label, LABELS.index(label), word, speaker, split, 0, 0, ""])
    noise_rel = f"{config.BACKGROUND_NOISE_DIR}/white_noise.wav"
    (root / config.BACKGROUND_NOISE_DIR).mkdir(parents=True, exist_ok=True)
    noise = 0.1 * rng.standard_normal(4 * config.SAMPLE_RATE)
    sf.write(root / noise_rel, noise.astype(np.float32), config.SAMPLE_RATE, subtype=config.SAMPLE_SUBTYPE)
    silence = LABELS.index(config.SILENCE_LABEL)
    for split, offset in (("train", 1000), ("train", 17000), ("cv", 40000), ("test", 50000)):
        rows.append(
            [
                str(root / noise_rel),
                noise_rel,
                "silence",
                silence,
                "",
                "",
                split,
                offset,
                config.CLIP_SAMPLES,
                noise_rel,
            ]
        )
    rows.append(["", "", "silence", silence, "", "", "train", 0, config.CLIP_SAMPLES, DIGITAL_SILENCE])
    table = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    split_dir.mkdir(parents=True, exist_ok=True)
    for split in config.SPLITS:
        table[table["split"] == split].to_csv(split_dir / f"{split}.csv", index=False)
    info = {"task": "kaggle12", "labels": LABELS, "seed": config.SEED, "dataset": str(root), "noise_regions": {}}
    (split_dir / "split.json").write_text(json.dumps(info))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("spark_data")
    _write_dataset(base / "raw", base / "split")
    return base / "raw", base / "split"


@pytest.fixture(scope="module")
def featurized(spark, dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from speechlib import spark as spark_mod

    out = tmp_path_factory.mktemp("spark_out") / "features"
    report = spark_mod.featurize(dataset[1], out, spark=spark, partitions=4)
    return out, report


def _local_features(row) -> np.ndarray:
    return features.compute(audio.fix_length(audio.load_row(row)), kind="logmel")


def test_features_equal_local_featurizer(featurized, dataset):
    from speechlib import spark as spark_mod

    out, report = featurized
    assert report["error"] == 0
    assert report["rows"] == report["ok"] == 25
    assert report["feature_shape"] == list(features.output_shape("logmel"))
    assert (out / "_SUCCESS").is_file()
    for split in config.SPLITS:
        manifest = split_mod.load_manifest(dataset[1], split)
        X, y, rows = spark_mod.load_parquet(out, split)
        assert X.shape == (len(manifest), *features.output_shape("logmel"))
        assert X.dtype == np.float32
        assert rows["row"].tolist() == list(range(len(manifest)))  # manifest order, like the store
        np.testing.assert_array_equal(y, manifest["label_id"].to_numpy())
        expected = np.stack([_local_features(row) for _, row in manifest.iterrows()])
        assert np.abs(X - expected).max() <= 1e-5


def test_to_store_matches_load_parquet(featurized, tmp_path):
    from speechlib import spark as spark_mod
    from speechlib.store import FeatureStore

    out, _ = featurized
    store = spark_mod.to_store(out, tmp_path / "store")
    X, y, manifest = spark_mod.load_parquet(out, "train")
    X_store, y_store = FeatureStore(tmp_path / "store").load_array("train")
    np.testing.assert_array_equal(X_store, X)
    np.testing.assert_array_equal(y_store, y)
    assert store.labels == LABELS
    assert store.manifest("train")["relpath"].tolist() == manifest["relpath"].tolist()


def test_corrupt_files_become_error_rows(spark, dataset, tmp_path):
    from speechlib import spark as spark_mod

    root, split_dir = tmp_path / "raw", tmp_path / "split"
    shutil.copytree(dataset[0], root)
    _write_dataset(root, split_dir)  # manifests pointing into the copy
    good = next((root / "yes").glob("*.wav"))
    (root / "yes" / "0000dead_nohash_0.wav").write_bytes(b"")  # empty
    (root / "yes" / "0000beef_nohash_0.wav").write_bytes(good.read_bytes()[:30])  # truncated header
    (root / "no" / "0000cafe_nohash_0.wav").write_text("not audio at all")  # not RIFF
    train = pd.read_csv(split_dir / "train.csv", keep_default_na=False)
    bad = [
        [str(root / rel), rel, word, LABELS.index(word), word, rel.split("/")[1][:8], "train", 0, 0, ""]
        for rel, word in [
            ("yes/0000dead_nohash_0.wav", "yes"),
            ("yes/0000beef_nohash_0.wav", "yes"),
            ("no/0000cafe_nohash_0.wav", "no"),
            ("no/0000f00d_nohash_0.wav", "no"),  # listed but missing
        ]
    ]
    train = pd.concat([train, pd.DataFrame(bad, columns=MANIFEST_COLUMNS)], ignore_index=True)
    train.to_csv(split_dir / "train.csv", index=False)

    report = spark_mod.featurize(split_dir, tmp_path / "out", spark=spark, partitions=3)
    assert report["rows"] == 29  # rows out = rows in
    assert report["error"] == 4 and report["ok"] == 25
    assert report["by_split"]["train"] == {"rows": len(train), "ok": len(train) - 4, "error": 4}
    named = {item["relpath"]: item["error"] for item in report["errors"]}
    assert set(named) == {row[1] for row in bad}
    for relpath, message in named.items():
        with pytest.raises(audio.AudioError) as verdict:  # the sentence of every other command, naming the file
            audio.inspect(root / relpath)
        assert message == f"{relpath}: {verdict.value.reason}"
        assert "BytesIO" not in message
    assert named["yes/0000dead_nohash_0.wav"].startswith("yes/0000dead_nohash_0.wav: empty file (0 bytes)")
    assert "file not found" in named["no/0000f00d_nohash_0.wav"]
    X, _, manifest = spark_mod.load_parquet(tmp_path / "out", "train")
    assert len(X) == len(train) - 4 and not set(manifest["relpath"]) & set(named)


def test_rerun_replaces_output(spark, dataset, tmp_path):
    from speechlib import cli
    from speechlib import spark as spark_mod

    out = tmp_path / "features"
    args = ["--split-dir", str(dataset[1]), "--out", str(out), "--partitions", "2"]
    assert cli.main(["spark-featurize", *args]) == 0
    assert cli.main(["spark", "featurize", *args]) == 0  # the same command; the same session (getOrCreate)
    total = spark.read.parquet(str(out)).count()
    assert total == spark_mod.read_report(out)["rows"] == 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]  # no temporary folder left behind


def test_out_folder_of_someones_files_survives(spark, dataset, tmp_path, capsys):
    """spark-featurize --out on a folder that is not an earlier output: exit 2 before the job, nothing deleted."""
    from speechlib import cli

    thesis = tmp_path / "thesis"
    (thesis / "figures").mkdir(parents=True)
    (thesis / "main.tex").write_text("\\chapter{Results}\n")
    (thesis / "_SUCCESS").write_text("")  # even with a marker: thesis files are not a Parquet output
    (thesis / "figures" / "plot.png").write_bytes(b"\x89PNG")
    before = sorted(p.relative_to(thesis).as_posix() for p in thesis.rglob("*"))
    args = ["spark-featurize", "--split-dir", str(dataset[1]), "--out", str(thesis), "--partitions", "2"]
    assert cli.main(args) == 2
    assert "is not an earlier Spark output of speechlib" in capsys.readouterr().err
    assert sorted(p.relative_to(thesis).as_posix() for p in thesis.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # no temporary folder either
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main([*args[:4], str(empty), "--partitions", "2"]) == 0  # an empty folder is fine


def test_predict_batch_udf_equals_local_keras(spark, featurized, tmp_path):
    keras = pytest.importorskip("keras")
    from speechlib import spark as spark_mod

    out, _ = featurized
    shape = features.output_shape("logmel")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(len(LABELS))])  # logits
    model_path = tmp_path / "tiny.keras"
    model.save(model_path)

    # One partition: one Python worker imports keras (the import, not the prediction, is the slow part).
    frame = spark.read.parquet(str(out)).coalesce(1)
    predictions = spark_mod.predict(frame, model_path, batch_size=8, spark=spark).toPandas()
    assert len(predictions) == 25
    for split in config.SPLITS:
        X, _, manifest = spark_mod.load_parquet(out, split)
        local = np.asarray(keras.ops.softmax(model.predict(X, verbose=0)), np.float32)
        got = predictions[predictions["split"] == split].sort_values("row")
        assert got["row"].tolist() == manifest["row"].tolist()
        np.testing.assert_array_equal(got["prediction"].to_numpy(), local.argmax(axis=1))
        np.testing.assert_allclose(np.stack(got["probabilities"].to_numpy()), local, atol=1e-5)


def test_spark_predict_command_writes_predictions(spark, featurized, tmp_path, capsys):
    """speechlib spark predict: Parquet of prediction + probabilities per ok row; a foreign --out is refused."""
    keras = pytest.importorskip("keras")
    from speechlib import cli

    out, _ = featurized
    keras.utils.set_random_seed(0)
    layers = [keras.Input(features.output_shape("logmel")), keras.layers.Flatten(), keras.layers.Dense(3)]
    model_path = tmp_path / "tiny_cli.keras"  # a new name: addFile refuses another file of a shipped name
    keras.Sequential(layers).save(model_path)
    args = ["spark", "predict", "--features-dir", str(out), "--model", str(model_path), "--batch-size", "8"]
    preds = tmp_path / "preds"
    assert cli.main([*args, "--out", str(preds)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote predictions to {preds}"
    got = pd.read_parquet(preds)
    assert len(got) == 25 and set(got["prediction"]) <= {0, 1, 2} and "features" not in got.columns
    np.testing.assert_allclose(np.stack(got["probabilities"].to_numpy()).sum(axis=1), 1.0, atol=1e-5)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me\n")
    assert cli.main([*args, "--out", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("speechlib: error: ") and "is not an earlier Spark output of speechlib" in err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_paths_and_uris():
    from speechlib import spark as spark_mod

    assert spark_mod._uri_path("file:/a/b/") == "/a/b"
    assert spark_mod._uri_path("file:///a/b") == "/a/b"
    assert spark_mod._uri_path("hdfs://namenode:8020/data/sc") == "/data/sc"
    assert spark_mod._uri_path("s3a://bucket/data") == "/data"
    assert spark_mod._to_uri("hdfs:///data") == "hdfs:///data"
    assert spark_mod._to_uri("/tmp/x").startswith("file:///")


def test_predict_applies_bundle_normalization(spark, featurized, tmp_path):
    """A train_keras.py bundle expects normalised features: Spark's predictions equal the local Predictor's."""
    keras = pytest.importorskip("keras")
    from speechlib import inference
    from speechlib import spark as spark_mod

    out, _ = featurized
    shape = features.output_shape("logmel")
    X_train, _, _ = spark_mod.load_parquet(out, "train")
    stats = features.fit_normalizer(X_train)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(len(LABELS))])  # logits
    bundle = inference.save_bundle(
        model, tmp_path / "bundle", kind="logmel", params=features.default_params("logmel"),
        normalization=stats, labels=LABELS,
    )  # fmt: skip
    assert spark_mod.bundle_normalization(tmp_path / "bundle") is not None
    assert spark_mod.bundle_normalization(tmp_path / "tiny.keras") is None  # no sidecar: features as stored

    frame = spark.read.parquet(str(out)).where("split = 'test'").coalesce(1)
    got = spark_mod.predict(frame, tmp_path / "bundle", batch_size=8, spark=spark).toPandas().sort_values("row")
    X_test, _, manifest = spark_mod.load_parquet(out, "test")
    expected = np.asarray(keras.ops.softmax(model.predict(features.normalize(X_test, stats), verbose=0)), np.float32)
    assert got["row"].tolist() == manifest["row"].tolist()
    np.testing.assert_array_equal(got["prediction"].to_numpy(), expected.argmax(axis=1))
    np.testing.assert_allclose(np.stack(got["probabilities"].to_numpy()), expected, atol=1e-5)
    raw = spark_mod.predict(frame, bundle.path, batch_size=8, spark=spark, normalization=None).toPandas()
    assert not np.allclose(np.stack(raw.sort_values("row")["probabilities"].to_numpy()), expected, atol=1e-3)


def test_to_store_fits_normalization(featurized, tmp_path):
    from speechlib import spark as spark_mod

    out, _ = featurized
    store = spark_mod.to_store(out, tmp_path / "store")
    X, _, _ = spark_mod.load_parquet(out, "train")
    np.testing.assert_allclose(store.normalization["mean"], features.fit_normalizer(X)["mean"], rtol=1e-5)


def test_official_test_set_layout_folders_are_read(spark, tmp_path):
    """_unknown_ and _silence_ start with "_", which Hadoop's listing hides: their clips must still be read."""
    import soundfile as sf

    from speechlib import spark as spark_mod

    root = tmp_path / "test_set"
    rng = np.random.default_rng(0)
    names = ["yes/0a0b0c0d_nohash_0.wav", "_unknown_/bed_0a0b0c0e_nohash_0.wav.wav", "_silence_/1.wav"]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, rng.uniform(-0.1, 0.1, config.CLIP_SAMPLES), config.SAMPLE_RATE, subtype="PCM_16")
    rows = [
        [str(root / rel), rel, label, LABELS.index(label), word, "", "train", 0, 0, ""]
        for rel, label, word in zip(names, ["yes", "unknown", "silence"], ["yes", "bed", ""], strict=True)
    ]
    split_dir = tmp_path / "split"
    split_dir.mkdir()
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(split_dir / "train.csv", index=False)
    info = {"task": "kaggle12", "labels": LABELS, "dataset": str(root), "noise_regions": {}}
    (split_dir / "split.json").write_text(json.dumps(info))
    report = spark_mod.featurize(split_dir, tmp_path / "out", spark=spark, splits=["train"], partitions=2)
    assert report["error"] == 0 and report["ok"] == 3, report["errors"]
    X, _, manifest = spark_mod.load_parquet(tmp_path / "out", "train")
    assert sorted(manifest["relpath"]) == sorted(names)
    local = [features.compute(audio.fix_length(audio.load(root / rel))) for rel in manifest["relpath"]]
    assert np.abs(X - np.stack(local)).max() <= 1e-5


def test_session_keeps_spark_and_worker_output_out_of_the_users_stderr(tmp_path):
    """Spark's banner, log4j warnings and the workers' start-up lines go to spark.log, not to the caller's stderr."""
    import subprocess

    script = (
        "from speechlib import spark\n"
        "s = spark.session('local[1]', **{'spark.ui.enabled': 'false'})\n"
        "say = lambda x: (__import__('sys').stderr.write('worker\\n'), x)[1]\n"
        "rows = s.sparkContext.parallelize(range(4), 2).map(say).collect()\n"
        "assert rows == [0, 1, 2, 3]\n"
        "import sys; print('python stderr still works', file=sys.stderr)\n"
        "s.stop()\n"
    )
    log = tmp_path / "spark.log"
    env = {**os.environ, "SPEECHLIB_SPARK_LOG": str(log), "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == ["python stderr still works"], done.stderr
    text = log.read_text()
    assert "log4j" in text and "worker" in text, text[-2000:]
