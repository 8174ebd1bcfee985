"""Tests for speechlib.evaluate: metrics against hand-computed values and scikit-learn, tables, timing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from speechlib import evaluate, models

LABELS = ["yes", "no", "up"]
# A 3-class toy example. Rows of the confusion matrix (true label) x columns (prediction):
#   yes: [2, 1, 1]    no: [1, 2, 0]    up: [0, 1, 2]
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1]


def test_metrics_on_hand_computed_example():
    m = evaluate.classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert m["confusion_matrix"] == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
    assert m["accuracy"] == pytest.approx(6 / 10)
    # precision = correct / predicted as the class (column sums 3, 4, 3)
    precision = {"yes": 2 / 3, "no": 2 / 4, "up": 2 / 3}
    # recall = correct / true members of the class (row sums 4, 3, 3)
    recall = {"yes": 2 / 4, "no": 2 / 3, "up": 2 / 3}
    f1 = {"yes": 4 / 7, "no": 4 / 7, "up": 2 / 3}  # 2PR / (P + R)
    for label in LABELS:
        assert m["per_class"][label]["precision"] == pytest.approx(precision[label])
        assert m["per_class"][label]["recall"] == pytest.approx(recall[label])
        assert m["per_class"][label]["f1"] == pytest.approx(f1[label])
    assert [m["per_class"][label]["support"] for label in LABELS] == [4, 3, 3]
    assert m["macro_precision"] == pytest.approx(11 / 18)
    assert m["macro_recall"] == pytest.approx(11 / 18)
    assert m["macro_f1"] == pytest.approx(38 / 63)
    assert m["num_samples"] == 10
    assert m["labels"] == LABELS


def test_label_names_give_the_same_metrics():
    names_true = [LABELS[i] for i in Y_TRUE]
    names_pred = np.array([LABELS[i] for i in Y_PRED])
    assert evaluate.classification_metrics(names_true, names_pred, LABELS) == evaluate.classification_metrics(
        Y_TRUE, Y_PRED, LABELS
    )


def test_metrics_agree_with_sklearn_report():
    from sklearn.metrics import classification_report

    rng = np.random.default_rng(0)
    labels = [f"c{i}" for i in range(6)]
    y_true = rng.integers(0, 6, size=200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 6, size=200))
    m = evaluate.classification_metrics(y_true, y_pred, labels)
    report = classification_report(y_true, y_pred, target_names=labels, output_dict=True, zero_division=0)
    assert m["accuracy"] == pytest.approx(report["accuracy"])
    assert m["macro_f1"] == pytest.approx(report["macro avg"]["f1-score"])
    assert m["weighted_f1"] == pytest.approx(report["weighted avg"]["f1-score"])
    for label in labels:
        assert m["per_class"][label]["precision"] == pytest.approx(report[label]["precision"])
        assert m["per_class"][label]["recall"] == pytest.approx(report[label]["recall"])
        assert m["per_class"][label]["support"] == report[label]["support"]


def test_absent_and_never_predicted_classes():
    labels = ["yes", "no", "up", "down"]  # "down" never occurs; "up" is never predicted
    m = evaluate.classification_metrics([0, 1, 2], [0, 1, 1], labels)
    assert m["per_class"]["up"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_class"]["down"]["support"] == 0
    assert np.asarray(m["confusion_matrix"]).shape == (4, 4)


def test_bad_labels_are_reported():
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        evaluate.classification_metrics([0, 3], [0, 1], LABELS)
    with pytest.raises(ValueError, match="not in `labels`"):
        evaluate.classification_metrics(["yes", "maybe"], ["yes", "no"], LABELS)
    with pytest.raises(ValueError, match="differ in length"):
        evaluate.classification_metrics([0, 1], [0], LABELS)


def test_confusion_matrix_dataframe():
    cm = evaluate.confusion_matrix(Y_TRUE, Y_PRED, LABELS)
    assert list(cm.index) == LABELS and list(cm.columns) == LABELS
    assert cm.index.name == "true" and cm.columns.name == "predicted"
    assert cm.loc["yes", "up"] == 1 and cm.loc["up", "no"] == 1
    normalized = evaluate.confusion_matrix(Y_TRUE, Y_PRED, LABELS, normalize="true")
    np.testing.assert_allclose(normalized.sum(axis=1), 1.0)
    assert normalized.loc["yes", "yes"] == pytest.approx(0.5)


def test_per_class_table():
    table = evaluate.per_class_table(evaluate.classification_metrics(Y_TRUE, Y_PRED, LABELS))
    assert list(table.index) == LABELS
    assert list(table.columns) == ["precision", "recall", "f1", "support"]


def test_save_and_load_metrics(tmp_path):
    m = evaluate.classification_metrics(Y_TRUE, Y_PRED, LABELS)
    m["extra"] = {"seconds": np.float32(1.5), "counts": np.arange(3)}
    path = evaluate.save_metrics(tmp_path / "out" / "metrics.json", m)
    raw = json.loads(path.read_text())
    assert raw["accuracy"] == pytest.approx(0.6)
    assert raw["extra"] == {"seconds": 1.5, "counts": [0, 1, 2]}
    assert evaluate.load_metrics(path)["confusion_matrix"] == m["confusion_matrix"]
    with pytest.raises(FileNotFoundError, match="no metrics file"):
        evaluate.load_metrics(tmp_path / "missing.json")


def test_report_row():
    m = evaluate.classification_metrics(Y_TRUE, Y_PRED, LABELS)
    keras_model = models.build("res8_narrow", num_classes=3)
    row = evaluate.report_row("res8_narrow", keras_model, m, seconds_per_epoch=2.0, ms_per_clip=1.25)
    assert row == {
        "model": "res8_narrow",
        "accuracy": pytest.approx(0.6),
        "macro_precision": pytest.approx(11 / 18),
        "macro_recall": pytest.approx(11 / 18),
        "macro_f1": pytest.approx(38 / 63),
        "params": models.count_params(keras_model),
        "seconds_per_epoch": 2.0,
        "ms_per_clip": 1.25,
        "num_samples": 10,
    }
    assert evaluate.report_row("majority", models.build("majority"), m)["params"] is None
    assert evaluate.report_row("x", None, m, params=12)["params"] == 12


def test_time_inference_keras_and_sklearn():
    keras_model = models.build("ds_cnn_s", num_classes=3)
    x_one = np.zeros(models.LOGMEL_SHAPE, dtype=np.float32)
    ms = evaluate.time_inference(keras_model, x_one, repeats=3, warmup=1)
    assert ms > 0 and np.isfinite(ms)
    baseline = models.build("majority").fit(np.zeros((4, *models.LOGMEL_SHAPE), np.float32), [0, 1, 1, 2])
    assert evaluate.time_inference(baseline, x_one, repeats=3, warmup=1, one_core=False) > 0
    with pytest.raises(ValueError, match="repeats"):
        evaluate.time_inference(baseline, x_one, repeats=0)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_pinning_restores_affinity():
    before = os.sched_getaffinity(0)
    with evaluate.pinned_to_one_core() as core:
        if core is not None:
            assert os.sched_getaffinity(0) == {core}
            assert core in before
    assert os.sched_getaffinity(0) == before


def test_count_macs_by_hand():
    import keras

    inputs = keras.Input((10, 8))
    x = keras.layers.Reshape((10, 8, 1))(inputs)
    x = keras.layers.Conv2D(4, (3, 3), padding="same")(x)  # 10*8 positions * (3*3*1*4) = 2880
    x = keras.layers.DepthwiseConv2D((3, 3), strides=2, padding="same")(x)  # 5*4 positions * (3*3*4*1) = 720
    x = keras.layers.BatchNormalization()(x)  # element-wise: not counted
    x = keras.layers.Reshape((5, 16))(x)
    x = keras.layers.GRU(6)(x)  # 5 steps * (16*18 + 6*18) = 1980
    outputs = keras.layers.Dense(3)(x)  # 6*3 = 18
    inner = keras.Model(inputs, outputs)
    wrapped_in = keras.Input((10, 8))
    wrapped = keras.Model(wrapped_in, inner(wrapped_in))  # a nested model counts its layers
    assert evaluate.count_macs(inner) == 2880 + 720 + 1980 + 18
    assert evaluate.count_macs(wrapped) == evaluate.count_macs(inner)
    assert evaluate.count_macs(models.build("majority")) is None
    # cnn2d: two convolutions and two dense layers, from the layer plan
    cnn = models.build("cnn2d")
    assert evaluate.count_macs(cnn) == 30 * 30 * 3 * 3 * 32 + 28 * 28 * 3 * 3 * 32 * 64 + 12544 * 128 + 128 * 12


def test_wilson_interval_matches_the_closed_form():
    """50 of 100: 0.5 ± 1.96·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), by hand; 0 of 10 starts at 0."""
    from speechlib import evaluate

    assert evaluate.wilson_interval(50, 100) == pytest.approx([0.4038, 0.5962], abs=1e-4)
    low, high = evaluate.wilson_interval(0, 10)
    assert low == 0.0 and 0.25 < high < 0.3
    assert evaluate.wilson_interval(0, 0) == [0.0, 1.0]


def test_paired_comparison_counts_the_discordant_clips_and_brackets_the_difference():
    rng = np.random.default_rng(0)
    b = rng.random(600) < 0.8
    a = b.copy()
    flip = np.flatnonzero(~b)[:60]  # a also gets 60 of b's errors right: +0.1, all discordant clips a's
    a[flip] = True
    out = evaluate.paired_comparison(a, b, seed=1)
    assert out["clips"] == 600 and out["a_only"] == 60 and out["b_only"] == 0
    assert out["difference"] == pytest.approx(0.1, abs=1e-4)
    low, high = out["ci95"]
    assert low < 0.1 < high and low > 0.07  # 60 one-sided discordant clips: clearly apart from zero
    assert out["p_value"] < 1e-10  # exact McNemar: 60 of 60 one way
    # the same classifier against itself: no difference, no discordant clip, p = 1
    same = evaluate.paired_comparison(b, b)
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["p_value"] == 1.0
    # a coin's worth of disagreement is not a difference
    c = b.copy()
    swap = rng.choice(600, 80, replace=False)
    c[swap] = ~c[swap]
    d = b.copy()
    d[rng.choice(600, 80, replace=False)] ^= True
    out = evaluate.paired_comparison(c, d, seed=2)
    assert out["ci95"][0] < 0 < out["ci95"][1] and out["p_value"] > 0.05, out  # not told apart
    with pytest.raises(ValueError, match="equal"):
        evaluate.paired_comparison(a, b[:10])


def test_accuracy_summary_names_its_figures_by_prefix():
    out = evaluate.accuracy_summary({"accuracy": 0.5, "macro_f1": 0.41234, "num_samples": 100}, "test")
    assert out == {"test_accuracy": 0.5, "test_accuracy_ci95": evaluate.wilson_interval(50, 100),
                   "test_macro_f1": 0.4123, "test_clips": 100}  # fmt: skip
