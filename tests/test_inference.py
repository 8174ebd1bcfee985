"""Tests for speechlib.inference and the evaluate / predict / submit commands.

The model is an untrained linear model with large random logits (no training needed to
test saving, loading, the raw-waveform export or the commands); the audio is
generated here in the official test-set layout, with one corrupt file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from speechlib import cli, config, features, inference, models

SPEAKERS = ["0a7c2a8d", "1b2c3d4e", "2c3d4e5f"]


def _clip(rng, n=config.CLIP_SAMPLES):
    t = np.arange(n) / config.SAMPLE_RATE
    tone = np.sin(2 * np.pi * rng.uniform(200, 3000) * t) * rng.uniform(0.05, 0.5)
    return (tone + rng.normal(0, 0.01, n)).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A test-set-layout folder: yes/, no/, _unknown_/, _silence_/, one corrupt and one short clip."""
    root = tmp_path_factory.mktemp("testset")
    rng = np.random.default_rng(0)
    for word in ("yes", "no"):
        (root / word).mkdir()
        for s in SPEAKERS:
            sf.write(root / word / f"{s}_nohash_0.wav", _clip(rng), config.SAMPLE_RATE, subtype="PCM_16")
    (root / "_unknown_").mkdir()
    sf.write(root / "_unknown_" / f"bed_{SPEAKERS[0]}_nohash_0.wav", _clip(rng, 12000), config.SAMPLE_RATE)
    (root / "_silence_").mkdir()
    sf.write(root / "_silence_" / "1.wav", np.zeros(config.CLIP_SAMPLES, np.float32), config.SAMPLE_RATE)
    (root / "yes" / "deadbeef_nohash_0.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # corrupt
    return root


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory, folder):
    """A saved bundle: an untrained linear model whose random logits are large (confident, input-dependent)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((101, config.N_MELS), name="features"),
            keras.layers.Flatten(),
            keras.layers.Dense(
                len(config.KAGGLE12_LABELS), kernel_initializer=keras.initializers.RandomNormal(0, 0.05)
            ),
        ],
        name="linear",
    )
    rng = np.random.default_rng(1)
    X = features.compute_batch(np.stack([_clip(rng) for _ in range(16)]))
    stats = features.fit_normalizer(X)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    inference.save_bundle(
        model, path, kind="logmel", params={}, normalization=stats, labels=config.KAGGLE12_LABELS, model_name="linear"
    )
    return path


def test_bundle_reloads_with_identical_predictions(bundle_path):
    rng = np.random.default_rng(2)
    waveforms = np.stack([_clip(rng) for _ in range(6)])
    first = inference.Predictor.load(bundle_path)
    again = inference.Predictor.load(bundle_path.parent)  # the folder works too
    p1, p2 = first.predict_waveforms(waveforms), again.predict_waveforms(waveforms)
    assert p1.shape == (6, 12) and np.allclose(p1.sum(1), 1, atol=1e-5)
    assert np.array_equal(p1, p2)
    meta = json.loads(bundle_path.with_suffix(".json").read_text())
    for key in ("kind", "params", "normalization", "labels", "task", "speechlib_version", "pad_position"):
        assert key in meta
    assert meta["params"]["n_mels"] == config.N_MELS and meta["input_shape"] == [101, 40]


def test_predictions_follow_the_training_features(bundle_path):
    """The predictor's features are exactly fix_length(center) -> features.compute -> normalize."""
    predictor = inference.Predictor.load(bundle_path)
    rng = np.random.default_rng(3)
    short = _clip(rng, 9000)
    expected = features.normalize(
        features.compute(np.pad(short, (3500, 3500))), predictor.bundle.normalization
    )  # 7000 zeros split evenly around the clip
    assert np.array_equal(predictor.features([short])[0], expected)


def test_logmel_layer_matches_numpy_features():
    assert inference.LogMel is models.LogMel  # one class, registered once as speechlib>LogMel
    layer = models.LogMel({})
    rng = np.random.default_rng(4)
    waveforms = np.stack([_clip(rng), np.zeros(config.CLIP_SAMPLES, np.float32)])
    ours = np.asarray(layer(waveforms))
    assert ours.shape == (2, 101, 40)
    np.testing.assert_allclose(ours, features.compute_batch(waveforms), atol=2e-3)


def test_waveform_export_agrees_with_the_two_step_path(bundle_path, tmp_path):
    import keras

    predictor = inference.Predictor.load(bundle_path)
    inference.export_waveform_model(predictor.bundle, tmp_path / "wave.keras")
    inference.load_bundle(bundle_path)  # registers the layers, as a fresh process would
    wave = keras.saving.load_model(tmp_path / "wave.keras")
    rng = np.random.default_rng(5)
    waveforms = np.stack([_clip(rng) for _ in range(8)])
    check = inference.check_waveform_model(wave, predictor, waveforms)
    assert check["ok"], check
    assert check["max_abs_diff"] < 1e-3 and check["argmax_agreement"] == 1.0
    probs = predictor.predict_waveforms(waveforms)
    assert probs.max(1).min() > 0.2  # the comparison is not between two uniform outputs


def test_label_mapping():
    labels = config.KAGGLE12_LABELS
    assert inference.label_for("yes", "clip", labels) == "yes"
    assert inference.label_for("bed", "clip", labels) == "unknown"
    assert inference.label_for("", "silence", labels) == "silence"
    assert inference.label_for("bed", "clip", ["yes", "no"]) is None


def test_predict_reports_the_corrupt_file_and_prints_the_rest(bundle_path, folder, capsys):
    good = folder / "yes" / f"{SPEAKERS[0]}_nohash_0.wav"
    bad = folder / "yes" / "deadbeef_nohash_0.wav"
    code = cli.main(["predict", "--model", str(bundle_path), str(good), str(bad), "--top-k", "2"])
    out, err = capsys.readouterr()
    assert code == 1
    assert str(good) in out and len(out.strip().splitlines()) == 1 and out.count(",") == 1
    assert f"{bad}: error: truncated: the file ends (16 bytes) before its audio data begins;" in err


def test_evaluate_writes_metrics_and_skips_the_corrupt_file(bundle_path, folder, tmp_path, capsys):
    out_dir = tmp_path / "eval"
    code = cli.main(["evaluate", "--model", str(bundle_path), "--data", str(folder), "--out", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 0 and "accuracy" in out
    assert "deadbeef_nohash_0.wav" in err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    for key in ("accuracy", "per_class", "confusion_matrix", "labels", "skipped"):
        assert key in metrics
    assert metrics["num_samples"] == 8  # 3 yes + 3 no + 1 unknown + 1 silence
    assert metrics["per_class"]["yes"]["support"] == 3 and metrics["per_class"]["unknown"]["support"] == 1
    assert metrics["per_class"]["silence"]["support"] == 1
    assert any("deadbeef" in s["path"] for s in metrics["skipped"])
    assert (out_dir / "predictions.csv").is_file() and (out_dir / "confusion_matrix.png").is_file()


def test_submit_writes_one_row_per_file(bundle_path, folder, tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "submission.csv"
    code = cli.main(["submit", "--model", str(bundle_path), "--data", str(folder), "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 0 and "deadbeef" in err
    table = pd.read_csv(out)
    assert list(table.columns) == ["fname", "label"]
    assert len(table) == len(list(folder.rglob("*.wav"))) == 9
    assert set(table["label"]) <= set(config.KAGGLE12_LABELS)
    assert table.set_index("fname").loc["yes/deadbeef_nohash_0.wav", "label"] == inference.SUBMISSION_FALLBACK


def test_load_bundle_without_sidecar_says_what_to_do(tmp_path, bundle_path):
    import shutil

    shutil.copy(bundle_path, tmp_path / "model.keras")
    with pytest.raises(FileNotFoundError, match="save_bundle"):
        inference.load_bundle(tmp_path / "model.keras")


def test_submit_accounts_for_every_wav_entry(bundle_path, tmp_path, capsys):
    """A broken symlink and a folder named x.wav get a row and a listed reason; the counts agree."""
    import pandas as pd

    data = tmp_path / "audio"
    data.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        sf.write(data / f"clip_{i}.wav", _clip(rng), config.SAMPLE_RATE, subtype="PCM_16")
    (data / "gone.wav").symlink_to(data / "nowhere.wav")
    (data / "x.wav").mkdir()
    (data / "empty.wav").write_bytes(b"")
    out = tmp_path / "sub.csv"
    code = cli.main(["submit", "--model", str(bundle_path), "--data", str(data), "--out", str(out)])
    printed, err = capsys.readouterr()
    assert code == 0
    table = pd.read_csv(out)
    listed = [line for line in err.splitlines() if line.startswith("unreadable")]
    assert len(table) == 6 == 3 + len(listed)
    assert sorted(table["fname"]) == ["clip_0.wav", "clip_1.wav", "clip_2.wav", "empty.wav", "gone.wav", "x.wav"]
    assert any("gone.wav: broken symbolic link" in line for line in listed)
    assert any("x.wav: a folder, not an audio file" in line for line in listed)
    assert any("empty.wav: empty file (0 bytes)" in line for line in listed)
    assert "6 rows written" in printed and "3 predicted, 3 unreadable" in printed


def test_submit_and_evaluate_refuse_to_replace_someones_files(bundle_path, folder, tmp_path):
    thesis = tmp_path / "thesis.csv"
    thesis.write_text("chapter,page\n1,3\n")
    assert cli.main(["submit", "--model", str(bundle_path), "--data", str(folder), "--out", str(thesis)]) == 2
    assert thesis.read_text() == "chapter,page\n1,3\n"
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "draft.md").write_text("mine\n")
    assert cli.main(["evaluate", "--model", str(bundle_path), "--data", str(folder), "--out", str(notes)]) == 2
    assert sorted(p.name for p in notes.iterdir()) == ["draft.md"]
