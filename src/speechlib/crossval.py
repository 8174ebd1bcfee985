"""k-fold cross-validation: one training per fold through the one training path, mean and spread.

A dataset's papers report k-fold results (UrbanSound8K: its 10 predefined
folds; a small speech set: speaker-grouped folds) as the mean accuracy over
the folds and its spread. :func:`crossval` does that with the library's
own steps, nothing written twice:

1. the split folder is cut into folds by :func:`speechlib.split.write_folds`:
   the predefined folds of a split made from a folds CSV (``speechlib split
   --folds CSV``), else ``k`` speaker-grouped, label-stratified folds; in
   fold ``i`` the test part is fold ``i`` and a cv part picks the checkpoint;
2. each fold is featurized (:func:`speechlib.featurize.featurize`) and trained
   by :func:`speechlib.train.load_data` + :func:`speechlib.train.fit` (the
   best-on-cv checkpoint, :func:`speechlib.train.best_model`), then scored
   on its test part (:func:`speechlib.train.evaluate_split`);
3. one row per fold (accuracy, macro F1, sizes, epochs) and the summary: mean
   and standard deviation over the folds, min and max, and the accuracy of
   all test predictions pooled with its 95% Wilson interval.

A fold whose ``result.json`` exists is not trained again, so an interrupted
run continues with the next fold. Written to ``out``: ``folds/fold_<i>/``
(split, store, model), ``crossval.csv`` (one row per fold) and
``crossval.json`` (rows and summary).

Example
-------
::

    speechlib split --data DIR --folds metadata.csv --out work/split
    speechlib crossval --split-dir work/split --out work/cv --model res8 --epochs 20

>>> from speechlib import crossval
>>> result = crossval.crossval("work/split", "work/cv", k=5, epochs=20)  # doctest: +SKIP
>>> result["summary"]["accuracy_mean"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from speechlib import config, evaluate, featurize, models, split, train

RESULT_FILE = "result.json"  # a finished fold's row and test predictions
ROWS_FILE = "crossval.csv"
SUMMARY_FILE = "crossval.json"
ROW_COLUMNS = ["fold", "name", "train", "cv", "test", "epochs", "best_epoch", "accuracy", "macro_f1", "seconds"]

__all__ = ["crossval", "format_result", "summarize"]


def crossval(
    split_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    k: int = 5,
    model: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = config.SEED,
    recipe: Any = None,
    patience: int | None = None,
    workers: int | None = None,
    verbose: bool = True,
) -> dict:
    """Train and score one model per fold of a split folder; the rows and their mean and spread.

    Parameters
    ----------
    split_dir : path
        A folder written by ``speechlib split`` (``make_split``).
    out : path
        Where the fold folders and the results go (created; a finished fold is reused).
    k : int
        Number of folds when the split has no predefined folds (a split from a
        folds CSV uses all of its folds).
    model : str, optional
        A model of ``speechlib.models`` (default: the final model, ``train.DEFAULT_MODEL``).
    epochs : int, optional
        Epochs per fold (default: ``train.auto_epochs`` of the fold's training rows).
    batch_size, lr : optional
        Default ``train.DEFAULT_BATCH_SIZE`` / ``train.DEFAULT_LR``.
    seed : int
        Seed of the folds, the shuffling and the augmentation.
    recipe : speechlib.train.Recipe, optional
        The augmentation (default: the final recipe).
    patience : int, optional
        Early-stopping patience in epochs (default ``train.PATIENCE``).
    workers : int, optional
        Featurizer processes per fold.
    verbose : bool
        Print each fold's row as it finishes.

    Returns
    -------
    dict
        ``rows`` (one dict per fold, :data:`ROW_COLUMNS`), ``summary``
        (:func:`summarize`), ``labels``, ``model``, ``split_dir``, ``out``.
    """
    out = Path(out)
    model = model or train.DEFAULT_MODEL
    batch_size = batch_size or train.DEFAULT_BATCH_SIZE
    lr = lr or train.DEFAULT_LR
    folders = split.write_folds(split_dir, out / "folds", k=k, seed=seed)
    results = []
    for folder in folders:
        results.append(_fold_result(folder, model=model, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                    recipe=recipe, patience=patience, workers=workers))  # fmt: skip
        if verbose:
            _print_fold(results[-1]["row"])
    return _write_report(out, split_dir, model=model, results=results)


def _fold_result(folder: Path, *, model: str, epochs: int | None, batch_size: int, lr: float, seed: int,
                 recipe: Any, patience: int | None, workers: int | None) -> dict:  # fmt: skip
    """A fold's result: read back when finished, else featurized, trained and written atomically first."""
    done = folder / "model" / RESULT_FILE
    if not done.is_file():
        featurize.featurize(
            folder, folder / "store", splits=("train", "cv", "test"), workers=workers, seed=seed, progress=False
        )
        result = _train_fold(folder, model=model, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                             recipe=recipe, patience=patience)  # fmt: skip
        done.parent.mkdir(parents=True, exist_ok=True)
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(result) + "\n", encoding="utf-8")
        tmp.replace(done)
    return json.loads(done.read_text(encoding="utf-8"))


def _print_fold(row: dict) -> None:
    """One line of a finished fold: its accuracy, macro-F1, test clips and epochs."""
    print(f"fold {row['fold']} ({row['name']}): accuracy {row['accuracy']:.4f}, "
          f"macro F1 {row['macro_f1']:.4f}, test {row['test']} clips, {row['epochs']} epochs",
          flush=True)  # fmt: skip


def _write_report(out: Path, split_dir: str | os.PathLike, *, model: str, results: list[dict]) -> dict:
    """The report of every fold with its summary, written as ``crossval.csv`` and ``crossval.json``."""
    rows = [r["row"] for r in results]
    summary = summarize(rows, results)
    report = {
        "model": model,
        "labels": results[0]["labels"] if results else [],
        "split_dir": str(Path(split_dir).resolve()),
        "out": str(out.resolve()),
        "rows": rows,
        "summary": summary,
    }
    pd.DataFrame(rows, columns=ROW_COLUMNS).to_csv(out / ROWS_FILE, index=False, lineterminator="\n")
    (out / SUMMARY_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _train_fold(
    folder: Path, *, model: str, epochs: int | None, batch_size: int, lr: float, seed: int, recipe: Any,
    patience: int | None,
) -> dict:  # fmt: skip
    """Train one fold through ``speechlib.train`` and score its test part; the row and the test predictions."""
    info = split.load_info(folder)
    train.set_seed(seed)
    data = train.load_data(folder / "store", batch_size=batch_size, seed=seed, recipe=recipe)
    net = models.build(model, input_shape=data.feature_shape, num_classes=data.num_classes)
    started = time.perf_counter()
    fit_args = {} if patience is None else {"patience": int(patience)}
    train.fit(net, data, epochs=epochs, lr=lr, out_dir=folder / "model", verbose=0, **fit_args)
    seconds = time.perf_counter() - started
    best = train.best_model(folder / "model", fallback=net)
    y_true, proba = train.predict_split(best, data, "test")
    metrics = train.evaluate_split(best, data, "test")
    log = train.read_log(folder / "model")
    row = {
        "fold": int(info["fold"]),
        "name": str(info.get("fold_name", info["fold"])),
        **{name: int(data.sizes[name]) for name in ("train", "cv", "test")},
        "epochs": len(log),
        "best_epoch": int(log["val_accuracy"].idxmax()) + 1 if len(log) else 0,
        "accuracy": round(float(metrics["accuracy"]), 4),
        "macro_f1": round(float(metrics["macro_f1"]), 4),
        "seconds": round(seconds, 1),
    }
    return {"row": row, "labels": data.labels, "y_true": y_true.tolist(), "y_pred": proba.argmax(axis=1).tolist()}


def summarize(rows: list[dict], results: list[dict] | None = None) -> dict:
    """Mean and spread of the folds' accuracy and macro F1, and the pooled accuracy with its interval.

    Parameters
    ----------
    rows : list of dict
        One per fold, with ``accuracy`` and ``macro_f1``.
    results : list of dict, optional
        The folds' ``y_true`` / ``y_pred``, for the pooled accuracy.

    Returns
    -------
    dict
        ``folds``; ``accuracy_mean``, ``accuracy_std`` (sample standard deviation over the
        folds, ddof 1; 0 for one fold), ``accuracy_min``, ``accuracy_max``; ``macro_f1_mean``,
        ``macro_f1_std``; ``pooled_accuracy`` with ``pooled_ci95`` and ``pooled_clips`` when
        ``results`` are given.
    """
    acc = np.array([r["accuracy"] for r in rows], dtype=np.float64)
    f1 = np.array([r["macro_f1"] for r in rows], dtype=np.float64)

    def std(values: np.ndarray) -> float:
        return round(float(values.std(ddof=1)), 4) if len(values) > 1 else 0.0

    summary = {
        "folds": len(rows),
        "accuracy_mean": round(float(acc.mean()), 4) if len(acc) else None,
        "accuracy_std": std(acc),
        "accuracy_min": round(float(acc.min()), 4) if len(acc) else None,
        "accuracy_max": round(float(acc.max()), 4) if len(acc) else None,
        "macro_f1_mean": round(float(f1.mean()), 4) if len(f1) else None,
        "macro_f1_std": std(f1),
    }
    if results:
        y_true = np.concatenate([np.asarray(r["y_true"], dtype=np.int64) for r in results])
        y_pred = np.concatenate([np.asarray(r["y_pred"], dtype=np.int64) for r in results])
        correct, total = int((y_true == y_pred).sum()), len(y_true)
        summary.update(
            pooled_accuracy=round(correct / total, 4) if total else None,
            pooled_ci95=evaluate.wilson_interval(correct, total),
            pooled_clips=total,
        )
    return summary


def format_result(result: dict) -> str:
    """The table of folds and the summary line (what ``speechlib crossval`` prints)."""
    rows = pd.DataFrame(result["rows"], columns=ROW_COLUMNS)
    s = result["summary"]
    lines = [rows.to_string(index=False)]
    line = (
        f"{s['folds']}-fold cross-validation, {result['model']}: accuracy {s['accuracy_mean']:.4f} "
        f"± {s['accuracy_std']:.4f} (mean ± std over folds; min {s['accuracy_min']:.4f}, max {s['accuracy_max']:.4f}), "
        f"macro F1 {s['macro_f1_mean']:.4f} ± {s['macro_f1_std']:.4f}"
    )
    if s.get("pooled_accuracy") is not None:
        low, high = s["pooled_ci95"]
        line += f"; pooled {s['pooled_accuracy']:.4f} (95% CI {low:.4f}-{high:.4f}, {s['pooled_clips']} clips)"
    lines.append(line)
    lines.append(f"written to {Path(result['out']) / ROWS_FILE} and {Path(result['out']) / SUMMARY_FILE}")
    return "\n".join(lines)
