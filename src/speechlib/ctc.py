"""Sentences of spoken words recognised with CTC: the model, its training, decoding and the detector baseline.

Hey Jetson (2018) recognised whole LibriSpeech utterances with a
convolution over spectrogram frames, bidirectional GRU layers and a
time-distributed dense layer trained with the CTC loss (Graves et al.,
2006). :func:`build_model` is that network at keyword-spotting size, over
the course's log-mel frames (``speechlib.features``). Its tokens are the
*words* of the vocabulary plus the CTC blank (index 0), not characters:
the vocabulary is closed (30-35 words) and every word is a single
acoustic unit the classifiers of the course already tell apart, so a word
is one output spike; characters would make the network learn the spelling
of each word from a few hundred clips, with nothing gained, because no
word outside the vocabulary is ever spoken.

Model and training
    :func:`build_model`, :func:`compile_model` (Keras' CTC loss plus a
    per-frame term from the known word timings, :func:`joint_loss`; Adam with
    ``speechlib.train.lr_schedule``), :class:`Batches` (utterances of
    ``speechlib.sequences`` built on the fly, a function of (seed, epoch,
    batch)), :func:`fit` (resumable: Keras' ``BackupAndRestore``; the cv WER
    logged every epoch; the model saved as a ``speechlib.inference`` bundle).
Decoding
    :func:`decode` (``keras.ops.ctc_decode``, greedy or beam search),
    :func:`greedy_words` (the greedy path's words with their times),
    :class:`Transcriber` (a saved model: waveform in, words out), :func:`load`.
Baseline
    :func:`detector_transcripts` and :func:`detector_baseline`: the
    streaming keyword detector (``speechlib.stream.Detector``) run over the
    same utterances, its threshold and refractory period chosen on cv, scored
    with the same WER (``speechlib.sequences.word_errors``).

Example
-------
>>> from speechlib import ctc, sequences
>>> store = "data/work/synthetic/features/logmel"
>>> train = sequences.SequenceBuilder(store, "train")  # doctest: +SKIP
>>> cv = sequences.fixed_set(sequences.SequenceBuilder(store, "cv", vocabulary=train.vocabulary))  # doctest: +SKIP
>>> model = ctc.fit(train, cv=cv, out_dir="data/work/synthetic/models/ctc", steps=2000)  # doctest: +SKIP
>>> model.transcribe(cv[0].waveform)  # doctest: +SKIP
[Word(start=0.12, stop=0.6, word='four', score=0.99), ...]
"""

from __future__ import annotations

import json
import math
import shutil
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from speechlib import config, features, inference, sequences, stream, train

__all__ = [
    "BLANK",
    "DEFAULT_STEPS",
    "Batches",
    "Transcriber",
    "Word",
    "build_model",
    "choose_min_score",
    "compile_model",
    "decode",
    "detector_baseline",
    "detector_transcripts",
    "fit",
    "forward",
    "frame_targets",
    "greedy_words",
    "init_from",
    "joint_loss",
    "load",
]

BLANK = "<blank>"  # token 0: the CTC blank (Keras' mask_index)
TIME_STRIDE = 8  # convolutions of stride 2 and 4: one output frame per 80 ms (a word spans several)
DEFAULT_STEPS = 2000  # optimizer steps: about 7 minutes on 2 shared CPU cores (small mode: SMALL_STEPS)
SMALL_STEPS = 100
DEFAULT_BATCH_SIZE = 16
DEFAULT_LR = 3e-3  # peak of train.lr_schedule's warm-up + cosine (Adam)
FRAME_WEIGHT = 1.0  # weight of the per-frame cross-entropy beside the CTC loss (joint_loss); 0: CTC alone
STEPS_PER_EPOCH = 100  # an "epoch" here is a number of fresh batches: the data never repeat
MIN_EPOCHS = 4  # a short run still logs (and checks on cv) this many times
BEAM_WIDTH = 16  # beams of beam-search decoding
TASK = "ctc_words"  # the bundle's task: a CTC model over words
RUN_FILE = "run.json"  # in the run folder: the settings its backup and log belong to
MODEL_NAME = "ctc_words"  # its run folder: speechlib.train.default_out(store, MODEL_NAME)
DETECTOR_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # baseline grid, chosen on cv
DETECTOR_REFRACTORY = (0.2, 0.3, 0.5, 0.7, 1.0)  # seconds; words follow each other within about 0.7 s
MIN_SCORES = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # greedy words' confidence grid, chosen on cv (choose_min_score)


class Word(NamedTuple):
    """One recognised word: ``start``, ``stop`` (s, its frames on the greedy path), ``word``, ``score`` (mean
    posterior of the word over those frames)."""

    start: float
    stop: float
    word: str
    score: float


def build_model(num_tokens: int, *, n_mels: int = config.N_MELS, filters: int = 96, units: int = 64,
                dropout: float = 0.1, momentum: float = 0.99) -> Any:  # fmt: skip
    """Hey Jetson's recogniser at keyword size: convolution, two bidirectional GRU layers, time-distributed dense.

    Parameters
    ----------
    num_tokens : int
        Output tokens: the vocabulary plus the blank (token 0).
    n_mels : int
        Bands of the log-mel input.
    filters : int
        Channels of the two 1-D convolutions over time (kernel 11, stride 2, then kernel 7, stride 4: ``TIME_STRIDE``).
    units : int
        GRU units per direction.
    dropout : float
        Between the layers.
    momentum : float
        Of the batch normalisation's moving statistics (Keras' 0.99; 0.9 follows a short, fast run closely).

    Returns
    -------
    keras.Model
        (batch, frames, n_mels) normalised log-mel -> (batch, ceil(ceil(frames / 2) / 4), num_tokens) logits.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=(None, n_mels), name="logmel")
    x = layers.Conv1D(filters, 11, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.Activation("relu")(layers.BatchNormalization(momentum=momentum)(x))
    x = layers.Conv1D(filters, 7, strides=4, padding="same", use_bias=False)(x)
    x = layers.Activation("relu")(layers.BatchNormalization(momentum=momentum)(x))
    for _ in range(2):
        x = layers.Dropout(dropout)(x)
        x = layers.Bidirectional(layers.GRU(units, return_sequences=True))(x)
    x = layers.Dropout(dropout)(x)
    # Dense on (batch, frames, units) is applied to every frame: the time-distributed dense. Not wrapped in
    # keras.layers.TimeDistributed: in Keras 3.15 under tf.function with a free time axis that wrapper folds
    # the frames into the batch size (a (16, 44, units) batch came out (16, 16, tokens)), so the CTC loss of
    # a compiled model saw the wrong frames (tests/test_sequences.py checks the graph's shape).
    outputs = layers.Dense(num_tokens, name="tokens")(x)
    return keras.Model(inputs, outputs, name="ctc_cnn_bigru")


def output_frames(frames: int) -> int:
    """Output frames of :func:`build_model` for ``frames`` input frames."""
    return math.ceil(math.ceil(frames / 2) / 4)


def epoch_steps(steps: int) -> tuple[int, int]:
    """``(steps per epoch, epochs)`` of a run of ``steps``: ``STEPS_PER_EPOCH``, fewer in a run too short for
    ``MIN_EPOCHS`` of them."""
    per_epoch = max(1, min(STEPS_PER_EPOCH, int(steps) // MIN_EPOCHS))
    return per_epoch, max(1, -(-int(steps) // per_epoch))


def joint_loss(max_words: int, frame_weight: float = FRAME_WEIGHT) -> Any:
    """Keras' CTC loss plus ``frame_weight`` times a per-frame cross-entropy against the known word timings.

    ``y_true`` is ``(batch, max_words + frames)``: the word tokens padded with
    the blank (what ``keras.losses.ctc`` takes), then one target per output
    frame (:func:`frame_targets`: the word spoken at that frame, the blank in
    the pauses). The CTC term alone starts on a long plateau where the network
    says "blank" everywhere (it must discover on its own where each word
    lies); the utterances are built, so where each word lies is known, and the
    frame term (summed over frames, like the CTC term over the sequence)
    tells it from the first step. Decoding is CTC's either way: repeats
    merged, blanks dropped. ``frame_weight=0`` is CTC alone.
    """
    import keras

    max_words, frame_weight = int(max_words), float(frame_weight)

    def ctc_frames(y_true, y_pred):
        y_true = keras.ops.cast(y_true, "int32")
        loss = keras.losses.ctc(y_true[:, :max_words], y_pred)
        if frame_weight:
            ce = keras.losses.sparse_categorical_crossentropy(y_true[:, max_words:], y_pred, from_logits=True)
            loss = loss + frame_weight * keras.ops.sum(ce, axis=-1)
        return loss

    return ctc_frames


def compile_model(model: Any, *, lr: float, steps: int, max_words: int = sequences.MAX_WORDS,
                  frame_weight: float = FRAME_WEIGHT) -> Any:  # fmt: skip
    """Adam on ``speechlib.train.lr_schedule`` (warm-up, cosine to 0 over ``steps``) and :func:`joint_loss`."""
    import keras

    per_epoch, epochs = epoch_steps(steps)
    schedule = train.lr_schedule(lr=lr, steps_per_epoch=per_epoch, epochs=epochs)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=5.0),
                  loss=joint_loss(max_words, frame_weight))  # fmt: skip
    return model


def frame_targets(starts: Sequence[float], stops: Sequence[float], words: Sequence[str], tokens: Sequence[str], *,
                  frames: int, frame_seconds: float) -> np.ndarray:  # fmt: skip
    """The token spoken at each output frame (its centre inside a word's span), the blank (0) elsewhere; int32."""
    index = {t: i for i, t in enumerate(tokens)}
    centres = (np.arange(int(frames)) + 0.5) * float(frame_seconds)
    out = np.zeros(int(frames), np.int32)
    for start, stop, word in zip(starts, stops, words, strict=True):
        out[(centres >= start) & (centres < stop)] = index[word]
    return out


def encode(words: Sequence[str], tokens: Sequence[str], *, length: int = sequences.MAX_WORDS) -> np.ndarray:
    """Token ids of ``words``, padded with the blank (0) to ``length``, int32."""
    index = {t: i for i, t in enumerate(tokens)}
    out = np.zeros(length, np.int32)
    out[: len(words)] = [index[w] for w in words]
    return out


_FORWARD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its traced forward pass


def forward(model: Any, X: np.ndarray) -> np.ndarray:
    """Per-frame logits of a batch of features (batch, frames, bins) -> (batch, out frames, tokens), float32.

    One ``tf.function`` per model, traced once for any batch size and length
    (a free time axis in its signature): called eagerly, Keras runs the GRUs
    step by step in Python, about 0.8 s for a 6-s utterance against 0.01 s
    traced. It reads the model's current weights, so it serves during
    training too.
    """
    fn = _FORWARD.get(model)
    if fn is None:
        import tensorflow as tf

        spec = tf.TensorSpec((None, None, int(model.input_shape[-1])), tf.float32)

        def call(x):
            return model(x, training=False)

        fn = _FORWARD[model] = tf.function(call, input_signature=[spec], autograph=False, reduce_retracing=True)
    return np.asarray(fn(np.asarray(X, np.float32)), np.float32)


def featurize(waveforms: np.ndarray, *, kind: str, params: dict, normalization: dict) -> np.ndarray:
    """Normalised features of equal-length waveforms (batch, n_samples) -> (batch, frames, bins), float32."""
    return features.normalize(features.compute_batch(np.asarray(waveforms, np.float32), kind, **params), normalization)


class Batches:
    """Training batches built on the fly: ``(X, y)``, X (batch, frames, bins) float32, y (batch, max words +
    output frames) int32: the word tokens, then :func:`frame_targets` (what :func:`joint_loss` takes).

    Batch ``i`` of epoch ``e`` holds utterances ``(e * steps_per_epoch + i) *
    batch_size + 0 .. batch_size - 1`` of the builder, so every batch is new
    and a resumed run sees the batches it would have seen. A
    ``keras.utils.PyDataset`` (made by :meth:`dataset`).
    """

    def __init__(self, builder: sequences.SequenceBuilder, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 steps_per_epoch: int = STEPS_PER_EPOCH) -> None:  # fmt: skip
        self.builder, self.batch_size, self.steps_per_epoch = builder, int(batch_size), int(steps_per_epoch)
        self.tokens = [BLANK, *builder.vocabulary]
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        b = self.builder
        first = (self.epoch * self.steps_per_epoch + int(i)) * self.batch_size
        batch = b.batch(range(first, first + self.batch_size))
        X = featurize(np.stack([u.waveform for u in batch]), kind=b.kind, params=b.params,
                      normalization=b.normalization)  # fmt: skip
        frames, seconds = output_frames(X.shape[1]), TIME_STRIDE * int(b.params["hop_length"]) / b.sample_rate
        y = np.stack([np.concatenate([encode(u.words, self.tokens, length=b.words_range[1]),
                                      frame_targets(u.starts, u.stops, u.words, self.tokens, frames=frames,
                                                    frame_seconds=seconds)]) for u in batch])  # fmt: skip
        return X, y

    def epoch_batches(self):
        """The batches of the current epoch (``self.epoch``), one after the other."""
        for i in range(len(self)):
            yield self[i]

    def dataset(self) -> Any:
        """A ``tf.data.Dataset`` of one epoch per pass (any number of frames; :func:`fit` sets the epoch)."""
        import tensorflow as tf

        n_mels = int(self.builder.params["n_mels"])
        signature = (tf.TensorSpec(shape=(None, None, n_mels), dtype=tf.float32),
                     tf.TensorSpec(shape=(None, None), dtype=tf.int32))  # fmt: skip
        ds = tf.data.Dataset.from_generator(self.epoch_batches, output_signature=signature)
        return ds.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(2)


# --- Decoding -----------------------------------------------------------------------------------------


def decode(logits: np.ndarray, lengths: Sequence[int] | None = None, *, tokens: Sequence[str],
           beam_width: int = 0) -> list[list[str]]:  # fmt: skip
    """Words of each sequence of per-frame logits (``keras.ops.ctc_decode``).

    Parameters
    ----------
    logits : np.ndarray, shape (batch, frames, num_tokens)
        Token 0 is the blank.
    lengths : sequence of int, optional
        Valid frames of each sequence (default all).
    tokens : sequence of str
        ``[BLANK, *vocabulary]``.
    beam_width : int
        0: greedy (best token per frame, repeats merged, blanks dropped);
        else beam search with this many beams.

    Returns
    -------
    list of list of str
    """
    import keras

    logits = np.asarray(logits, np.float32)
    if logits.ndim != 3 or logits.shape[-1] != len(tokens):
        raise ValueError(f"logits of shape {logits.shape} do not match {len(tokens)} tokens (batch, frames, tokens)")
    lengths = np.full(len(logits), logits.shape[1], np.int32) if lengths is None else np.asarray(lengths, np.int32)
    if beam_width:
        paths, _ = keras.ops.ctc_decode(logits, lengths, strategy="beam_search", beam_width=int(beam_width),
                                        top_paths=1)  # fmt: skip
    else:
        paths, _ = keras.ops.ctc_decode(logits, lengths, strategy="greedy")
    best = np.asarray(paths)[0]
    return [[tokens[k] for k in row if k > 0] for row in best.tolist()]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def greedy_words(logits: np.ndarray, *, tokens: Sequence[str], frame_seconds: float) -> list[Word]:
    """The greedy path of one sequence as words with times: each run of one non-blank token is a word.

    The same words as ``decode(logits[None], tokens=tokens)``; ``start`` and
    ``stop`` are the run's first frame and the end of its last, in seconds
    (CTC marks a word by a spike of one or a few frames, so this is *where the
    model decided*, near but not always on the spoken word).

    Parameters
    ----------
    logits : np.ndarray, shape (frames, num_tokens)
    tokens : sequence of str
    frame_seconds : float, seconds per output frame
    """
    proba = _softmax(logits)
    best = proba.argmax(axis=1)
    out, t = [], 0
    while t < len(best):
        k, end = int(best[t]), t + 1
        while end < len(best) and best[end] == k:
            end += 1
        if k:
            score = float(proba[t:end, k].mean())
            out.append(Word(round(t * frame_seconds, 3), round(end * frame_seconds, 3), tokens[k], round(score, 4)))
        t = end
    return out


class Transcriber:
    """A saved CTC model: waveforms in, words out.

    Parameters
    ----------
    bundle : speechlib.inference.Bundle
        Saved by :func:`fit` (task ``"ctc_words"``); :func:`load` reads one.
    """

    def __init__(self, bundle: Any) -> None:
        if bundle.meta.get("task") != TASK:
            raise ValueError(
                f"{bundle.path}: a one-second classifier (task {bundle.meta.get('task')!r}), not a "
                "CTC word model: pass a model trained by speechlib.ctc.fit (notebook 8, bench/ctc.py)"
            )
        self.bundle, self.model = bundle, bundle.model
        self.tokens = bundle.labels
        self.vocabulary = self.tokens[1:]
        self.sample_rate = int(bundle.meta["sample_rate"])
        self.frame_seconds = TIME_STRIDE * int(bundle.params["hop_length"]) / self.sample_rate

    def logits(self, waveform: np.ndarray) -> np.ndarray:
        """Per-frame logits of one waveform (n_samples,) -> (frames, num_tokens), float32."""
        waveform = np.asarray(waveform, np.float32)
        if waveform.ndim != 1 or len(waveform) < self.bundle.params["n_fft"]:
            raise ValueError(f"a waveform of shape {waveform.shape} is too short to transcribe (at least "
                             f"{self.bundle.params['n_fft'] / self.sample_rate * 1000:.0f} ms)")  # fmt: skip
        X = featurize(waveform[None], kind=self.bundle.kind, params=self.bundle.params,
                      normalization=self.bundle.normalization)  # fmt: skip
        return forward(self.model, X)[0]

    def transcribe(self, waveform: np.ndarray) -> list[Word]:
        """The words of one waveform with their times (greedy path, :func:`greedy_words`)."""
        return greedy_words(self.logits(waveform), tokens=self.tokens, frame_seconds=self.frame_seconds)

    def transcripts(self, utterances: Sequence[Any], *, beam_width: int = 0, min_score: float = 0.0,
                    logits: Sequence[np.ndarray] | None = None) -> list[list[str]]:  # fmt: skip
        """Words of each utterance (``.waveform``), greedy or with ``beam_width`` beams.

        ``min_score`` (greedy only): leave out the words whose mean posterior
        over their frames (:class:`Word`'s ``score``) is below it, as a keyword
        detector leaves out what stays under its threshold; choose it on cv
        (:func:`choose_min_score`). ``logits``: each utterance's
        :meth:`logits`, when already computed.
        """
        if beam_width and min_score:
            raise ValueError("min_score applies to greedy decoding (beam_width=0)")
        logits = [self.logits(u.waveform) for u in utterances] if logits is None else logits
        if beam_width:
            return [decode(z[None], tokens=self.tokens, beam_width=beam_width)[0] for z in logits]
        return [[w.word for w in greedy_words(z, tokens=self.tokens, frame_seconds=self.frame_seconds)
                 if w.score >= min_score] for z in logits]  # fmt: skip

    def evaluate(self, utterances: Sequence[Any], *, beam_width: int = 0, min_score: float = 0.0,
                 logits: Sequence[np.ndarray] | None = None) -> dict:  # fmt: skip
        """:func:`speechlib.sequences.word_errors` of the utterances' transcripts, plus ``hypotheses``."""
        hyps = self.transcripts(utterances, beam_width=beam_width, min_score=min_score, logits=logits)
        return {**sequences.word_errors([u.words for u in utterances], hyps), "hypotheses": hyps}


def choose_min_score(transcriber: Transcriber, cv: Sequence[Any], *,
                     scores: Sequence[float] = MIN_SCORES) -> tuple[float, float]:  # fmt: skip
    """The greedy words' confidence threshold with the lowest WER on ``cv``, and that WER.

    Greedy decoding emits every run of a non-blank token; under noise some of
    those runs are weak (low posterior) insertions. Like the keyword
    detector's threshold, the cut is chosen on cv and then read on test.
    Ties go to the lower threshold.
    """
    logits = [transcriber.logits(u.waveform) for u in cv]
    best = None
    for score in sorted(scores):
        wer = transcriber.evaluate(cv, min_score=score, logits=logits)["wer"]
        if best is None or wer < best[1]:
            best = (float(score), float(wer))
    if best is None:
        raise ValueError("choose_min_score needs at least one candidate score")
    return best


def load(path: str | Path) -> Transcriber:
    """The CTC model saved at ``path`` (``model.keras`` or its folder) as a :class:`Transcriber`.

    Raises
    ------
    FileNotFoundError, ValueError
        No model there, or a model that is not a CTC word model (the message says what to pass).
    """
    return Transcriber(inference.load_bundle(path))


def init_from(model: Any, path: str | Path) -> list[str]:
    """Copy the weights of the CTC model saved at ``path`` into ``model``, layer by layer where the shapes agree.

    Everything but the output layer when the vocabularies differ (a model of
    the synthetic default's 30 words starts a model of the real data's 35).
    Returns the names of the layers copied.
    """
    source = load(path).model
    copied = []
    for src, dst in zip(source.layers, model.layers, strict=False):
        a, b = src.get_weights(), dst.get_weights()
        if a and len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b, strict=True)):
            dst.set_weights(a)
            copied.append(dst.name)
    return copied


# --- Training ------------------------------------------------------------------------------------------


def _wer_callback(cv: Sequence[Any] | None, tokens: Sequence[str], builder: sequences.SequenceBuilder) -> Any:
    import keras

    class CvWER(keras.callbacks.Callback):
        """Greedy WER on the cv utterances after every epoch, logged as ``val_wer``."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if not cv or logs is None:
                return
            hyps = []
            for u in cv:
                X = featurize(u.waveform[None], kind=builder.kind, params=builder.params,
                              normalization=builder.normalization)  # fmt: skip
                hyps.append(decode(forward(self.model, X), tokens=tokens)[0])
            logs["val_wer"] = sequences.word_errors([u.words for u in cv], hyps)["wer"]

    return CvWER()


def _epoch_setter(batches: Batches) -> Any:
    import keras

    class SetEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            batches.epoch = int(epoch)

    return SetEpoch()


def _finished(path: Path, run: dict) -> bool:
    sidecar = path.with_suffix(".json")
    if not (path.is_file() and sidecar.is_file()):
        return False
    try:
        return json.loads(sidecar.read_text(encoding="utf-8")).get("run") == run
    except ValueError:
        return False


def fit(
    builder: sequences.SequenceBuilder,
    *,
    out_dir: str | Path,
    cv: Sequence[Any] | None = None,
    steps: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    frame_weight: float = FRAME_WEIGHT,
    model: Any = None,
    verbose: int | str = 2,
) -> Transcriber:
    """Train a CTC model on utterances of the training split; return it saved as ``out_dir/model.keras``.

    A run that finished with the same settings is loaded, not trained again;
    an interrupted one resumes from its last epoch (``out_dir/backup``, Keras'
    ``BackupAndRestore``): the batches of epoch ``e`` depend only on the seed
    and ``e``. A backup of other settings (``out_dir/run.json``) is
    discarded. ``out_dir/training_log.csv`` has the loss (and the cv WER) of
    every epoch of ``STEPS_PER_EPOCH`` steps.

    Parameters
    ----------
    builder : speechlib.sequences.SequenceBuilder
        Of the train split.
    out_dir : str or Path
    cv : sequence of Utterance, optional
        The fixed cv set: its greedy WER is logged every epoch (``val_wer``).
    steps : int, optional
        Optimizer steps (default ``DEFAULT_STEPS``, ``SMALL_STEPS`` in small mode).
    batch_size : int
    lr : float
        Peak learning rate.
    frame_weight : float
        Of the per-frame term of :func:`joint_loss` (0: the CTC loss alone).
    model : keras.Model, optional
        Default :func:`build_model` for the builder's vocabulary.
    verbose : int or "auto"
        Keras' progress output.

    Returns
    -------
    Transcriber
    """
    out_dir = Path(out_dir)
    steps = int(steps or (SMALL_STEPS if config.is_small() else DEFAULT_STEPS))
    tokens = [BLANK, *builder.vocabulary]
    path = out_dir / inference.MODEL_FILE
    run = {"steps": steps, "batch_size": int(batch_size), "lr": float(lr), "frame_weight": float(frame_weight),
           **builder.description()}  # fmt: skip
    if _finished(path, run):
        return load(path)
    _start_run(out_dir, path, run)
    if model is None:
        model = build_model(len(tokens), n_mels=int(builder.params["n_mels"]))
    _train_epochs(model, builder, cv, tokens, out_dir=out_dir, steps=steps, batch_size=batch_size, lr=lr,
                  frame_weight=frame_weight, verbose=verbose)  # fmt: skip
    return _save(model, builder, path, tokens, run)


def _start_run(out_dir: Path, path: Path, run: dict) -> None:
    """Make the run folder; drop an unfinished model's sidecar, and the backup and log of a run of other settings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)  # a model without its sidecar is not finished
    started = out_dir / RUN_FILE  # the settings of the run that the backup and the log belong to
    if not started.is_file() or json.loads(started.read_text(encoding="utf-8")) != run:
        shutil.rmtree(out_dir / train.BACKUP_DIR, ignore_errors=True)  # another run's: start afresh
        (out_dir / train.LOG_FILE).unlink(missing_ok=True)
        started.write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")


def _train_epochs(model: Any, builder: sequences.SequenceBuilder, cv: Sequence[Any] | None, tokens: list[str], *,
                  out_dir: Path, steps: int, batch_size: int, lr: float, frame_weight: float,
                  verbose: int | str) -> None:  # fmt: skip
    """Compile and train the model on fresh batches, logging (and backing up) every epoch in ``out_dir``."""
    import keras

    per_epoch, epochs = epoch_steps(steps)
    compile_model(model, lr=lr, steps=steps, max_words=builder.words_range[1], frame_weight=frame_weight)
    batches = Batches(builder, batch_size=batch_size, steps_per_epoch=per_epoch)
    callbacks = [
        _epoch_setter(batches),
        _wer_callback(cv, tokens, builder),
        keras.callbacks.CSVLogger(str(out_dir / train.LOG_FILE), append=True),
        keras.callbacks.BackupAndRestore(str(out_dir / train.BACKUP_DIR), delete_checkpoint=True),
    ]
    model.fit(batches.dataset(), epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False)


def _save(model: Any, builder: sequences.SequenceBuilder, path: Path, tokens: list[str], run: dict) -> Transcriber:
    """Save the trained model as a bundle (with Keras' own CTC loss, optimizer built); its Transcriber."""
    import keras

    model.compile(loss=keras.losses.CTC())  # saved with Keras' own loss: any process loads it without ours
    model.optimizer.build(model.trainable_variables)  # saved built, as a load builds it (no 'skipping' warning)
    norm = builder.normalization
    bundle = inference.save_bundle(
        model, path, kind=builder.kind, params=builder.params, normalization=norm, labels=tokens, task=TASK,
        input_shape=[None, int(builder.params["n_mels"])], model_name=model.name, run=run,
        frame_seconds=TIME_STRIDE * int(builder.params["hop_length"]) / builder.sample_rate,
    )  # fmt: skip
    return Transcriber(bundle)


def detector_transcripts(detector: Any, utterances: Sequence[Any], *, threshold: float,
                         refractory_seconds: float, traces: list | None = None) -> list[list[str]]:  # fmt: skip
    """What a streaming keyword detector hears in each utterance: its detections' labels, in time order.

    ``traces`` (one ``Detector.scores`` trace per utterance) are reused when
    given; ``stream.trigger`` replays the detector's logic on them.
    """
    traces = traces if traces is not None else [detector.scores([u.waveform]) for u in utterances]
    out = []
    for times, scores in traces:
        found = stream.trigger(times, scores, detector.keyword_ids, detector.labels, threshold=threshold,
                               refractory_seconds=refractory_seconds,
                               max_run_seconds=detector.max_run_seconds)  # fmt: skip
        out.append([d.label for d in sorted(found, key=lambda d: d.time)])
    return out


def detector_baseline(bundle: Any, cv: Sequence[Any], test: Sequence[Any], *,
                      thresholds: Sequence[float] = DETECTOR_THRESHOLDS,
                      refractory: Sequence[float] = DETECTOR_REFRACTORY) -> dict:  # fmt: skip
    """The keyword detector over the utterances, scored with the same WER as the CTC model.

    The detector can fire every label of the classifier but silence (the
    commands and ``unknown``), so the references are the utterances' words as
    its labels (:func:`speechlib.sequences.to_labels`). Its threshold and
    refractory period (words follow each other faster than the 1-s default)
    are chosen on cv for the lowest WER, then test is scored at them.

    Returns
    -------
    dict
        ``threshold``, ``refractory_seconds``, ``cv_wer`` and ``test`` (the
        :func:`~speechlib.sequences.word_errors` of test) and ``hypotheses`` (test).
    """
    keywords = [label for label in bundle.labels if label != config.SILENCE_LABEL]
    detector = stream.Detector(bundle, keywords=keywords)
    both = (("cv", cv), ("test", test))
    refs = {name: [sequences.to_labels(u.words, bundle.labels) for u in us] for name, us in both}
    traces = {name: [detector.scores([u.waveform]) for u in us] for name, us in both}
    best = None
    for th in thresholds:
        for rf in refractory:
            hyps = detector_transcripts(detector, cv, threshold=th, refractory_seconds=rf, traces=traces["cv"])
            wer = sequences.word_errors(refs["cv"], hyps)["wer"]
            if best is None or wer < best[0]:
                best = (wer, float(th), float(rf))
    cv_wer, th, rf = best
    hyps = detector_transcripts(detector, test, threshold=th, refractory_seconds=rf, traces=traces["test"])
    return {"threshold": th, "refractory_seconds": rf, "cv_wer": cv_wer,
            "test": sequences.word_errors(refs["test"], hyps), "hypotheses": hyps,
            "references": refs["test"]}  # fmt: skip
