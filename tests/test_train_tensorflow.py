"""Tests for the raw-TensorFlow model (speechlib.tfmodel) and train_tensorflow.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from speechlib import models, tfmodel, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "train_tensorflow.py"
SMALL_SHAPE = (25, 12)  # a small log-mel input: keeps the unit tests fast


def _load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_tensorflow", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy_keras_weights(keras_model, model: tfmodel.DSCNN) -> None:
    """Give the tf.Module the Keras model's weights, layer by layer (by the Keras layer names)."""

    def layer(name):
        return [w.numpy() for w in keras_model.get_layer(name).weights]

    def set_bn(bn, name):
        beta, mean, variance = layer(name)
        bn.beta.assign(beta)
        bn.moving_mean.assign(mean)
        bn.moving_variance.assign(variance)

    kernel, bias = layer("conv_1")
    model.conv_1["kernel"].assign(kernel)
    model.conv_1["bias"].assign(bias)
    set_bn(model.conv_1_bn, "conv_1_bn")
    for i, block in enumerate(model.blocks, start=1):
        kernel, bias = layer(f"conv_ds_{i}_dw")
        block["dw_kernel"].assign(kernel)
        block["dw_bias"].assign(bias)
        set_bn(block["dw_bn"], f"conv_ds_{i}_dw_bn")
        kernel, bias = layer(f"conv_ds_{i}_pw")
        block["pw_kernel"].assign(kernel)
        block["pw_bias"].assign(bias)
        set_bn(block["pw_bn"], f"conv_ds_{i}_pw_bn")
    kernel, bias = layer("logits")
    model.logits_kernel.assign(kernel)
    model.logits_bias.assign(bias)


def _copy_keras_cnn2d_weights(keras_model, model: tfmodel.CNN2D) -> None:
    """Give the tf.Module the weights of ``models.cnn2d``: its two Conv2D and two Dense layers, in order."""
    import keras

    convs = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Conv2D)]
    denses = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(convs) == 2 and len(denses) == 2
    pairs = [(model.conv_1_kernel, model.conv_1_bias), (model.conv_2_kernel, model.conv_2_bias),
             (model.dense_kernel, model.dense_bias), (model.logits_kernel, model.logits_bias)]  # fmt: skip
    for (kernel, bias), layer in zip(pairs, convs + denses, strict=True):
        kernel.assign(layer.kernel.numpy())
        bias.assign(layer.bias.numpy())


def _copy_keras_res_net_weights(keras_model, model: tfmodel.ResNet) -> None:
    """Give the tf.Module the weights of ``models.res_net``: conv0..convN, bn1..bnN statistics, logits."""
    model.conv_0_kernel.assign(keras_model.get_layer("conv0").kernel.numpy())
    for i, (kernel, bn) in enumerate(zip(model.kernels, model.bns, strict=True), start=1):
        kernel.assign(keras_model.get_layer(f"conv{i}").kernel.numpy())
        keras_bn = keras_model.get_layer(f"bn{i}")
        assert keras_bn.center is False and keras_bn.scale is False  # statistics only
        bn.moving_mean.assign(keras_bn.moving_mean.numpy())
        bn.moving_variance.assign(keras_bn.moving_variance.numpy())
    logits = keras_model.get_layer("logits")
    model.logits_kernel.assign(logits.kernel.numpy())
    model.logits_bias.assign(logits.bias.numpy())


@pytest.mark.parametrize("name", ["cnn2d", "ds_cnn_s", "ds_cnn_m", "ds_cnn_l", "res8", "res15"])
def test_parameter_count_equals_keras(name):
    keras_model = models.build(name)
    model = tfmodel.build(name)
    assert model.count_params(trainable_only=True) == models.count_params(keras_model, trainable_only=True)
    assert model.count_params() == models.count_params(keras_model)
    assert sorted(tuple(v.shape) for v in model.trainable_variables) == sorted(
        tuple(w.shape) for w in keras_model.trainable_weights
    )


def test_cnn2d_is_the_keras_cnns_size():
    model = tfmodel.build("cnn2d")
    assert isinstance(model, tfmodel.CNN2D)
    assert model.count_params() == model.count_params(trainable_only=True) == 1_626_124  # no statistics
    assert model.input_shape == models.LOGMEL_SHAPE and model.num_classes == 12
    with pytest.raises(ValueError, match="no raw-TensorFlow version"):
        tfmodel.build("bc_resnet_1")


def test_res8_is_the_papers_size():
    """res8: 45 maps, 6 layers after the first, 4x3 pooling; about 110 K weights (Tang & Lin 2018, Table 1)."""
    model = tfmodel.build("res8")
    assert isinstance(model, tfmodel.ResNet) and model.name == "res8"
    assert model.num_maps == 45 and model.num_layers == 6 and model.pool == (4, 3) and model.rates == [1] * 6
    trainable = 45 * 9 + 6 * 45 * 45 * 9 + 45 * 12 + 12  # bias-free convolutions, dense logits
    assert model.count_params(trainable_only=True) == trainable == 110_307
    assert model.count_params() == trainable + 6 * 2 * 45  # each batch norm: moving mean and variance only
    assert all(bn.beta is None and bn.gamma is None for bn in model.bns)
    assert model.input_shape == models.LOGMEL_SHAPE and model.num_classes == 12
    assert tfmodel.build("res15").rates == [1, 1, 1, 2, 2, 2, 4, 4, 4, 8, 8, 8, 16]  # 2 ** ((i - 1) // 3)
    with pytest.raises(ValueError, match="pooling needs an input"):
        tfmodel.ResNet(input_shape=(3, 40))


@pytest.mark.parametrize("name", ["res8", "res15"])
def test_res_net_with_keras_weights_gives_the_keras_outputs(name):
    """Pooling, dilations, residual adds and the affine-free batch norms as Keras computes them, in both modes."""
    keras_model = models.build(name, input_shape=SMALL_SHAPE)
    rng = np.random.default_rng(2)
    for w in keras_model.weights:  # non-trivial batch-norm statistics and logits bias too
        value = rng.normal(0.0, 0.1, w.shape)
        if "moving_variance" in w.path:
            value = 0.5 + np.abs(value)
        w.assign(value.astype(np.float32))
    model = tfmodel.build(name, input_shape=SMALL_SHAPE)
    _copy_keras_res_net_weights(keras_model, model)
    x = rng.normal(size=(6, *SMALL_SHAPE)).astype(np.float32)
    np.testing.assert_allclose(model(x, training=False).numpy(), keras_model(x, training=False).numpy(), atol=1e-4)
    # training mode: normalised by the batch's statistics, the moving ones updated with Keras' momentum 0.99
    np.testing.assert_allclose(model(x, training=True).numpy(), keras_model(x, training=True).numpy(), atol=1e-4)
    for i, bn in enumerate(model.bns, start=1):
        keras_bn = keras_model.get_layer(f"bn{i}")
        np.testing.assert_allclose(bn.moving_mean.numpy(), keras_bn.moving_mean.numpy(), atol=1e-5)
        np.testing.assert_allclose(bn.moving_variance.numpy(), keras_bn.moving_variance.numpy(), atol=1e-5)


@pytest.mark.parametrize("input_shape", [models.LOGMEL_SHAPE, SMALL_SHAPE])  # resized down, and up
def test_cnn2d_with_keras_weights_gives_the_keras_outputs(input_shape):
    """Resize, valid convolutions, pooling, flatten order and dense layers all as Keras computes them."""
    keras_model = models.build("cnn2d", input_shape=input_shape)
    rng = np.random.default_rng(1)
    for w in keras_model.weights:  # non-zero biases too
        w.assign(rng.normal(0.0, 0.1, w.shape).astype(np.float32))
    model = tfmodel.CNN2D(input_shape=input_shape)
    _copy_keras_cnn2d_weights(keras_model, model)
    x = rng.normal(size=(4, *input_shape)).astype(np.float32)
    expected = keras_model(x, training=False).numpy()
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, rtol=1e-4, atol=1e-4)
    # dropout only in training: a training call differs, inference calls repeat exactly
    assert not np.allclose(model(x, training=True).numpy(), expected, atol=1e-4)
    np.testing.assert_array_equal(model(x, training=False).numpy(), model(x, training=False).numpy())


def test_the_script_trains_the_library_default_model():

    script = _load_script()
    args = script.parse_args([])
    assert args.model == train.DEFAULT_MODEL and args.model in script.MODELS
    assert script.MODELS == tfmodel.MODELS
    assert set(tfmodel.MODELS) <= set(models.MODELS)
    assert "res8" in script.MODELS  # the course's final model, also when train.DEFAULT_MODEL comes from elsewhere


def test_same_weights_give_the_keras_model_outputs():
    """Layer for layer the same network: with Keras' weights, the tf.Module computes Keras' logits."""
    keras_model = models.build("ds_cnn_m", input_shape=SMALL_SHAPE)
    rng = np.random.default_rng(0)
    for w in keras_model.weights:  # non-trivial biases and batch-norm statistics too
        value = rng.normal(0.0, 0.1, w.shape)
        if "moving_variance" in w.path:
            value = 0.5 + np.abs(value)
        w.assign(value.astype(np.float32))
    model = tfmodel.DSCNN(input_shape=SMALL_SHAPE, size="m")
    _copy_keras_weights(keras_model, model)
    x = rng.normal(size=(4, *SMALL_SHAPE)).astype(np.float32)
    np.testing.assert_allclose(model(x, training=False).numpy(), keras_model(x, training=False).numpy(), atol=1e-4)


def test_batch_norm_statistics_are_learned_and_used_in_inference():
    model = tfmodel.DSCNN(input_shape=SMALL_SHAPE, size="s", seed=1)
    optimizer = tfmodel.Adam(model.trainable_variables, lr=1e-2)
    step = tfmodel.make_train_step(model, optimizer)
    rng = np.random.default_rng(0)
    x = (3.0 + 2.0 * rng.normal(size=(32, *SMALL_SHAPE))).astype(np.float32)  # far from mean 0, variance 1
    y = rng.integers(0, 12, 32).astype(np.int32)
    before = model.conv_1_bn.moving_mean.numpy().copy(), model.conv_1_bn.moving_variance.numpy().copy()
    for _ in range(3):
        step(x, y)
    assert int(optimizer.iterations) == 3  # one optimizer step per batch
    assert not np.allclose(model.conv_1_bn.moving_mean.numpy(), before[0])
    assert not np.allclose(model.conv_1_bn.moving_variance.numpy(), before[1])
    # Inference uses the moving statistics: a clip's logits do not depend on the rest of its batch ...
    alone = model(x[:1], training=False).numpy()
    together = model(x, training=False).numpy()[:1]
    np.testing.assert_allclose(alone, together, rtol=1e-4, atol=1e-4)
    # ... whereas training mode normalises with the batch's own statistics.
    assert not np.allclose(model(x[:2], training=True).numpy()[:1], model(x, training=True).numpy()[:1], atol=1e-4)
    # and inference mode changes no statistic
    mean = model.conv_1_bn.moving_mean.numpy().copy()
    model(x, training=False)
    np.testing.assert_array_equal(model.conv_1_bn.moving_mean.numpy(), mean)


def test_loss_is_cross_entropy_of_logits_weighted_by_class():
    logits = tf.constant([[2.0, 0.0], [0.0, 1.0]])
    y = tf.constant([0, 0])
    plain = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits).numpy()
    assert float(tfmodel.weighted_loss(logits, y)) == pytest.approx(plain.mean(), rel=1e-6)
    weighted = tfmodel.weighted_loss(logits, y, tf.constant([3.0, 1.0]))
    assert float(weighted) == pytest.approx(3.0 * plain.mean(), rel=1e-6)


def test_adam_matches_keras_adam():
    import keras

    w0 = np.array([0.5, -1.0, 2.0], np.float32)
    grads = [np.array([0.1, -0.2, 0.3], np.float32), np.array([-0.4, 0.5, 0.0], np.float32)]
    mine = tf.Variable(w0)
    adam = tfmodel.Adam([mine], lr=0.01)
    theirs = keras.Variable(w0)
    reference = keras.optimizers.Adam(learning_rate=0.01)
    for g in grads:
        adam.apply_gradients([tf.constant(g)], [mine])
        reference.apply_gradients([(tf.constant(g), theirs)])
    np.testing.assert_allclose(mine.numpy(), np.asarray(theirs), rtol=1e-5)


@pytest.mark.parametrize("name", ["cnn2d", "ds_cnn_s", "res8"])
def test_saved_model_reloads_and_serves_the_same_predictions(tmp_path, name):
    from speechlib import features

    model = tfmodel.build(name, seed=3)  # the default (101, 40) log-mel: the waveform signature needs it
    rng = np.random.default_rng(0)
    step = tfmodel.make_train_step(model, tfmodel.Adam(model.trainable_variables))
    step(rng.normal(size=(8, 101, 40)).astype(np.float32), rng.integers(0, 12, 8).astype(np.int32))
    params = features.resolve_params("logmel")
    norm = {"mean": np.full(40, -5.0, np.float32), "std": np.full(40, 2.0, np.float32)}
    labels = [f"class{i}" for i in range(12)]
    path = tfmodel.export_saved_model(model, tmp_path / "sm", labels=labels, feature_params=params, normalization=norm)

    waveforms = (0.3 * rng.uniform(-1, 1, size=(5, 16000))).astype(np.float32)
    logmel = features.compute_batch(waveforms, "logmel", **params)
    serving = tf.saved_model.load(str(path))
    out = serving.signatures["serving_default"](features=tf.constant(logmel))
    expected = model(features.normalize(logmel, norm), training=False).numpy()
    np.testing.assert_allclose(out["logits"].numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["label_id"].numpy(), expected.argmax(axis=1))
    assert [s.decode() for s in out["label"].numpy()] == [labels[i] for i in expected.argmax(axis=1)]
    check = tfmodel.check_saved_model(path, waveforms, feature_params=params)
    assert check["max_abs_diff"] < 1e-3 and check["label_agreement"] == 1.0


@pytest.mark.slow
def test_script_on_random_data_end_to_end(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, str(SCRIPT), "--random_data", "--epochs", "1", "--model", "ds_cnn_s",
           "--batch_size", "256", "--out", str(out), "--logdir", str(tmp_path / "logs")]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test accuracy" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "ds_cnn_s" and metrics["epochs_run"] == 1
    assert set(metrics["test"]["per_class"]) == set(metrics["test"]["labels"])
    assert 0.0 <= metrics["cv"]["accuracy"] <= 1.0
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert tfmodel.checkpoint_epoch(out) == 1 and tfmodel.checkpoint_step(out) == 2  # 512 rows / 256
    assert list((tmp_path / "logs" / "tf_ds_cnn_s" / "train").glob("events.out.tfevents.*"))


def test_script_help_lists_the_flags_of_train_keras():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0
    for flag in ("--path_to_data", "--random_data", "--model", "--epochs", "--batch_size", "--lr", "--seed",
                 "--logdir", "--logrun", "--out", "--resume", "--small"):  # fmt: skip
        assert flag in result.stdout


@pytest.fixture(scope="module")
def small_store(synthetic_small, tmp_path_factory):
    """The feature store of the small synthetic dataset (split and featurized in a temporary home)."""
    import os

    from speechlib import pipeline

    home = tmp_path_factory.mktemp("home")
    saved = os.environ.get("SPEECHLIB_HOME")
    os.environ["SPEECHLIB_HOME"] = str(home)
    try:
        prepared = pipeline.prepare(synthetic_small, small=True, workers=2, verbose=False)
    finally:
        if saved is None:
            os.environ.pop("SPEECHLIB_HOME", None)
        else:
            os.environ["SPEECHLIB_HOME"] = saved
    return prepared.store


@pytest.mark.slow
def test_script_on_a_small_store_resumes_from_its_checkpoint(small_store, tmp_path):
    script = _load_script()
    out = tmp_path / "run"
    common = ["--path_to_data", str(small_store), "--batch_size", "512", "--out", str(out),
              "--logdir", str(tmp_path / "logs")]  # fmt: skip
    first = script.main(script.parse_args([*common, "--epochs", "1"]))  # no --model: train.DEFAULT_MODEL
    steps_per_epoch = first["steps"]
    assert first["model"] == train.DEFAULT_MODEL and first["params"] == models.count_params(
        models.build(train.DEFAULT_MODEL), trainable_only=True
    )
    assert first["epochs_run"] == 1 and steps_per_epoch >= 1
    assert first["waveform_export_check"]["label_agreement"] == 1.0
    second = script.main(script.parse_args([*common, "--epochs", "2", "--resume"]))
    # continued, not restarted: epoch 2 and the optimizer step count of two epochs
    assert second["epochs_this_run"] == 1 and second["epochs_run"] == 2
    assert tfmodel.checkpoint_epoch(out) == 2
    assert second["steps"] == 2 * steps_per_epoch
    log = (out / "training_log.csv").read_text().splitlines()
    assert len(log) == 3 and log[1].startswith("0,") and log[2].startswith("1,")
    assert second["test"]["num_samples"] > 0
    reloaded = tf.saved_model.load(str(out / "saved_model"))
    assert "waveform" in reloaded.signatures


KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
import train_tensorflow
from speechlib import tfmodel

make_step = tfmodel.make_train_step
seen = [0]


def make_train_step(*args, **kwargs):
    step = make_step(*args, **kwargs)

    def killing_step(x, y):
        seen[0] += 1
        if seen[0] == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)  # as a machine that goes away: no cleanup at all
        return step(x, y)

    return killing_step


tfmodel.make_train_step = make_train_step
train_tensorflow.main(train_tensorflow.parse_args(sys.argv[1:]))
"""


def _run_script(args, *, script=SCRIPT, env_extra=None):
    import os

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=600)  # fmt: skip


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_ends_as_an_uninterrupted_run(small_store, tmp_path):
    import pandas as pd

    common = ["--path_to_data", str(small_store), "--model", "cnn2d", "--epochs", "3", "--batch_size", "64",
              "--logdir", str(tmp_path)]  # fmt: skip
    clean = _run_script([*common, "--out", str(tmp_path / "clean")])  # cnn2d: dropout; 370 rows: 6 batches an epoch
    assert clean.returncode == 0, clean.stderr[-2000:]
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER.format(repo=str(REPO), kill_at=9))  # the 3rd batch of the 2nd epoch
    cut = _run_script([*common, "--out", str(tmp_path / "cut")], script=killer)
    assert cut.returncode == -9, cut.stderr[-2000:]
    assert tfmodel.checkpoint_epoch(tmp_path / "cut") == 1
    resumed = _run_script([*common, "--out", str(tmp_path / "cut"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name, _ in tf.train.list_variables(str(tmp_path / "clean" / "checkpoints")):
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH":  # model (dropout generator too), optimizer, epoch, early stopping
            a, b = (tf.train.load_variable(str(tmp_path / run / "checkpoints"), name) for run in ("clean", "cut"))
            np.testing.assert_array_equal(a, b, err_msg=name)
    logs = [pd.read_csv(tmp_path / run / "training_log.csv").drop(columns="seconds") for run in ("clean", "cut")]
    assert list(logs[1]["epoch"]) == [0, 1, 2] and logs[0].equals(logs[1])
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("clean", "cut")]
    assert metrics[0]["cv"] == metrics[1]["cv"] and metrics[0]["test"] == metrics[1]["test"]


def test_dropout_masks_come_from_the_checkpointed_generator(tmp_path):
    model = tfmodel.CNN2D(input_shape=SMALL_SHAPE, seed=5)
    x = np.ones((2, *SMALL_SHAPE), np.float32)
    checkpoint = tf.train.Checkpoint(model=model)
    path = checkpoint.write(str(tmp_path / "ckpt"))
    first = model(x, training=True).numpy()
    checkpoint.read(path).assert_existing_objects_matched()  # back to the generator state before that call
    np.testing.assert_array_equal(model(x, training=True).numpy(), first)
    assert not np.array_equal(model(x, training=True).numpy(), first)  # the next call draws new masks


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("dataset_folder", None),
        ("missing", "does not exist: pass a Speech Commands dataset folder or a feature store"),
        ("empty", "is an empty folder"),
        ("half_store", "was not finished"),
        ("truncated_checkpoint", "cannot resume from"),
    ],
)
def test_path_to_data_and_bad_input(tmp_path, synthetic_small, case, message):
    from test_pipeline import make_store

    path = tmp_path / case
    common = ["--model", "ds_cnn_s", "--epochs", "1", "--out", str(tmp_path / "run")]
    if case == "dataset_folder":  # a raw dataset: split and featurized into its work dir, then trained on
        result = _run_script(["--path_to_data", str(synthetic_small), "--small", *common],
                             env_extra={"SPEECHLIB_HOME": str(tmp_path / "home")})  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert "[3/3] features: computing logmel" in result.stdout and "test accuracy" in result.stdout
        return
    if case == "empty":
        path.mkdir()
    elif case == "half_store":
        make_store(path, unfinished=("train",))
    if case == "truncated_checkpoint":
        assert _run_script(["--random_data", *common]).returncode == 0
        path = next((tmp_path / "run" / "checkpoints").glob("ckpt-1.data-*"))
        path.write_bytes(path.read_bytes()[:100])
        result = _run_script(["--random_data", *common, "--epochs", "2", "--resume"])
    else:
        result = _run_script(["--path_to_data", str(path), *common])
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train_tensorflow.py: error: ") and message in last
    assert str(path if case != "truncated_checkpoint" else path.parent) in last
