"""Model builders for keyword spotting: from chance level to modern small CNNs.

One builder per architecture, hyper-parameters as keyword arguments, each
citing the paper or code it follows. Every builder has the signature
``builder(*, input_shape, num_classes, **hyper_parameters)``; :func:`build`
looks a model up by name in :data:`MODELS`.

Inputs and outputs
------------------
- Spectral models take log-mel features, shape ``(frames, bins)`` float32
  (the default ``(101, 40)``: 10 ms hop, 40 mel bands), time-major as
  ``speechlib.features.compute`` writes them. Builders that need a channel
  axis add it themselves.
- The raw-waveform model (:func:`course_cnn1d`) takes ``(CLIP_SAMPLES,)``
  float32 samples in [-1, 1]; :data:`INPUT_KIND` says which input each
  registered model expects.
- Keras models output **logits** (no softmax): train them with
  ``keras.losses.SparseCategoricalCrossentropy(from_logits=True)`` and use
  :func:`predict_proba` for probabilities.
- scikit-learn baselines are pipelines that start with :func:`summary_features`,
  so they take the same ``(N, frames, bins)`` arrays as the Keras models.

Registry
--------
MODELS
    ``{"name": builder}``; variants (``res8``, ``ds_cnn_s``, ...) are the
    same builder with other hyper-parameters.
INPUT_KIND
    ``{"name": "logmel" | "waveform"}``.
REFERENCES
    The parameter count each paper documents and the configuration it refers to.
DEPTHWISE_FORMULATIONS
    The equivalent ways DS-CNN and BC-ResNet can compute their depthwise
    convolutions (``depthwise=`` argument; see :func:`depthwise_conv2d`).

Helpers: :func:`build`, :func:`count_params`, :func:`predict_proba`,
:func:`predict`, :func:`is_keras`, :func:`summary_features`,
:func:`depthwise_conv2d`.

Layers: ``LogMel`` (log-mel of raw audio in the graph, equal to
``speechlib.features.logmel``; the first layer of
``speechlib.inference.waveform_model`` and of ``speechlib.tfmodel``'s
SavedModel), built on first access like the other custom layers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import scipy.signal
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from speechlib import features
from speechlib.config import CLIP_SAMPLES, SEED

#: Default log-mel input, (frames, bands): (101, 40) — 1 s at a 10 ms hop, centred, x N_MELS bands.
LOGMEL_SHAPE = features.output_shape("logmel")
#: Default raw-waveform input: one padded clip.
WAVEFORM_SHAPE = (CLIP_SAMPLES,)


# ---------------------------------------------------------------------------
# Summary features and scikit-learn baselines
# ---------------------------------------------------------------------------


def summary_features(X: np.ndarray, *, n_mfcc: int | None = 20) -> np.ndarray:
    """Per-clip summary of the baselines: :func:`speechlib.features.summary`, by default of the first 20 MFCCs.

    Parameters
    ----------
    X : np.ndarray, shape (N, frames, bins)
        Time-major spectral features, e.g. log-mel (N, 101, 40) or MFCC.
    n_mfcc : int or None, keyword-only
        When an int, X is taken to be log-mel and turned into MFCCs first
        (:func:`speechlib.features.mfcc_from_logmel`); ``None`` summarises
        the bins of X as they are.

    Returns
    -------
    np.ndarray, shape (N, 2 * k), float32
        ``[mean_1..mean_k, std_1..std_k]`` with k = ``n_mfcc`` or ``bins``.
    """
    return features.summary(X, n_mfcc=n_mfcc)


def _sklearn_pipeline(classifier: Any, *, n_mfcc: int | None, scale: bool = True) -> Any:
    steps: list[tuple[str, Any]] = [
        ("summary", FunctionTransformer(summary_features, kw_args={"n_mfcc": n_mfcc})),
    ]
    if scale:
        steps.append(("scale", StandardScaler()))
    steps.append(("classifier", classifier))
    return Pipeline(steps)


def _check_spectral_shape(input_shape: tuple[int, ...], name: str) -> tuple[int, int]:
    if len(input_shape) != 2:
        raise ValueError(f"{name} takes (frames, bins) spectral features; got input_shape={tuple(input_shape)}")
    return int(input_shape[0]), int(input_shape[1])


def majority(*, input_shape=LOGMEL_SHAPE, num_classes: int = 12, n_mfcc: int | None = 20) -> Any:
    """Chance level: always predict the most frequent training class.

    ``sklearn.dummy.DummyClassifier(strategy="most_frequent")`` behind the
    summary features (which it ignores), so it takes the same input as every
    other model. Its accuracy is the share of the largest class.
    """
    _check_spectral_shape(input_shape, "majority")
    return _sklearn_pipeline(DummyClassifier(strategy="most_frequent"), n_mfcc=n_mfcc, scale=False)


def logistic_regression(
    *, input_shape=LOGMEL_SHAPE, num_classes: int = 12, n_mfcc: int | None = 20, C: float = 1.0, max_iter: int = 2000
) -> Any:
    """Multinomial logistic regression on per-clip MFCC means and standard deviations.

    The original course's linear baseline. Pipeline: :func:`summary_features`
    -> ``StandardScaler`` -> ``LogisticRegression(C=C)``.
    """
    _check_spectral_shape(input_shape, "logistic_regression")
    return _sklearn_pipeline(LogisticRegression(C=C, max_iter=max_iter, random_state=SEED), n_mfcc=n_mfcc)


def random_forest(
    *,
    input_shape=LOGMEL_SHAPE,
    num_classes: int = 12,
    n_mfcc: int | None = 20,
    n_estimators: int = 300,
    max_depth: int | None = None,
    seed: int = SEED,
) -> Any:
    """Random forest (Breiman 2001) on per-clip MFCC means and standard deviations."""
    _check_spectral_shape(input_shape, "random_forest")
    forest = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=-1)
    return _sklearn_pipeline(forest, n_mfcc=n_mfcc, scale=False)


def mlp_classifier(
    *,
    input_shape=LOGMEL_SHAPE,
    num_classes: int = 12,
    n_mfcc: int | None = 20,
    hidden_layer_sizes: tuple[int, ...] = (256, 128),
    alpha: float = 1e-3,
    max_iter: int = 500,
    seed: int = SEED,
) -> Any:
    """scikit-learn multi-layer perceptron on per-clip MFCC means and standard deviations."""
    _check_spectral_shape(input_shape, "mlp_classifier")
    mlp = MLPClassifier(
        hidden_layer_sizes=hidden_layer_sizes, alpha=alpha, max_iter=max_iter, early_stopping=True, random_state=seed
    )
    return _sklearn_pipeline(mlp, n_mfcc=n_mfcc)


# ---------------------------------------------------------------------------
# Keras helpers
# ---------------------------------------------------------------------------


def _keras():
    import keras

    return keras


def _spectral_input(input_shape, name: str, *, channel: bool = True):
    """An Input for (frames, bins) features and, when ``channel``, the tensor with a channel axis added."""
    keras = _keras()
    frames, bins = _check_spectral_shape(input_shape, name)
    inputs = keras.Input(shape=(frames, bins), name="features")
    x = keras.layers.Reshape((frames, bins, 1), name="add_channel")(inputs) if channel else inputs
    return inputs, x


@functools.cache
def _get_subspectral_norm():
    """The SubSpectralNorm layer class, created on first use so importing this module stays light."""
    keras = _keras()
    from keras import ops

    @keras.saving.register_keras_serializable(package="speechlib")
    class SubSpectralNorm(keras.layers.Layer):
        """Batch norm with separate statistics for each of ``sub_bands`` frequency bands.

        Chang et al. 2021, "Subspectral Normalization for Neural Audio Data
        Processing" (as used by BC-ResNet). Input (batch, freq, time, channels)
        with ``freq`` divisible by ``sub_bands``; each (band, channel) pair gets
        its own mean, variance, scale and shift.
        """

        def __init__(self, sub_bands: int = 5, momentum: float = 0.9, epsilon: float = 1e-5, **kwargs):
            super().__init__(**kwargs)
            self.sub_bands = sub_bands
            self.momentum = momentum
            self.epsilon = epsilon
            self.norm = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name="bn")

        def build(self, input_shape):
            _, freq, time, channels = input_shape
            if freq % self.sub_bands:
                raise ValueError(
                    f"SubSpectralNorm: {freq} frequency bins do not split into {self.sub_bands} equal sub-bands; "
                    "use a number of mel bands divisible by 20 (e.g. 40) for BC-ResNet"
                )
            self.norm.build((None, freq // self.sub_bands, time, self.sub_bands * channels))

        def call(self, x, training=None):
            _, freq, time, channels = x.shape
            s = self.sub_bands
            y = ops.reshape(x, (-1, s, freq // s, time, channels))
            y = ops.transpose(y, (0, 2, 3, 1, 4))
            y = ops.reshape(y, (-1, freq // s, time, s * channels))
            y = self.norm(y, training=training)
            y = ops.reshape(y, (-1, freq // s, time, s, channels))
            y = ops.transpose(y, (0, 3, 1, 2, 4))
            return ops.reshape(y, (-1, freq, time, channels))

        def get_config(self):
            return {**super().get_config(), "sub_bands": self.sub_bands, "momentum": self.momentum,
                    "epsilon": self.epsilon}  # fmt: skip

    return SubSpectralNorm


#: How :func:`depthwise_conv2d` computes a depthwise convolution. All three give the
#: same outputs (within float32 round-off) from the same ``kernel`` and ``bias``.
DEPTHWISE_FORMULATIONS = ("keras", "grouped", "shifted")


def depthwise_conv2d(kernel_size, *, formulation: str = "keras", name: str | None = None, **kwargs):
    """A depthwise 2-D convolution layer, computed one of three equivalent ways.

    Parameters
    ----------
    kernel_size : int or tuple of int
        ``(kernel_rows, kernel_cols)``.
    formulation : {"keras", "grouped", "shifted"}, keyword-only
        - ``"keras"``: ``keras.layers.DepthwiseConv2D`` (TensorFlow's
          ``DepthwiseConv2dNative`` and its backprop kernels). The default:
          on the CPUs measured it is as fast as or faster than the others
          (``bench/depthwise.py``).
        - ``"grouped"``: one ``tf.nn.conv2d`` with as many groups as channels,
          the form PyTorch code writes as ``Conv2d(C, C, k, groups=C)``. On CPU
          TensorFlow runs grouped convolutions only through oneDNN (its default
          on x86); with ``TF_ENABLE_ONEDNN_OPTS=0`` the backward pass raises.
          Same speed as ``"keras"`` on CPU (0.95-1.01x per training step,
          process CPU time). Keras' own ``Conv2D(groups=C)`` is not used: on
          CPU it compiles the convolution with XLA, measured 20-500x slower
          per convolution.
        - ``"shifted"``: the sum over the ``kh * kw`` kernel taps of shifted
          (strided, dilated) slices of the padded input, each scaled per
          channel — element-wise ops only, so it runs on any Keras backend;
          memory-bound: 2.5-5x slower per training step on CPU.
    name : str, optional
        Layer name.
    **kwargs
        Arguments of ``keras.layers.DepthwiseConv2D`` (``strides``, ``padding``,
        ``dilation_rate``, ``use_bias``, ``depth_multiplier``, ...);
        ``data_format`` must be channels-last.

    Returns
    -------
    keras.layers.DepthwiseConv2D
        The Keras layer itself, or a :class:`ReformulatedDepthwiseConv2D`
        subclass with the same weights (``kernel`` of shape ``(kh, kw,
        channels, depth_multiplier)``, then ``bias``), so weights move between
        formulations with ``get_weights`` / ``set_weights`` and a saved
        ``.keras`` file loads with ``keras.saving.load_model``.
    """
    keras = _keras()
    if formulation not in DEPTHWISE_FORMULATIONS:
        raise ValueError(
            f"unknown depthwise formulation {formulation!r}; choose one of: {', '.join(DEPTHWISE_FORMULATIONS)}"
        )
    if formulation == "keras":
        return keras.layers.DepthwiseConv2D(kernel_size, name=name, **kwargs)
    return _get_reformulated_depthwise()(kernel_size, formulation=formulation, name=name, **kwargs)


@functools.cache
def _get_reformulated_depthwise():
    """The ReformulatedDepthwiseConv2D class, created on first use (like SubSpectralNorm)."""
    keras = _keras()
    from keras import ops

    @keras.saving.register_keras_serializable(package="speechlib")
    class ReformulatedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
        """``keras.layers.DepthwiseConv2D`` computed as a grouped convolution or as shifted, scaled copies.

        Same constructor, weights and output shape as the Keras layer, plus
        ``formulation`` (``"grouped"`` or ``"shifted"``; see
        :func:`speechlib.models.depthwise_conv2d`). Channels-last input
        ``(batch, rows, cols, channels)`` with known ``rows`` and ``cols``.
        """

        def __init__(self, kernel_size, formulation: str = "grouped", **kwargs):
            super().__init__(kernel_size, **kwargs)
            _check_reformulation(self, formulation, keras.backend.backend())
            self.formulation = formulation

        def call(self, inputs):
            kh, kw = self.kernel_size
            channels = inputs.shape[-1]
            if self.formulation == "grouped":
                import tensorflow as tf

                kernel = ops.reshape(self.kernel, (kh, kw, 1, channels * self.depth_multiplier))
                outputs = tf.nn.conv2d(inputs, kernel, strides=(1, *self.strides, 1), padding=self.padding.upper(),
                                       dilations=(1, *self.dilation_rate, 1))  # fmt: skip
            else:
                outputs = self._shifted(inputs, kh, kw, channels)
            if self.use_bias:
                outputs = outputs + self.bias
            if self.activation is not None:
                outputs = self.activation(outputs)
            return outputs

        def _shifted(self, x, kh, kw, channels):
            (sh, sw), (dh, dw) = self.strides, self.dilation_rate
            x, out_rows, out_cols = _pad_for_taps(x, self, ops)
            kernel = self.kernel
            if self.depth_multiplier > 1:  # output channel c * m + j reads input channel c
                x = ops.repeat(x, self.depth_multiplier, axis=-1)
            kernel = ops.reshape(kernel, (kh, kw, channels * self.depth_multiplier))
            outputs = None
            for i in range(kh):
                for j in range(kw):
                    r, c = i * dh, j * dw
                    tap = x[:, r : r + (out_rows - 1) * sh + 1 : sh, c : c + (out_cols - 1) * sw + 1 : sw, :]
                    tap = tap * kernel[i, j]
                    outputs = tap if outputs is None else outputs + tap
            return outputs

        def get_config(self):
            return {**super().get_config(), "formulation": self.formulation}

    return ReformulatedDepthwiseConv2D


def _check_reformulation(layer, formulation: str, backend: str) -> None:
    """Refuse what a reformulated depthwise layer cannot compute, saying what to use instead."""
    if formulation not in ("grouped", "shifted"):
        raise ValueError(f"ReformulatedDepthwiseConv2D: formulation must be 'grouped' or 'shifted', "
                         f"got {formulation!r}; use keras.layers.DepthwiseConv2D for 'keras'")  # fmt: skip
    if layer.data_format != "channels_last":
        raise ValueError("ReformulatedDepthwiseConv2D supports data_format='channels_last' only")
    if formulation == "grouped":
        if backend != "tensorflow":
            raise ValueError("the 'grouped' depthwise formulation needs the TensorFlow backend; "
                             "use 'shifted' (any backend) or 'keras'")  # fmt: skip
        if max(layer.strides) > 1 and max(layer.dilation_rate) > 1:
            raise ValueError("the 'grouped' depthwise formulation cannot combine strides > 1 with "
                             "dilation_rate > 1 (tf.nn.conv2d does not); use 'keras' or 'shifted'")  # fmt: skip


def _pad_for_taps(x, layer, ops):
    """``x`` padded as the layer's padding says (TensorFlow's SAME: the odd pixel after), and the output rows, cols."""
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    rows, cols = x.shape[1], x.shape[2]
    if rows is None or cols is None:
        raise ValueError("the 'shifted' depthwise formulation needs known rows and cols in the input shape")
    if layer.padding == "same":  # TensorFlow's SAME: the odd pixel of padding goes after
        out_rows, out_cols = -(-rows // sh), -(-cols // sw)
        pad_rows = max((out_rows - 1) * sh + (kh - 1) * dh + 1 - rows, 0)
        pad_cols = max((out_cols - 1) * sw + (kw - 1) * dw + 1 - cols, 0)
        x = ops.pad(x, ((0, 0), (pad_rows // 2, pad_rows - pad_rows // 2),
                        (pad_cols // 2, pad_cols - pad_cols // 2), (0, 0)))  # fmt: skip
    else:
        out_rows = (rows - (kh - 1) * dh - 1) // sh + 1
        out_cols = (cols - (kw - 1) * dw - 1) // sw + 1
    return x, out_rows, out_cols


@functools.cache
def _get_logmel():
    """The LogMel layer class, created on first use (like SubSpectralNorm): it imports TensorFlow."""
    keras = _keras()
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="speechlib")
    class LogMel(keras.layers.Layer):
        """Log-mel spectrogram of raw audio with ``tf.signal``, equal to ``speechlib.features.logmel``.

        Input (batch, n_samples) float32; output (batch, frames, n_mels)
        float32. The parameters are those of ``features.logmel_batch``; the
        window and the mel basis are the numpy arrays speechlib uses
        (periodic Hann; ``librosa.filters.mel``, Slaney), held as constants.
        ``mean``/``std`` (optional, per band) normalise the output as
        ``features.normalize`` does.
        """

        def __init__(self, params: dict | None = None, mean=None, std=None, **kwargs):
            super().__init__(**kwargs)
            p = features.resolve_params("logmel", **(params or {}))
            self.params = p
            self.n_fft, self.win_length, self.hop_length = int(p["n_fft"]), int(p["win_length"]), int(p["hop_length"])
            fmax = p["sample_rate"] / 2 if p["fmax"] is None else p["fmax"]
            # The constants of speechlib.features: a periodic Hann window and librosa's mel basis
            # (Slaney scale and norm), as numpy arrays; tests check the two paths agree.
            self._window = scipy.signal.get_window("hann", self.win_length, fftbins=True).astype(np.float32)
            basis = librosa.filters.mel(
                sr=int(p["sample_rate"]), n_fft=self.n_fft, n_mels=int(p["n_mels"]), fmin=float(p["fmin"]), fmax=fmax
            )
            self._basis = np.ascontiguousarray(basis.T, dtype=np.float32)  # (n_fft // 2 + 1, n_mels)
            self.mean = None if mean is None else [float(v) for v in np.asarray(mean).ravel()]
            self.std = None if std is None else [float(v) for v in np.asarray(std).ravel()]

        def call(self, waveforms):
            x = tf.cast(waveforms, tf.float32)
            n = x.shape[-1]
            frames = 1 + n // self.hop_length if self.params["center"] else 1 + (n - self.n_fft) // self.hop_length
            pad = self.n_fft // 2 if self.params["center"] else 0
            lead = (self.n_fft - self.win_length) // 2  # where librosa's window sits inside the n_fft frame
            needed = (frames - 1) * self.hop_length + lead + self.win_length
            x = tf.pad(x, [[0, 0], [pad, max(needed, n + pad) - n - pad]])
            framed = tf.signal.frame(x[:, lead:needed], self.win_length, self.hop_length, pad_end=False)
            spectrum = tf.signal.rfft(framed * self._window, fft_length=[self.n_fft])
            power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
            mel = tf.linalg.matmul(power, self._basis)
            out = tf.math.log(mel + np.float32(self.params["log_offset"]))
            if self.mean is not None:
                std = np.maximum(np.asarray(self.std, np.float32), np.float32(1e-6))  # as features.normalize
                out = (out - np.asarray(self.mean, np.float32)) / std
            return out

        def compute_output_shape(self, input_shape):
            return (input_shape[0], *features.output_shape("logmel", num_samples=input_shape[-1], **self.params))

        def get_config(self):
            return {**super().get_config(), "params": self.params, "mean": self.mean, "std": self.std}

    return LogMel


def __getattr__(name: str) -> Any:
    if name == "LogMel":  # the layer class, built on first access (it imports TensorFlow)
        return _get_logmel()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------
# Classic Keras models of the original course
# ---------------------------------------------------------------------------


def dense_net(
    *, input_shape=LOGMEL_SHAPE, num_classes: int = 12, units: tuple[int, ...] = (256, 256), dropout: float = 0.3
):
    """Fully connected network on the flattened log-mel spectrogram.

    The original course's "dense" model; Hello Edge (Zhang et al. 2017) calls
    the same family DNN. Layers: Flatten -> [Dense(u) -> BatchNorm -> ReLU ->
    Dropout] for u in ``units`` -> Dense(num_classes) logits.
    """
    keras = _keras()
    layers = keras.layers
    inputs, x = _spectral_input(input_shape, "dense_net", channel=False)
    x = layers.Flatten()(x)
    for i, u in enumerate(units):
        x = layers.Dense(u, use_bias=False, name=f"dense_{i}")(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="dense_net")


def cnn2d(
    *,
    input_shape=LOGMEL_SHAPE,
    num_classes: int = 12,
    resize: tuple[int, int] | None = (32, 32),
    filters: tuple[int, int] = (32, 64),
    dense_units: int = 128,
    dropout: tuple[float, float] = (0.25, 0.5),
):
    """The simple 2-D CNN of the TensorFlow tutorial "Simple audio recognition".

    tensorflow/docs, site/en/tutorials/audio/simple_audio.ipynb: Resizing(32, 32)
    -> Conv2D(32, 3, relu) -> Conv2D(64, 3, relu) -> MaxPooling2D -> Dropout(0.25)
    -> Flatten -> Dense(128, relu) -> Dropout(0.5) -> Dense(num_classes) logits.
    About 1.63 M parameters for 12 classes, whatever the input size (the
    resize fixes it). The tutorial's adapted Normalization layer is left out:
    speechlib normalises features in the feature store. ``resize=None`` keeps
    the input size.
    """
    keras = _keras()
    layers = keras.layers
    inputs, x = _spectral_input(input_shape, "cnn2d")
    if resize is not None:
        x = layers.Resizing(*resize)(x)
    x = layers.Conv2D(filters[0], 3, activation="relu")(x)
    x = layers.Conv2D(filters[1], 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(dropout[0])(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout[1])(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="cnn2d")


def _recurrent(cell: str, *, input_shape, num_classes, units, num_layers, bidirectional, dropout, pool):
    keras = _keras()
    layers = keras.layers
    rnn = {"gru": layers.GRU, "lstm": layers.LSTM}[cell]
    if pool not in ("max", None):
        raise ValueError(f"pool={pool!r}: 'max' (the largest of every step's state) or None (the last step's)")
    inputs, x = _spectral_input(input_shape, cell, channel=False)
    for i in range(num_layers):
        layer = rnn(units, return_sequences=pool is not None or i < num_layers - 1, name=f"{cell}_{i}")
        x = layers.Bidirectional(layer)(x) if bidirectional else layer(x)
        x = layers.Dropout(dropout)(x)
    if pool == "max":
        x = layers.GlobalMaxPooling1D(name="max_over_time")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=cell)


def gru(
    *,
    input_shape=LOGMEL_SHAPE,
    num_classes: int = 12,
    units: int = 128,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.2,
    pool: str | None = "max",
):
    """GRU over log-mel frames; the largest value of each unit over all steps feeds a Dense logits layer.

    Cho et al. 2014 cells, as compared for keyword spotting in Hello Edge
    (Zhang et al. 2017, GRU-S: one layer of 154 units on 10 MFCC). Each frame
    (one row of ``bins`` values) is one time step. ``pool="max"`` (default)
    takes every step's hidden state and keeps each unit's maximum over time, so
    the loss reaches the frames where the word is, wherever it is in the clip;
    ``pool=None`` keeps only the last step's state, as Hello Edge does — on the
    101 steps of a 1-s clip an LSTM trained that way stayed at chance in
    notebook 3 (its gradient must cross every step after the word).
    """
    return _recurrent(
        "gru", input_shape=input_shape, num_classes=num_classes, units=units, num_layers=num_layers,
        bidirectional=bidirectional, dropout=dropout, pool=pool,
    )  # fmt: skip


def lstm(
    *,
    input_shape=LOGMEL_SHAPE,
    num_classes: int = 12,
    units: int = 128,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.2,
    pool: str | None = "max",
):
    """LSTM over log-mel frames (Hochreiter & Schmidhuber 1997), max over time by default; see :func:`gru`."""
    return _recurrent(
        "lstm", input_shape=input_shape, num_classes=num_classes, units=units, num_layers=num_layers,
        bidirectional=bidirectional, dropout=dropout, pool=pool,
    )  # fmt: skip


def course_cnn1d(
    *,
    input_shape=WAVEFORM_SHAPE,
    num_classes: int = 12,
    width: float = 1.0,
    num_blocks: int = 9,
    first_filters: int = 8,
    kernel_size: int = 3,
    pool_size: int = 2,
    bottleneck: int = 1024,
    dense_units: int = 1024,
    dropout: float = 0.5,
):
    """The original course's final model: a deep 1-D CNN on the raw waveform.

    Nine blocks of [Conv1D -> BatchNorm -> ReLU] x 2 -> MaxPooling1D, filters
    8, 16, ..., 2048 (doubling per block); a 1x1 Conv1D (``bottleneck``
    filters); global max pooling; Dense(1024) -> ReLU -> Dropout; Dense logits.
    At full width this is 28.4 M parameters (the course documents "about
    28 M"): the layer plan is the course's; the kernel size 3 and the 1x1
    width of 1024 are the values that give its documented size.

    ``width`` multiplies every filter count and the two 1024-wide layers
    (at least 1 unit each), e.g. ``width=1/16`` for a 0.11 M-parameter
    version that trains on a laptop CPU.

    Input: raw waveform, shape ``(CLIP_SAMPLES,)`` float32 in [-1, 1].
    """
    keras = _keras()
    layers = keras.layers
    if len(input_shape) != 1:
        raise ValueError(f"course_cnn1d takes a raw waveform of shape (n_samples,); got input_shape={input_shape}")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")

    def scaled(n: int) -> int:
        return max(1, round(n * width))

    inputs = keras.Input(shape=tuple(input_shape), name="waveform")
    x = layers.Reshape((int(input_shape[0]), 1), name="add_channel")(inputs)
    for block in range(num_blocks):
        filters = scaled(first_filters * 2**block)
        for j in range(2):
            x = layers.Conv1D(filters, kernel_size, padding="same", use_bias=False, name=f"b{block}_conv{j}")(x)
            x = layers.BatchNormalization(name=f"b{block}_bn{j}")(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling1D(pool_size, name=f"b{block}_pool")(x)
    x = layers.Conv1D(scaled(bottleneck), 1, activation="relu", name="conv1x1")(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(scaled(dense_units), activation="relu", name="dense")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="course_cnn1d")


def urban_cnn(
    *,
    input_shape=LOGMEL_SHAPE,
    num_classes: int = 12,
    filters: tuple[int, int, int, int] = (32, 32, 64, 64),
    spatial_dropout: tuple[float, float] = (0.07, 0.14),
    l2: float = 5e-4,
    leaky_alpha: float = 0.1,
):
    """The environmental-sound CNN of the Lambda urban-audio demo (UrbanSound8K).

    Four 3x3 Conv2D layers (32, 32, 64, 64 filters, 'valid' padding, L2 weight
    decay), each followed by LeakyReLU(0.1) and batch norm; max pooling after
    the second; spatial dropout before the 2nd, 3rd (rate 0.07) and 4th (0.14)
    convolutions; global average pooling; one Dense layer (logits). 66 K
    parameters for 12 classes.
    """
    keras = _keras()
    layers = keras.layers
    inputs, x = _spectral_input(input_shape, "urban_cnn")
    reg = keras.regularizers.L2(l2) if l2 else None
    for i, f in enumerate(filters):
        if i > 0:
            x = layers.SpatialDropout2D(spatial_dropout[0] if i < 3 else spatial_dropout[1])(x)
        x = layers.Conv2D(f, 3, kernel_regularizer=reg, name=f"conv{i}")(x)
        x = layers.LeakyReLU(negative_slope=leaky_alpha)(x)
        x = layers.BatchNormalization()(x)
        if i == 1:
            x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="urban_cnn")


# ---------------------------------------------------------------------------
# Modern small keyword-spotting models
# ---------------------------------------------------------------------------

#: DS-CNN configurations of Hello Edge (ARM-software/ML-KWS-for-MCU, train_commands.txt):
#: per layer (filters, kernel time, kernel freq, stride time, stride freq); layer 0 is a
#: regular convolution, the others depthwise-separable.
DS_CNN_SIZES: dict[str, list[tuple[int, int, int, int, int]]] = {
    "s": [(64, 10, 4, 2, 2)] + [(64, 3, 3, 1, 1)] * 4,
    "m": [(172, 10, 4, 2, 1), (172, 3, 3, 2, 2)] + [(172, 3, 3, 1, 1)] * 3,
    "l": [(276, 10, 4, 2, 1), (276, 3, 3, 2, 2)] + [(276, 3, 3, 1, 1)] * 4,
}


def ds_cnn(
    *,
    input_shape=LOGMEL_SHAPE,
    num_classes: int = 12,
    size: str = "s",
    layers_config: list[tuple[int, int, int, int, int]] | None = None,
    dropout: float = 0.0,
    depthwise: str = "keras",
):
    """DS-CNN, the depthwise-separable CNN of "Hello Edge".

    Zhang, Suda, Lai & Chandra 2017, "Hello Edge: Keyword Spotting on
    Microcontrollers", arXiv:1711.07128; shapes from its reference code
    (ARM-software/ML-KWS-for-MCU, ``create_ds_cnn_model`` and
    ``train_commands.txt``). A regular Conv2D -> BN -> ReLU, then
    depthwise-separable blocks [DepthwiseConv2D 3x3 -> BN -> ReLU -> Conv2D 1x1
    -> BN -> ReLU], global average pooling, Dense logits. Convolutions keep
    their biases and batch norms learn a shift only (tf-slim defaults).

    ``size`` picks S, M or L (:data:`DS_CNN_SIZES`); ``layers_config``
    overrides it. The paper's input is 10 MFCC x 49 frames (40 ms windows,
    20 ms stride); any (frames, bins) input works, the parameter count does
    not depend on it.

    Parameter counts (12 classes): S 23,180, M 136,580, L 413,736 trainable
    weights. The paper's Table 7 gives 38.6 KB, 189.2 KB and 497.6 KB: that is
    *memory* — 8-bit weights (batch norm folded into the convolutions) plus
    the largest pair of activation buffers — not a parameter count, and it is
    reproduced exactly by these shapes (see tests/test_models.py).

    ``depthwise`` picks how the depthwise convolutions are computed
    (:data:`DEPTHWISE_FORMULATIONS`, :func:`depthwise_conv2d`): same weights,
    same outputs; the default, Keras' ``DepthwiseConv2D``, was the fastest
    measured on CPU (``bench/depthwise.py``).
    """
    keras = _keras()
    layers = keras.layers
    config = layers_config if layers_config is not None else DS_CNN_SIZES[size.lower()]
    inputs, x = _spectral_input(input_shape, "ds_cnn")

    def bn_relu(t, name):
        t = layers.BatchNormalization(scale=False, momentum=0.96, epsilon=1e-3, name=f"{name}_bn")(t)
        return layers.ReLU(name=f"{name}_relu")(t)

    filters, kt, kf, st, sf = config[0]
    x = layers.Conv2D(filters, (kt, kf), strides=(st, sf), padding="same", name="conv_1")(x)
    x = bn_relu(x, "conv_1")
    for i, (filters, kt, kf, st, sf) in enumerate(config[1:], start=1):
        x = depthwise_conv2d((kt, kf), strides=(st, sf), padding="same", formulation=depthwise,
                             name=f"conv_ds_{i}_dw")(x)  # fmt: skip
        x = bn_relu(x, f"conv_ds_{i}_dw")
        x = layers.Conv2D(filters, 1, name=f"conv_ds_{i}_pw")(x)
        x = bn_relu(x, f"conv_ds_{i}_pw")
    if dropout:
        x = layers.Dropout(dropout)(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"ds_cnn_{size.lower()}" if layers_config is None else "ds_cnn")


def res_net(
    *,
    input_shape=LOGMEL_SHAPE,
    num_classes: int = 12,
    num_maps: int = 45,
    num_layers: int = 13,
    dilation: bool = True,
    pool: tuple[int, int] | None = None,
):
    """res8 / res15 / res26: deep residual learning for small-footprint keyword spotting.

    Tang & Lin 2018, "Deep Residual Learning for Small-Footprint Keyword
    Spotting", ICASSP, arXiv:1710.10361; shapes from the authors' code
    (castorini/honk, ``SpeechResModel``). A bias-free 3x3 convolution (then
    average pooling ``pool`` for res8/res26), then ``num_layers`` bias-free
    3x3 convolutions of ``num_maps`` maps, each ReLU -> batch norm without
    affine parameters, with an identity shortcut around every pair; res15
    grows the dilation as 2**(i // 3); global average pooling; Dense logits.
    The paper's input is 40 MFCC x 101 frames (time-major, like ours).

    Variants (12 classes, paper's parameter counts): res8 (6 layers, pool 4x3)
    110 K, res8-narrow (19 maps) 19.9 K, res15 (13 dilated layers) 238 K,
    res15-narrow 42.6 K, res26 (24 layers, pool 2x2) 438 K.
    """
    keras = _keras()
    layers = keras.layers
    inputs, x = _spectral_input(input_shape, "res_net")
    x = layers.Conv2D(num_maps, 3, padding="same", use_bias=False, activation="relu", name="conv0")(x)
    if pool is not None:
        x = layers.AveragePooling2D(pool, name="pool0")(x)
    shortcut = x
    for i in range(1, num_layers + 1):
        rate = 2 ** ((i - 1) // 3) if dilation else 1
        y = layers.Conv2D(
            num_maps, 3, padding="same", dilation_rate=rate, use_bias=False, activation="relu", name=f"conv{i}"
        )(x)
        if i % 2 == 0:
            x = shortcut = layers.Add(name=f"res{i}")([y, shortcut])
        else:
            x = y
        x = layers.BatchNormalization(center=False, scale=False, epsilon=1e-5, name=f"bn{i}")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="res_net")


def bc_resnet(
    *, input_shape=LOGMEL_SHAPE, num_classes: int = 12, tau: float = 1.0, dropout: float = 0.1, depthwise: str = "keras"
):
    """BC-ResNet: broadcasted residual learning for keyword spotting.

    Kim, Chang, Lee & Sung 2021, "Broadcasted Residual Learning for Efficient
    Keyword Spotting", Interspeech, arXiv:2106.04140; shapes from the authors'
    code (Qualcomm-AI-research/bcresnet, ``BCResNets``). The features are
    transposed to (freq, time) as in the paper. Head: Conv 5x5 stride (2, 1)
    -> BN -> ReLU with 16*tau channels; four stages of 2, 2, 4, 4 BC-ResBlocks
    with 8, 12, 16, 20 (x tau) channels, stride 2 in frequency at the start of
    stages 2 and 3 and temporal dilation 1, 2, 4, 8. A block: [1x1 conv -> BN
    -> ReLU when the width changes] -> frequency-depthwise 3x1 conv ->
    SubSpectralNorm (5 sub-bands) = f2; frequency average -> time-depthwise 1x3
    (dilated) conv -> BN -> SiLU -> 1x1 conv -> spatial dropout = f1;
    output ReLU(f1 broadcast over frequency + f2 [+ input]). Classifier:
    depthwise 5x5 (valid in frequency) -> 1x1 conv 32*tau -> BN -> ReLU ->
    average -> Dense logits.

    The input needs 40 mel bands (the frequency axis is halved three times to
    5, which the classifier's 5x5 kernel consumes). Paper's parameter counts
    (12 classes, 40 log-mel x 101 frames): BC-ResNet-1 9.2 K, -1.5 13.6 K,
    -2 26.8 K, -3 54.2 K, -6 188 K, -8 321 K; registered as ``bc_resnet_<tau>``
    for tau = 1, 2, 3, 6, 8.

    ``depthwise`` picks how the frequency (3x1), temporal (1x3) and
    classifier (5x5) depthwise convolutions are computed
    (:data:`DEPTHWISE_FORMULATIONS`, :func:`depthwise_conv2d`): same weights,
    same outputs; the default, Keras' ``DepthwiseConv2D``, was the fastest
    measured on CPU (``bench/depthwise.py``).
    """
    keras = _keras()
    frames, bins = _check_spectral_shape(input_shape, "bc_resnet")
    if bins != 40:
        raise ValueError(f"bc_resnet needs 40 mel bands (the paper's input); got input_shape={tuple(input_shape)}")
    base = int(8 * tau)
    channels = [2 * base, base, int(1.5 * base), 2 * base, int(2.5 * base), 4 * base]
    repeats = [2, 2, 4, 4]
    strided_stages = {1, 2}
    inputs = keras.Input(shape=(frames, bins), name="features")
    x = _bc_head(inputs, channels[0])
    for stage, n in enumerate(repeats):
        for j in range(n):
            stride = 2 if (stage in strided_stages and j == 0) else 1
            x = _bc_block(x, channels[stage + 1], stride=stride, dilation=2**stage, dropout=dropout,
                          depthwise=depthwise, name=f"s{stage}b{j}")  # fmt: skip
    outputs = _bc_classifier(x, channels[-1], num_classes, depthwise=depthwise)
    return keras.Model(inputs, outputs, name=f"bc_resnet_{tau:g}")


def _bc_bn(name: str):
    """BC-ResNet's batch normalization (the authors' momentum and epsilon)."""
    return _keras().layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _bc_head(inputs, out_c: int):
    """(frames, bins) features to (freq, time, 1), then Conv 5x5 stride (2, 1) -> BN -> ReLU."""
    layers = _keras().layers
    frames, bins = inputs.shape[1], inputs.shape[2]
    x = layers.Permute((2, 1), name="to_freq_time")(inputs)
    x = layers.Reshape((bins, frames, 1), name="add_channel")(x)
    x = layers.Conv2D(out_c, 5, strides=(2, 1), padding="same", use_bias=False, name="head_conv")(x)
    return layers.ReLU()(_bc_bn("head_bn")(x))


def _bc_block(x, out_c: int, *, stride: int, dilation: int, dropout: float, depthwise: str, name: str):
    """One BC-ResBlock: ReLU(f1 broadcast over frequency + f2 [+ input when the width is unchanged])."""
    layers = _keras().layers
    SubSpectralNorm = _get_subspectral_norm()
    transition = x.shape[-1] != out_c
    shortcut = x
    y = x
    if transition:
        y = layers.Conv2D(out_c, 1, use_bias=False, name=f"{name}_expand")(y)
        y = layers.ReLU()(_bc_bn(f"{name}_expand_bn")(y))
    y = depthwise_conv2d((3, 1), strides=(stride, 1), padding="same", use_bias=False,
                         formulation=depthwise, name=f"{name}_freq_dw")(y)  # fmt: skip
    f2 = SubSpectralNorm(5, name=f"{name}_ssn")(y)
    z = layers.AveragePooling2D(pool_size=(f2.shape[1], 1), name=f"{name}_freq_avg")(f2)
    z = depthwise_conv2d((1, 3), padding="same", dilation_rate=(1, dilation), use_bias=False,
                         formulation=depthwise, name=f"{name}_time_dw")(z)  # fmt: skip
    z = layers.Activation("silu")(_bc_bn(f"{name}_time_bn")(z))
    z = layers.Conv2D(out_c, 1, use_bias=False, name=f"{name}_pw")(z)
    z = layers.SpatialDropout2D(dropout)(z)
    parts = [z, f2] if transition else [z, f2, shortcut]
    return layers.ReLU()(layers.Add(name=f"{name}_add")(parts))


def _bc_classifier(x, out_c: int, num_classes: int, *, depthwise: str):
    """Depthwise 5x5 (valid in frequency) -> 1x1 conv -> BN -> ReLU -> average -> Dense logits."""
    layers = _keras().layers
    x = layers.ZeroPadding2D(((0, 0), (2, 2)))(x)
    x = depthwise_conv2d((5, 5), use_bias=False, formulation=depthwise, name="cls_dw")(x)
    x = layers.Conv2D(out_c, 1, use_bias=False, name="cls_pw")(x)
    x = layers.ReLU()(_bc_bn("cls_bn")(x))
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dense(num_classes, name="logits")(x)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


def _variant(builder: Callable, **fixed) -> Callable:
    """``builder`` with some hyper-parameters fixed (keeps its docstring)."""
    partial = functools.partial(builder, **fixed)
    functools.update_wrapper(partial, builder)
    return partial


MODELS: dict[str, Callable[..., Any]] = {
    # baselines (scikit-learn, on summary features)
    "majority": majority,
    "logistic_regression": logistic_regression,
    "random_forest": random_forest,
    "mlp": mlp_classifier,
    # the original course's Keras models
    "dense": dense_net,
    "cnn2d": cnn2d,
    "gru": gru,
    "lstm": lstm,
    "course_cnn1d": course_cnn1d,
    "urban_cnn": urban_cnn,
    # modern small keyword-spotting models
    "ds_cnn_s": _variant(ds_cnn, size="s"),
    "ds_cnn_m": _variant(ds_cnn, size="m"),
    "ds_cnn_l": _variant(ds_cnn, size="l"),
    "res8": _variant(res_net, num_layers=6, dilation=False, pool=(4, 3)),
    "res8_narrow": _variant(res_net, num_maps=19, num_layers=6, dilation=False, pool=(4, 3)),
    "res15": _variant(res_net, num_layers=13, dilation=True),
    "res15_narrow": _variant(res_net, num_maps=19, num_layers=13, dilation=True),
    "res26": _variant(res_net, num_layers=24, dilation=False, pool=(2, 2)),
    "bc_resnet_1": _variant(bc_resnet, tau=1),
    "bc_resnet_2": _variant(bc_resnet, tau=2),
    "bc_resnet_3": _variant(bc_resnet, tau=3),
    "bc_resnet_6": _variant(bc_resnet, tau=6),
    "bc_resnet_8": _variant(bc_resnet, tau=8),
}

#: The input each registered model expects.
INPUT_KIND: dict[str, str] = {name: ("waveform" if name == "course_cnn1d" else "logmel") for name in MODELS}


@dataclass(frozen=True)
class Reference:
    """A parameter count documented by a model's source, and what it refers to."""

    source: str
    params: int  # as documented (rounded as the source rounds it)
    input_shape: tuple[int, ...]  # the input of the documented configuration
    num_classes: int = 12
    note: str = ""


_TANG = "Tang & Lin 2018, Table 1"
_KIM = "Kim et al. 2021, Table 2"
REFERENCES: dict[str, Reference] = {  # Tang & Lin and Kim et al. take 1-s, 10-ms-hop, 40-band input: LOGMEL_SHAPE
    "res8": Reference(_TANG, 110_000, LOGMEL_SHAPE),
    "res8_narrow": Reference(_TANG, 19_900, LOGMEL_SHAPE),
    "res15": Reference(_TANG, 238_000, LOGMEL_SHAPE),
    "res15_narrow": Reference(_TANG, 42_600, LOGMEL_SHAPE),
    "res26": Reference(_TANG, 438_000, LOGMEL_SHAPE),
    "bc_resnet_1": Reference(_KIM, 9_200, LOGMEL_SHAPE),
    "bc_resnet_2": Reference(_KIM, 26_800, LOGMEL_SHAPE),
    "bc_resnet_3": Reference(_KIM, 54_200, LOGMEL_SHAPE),
    "bc_resnet_6": Reference(_KIM, 188_000, LOGMEL_SHAPE),
    "bc_resnet_8": Reference(_KIM, 321_000, LOGMEL_SHAPE),
    "course_cnn1d": Reference("original course", 28_000_000, WAVEFORM_SHAPE, note="'about 28 M' at full width"),
    "ds_cnn_s": Reference(
        "Zhang et al. 2017, Table 7", 38_600, (49, 10), note="documented figure is memory in bytes, not parameters"
    ),
    "ds_cnn_m": Reference(
        "Zhang et al. 2017, Table 7", 189_200, (49, 10), note="documented figure is memory in bytes, not parameters"
    ),
    "ds_cnn_l": Reference(
        "Zhang et al. 2017, Table 7", 497_600, (49, 10), note="documented figure is memory in bytes, not parameters"
    ),
}


def build(name: str, *, input_shape: tuple[int, ...] | None = None, num_classes: int = 12, **kwargs) -> Any:
    """Build the model registered as ``name`` in :data:`MODELS`.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`, e.g. ``"res15"``.
    input_shape : tuple of int, optional
        ``(frames, bins)`` for spectral models, ``(n_samples,)`` for the
        raw-waveform model; default: :data:`LOGMEL_SHAPE` or :data:`WAVEFORM_SHAPE`
        according to :data:`INPUT_KIND`.
    num_classes : int
        Number of output logits.
    **kwargs
        Hyper-parameters of the builder.

    Returns
    -------
    keras.Model or sklearn.pipeline.Pipeline
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    if input_shape is None:
        input_shape = WAVEFORM_SHAPE if INPUT_KIND[name] == "waveform" else LOGMEL_SHAPE
    return MODELS[name](input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)


# ---------------------------------------------------------------------------
# Helpers that work for Keras and scikit-learn models
# ---------------------------------------------------------------------------


def is_keras(model: Any) -> bool:
    """True for a Keras model (or layer), False for a scikit-learn estimator."""
    if hasattr(model, "fit") and hasattr(model, "get_params"):
        return False
    try:
        import keras
    except ImportError:  # pragma: no cover - keras is a hard dependency of speechlib
        return False
    return isinstance(model, keras.layers.Layer)


def count_params(model: Any, *, trainable_only: bool = False) -> int | None:
    """Number of weights of a Keras model; ``None`` for scikit-learn models.

    Parameters
    ----------
    model : keras.Model or sklearn estimator
    trainable_only : bool, keyword-only
        Count only trainable weights. Papers count these: batch-norm moving
        means and variances are statistics, not parameters.
    """
    if not is_keras(model):
        return None
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(int(np.prod(w.shape)) for w in weights))


def predict_proba(model: Any, X: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Class probabilities, shape (N, num_classes) float32, for Keras (softmax of logits) or sklearn."""
    X = np.asarray(X, dtype=np.float32)
    if is_keras(model):
        import keras

        logits = model.predict(X, batch_size=batch_size, verbose=0)
        return np.asarray(keras.ops.softmax(logits, axis=-1), dtype=np.float32)
    return np.asarray(model.predict_proba(X), dtype=np.float32)


def predict(model: Any, X: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Predicted label ids, shape (N,) int64.

    For scikit-learn models these are the classes seen in training
    (``model.classes_``), which are the label ids when it was fit on them.
    """
    if is_keras(model):
        return predict_proba(model, X, batch_size=batch_size).argmax(axis=1).astype(np.int64)
    return np.asarray(model.predict(np.asarray(X, dtype=np.float32)), dtype=np.int64)


def register_layers() -> None:
    """Define and register every custom Keras layer of the models (``speechlib>...``), once per process.

    The layers (``SubSpectralNorm``, ``ReformulatedDepthwiseConv2D``, ``LogMel``)
    are created on first use, so that importing this module does not import
    TensorFlow; a model saved with one of them loads in a fresh process only
    after this has run. :func:`load_model` calls it.
    """
    _get_subspectral_norm()
    _get_reformulated_depthwise()
    _get_logmel()


def load_model(path: str | Path, *, compile: bool = True) -> Any:
    """Load a ``.keras`` file saved from any model of this module, in any process.

    Parameters
    ----------
    path : str or Path
        The ``.keras`` file.
    compile : bool
        Restore the loss, metrics and optimizer too (their custom classes, if
        any, must be registered: ``speechlib.train`` registers its own).

    Returns
    -------
    keras.Model
    """
    keras = _keras()
    register_layers()
    return keras.saving.load_model(path, compile=compile)


def ensemble(members: list[Any], *, name: str = "ensemble") -> Any:
    """One Keras model that averages the logits of several trained models of the same input and classes.

    Averaging logits averages the members' log-probabilities (up to a constant
    per input), so the ensemble's argmax is that of the geometric mean of their
    probabilities. Models trained apart (another seed, another augmentation, the
    same data) err on different clips, and their average errs less than either
    (Hansen & Salamon 1990, Neural Network Ensembles; Lakshminarayanan et al.
    2017, arXiv:1612.01474); for keyword spotting see bench/results/real_speech.json.
    The result is an ordinary model: logits out, saved, loaded, exported and
    served like any other; its weights are the members' (shared, not copied).

    Parameters
    ----------
    members : list of keras.Model
        Two or more models, each features in, logits out, of one input shape and one number of classes.
    name : str
        The ensemble's name.

    Returns
    -------
    keras.Model

    Raises
    ------
    ValueError
        Fewer than two members, or members of other input shapes or class counts.
    """
    keras = _keras()
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two models, got {len(members)}")
    shapes = {tuple(m.input_shape[1:]) for m in members}
    classes = {m.output_shape[-1] for m in members}
    if len(shapes) > 1 or len(classes) > 1:
        raise ValueError(
            f"the models of an ensemble take one input and give one set of classes; got input shapes "
            f"{sorted(shapes)} and class counts {sorted(classes)}: combine models trained on the same features "
            "and labels"
        )
    inputs = keras.Input(shape=next(iter(shapes)), name="features")
    # Each member is wrapped under a name of its own: two models of one architecture share layer names.
    logits = [keras.Model(m.input, m.output, name=f"member_{i}")(inputs) for i, m in enumerate(members)]
    return keras.Model(inputs, keras.layers.Average(name="mean_logits")(logits), name=name)
