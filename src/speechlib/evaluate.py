"""Evaluation: metrics, confusion matrices, cost figures and the results table.

Accuracy first, then cost: every model of the course is judged by the same
numbers, gathered into one tidy row per model by :func:`report_row`.

Metrics
    :func:`classification_metrics` (accuracy, macro and per-class
    precision/recall/F1 from scikit-learn, confusion matrix),
    :func:`confusion_matrix` (a labelled DataFrame), :func:`save_metrics`,
    :func:`load_metrics`.
Cost
    :func:`time_inference` (milliseconds per clip at batch size 1 on one CPU
    core), :func:`limit_tf_threads`, :func:`count_macs` (multiply-adds per
    clip), ``speechlib.models.count_params``.
Table
    :func:`report_row`.

Figures (the confusion matrix, accuracy against cost) live in ``speechlib.plot``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics

from speechlib import models as _models
from speechlib._json import jsonable as _jsonable


def _as_ids(y: Sequence, labels: Sequence[str], what: str) -> np.ndarray:
    """Label ids (N,) int64 from ids or label names."""
    y = np.asarray(y)
    if y.dtype.kind in "iu":
        ids = y.astype(np.int64)
        bad = (ids < 0) | (ids >= len(labels))
        if bad.any():
            raise ValueError(
                f"{what} holds label ids outside 0..{len(labels) - 1}: {sorted(set(ids[bad].tolist()))[:10]}; "
                "pass the label list the model was trained with"
            )
        return ids
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(v) for v in y.tolist() if v not in index})
    if unknown:
        raise ValueError(f"{what} holds labels that are not in `labels` {list(labels)}: {unknown[:10]}")
    return np.array([index[v] for v in y.tolist()], dtype=np.int64)


def classification_metrics(y_true: Sequence, y_pred: Sequence, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1 and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (N,)
        Label ids (int, index into ``labels``) or label names (str).
    labels : sequence of str
        Every class, in label-id order (e.g. ``config.KAGGLE12_LABELS``).
        Classes absent from both ``y_true`` and ``y_pred`` still get a row
        (support 0, scores 0).

    Returns
    -------
    dict
        ``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1``,
        ``weighted_f1`` (floats in [0, 1]); ``num_samples``; ``labels``;
        ``per_class``: ``{label: {"precision", "recall", "f1", "support"}}``;
        ``confusion_matrix``: list of lists, rows = true label, columns =
        predicted label, in ``labels`` order. JSON-serialisable as is.
        Precision of a class never predicted is 0 (scikit-learn's
        ``zero_division=0``).
    """
    labels = [str(label) for label in labels]
    t = _as_ids(y_true, labels, "y_true")
    p = _as_ids(y_pred, labels, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    ids = list(range(len(labels)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(t, p, labels=ids, zero_division=0)
    macro = metrics.precision_recall_fscore_support(t, p, labels=ids, average="macro", zero_division=0)
    weighted_f1 = metrics.f1_score(t, p, labels=ids, average="weighted", zero_division=0)
    return {
        "accuracy": float(metrics.accuracy_score(t, p)),
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "macro_f1": float(macro[2]),
        "weighted_f1": float(weighted_f1),
        "num_samples": int(t.shape[0]),
        "labels": labels,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": metrics.confusion_matrix(t, p, labels=ids).tolist(),
    }


def wilson_interval(correct: int, total: int, *, confidence: float = 0.95) -> list[float]:
    """Wilson score interval of an accuracy ``correct / total`` (scipy's ``binomtest``), as ``[low, high]``.

    Parameters
    ----------
    correct, total : int
        Clips right, clips scored (``total`` 0 gives ``[0.0, 1.0]``).
    confidence : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    list of float
        ``[low, high]``, rounded to 4 decimals.
    """
    if total == 0:
        return [0.0, 1.0]
    ci = stats.binomtest(int(correct), int(total)).proportion_ci(confidence_level=confidence, method="wilson")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def accuracy_summary(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The figures a benchmark row reports from one split's metrics (``accuracy``, ``macro_f1``, ``num_samples``):
    ``{prefix}_accuracy``, ``{prefix}_accuracy_ci95`` (:func:`wilson_interval`), ``{prefix}_macro_f1`` and
    ``{prefix}_clips``, rounded to 4 decimals."""
    total = int(metrics["num_samples"])
    correct = round(float(metrics["accuracy"]) * total)
    return {
        f"{prefix}_accuracy": round(float(metrics["accuracy"]), 4),
        f"{prefix}_accuracy_ci95": wilson_interval(correct, total),
        f"{prefix}_macro_f1": round(float(metrics["macro_f1"]), 4),
        f"{prefix}_clips": total,
    }


def paired_comparison(correct_a: Any, correct_b: Any, *, resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Two classifiers scored on the *same* clips: the accuracy difference ``a - b``, its interval, McNemar's test.

    Pairing removes the clips' own difficulty from the comparison, so it
    separates two models far better than their two accuracy intervals do.

    Parameters
    ----------
    correct_a, correct_b : array-like of bool, same length
        Whether each clip was right, for model a and model b, in the same clip order.
    resamples : int
        Bootstrap resamples of the clips (the 95% percentile interval of the difference).
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict
        ``difference`` (accuracy of a minus b), ``ci95`` (``[low, high]``),
        ``a_only`` and ``b_only`` (clips only a, only b got right) and
        ``p_value`` (exact McNemar: a two-sided binomial test on those
        discordant clips; 1.0 when there are none), ``clips``; rounded to 4 decimals.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired_comparison needs two equal, non-empty 1-D arrays; got {a.shape} and {b.shape}")
    diff = a.astype(np.int8) - b.astype(np.int8)
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(int(resamples))])
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    discordant = a_only + b_only
    p = stats.binomtest(a_only, discordant).pvalue if discordant else 1.0
    return {
        "difference": round(float(diff.mean()), 4),
        "ci95": [round(float(np.quantile(means, 0.025)), 4), round(float(np.quantile(means, 0.975)), 4)],
        "a_only": a_only,
        "b_only": b_only,
        "p_value": round(float(p), 4),
        "clips": len(a),
    }


def per_class_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """The ``per_class`` part of :func:`classification_metrics` as a DataFrame (one row per label)."""
    table = pd.DataFrame.from_dict(metrics["per_class"], orient="index")
    table.index.name = "label"
    return table[["precision", "recall", "f1", "support"]]


def confusion_matrix(
    y_true: Sequence, y_pred: Sequence, labels: Sequence[str], *, normalize: str | None = None
) -> pd.DataFrame:
    """Confusion matrix with label names: rows = true label, columns = predicted label.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (N,)
        Label ids or label names.
    labels : sequence of str
        Every class, in label-id order.
    normalize : {None, "true", "pred", "all"}, keyword-only
        As scikit-learn: None gives counts (int); "true" divides each row by
        its total (so the diagonal is per-class recall).
    """
    labels = [str(label) for label in labels]
    t = _as_ids(y_true, labels, "y_true")
    p = _as_ids(y_pred, labels, "y_pred")
    cm = metrics.confusion_matrix(t, p, labels=list(range(len(labels))), normalize=normalize)
    return pd.DataFrame(cm, index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="predicted"))


def save_metrics(path: str | Path, metrics: dict[str, Any]) -> Path:
    """Write ``metrics`` (e.g. from :func:`classification_metrics`) as indented JSON.

    numpy scalars and arrays become plain numbers and lists; parent folders
    are created. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(metrics), indent=2, allow_nan=True) + "\n", encoding="utf-8")
    return path


def load_metrics(path: str | Path) -> dict[str, Any]:
    """Read a metrics JSON written by :func:`save_metrics`."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no metrics file here; write one with evaluate.save_metrics") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); rewrite it with evaluate.save_metrics") from None


def report_row(
    name: str,
    model: Any,
    metrics: dict[str, Any],
    *,
    params: int | None = None,
    seconds_per_epoch: float | None = None,
    ms_per_clip: float | None = None,
) -> dict[str, Any]:
    """One tidy row of the results table (a flat dict; ``pandas.DataFrame(rows)`` makes the table).

    Parameters
    ----------
    name : str
        The model's name in the table, e.g. ``"res15"``.
    model : keras.Model, sklearn estimator or None
        Used to count parameters when ``params`` is None.
    metrics : dict
        From :func:`classification_metrics`.
    params : int, optional
        Number of weights; default ``models.count_params(model)`` (None for
        scikit-learn models).
    seconds_per_epoch : float, optional
        Training wall-clock time per epoch, s (fit time for scikit-learn).
    ms_per_clip : float, optional
        Inference time per clip at batch size 1 on one core, ms (:func:`time_inference`).

    Returns
    -------
    dict
        ``model, accuracy, macro_precision, macro_recall, macro_f1, params,
        seconds_per_epoch, ms_per_clip, num_samples``.
    """
    if params is None and model is not None:
        params = _models.count_params(model)
    return {
        "model": name,
        "accuracy": metrics["accuracy"],
        "macro_precision": metrics["macro_precision"],
        "macro_recall": metrics["macro_recall"],
        "macro_f1": metrics["macro_f1"],
        "params": params,
        "seconds_per_epoch": seconds_per_epoch,
        "ms_per_clip": ms_per_clip,
        "num_samples": metrics.get("num_samples"),
    }


# ---------------------------------------------------------------------------
# Inference time on one core
# ---------------------------------------------------------------------------


def limit_tf_threads(num_threads: int = 1) -> bool:
    """Ask TensorFlow for ``num_threads`` intra-op and inter-op threads.

    Only possible before TensorFlow runs its first operation; call it at the
    top of a benchmark script. Returns True when the setting took effect,
    False when TensorFlow was already initialised (then the thread pools keep
    their size, and :func:`time_inference` still confines them to one core).
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(num_threads)
    except RuntimeError:
        return False
    return True


@contextlib.contextmanager
def pinned_to_one_core() -> Iterator[int | None]:
    """Confine every thread of this process to one CPU core while the block runs.

    Linux only (``os.sched_setaffinity`` on each thread of ``/proc/self/task``;
    threads started inside the block inherit the setting). This is how
    :func:`time_inference` measures "one core" inside a live notebook, where
    TensorFlow's thread pools already exist and can no longer be resized.
    Yields the core used, or None where pinning is not available (the
    measurement then uses every core).
    """
    tasks = Path("/proc/self/task")
    if not hasattr(os, "sched_setaffinity") or not tasks.is_dir():
        yield None
        return
    core = min(os.sched_getaffinity(0))
    saved: dict[int, set[int]] = {}
    for entry in tasks.iterdir():
        tid = int(entry.name)
        with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile: nothing to pin or restore
            saved[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, {core})
    try:
        yield core
    finally:
        for entry in tasks.iterdir():
            tid = int(entry.name)
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(tid, saved.get(tid, saved.get(os.getpid(), {core})))


def time_inference(
    model: Any, x_one: np.ndarray, *, repeats: int = 50, warmup: int = 5, one_core: bool = True
) -> float:
    """Median wall-clock milliseconds to classify one clip (batch size 1).

    Parameters
    ----------
    model : keras.Model or sklearn estimator
        Keras models run as ``model(x, training=False)`` inside a
        ``tf.function`` (graph mode, as a deployed model would; no
        ``model.predict`` overhead); scikit-learn models through ``predict``.
    x_one : np.ndarray
        One input, without the batch axis, e.g. shape (101, 40) float32.
    repeats : int, keyword-only
        Timed calls; the median is returned.
    warmup : int, keyword-only
        Untimed calls first (tracing, caches).
    one_core : bool, keyword-only
        Pin all threads of the process to one core while timing
        (:func:`pinned_to_one_core`), so figures compare across models and
        machines of different core counts.

    Returns
    -------
    float
        Milliseconds per clip (median of ``repeats``).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    x = np.asarray(x_one, dtype=np.float32)[None, ...]  # a batch of one
    if _models.is_keras(model):
        import tensorflow as tf

        graph_call = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
        xt = tf.constant(x)

        def call():
            return graph_call(xt).numpy()
    else:

        def call():
            return model.predict(x)

    pin = pinned_to_one_core() if one_core else contextlib.nullcontext()
    times = []
    with pin:
        for _ in range(warmup):
            call()
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


# ---------------------------------------------------------------------------
# Multiply-adds per clip
# ---------------------------------------------------------------------------


def _output_positions(layer: Any) -> int:
    """Output positions of a layer: the product of its output shape without batch and channel axes."""
    shape = tuple(layer.output.shape)
    return int(np.prod([int(d) for d in shape[1:-1]], dtype=np.int64))


def count_macs(model: Any) -> int | None:
    """Multiply-adds of one forward pass on one clip, from the layers' weights and output shapes.

    The convention of the keyword-spotting papers (Tang & Lin 2018, Zhang et
    al. 2017): every weight matrix is counted once per output position it is
    applied at; element-wise work (batch norm, activations, pooling, sums)
    is not counted.

    - Conv1D / Conv2D / DepthwiseConv2D / Dense (on the last axis of any
      rank): ``positions * kernel.size``, where ``positions`` is the product
      of the output shape without the batch and channel axes, and
      ``kernel.size`` already holds the kernel window, the input channels
      per group and the output channels (or the depth multiplier);
    - GRU / LSTM: ``timesteps * (kernel.size + recurrent_kernel.size)``
      (input and recurrent matrices of every gate, once per step);
    - a nested model is counted layer by layer.

    Parameters
    ----------
    model : keras.Model or sklearn estimator
        A built functional or Sequential Keras model.

    Returns
    -------
    int or None
        Multiply-adds per clip; None for scikit-learn models.

    Raises
    ------
    ValueError
        A layer with a kernel that this rule does not know (the message names it).
    """
    if not _models.is_keras(model):
        return None
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_macs(layer)
            continue
        if isinstance(layer, keras.layers.Bidirectional):
            raise ValueError(f"count_macs: layer {layer.name} (Bidirectional) is not counted; count its two RNNs")
        cell = getattr(layer, "cell", None)
        if cell is not None and hasattr(cell, "recurrent_kernel"):
            steps = int(layer.input.shape[1])
            total += steps * (int(np.prod(cell.kernel.shape)) + int(np.prod(cell.recurrent_kernel.shape)))
            continue
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue  # element-wise or weight-free layers
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D,
                              keras.layers.DepthwiseConv2D)):  # fmt: skip
            total += _output_positions(layer) * int(np.prod(kernel.shape))
            continue
        raise ValueError(
            f"count_macs: layer {layer.name} ({type(layer).__name__}) has a kernel that count_macs does not know; "
            "add its rule to speechlib.evaluate.count_macs"
        )
    return int(total)
