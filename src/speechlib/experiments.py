"""Model experiments: every model trained by ``speechlib.train``, one row of the results table per run.

Notebook 3 and ``bench/model_experiments_real.py`` compare the models of
:data:`EXPERIMENTS` with one protocol (:data:`PROTOCOL`) and pick the final
model; notebook 4 and ``train_keras.py`` read that choice back
(:func:`read_final_model`).

The models
    :data:`EXPERIMENTS` (table label -> model name and hyper-parameters),
    :data:`NOTEBOOK_MODELS` (those notebook 3 runs), :data:`SMALL_MODELS`
    (small mode).
The protocol
    :class:`Protocol`, :data:`PROTOCOL`, :data:`NOTEBOOK_PROTOCOL`, :data:`SMALL_PROTOCOL`, :func:`protocol`.
Running
    :func:`run_experiment` (one model, one seed), :func:`compare` (several
    models and seeds: mean and spread), :func:`summarize`, :func:`run_dir`.
Choosing
    :func:`choose_final` (cv macro-F1 first, then cost), :func:`save_final_model`,
    :func:`read_final_model`, :func:`final_model_path`.

Protocol
--------
One training path: a Keras model is trained by :func:`speechlib.train.fit`
on the data of :func:`speechlib.train.load_data` — every clip of the
training split in every epoch, well-mixed batches, the same on-the-fly
augmentation (:class:`speechlib.train.Recipe`), Adam with warm-up and cosine
decay, class-weighted loss, early stopping on cv accuracy with the best cv
checkpoint (``best.keras``) and a resumable backup in the run's folder.
Every model gets the same budget (``epochs`` at most, ``patience``) and is
scored on the cv split with its best checkpoint; the test split is never
read. scikit-learn baselines are fitted directly on the stored features
(their own path: no epochs, no augmentation). Each row carries accuracy,
macro-F1, trainable parameters, multiply-adds per clip
(:func:`speechlib.evaluate.count_macs`), milliseconds per clip on one core
(:func:`speechlib.evaluate.time_inference`), the epochs run, whether training
converged, and the cv curve.

Example
-------
>>> from speechlib import experiments, pipeline
>>> prepared = pipeline.prepare(small=True)  # doctest: +SKIP
>>> row = experiments.run_experiment("ds_cnn_s", prepared.store, epochs=3, seed=1234)  # doctest: +SKIP
>>> row["macro_f1"], row["params"], row["macs"], row["ms_per_clip"], row["converged"]  # doctest: +SKIP
>>> table = experiments.compare(["cnn2d", "ds_cnn_s"], prepared.store, seeds=(1234, 1235), epochs=3)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from speechlib import config, inference
from speechlib import evaluate as _evaluate
from speechlib import models as _models
from speechlib import train as _train
from speechlib.store import FeatureStore

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LR",
    "EXPERIMENTS",
    "FINAL_MODEL_FILE",
    "HEAVY",
    "NOTEBOOK_MODELS",
    "NOTEBOOK_PROTOCOL",
    "PROTOCOL",
    "SMALL_MODELS",
    "SMALL_PROTOCOL",
    "Protocol",
    "choose_final",
    "compare",
    "compare_rankings",
    "final_bundle_path",
    "final_model_name",
    "final_model_path",
    "protocol",
    "read_final_model",
    "run_dir",
    "run_experiment",
    "save_final_model",
    "summarize",
    "trained_final_bundle",
]

DEFAULT_LR = _train.DEFAULT_LR  # peak learning rate of the warm-up + cosine schedule, as train_keras.py
DEFAULT_BATCH_SIZE = _train.DEFAULT_BATCH_SIZE  # as train_keras.py: the comparison trains as the final model will
FINAL_MODEL_FILE = "final_model.json"  # in <work dir>/experiments/
RUNS_DIR = "runs"  # <work dir>/experiments/runs/<label>-seed<seed>: one train.fit folder per run
FLAT_WINDOW = 3  # epochs: the training loss has flattened when the last 3 epochs' mean
FLAT_TOLERANCE = 0.05  # is less than 5 % below the mean of the 3 before
LEARNED_FRACTION = 0.9  # a run learned when its training loss fell below 90 % of its first epoch's and of
# chance level, ln(classes): the class-weighted loss of uniform answers. notebook 3's course_cnn1d/16 started at
# 3.17 and settled at ln(12) = 2.48, 22 % lower by the first measure alone, and had learned nothing

# Every model of notebook 3's comparison: table label -> (name in models.MODELS, builder hyper-parameters).
EXPERIMENTS: dict[str, tuple[str, dict]] = {
    "majority": ("majority", {}),
    "logistic_regression": ("logistic_regression", {}),
    "random_forest": ("random_forest", {}),
    "mlp": ("mlp", {}),
    "dense": ("dense", {}),
    "cnn2d": ("cnn2d", {}),
    "gru": ("gru", {}),
    "lstm": ("lstm", {}),
    "course_cnn1d/16": ("course_cnn1d", {"width": 1 / 16}),  # 1/16 of the 28 M-parameter original
    "urban_cnn": ("urban_cnn", {}),
    "ds_cnn_s": ("ds_cnn_s", {}),
    "ds_cnn_m": ("ds_cnn_m", {}),
    "ds_cnn_l": ("ds_cnn_l", {}),
    "res8": ("res8", {}),
    "res15": ("res15", {}),
    "bc_resnet_1": ("bc_resnet_1", {}),
    "bc_resnet_8": ("bc_resnet_8", {}),
}
# The large variants cost 8-10x more per epoch than their small siblings on a 2-core CPU; notebook 3 leaves
# them out of its timed run (its exercise 2 runs them).
HEAVY = ("ds_cnn_l", "res15", "bc_resnet_8")
NOTEBOOK_MODELS = tuple(label for label in EXPERIMENTS if label not in HEAVY)  # notebook 3, default mode
SMALL_MODELS = ("majority", "logistic_regression", "random_forest", "mlp", "dense", "course_cnn1d/16",
                "ds_cnn_s", "res8")  # fmt: skip  # notebook 3, small mode: one of each family


@dataclasses.dataclass(frozen=True)
class Protocol:
    """The budget every model of a comparison gets (the same for all of them).

    Attributes
    ----------
    epochs : int
        Maximum epochs on the full training split; early stopping (``patience``) ends sooner.
    patience : int
        Epochs without a better cv accuracy before :func:`speechlib.train.fit` stops.
    batch_size : int
    lr : float
        Peak learning rate.
    seeds : tuple of int
        The first seeds every model; all of them the ``top_k`` leaders (their spread).
    top_k : int
        How many leaders (by cv macro-F1) get every seed.
    splits : (str, str)
        Training and scoring splits of the store.
    recipe : speechlib.train.Recipe
        The augmentation of every Keras model.
    timing_repeats : int
        Calls timed per model (``speechlib.evaluate.time_inference``).
    train_every : int
        Every model trains on every ``train_every``-th clip of the training split
        (``speechlib.train.load_data(train_every=...)``: label-stratified); 1 for all of it.
    monitor : str
        What early stopping and the scored checkpoint follow (``speechlib.train.MONITORS``):
        cv macro F1, the measure the models are ranked by. (cv accuracy would
        reward an epoch that answers ``unknown`` for every clip: a model that
        has not started to learn stopped at such an epoch looks converged.)
    min_epochs : int
        Epochs every Keras model runs before early stopping may end it: under
        the noisy recipe some models (the recurrent ones, the raw-waveform CNN)
        need several epochs before their loss leaves chance level.
    """

    epochs: int
    patience: int
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    seeds: tuple[int, ...] = (config.SEED, config.SEED + 1, config.SEED + 2)
    top_k: int = 3
    splits: tuple[str, str] = ("train", "cv")
    recipe: _train.Recipe = dataclasses.field(default_factory=_train.Recipe)
    timing_repeats: int = 20
    train_every: int = 1
    monitor: str = "val_macro_f1"
    min_epochs: int = 0

    def fit_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`run_experiment` and :func:`compare` (all but the seeds)."""
        return {
            "epochs": self.epochs, "patience": self.patience, "batch_size": self.batch_size, "lr": self.lr,
            "splits": tuple(self.splits), "recipe": self.recipe, "timing_repeats": self.timing_repeats,
            "train_every": self.train_every, "monitor": self.monitor, "min_epochs": self.min_epochs,
        }  # fmt: skip


# The full comparison (bench/model_experiments_real.py): train_keras.py's batch size, learning rate, patience
# and augmentation; at most 30 epochs (the cosine schedule spans them), the full training split, three seeds for
# the three leaders.
PROTOCOL = Protocol(epochs=30, patience=5, min_epochs=10)
# Notebook 3's default mode: the same protocol on a label-stratified eighth of the training split (every 8th
# clip), with more epochs for the smaller epoch, so that its 20 runs fit in about an hour on 2 cores (on a quarter
# they took 2 h 15 min); every model gets the same clips, budget and recipe.
NOTEBOOK_PROTOCOL = dataclasses.replace(PROTOCOL, epochs=40, train_every=8, min_epochs=15)
# Small mode: the same code path in minutes (a few hundred clips, a few epochs).
SMALL_PROTOCOL = Protocol(epochs=3, patience=2, batch_size=32, seeds=(config.SEED, config.SEED + 1), top_k=2,
                          timing_repeats=5)  # fmt: skip


def protocol(small: bool | None = None) -> Protocol:
    """Notebook 3's protocol: :data:`SMALL_PROTOCOL` in small mode (``SPEECHLIB_SMALL=1``, or ``small=True``),
    else :data:`NOTEBOOK_PROTOCOL`."""
    return SMALL_PROTOCOL if (config.is_small() if small is None else small) else NOTEBOOK_PROTOCOL


def _resolve(label: str, model_kwargs: dict | None = None) -> tuple[str, dict]:
    """(MODELS name, hyper-parameters) of a table label of :data:`EXPERIMENTS` or a name of ``models.MODELS``."""
    if label in EXPERIMENTS:
        name, kwargs = EXPERIMENTS[label]
    elif label in _models.MODELS:
        name, kwargs = label, {}
    else:
        known = ", ".join(dict.fromkeys([*EXPERIMENTS, *_models.MODELS]))
        raise KeyError(f"unknown model {label!r}; choose one of: {known}")
    return name, {**kwargs, **(model_kwargs or {})}


def _store_for(store: Any, kind: str) -> Path:
    """The store of feature ``kind``: ``store`` itself, or ``store[kind]`` for a mapping kind -> store."""
    if isinstance(store, Mapping):
        if kind not in store:
            raise ValueError(
                f"no {kind!r} store among {sorted(store)}: featurize one "
                f"(speechlib.featurize.featurize(split_dir, <work>/features/{kind}, kind={kind!r}))"
            )
        store = store[kind]
    return Path(store)


def run_dir(store: str | Path, label: str, seed: int) -> Path:
    """The :func:`speechlib.train.fit` folder of one run: ``<work dir>/experiments/runs/<label>-seed<seed>``.

    For a store at ``<work>/features/<kind>``; for a store elsewhere, a new temporary folder.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
    store = Path(store).resolve()
    if store.parent.name == "features":
        return store.parent.parent / "experiments" / RUNS_DIR / f"{safe}-seed{seed}"
    return Path(tempfile.mkdtemp(prefix=f"speechlib-{safe}-seed{seed}-"))


def _build(name: str, kwargs: dict, feature_shape: tuple[int, ...], num_classes: int) -> Any:
    """The model, taking batches of ``feature_shape``.

    The featurizer stores waveforms as (CLIP_SAMPLES, 1) while the raw-waveform
    model takes (CLIP_SAMPLES,): its input is then reshaped by a wrapper (no weights).
    """
    shape = tuple(feature_shape)
    if _models.INPUT_KIND[name] == "waveform" and len(shape) == 2 and shape[1] == 1:
        inner = _models.build(name, input_shape=shape[:1], num_classes=num_classes, **kwargs)
        import keras

        inputs = keras.Input(shape=shape, name="features")
        outputs = inner(keras.layers.Reshape(shape[:1], name="drop_channel")(inputs))
        return keras.Model(inputs, outputs, name=inner.name)
    return _models.build(name, input_shape=shape, num_classes=num_classes, **kwargs)


def _flattened(losses: Sequence[float], window: int = FLAT_WINDOW, tolerance: float = FLAT_TOLERANCE) -> bool:
    """True when the mean of the last ``window`` losses is less than ``tolerance`` below the ``window`` before."""
    losses = [float(v) for v in losses]
    if len(losses) < 2 * window:
        return False
    before, last = np.mean(losses[-2 * window : -window]), np.mean(losses[-window:])
    return bool(before <= 0 or (before - last) / before < tolerance)


def run_experiment(
    name: str,
    store: str | Path | Mapping[str, str | Path],
    *,
    epochs: int,
    seed: int = config.SEED,
    recipe: _train.Recipe | None = None,
    splits: tuple[str, str] = ("train", "cv"),
    out_dir: str | Path | None = None,
    patience: int | None = None,
    lr: float = DEFAULT_LR,
    batch_size: int = DEFAULT_BATCH_SIZE,
    model_kwargs: dict | None = None,
    label: str | None = None,
    timing_repeats: int = 20,
    train_every: int = 1,
    monitor: str = "val_accuracy",
    min_epochs: int = 0,
    verbose: int = 0,
) -> dict[str, Any]:
    """Train one model with one seed, score it on the cv split; one row of the results table.

    Parameters
    ----------
    name : str
        A label of :data:`EXPERIMENTS` (e.g. ``"course_cnn1d/16"``) or a key of
        :data:`speechlib.models.MODELS`.
    store : str, Path or mapping of str to path
        A feature store (``speechlib.pipeline.prepare``, ``speechlib featurize``)
        with manifests, or ``{kind: store}`` (e.g. ``{"logmel": ..., "waveform": ...}``):
        the model's ``speechlib.models.INPUT_KIND`` picks one.
    epochs : int, keyword-only
        Maximum epochs of a Keras model (early stopping ends sooner); scikit-learn models ignore it.
    seed : int, keyword-only
        Weights, batch order, augmentation draws, and the scikit-learn models that take a seed.
    recipe : speechlib.train.Recipe, optional, keyword-only
        The augmentation (default ``train.Recipe()``; ``train.NO_AUGMENTATION`` for none).
    splits : (str, str), keyword-only
        Training and scoring splits, e.g. ``("train", "cv")`` or ``("sample_train", "sample_cv")``.
    out_dir : str or Path, optional, keyword-only
        The run's folder for :func:`speechlib.train.fit` (``best.keras``,
        ``training_log.csv``, ``backup/``); default :func:`run_dir`. A fresh run: an
        earlier log and backup there are replaced.
    patience : int, optional, keyword-only
        Early-stopping patience in epochs (default ``train.PATIENCE``).
    lr : float, keyword-only
        Peak learning rate.
    batch_size : int, keyword-only
    model_kwargs : dict, optional, keyword-only
        Builder hyper-parameters, on top of those of :data:`EXPERIMENTS`.
    label : str, optional, keyword-only
        The row's ``model`` (default ``name``).
    timing_repeats : int, keyword-only
        Calls timed by ``speechlib.evaluate.time_inference``.
    train_every : int, keyword-only
        Train on every ``train_every``-th training clip (``speechlib.train.load_data``).
    monitor, min_epochs : str, int, keyword-only
        What early stopping and the scored checkpoint follow, and the epochs
        that always run (``speechlib.train.fit``; :class:`Protocol`).
    verbose : int, keyword-only
        Keras' progress output (0: silent).

    Returns
    -------
    dict
        ``speechlib.evaluate.report_row`` (``model, accuracy, macro_precision,
        macro_recall, macro_f1, params, seconds_per_epoch, ms_per_clip,
        num_samples``) plus ``macs`` (multiply-adds per clip), ``name`` (the
        MODELS key), ``seed``, ``epochs`` (run; 0 for scikit-learn),
        ``max_epochs``, ``best_epoch`` (1-based, the checkpoint scored),
        ``early_stopped``, ``learned`` (the training loss fell below
        :data:`LEARNED_FRACTION` of its first epoch's and of chance level,
        ``ln(classes)``), ``converged`` (learned,
        and early-stopped or the training loss flattened: :data:`FLAT_WINDOW`,
        :data:`FLAT_TOLERANCE`; None for scikit-learn), ``cv_curve`` (cv
        accuracy), ``cv_f1_curve`` (cv macro F1 when ``monitor`` follows it, else
        empty) and ``loss_curve`` (per epoch),
        ``input``, ``train_split``, ``cv_split``, ``train_rows``, ``out_dir``.
        ``params`` counts trainable weights (as papers do); ``seconds_per_epoch``
        is the median epoch (the fit time for scikit-learn).

    Raises
    ------
    KeyError
        An unknown model.
    ValueError
        The store holds another feature kind than the model takes, or ``epochs`` < 1.
    """
    label = label or name
    name, kwargs, path, fs = _model_and_store(name, model_kwargs, store, epochs=epochs)
    if name in _train.SCIKIT_LEARN_MODELS:
        return _run_sklearn(name, kwargs, fs, label=label, seed=seed, splits=splits, timing_repeats=timing_repeats,
                            train_every=train_every)  # fmt: skip
    return _run_keras(name, kwargs, path, fs, label=label, seed=seed, epochs=epochs, recipe=recipe, splits=splits,
                      out_dir=out_dir, patience=patience, lr=lr, batch_size=batch_size, timing_repeats=timing_repeats,
                      train_every=train_every, monitor=monitor, min_epochs=min_epochs, verbose=verbose)  # fmt: skip


def _model_and_store(name: str, model_kwargs: dict | None, store: Any, *, epochs: int) -> tuple[str, dict, Path, Any]:
    """The MODELS name, its hyper-parameters, and the store path and FeatureStore of the kind it takes (checked)."""
    name, kwargs = _resolve(name, model_kwargs)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")

    wanted = _models.INPUT_KIND[name]
    path = _store_for(store, wanted)
    fs = FeatureStore(path)
    if fs.kind != wanted:
        raise ValueError(
            f"{name} takes {wanted!r} input but the store {fs.path} holds {fs.kind!r} features; "
            f"pass a {wanted} store (speechlib.featurize.featurize(split_dir, out, kind={wanted!r}))"
        )
    return name, kwargs, path, fs


def _run_keras(name: str, kwargs: dict, path: Path, fs: Any, *, label: str, seed: int, epochs: int,
               recipe: _train.Recipe | None, splits: tuple[str, str], out_dir: str | Path | None,
               patience: int | None, lr: float, batch_size: int, timing_repeats: int, train_every: int,
               monitor: str, min_epochs: int, verbose: int) -> dict[str, Any]:  # fmt: skip
    """A Keras model trained by :func:`speechlib.train.fit`, scored on cv with its best checkpoint."""
    train_split, cv_split = splits
    data = _train.load_data(path, splits=(train_split, cv_split, cv_split), batch_size=batch_size, seed=seed,
                            recipe=recipe, train_every=train_every)  # fmt: skip
    _train.set_seed(seed)
    model = _build(name, {"seed": seed, **kwargs} if _takes(name, "seed") else kwargs, data.feature_shape,
                   data.num_classes)  # fmt: skip
    out_dir = run_dir(path, label, seed) if out_dir is None else Path(out_dir)
    patience = _train.PATIENCE if patience is None else int(patience)
    _train.fit(model, data, epochs=epochs, lr=lr, out_dir=out_dir, patience=patience, verbose=verbose, monitor=monitor,
               min_epochs=min_epochs)  # fmt: skip
    log = _train.read_log(out_dir)
    model = _train.best_model(out_dir, fallback=model)  # the checkpoint early stopping picked
    row = _score_keras(model, data, log, label=label, timing_repeats=timing_repeats)
    row.update(
        macs=_evaluate.count_macs(model), name=name, seed=int(seed),
        **_training_columns(log, epochs=epochs, patience=patience, monitor=monitor, min_epochs=min_epochs,
                            num_classes=data.num_classes),
        input=fs.kind, train_split=train_split, cv_split=cv_split, train_rows=int(data.sizes["train"]),
        out_dir=str(out_dir),
    )  # fmt: skip
    return row


def _score_keras(model: Any, data: Any, log: pd.DataFrame, *, label: str, timing_repeats: int) -> dict[str, Any]:
    """``evaluate.report_row`` of the model on cv: metrics, trainable parameters, median epoch, ms per clip."""
    metrics = _train.evaluate_split(model, data, "cv")
    x_one = next(data.cv.take(1).as_numpy_iterator())[0][0]
    ms_per_clip = _evaluate.time_inference(model, x_one, repeats=timing_repeats)
    return _evaluate.report_row(
        label, model, metrics, params=_models.count_params(model, trainable_only=True),
        seconds_per_epoch=float(log["seconds"].median()), ms_per_clip=ms_per_clip,
    )  # fmt: skip


def _training_columns(log: pd.DataFrame, *, epochs: int, patience: int, monitor: str = "val_accuracy",
                      min_epochs: int = 0, num_classes: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The row's epochs, max_epochs, best_epoch, early_stopped, learned, converged and curves from the log.

    ``learned``: the training loss fell below :data:`LEARNED_FRACTION` of its
    first epoch's and, given ``num_classes``, of chance level ``ln(num_classes)``.
    """
    cv_curve = [round(float(v), 4) for v in log["val_accuracy"]]
    losses = [float(v) for v in log["loss"]]
    start = min(int(min_epochs), len(log) - 1)  # the epochs before it were no candidates (train.fit)
    best_epoch = start + int(np.argmax(log[monitor].to_numpy(float)[start:])) + 1
    early = len(log) - best_epoch >= patience  # EarlyStopping's rule: `patience` epochs without a better `monitor`
    start_loss = losses[0] if num_classes is None else min(losses[0], float(np.log(num_classes)))
    learned = bool(min(losses) < LEARNED_FRACTION * start_loss)
    row = {
        "epochs": len(log), "max_epochs": int(epochs), "best_epoch": best_epoch, "early_stopped": early,
        "learned": learned, "converged": learned and (early or _flattened(losses)), "cv_curve": cv_curve,
        "loss_curve": [round(v, 4) for v in losses],
    }  # fmt: skip
    row["cv_f1_curve"] = [round(float(v), 4) for v in log["val_macro_f1"]] if "val_macro_f1" in log else []
    return row


def _takes(name: str, parameter: str) -> bool:
    return parameter in inspect.signature(_models.MODELS[name]).parameters


def _run_sklearn(name: str, kwargs: dict, fs: Any, *, label: str, seed: int, splits, timing_repeats: int,
                 train_every: int = 1) -> dict:  # fmt: skip
    """A scikit-learn baseline fitted on the stored training split (normalised; every ``train_every``-th clip,
    as :func:`speechlib.train.load_data` reads it), scored on cv."""
    train_split, cv_split = splits
    if _takes(name, "seed"):
        kwargs = {"seed": seed, **kwargs}
    model = _models.build(name, input_shape=tuple(fs.feature_shape), num_classes=fs.num_classes, **kwargs)
    X_train, y_train = fs.load_array(train_split, normalize=True)
    if train_every > 1:
        rows = _train.shard_rows(len(y_train), (0, train_every))
        X_train, y_train = X_train[rows], y_train[rows]
    X_cv, y_cv = fs.load_array(cv_split, normalize=True)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    metrics = _evaluate.classification_metrics(y_cv, _models.predict(model, X_cv), list(fs.labels))
    ms_per_clip = _evaluate.time_inference(model, X_cv[0], repeats=timing_repeats)
    row = _evaluate.report_row(label, model, metrics, params=None, seconds_per_epoch=seconds, ms_per_clip=ms_per_clip)
    row.update(
        macs=None, name=name, seed=int(seed), epochs=0, max_epochs=0, best_epoch=None, early_stopped=False,
        learned=None, converged=None, cv_curve=[], cv_f1_curve=[], loss_curve=[], input=fs.kind,
        train_split=train_split, cv_split=cv_split, train_rows=len(y_train), out_dir=None,
    )  # fmt: skip
    return row


def compare(
    names: Sequence[str],
    store: str | Path | Mapping[str, str | Path],
    *,
    seeds: Sequence[int] = (config.SEED,),
    epochs: int,
    runs_dir: str | Path | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> pd.DataFrame:
    """Run every model of ``names`` with every seed; one row per model with the mean and spread over seeds.

    Parameters
    ----------
    names : sequence of str
        Labels of :data:`EXPERIMENTS` or keys of ``speechlib.models.MODELS``.
    store : str, Path or mapping of str to path
        As :func:`run_experiment`.
    seeds : sequence of int, keyword-only
    epochs : int, keyword-only
        Maximum epochs (the same for every model).
    runs_dir : str or Path, optional, keyword-only
        Parent of the runs' folders (``<runs_dir>/<label>-seed<seed>``); default :func:`run_dir`.
    progress : bool, keyword-only
        Print one line per run.
    **kwargs
        The other keyword arguments of :func:`run_experiment` (``recipe``,
        ``splits``, ``patience``, ``lr``, ``batch_size``, ...); the same for every run.

    Returns
    -------
    pandas.DataFrame
        :func:`summarize` of the runs, best cv macro-F1 first; the runs
        themselves (one row each) in ``.attrs["runs"]``.
    """
    rows = []
    for label in names:
        for seed in seeds:
            out_dir = None
            if runs_dir is not None:
                out_dir = Path(runs_dir) / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}-seed{seed}"
            row = run_experiment(label, store, epochs=epochs, seed=seed, out_dir=out_dir, **kwargs)
            rows.append(row)
            if progress:
                print(_progress_line(row), flush=True)
    runs = pd.DataFrame(rows)
    table = summarize(runs)
    table.attrs["runs"] = runs
    return table


def _progress_line(row: dict) -> str:
    state = "converged" if row["converged"] else "did not learn" if row.get("learned") is False else "NOT converged"
    trained = f"{row['epochs']:3d}/{row['max_epochs']} epochs ({state})" if row["epochs"] else "fitted directly"
    return (
        f"{row['model']:20s} seed {row['seed']}: accuracy {row['accuracy']:.3f}  macro F1 {row['macro_f1']:.3f}  "
        f"{trained}  {row['seconds_per_epoch']:7.2f} s/epoch  {row['ms_per_clip']:6.2f} ms/clip"
    )


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model from one row per run: mean and spread over seeds, and the costs.

    Parameters
    ----------
    runs : pandas.DataFrame
        Rows of :func:`run_experiment`.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, name, seeds`` (runs), ``accuracy_mean, accuracy_std,
        macro_f1_mean, macro_f1_std`` (std over seeds, ``ddof=1``: NaN for one
        seed), ``params, macs, ms_per_clip`` (median over seeds),
        ``seconds_per_epoch`` (median), ``epochs_mean``, ``converged`` (every
        Keras run converged; None for scikit-learn); best ``macro_f1_mean``
        first, then ``accuracy_mean``.
    """
    if runs.empty:
        raise ValueError("summarize got no runs: run some experiments first")

    def converged(values: pd.Series) -> Any:
        values = values.dropna()
        return None if values.empty else bool(values.astype(bool).all())

    grouped = runs.groupby("model", sort=False)
    table = pd.DataFrame(
        {
            "name": grouped["name"].first(),
            "seeds": grouped["seed"].count(),
            "accuracy_mean": grouped["accuracy"].mean(),
            "accuracy_std": grouped["accuracy"].std(),
            "macro_f1_mean": grouped["macro_f1"].mean(),
            "macro_f1_std": grouped["macro_f1"].std(),
            "params": grouped["params"].first(),
            "macs": grouped["macs"].first(),
            "ms_per_clip": grouped["ms_per_clip"].median(),
            "seconds_per_epoch": grouped["seconds_per_epoch"].median(),
            "epochs_mean": grouped["epochs"].mean(),
            "converged": grouped["converged"].agg(converged),
        }
    )
    table = table.sort_values(["macro_f1_mean", "accuracy_mean"], ascending=False).reset_index()
    return table


def compare_rankings(first: pd.DataFrame, second: pd.DataFrame, *, names: tuple[str, str] = ("synthetic", "real"),
                     moved: int = 3) -> pd.DataFrame:  # fmt: skip
    """Two comparisons of the same models side by side: where do their rankings differ?

    Parameters
    ----------
    first, second : pandas.DataFrame
        Rows of :func:`run_experiment` (one per run) of two comparisons, e.g.
        notebook 3's on the course's dataset and ``bench/model_experiments_real.py``'s
        on real speech.
    names : (str, str), keyword-only
        Column prefixes for the two (default ``synthetic``, ``real``).
    moved : int, keyword-only
        A model whose rank changes by at least this many places is flagged ``moved``.

    Returns
    -------
    pandas.DataFrame
        One row per model present in both: ``model``, then for each comparison
        ``<name>_macro_f1`` (mean over seeds), ``<name>_std`` (NaN for one seed)
        and ``<name>_rank`` (1 = best macro F1; ties share the better rank);
        ``shift`` (second rank minus first: positive = lower on the second) and
        ``moved``; ordered by the second ranking. ``.attrs``: ``spearman`` (rank
        correlation of the two macro F1 columns), ``leaders`` (each comparison's
        best model) and ``names``.
    """
    from scipy.stats import spearmanr

    tables = []
    for name, runs in zip(names, (first, second), strict=True):
        table = summarize(runs).set_index("model")
        tables.append(pd.DataFrame({f"{name}_macro_f1": table["macro_f1_mean"], f"{name}_std": table["macro_f1_std"]}))
    both = tables[0].join(tables[1], how="inner")
    if len(both) < 2:
        raise ValueError(f"the two comparisons share {len(both)} model(s); at least 2 are needed to compare rankings")
    for name in names:
        both[f"{name}_rank"] = both[f"{name}_macro_f1"].rank(ascending=False, method="min").astype(int)
    both["shift"] = both[f"{names[1]}_rank"] - both[f"{names[0]}_rank"]
    both["moved"] = both["shift"].abs() >= moved
    both = both.sort_values(f"{names[1]}_rank").reset_index()
    both.attrs["spearman"] = float(spearmanr(both[f"{names[0]}_macro_f1"], both[f"{names[1]}_macro_f1"]).statistic)
    both.attrs["leaders"] = {name: both.loc[both[f"{name}_rank"].idxmin(), "model"] for name in names}
    both.attrs["names"] = tuple(names)
    return both


def choose_final(
    table: pd.DataFrame,
    *,
    tolerance: float = 0.01,
    score: str | None = None,
    costs: Sequence[str] = ("params", "ms_per_clip"),
) -> pd.Series:
    """The final model: the best cv macro-F1 first, then the lowest cost among near-ties.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per run (:func:`run_experiment`) or per model (:func:`summarize`).
    tolerance : float, keyword-only
        Models within ``tolerance`` (0.01 = one point of macro-F1) of the best
        score count as tied: a gap one cv split cannot resolve. Among them the
        cheapest wins — ``costs`` compared in order (fewer parameters, then
        fewer ms per clip); ties in cost: the better score.
    score : str, optional, keyword-only
        The score column; default ``macro_f1``, or ``macro_f1_mean`` for a summary table.
    costs : sequence of str, keyword-only
        Cost columns, most important first (missing values count as infinite).

    Returns
    -------
    pandas.Series
        The chosen row.
    """
    if table.empty:
        raise ValueError("choose_final got an empty table: run some experiments first")
    if score is None:
        score = "macro_f1" if "macro_f1" in table or "macro_f1_mean" not in table else "macro_f1_mean"
    missing = [c for c in (score, *costs) if c not in table]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; columns present: {list(table.columns)}")
    best = table[score].max()
    tied = table[table[score] >= best - tolerance - 1e-12]
    keys = {f"_cost{i}": tied[c].astype(float).fillna(np.inf) for i, c in enumerate(costs)}
    order = tied.assign(**keys).sort_values([*keys, score], ascending=[True] * len(keys) + [False])
    return table.loc[order.index[0]]


def final_model_path(dataset: str | Path | None = None, small: bool | None = None) -> Path:
    """``<work dir>/experiments/final_model.json`` for ``dataset`` (default ``config.dataset_dir()``)."""
    dataset = config.dataset_dir(small) if dataset is None else dataset
    return config.work_dir(dataset, small) / "experiments" / FINAL_MODEL_FILE


def final_model_name(dataset: str | Path | None = None, small: bool | None = None) -> str:
    """The final model of ``dataset``: notebook 3's choice for it when recorded, else ``train.DEFAULT_MODEL``.

    The choice is :func:`final_model_path`'s record; ``train.DEFAULT_MODEL``
    is the package's own record (what ``train_keras.py`` trains by default).
    """
    path = final_model_path(dataset, small)
    return str(read_final_model(path)["model"]) if path.is_file() else _train.DEFAULT_MODEL


def final_bundle_path(store: str | Path, dataset: str | Path | None = None, small: bool | None = None) -> Path:
    """Where notebook 4 and ``train_keras.py`` save the final model trained on ``store``: its ``model.keras``.

    ``<work dir>/models/<final model>/model.keras`` (``train.default_out``),
    the final model being :func:`final_model_name` of ``dataset``. The file
    may not exist yet: train it with ``python train_keras.py`` or notebook 4.
    """
    return _train.default_out(store, final_model_name(dataset, small)) / inference.MODEL_FILE


def trained_final_bundle(store: str | Path, dataset: str | Path | None = None, small: bool | None = None) -> Path:
    """The final model trained on ``store``, for a chapter that uses it: its ``model.keras``.

    Chapter 3's choice (:func:`final_bundle_path`) where notebook 4 or
    ``train_keras.py --model`` has trained it; else the course's default model
    (``train.DEFAULT_MODEL``, what ``python train_keras.py`` trains) where that
    one is trained. Check the bundle's ``model_name`` to know which.

    Raises
    ------
    FileNotFoundError
        Neither is trained: the message names both paths and what to run.
    """
    chosen = final_bundle_path(store, dataset, small)
    default = _train.default_out(store, _train.DEFAULT_MODEL) / inference.MODEL_FILE
    for path in (chosen, default):
        if path.is_file():
            return path
    where = f"{chosen} does not exist" if chosen == default else (
        f"neither {chosen} (chapter 3's choice) nor {default} (the course's default) exists")  # fmt: skip
    raise FileNotFoundError(
        f"no trained final model for {store}: {where}; run notebook 4, or `python train_keras.py --path_to_data "
        "STORE`, first"
    )


def save_final_model(path: str | Path, name: str, **info: Any) -> Path:
    """Record the chosen model: ``{"model": name, **info}`` as JSON (parent folders created).

    ``name`` must be a key of :data:`speechlib.models.MODELS`; ``info`` holds
    what justified the choice (accuracies, costs, the rule).
    """
    if name not in _models.MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(_models.MODELS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = _evaluate._jsonable({"model": name, **info})
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def read_final_model(path: str | Path | None = None) -> dict[str, Any]:
    """The record written by :func:`save_final_model` (default :func:`final_model_path`).

    Raises
    ------
    FileNotFoundError
        No choice recorded yet: run notebook 3 (``speechlib course run --only 3_``).
    """
    path = final_model_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the final model is chosen by notebook 3 "
            "(run `speechlib course run --only 3_`, or pass the model name explicitly)"
        )
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("model") not in _models.MODELS:
        raise ValueError(f"{path}: model {record.get('model')!r} is not in speechlib.models.MODELS; rerun notebook 3")
    return record
