"""Model experiments: train one model on a pair of store splits and return its row of the results table.

Notebook 3 compares every model of :data:`speechlib.models.MODELS` on the
sample set, checks the best few on the full training split, and picks the
final model; ``train_keras.py`` and notebook 4 read that choice back.

Data
    :class:`ExperimentData` (a train and a cv split of one feature store),
    :func:`load`.
Running
    :func:`run_experiment` — build, train (Keras: ``speechlib.train``'s
    compile step, class weights and the store's batch reader; scikit-learn:
    ``fit``), evaluate on cv, time, and return ``speechlib.evaluate.report_row``
    plus the run's settings.
Choosing
    :func:`choose_final` (accuracy first, then cost), :func:`save_final_model`,
    :func:`read_final_model`, :func:`final_model_path`.

Protocol
--------
Every Keras model trains for a fixed number of epochs with the same
optimizer and schedule (Adam, warm-up + cosine decay, ``speechlib.train.compile_model``)
and is evaluated once, after the last epoch. The cv split is never used to
pick an epoch or to stop early, so its accuracy is a fair basis for comparing
models; the test split is not read at all.

Example
-------
>>> from speechlib import experiments, pipeline
>>> prepared = pipeline.prepare(small=True)  # doctest: +SKIP
>>> data = experiments.load(prepared.store)  # sample_train / sample_cv  # doctest: +SKIP
>>> row = experiments.run_experiment("ds_cnn_s", data, epochs=10, seed=1234)  # doctest: +SKIP
>>> row["accuracy"], row["params"], row["ms_per_clip"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from speechlib import config
from speechlib import evaluate as _evaluate
from speechlib import models as _models
from speechlib import train as _train

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LR",
    "FINAL_MODEL_FILE",
    "ExperimentData",
    "choose_final",
    "final_model_path",
    "load",
    "read_final_model",
    "run_experiment",
    "save_final_model",
]

DEFAULT_LR = _train.DEFAULT_LR  # peak learning rate of the warm-up + cosine schedule, as train_keras.py
DEFAULT_BATCH_SIZE = 32  # 240 sample clips -> 8 steps per epoch
FINAL_MODEL_FILE = "final_model.json"  # in <work dir>/experiments/


@dataclasses.dataclass
class ExperimentData:
    """A train split and a cv split of one feature store.

    Attributes
    ----------
    store : speechlib.store.FeatureStore
    train, cv : str
        Split names in the store, e.g. ``"sample_train"`` and ``"sample_cv"``.
    normalize : bool
        Apply the store's per-band statistics (fitted on its training split).
        Log-mel features are normalised; raw waveforms are used as they are
        (samples in [-1, 1]), since per-position statistics of a waveform
        would only distort it.
    """

    store: Any
    train: str
    cv: str
    normalize: bool = True
    _arrays: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def labels(self) -> list[str]:
        """Class names in label-id order."""
        return list(self.store.labels)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.store.labels)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one model input, e.g. (101, 40) for log-mel or (CLIP_SAMPLES,) for waveforms.

        The featurizer stores waveforms time-major as (CLIP_SAMPLES, 1); the
        raw-waveform model takes (CLIP_SAMPLES,), so that trailing axis is dropped.
        """
        shape = tuple(self.store.feature_shape)
        if self.kind == "waveform" and len(shape) == 2 and shape[1] == 1:
            return shape[:1]
        return shape

    def as_input(self, X: np.ndarray) -> np.ndarray:
        """A batch from the store, shape (N, *store.feature_shape), as the model takes it: (N, *feature_shape)."""
        return np.asarray(X, dtype=np.float32).reshape(len(X), *self.feature_shape)

    @property
    def kind(self) -> str:
        """Feature kind of the store ("logmel", "waveform", ...)."""
        return self.store.kind

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The whole split in memory (cached): X float32 (N, *feature_shape), y int32 (N,)."""
        if split not in self._arrays:
            X, y = self.store.load_array(split, normalize=self.normalize)
            self._arrays[split] = (self.as_input(X), y)
        return self._arrays[split]

    def class_weight(self) -> dict[int, float]:
        """Balanced class weights of the train split (``speechlib.train.class_weights``)."""
        from speechlib import train

        y = self.store.open_split(self.train)[1][:]
        return train.class_weights(np.bincount(y, minlength=self.num_classes))


def load(store_path: str | Path, *, train: str = "sample_train", cv: str = "sample_cv", normalize: bool | None = None):
    """Open a feature store for experiments on ``train`` and ``cv``.

    Parameters
    ----------
    store_path : str or Path
        A feature store (``speechlib.pipeline.prepare`` or ``speechlib featurize``).
    train, cv : str, keyword-only
        Split names; default the sample set.
    normalize : bool, optional, keyword-only
        Default: True for spectral features, False for ``"waveform"``.

    Returns
    -------
    ExperimentData

    Raises
    ------
    speechlib.store.StoreError
        A split is missing from the store (the message lists those present).
    """
    from speechlib.store import FeatureStore, StoreError

    fs = FeatureStore(store_path)
    missing = [s for s in (train, cv) if s not in fs.splits()]
    if missing:
        raise StoreError(
            f"{fs.path} has no complete split(s) {missing} (it has {fs.splits()}); "
            f"featurize them with speechlib.featurize.featurize(split_dir, {str(fs.path)!r}, splits={missing})"
        )
    if normalize is None:
        normalize = fs.kind != "waveform"
    return ExperimentData(store=fs, train=train, cv=cv, normalize=normalize)


def _builder_accepts(name: str, parameter: str) -> bool:
    return parameter in inspect.signature(_models.MODELS[name]).parameters


def _fit_keras(model, data: ExperimentData, *, epochs, seed, lr, batch_size, spec_augment, verbose) -> list[float]:
    """Train for exactly ``epochs`` epochs; return the wall-clock seconds of each epoch."""
    import keras

    from speechlib import augment, train

    specaugment, rng = augment.SpecAugment(), np.random.default_rng([seed, 7])

    def transform(X: np.ndarray) -> np.ndarray:
        X = data.as_input(X)
        return specaugment(X, rng=rng) if spec_augment else X

    dataset = data.store.keras_dataset(
        data.train, batch_size=batch_size, shuffle=True, seed=seed, normalize=data.normalize, transform=transform
    )
    train.compile_model(model, lr=lr, steps_per_epoch=len(dataset), epochs=epochs)
    seconds: list[float] = []

    class EpochSeconds(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self._start)

    model.fit(dataset, epochs=epochs, class_weight=data.class_weight(), callbacks=[EpochSeconds()], verbose=verbose)
    return seconds


def run_experiment(
    name: str,
    data: ExperimentData,
    *,
    epochs: int,
    seed: int = config.SEED,
    lr: float = DEFAULT_LR,
    batch_size: int = DEFAULT_BATCH_SIZE,
    spec_augment: bool | None = None,
    model_kwargs: dict | None = None,
    label: str | None = None,
    timing_repeats: int = 20,
    verbose: int = 0,
) -> dict[str, Any]:
    """Build model ``name``, train it on ``data.train``, evaluate it on ``data.cv``; one row of the results table.

    Parameters
    ----------
    name : str
        A key of :data:`speechlib.models.MODELS`.
    data : ExperimentData
        From :func:`load`; its feature kind must be the model's
        (``speechlib.models.INPUT_KIND``).
    epochs : int, keyword-only
        Keras models train exactly this many epochs (no early stopping, see the
        module's *Protocol*); scikit-learn models ignore it.
    seed : int, keyword-only
        Training seed: weights, batch order, SpecAugment masks, and the
        scikit-learn models that take a ``seed``.
    lr : float, keyword-only
        Peak learning rate (``speechlib.train.compile_model``).
    batch_size : int, keyword-only
    spec_augment : bool, optional, keyword-only
        SpecAugment on the training batches; default: on for spectral features,
        off for waveforms.
    model_kwargs : dict, optional, keyword-only
        Hyper-parameters for the builder, e.g. ``{"width": 1 / 16}``.
    label : str, optional, keyword-only
        The row's ``model`` name in the table (default ``name``).
    timing_repeats : int, keyword-only
        Calls timed by ``speechlib.evaluate.time_inference``.
    verbose : int, keyword-only
        Keras' fit output (0: silent).

    Returns
    -------
    dict
        ``speechlib.evaluate.report_row`` (``model, accuracy, macro_precision,
        macro_recall, macro_f1, params, seconds_per_epoch, ms_per_clip,
        num_samples``) plus ``name`` (the MODELS key), ``seed``, ``epochs``
        (0 for scikit-learn), ``input`` (feature kind), ``train_split``,
        ``cv_split``, ``train_rows``. ``params`` counts trainable weights (as
        papers do; None for scikit-learn); ``seconds_per_epoch`` is the median
        epoch's wall-clock time (the fit time for scikit-learn).
    """
    from speechlib import train

    if name not in _models.MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(_models.MODELS)}")
    wanted = _models.INPUT_KIND[name]
    if wanted != data.kind:
        raise ValueError(
            f"{name} takes {wanted!r} input but the store {data.store.path} holds {data.kind!r} features; "
            f"load a {wanted} store (speechlib.pipeline.prepare(kind={wanted!r}) or speechlib.featurize.featurize)"
        )
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    kwargs = dict(model_kwargs or {})
    if _builder_accepts(name, "seed"):
        kwargs.setdefault("seed", seed)
    train.set_seed(seed)
    model = _models.build(name, input_shape=data.feature_shape, num_classes=data.num_classes, **kwargs)
    X_cv, y_cv = data.arrays(data.cv)
    if _models.is_keras(model):
        if spec_augment is None:
            spec_augment = len(data.feature_shape) == 2
        seconds = _fit_keras(model, data, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                             spec_augment=spec_augment, verbose=verbose)  # fmt: skip
        seconds_per_epoch = float(np.median(seconds))
        epochs_run = len(seconds)
        params = _models.count_params(model, trainable_only=True)
    else:
        X_train, y_train = data.arrays(data.train)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        seconds_per_epoch = time.perf_counter() - start
        epochs_run = 0
        params = None
    y_pred = _models.predict(model, X_cv)
    metrics = _evaluate.classification_metrics(y_cv, y_pred, data.labels)
    ms_per_clip = _evaluate.time_inference(model, X_cv[0], repeats=timing_repeats)
    row = _evaluate.report_row(
        label or name, model, metrics, params=params, seconds_per_epoch=seconds_per_epoch, ms_per_clip=ms_per_clip
    )
    row.update(
        name=name,
        seed=int(seed),
        epochs=epochs_run,
        input=data.kind,
        train_split=data.train,
        cv_split=data.cv,
        train_rows=int(data.store.num_rows(data.train)),
    )
    return row


def choose_final(
    table: pd.DataFrame, *, tolerance: float = 0.01, accuracy: str = "accuracy", cost: str = "ms_per_clip"
) -> pd.Series:
    """The final model: highest accuracy first, then the lowest cost among near-ties.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per model, with columns ``accuracy`` and ``cost``.
    tolerance : float, keyword-only
        Models within ``tolerance`` (a fraction, 0.01 = one percentage point)
        of the best accuracy count as tied: the gap is below what one cv split
        can resolve. Among them the cheapest wins (ties in cost: the more accurate).
    accuracy, cost : str, keyword-only
        Column names.

    Returns
    -------
    pandas.Series
        The chosen row.
    """
    if table.empty:
        raise ValueError("choose_final got an empty table: run some experiments first")
    missing = [c for c in (accuracy, cost) if c not in table]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; columns present: {list(table.columns)}")
    best = table[accuracy].max()
    tied = table[table[accuracy] >= best - tolerance - 1e-12]
    order = tied.assign(_cost=tied[cost].fillna(np.inf)).sort_values(["_cost", accuracy], ascending=[True, False])
    return table.loc[order.index[0]]


def final_model_path(dataset: str | Path | None = None, small: bool | None = None) -> Path:
    """``<work dir>/experiments/final_model.json`` for ``dataset`` (default ``config.dataset_dir()``)."""
    dataset = config.dataset_dir(small) if dataset is None else dataset
    return config.work_dir(dataset, small) / "experiments" / FINAL_MODEL_FILE


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
