"""Training glue shared by notebook 4, ``train_keras.py`` and ``train_tensorflow.py``.

Data
    :func:`load_data` — train / cv / test ``tf.data`` pipelines streamed from a
    feature store (normalised with the store's train statistics, reshuffled
    every epoch, optional SpecAugment on the training batches), the class
    weights and everything a saved model needs (:class:`Data`).
    :func:`random_data` — the same structure filled with random numbers of the
    right shape (``--random_data``: debug a model or a script without data).
Training
    :func:`set_seed` (the one place seeds are set), :func:`compile_model`,
    :func:`callbacks`, :func:`fit`, :func:`read_log`; :func:`save_backup`,
    :func:`load_backup`, :func:`resume_epoch` (exact resume); :func:`run_script`
    (the scripts' exit codes).
Evaluation
    :func:`predict_split`, :func:`evaluate_split` (``speechlib.evaluate`` metrics).

Class imbalance
---------------
The ``unknown`` class gathers twenty words, so it is several times larger
than a command (and ``silence`` may be smaller). We keep *every* clip in
every epoch and weight the loss by class instead of resampling: the weight
of class ``c`` is ``n / (k * n_c)`` (scikit-learn's "balanced"), computed
from the train split's counts, so each class contributes the same total
weight to the loss. Balanced sampling (re-drawing a subset of ``unknown``
each epoch) would throw away most unknown clips in any one epoch and needs
random access across the whole store, while the store is read chunk by chunk
to keep memory bounded; weighting keeps the streaming reader and uses all of
the data. The fixed cut of an ordered list that broke the original course's
training cannot happen: every row is read every epoch, in a new order, and
the whole training split is shuffled together (up to ``SHUFFLE_BYTES``),
because stores are written in label order.

Callbacks (:func:`callbacks`)
-----------------------------
Early stopping on cv accuracy (best weights restored), a cosine learning-rate
decay with a short warm-up (a function of the optimizer's step count, so a
resumed run continues on the same curve), a checkpoint of the best model on
cv (``best.keras``), TensorBoard logs in ``logdir/logrun``, a CSV log
(``training_log.csv``, one row per epoch with the seconds it took), and a
backup of the whole training state after every epoch for ``--resume``
(``backup/state.npz``, :func:`save_backup`).

Exact resume
------------
A run killed at any moment (even ``kill -9`` in the middle of an epoch or of
a write) and resumed with ``resume=True`` ends with the weights and metrics
of the run that was never stopped: the backup holds every variable of the
model (dropout's seed-generator states included) and of the optimizer (step
count, so the schedule, and moments), the early-stopping and checkpoint
state and the CSV log's rows; the data of epoch ``e`` depends only on the
seed and ``e`` (``load_data(initial_epoch=...)``). Every file is written to a
temporary name and renamed (:func:`_atomic_write`), so a kill leaves the
previous epoch's backup whole; an unreadable one is a :class:`ResumeError`
that names the file and how to start over.

Example
-------
>>> from speechlib import models, train
>>> train.set_seed(1234)  # doctest: +SKIP
>>> data = train.load_data("data/work/synthetic/features/logmel", batch_size=64)  # doctest: +SKIP
>>> model = models.build("ds_cnn_m", input_shape=data.feature_shape, num_classes=data.num_classes)  # doctest: +SKIP
>>> history = train.fit(model, data, epochs=10, lr=3e-3, out_dir="data/work/models/run1")  # doctest: +SKIP
>>> train.evaluate_split(model, data, "test")["accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import shutil
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechlib import config
from speechlib._json import jsonable
from speechlib.pipeline import InputError

# speechlib.cli imports this module to build its parser, so `speechlib --help` loads it: pandas, soundfile and the
# speechlib modules that load librosa, pandas, scikit-learn or zarr (audio, augment, evaluate, features, inference,
# models, split, store) are imported in the functions that use them, as TensorFlow and Keras are.

__all__ = [
    "BACKUP_DIR",
    "BACKUP_FILE",
    "BEST_FILE",
    "DEFAULT_MODEL",
    "LOG_FILE",
    "NO_AUGMENTATION",
    "Backup",
    "Data",
    "Recipe",
    "ResumeError",
    "WaveformBatches",
    "add_arguments",
    "add_recipe_arguments",
    "auto_epochs",
    "best_model",
    "callbacks",
    "class_weights",
    "compile_model",
    "default_model",
    "default_out",
    "distribution_strategy",
    "evaluate_split",
    "finish",
    "fit",
    "init_model",
    "load_backup",
    "load_data",
    "lr_schedule",
    "mixup_batch",
    "noise_bank",
    "predict_split",
    "random_data",
    "read_log",
    "resume_epoch",
    "run_script",
    "sample_waveforms",
    "save_backup",
    "set_seed",
    "shard_rows",
]

FINAL_MODEL_RECORD = Path(__file__).with_name("final_model.json")  # the course's committed choice of final model
FALLBACK_MODEL = "res8"  # when that record is missing or unreadable


def default_model(record: str | Path = FINAL_MODEL_RECORD) -> str:
    """The final model's name: ``speechlib/final_model.json`` (``{"model": name, ...}``), else ``FALLBACK_MODEL``.

    The record says how the model was chosen (the rule, the comparison and
    its figures); notebook 3 writes the same kind of record for the dataset
    it runs on (``speechlib.experiments.save_final_model``).
    """
    try:
        return str(json.loads(Path(record).read_text(encoding="utf-8"))["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return FALLBACK_MODEL


DEFAULT_MODEL = default_model()  # the model train_keras.py and train_tensorflow.py train by default
DEFAULT_EPOCHS = None  # None: auto_epochs, about DEFAULT_STEPS optimizer steps whatever the split's size
DEFAULT_STEPS = 4000  # synthetic default: 0.960 test accuracy after 3,000 steps, 0.973 after 4,000 (res8)
SMALL_STEPS = 240  # small mode's budget: a few hundred clips learn what they can in a minute or two
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 3e-3  # peak of the warm-up + cosine schedule (Adam)


def add_arguments(parser: Any, *, models: Sequence[str] | None = None, logrun_default: str = "the model name") -> Any:
    """Add the training flags shared by ``train_keras.py`` and ``train_tensorflow.py`` to ``parser``.

    One definition keeps the two scripts' interfaces identical.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    models : sequence of str, optional
        The ``--model`` choices (None: any name of :data:`speechlib.models.MODELS`).
    logrun_default : str
        What ``--logrun`` defaults to, for the help text.

    Returns
    -------
    argparse.ArgumentParser
        ``parser``, with the flags added.
    """
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--path_to_data",
        type=Path,
        default=None,
        help="a dataset folder (Speech Commands, the official test set, Kaggle's train/audio or one folder per class; "
        "split and featurized into its work dir on the first run) or a feature store (speechlib featurize); "
        "default: the embedded dataset (or SPEECHLIB_DATA)",
    )
    source.add_argument(
        "--random_data",
        action="store_true",
        help="train on random inputs of the right shape (debugging; no data needed)",
    )
    if models is None:
        from speechlib.models import INPUT_KIND

        models = [name for name in INPUT_KIND if INPUT_KIND[name] == "logmel" and name not in SCIKIT_LEARN_MODELS]
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, choices=models, help=f"the model to train (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--epochs",
        type=_positive(int),
        default=DEFAULT_EPOCHS,
        help=f"maximum epochs (default: about {DEFAULT_STEPS:,} optimizer steps, train.auto_epochs)",
    )
    parser.add_argument(
        "--batch_size", type=_positive(int), default=DEFAULT_BATCH_SIZE, help=f"default {DEFAULT_BATCH_SIZE}"
    )
    parser.add_argument(
        "--lr", type=_positive(float), default=DEFAULT_LR, help=f"peak learning rate (default {DEFAULT_LR})"
    )
    parser.add_argument("--seed", type=int, default=config.SEED, help=f"training seed (default {config.SEED})")
    parser.add_argument("--logdir", type=Path, default=None, help="TensorBoard folder (default <work dir>/logs)")
    parser.add_argument("--logrun", default=None, help=f"name of this run (default {logrun_default})")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default <work dir>/models/<logrun>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last epoch's backup in --out: the same run as if it had not stopped",
    )
    parser.add_argument("--small", action="store_true", help="small mode: a few hundred clips (SPEECHLIB_SMALL=1)")
    add_recipe_arguments(parser)
    return parser


def _positive(kind: type) -> Any:
    """An argparse ``type`` that accepts values of ``kind`` above 0 (argparse reports others: exit 2)."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be above 0")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


SCIKIT_LEARN_MODELS = ("majority", "logistic_regression", "random_forest", "mlp")  # models.MODELS not trained by fit
BEST_FILE = "best.keras"  # the best model on cv, written by train.fit's ModelCheckpoint (atomically)
BACKUP_DIR = "backup"  # the last epoch's whole training state, for --resume
BACKUP_FILE = "state.npz"  # in BACKUP_DIR: one file, replaced atomically after every epoch
LOG_FILE = "training_log.csv"  # one row per epoch
WARMUP_EPOCHS = 1  # linear learning-rate warm-up before the cosine decay: large lr on a fresh BN net diverges
PATIENCE = 20  # epochs without a better cv accuracy before early stopping (the cosine schedule improves late)
MONITORS = ("val_accuracy", "val_macro_f1")  # what early stopping and the best checkpoint can follow (higher: better)
SHUFFLE_BYTES = 2**30  # decoded training rows held for shuffling: the whole split up to 1 GiB (v0.01: ~0.8 GiB)
RANDOM_SIZES = {"train": 512, "cv": 128, "test": 128}  # rows of --random_data


def set_seed(seed: int = config.SEED) -> None:
    """Seed Python, numpy and TensorFlow in one call (``keras.utils.set_random_seed``)."""
    import keras

    keras.utils.set_random_seed(int(seed))


def class_weights(counts: np.ndarray | list[int]) -> dict[int, float]:
    """Balanced class weights ``n / (k * n_c)`` from per-class counts (classes with no rows get 0).

    Parameters
    ----------
    counts : array-like of int, shape (num_classes,)
        Rows of each class in the training split.

    Returns
    -------
    dict of int to float
        ``{label_id: weight}``, as ``keras.Model.fit(class_weight=...)`` takes it.
    """
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    k = int(present.sum())
    total = counts.sum()
    weights = np.where(present, total / (max(k, 1) * np.maximum(counts, 1)), 0.0)
    return {i: float(w) for i, w in enumerate(weights)}


@dataclasses.dataclass
class Data:
    """Everything training and a saved model need to know about the data.

    Attributes
    ----------
    train, cv, test : tf.data.Dataset
        Batches ``(X, y)``: X float32 (batch, *feature_shape), normalised;
        y int32 (batch,). ``train`` is reshuffled (and augmented) every epoch.
    labels : list of str
        Class names; ``label_id`` ``i`` is ``labels[i]``.
    feature_shape : tuple of int
        One row of X, e.g. (101, 40).
    kind, params : str, dict
        The feature kind and every parameter (``speechlib.features``).
    normalization : dict
        ``mean`` and ``std`` (np.ndarray, shape (bins,)) fitted on train.
    class_weight : dict of int to float
        Balanced weights from the train counts (:func:`class_weights`).
    sizes : dict of str to int
        Rows per split.
    task : str
        The task name of the split (e.g. ``"kaggle12"``).
    source : str
        The store folder, or ``"random"``.
    shard : (int, int) or None
        ``(index, count)``: this worker's part of train and cv (:func:`load_data`); None: all rows.
    """

    train: Any
    cv: Any
    test: Any
    labels: list[str]
    feature_shape: tuple[int, ...]
    kind: str
    params: dict
    normalization: dict
    class_weight: dict[int, float]
    sizes: dict[str, int]
    task: str = "kaggle12"
    source: str = ""
    batch_size: int = DEFAULT_BATCH_SIZE
    recipe: Recipe | None = None
    shard: tuple[int, int] | None = None
    clip_samples: int = config.CLIP_SAMPLES

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.labels)

    def split(self, name: str) -> Any:
        """The dataset of split ``name`` (``"train"``, ``"cv"`` or ``"test"``)."""
        return {"train": self.train, "cv": self.cv, "test": self.test}[name]

    def describe(self) -> str:
        """A few lines with the data's source, shapes, sizes and class weights (what the scripts print)."""
        weights = ", ".join(f"{self.labels[i]} {w:.2f}" for i, w in self.class_weight.items())
        lines = [
            f"data: {self.source} ({self.kind}, task {self.task}, {self.num_classes} classes)",
            f"  X batch: (batch_size={self.batch_size}, {', '.join(map(str, self.feature_shape))}) float32, "
            f"y batch: ({self.batch_size},) int32",
            "  rows: " + ", ".join(f"{name} {n:,}" for name, n in self.sizes.items()),
            f"  class weights: {weights}",
        ]
        return "\n".join(lines)

    def bundle_info(self) -> dict:
        """The keyword arguments of ``speechlib.inference.save_bundle`` that describe the data."""
        return {
            "kind": self.kind,
            "params": self.params,
            "normalization": self.normalization,
            "labels": self.labels,
            "task": self.task,
            "clip_samples": self.clip_samples,  # the length clips are fitted to (the store's; 1 s for Speech Commands)
            "input_shape": list(self.feature_shape),
        }


def _dataset(reader: Any, feature_shape: tuple[int, ...], *, num_classes: int | None = None) -> Any:
    """A ``tf.data.Dataset`` over a batch reader (one epoch per pass, new order each).

    ``num_classes``: the labels are soft, float32 (batch, num_classes) (mixup); else int32 (batch,).
    """
    import tensorflow as tf

    label = (
        tf.TensorSpec(shape=(None,), dtype=tf.int32)
        if num_classes is None
        else tf.TensorSpec(shape=(None, num_classes), dtype=tf.float32)
    )
    signature = (tf.TensorSpec(shape=(None, *feature_shape), dtype=tf.float32), label)
    ds = tf.data.Dataset.from_generator(reader.epoch, output_signature=signature)
    # A known length gives Keras' progress bar its total from the first epoch on.
    return ds.apply(tf.data.experimental.assert_cardinality(len(reader))).prefetch(2)


def _shuffle_window(fs: Any, split: str) -> int:
    """Chunks mixed per shuffling window: the whole split when it fits in ``SHUFFLE_BYTES``.

    Stores are written in manifest order, which is sorted by label: a window
    of a few chunks holds only two or three classes, and batches drawn from
    it make training swing from class to class (and batch-norm statistics
    with it). Mixing the whole split gives every batch every class.
    """
    X, _ = fs.open_split(split)
    chunks = -(-X.shape[0] // X.chunks[0])
    chunk_bytes = X.chunks[0] * int(np.prod(X.shape[1:])) * X.dtype.itemsize
    window = int(max(1, min(chunks, SHUFFLE_BYTES // max(chunk_bytes, 1))))
    if window < chunks:
        print(
            f"note: {split} of {fs.path} is larger than {SHUFFLE_BYTES / 2**30:.0f} GiB: shuffling within windows "
            f"of {window} of its {chunks} chunks (batches hold fewer classes than a full shuffle)"
        )
    return window


# --- The training recipe: what is augmented, and how ------------------------------------------


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the training data is augmented: every switch of the course's augmentations.

    Waveform augmentations (``speechlib.augment.Augmenter``, drawn anew for
    every clip in every epoch, before the features are computed): a time
    shift of up to ``max_shift`` seconds with zero fill, background noise
    from the *training split's own* noise (its noise regions, or its silence
    clips where the layout brings no recordings) at an SNR drawn from
    ``snr_db`` with probability ``noise_prob``, a gain drawn from
    ``gain_db`` half the time, and (off by default) speed perturbation
    (0.9-1.1, 80% of clips) and a time stretch.
    Then SpecAugment on the features (2 time masks of <= 10 frames, 2
    frequency masks of <= 5 bands) and, when ``mixup > 0``, mixup of pairs
    of clips in the batch with a weight drawn from Beta(mixup, mixup).

    With every waveform augmentation off the training split is read from the
    feature store as it was stored (only SpecAugment and mixup apply);
    otherwise the training clips are decoded once into memory (int16, 32 KB
    a clip) and featurized on the fly, batch by batch.

    Every random draw is a function of ``(seed, epoch, batch)``, so epoch
    ``e`` has the same data whether or not the run was resumed.
    """

    shift: bool = True
    noise: bool = True
    gain: bool = True
    spec_augment: bool = True
    speed: bool = False
    stretch: bool = False
    mixup: float = 0.0
    max_shift: float = 0.1  # seconds: the TensorFlow speech-commands example's time_shift_ms = 100
    noise_prob: float = 0.8  # the TensorFlow example's background_frequency
    snr_db: tuple[float, float] = (0.0, 20.0)  # uniform; 0 dB is as loud as the word
    gain_db: tuple[float, float] = (-6.0, 6.0)

    @property
    def on_waveform(self) -> bool:
        """True when some augmentation works on the waveform (the clips must be featurized on the fly)."""
        return self.shift or self.noise or self.gain or self.speed or self.stretch

    def augmenter(self, noise: Any = None) -> Any:
        """The ``speechlib.augment.Augmenter`` of this recipe (``noise``: a ``NoiseBank`` or None)."""
        from speechlib import augment

        return augment.Augmenter(
            noise=noise if self.noise else None,
            noise_prob=self.noise_prob if self.noise else 0.0,
            snr_db=tuple(self.snr_db),
            shift_prob=1.0 if self.shift else 0.0,
            max_shift=self.max_shift,
            gain_prob=0.5 if self.gain else 0.0,
            gain_db=tuple(self.gain_db),
            speed_prob=0.8 if self.speed else 0.0,
            stretch_prob=0.5 if self.stretch else 0.0,
            seed=None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (recorded with a trained model)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_args(cls, args: Any) -> Recipe:
        """The recipe of the scripts' flags (``--no_shift``, ``--no_noise``, ``--no_gain``, ``--no_spec_augment``,
        ``--stretch``, ``--mixup``); a flag that is absent keeps the default."""
        return cls(
            shift=not getattr(args, "no_shift", False),
            noise=not getattr(args, "no_noise", False),
            gain=not getattr(args, "no_gain", False),
            spec_augment=not getattr(args, "no_spec_augment", False),
            speed=bool(getattr(args, "speed", False)),
            stretch=bool(getattr(args, "stretch", False)),
            mixup=float(getattr(args, "mixup", 0.0) or 0.0),
        )


NO_AUGMENTATION = Recipe(shift=False, noise=False, gain=False, spec_augment=False)


def add_recipe_arguments(parser: Any) -> Any:
    """The augmentation flags of :class:`Recipe` (part of :func:`add_arguments`)."""
    group = parser.add_argument_group("augmentation (all on by default but stretch and mixup)")
    group.add_argument("--no_shift", action="store_true", help="no random time shift (up to 100 ms, zero fill)")
    group.add_argument("--no_noise", action="store_true", help="no background noise from the training split")
    group.add_argument("--no_gain", action="store_true", help="no random gain (-6 to +6 dB)")
    group.add_argument("--no_spec_augment", action="store_true", help="no SpecAugment on the features")
    group.add_argument("--speed", action="store_true", help="speed perturbation (0.9-1.1: pitch and tempo together)")
    group.add_argument("--stretch", action="store_true", help="random time stretch (0.85-1.15, phase vocoder; slow)")
    group.add_argument("--mixup", type=float, default=0.0, help="mixup with Beta(a, a) weights (default 0: off)")
    return parser


def _draw(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of batch ``index`` of epoch ``epoch``: a pure function of the three (exact resume)."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


class _Epochs:
    """What the batch classes share: ``len()`` batches of ``batch_size`` rows, one order per epoch, :meth:`epoch`.

    Subclasses set ``num_rows``, ``batch_size``, ``seed`` and ``epoch_index``
    and define ``__getitem__``.
    """

    num_rows: int
    batch_size: int
    seed: int
    epoch_index: int
    _order: tuple[int, np.ndarray] = (-1, np.arange(0))

    def __len__(self) -> int:
        return -(-self.num_rows // self.batch_size)

    def _rows(self, i: int, *, shuffle: bool = True) -> np.ndarray:
        """The rows of batch ``i`` of the current epoch: ``default_rng([seed, epoch]).permutation`` (or in order)."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} of {len(self)}")
        if self._order[0] != self.epoch_index:  # one permutation per epoch, not per batch
            rng = np.random.default_rng([self.seed, self.epoch_index])
            self._order = (self.epoch_index, rng.permutation(self.num_rows) if shuffle else np.arange(self.num_rows))
        return self._order[1][i * self.batch_size : (i + 1) * self.batch_size]

    def on_epoch_end(self) -> None:
        """Advance to the next epoch (a new order and new augmentations)."""
        self.epoch_index += 1

    def epoch(self):
        """The batches of the current epoch, then advance."""
        for i in range(len(self)):
            yield self[i]
        self.on_epoch_end()


class WaveformBatches(_Epochs):
    """Training batches featurized on the fly from clips held in memory, with the recipe's augmentation.

    The same interface as :class:`speechlib.store.BatchReader` (``len()``,
    ``reader[i]``, :meth:`on_epoch_end`, :meth:`epoch`, ``y``, ``num_rows``):
    epoch ``e`` visits every clip once in the order
    ``default_rng([seed, e]).permutation``; batch ``i`` is augmented with
    ``default_rng([seed, e, i])``, so any batch can be rebuilt alone.

    Parameters
    ----------
    waveforms : np.ndarray, shape (n, n_samples), int16 or float32
        The clips, fitted to the clip length (int16: full scale 32768).
    y : np.ndarray, shape (n,), int
    kind, params : str, dict
        The store's feature kind and parameters (``speechlib.features.compute_batch``).
    normalization : dict
        ``mean`` and ``std`` per band (the store's, fitted on the un-augmented train split).
    recipe : Recipe
    noise : speechlib.augment.NoiseBank, optional
    batch_size : int
    seed : int
    num_classes : int
        For mixup's soft labels.
    """

    def __init__(
        self,
        waveforms: np.ndarray,
        y: np.ndarray,
        *,
        kind: str,
        params: dict,
        normalization: dict,
        recipe: Recipe,
        noise: Any = None,
        batch_size: int = 64,
        seed: int = config.SEED,
        num_classes: int = 12,
    ) -> None:
        from speechlib import augment

        self.waveforms = waveforms
        self.y = np.asarray(y, dtype=np.int32)
        self.num_rows = int(self.y.shape[0])
        self.kind, self.params = kind, dict(params)
        self.normalization = {k: np.asarray(normalization[k], dtype=np.float32) for k in ("mean", "std")}
        self.recipe = recipe
        self.augmenter = recipe.augmenter(noise) if recipe.on_waveform else None
        self.spec = augment.SpecAugment() if recipe.spec_augment else None
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.num_classes = int(num_classes)
        self.epoch_index = 0

    def _clips(self, index: np.ndarray) -> np.ndarray:
        clips = self.waveforms[index]
        if clips.dtype == np.int16:
            clips = clips.astype(np.float32) / np.float32(32768.0)
        return clips

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        index = self._rows(i)
        rng = _draw(self.seed, self.epoch_index, i)
        clips = self._clips(index)
        if self.augmenter is not None:
            clips = np.stack([self.augmenter(clip, rng=rng) for clip in clips])
        from speechlib import features

        X = features.normalize(features.compute_batch(clips, self.kind, **self.params), self.normalization)
        if self.spec is not None:
            X = self.spec(X, rng=rng)
        return mixup_batch(X.astype(np.float32, copy=False), self.y[index], alpha=self.recipe.mixup, rng=rng,
                           num_classes=self.num_classes)  # fmt: skip


class _StoredBatches(_Epochs):
    """``transform`` for a store reader: SpecAugment (and mixup) drawn from ``(seed, epoch, batch)``."""

    def __init__(self, reader: Any, recipe: Recipe, *, seed: int, num_classes: int) -> None:
        from speechlib import augment

        self.reader, self.recipe, self.seed, self.num_classes = reader, recipe, int(seed), int(num_classes)
        self.spec = augment.SpecAugment() if recipe.spec_augment else None
        self.y = reader.y
        self.num_rows = reader.num_rows

    def __len__(self) -> int:
        return len(self.reader)

    @property
    def epoch_index(self) -> int:
        return self.reader.epoch_index

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        X, y = self.reader[i]
        rng = _draw(self.seed, self.reader.epoch_index, i)
        if self.spec is not None:
            X = self.spec(X, rng=rng)
        return mixup_batch(X, y, alpha=self.recipe.mixup, rng=rng, num_classes=self.num_classes)

    def on_epoch_end(self) -> None:
        self.reader.on_epoch_end()


class _ShardBatches(_Epochs):
    """Batches of one worker's rows of a store's split (:func:`shard_rows`), held in memory, normalised.

    The interface of :class:`speechlib.store.BatchReader`; the rows are read
    chunk by chunk, keeping only this worker's; with ``shuffle`` epoch ``e``
    visits them in the order ``default_rng([seed, e]).permutation``.
    """

    def __init__(self, fs: Any, split: str, shard: tuple[int, int], *, batch_size: int, shuffle: bool, seed: int):
        X, y = fs.open_split(split)
        rows = shard_rows(int(X.shape[0]), shard)
        step = int(X.chunks[0])
        parts = []
        for start in range(0, int(X.shape[0]), step):
            mine = rows[(rows >= start) & (rows < start + step)]
            if len(mine):
                parts.append(np.asarray(X[start : start + step])[mine - start])
        self.X = fs.normalize(np.concatenate(parts)) if parts else np.zeros((0, *X.shape[1:]), np.float32)
        self.y = np.asarray(y[:], dtype=np.int32)[rows]
        self.num_rows = len(rows)
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.epoch_index = 0

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self._rows(i, shuffle=self.shuffle)
        return self.X[rows], self.y[rows]


def mixup_batch(
    X: np.ndarray, y: np.ndarray, *, alpha: float, rng: np.random.Generator, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018, arXiv:1710.09412) of a batch with a shuffled copy of itself.

    With ``alpha <= 0`` the batch is returned unchanged (integer labels).
    Otherwise each row ``j`` becomes ``lam_j X_j + (1 - lam_j) X_p(j)`` with
    ``lam_j ~ Beta(alpha, alpha)`` (kept >= 0.5, so the row's own clip
    dominates) and its label the same mix of one-hot vectors: y float32,
    shape (batch, num_classes).
    """
    if alpha <= 0:
        return X, np.asarray(y, dtype=np.int32)
    lam = rng.beta(alpha, alpha, size=len(y)).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)
    partner = rng.permutation(len(y))
    onehot = np.eye(num_classes, dtype=np.float32)[np.asarray(y)]
    shape = (-1,) + (1,) * (X.ndim - 1)
    X = lam.reshape(shape) * X + (1 - lam.reshape(shape)) * X[partner]
    return X.astype(np.float32), lam[:, None] * onehot + (1 - lam[:, None]) * onehot[partner]


def shard_rows(num_rows: int, shard: tuple[int, int] | None) -> np.ndarray:
    """The rows of one worker: ``index::count`` of the first ``count * (num_rows // count)`` rows.

    Every worker gets the same number of rows (up to ``count - 1`` rows at the
    end are left out), so every worker runs the same number of steps: in
    synchronous training a worker that ran one step more would wait for its
    peers' gradients forever. Stores are written in label order, so a stride
    gives each worker every class in the same proportions.
    """
    if shard is None:
        return np.arange(num_rows)
    index, count = int(shard[0]), int(shard[1])
    if not 0 <= index < count:
        raise ValueError(f"shard {shard}: the index must be in [0, {count})")
    return np.arange(index, num_rows - num_rows % count, count)


def _train_waveforms(fs: Any, split: str, shard: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The clips of a store's split (its un-augmented rows, or one shard of them) as int16 waveforms fitted as the
    featurizer fits them."""
    from speechlib import audio

    rows = fs.manifest(split)
    rows = rows[rows["augment"] == 0]
    rows = rows.iloc[shard_rows(len(rows), shard)]
    clips = np.empty((len(rows), fs.clip_samples), dtype=np.int16)
    for j, row in enumerate(rows.to_dict("records")):
        clip = audio.fix_length(audio.load_row(row), length=fs.clip_samples)
        clips[j] = np.round(np.clip(clip, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)
    return clips, rows["label_id"].to_numpy(np.int32)


def noise_bank(fs: Any, split: str = "train") -> Any:
    """Background noise of one split only, for noise augmentation: a ``speechlib.augment.NoiseBank`` or None.

    The split's ``noise_regions`` of ``split.json`` (disjoint sample ranges of
    the noise recordings); where the layout has no recordings (the official
    test-set layout), the split's own silence clips.
    """
    from speechlib import augment
    from speechlib import split as split_module

    split_dir = fs.attrs.get("split_dir")
    if split_dir and (Path(split_dir) / "split.json").is_file():
        regions = split_module.load_info(split_dir).get("noise_regions", {}).get(split) or []
        if regions:
            return augment.NoiseBank(regions, length=fs.clip_samples)
    rows = fs.manifest(split)
    if "path" not in rows:
        return None
    silence = rows[(rows["label"] == config.SILENCE_LABEL) & (rows["path"].fillna("") != "") & (rows["augment"] == 0)]
    regions = []
    for r in silence.to_dict("records"):
        start = int(r.get("offset") or 0)
        length = int(r.get("num_samples") or 0)  # 0: the whole file
        if not length:
            import soundfile

            length = round(soundfile.info(r["path"]).duration * config.SAMPLE_RATE) - start
        regions.append({"path": r["path"], "relpath": r.get("relpath", ""), "start": start, "stop": start + length})
    return augment.NoiseBank(regions, length=fs.clip_samples) if regions else None


def load_data(
    store_path: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = config.SEED,
    recipe: Recipe | None = None,
    spec_augment: bool | None = None,
    splits: tuple[str, str, str] = ("train", "cv", "test"),
    initial_epoch: int = 0,
    shard: tuple[int, int] | None = None,
    train_every: int = 1,
) -> Data:
    """Train / cv / test pipelines from a feature store, the training batches augmented by ``recipe``.

    Parameters
    ----------
    store_path : str or Path
        A feature store (``speechlib featurize`` or :func:`speechlib.pipeline.prepare`).
    batch_size : int
    seed : int
        Seed of the shuffling and of every augmentation (epoch ``e``, batch ``i``: ``(seed, e, i)``).
    recipe : Recipe, optional
        The augmentation (default :class:`Recipe`: shift, noise, gain and SpecAugment).
        With no waveform augmentation the stored features are read as they are.
    spec_augment : bool, optional
        Shorthand that overrides ``recipe.spec_augment``.
    splits : (str, str, str)
        Store splits used as train, cv and test (e.g. ``("sample_train", "sample_cv", "sample_test")``).
    initial_epoch : int
        Epoch to start from (a resumed run continues the sequence of orders and augmentations).
    shard : (int, int), optional
        ``(index, count)``: read only this worker's rows of train and cv (:func:`shard_rows`), for
        data-parallel training on ``count`` workers; ``batch_size`` is then the batch of one worker.
        The test split is read whole. Worker ``index`` shuffles and augments with the seed
        ``seed + index``: with one seed for all, the workers' shards (every ``count``-th row of
        a store in label order) would be visited in the same order and augmented with the same
        draws, so each global batch would hold neighbouring rows (often one speaker saying
        the same word twice) with identical shifts, noise and masks.
    train_every : int
        Train on every ``train_every``-th clip of the training split only (stores are written in
        label order, so the stride keeps every class in its proportion): a smaller, equal budget
        for a comparison of many models. cv and test are read whole. Not with ``shard``.

    Returns
    -------
    Data
        ``train`` yields normalised, augmented batches (y int32, or float32
        soft labels with mixup); ``cv`` and ``test`` the stored features, normalised.

    Raises
    ------
    speechlib.store.StoreError, speechlib.store.IncompleteStoreError
        A split is missing or unfinished, or the store has no normalisation statistics.
    """
    recipe = Recipe() if recipe is None else recipe
    if spec_augment is not None:
        recipe = dataclasses.replace(recipe, spec_augment=bool(spec_augment))
    if train_every < 1 or (train_every > 1 and shard is not None):
        raise ValueError(f"train_every must be at least 1 and cannot be combined with shard, got {train_every}")
    fs, norm = _normalized_store(store_path)
    train_name, cv_name, test_name = splits
    train_rows = shard if shard is not None else ((0, int(train_every)) if train_every > 1 else None)
    recipe = _recipe_for_store(fs, train_name, recipe)
    train_seed = seed + (int(shard[0]) if shard is not None else 0)  # each worker its own order and draws
    readers = {
        "train": _train_reader(fs, train_name, train_rows, recipe, norm, batch_size=batch_size, seed=train_seed),
        "cv": _cv_reader(fs, cv_name, shard, batch_size=batch_size, seed=seed),
        "test": fs.batches(test_name, batch_size=batch_size, shuffle=False, normalize=True),
    }
    for _ in range(initial_epoch):  # a resumed run continues the sequence of orders and draws
        readers["train"].on_epoch_end()
    return _store_data(fs, norm, readers, recipe=recipe, batch_size=batch_size, shard=shard)


def _normalized_store(store_path: str | Path) -> tuple[Any, dict]:
    """The FeatureStore and its normalisation statistics (a StoreError when it has none)."""
    from speechlib.store import FeatureStore, StoreError

    fs = FeatureStore(store_path)
    norm = fs.normalization
    if norm is None:
        raise StoreError(f"{fs.path} has no normalisation statistics: featurize its train split first")
    return fs, norm


def _recipe_for_store(fs: Any, train_name: str, recipe: Recipe) -> Recipe:
    """``recipe`` without its waveform augmentation when the training split has no audio files (with a note)."""
    if recipe.on_waveform and "path" not in fs.manifest(train_name):
        print(
            f"note: the {train_name} split of {fs.path} has no manifest of audio files (imported features): "
            "training without waveform augmentation (shift, noise, gain, stretch) on its stored features"
        )
        recipe = dataclasses.replace(recipe, shift=False, noise=False, gain=False, speed=False, stretch=False)
    return recipe


def _train_reader(fs: Any, train_name: str, train_rows: tuple[int, int] | None, recipe: Recipe, norm: dict, *,
                  batch_size: int, seed: int) -> Any:  # fmt: skip
    """The training batches: augmented waveforms, or stored features (a shard, or the whole split shuffled)."""
    if recipe.on_waveform:
        waveforms, y = _train_waveforms(fs, train_name, train_rows)
        return WaveformBatches(
            waveforms, y, kind=fs.kind, params=fs.params, normalization=norm, recipe=recipe,
            noise=noise_bank(fs, train_name) if recipe.noise else None, batch_size=batch_size, seed=seed,
            num_classes=fs.num_classes,
        )  # fmt: skip
    if train_rows is not None:
        stored = _ShardBatches(fs, train_name, train_rows, batch_size=batch_size, shuffle=True, seed=seed)
    else:
        stored = fs.batches(
            train_name, batch_size=batch_size, shuffle=True, seed=seed,
            window_chunks=_shuffle_window(fs, train_name), normalize=True,
        )  # fmt: skip
    return _StoredBatches(stored, recipe, seed=seed, num_classes=fs.num_classes)


def _cv_reader(fs: Any, cv_name: str, shard: tuple[int, int] | None, *, batch_size: int, seed: int) -> Any:
    """The cv batches in stored order: the whole split, or this worker's shard."""
    if shard is None:
        return fs.batches(cv_name, batch_size=batch_size, shuffle=False, normalize=True)
    return _ShardBatches(fs, cv_name, shard, batch_size=batch_size, shuffle=False, seed=seed)


def _store_data(fs: Any, norm: dict, readers: dict, *, recipe: Recipe, batch_size: int,
                shard: tuple[int, int] | None) -> Data:  # fmt: skip
    """The :class:`Data` of a store's readers: datasets, class weights from train, the split's task."""
    counts = np.bincount(readers["train"].y, minlength=fs.num_classes)
    split_info = {}
    if fs.attrs.get("split_dir") and (Path(fs.attrs["split_dir"]) / "split.json").is_file():
        from speechlib import split as split_module

        split_info = split_module.load_info(fs.attrs["split_dir"])
    soft = recipe.mixup > 0
    return Data(
        train=_dataset(readers["train"], fs.feature_shape, num_classes=fs.num_classes if soft else None),
        cv=_dataset(readers["cv"], fs.feature_shape),
        test=_dataset(readers["test"], fs.feature_shape),
        labels=fs.labels,
        feature_shape=tuple(fs.feature_shape),
        kind=fs.kind,
        params=fs.params,
        normalization={"mean": norm["mean"], "std": norm["std"]},
        class_weight=class_weights(counts),
        sizes={name: readers[name].num_rows for name in readers},
        task=split_info.get("task", "kaggle12"),
        source=str(fs.path),
        batch_size=batch_size,
        recipe=recipe,
        shard=None if shard is None else (int(shard[0]), int(shard[1])),
        clip_samples=fs.clip_samples,
    )


def random_data(
    *,
    feature_shape: tuple[int, ...] | None = None,
    labels: list[str] | None = None,
    batch_size: int = 64,
    seed: int = config.SEED,
    sizes: dict[str, int] | None = None,
) -> Data:
    """Random inputs of the right shape and random labels, for debugging (``--random_data``).

    X is standard normal (as normalised features are), y uniform over the
    classes; the model cannot learn anything from it, so accuracy stays at
    chance. Feature parameters are the log-mel defaults; the normalisation is
    the identity.
    """
    import tensorflow as tf

    from speechlib import features

    kind = "logmel"
    params = features.resolve_params(kind)
    feature_shape = tuple(feature_shape or features.output_shape(kind, **params))
    labels = list(labels or config.KAGGLE12_LABELS)
    sizes = dict(sizes or RANDOM_SIZES)
    rng = np.random.default_rng(seed)
    datasets = {}
    for name, n in sizes.items():
        X = rng.standard_normal((n, *feature_shape)).astype(np.float32)
        y = rng.integers(0, len(labels), n).astype(np.int32)
        ds = tf.data.Dataset.from_tensor_slices((X, y))
        if name == "train":
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        datasets[name] = ds.batch(batch_size)
    bins = feature_shape[-1]
    return Data(
        train=datasets["train"],
        cv=datasets["cv"],
        test=datasets["test"],
        labels=labels,
        feature_shape=feature_shape,
        kind=kind,
        params=params,
        normalization={"mean": np.zeros(bins, np.float32), "std": np.ones(bins, np.float32)},
        class_weight=class_weights(np.ones(len(labels))),
        sizes=sizes,
        task="kaggle12",
        source="random",
        batch_size=batch_size,
    )


def default_out(store_path: str | Path | None, logrun: str) -> Path:
    """Where a run's files go: ``<work dir>/models/<logrun>`` beside the store's ``features/`` folder.

    For a store at ``<work>/features/<kind>`` that is ``<work>/models/<logrun>``;
    otherwise (a store elsewhere, or random data) ``<project home>/models/<logrun>``.
    """
    if store_path is not None:
        store_path = Path(store_path).resolve()
        if store_path.parent.name == "features":
            return store_path.parent.parent / "models" / logrun
    return config.project_home() / "models" / logrun


def lr_schedule(*, lr: float, steps_per_epoch: int, epochs: int) -> Any:
    """The learning rate as a function of the step: linear warm-up, then cosine decay to 0.

    From ``lr / 10`` to ``lr`` over ``WARMUP_EPOCHS`` epochs (at most half the run),
    then ``keras.optimizers.schedules.CosineDecay`` down to 0 at ``epochs * steps_per_epoch``.
    A pure function of the optimizer's step count, so a resumed run continues on the same
    curve; used by :func:`compile_model` and by ``speechlib.tfmodel``.
    """
    import keras

    total = max(1, epochs * steps_per_epoch)
    warmup = min(WARMUP_EPOCHS * steps_per_epoch, total // 2)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr * 0.1 if warmup else lr,
        decay_steps=max(1, total - warmup),
        warmup_target=lr if warmup else None,
        warmup_steps=warmup,
    )


def compile_model(model: Any, *, lr: float, steps_per_epoch: int, epochs: int, soft_labels: bool = False) -> Any:
    """Compile with Adam, a warm-up + cosine learning-rate schedule, the from-logits loss and accuracy.

    Parameters
    ----------
    model : keras.Model
        Outputs logits (``speechlib.models``).
    lr : float
        Peak learning rate, reached after ``WARMUP_EPOCHS``.
    steps_per_epoch, epochs : int
        Length of the schedule: the rate decays to 0 over ``epochs * steps_per_epoch`` steps.
    soft_labels : bool
        The labels are class distributions (mixup): categorical instead of sparse cross-entropy.
    """
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(lr_schedule(lr=lr, steps_per_epoch=steps_per_epoch, epochs=epochs)),
        loss=_soft_or_sparse()[0]() if soft_labels else keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[_soft_or_sparse()[1](name="accuracy")] if soft_labels else ["accuracy"],
    )
    return model


_SOFT_OR_SPARSE: tuple | None = None


def _soft_or_sparse() -> tuple:
    """A cross-entropy and an accuracy for logits that take soft labels (mixup batches) and label ids (cv).

    Registered with Keras (``speechlib>...``), so a checkpoint compiled with them loads again.
    """
    global _SOFT_OR_SPARSE
    if _SOFT_OR_SPARSE is None:
        import keras

        def ids(y_true, y_pred):
            if len(y_true.shape) == len(y_pred.shape):
                return keras.ops.argmax(y_true, axis=-1)
            return keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int64")

        @keras.saving.register_keras_serializable(package="speechlib")
        class SoftOrSparseCrossentropy(keras.losses.Loss):
            def call(self, y_true, y_pred):
                if len(y_true.shape) == len(y_pred.shape):
                    return keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=True)
                return keras.losses.sparse_categorical_crossentropy(ids(y_true, y_pred), y_pred, from_logits=True)

        @keras.saving.register_keras_serializable(package="speechlib")
        class SoftOrSparseAccuracy(keras.metrics.MeanMetricWrapper):
            def __init__(self, name="accuracy", dtype=None):
                def accuracy(y_true, y_pred):
                    hit = keras.ops.equal(ids(y_true, y_pred), keras.ops.argmax(y_pred, axis=-1))
                    return keras.ops.cast(hit, "float32")

                super().__init__(accuracy, name=name, dtype=dtype)

            def get_config(self):
                return {"name": self.name, "dtype": self.dtype}

        _SOFT_OR_SPARSE = (SoftOrSparseCrossentropy, SoftOrSparseAccuracy)
    return _SOFT_OR_SPARSE


# ---------------------------------------------------------------------------
# Exact resume: the whole training state in one file, written atomically
# ---------------------------------------------------------------------------

BACKUP_FORMAT = 1  # of backup/state.npz; a backup of another format is refused with a message


class ResumeError(InputError):
    """A backup that cannot be resumed from (unreadable, of another model or format); printed as one line."""


def _atomic_write(path: Path, write) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, flush it to disk, then rename it to ``path``.

    A kill at any moment leaves either the old file or the new one, never a
    part of one. The temporary name keeps the suffix (Keras wants ``.keras``).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _log_row(epoch: int, logs: dict | None) -> dict:
    """One row of the CSV log: the epoch and every value Keras logged for it."""
    return {"epoch": int(epoch), **{k: float(v) for k, v in sorted((logs or {}).items())}}


def _write_log(path: Path, rows: list[dict]) -> None:
    """Rewrite the CSV log with ``rows`` (atomically)."""
    import pandas as pd

    _atomic_write(path, lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))


@dataclasses.dataclass
class Backup:
    """A training state read from ``backup/state.npz`` (:func:`load_backup`).

    Attributes
    ----------
    path : Path
        The file.
    meta : dict
        ``epoch`` (epochs done), ``stopped`` (early stopping ended the run),
        ``rows`` (the CSV log up to that epoch), ``early_stopping`` and
        ``checkpoint`` state, ``run`` (epochs, lr, steps per epoch, data),
        the model's variable names and shapes, and the Python / numpy
        random states.
    arrays : dict of str to np.ndarray
        ``model/<i>``, ``optimizer/<i>``, ``best/<i>`` (the early-stopping
        best weights) and ``numpy_random``.
    """

    path: Path
    meta: dict
    arrays: dict

    @property
    def epoch(self) -> int:
        """Epochs done."""
        return int(self.meta["epoch"])

    def values(self, group: str) -> list[np.ndarray]:
        """The arrays of ``group`` (``"model"``, ``"optimizer"`` or ``"best"``), in order."""
        return [self.arrays[f"{group}/{i}"] for i in range(int(self.meta["counts"][group]))]


def _backup_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / BACKUP_DIR / BACKUP_FILE


def load_backup(out_dir: str | Path, *, arrays: bool = True) -> Backup | None:
    """The training state saved in ``out_dir/backup/state.npz``, or None when there is none.

    Parameters
    ----------
    out_dir : str or Path
        The run's output folder.
    arrays : bool
        Read the weights too (False: only the metadata, e.g. the epoch).

    Raises
    ------
    speechlib.pipeline.InputError
        (``ResumeError``) The file is truncated or corrupt, or written by an
        older speechlib (Keras' ``latest.weights.h5``): the message names it
        and says how to start over.
    """
    path = _backup_path(out_dir)
    again = f"delete {path.parent} (or run without --resume) to train from the first epoch"
    if not path.is_file():
        older = sorted(path.parent.glob("*.weights.h5")) if path.parent.is_dir() else []
        if older:
            raise ResumeError(f"{older[0]} is a backup of an older speechlib, which cannot be resumed exactly: {again}")
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            values = {key: f[key] for key in f.files if key != "meta"} if arrays else {}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ResumeError(f"cannot resume from {path}: the file is truncated or corrupt ({err}); {again}") from err
    if meta.get("format") != BACKUP_FORMAT:
        raise ResumeError(f"{path} is a backup of format {meta.get('format')}, not {BACKUP_FORMAT}: {again}")
    return Backup(path=path, meta=meta, arrays=values)


def resume_epoch(out_dir: str | Path) -> int:
    """Epochs done by the backup in ``out_dir`` (0 when there is none): the ``initial_epoch`` of the data."""
    state = load_backup(out_dir, arrays=False)
    return 0 if state is None else state.epoch


def save_backup(out_dir: str | Path, model: Any, *, epoch: int, stopped: bool, rows: list[dict], callbacks_state: dict,
                run: dict) -> Path:  # fmt: skip
    """Save every piece of training state after ``epoch`` epochs, atomically, in ``out_dir/backup/state.npz``.

    What a resumed run needs to continue exactly as an uninterrupted one:
    all the model's variables (weights, batch-norm statistics and the state
    of each dropout layer's ``SeedGenerator``), all the optimizer's (step
    count, which drives the learning-rate schedule, and the moments), the
    early-stopping state (best value, epoch and weights, wait count), the
    best checkpoint's value, the CSV log's rows, and the Python and numpy
    global random states. The data of an epoch is a function of the seed and
    the epoch (``load_data(initial_epoch=...)``), so it is not saved.

    Parameters
    ----------
    out_dir : str or Path
    model : keras.Model
        Compiled, its optimizer built.
    epoch : int
        Epochs done.
    stopped : bool
        Early stopping ended the run after this epoch.
    rows : list of dict
        The CSV log's rows so far.
    callbacks_state : dict
        ``early_stopping`` (wait, best, best_epoch, stopped_epoch, best_weights) and ``checkpoint`` (best).
    run : dict
        The settings of the run (epochs, lr, steps per epoch, data), compared on resume.

    Returns
    -------
    Path
        The file written.
    """
    path = _backup_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    stopping = dict(callbacks_state["early_stopping"])
    best_weights = stopping.pop("best_weights") or []
    groups = {
        "model": [np.asarray(v.numpy()) for v in model.variables],
        "optimizer": [np.asarray(v.numpy()) for v in model.optimizer.variables],
        "best": [np.asarray(w) for w in best_weights],
    }
    arrays = {f"{group}/{i}": value for group, values in groups.items() for i, value in enumerate(values)}
    numpy_state = np.random.get_state()  # noqa: NPY002 - the global state keras.utils.set_random_seed seeds
    arrays["numpy_random"] = numpy_state[1]
    meta = {
        "format": BACKUP_FORMAT,
        "epoch": int(epoch),
        "stopped": bool(stopped),
        "rows": rows,
        "early_stopping": stopping,
        "checkpoint": callbacks_state["checkpoint"],
        "run": run,
        "counts": {group: len(values) for group, values in groups.items()},
        "variables": [[v.path, list(v.shape)] for v in model.variables],
        "python_random": random.getstate(),
        "numpy_random": [numpy_state[0], *(float(x) for x in numpy_state[2:])],
    }
    arrays["meta"] = np.array(json.dumps(meta, default=float))
    _atomic_write(path, lambda tmp: np.savez(tmp, **arrays))
    return path


def _assign_all(variables: list, values: list[np.ndarray], what: str, path: Path) -> None:
    """Give ``variables`` the saved ``values``; a count or shape mismatch is a :func:`ResumeError`."""
    shapes = [tuple(v.shape) for v in variables]
    saved = [tuple(a.shape) for a in values]
    if shapes != saved:
        raise ResumeError(
            f"{path} holds the {what} of another model ({len(saved)} variables, not {len(shapes)} of these shapes): "
            "resume with the --model and data of that run, or pass another --out"
        )
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def _restore(model: Any, state: Backup, *, checkpoint: Any, stopping: Any) -> None:
    """Put every piece of the saved training state back (the inverse of :func:`save_backup`)."""
    _assign_all(model.variables, state.values("model"), "model variables", state.path)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    _assign_all(model.optimizer.variables, state.values("optimizer"), "optimizer variables", state.path)
    saved = state.meta["early_stopping"]
    stopping.wait, stopping.best = int(saved["wait"]), saved["best"]
    stopping.best_epoch, stopping.stopped_epoch = int(saved["best_epoch"]), int(saved["stopped_epoch"])
    stopping.best_weights = state.values("best") or None
    checkpoint.best = state.meta["checkpoint"]["best"]
    version, internal, gauss = state.meta["python_random"]
    random.setstate((version, tuple(internal), gauss))
    name, pos, has_gauss, cached = state.meta["numpy_random"]
    np.random.set_state((name, state.arrays["numpy_random"], int(pos), int(has_gauss), cached))  # noqa: NPY002


def _best_checkpoint(path: Path, monitor: str = "val_accuracy", start_from_epoch: int = 0):
    """The best model on ``monitor`` (higher is better) saved to ``path`` after each better epoch, atomically.

    Epochs before ``start_from_epoch`` (0-based) are not candidates, as in
    ``keras.callbacks.EarlyStopping(start_from_epoch=...)``.
    """
    import keras

    class ModelCheckpoint(keras.callbacks.Callback):
        """Saves the whole model to ``filepath`` when ``monitor`` beats ``best`` (a temporary file, then a rename)."""

        def __init__(self):
            super().__init__()
            self.filepath, self.monitor, self.best = str(path), monitor, None

        def on_epoch_end(self, epoch, logs=None):
            current = (logs or {}).get(self.monitor)
            if epoch < start_from_epoch:
                return
            if current is not None and (self.best is None or float(current) > self.best):
                self.best = float(current)
                _atomic_write(path, self.model.save)

    return ModelCheckpoint()


def _cv_macro_f1(data: Data):
    """A callback that adds ``val_macro_f1`` (macro F1 of the model on ``data.cv``) to each epoch's logs.

    It runs first, so the checkpoint, early stopping and the CSV log see the
    value. Macro F1 weighs every class equally: on a split where one class
    (``unknown``) is most of the clips, an epoch that answers it for everything
    has a high accuracy and a macro F1 near 0, so this is the measure to follow
    when models that may collapse onto the majority class are compared.
    """
    import keras

    from speechlib import evaluate

    class CvMacroF1(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                y_true, proba = predict_split(self.model, data, "cv")
                scores = evaluate.classification_metrics(y_true, proba.argmax(axis=1), data.labels)
                logs["val_macro_f1"] = scores["macro_f1"]  # as the comparison scores a model

    return CvMacroF1()


def _backup_and_restore(out_dir: Path, state: Backup | None, *, checkpoint: Any, stopping: Any):
    """The callback that restores ``state`` when training begins and saves the whole state after each epoch."""
    import keras

    class BackupAndRestore(keras.callbacks.Callback):
        """Exact resume (:func:`save_backup`): replaces Keras' callback, which saves weights and epoch only."""

        def __init__(self):
            super().__init__()
            self.path = _backup_path(out_dir)
            self.state = state
            self.initial_epoch = 0 if state is None else state.epoch
            self.rows = [] if state is None else list(state.meta["rows"])
            self.run: dict = {}

        def on_train_begin(self, logs=None):
            if self.state is not None:
                _restore(self.model, self.state, checkpoint=checkpoint, stopping=stopping)

        def on_epoch_end(self, epoch, logs=None):
            self.rows.append(_log_row(epoch, logs))
            weights = stopping.best_weights
            early_stopping = {
                "wait": int(stopping.wait),
                "best": None if stopping.best is None else float(stopping.best),
                "best_epoch": int(stopping.best_epoch),
                "stopped_epoch": int(stopping.stopped_epoch),
                "best_weights": None if weights is None else list(weights),
            }
            save_backup(
                out_dir, self.model, epoch=epoch + 1, stopped=bool(self.model.stop_training), rows=self.rows,
                callbacks_state={"early_stopping": early_stopping, "checkpoint": {"best": checkpoint.best}},
                run=self.run,
            )  # fmt: skip

    return BackupAndRestore()


def run_script(main, args: Any, *, prog: str) -> int:
    """Run a training script's ``main(args)``; return its exit code.

    Bad input (:class:`speechlib.pipeline.InputError`, and the store's own
    errors) is printed as one line, ``<prog>: error: <message>``, on stderr
    with exit code 2, as argparse does for a bad flag; Ctrl-C prints how to
    continue and exits with 130. Anything else is a bug and keeps its traceback.
    """
    from speechlib.store import IncompleteStoreError, StoreError

    try:
        main(args)
    except (InputError, StoreError, IncompleteStoreError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run the same command with --resume to continue", file=sys.stderr)
        return 130
    return 0


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Adds ``seconds`` (wall-clock time of the epoch, validation included) to the epoch's logs."""

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["seconds"] = time.perf_counter() - self._start

    return EpochTimer()


def read_log(out_dir: str | Path):
    """The CSV log of a run (one row per epoch, resumed runs appended) as a DataFrame."""
    import pandas as pd

    path = Path(out_dir) / LOG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: no training run has written to {Path(out_dir)}")
    return pd.read_csv(path)


def callbacks(
    out_dir: str | Path,
    *,
    logdir: str | Path | None = None,
    resume: bool = False,
    patience: int = PATIENCE,
    monitor: str = "val_accuracy",
    min_epochs: int = 0,
    data: Data | None = None,
) -> list:
    """The training callbacks (see the module docstring), in the order they must run.

    Parameters
    ----------
    out_dir : str or Path
        Where ``best.keras``, ``backup/state.npz`` and ``training_log.csv`` go.
    logdir : str or Path, optional
        TensorBoard log folder (``<logdir>/<logrun>``); None: no TensorBoard.
    resume : bool
        Restore the backup (and the CSV log as it was at that epoch); otherwise both start afresh.
    patience : int
        Epochs without a better ``monitor`` before stopping.
    monitor : str
        One of :data:`MONITORS`: what early stopping and ``best.keras`` follow;
        ``val_macro_f1`` is computed on ``data.cv`` at the end of every epoch.
    min_epochs : int
        Epochs that always run: neither early stopping nor the best checkpoint
        looks at the epochs before it (a model that starts slowly under heavy
        augmentation is not stopped before it has begun to learn).
    data : Data, optional
        Needed for ``monitor="val_macro_f1"``.

    Returns
    -------
    list of keras.callbacks.Callback
        (``CvMacroF1`` first, for ``val_macro_f1``), ``EpochTimer``, ``ModelCheckpoint``,
        ``EarlyStopping``, ``CSVLogger``,
        ``TensorBoard`` (with ``logdir``) and last ``BackupAndRestore``, which
        restores the others' state at the start of training and saves it after
        every epoch; its ``initial_epoch`` is the epoch to pass to ``model.fit``.

    Raises
    ------
    speechlib.pipeline.InputError
        ``out_dir`` is a file; with ``resume``, the backup is unreadable (:class:`ResumeError`).
    """
    import keras

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise InputError(f"output folder {out_dir} is a file (or inside one): pass another --out") from err
    state = load_backup(out_dir) if resume else None
    if state is None:  # a fresh run: no backup, no log rows of an earlier run
        if resume:
            print(f"note: nothing to resume in {out_dir / BACKUP_DIR}: training from the first epoch")
        shutil.rmtree(out_dir / BACKUP_DIR, ignore_errors=True)
        (out_dir / LOG_FILE).unlink(missing_ok=True)
    else:  # the log as it was at the backup's epoch (a killed epoch may have written no row, or its row only)
        _write_log(out_dir / LOG_FILE, list(state.meta["rows"]))
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {MONITORS}, got {monitor!r}")
    if monitor == "val_macro_f1" and data is None:
        raise ValueError("monitor='val_macro_f1' needs data= (its cv split is scored every epoch)")
    checkpoint = _best_checkpoint(out_dir / BEST_FILE, monitor, start_from_epoch=int(min_epochs))
    stopping = keras.callbacks.EarlyStopping(
        monitor=monitor, mode="max", patience=patience, restore_best_weights=True, verbose=1,
        start_from_epoch=int(min_epochs),
    )  # fmt: skip
    result = [
        *([_cv_macro_f1(data)] if monitor == "val_macro_f1" else []),  # before everything that reads it
        _epoch_timer(),  # first: adds `seconds` before the loggers write the epoch
        checkpoint,
        stopping,
        keras.callbacks.CSVLogger(str(out_dir / LOG_FILE), append=True),  # a row per epoch, flushed at once
    ]
    if logdir is not None:
        result.append(keras.callbacks.TensorBoard(log_dir=str(logdir), write_graph=False, profile_batch=0))
    # last: it saves the state the others reached in the epoch, and restores theirs after they reset it
    result.append(_backup_and_restore(out_dir, state, checkpoint=checkpoint, stopping=stopping))
    return result


def auto_epochs(num_rows: int, batch_size: int, *, steps: int | None = None, low: int = 10, high: int = 300) -> int:
    """Epochs that make about ``steps`` optimizer steps over ``num_rows`` training rows (within [low, high]).

    ``steps`` defaults to ``DEFAULT_STEPS`` (``SMALL_STEPS`` in small mode).

    A budget in steps, not epochs, is what a model needs to converge: 4,000
    steps are 105 epochs of the 2,400-clip real dev subset, 32 of the synthetic
    default's 8,000 training clips and 3 of Speech Commands v0.02's 85,000 (then ``low``).
    """
    if steps is None:
        steps = SMALL_STEPS if config.is_small() else DEFAULT_STEPS
    per_epoch = max(1, -(-int(num_rows) // max(1, int(batch_size))))
    return int(min(high, max(low, round(steps / per_epoch))))


def fit(
    model: Any,
    data: Data,
    *,
    epochs: int | None,
    lr: float,
    out_dir: str | Path,
    logdir: str | Path | None = None,
    resume: bool = False,
    patience: int = PATIENCE,
    use_class_weight: bool = True,
    verbose: int | str = "auto",
    strategy: Any = None,
    monitor: str = "val_accuracy",
    min_epochs: int = 0,
) -> Any:
    """Compile and train ``model`` on ``data.train``, validating on ``data.cv`` every epoch.

    Parameters
    ----------
    model : keras.Model
        Outputs logits.
    data : Data
        From :func:`load_data` or :func:`random_data`.
    epochs : int or None
        Total epochs (a resumed run continues up to this number); None: :func:`auto_epochs`.
    lr : float
        Peak learning rate.
    out_dir : str or Path
        Checkpoints and the CSV log (see :func:`callbacks`).
    logdir : str or Path, optional
        TensorBoard folder.
    resume : bool
        Continue from the backup in ``out_dir`` when there is one: the run then
        ends as it would have without the interruption (see :func:`save_backup`).
    patience : int
        Early-stopping patience, epochs.
    monitor, min_epochs : str, int
        What early stopping and the best checkpoint follow, and the epochs that
        always run (:func:`callbacks`); at most ``epochs - 1``.
    use_class_weight : bool
        Weight the loss by ``data.class_weight``.
    verbose : int or "auto"
        Keras' progress output.
    strategy : tf.distribute.Strategy, optional
        Train under this strategy (the model must have been built in its scope, :func:`distribution_strategy`).
        A ``MirroredStrategy`` trains with ``model.fit``; a ``MultiWorkerMirroredStrategy`` with
        :func:`_fit_in_steps`, the same callbacks driven by a ``strategy.run`` loop (Keras 3's ``fit``
        fails under it), ``data`` being this worker's shard (``load_data(shard=...)``).

    Returns
    -------
    keras.callbacks.History
        The epochs of this call. With early stopping the model holds the best
        cv weights; ``out_dir/best.keras`` holds the best model over every run.
    """
    steps = max(int(data.train.cardinality()), 1)
    epochs = _epochs_or_auto(data, epochs, steps)
    _compile_under(model, data, strategy, lr=lr, steps=steps, epochs=epochs)
    if monitor != "val_accuracy" and _is_multi_worker(strategy):
        raise ValueError("under MultiWorkerMirroredStrategy early stopping follows val_accuracy (all workers agree)")
    callback_list = callbacks(out_dir, logdir=logdir, resume=resume, patience=patience, monitor=monitor,
                              min_epochs=min(int(min_epochs), epochs - 1), data=data)  # fmt: skip
    run = {"epochs": int(epochs), "lr": float(lr), "steps_per_epoch": steps, "source": data.source}
    initial_epoch = _start_epoch(callback_list[-1], run, out_dir=out_dir, epochs=epochs)
    if _is_multi_worker(strategy):
        return _fit_in_steps(
            model, data, strategy, epochs=epochs, initial_epoch=initial_epoch, callback_list=callback_list,
            class_weight=data.class_weight if use_class_weight else None, verbose=verbose,
        )  # fmt: skip
    return model.fit(
        data.train,
        validation_data=data.cv,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,  # the readers shuffle (a function of seed and epoch); tf.data cannot be reshuffled by Keras
        class_weight=data.class_weight if use_class_weight else None,
        callbacks=callback_list,
        verbose=verbose,
    )


def _epochs_or_auto(data: Data, epochs: int | None, steps: int) -> int:
    """``epochs``, or :func:`auto_epochs` of the whole training split (announced) when None."""
    if epochs is None:
        epochs = auto_epochs(data.sizes["train"] * (data.shard[1] if data.shard else 1), _global_batch(data))
        print(f"training for {epochs} epochs of {steps} steps each (train.auto_epochs; --epochs to change)")
    return epochs


def _compile_under(model: Any, data: Data, strategy: Any, *, lr: float, steps: int, epochs: int) -> None:
    """Compile the model in the strategy's scope (soft labels with mixup); multi-worker: build the optimizer too."""
    soft = data.recipe is not None and data.recipe.mixup > 0
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        compile_model(model, lr=lr, steps_per_epoch=steps, epochs=epochs, soft_labels=soft)
        if _is_multi_worker(strategy):
            model.optimizer.build(model.trainable_variables)  # its variables mirrored, before a resume restores them


def _start_epoch(backup: Any, run: dict, *, out_dir: str | Path, epochs: int) -> int:
    """Record the run's settings in the backup callback; the epoch to start from (``epochs`` after an early stop)."""
    backup.run = run
    initial_epoch = backup.initial_epoch
    if backup.state is not None:
        before = backup.state.meta.get("run", {})
        changed = {k: (before[k], v) for k, v in backup.run.items() if k in before and before[k] != v}
        if changed:
            print(
                f"note: resuming with other settings than the run was started with {changed} (then, now): "
                "the learning-rate schedule or the data change, so this is not the run it would have been"
            )
        if backup.state.meta["stopped"]:
            print(f"the run in {out_dir} stopped early after epoch {initial_epoch}: nothing left to train")
            initial_epoch = max(initial_epoch, epochs)
        else:
            print(f"resuming from {backup.path}: {initial_epoch} of {epochs} epochs done")
    return initial_epoch


def _global_batch(data: Data) -> int:
    """Rows per optimizer step over every worker (``data.batch_size`` is one worker's)."""
    return data.batch_size * (data.shard[1] if data.shard else 1)


def _is_multi_worker(strategy: Any) -> bool:
    if strategy is None:
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def distribution_strategy(name: str | None, *, cpu_replicas: int | None = None) -> Any:
    """The ``tf.distribute`` strategy of ``--strategy``: None (one device) or ``"mirrored"``.

    ``"mirrored"`` is ``tf.distribute.MirroredStrategy`` over every local GPU:
    each batch is split between the GPUs, each computes the gradients of its
    part and they are summed (all-reduced) before one update of the mirrored
    weights. Without GPUs, or with ``cpu_replicas``, the CPU is split into that
    many logical devices (``tf.config.set_logical_device_configuration``): the
    same program, for testing on a machine without GPUs (it is no faster).
    Call this before TensorFlow has run anything (logical devices are fixed then).
    """
    if name in (None, "", "none", "default"):
        return None
    if name != "mirrored":
        raise InputError(f"--strategy {name}: choose mirrored (every local GPU) or leave it out (one device)")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus and not cpu_replicas:
        return tf.distribute.MirroredStrategy()
    count = max(1, int(cpu_replicas or 2))
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as err:  # TensorFlow already started: the devices are what they are
        raise InputError(f"--strategy mirrored: cannot split the CPU into {count} devices now ({err})") from None
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())


def _fit_in_steps(
    model: Any, data: Data, strategy: Any, *, epochs: int, initial_epoch: int, callback_list: list,
    class_weight: dict[int, float] | None, verbose: int | str = "auto",
) -> Any:  # fmt: skip
    """Data-parallel training under a ``MultiWorkerMirroredStrategy``: the step written with ``strategy.run``.

    Keras 3's ``model.fit`` fails under this strategy (3.15 with TensorFlow
    2.21: its symbolic build reduces the first input batch across workers and
    cannot convert the ``PerReplica`` values), so the epoch is a loop of
    ``strategy.run(step)``: each worker computes the loss of its part of the
    global batch (weighted by class, divided by the *global* batch size,
    ``tf.nn.compute_average_loss``) and its gradients; the optimizer's
    ``apply_gradients`` all-reduces (sums) them across workers, so every worker
    applies the same update and the weights stay equal. Training and cv sums
    (loss, hits, rows) are all-reduced too, so every worker logs the same
    figures and early stopping stops every worker at the same epoch. The
    callbacks are those of :func:`callbacks` (checkpoint, early stopping, CSV,
    TensorBoard, backup), called at the points where ``fit`` calls them.
    """
    import keras
    import tensorflow as tf

    weights = tf.constant([float((class_weight or {}).get(i, 1.0)) for i in range(data.num_classes)], tf.float32)
    train_step, cv_step = _replica_steps(model, strategy, weights)
    train_set = strategy.distribute_datasets_from_function(lambda _: data.train)  # batches of this worker's shard
    cv_set = strategy.distribute_datasets_from_function(lambda _: data.cv)
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList([*callback_list, history], model=model)
    model.stop_training = False
    with strategy.scope():
        callback_list.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            logs = _run_epoch(train_set, train_step)
            logs.update({f"val_{k}": v for k, v in _run_epoch(cv_set, cv_step).items()})
            callback_list.on_epoch_end(epoch, logs)
            if verbose:
                print(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())))
            if model.stop_training:
                break
        callback_list.on_train_end()
    return history


def _label_ids(y: Any) -> Any:
    """Label ids (batch,) of mixup's soft labels (batch, classes) or of label ids (cv batches are ids)."""
    import tensorflow as tf

    return tf.argmax(y, axis=-1, output_type=tf.int32) if len(y.shape) == 2 else tf.cast(y, tf.int32)


def _per_example_losses(y: Any, logits: Any) -> Any:
    """Cross-entropy of each row: categorical for soft labels, sparse for label ids."""
    import keras

    if len(y.shape) == 2:
        return keras.losses.categorical_crossentropy(y, logits, from_logits=True)
    return keras.losses.sparse_categorical_crossentropy(_label_ids(y), logits, from_logits=True)


def _step_sums(y: Any, logits: Any, per_example: Any) -> tuple:
    """A replica's (loss sum, hits, rows) of one batch."""
    import tensorflow as tf

    hits = tf.cast(tf.equal(_label_ids(y), tf.argmax(logits, axis=-1, output_type=tf.int32)), tf.float32)
    return tf.reduce_sum(per_example), tf.reduce_sum(hits), tf.cast(tf.shape(logits)[0], tf.float32)


def _replica_steps(model: Any, strategy: Any, weights: Any) -> tuple[Any, Any]:
    """The training and cv steps: ``strategy.run`` of one replica's step, its sums all-reduced across workers."""
    import tensorflow as tf

    def train_one(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            per_example = _per_example_losses(y, logits)
            loss = tf.nn.compute_average_loss(per_example * tf.gather(weights, _label_ids(y)))
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))  # all-reduced
        return _step_sums(y, logits, per_example)

    def cv_one(x, y):
        logits = model(x, training=False)
        return _step_sums(y, logits, _per_example_losses(y, logits))

    def reduced(step):
        @tf.function
        def run(batch):
            return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in strategy.run(step, args=batch)]

        return run

    return reduced(train_one), reduced(cv_one)


def _run_epoch(dataset: Any, step: Any) -> dict[str, float]:
    """One pass of ``step`` over a distributed dataset: the mean loss and the accuracy."""
    total = np.zeros(3)
    for batch in dataset:
        total += [float(v) for v in step(batch)]
    loss, hits, rows = total
    return {"loss": loss / max(rows, 1.0), "accuracy": hits / max(rows, 1.0)}


def finish(
    model: Any, data: Data, out_dir: str | Path, *, model_name: str, store: str | Path | None = None,
    history: Any = None, seconds: float | None = None, args: Any = None, bundle_extra: dict | None = None,
) -> dict:  # fmt: skip
    """After training: the best model on cv, scored on cv and test, saved as a bundle with its waveform export.

    What ``train_keras.py`` and ``speechlib spark train`` (its chief) do once
    :func:`fit` has returned: ``best.keras`` (or ``model``), the metrics of
    :func:`evaluate_split` on the whole cv and test splits, the bundle
    ``model.keras`` + ``model.json`` (:func:`speechlib.inference.save_bundle`),
    ``model_waveform.keras`` (checked against the two-step path on real clips
    of ``store``) and ``metrics.json``. Prints the tables and returns the summary.
    ``bundle_extra``: more fields of the bundle's description (:func:`ensemble` names its members).
    """
    from speechlib import evaluate, inference, models

    out = Path(out_dir)
    if data.shard is not None and store is not None:  # a worker's cv shard: score the best model on all of cv
        from speechlib.store import FeatureStore

        fs = FeatureStore(store)
        data = dataclasses.replace(
            data, cv=_dataset(fs.batches("cv", batch_size=data.batch_size, shuffle=False, normalize=True),
                              data.feature_shape),
        )  # fmt: skip
    model = best_model(out, fallback=model)  # selected on cv
    for layer in model.layers:  # saved whole: a head-only fine-tuning (init_model) froze the body
        layer.trainable = True
    results = {split: evaluate_split(model, data, split) for split in ("cv", "test")}
    for split, metrics in results.items():
        print(f"\n{split}: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")
        print(evaluate.per_class_table(metrics).round(3).to_string())
    log = read_log(out) if (out / LOG_FILE).is_file() else None  # None: not trained here (an ensemble)
    bundle = inference.save_bundle(
        model, out / inference.MODEL_FILE, **data.bundle_info(), model_name=model_name, data=data.source,
        cv_accuracy=results["cv"]["accuracy"], test_accuracy=results["test"]["accuracy"], **(bundle_extra or {}),
    )  # fmt: skip
    wave_model = inference.export_waveform_model(bundle, out / inference.WAVEFORM_FILE)
    check = None
    if store is not None:  # the raw-waveform export agrees with the two-step path on real clips
        check = inference.check_waveform_model(wave_model, inference.Predictor(bundle), sample_waveforms(store))
        print(f"raw-waveform export vs two-step path: {check}")
    summary = {
        "model": model_name,
        "params": models.count_params(model, trainable_only=True),
        "data": data.source,
        "sizes": data.sizes,
        "epochs_run": None if log is None else len(log),
        "epochs_this_run": None if history is None else len(history.epoch),
        "seconds_this_run": None if seconds is None else round(seconds, 1),
        "seconds_per_epoch": round(float(log["seconds"].median()), 1) if log is not None and "seconds" in log else None,
        "cv": results["cv"],
        "test": results["test"],
        "waveform_export_check": check,
        "args": jsonable(dict(args) if isinstance(args, dict) else vars(args) if args is not None else {}),
    }
    evaluate.save_metrics(out / "metrics.json", summary)
    print(f"\ncv accuracy {results['cv']['accuracy']:.4f}, test accuracy {results['test']['accuracy']:.4f}")
    print(f"saved {bundle.path}, {out / inference.WAVEFORM_FILE}, {out / 'metrics.json'}")
    print(json.dumps({"cv_accuracy": results["cv"]["accuracy"], "test_accuracy": results["test"]["accuracy"]}))
    return summary


ENSEMBLE_KEYS = ("kind", "params", "labels", "task", "normalization")  # what the members of an ensemble share


def ensemble(
    members: Sequence[str | Path], out_dir: str | Path, *, store: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict:  # fmt: skip
    """Combine trained bundles into one model that averages their logits, scored and saved as a bundle.

    The members are models trained apart on one feature store (another seed,
    another recipe, another architecture): :func:`speechlib.models.ensemble`
    averages their logits. The ensemble is scored on the store's cv and test
    splits and saved in ``out_dir`` as :func:`finish` saves a trained model
    (``model.keras`` + ``model.json`` naming the members, the waveform export,
    ``metrics.json``), so ``speechlib predict``, ``evaluate``, ``export``,
    ``listen`` and ``serve`` take it as they take any model.

    Parameters
    ----------
    members : sequence of str or Path
        Two or more bundles (``model.keras`` or their folders) from ``train_keras.py``.
    out_dir : str or Path
        A new folder, or one this function wrote before (it is replaced); any other folder is refused.
    store : str or Path, optional
        The feature store to score on (default: the one the first member was trained on).
    batch_size : int

    Returns
    -------
    dict
        The summary :func:`finish` writes to ``metrics.json``.

    Raises
    ------
    InputError
        Fewer than two members, members trained on other features, labels or normalisation,
        a store that is gone, or an ``out_dir`` that holds something else.
    """
    from speechlib import inference, models

    out = Path(out_dir)
    bundles = [inference.load_bundle(member) for member in members]
    if len(bundles) < 2:
        raise InputError(f"an ensemble needs at least two trained models; got {len(bundles)}: pass two or more")
    first = bundles[0]
    for bundle in bundles[1:]:
        differs = [key for key in ENSEMBLE_KEYS if _shared_field(bundle.meta, key) != _shared_field(first.meta, key)]
        if differs:
            raise InputError(
                f"{bundle.path} and {first.path} differ in {', '.join(differs)}: the members of an ensemble must be "
                "trained on one feature store (the same features, labels and normalisation)"
            )
    sidecar = out / "model.json"
    if out.exists() and any(out.iterdir()) and not (sidecar.is_file() and "members" in json.loads(sidecar.read_text())):
        raise InputError(f"{out} exists and was not written by speechlib ensemble: choose a new --out folder")
    store = Path(store or first.meta.get("data", ""))
    if not store.is_dir():
        raise InputError(
            f"{store}: the feature store of {first.path} is not here: pass the store it was trained on (--path_to_data)"
        )
    data = load_data(store, batch_size=batch_size, recipe=NO_AUGMENTATION)
    model = models.ensemble([bundle.model for bundle in bundles])
    names = [bundle.meta.get("model_name", bundle.model.name) for bundle in bundles]
    out.mkdir(parents=True, exist_ok=True)
    return finish(
        model, data, out, model_name=f"ensemble({'+'.join(names)})", store=store,
        args={"members": [str(b.path) for b in bundles], "store": str(store)},
        bundle_extra={"members": [str(b.path) for b in bundles]},
    )  # fmt: skip


def _shared_field(meta: dict, key: str) -> Any:
    """One field of a bundle description, rounded where it is a float (normalisation written by other runs)."""
    value = meta.get(key)
    if key == "normalization" and value is not None:
        return {k: np.round(np.asarray(v, np.float64), 5).tolist() for k, v in value.items()}
    return value


def best_model(out_dir: str | Path, fallback: Any = None) -> Any:
    """The best model on cv saved in ``out_dir`` (``best.keras``), or ``fallback`` when none was saved."""
    from speechlib import models

    path = Path(out_dir) / BEST_FILE
    if not path.is_file():
        return fallback
    _soft_or_sparse()  # a checkpoint compiled with the soft-label loss (mixup) names it
    try:
        return models.load_model(path)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(
            f"{path} is unreadable ({err}): it is not a complete Keras model file; delete it and train again"
        ) from err


def init_model(path: str | Path, data: Data, *, head_only: bool = False) -> tuple[Any, str, str]:
    """A trained model to start from (pre-training, then fine-tuning on ``data``).

    The course's pre-training: the final model trained on the synthetic
    default (``python train_keras.py``) starts the training on real speech
    instead of random weights (``train_keras.py --init_from``;
    ``bench/real_speech.py`` measures the ``pretrained`` row with it). The
    fine-tuned model is saved with the normalisation of ``data``.

    Data of other labels (a learner's own words, digits) keep the bundle's
    body and get a new output layer (``logits``) for their labels: a label the
    bundle knows keeps its row of the old layer, the others start from
    random weights (transfer learning; ``bench/own_data.py`` measures it).

    With ``head_only`` only the output layer trains: the body is frozen (its
    batch normalisation in inference mode), so the fine-tuning fits a linear
    classifier on the bundle's features, for a few clips per word
    (``bench/own_data.py`` measures it beside fine-tuning the whole model).

    Parameters
    ----------
    path : str or Path
        A bundle (``model.keras`` written by ``train_keras.py``, or its folder).
    data : Data
        What the model is fine-tuned on: its feature kind, parameters and
        input shape must be the bundle's.
    head_only : bool, keyword-only
        Freeze every layer but ``logits`` (default False: every layer trains,
        whatever the bundle was saved with).

    Returns
    -------
    model : keras.Model
        The bundle's model, weights loaded (with a new head where the labels differ).
    model_name : str
        Its name in :data:`speechlib.models.MODELS` (the bundle's ``model_name``).
    note : str
        ``""``, or what changed: the new output layer and how many labels it kept.

    Raises
    ------
    speechlib.pipeline.InputError
        ``path`` is not a bundle, it was trained on other features, or it has
        other labels and no ``logits`` output layer to replace.
    """
    from speechlib import features, inference

    try:
        bundle = inference.load_bundle(path)
    except (FileNotFoundError, ValueError) as err:
        raise InputError(f"--init_from {path}: {err}") from None
    params = features.resolve_params(data.kind, **data.params)
    found = jsonable({"features": [bundle.kind, bundle.params], "input shape": bundle.model.input_shape[1:]})
    wanted = jsonable({"features": [data.kind, params], "input shape": data.feature_shape})
    differ = [name for name in found if found[name] != wanted[name]]
    if differ:
        name = differ[0]
        raise InputError(
            f"--init_from {bundle.path}: its {' and '.join(differ)} differ from the data's ({found[name]} against "
            f"{wanted[name]}): start from a model trained on the same features, or leave --init_from out"
        )
    model_name = str(bundle.meta.get("model_name") or DEFAULT_MODEL)
    model, note = bundle.model, ""
    if list(bundle.labels) != list(data.labels):
        model, kept = _new_head(bundle.model, list(bundle.labels), list(data.labels), path=bundle.path)
        note = (f"a new output layer for the data's {len(data.labels)} labels ({kept} of them kept from the "
                f"bundle's {len(bundle.labels)})")  # fmt: skip
    if head_only and not any(layer.name == "logits" for layer in model.layers):
        raise InputError(f"--head_only: {bundle.path} has no 'logits' output layer to train alone")
    for layer in model.layers:  # a bundle saved from a head-only run has its body frozen: undo it unless asked
        layer.trainable = not head_only or layer.name == "logits"
    if head_only:
        note = ", ".join(filter(None, [note, "only the output layer trains (the body frozen)"]))
    return model, model_name, note


def _new_head(model: Any, old_labels: list[str], labels: list[str], *, path: Path) -> tuple[Any, int]:
    """``model`` with its ``logits`` layer replaced by one for ``labels``; shared labels keep their weights."""
    import keras

    try:
        old = model.get_layer("logits")
    except ValueError:
        raise InputError(
            f"--init_from {path}: it was trained on other labels ({len(old_labels)}: {', '.join(old_labels)}) and "
            "has no 'logits' output layer to replace: start from a model of speechlib.models, or leave it out"
        ) from None
    head = keras.layers.Dense(len(labels), name="logits")
    outputs = head(old.input)
    new = keras.Model(model.inputs, outputs, name=model.name)
    kernel, bias = old.get_weights()
    new_kernel, new_bias = head.get_weights()  # Keras' initialisation for the labels the bundle does not know
    kept = 0
    for j, label in enumerate(labels):
        if label in old_labels:
            i = old_labels.index(label)
            new_kernel[:, j], new_bias[j] = kernel[:, i], bias[i]
            kept += 1
    head.set_weights([new_kernel, new_bias])
    return new, kept


def predict_split(model: Any, data: Data, split: str) -> tuple[np.ndarray, np.ndarray]:
    """True label ids and class probabilities of a split, batch by batch.

    Returns
    -------
    y_true : np.ndarray, shape (N,), int64
    proba : np.ndarray, shape (N, num_classes), float32
    """
    import keras

    ys, probs = [], []
    for X, y in data.split(split).as_numpy_iterator():
        ys.append(np.asarray(y, dtype=np.int64))
        probs.append(np.asarray(keras.ops.softmax(model.predict_on_batch(X), axis=-1), dtype=np.float32))
    if not ys:
        return np.zeros(0, np.int64), np.zeros((0, data.num_classes), np.float32)
    return np.concatenate(ys), np.concatenate(probs)


def sample_waveforms(store_path: str | Path, *, split: str = "test", n: int = 64) -> np.ndarray:
    """The first ``n`` clips of a store's split as waveforms, shape (n, CLIP_SAMPLES), float32.

    Read from the audio files through the store's manifest and fitted as the
    featurizer fits them (``audio.fix_length``, centred): real inputs for
    checking an exported model against the two-step path.
    """
    from speechlib import audio
    from speechlib.store import FeatureStore

    fs = FeatureStore(store_path)
    rows = fs.manifest(split)
    rows = rows[rows["augment"] == 0].head(n)
    return np.stack([audio.fix_length(audio.load_row(row), length=fs.clip_samples) for row in rows.to_dict("records")])


def evaluate_split(model: Any, data: Data, split: str) -> dict:
    """``speechlib.evaluate.classification_metrics`` of ``model`` on a split (accuracy, per class, confusion)."""
    from speechlib import evaluate

    y_true, proba = predict_split(model, data, split)
    return evaluate.classification_metrics(y_true, proba.argmax(axis=1), data.labels)
