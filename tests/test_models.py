"""Tests for speechlib.models: shapes, documented parameter counts, training, depthwise formulations, helpers."""

from __future__ import annotations

import numpy as np
import pytest

from speechlib import models

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

SKLEARN_MODELS = ["majority", "logistic_regression", "random_forest", "mlp"]
KERAS_MODELS = [name for name in models.MODELS if name not in SKLEARN_MODELS]
# Smaller settings where a model has a size knob, so the training-step test stays fast.
FAST_KWARGS = {"course_cnn1d": {"width": 1 / 16}}
NUM_CLASSES = 7  # not 12, so a builder that ignores num_classes is caught


def _input_shape(name: str) -> tuple[int, ...]:
    return models.WAVEFORM_SHAPE if models.INPUT_KIND[name] == "waveform" else models.LOGMEL_SHAPE


def test_registry_is_consistent():
    assert set(models.INPUT_KIND) == set(models.MODELS)
    assert models.INPUT_KIND["course_cnn1d"] == "waveform"
    assert set(models.REFERENCES) <= set(models.MODELS)
    for name, builder in models.MODELS.items():
        assert builder.__doc__, f"{name} has no docstring"
    with pytest.raises(KeyError, match="unknown model"):
        models.build("no_such_model")


@pytest.mark.parametrize("name", KERAS_MODELS)
def test_keras_builder_shapes_and_logits(name):
    model = models.build(name, num_classes=NUM_CLASSES, **FAST_KWARGS.get(name, {}))
    assert models.is_keras(model)
    assert tuple(model.input_shape) == (None, *_input_shape(name))
    assert tuple(model.output_shape) == (None, NUM_CLASSES)
    # Logits, not probabilities: the last layer has no softmax.
    assert model.layers[-1].get_config().get("activation") in (None, "linear")


# Paper figures, compared at the paper's configuration (12 classes, its input size),
# on trainable weights (batch-norm moving statistics are not parameters).
PAPER_COUNTS = {name: ref for name, ref in models.REFERENCES.items() if not name.startswith("ds_cnn")}


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_parameter_count_matches_paper(name):
    ref = PAPER_COUNTS[name]
    model = models.build(name, input_shape=ref.input_shape, num_classes=ref.num_classes)
    count = models.count_params(model, trainable_only=True)
    assert count == pytest.approx(ref.params, rel=0.05), f"{name}: {count:,} vs {ref.params:,} ({ref.source})"


def test_course_cnn1d_full_width_is_about_28m_and_width_shrinks_it():
    full = models.build("course_cnn1d")
    assert models.count_params(full) == pytest.approx(28_000_000, rel=0.03)
    small = models.build("course_cnn1d", width=1 / 16)
    assert models.count_params(small) < models.count_params(full) / 100
    # Nine blocks of two convolutions and a pooling, then the 1x1 convolution.
    convs = [layer for layer in full.layers if isinstance(layer, keras.layers.Conv1D)]
    assert [c.filters for c in convs[:-1:2]] == [8 * 2**i for i in range(9)]
    assert convs[-1].kernel_size == (1,)


def _ds_cnn_trainable(config, num_classes=12):
    """Trainable weights of a DS-CNN written out by hand from its layer table (tf-slim: conv bias, BN shift)."""
    f0, kt, kf, _, _ = config[0]
    total = kt * kf * f0 + f0 + f0  # first conv: kernel, bias, BN beta
    prev = f0
    for f, kt, kf, _, _ in config[1:]:
        total += kt * kf * prev + prev + prev  # depthwise: kernel, bias, BN beta
        total += prev * f + f + f  # pointwise: kernel, bias, BN beta
        prev = f
    return total + prev * num_classes + num_classes


def _hello_edge_memory(model) -> int:
    """Hello Edge's "memory" in bytes at 8 bits per value.

    Conv and dense weights with batch norm folded in, plus the largest input + output activation pair.
    """
    weights = 0
    peak = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D | keras.layers.Dense):
            weights += sum(int(np.prod(w.shape)) for w in layer.weights)
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
            size_in = int(np.prod(layer.input.shape[1:]))
            size_out = int(np.prod(layer.output.shape[1:]))
            peak = max(peak, size_in + size_out)
    return weights + peak


@pytest.mark.parametrize("size", ["s", "m", "l"])
def test_ds_cnn_matches_hello_edge(size):
    name = f"ds_cnn_{size}"
    ref = models.REFERENCES[name]
    model = models.build(name, input_shape=ref.input_shape, num_classes=12)  # 49 frames x 10 MFCC
    assert models.count_params(model, trainable_only=True) == _ds_cnn_trainable(models.DS_CNN_SIZES[size])
    # The paper's 38.6 / 189.2 / 497.6 KB, reproduced from the shapes.
    assert _hello_edge_memory(model) == pytest.approx(ref.params, rel=0.01)


def test_res15_dilation_and_res8_pooling_follow_honk():
    res15 = models.build("res15")
    rates = [layer.dilation_rate[0] for layer in res15.layers if isinstance(layer, keras.layers.Conv2D)][1:]
    assert rates == [1, 1, 1, 2, 2, 2, 4, 4, 4, 8, 8, 8, 16]
    res8 = models.build("res8")
    pool = res8.get_layer("pool0")
    assert tuple(pool.output.shape[1:3]) == (25, 13)  # 101 x 40 pooled 4 x 3


def _without_dropout(model):
    """Set every dropout rate to 0 so a training-mode forward pass is deterministic."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout | keras.layers.SpatialDropout2D):
            layer.rate = 0.0
    return model


@pytest.mark.parametrize("name", KERAS_MODELS)
def test_one_training_step_lowers_the_loss(name):
    keras.utils.set_random_seed(0)
    model = _without_dropout(models.build(name, num_classes=NUM_CLASSES, **FAST_KWARGS.get(name, {})))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(4, *_input_shape(name))).astype(np.float32))
    y = tf.constant(np.arange(4) % NUM_CLASSES)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    with tf.GradientTape() as tape:
        before = loss_fn(y, model(x, training=True))
    grads = tape.gradient(before, model.trainable_weights)
    optimizer.apply(grads, model.trainable_weights)
    after = loss_fn(y, model(x, training=True))
    assert np.isfinite(float(before))
    assert float(after) < float(before)


def test_bc_resnet_saves_and_reloads(tmp_path):
    model = models.build("bc_resnet_1")
    x = np.random.default_rng(1).normal(size=(2, *models.LOGMEL_SHAPE)).astype(np.float32)
    path = tmp_path / "bc.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-5)


def test_bc_resnet_needs_40_bands():
    with pytest.raises(ValueError, match="40 mel bands"):
        models.build("bc_resnet_1", input_shape=(101, 64))


def test_predict_proba_is_softmax_of_logits():
    model = models.build("ds_cnn_s", num_classes=NUM_CLASSES)
    x = np.random.default_rng(2).normal(size=(3, *models.LOGMEL_SHAPE)).astype(np.float32)
    proba = models.predict_proba(model, x)
    logits = np.asarray(model(x, training=False))
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(models.predict(model, x), expected.argmax(axis=1))


def test_summary_features_are_means_and_stds():
    X = np.random.default_rng(3).normal(size=(5, 101, 40)).astype(np.float32)
    plain = models.summary_features(X, n_mfcc=None)
    assert plain.shape == (5, 80) and plain.dtype == np.float32
    np.testing.assert_allclose(plain[:, :40], X.mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(plain[:, 40:], X.std(axis=1), rtol=1e-5, atol=1e-6)


def test_summary_features_mfcc_matches_librosa():
    librosa = pytest.importorskip("librosa")
    X = np.random.default_rng(4).normal(size=(2, 101, 40)).astype(np.float32)
    summary = models.summary_features(X, n_mfcc=13)
    assert summary.shape == (2, 26)
    mfcc = librosa.feature.mfcc(S=X[0].T, n_mfcc=13)  # (13, frames): DCT-II, orthonormal
    np.testing.assert_allclose(summary[0, :13], mfcc.mean(axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(summary[0, 13:], mfcc.std(axis=1), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="frames, bins"):
        models.summary_features(X[0])


@pytest.mark.parametrize("name", SKLEARN_MODELS)
def test_sklearn_baselines_fit_and_predict(name):
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(3), 10)
    X = rng.normal(size=(30, *models.LOGMEL_SHAPE)).astype(np.float32)
    X[:, :, :5] += y[:, None, None]  # learnable signal in a few bands
    kwargs = {"n_estimators": 20} if name == "random_forest" else {}
    model = models.build(name, num_classes=3, **kwargs)
    assert not models.is_keras(model)
    assert models.count_params(model) is None
    model.fit(X, y)
    proba = models.predict_proba(model, X)
    assert proba.shape == (30, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    pred = models.predict(model, X)
    assert pred.shape == (30,)
    if name == "majority":
        assert set(pred.tolist()) == {0}  # ties go to the smallest class
    else:
        assert (pred == y).mean() > 0.6  # chance is 1/3


def test_count_params_keras_total_and_trainable():
    model = models.build("res8_narrow")
    total = models.count_params(model)
    trainable = models.count_params(model, trainable_only=True)
    assert total == model.count_params()
    # res8-narrow: 6 batch norms of 19 maps, each with a moving mean and variance.
    assert total - trainable == 6 * 19 * 2


# ---------------------------------------------------------------------------
# Depthwise formulations: same weights, same outputs, same gradients
# ---------------------------------------------------------------------------

# (kernel_size, strides, dilation_rate, padding, use_bias, depth_multiplier): every use in the builders and more.
DEPTHWISE_CASES = [
    ((3, 3), (1, 1), (1, 1), "same", True, 1),  # DS-CNN block
    ((3, 3), (2, 2), (1, 1), "same", True, 1),  # DS-CNN strided block
    ((3, 1), (2, 1), (1, 1), "same", False, 1),  # BC-ResNet strided frequency convolution
    ((1, 3), (1, 1), (1, 4), "same", False, 1),  # BC-ResNet dilated temporal convolution
    ((5, 5), (1, 1), (1, 1), "valid", False, 1),  # BC-ResNet classifier
    ((2, 3), (2, 1), (1, 1), "same", True, 2),  # even kernel, odd padding, depth multiplier
]


@pytest.mark.parametrize("formulation", ["grouped", "shifted"])
@pytest.mark.parametrize(
    "case", DEPTHWISE_CASES, ids=lambda c: "k{}x{}-s{}x{}-d{}x{}-{}-m{}".format(*c[0], *c[1], *c[2], c[3], c[5])
)
def test_depthwise_formulations_match_keras(formulation, case):
    kernel_size, strides, dilation, padding, use_bias, multiplier = case
    kwargs = {"strides": strides, "dilation_rate": dilation, "padding": padding, "use_bias": use_bias,
              "depth_multiplier": multiplier}  # fmt: skip
    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(size=(2, 9, 11, 3)).astype(np.float32))
    reference = models.depthwise_conv2d(kernel_size, formulation="keras", **kwargs)
    layer = models.depthwise_conv2d(kernel_size, formulation=formulation, **kwargs)
    assert isinstance(reference, keras.layers.DepthwiseConv2D) and isinstance(layer, keras.layers.DepthwiseConv2D)
    reference.build(x.shape)
    layer.build(x.shape)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in reference.weights]
    reference.set_weights(weights)
    layer.set_weights(weights)  # same weight layout
    results = []
    for lay in (reference, layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = lay(x)
            loss = tf.reduce_sum(tf.sin(y))
        results.append([y, *tape.gradient(loss, [x, *lay.trainable_weights])])
    assert results[1][0].shape == results[0][0].shape
    for got, want in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_depthwise_formulation_errors_say_what_to_use():
    with pytest.raises(ValueError, match=r"unknown depthwise formulation 'fast'.*keras, grouped, shifted"):
        models.depthwise_conv2d(3, formulation="fast")
    with pytest.raises(ValueError, match="strides > 1 with dilation_rate > 1"):
        models.depthwise_conv2d(3, strides=2, dilation_rate=2, formulation="grouped")
    with pytest.raises(ValueError, match="unknown depthwise formulation"):
        models.build("bc_resnet_1", depthwise="fast")


@pytest.mark.parametrize("name", ["ds_cnn_s", "bc_resnet_1"])
def test_builders_give_the_same_model_with_each_depthwise_formulation(name):
    x = np.random.default_rng(7).normal(size=(4, 32, 40)).astype(np.float32)
    reference = _without_dropout(models.build(name, input_shape=(32, 40), num_classes=4))
    weights = reference.get_weights()
    want = np.asarray(reference(x, training=True))  # batch statistics: activations of order 1
    for formulation in ("grouped", "shifted"):
        model = _without_dropout(models.build(name, input_shape=(32, 40), num_classes=4, depthwise=formulation))
        assert [w.shape for w in model.weights] == [w.shape for w in reference.weights]
        assert models.count_params(model) == models.count_params(reference)
        model.set_weights(weights)
        np.testing.assert_allclose(model(x, training=True), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, formulation", [("bc_resnet_1", "shifted"), ("ds_cnn_s", "grouped")])
@pytest.mark.slow
def test_model_with_a_reformulated_depthwise_saves_and_reloads(tmp_path, name, formulation):
    keras.utils.set_random_seed(1)
    model = models.build(name, input_shape=(32, 40), num_classes=4, depthwise=formulation)
    x = np.random.default_rng(8).normal(size=(3, 32, 40)).astype(np.float32)
    model(x, training=True)  # move the batch-norm statistics off their initial values
    path = tmp_path / f"{name}.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    layers = [layer for layer in again.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert layers and all(layer.get_config()["formulation"] == formulation for layer in layers)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.slow
@pytest.mark.parametrize("name, formulation", [("ds_cnn_s", "keras"), ("ds_cnn_s", "grouped"),
                                               ("ds_cnn_s", "shifted"), ("bc_resnet_1", "shifted")])  # fmt: skip
def test_tflite_conversion_keeps_the_outputs(name, formulation):
    model = models.build(name, input_shape=(32, 40), num_classes=4, depthwise=formulation)
    x = np.random.default_rng(9).normal(size=(1, 32, 40)).astype(np.float32)
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    want = np.asarray(model(x, training=False))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


# ---------------------------------------------------------------------------
# Training: a few hundred steps on a small separable problem drive the loss down
# ---------------------------------------------------------------------------

# Input shapes kept small so each model trains in seconds on two cores (BC-ResNet needs its 40 bands).
CONVERGENCE_INPUT = {
    "res8": (32, 40), "res15": (16, 40), "ds_cnn_s": (32, 40), "ds_cnn_m": (16, 40), "ds_cnn_l": (16, 40),
    "bc_resnet_1": (32, 40), "bc_resnet_3": (16, 40), "bc_resnet_8": (16, 40), "cnn2d": (32, 40),
    "lstm": (32, 40), "gru": (32, 40),
}  # fmt: skip
SLOW_CONVERGENCE = {"res15", "ds_cnn_m", "ds_cnn_l", "bc_resnet_1", "bc_resnet_3", "bc_resnet_8"}
CONVERGENCE_CLASSES = 4
MAX_STEPS = 300
TARGET_LOSS_RATIO = 0.3  # the final training loss as a share of the first


def _separable_problem(input_shape, *, num_classes=CONVERGENCE_CLASSES, n=64, seed=0):
    """``n`` noisy inputs; class c lights up the c-th of ``num_classes`` equal bands of bins."""
    frames, bins = input_shape
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = rng.normal(size=(n, frames, bins)).astype(np.float32)
    band = bins // num_classes
    for c in range(num_classes):
        x[y == c, :, c * band : (c + 1) * band] += 1.5
    return tf.constant(x), tf.constant(y)


def _train_until(model, x, y, *, lr=3e-3, max_steps=MAX_STEPS, target=TARGET_LOSS_RATIO):
    """Full-batch Adam steps until the training loss is below ``target`` x the first and accuracy is 1."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam(lr)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
        optimizer.apply(tape.gradient(loss, model.trainable_weights), model.trainable_weights)
        accuracy = tf.reduce_mean(tf.cast(tf.argmax(logits, axis=1) == tf.cast(y, tf.int64), tf.float32))
        return loss, accuracy

    first, _ = step()
    steps = 1
    while steps < max_steps:
        loss, accuracy = step()
        steps += 1
        if float(loss) < target * float(first) and float(accuracy) == 1.0:
            break
    return float(first), float(loss), float(accuracy), steps


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CONVERGENCE else n for n in CONVERGENCE_INPUT]
)
@pytest.mark.slow
def test_training_drives_the_loss_down_on_a_separable_problem(name):
    keras.utils.set_random_seed(0)
    input_shape = CONVERGENCE_INPUT[name]
    model = models.build(name, input_shape=input_shape, num_classes=CONVERGENCE_CLASSES)
    x, y = _separable_problem(input_shape)
    first, last, accuracy, steps = _train_until(model, x, y)
    assert np.isfinite(first)
    assert last < TARGET_LOSS_RATIO * first, f"{name}: loss {first:.3f} -> {last:.3f} after {steps} steps"
    assert accuracy == 1.0, f"{name}: training accuracy {accuracy:.2f} after {steps} steps"


LOAD_IN_A_FRESH_PROCESS = """
import sys
import numpy as np
from speechlib import models
model = models.load_model(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], model.predict(x, verbose=0))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name, formulation", [("bc_resnet_1", "keras"), ("ds_cnn_s", "grouped")])
def test_a_saved_model_with_custom_layers_loads_in_a_fresh_process(tmp_path, name, formulation):
    """SubSpectralNorm and the reformulated depthwise are defined on first use: models.load_model defines them."""
    import subprocess
    import sys

    model = models.build(name, input_shape=(32, 40), num_classes=4, depthwise=formulation)
    x = np.random.default_rng(3).normal(size=(2, 32, 40)).astype(np.float32)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "load.py"
    script.write_text(LOAD_IN_A_FRESH_PROCESS)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "model.keras"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_recurrent_models_pool_over_time_by_default(name):
    pooled = models.build(name, input_shape=(20, 8), num_classes=3, units=4)
    last = models.build(name, input_shape=(20, 8), num_classes=3, units=4, pool=None)
    assert "max_over_time" in [layer.name for layer in pooled.layers]  # every step's state reaches the logits
    assert "max_over_time" not in [layer.name for layer in last.layers]
    assert models.count_params(pooled) == models.count_params(last)  # the same weights, another read-out
    x = np.random.default_rng(0).normal(size=(2, 20, 8)).astype(np.float32)
    assert pooled.predict(x, verbose=0).shape == last.predict(x, verbose=0).shape == (2, 3)
    with pytest.raises(ValueError, match="pool="):
        models.build(name, input_shape=(20, 8), num_classes=3, pool="mean")
