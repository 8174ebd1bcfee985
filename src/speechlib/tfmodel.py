"""The final model in raw TensorFlow: res8/res15, CNN2D and DS-CNN as ``tf.Module`` s, Adam, train step, SavedModel.

The Keras models of ``speechlib.models.res_net`` (res8, the course's final
model, ``speechlib.train.DEFAULT_MODEL``, and res15), ``speechlib.models.cnn2d``
and ``speechlib.models.ds_cnn`` written out with ``tf.Variable`` and ``tf.nn`` ops, layer for layer (same
shapes, same parameter count, same initialisation rule), for
``train_tensorflow.py`` and for readers who want to see what Keras does for
them. It fixes the bugs of the original course's raw TensorFlow script:

- batch norm keeps moving mean/variance variables, updated with momentum in
  training (``training=True``) and used in inference (``training=False``), so
  a prediction does not depend on the other clips of its batch;
- the model outputs logits and the loss is
  ``tf.nn.sparse_softmax_cross_entropy_with_logits`` (no softmax before it);
- one optimizer step per batch, inside a ``tf.function`` with ``tf.GradientTape``;
- the trained model is saved: ``tf.train.Checkpoint`` for resuming, a
  SavedModel with serving signatures for use (:func:`export_saved_model`).

Public API
----------
:class:`ResNet`, :class:`CNN2D`, :class:`DSCNN`
    The models (``model(x, training=False) -> logits``); :func:`build` makes one
    by its ``speechlib.models`` name (:data:`MODELS`).
:class:`BatchNorm`, :class:`Adam`
    The two stateful pieces, written with tf ops.
:func:`make_train_step`, :func:`predict_logits`, :func:`weighted_loss`
    Training and inference helpers.
:func:`export_saved_model`, :class:`ServingModule`
    SavedModel with a ``serving_default`` signature over log-mel features and a
    ``waveform`` signature over raw 16 kHz clips.

Adam is written with tf ops (about 20 lines) rather than taken from Keras so
that everything in a checkpoint is a plain ``tf.Variable`` of this module; it
follows ``keras.optimizers.Adam`` exactly (same defaults and update rule).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf
from google.protobuf import text_format

from speechlib import evaluate, features, models, train
from speechlib.config import CLIP_SAMPLES, SEED
from speechlib.models import DS_CNN_SIZES, LOGMEL_SHAPE
from speechlib.train import LOG_FILE, ResumeError

#: The ``speechlib.models`` names written out here in raw TensorFlow.
MODELS = ("cnn2d", "ds_cnn_s", "ds_cnn_m", "ds_cnn_l", "res8", "res15")

#: The res_net hyper-parameters of each registered name (those of ``speechlib.models.MODELS``).
RES_NET_SIZES = {
    "res8": {"num_layers": 6, "dilation": False, "pool": (4, 3)},
    "res15": {"num_layers": 13, "dilation": True, "pool": None},
}


def glorot_uniform(shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Glorot/Xavier uniform initial weights, with Keras' fan rule for conv kernels.

    ``fan_in = shape[-2] * prod(shape[:-2])``, ``fan_out = shape[-1] * prod(shape[:-2])``;
    values uniform in ``[-limit, limit]`` with ``limit = sqrt(6 / (fan_in + fan_out))``.

    Returns
    -------
    np.ndarray, float32, of ``shape``
    """
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=tuple(shape)).astype(np.float32)


class BatchNorm(tf.Module):
    """Batch normalisation over all axes but the last, with moving statistics.

    Parameters
    ----------
    channels : int
        Size of the last axis.
    momentum : float
        ``moving = momentum * moving + (1 - momentum) * batch`` after each training batch.
    epsilon : float
        Added to the variance.
    center : bool
        Learn a shift (beta). res8/res15 learn neither shift nor scale (no affine parameters).
    scale : bool
        Learn a scale (gamma). DS-CNN learns a shift (beta) only, as tf-slim did.
    """

    def __init__(
        self,
        channels: int,
        *,
        momentum: float = 0.96,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = False,
        name=None,
    ):
        super().__init__(name=name)
        self.momentum = momentum
        self.epsilon = epsilon
        self.beta = tf.Variable(tf.zeros([channels]), name="beta") if center else None
        self.gamma = tf.Variable(tf.ones([channels]), name="gamma") if scale else None
        self.moving_mean = tf.Variable(tf.zeros([channels]), trainable=False, name="moving_mean")
        self.moving_variance = tf.Variable(tf.ones([channels]), trainable=False, name="moving_variance")

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        if training:
            axes = list(range(len(x.shape) - 1))
            mean, variance = tf.nn.moments(x, axes=axes)
            self.moving_mean.assign(self.momentum * self.moving_mean + (1.0 - self.momentum) * mean)
            self.moving_variance.assign(self.momentum * self.moving_variance + (1.0 - self.momentum) * variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return tf.nn.batch_normalization(x, mean, variance, self.beta, self.gamma, self.epsilon)


class _Module(tf.Module):
    """What the models share: a variable table and the parameter count."""

    input_shape: tuple[int, int]
    num_classes: int

    def summary(self) -> str:
        """A table of the variables (name, shape, count) and the totals, like ``keras.Model.summary``."""
        lines = [f"{self.name}: input (batch, {self.input_shape[0]}, {self.input_shape[1]}) -> logits "
                 f"(batch, {self.num_classes})"]  # fmt: skip
        for v in self.variables:
            kind = "" if v.trainable else " (statistic)"
            lines.append(f"  {v.name:<40} {v.shape!s:<20} {int(np.prod(v.shape)):>9,}{kind}")
        total, trainable = self.count_params(), self.count_params(trainable_only=True)
        lines.append(f"  total {total:,} weights: {trainable:,} trainable, {total - trainable:,} batch-norm statistics")
        return "\n".join(lines)

    def count_params(self, *, trainable_only: bool = False) -> int:
        """Number of weights (as ``speechlib.models.count_params`` counts a Keras model)."""
        variables = self.trainable_variables if trainable_only else self.variables
        return int(sum(int(np.prod(v.shape)) for v in variables))

    def _dropout(self, x: tf.Tensor, rate: float) -> tf.Tensor:
        """Dropout drawn from the model's own ``tf.random.Generator`` (``self.dropout_rng``).

        Stateless dropout with a seed taken from a generator whose state is a
        variable saved in every ``tf.train.Checkpoint`` of the model, so a
        resumed run draws the masks the uninterrupted run would have drawn
        (``tf.nn.dropout``'s hidden op state restarts with the process).
        """
        return tf.nn.experimental.stateless_dropout(x, rate=rate, seed=self.dropout_rng.make_seeds(1)[:, 0])


class CNN2D(_Module):
    """The simple 2-D CNN of the TensorFlow tutorial "Simple audio recognition", in raw TensorFlow.

    The layer plan of ``speechlib.models.cnn2d``: bilinear resize to 32 x 32
    (``tf.image.resize``, no antialiasing: what ``keras.layers.Resizing``
    calls) -> Conv2D 3x3 + bias -> ReLU -> Conv2D 3x3 + bias -> ReLU ("valid"
    padding) -> 2x2 max pooling -> dropout -> flatten -> dense + ReLU ->
    dropout -> dense logits. Dropout only when ``training=True``. About 1.63 M
    parameters for 12 classes, whatever the input size.

    Parameters
    ----------
    input_shape : (frames, bins)
        Log-mel input without the batch axis, e.g. (101, 40).
    num_classes : int
    resize : (int, int) or None
        Size the input is resized to (None: kept).
    filters : (int, int)
        Channels of the two convolutions.
    dense_units : int
    dropout : (float, float)
        Rates after the pooling and after the hidden dense layer.
    seed : int
        Seed of the initial weights (Glorot uniform kernels, zero biases, as Keras).

    Examples
    --------
    >>> model = CNN2D()  # doctest: +SKIP
    >>> logits = model(tf.zeros([8, 101, 40]), training=False)  # (8, 12)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int] = LOGMEL_SHAPE,
        num_classes: int = 12,
        resize: tuple[int, int] | None = (32, 32),
        filters: tuple[int, int] = (32, 64),
        dense_units: int = 128,
        dropout: tuple[float, float] = (0.25, 0.5),
        seed: int = SEED,
        name: str | None = None,
    ):
        super().__init__(name=name or "cnn2d")
        if len(input_shape) != 2:
            raise ValueError(f"CNN2D takes (frames, bins) log-mel features; got input_shape={tuple(input_shape)}")
        self.input_shape = tuple(int(n) for n in input_shape)
        self.num_classes = int(num_classes)
        self.resize = None if resize is None else (int(resize[0]), int(resize[1]))
        self.dropout = (float(dropout[0]), float(dropout[1]))
        self.seed = seed
        self.dropout_rng = tf.random.Generator.from_seed(seed)  # checkpointed; not one of self.variables
        rng = np.random.default_rng(seed)
        height, width = self.resize or self.input_shape
        height, width = (height - 4) // 2, (width - 4) // 2  # two valid 3x3 convolutions, then 2x2 pooling
        if height < 1 or width < 1:
            raise ValueError(f"CNN2D needs an input of at least 6 x 6 after resizing; got {self.resize or input_shape}")
        shapes = {
            "conv_1_kernel": [3, 3, 1, filters[0]],
            "conv_2_kernel": [3, 3, filters[0], filters[1]],
            "dense_kernel": [height * width * filters[1], dense_units],
            "logits_kernel": [dense_units, self.num_classes],
        }
        self.conv_1_kernel, self.conv_2_kernel, self.dense_kernel, self.logits_kernel = (
            tf.Variable(glorot_uniform(shape, rng), name=key) for key, shape in shapes.items()
        )
        self.conv_1_bias = tf.Variable(tf.zeros([filters[0]]), name="conv_1_bias")
        self.conv_2_bias = tf.Variable(tf.zeros([filters[1]]), name="conv_2_bias")
        self.dense_bias = tf.Variable(tf.zeros([dense_units]), name="dense_bias")
        self.logits_bias = tf.Variable(tf.zeros([self.num_classes]), name="logits_bias")

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Logits, shape (batch, num_classes), float32, of log-mel ``x`` (batch, frames, bins)."""
        x = tf.expand_dims(tf.convert_to_tensor(x, tf.float32), -1)  # NHWC, one channel
        if self.resize is not None:
            x = tf.image.resize(x, self.resize, method="bilinear", antialias=False)
        x = tf.nn.relu(tf.nn.conv2d(x, self.conv_1_kernel, strides=1, padding="VALID") + self.conv_1_bias)
        x = tf.nn.relu(tf.nn.conv2d(x, self.conv_2_kernel, strides=1, padding="VALID") + self.conv_2_bias)
        x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")
        if training and self.dropout[0]:
            x = self._dropout(x, self.dropout[0])
        x = tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])  # flatten (height, width, channels), as keras Flatten
        x = tf.nn.relu(tf.matmul(x, self.dense_kernel) + self.dense_bias)
        if training and self.dropout[1]:
            x = self._dropout(x, self.dropout[1])
        return tf.matmul(x, self.logits_kernel) + self.logits_bias


class DSCNN(_Module):
    """DS-CNN (Zhang et al. 2017, "Hello Edge") in raw TensorFlow.

    The layer plan of ``speechlib.models.ds_cnn``: Conv2D (kt x kf, stride) +
    bias -> BN -> ReLU, then per depthwise-separable block DepthwiseConv2D 3x3
    + bias -> BN -> ReLU -> Conv2D 1x1 + bias -> BN -> ReLU; global average
    pooling; dense logits. "same" padding throughout (``tf.nn`` ``"SAME"``).

    Parameters
    ----------
    input_shape : (frames, bins)
        Log-mel input without the batch axis, e.g. (101, 40).
    num_classes : int
    size : {"s", "m", "l"}
        A configuration of :data:`speechlib.models.DS_CNN_SIZES`.
    layers_config : list of (filters, kernel_t, kernel_f, stride_t, stride_f), optional
        Overrides ``size``.
    dropout : float
        Dropout before the pooling (training only); 0 as in the Keras default.
    momentum, epsilon : float
        Batch-norm settings (those of the Keras builder).
    seed : int
        Seed of the initial weights.

    Examples
    --------
    >>> model = DSCNN(size="s")  # doctest: +SKIP
    >>> logits = model(tf.zeros([8, 101, 40]), training=False)  # (8, 12)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int] = LOGMEL_SHAPE,
        num_classes: int = 12,
        size: str = "m",
        layers_config: Sequence[tuple[int, int, int, int, int]] | None = None,
        dropout: float = 0.0,
        momentum: float = 0.96,
        epsilon: float = 1e-3,
        seed: int = SEED,
        name: str | None = None,
    ):
        super().__init__(name=name or f"ds_cnn_{size.lower()}")
        if len(input_shape) != 2:
            raise ValueError(f"DSCNN takes (frames, bins) log-mel features; got input_shape={tuple(input_shape)}")
        self.input_shape = tuple(int(n) for n in input_shape)
        self.num_classes = int(num_classes)
        self.config = [tuple(c) for c in (layers_config or DS_CNN_SIZES[size.lower()])]
        self.dropout = float(dropout)
        self.seed = seed
        self.dropout_rng = tf.random.Generator.from_seed(seed)  # checkpointed; not one of self.variables
        rng = np.random.default_rng(seed)

        def weight(shape, name):
            return tf.Variable(glorot_uniform(shape, rng), name=name)

        def bias(n, name):
            return tf.Variable(tf.zeros([n]), name=name)

        def bn(n, name):
            return BatchNorm(n, momentum=momentum, epsilon=epsilon, name=name)

        filters, kt, kf, _, _ = self.config[0]
        self.conv_1 = {"kernel": weight([kt, kf, 1, filters], "conv_1_kernel"), "bias": bias(filters, "conv_1_bias")}
        self.conv_1_bn = bn(filters, "conv_1_bn")
        self.blocks = []
        channels = filters
        for i, (filters, kt, kf, _, _) in enumerate(self.config[1:], start=1):
            self.blocks.append(
                {
                    "dw_kernel": weight([kt, kf, channels, 1], f"conv_ds_{i}_dw_kernel"),
                    "dw_bias": bias(channels, f"conv_ds_{i}_dw_bias"),
                    "dw_bn": bn(channels, f"conv_ds_{i}_dw_bn"),
                    "pw_kernel": weight([1, 1, channels, filters], f"conv_ds_{i}_pw_kernel"),
                    "pw_bias": bias(filters, f"conv_ds_{i}_pw_bias"),
                    "pw_bn": bn(filters, f"conv_ds_{i}_pw_bn"),
                }
            )
            channels = filters
        self.logits_kernel = weight([channels, self.num_classes], "logits_kernel")
        self.logits_bias = bias(self.num_classes, "logits_bias")

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Logits, shape (batch, num_classes), float32, of log-mel ``x`` (batch, frames, bins)."""
        x = tf.expand_dims(tf.convert_to_tensor(x, tf.float32), -1)  # NHWC, one channel
        _, _, _, st, sf = self.config[0]
        x = tf.nn.conv2d(x, self.conv_1["kernel"], strides=[1, st, sf, 1], padding="SAME") + self.conv_1["bias"]
        x = tf.nn.relu(self.conv_1_bn(x, training))
        for block, (_, _, _, st, sf) in zip(self.blocks, self.config[1:], strict=True):
            x = tf.nn.depthwise_conv2d(x, block["dw_kernel"], strides=[1, st, sf, 1], padding="SAME")
            x = tf.nn.relu(block["dw_bn"](x + block["dw_bias"], training))
            x = tf.nn.conv2d(x, block["pw_kernel"], strides=1, padding="SAME") + block["pw_bias"]
            x = tf.nn.relu(block["pw_bn"](x, training))
        if training and self.dropout:
            x = self._dropout(x, self.dropout)
        x = tf.reduce_mean(x, axis=[1, 2])  # global average pooling
        return tf.matmul(x, self.logits_kernel) + self.logits_bias


class ResNet(_Module):
    """res8 / res15 (Tang & Lin 2018, arXiv:1710.10361) in raw TensorFlow.

    The layer plan of ``speechlib.models.res_net``: a bias-free 3x3
    convolution -> ReLU (-> average pooling ``pool``, stride = pool, "valid",
    for res8), then ``num_layers`` bias-free 3x3 convolutions -> ReLU, each
    followed by a batch norm without affine parameters (epsilon 1e-5, Keras'
    momentum 0.99); around every pair of layers an identity shortcut: after
    the ReLU of an even layer ``i`` the output is ``y + shortcut`` and this
    sum (before its batch norm) is the next shortcut, the first being the
    (pooled) output of the first convolution. res15 dilates layer ``i`` by
    ``2 ** ((i - 1) // 3)``. Global average pooling; dense logits. "same"
    padding throughout. res8: 110,307 weights for 12 classes (and 540
    batch-norm statistics), whatever the input size.

    Parameters
    ----------
    input_shape : (frames, bins)
        Log-mel input without the batch axis, e.g. (101, 40).
    num_classes : int
    num_maps : int
        Channels of every convolution (45; 19 for the "narrow" variants).
    num_layers : int
        Convolutions after the first (6 for res8, 13 for res15).
    dilation : bool
        Grow the dilation as res15 does.
    pool : (int, int) or None
        Average pooling after the first convolution ((4, 3) for res8).
    momentum, epsilon : float
        Batch-norm settings (those of the Keras builder).
    seed : int
        Seed of the initial weights (Glorot uniform kernels, zero biases, as Keras).

    Examples
    --------
    >>> model = ResNet()  # res8  # doctest: +SKIP
    >>> logits = model(tf.zeros([8, 101, 40]), training=False)  # (8, 12)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int] = LOGMEL_SHAPE,
        num_classes: int = 12,
        num_maps: int = 45,
        num_layers: int = 6,
        dilation: bool = False,
        pool: tuple[int, int] | None = (4, 3),
        momentum: float = 0.99,
        epsilon: float = 1e-5,
        seed: int = SEED,
        name: str | None = None,
    ):
        super().__init__(name=name or "res_net")
        if len(input_shape) != 2:
            raise ValueError(f"ResNet takes (frames, bins) log-mel features; got input_shape={tuple(input_shape)}")
        self.input_shape = tuple(int(n) for n in input_shape)
        self.num_classes = int(num_classes)
        self.num_maps, self.num_layers = int(num_maps), int(num_layers)
        self.pool = None if pool is None else (int(pool[0]), int(pool[1]))
        if self.pool is not None and (self.input_shape[0] < self.pool[0] or self.input_shape[1] < self.pool[1]):
            raise ValueError(f"ResNet's {self.pool} pooling needs an input of at least that size; got {input_shape}")
        self.rates = [2 ** ((i - 1) // 3) if dilation else 1 for i in range(1, self.num_layers + 1)]
        self.seed = seed
        rng = np.random.default_rng(seed)
        maps = self.num_maps
        self.conv_0_kernel = tf.Variable(glorot_uniform([3, 3, 1, maps], rng), name="conv_0_kernel")
        self.kernels = [
            tf.Variable(glorot_uniform([3, 3, maps, maps], rng), name=f"conv_{i}_kernel")
            for i in range(1, self.num_layers + 1)
        ]
        self.bns = [
            BatchNorm(maps, momentum=momentum, epsilon=epsilon, center=False, scale=False, name=f"bn_{i}")
            for i in range(1, self.num_layers + 1)
        ]
        self.logits_kernel = tf.Variable(glorot_uniform([maps, self.num_classes], rng), name="logits_kernel")
        self.logits_bias = tf.Variable(tf.zeros([self.num_classes]), name="logits_bias")

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Logits, shape (batch, num_classes), float32, of log-mel ``x`` (batch, frames, bins)."""
        x = tf.expand_dims(tf.convert_to_tensor(x, tf.float32), -1)  # NHWC, one channel
        x = tf.nn.relu(tf.nn.conv2d(x, self.conv_0_kernel, strides=1, padding="SAME"))
        if self.pool is not None:
            x = tf.nn.avg_pool2d(x, ksize=self.pool, strides=self.pool, padding="VALID")
        shortcut = x
        for i, (kernel, bn, rate) in enumerate(zip(self.kernels, self.bns, self.rates, strict=True), start=1):
            y = tf.nn.relu(tf.nn.conv2d(x, kernel, strides=1, padding="SAME", dilations=rate))
            if i % 2 == 0:  # the residual add; the sum, before its batch norm, is the next shortcut
                x = shortcut = y + shortcut
            else:
                x = y
            x = bn(x, training)
        x = tf.reduce_mean(x, axis=[1, 2])  # global average pooling
        return tf.matmul(x, self.logits_kernel) + self.logits_bias


Model = CNN2D | DSCNN | ResNet


def build(name: str, *, input_shape: Sequence[int] = LOGMEL_SHAPE, num_classes: int = 12, seed: int = SEED) -> Model:
    """The raw-TensorFlow model registered as ``name`` in ``speechlib.models`` (one of :data:`MODELS`).

    Raises
    ------
    ValueError
        ``name`` is not one of :data:`MODELS`.
    """
    if name == "cnn2d":
        return CNN2D(input_shape=input_shape, num_classes=num_classes, seed=seed)
    if name in RES_NET_SIZES:
        return ResNet(input_shape=input_shape, num_classes=num_classes, seed=seed, name=name, **RES_NET_SIZES[name])
    if name in MODELS:  # ds_cnn_<size>
        return DSCNN(input_shape=input_shape, num_classes=num_classes, size=name.rsplit("_", 1)[-1], seed=seed)
    raise ValueError(f"no raw-TensorFlow version of model {name!r}: choose one of {', '.join(MODELS)}")


class Adam(tf.Module):
    """Adam (Kingma & Ba 2015) with tf ops, as ``keras.optimizers.Adam`` computes it.

    ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``.
    The learning rate is a variable (:attr:`lr`), so a schedule can change it
    between steps; ``iterations`` counts steps. Both, and the moments, are
    saved by ``tf.train.Checkpoint``.

    Parameters
    ----------
    variables : sequence of tf.Variable
        The trainable variables (moments are created for each, in this order).
    lr : float
    beta_1, beta_2, epsilon : float
        Keras' defaults.
    """

    def __init__(self, variables, *, lr: float = 1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None):
        super().__init__(name=name or "adam")
        self.lr = tf.Variable(float(lr), trainable=False, name="lr")
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in variables]

    def apply_gradients(self, gradients, variables) -> None:
        """One step: update every variable from its gradient (same order as at construction)."""
        self.iterations.assign_add(1)
        t = tf.cast(self.iterations, tf.float32)
        alpha = self.lr * tf.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        for g, w, m, v in zip(gradients, variables, self.m, self.v, strict=True):
            m.assign_add((g - m) * (1.0 - self.beta_1))
            v.assign_add((tf.square(g) - v) * (1.0 - self.beta_2))
            w.assign_sub(alpha * m / (tf.sqrt(v) + self.epsilon))


def weighted_loss(logits: tf.Tensor, y: tf.Tensor, class_weights: tf.Tensor | None = None) -> tf.Tensor:
    """Mean cross-entropy of logits, each sample weighted by its class's weight.

    ``sum_i w[y_i] * ce_i / batch_size`` — what Keras' ``fit(class_weight=...)``
    computes. ``class_weights`` is a (num_classes,) float32 tensor or None (all 1).
    ``y`` is (batch,) label ids, or (batch, num_classes) class distributions (mixup;
    weighted by the class of the largest share, as Keras does).
    """
    if y.shape.rank == 2:
        losses = tf.nn.softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.float32), logits=logits)
        y = tf.argmax(y, -1, output_type=tf.int32)
    else:
        y = tf.cast(y, tf.int32)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    if class_weights is not None:
        losses = losses * tf.gather(class_weights, y)
    return tf.reduce_mean(losses)


def lr_schedule(*, lr: float, steps_per_epoch: int, epochs: int):
    """Learning rate as a function of the step: ``speechlib.train.lr_schedule``, the Keras path's schedule."""
    return train.lr_schedule(lr=lr, steps_per_epoch=steps_per_epoch, epochs=epochs)


def make_train_step(model: Model, optimizer: Adam, class_weights: np.ndarray | None = None, schedule=None):
    """A ``tf.function`` ``step(x, y) -> (loss, num_correct)`` doing one optimizer step on one batch.

    The model runs with ``training=True`` (dropout on; batch norms use batch
    statistics and update their moving statistics); the loss is :func:`weighted_loss` of the logits.
    ``schedule(step) -> lr`` (e.g. :func:`lr_schedule`) sets ``optimizer.lr`` before each step.
    """
    weights = None if class_weights is None else tf.constant(np.asarray(class_weights, np.float32))
    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(x, y):
        if schedule is not None:
            optimizer.lr.assign(tf.cast(schedule(optimizer.iterations), tf.float32))
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = weighted_loss(logits, y, weights)
        optimizer.apply_gradients(tape.gradient(loss, variables), variables)
        label = tf.argmax(y, -1, output_type=tf.int32) if y.shape.rank == 2 else tf.cast(y, tf.int32)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), label), tf.int32))
        return loss, correct

    return step


def predict_logits(model: Model, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode logits over a dataset of ``(x, y)`` batches.

    Returns
    -------
    logits : np.ndarray, shape (N, num_classes), float32
    y : np.ndarray, shape (N,), int64
    """
    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    logits, labels = [], []
    for x, y in dataset:
        logits.append(call(x).numpy())
        labels.append(np.asarray(y, dtype=np.int64))
    if not logits:
        return np.zeros((0, model.num_classes), np.float32), np.zeros((0,), np.int64)
    return np.concatenate(logits), np.concatenate(labels)


# ---------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------

CHECKPOINT_DIR = "checkpoints"  # the last epochs' state (model, optimizer, epoch, step), for --resume
BEST_DIR = "best"  # the model weights of the best cv epoch
SAVED_MODEL_DIR = "saved_model"  # the exported SavedModel


def _latest_checkpoint(out_dir: str | Path) -> str | None:
    """The prefix of the latest checkpoint in ``out_dir/checkpoints`` (None when there is none).

    Raises
    ------
    speechlib.train.ResumeError
        The ``checkpoint`` state file is unreadable.
    """
    folder = Path(out_dir) / CHECKPOINT_DIR
    try:
        return tf.train.latest_checkpoint(str(folder))
    except (tf.errors.OpError, text_format.ParseError, ValueError) as err:
        raise _resume_error(folder / "checkpoint", err) from err


def _resume_error(path: str | Path, err: BaseException) -> Exception:
    """A ``speechlib.train.ResumeError`` for an unreadable checkpoint: the file, the first line of ``err``, the fix."""
    reason = (getattr(err, "message", None) or str(err) or type(err).__name__).strip().splitlines()[0]
    folder = Path(_out_dir_of(path)) / CHECKPOINT_DIR
    return ResumeError(
        f"cannot resume from {path}: the checkpoint is truncated, corrupt or of another model ({reason}); "
        f"delete {folder} (or run without --resume) to train from the first epoch"
    )


def _out_dir_of(path: str | Path) -> Path:
    """The run folder of a checkpoint file or prefix (``<out>/checkpoints/ckpt-3`` -> ``<out>``)."""
    path = Path(path)
    while path.name != CHECKPOINT_DIR and path.parent != path:
        path = path.parent
    return path.parent


def _load_checkpoint_variable(out_dir: str | Path, name: str) -> int:
    latest = _latest_checkpoint(out_dir)
    if latest is None:
        return 0
    try:
        return int(tf.train.load_variable(latest, name))
    except (tf.errors.OpError, ValueError, IndexError) as err:  # IndexError: TensorFlow's word for a short file
        raise _resume_error(latest, err) from err


def checkpoint_epoch(out_dir: str | Path) -> int:
    """Epochs completed by the latest checkpoint in ``out_dir/checkpoints`` (0 when there is none)."""
    return _load_checkpoint_variable(out_dir, "epoch/.ATTRIBUTES/VARIABLE_VALUE")


def checkpoint_step(out_dir: str | Path) -> int:
    """Optimizer steps done by the latest checkpoint in ``out_dir/checkpoints`` (0 when there is none)."""
    return _load_checkpoint_variable(out_dir, "optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE")


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)))


def fit(
    model: Model,
    data: Any,
    *,
    epochs: int | None,
    lr: float,
    out_dir: str | Path,
    logdir: str | Path | None = None,
    resume: bool = False,
    patience: int | None = None,
    use_class_weight: bool = True,
    verbose: bool = True,
) -> list[dict]:
    """Train ``model`` on ``data.train`` with a tf.function step, validating on ``data.cv`` each epoch.

    The same recipe as ``speechlib.train.fit`` for Keras: Adam with the
    warm-up + cosine schedule (:func:`lr_schedule`), balanced class weights
    in the loss, early stopping on cv accuracy with the best weights restored
    at the end. State lives in ``out_dir``:

    - ``checkpoints/``: a ``tf.train.CheckpointManager`` of the model (moving
      statistics and the dropout generator's state included), the optimizer
      (moments, step, lr), the epoch and the early-stopping state, written
      after every epoch; ``resume=True`` continues from it and ends with the
      weights of a run that was never stopped (the data of epoch ``e``
      depends only on the seed and ``e``). TensorFlow writes each checkpoint
      under a temporary name and renames it, then the ``checkpoint`` state
      file, so a kill leaves the previous checkpoint whole; an unreadable one
      is a ``speechlib.train.ResumeError`` naming the file;
    - ``best/``: the weights of the best cv epoch;
    - ``training_log.csv``: epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds (rewritten
      atomically each epoch; on resume cut back to the checkpoint's epochs);
    - TensorBoard scalars (loss, accuracy, learning rate; ``tf.summary.scalar``) in ``logdir/train``
      and ``logdir/validation`` (per epoch) and ``batch_loss`` per step.

    Parameters
    ----------
    model : ResNet, CNN2D or DSCNN
    data : speechlib.train.Data
        From ``speechlib.train.load_data`` (with ``initial_epoch=checkpoint_epoch(out_dir)``
        when resuming) or ``speechlib.train.random_data``.
    epochs : int or None
        Total epochs; a resumed run continues up to this number.
    lr : float
        Peak learning rate.
    out_dir : str or Path
    logdir : str or Path, optional
        TensorBoard folder (None: no summaries).
    resume : bool
        Restore the latest checkpoint of ``out_dir`` when there is one; otherwise start afresh.
    patience : int, optional
        Epochs without a better cv accuracy before stopping (default ``speechlib.train.PATIENCE``).
    use_class_weight : bool
        Weight the loss by ``data.class_weight``.
    verbose : bool
        Print one line per epoch.

    Returns
    -------
    list of dict
        The rows of this call's epochs (as written to the CSV log).
    """
    patience = train.PATIENCE if patience is None else patience
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    latest = _resume_point(out_dir, resume=resume)
    steps_per_epoch = max(1, int(data.train.cardinality()))
    epochs = _epochs_or_auto(data, epochs, steps_per_epoch)
    run = _run_state(model, lr=lr, out_dir=out_dir)
    log_rows = [] if latest is None else _restore(run, latest, out_dir, verbose=verbose)
    step = _train_step_of(model, data, run, lr=lr, steps_per_epoch=steps_per_epoch, epochs=epochs,
                          use_class_weight=use_class_weight)  # fmt: skip
    writers = _summary_writers(logdir)
    rows = _train_epochs(model, data, step, run, writers, log_rows, out_dir=out_dir, epochs=epochs,
                         patience=patience, verbose=verbose)  # fmt: skip
    if run.best.latest_checkpoint:  # the best cv weights, as Keras' EarlyStopping(restore_best_weights=True)
        tf.train.Checkpoint(model=model).restore(run.best.latest_checkpoint).assert_existing_objects_matched()
    return rows


def _epochs_or_auto(data: Any, epochs: int | None, steps_per_epoch: int) -> int:
    """``epochs``, or ``speechlib.train.auto_epochs`` of the training split (announced) when None."""
    if epochs is None:
        epochs = train.auto_epochs(data.sizes["train"], data.batch_size)
        print(f"training for {epochs} epochs of {steps_per_epoch} steps each (train.auto_epochs)")
    return epochs


def _train_step_of(model: Model, data: Any, run: _RunState, *, lr: float, steps_per_epoch: int, epochs: int,
                   use_class_weight: bool) -> Any:  # fmt: skip
    """The tf.function training step: class-weighted loss, the warm-up + cosine schedule, the run's optimizer."""
    weights = _class_weights(data) if use_class_weight else None
    return make_train_step(
        model, run.optimizer, weights, lr_schedule(lr=lr, steps_per_epoch=steps_per_epoch, epochs=epochs)
    )


def _train_epochs(model: Model, data: Any, step: Any, run: _RunState, writers: dict, log_rows: list[dict], *,
                  out_dir: Path, epochs: int, patience: int, verbose: bool) -> list[dict]:  # fmt: skip
    """Epochs until ``epochs`` or early stopping, each logged, checkpointed and summarised; this call's rows."""
    rows = []
    while int(run.epoch) < epochs and int(run.wait) < patience:
        row = _run_epoch(model, data, step, run, writers)
        log_rows.append(row)  # the log first: a kill before the checkpoint redoes this epoch and its row
        train._write_log(out_dir / LOG_FILE, log_rows)
        run.manager.save(checkpoint_number=int(run.epoch))
        _write_epoch_summaries(writers, row, epoch=int(run.epoch))
        rows.append(row)
        if verbose:
            print(_epoch_line(row, run, epochs=epochs))
    for writer in writers.values():
        writer.flush()
    return rows


@dataclasses.dataclass
class _RunState:
    """The state :func:`fit` checkpoints besides the model, and its two checkpoint managers.

    Attributes
    ----------
    optimizer : Adam
    epoch : tf.Variable, int64
        Epochs completed.
    best_cv : tf.Variable, float32
        The best cv accuracy so far (-1 before the first epoch).
    wait : tf.Variable, int64
        Epochs since the best cv accuracy.
    checkpoint : tf.train.Checkpoint
        Model, optimizer, epoch and early-stopping state.
    manager : tf.train.CheckpointManager
        ``checkpoint`` in ``out_dir/checkpoints`` (the last two epochs).
    best : tf.train.CheckpointManager
        The model weights of the best cv epoch in ``out_dir/best``.
    """

    optimizer: Adam
    epoch: tf.Variable
    best_cv: tf.Variable
    wait: tf.Variable
    checkpoint: tf.train.Checkpoint
    manager: tf.train.CheckpointManager
    best: tf.train.CheckpointManager


def _resume_point(out_dir: Path, *, resume: bool) -> str | None:
    """The checkpoint to resume from; without one, clear the state of an earlier run (a fresh start).

    Parameters
    ----------
    out_dir : Path
        The run folder.
    resume : bool
        Look for a checkpoint at all (``--resume``).

    Returns
    -------
    str or None
        The latest checkpoint's prefix, or None for a fresh run (its
        ``checkpoints/``, ``best/`` and training log are then deleted).
    """
    latest = _latest_checkpoint(out_dir) if resume else None
    if latest is None:
        if resume:
            print(f"note: nothing to resume in {out_dir / CHECKPOINT_DIR}: training from the first epoch")
        shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)
        shutil.rmtree(out_dir / BEST_DIR, ignore_errors=True)
        (out_dir / LOG_FILE).unlink(missing_ok=True)
    return latest


def _run_state(model: Model, *, lr: float, out_dir: Path) -> _RunState:
    """A new optimizer, epoch counter and early-stopping state, and the checkpoint managers of ``out_dir``.

    Returns
    -------
    _RunState
        At epoch 0, before any restore.
    """
    optimizer = Adam(model.trainable_variables, lr=lr)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    best_cv = tf.Variable(-1.0, trainable=False, name="best_cv_accuracy")
    wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_without_improvement")
    state = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch, best_cv=best_cv, wait=wait)
    manager = tf.train.CheckpointManager(state, str(out_dir / CHECKPOINT_DIR), max_to_keep=2)
    best = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(out_dir / BEST_DIR), max_to_keep=1)
    return _RunState(optimizer, epoch, best_cv, wait, state, manager, best)


def _restore(run: _RunState, latest: str, out_dir: Path, *, verbose: bool) -> list[dict]:
    """Restore the checkpoint ``latest`` into ``run`` and read back the log rows of the epochs it holds.

    Parameters
    ----------
    run : _RunState
        From :func:`_run_state`; restored in place (with the model).
    latest : str
        The checkpoint prefix.
    out_dir : Path
        The run folder (its training log).
    verbose : bool
        Print where training resumes.

    Returns
    -------
    list of dict
        The log rows of the checkpoint's epochs (a later row is redone).

    Raises
    ------
    speechlib.train.ResumeError
        The checkpoint is truncated, corrupt or of another model.
    """
    try:
        run.checkpoint.restore(latest).assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError, IndexError) as err:  # IndexError: a short file
        raise _resume_error(latest, err) from err
    log_rows = []
    if (out_dir / LOG_FILE).is_file():
        saved = pd.read_csv(out_dir / LOG_FILE, float_precision="round_trip").to_dict("records")
        log_rows = [row for row in saved if row["epoch"] < int(run.epoch)]
    if verbose:
        print(f"resumed from {latest}: epoch {int(run.epoch)}, step {int(run.optimizer.iterations)}")
    return log_rows


def _class_weights(data: Any) -> np.ndarray:
    """``data.class_weight`` as an array, shape (num_classes,), float32 (1 for a class it leaves out)."""
    return np.array([data.class_weight.get(i, 1.0) for i in range(data.num_classes)], np.float32)


def _summary_writers(logdir: str | Path | None) -> dict:
    """TensorBoard writers ``{"train": ..., "validation": ...}`` under ``logdir`` (empty for None)."""
    if logdir is None:
        return {}
    return {name: tf.summary.create_file_writer(str(Path(logdir) / name)) for name in ("train", "validation")}


def _run_epoch(model: Model, data: Any, step: Any, run: _RunState, writers: dict) -> dict:
    """Train one epoch, validate, count the epoch and update the early-stopping state.

    Parameters
    ----------
    model : ResNet, CNN2D or DSCNN
    data : speechlib.train.Data
        Its ``train`` and ``cv`` datasets.
    step : callable
        From :func:`make_train_step`.
    run : _RunState
        ``epoch``, ``best_cv``, ``wait`` and ``best`` are updated.
    writers : dict
        From :func:`_summary_writers` (``batch_loss`` per step).

    Returns
    -------
    dict
        The epoch's log row: epoch, loss, accuracy, val_loss, val_accuracy, learning_rate, seconds.
    """
    start = time.perf_counter()
    loss, accuracy = _train_epoch(step, data.train, run.optimizer, writers)
    cv_logits, cv_y = predict_logits(model, data.cv)
    cv_accuracy = float((cv_logits.argmax(axis=1) == cv_y).mean()) if len(cv_y) else float("nan")
    run.epoch.assign_add(1)
    row = {
        "epoch": int(run.epoch) - 1,
        "loss": loss,
        "accuracy": accuracy,
        "val_loss": _cross_entropy(cv_logits, cv_y),
        "val_accuracy": cv_accuracy,
        "learning_rate": float(run.optimizer.lr),
        "seconds": time.perf_counter() - start,
    }
    if cv_accuracy > float(run.best_cv):
        run.best_cv.assign(cv_accuracy)
        run.wait.assign(0)
        run.best.save(checkpoint_number=int(run.epoch))
    else:
        run.wait.assign_add(1)
    return row


def _train_epoch(step: Any, dataset: Any, optimizer: Adam, writers: dict) -> tuple[float, float]:
    """One optimizer step per batch of ``dataset``, each loss written as ``batch_loss`` when there are writers.

    Returns
    -------
    loss : float
        The mean of the batch losses (NaN without batches).
    accuracy : float
        The share of training clips the model got right while training.
    """
    losses, correct, seen = [], 0, 0
    for x, y in dataset:
        loss, right = step(x, y)
        losses.append(float(loss))
        correct, seen = correct + int(right), seen + int(tf.shape(y)[0])
        if writers:
            with writers["train"].as_default():
                tf.summary.scalar("batch_loss", loss, step=optimizer.iterations)
    return (float(np.mean(losses)) if losses else float("nan")), correct / max(seen, 1)


def _write_epoch_summaries(writers: dict, row: dict, *, epoch: int) -> None:
    """Write an epoch's loss and accuracy (train and validation) and learning rate to TensorBoard."""
    if not writers:
        return
    for name, prefix in (("train", ""), ("validation", "val_")):
        with writers[name].as_default():
            tf.summary.scalar("epoch_loss", row[f"{prefix}loss"], step=epoch)
            tf.summary.scalar("epoch_accuracy", row[f"{prefix}accuracy"], step=epoch)
            if name == "train":
                tf.summary.scalar("epoch_learning_rate", row["learning_rate"], step=epoch)


def _epoch_line(row: dict, run: _RunState, *, epochs: int) -> str:
    """The line :func:`fit` prints after an epoch: its losses, accuracies, learning rate, time and step."""
    return (
        f"epoch {int(run.epoch)}/{epochs}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} "
        f"val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f} lr {row['learning_rate']:.2e} "
        f"({row['seconds']:.1f} s, step {int(run.optimizer.iterations)})"
    )


def evaluate_split(model: Model, data: Any, split: str) -> dict:
    """``speechlib.evaluate.classification_metrics`` of ``model`` (inference mode) on a split of ``data``."""
    logits, y = predict_logits(model, data.split(split))
    return evaluate.classification_metrics(y, logits.argmax(axis=1), data.labels)


# ---------------------------------------------------------------------------
# Log-mel in the graph, and the SavedModel
# ---------------------------------------------------------------------------


class ServingModule(tf.Module):
    """What the SavedModel holds: the model, normalisation, labels and feature parameters.

    Signatures (both return ``logits`` (N, C) float32, ``probabilities`` (N, C)
    float32, ``label_id`` (N,) int64 and ``label`` (N,) string):

    ``serving_default(features)``
        log-mel features (N, frames, bins) float32 as ``speechlib.features``
        computes them (not normalised: the store's mean/std are applied inside).
    ``waveform(waveform)``
        raw clips (N, clip_samples) float32 in [-1, 1] at 16 kHz (``clip_samples``:
        the length the store's clips were fitted to, ``CLIP_SAMPLES`` for 1 s); log-mel is
        computed in the graph by ``speechlib.models.LogMel`` (``tf.signal``,
        equal to ``speechlib.features.logmel``; the layer of the Keras
        raw-waveform export).
    """

    def __init__(
        self, model: Model, *, labels: Sequence[str], feature_params: dict, normalization: dict | None,
        clip_samples: int = CLIP_SAMPLES,
    ):  # fmt: skip
        super().__init__(name="speechlib_tf")
        self.model = model
        bins = model.input_shape[1]
        mean = np.zeros(bins, np.float32) if normalization is None else np.asarray(normalization["mean"], np.float32)
        std = np.ones(bins, np.float32) if normalization is None else np.asarray(normalization["std"], np.float32)
        self.mean = tf.Variable(mean, trainable=False, name="feature_mean")
        self.std = tf.Variable(np.maximum(std, 1e-6), trainable=False, name="feature_std")  # features.normalize's eps
        self.labels = tf.Variable(list(labels), trainable=False, name="labels")
        self.feature_params = dict(feature_params)
        self._logmel = [_logmel_layer(feature_params)]  # in a list: a Keras layer is not a tf.Module child to save
        frames, bins = model.input_shape
        self.serve_features = tf.function(
            self._serve_features, input_signature=[tf.TensorSpec([None, frames, bins], tf.float32)]
        )
        self.serve_waveform = tf.function(
            self._serve_waveform, input_signature=[tf.TensorSpec([None, int(clip_samples)], tf.float32)]
        )

    def _outputs(self, logits):
        label_id = tf.argmax(logits, axis=-1)
        return {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits),
            "label_id": label_id,
            "label": tf.gather(self.labels, label_id),
        }

    def _serve_features(self, features):
        return self._outputs(self.model((features - self.mean) / self.std, training=False))

    def _serve_waveform(self, waveform):
        return self._serve_features(self._logmel[0](waveform))


def _logmel_layer(params: dict) -> Any:
    return models.LogMel(params, name="logmel")


def export_saved_model(
    model: Model, path: str | Path, *, labels: Sequence[str], feature_params: dict, normalization: dict | None,
    clip_samples: int = CLIP_SAMPLES,
) -> Path:  # fmt: skip
    """Save ``model`` as a SavedModel with the signatures of :class:`ServingModule`.

    ``clip_samples`` is the waveform signature's clip length (``Data.clip_samples``:
    other than 16000 for a store of 2 s or 3 s clips).

    Load it with ``tf.saved_model.load(path)``; ``loaded.signatures["serving_default"](features=x)``
    or ``loaded.signatures["waveform"](waveform=w)``.
    """
    path = Path(path)
    module = ServingModule(
        model, labels=labels, feature_params=feature_params, normalization=normalization, clip_samples=clip_samples
    )
    signatures = {"serving_default": module.serve_features, "waveform": module.serve_waveform}
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


def check_saved_model(path: str | Path, waveforms: np.ndarray, *, feature_params: dict) -> dict:
    """Compare the SavedModel's ``waveform`` signature with the two-step path on the same clips.

    Two-step: ``speechlib.features.compute_batch`` (numpy log-mel), then the
    ``serving_default`` signature. Returns ``max_abs_diff`` (largest
    difference of a probability), ``label_agreement`` (share of equal
    predicted labels) and ``num_clips``.
    """
    serving = tf.saved_model.load(str(path))
    waveforms = np.asarray(waveforms, np.float32)
    logmel = features.compute_batch(waveforms, "logmel", **feature_params)
    two_step = serving.signatures["serving_default"](features=tf.constant(logmel))
    one_step = serving.signatures["waveform"](waveform=tf.constant(waveforms))
    diff = np.abs(two_step["probabilities"].numpy() - one_step["probabilities"].numpy())
    same = two_step["label_id"].numpy() == one_step["label_id"].numpy()
    return {
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "label_agreement": float(same.mean()) if same.size else 1.0,
        "num_clips": len(waveforms),
    }
