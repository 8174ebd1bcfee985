"""Benchmark: three formulations of the depthwise convolutions in DS-CNN and BC-ResNet, on CPU.

Measures, in one run:

- **model level**: ms per training step (forward + backward + Adam update,
  batch of 64 log-mel inputs of 101 frames x 40 bands) of ``ds_cnn_s``,
  ``ds_cnn_m``, ``bc_resnet_1``, ``bc_resnet_3`` and ``bc_resnet_8`` built
  with each formulation of :data:`speechlib.models.DEPTHWISE_FORMULATIONS`
  (``keras``: ``keras.layers.DepthwiseConv2D``; ``grouped``: one
  ``tf.nn.conv2d`` with a group per channel; ``shifted``: a sum of shifted,
  per-channel-scaled slices). The formulations are timed in turn, round after
  round, so a change in the machine's load hits all of them alike; the
  figure is the median over rounds, as wall time and as process CPU time (the
  second is steadier on a shared machine), and the ratio is
  ``keras / formulation`` (above 1: faster than Keras' layer);
- **op level**: ms per forward + backward of one depthwise convolution at the
  shapes these models use, for the same formulations and for Keras'
  ``ops.conv`` with groups (which TensorFlow compiles with XLA on CPU — the
  path ``keras.layers.Conv2D(groups=C)`` takes);
- the machine (cores, CPU model, TensorFlow and Keras versions, oneDNN).

Nothing is asserted: the figures are printed and saved to
``bench/results/depthwise.json``.

Examples
--------
::

    python bench/depthwise.py                       # the whole table (about 10 minutes on 2 busy cores)
    python bench/depthwise.py --models ds_cnn_s,bc_resnet_1 --rounds 2 --steps 3
    python bench/depthwise.py --skip_ops --formulations keras,grouped
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from _machine import cpu_model  # bench/_machine.py (bench/ is on sys.path when run)

from speechlib import __version__, models

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "depthwise.json"
BATCH_SIZE = 64  # the batch the training recipes use
MODELS = ["ds_cnn_s", "ds_cnn_m", "bc_resnet_1", "bc_resnet_3", "bc_resnet_8"]
#: Depthwise convolutions of these models: (what, input shape with batch, kernel, strides, dilation, padding).
OPS = [
    ("ds_cnn_s block, 3x3", (BATCH_SIZE, 51, 20, 64), (3, 3), (1, 1), (1, 1), "same"),
    ("ds_cnn_m first block, 3x3 stride 2", (BATCH_SIZE, 51, 40, 172), (3, 3), (2, 2), (1, 1), "same"),
    ("bc_resnet_8 frequency, 3x1", (BATCH_SIZE, 20, 101, 96), (3, 1), (1, 1), (1, 1), "same"),
    ("bc_resnet_8 temporal, 1x3 dilation 8", (BATCH_SIZE, 1, 101, 160), (1, 3), (1, 1), (1, 8), "same"),
    ("bc_resnet_8 classifier, 5x5 valid", (BATCH_SIZE, 5, 105, 160), (5, 5), (1, 1), (1, 1), "valid"),
]


def _timed(fn, *, warmup: int, steps: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU milliseconds of each of ``steps`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(steps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(1000 * (time.perf_counter() - w0))
        cpu.append(1000 * (time.process_time() - c0))
    return wall, cpu


def _train_step(name: str, formulation: str):
    """A compiled training step of model ``name`` on one fixed random batch, and its trainable parameter count."""
    keras.utils.set_random_seed(0)
    model = models.build(name, depthwise=formulation)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH_SIZE, *models.LOGMEL_SHAPE)).astype(np.float32))
    y = tf.constant(np.arange(BATCH_SIZE) % 12)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply(grads, model.trainable_weights)
        return loss

    return (lambda: step().numpy()), models.count_params(model, trainable_only=True)


def bench_models(names, formulations, *, rounds: int, steps: int) -> list[dict]:
    rows = []
    for name in names:
        steps_by = {}
        params = None
        for f in formulations:
            steps_by[f], params = _train_step(name, f)
            steps_by[f]()  # trace and compile outside the timed rounds
        wall = {f: [] for f in formulations}
        cpu = {f: [] for f in formulations}
        for _ in range(rounds):
            for f in formulations:
                w, c = _timed(steps_by[f], warmup=1, steps=steps)
                wall[f] += w
                cpu[f] += c
        row = {"model": name, "params": params, "steps_per_formulation": rounds * steps}
        for f in formulations:
            row[f"{f}_wall_ms"] = round(statistics.median(wall[f]), 1)
            row[f"{f}_cpu_ms"] = round(statistics.median(cpu[f]), 1)
        for f in formulations:
            if f != "keras" and "keras" in formulations:
                row[f"{f}_speedup_wall"] = round(row["keras_wall_ms"] / row[f"{f}_wall_ms"], 2)
                row[f"{f}_speedup_cpu"] = round(row["keras_cpu_ms"] / row[f"{f}_cpu_ms"], 2)
        rows.append(row)
        print(_model_line(row, formulations), flush=True)
    return rows


def _model_line(row, formulations) -> str:
    parts = [f"{row['model']:<12} {row['params']:>8,}"]
    for f in formulations:
        part = f"{f} {row[f'{f}_wall_ms']:>7.0f} ({row[f'{f}_cpu_ms']:>7.0f} cpu)"
        if f != "keras" and f"{f}_speedup_wall" in row:
            part += f" x{row[f'{f}_speedup_wall']:.2f} (x{row[f'{f}_speedup_cpu']:.2f})"
        parts.append(part)
    return " | ".join(parts)


def _forward_backward(call, x, weight):
    """A compiled function: the gradients of sum(call(x) ** 2) with respect to x and weight."""

    @tf.function
    def fwd_bwd():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = call(x)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [x, weight])

    return fwd_bwd


def bench_ops(formulations, *, steps: int) -> list[dict]:
    """Forward + backward of one depthwise convolution per formulation, at the models' shapes."""
    rows = []
    rng = np.random.default_rng(0)
    for what, shape, kernel_size, strides, dilation, padding in OPS:
        x = tf.constant(rng.normal(size=shape).astype(np.float32))
        layers = {
            f: models.depthwise_conv2d(
                kernel_size, strides=strides, dilation_rate=dilation, padding=padding, use_bias=False, formulation=f
            )
            for f in formulations
        }
        for layer in layers.values():
            layer.build(shape)
        kernel = layers[formulations[0]].get_weights()
        for layer in layers.values():
            layer.set_weights(kernel)
        channels = shape[-1]

        grouped_kernel = tf.Variable(kernel[0].reshape(*kernel_size, 1, channels))

        def keras_groups(t, kernel=grouped_kernel, strides=strides, padding=padding, dilation=dilation):
            return keras.ops.conv(t, kernel, strides, padding, dilation_rate=dilation)

        calls = {f: layers[f] for f in formulations}
        calls["keras_ops_conv_groups_xla"] = keras_groups
        row = {"op": what, "input_shape": list(shape), "kernel_size": list(kernel_size)}
        for label, call in calls.items():
            weight = grouped_kernel if label == "keras_ops_conv_groups_xla" else call.kernel

            fwd_bwd = _forward_backward(call, x, weight)
            n = max(2, steps // 4) if label in ("shifted", "keras_ops_conv_groups_xla") else steps
            wall, cpu = _timed(lambda f=fwd_bwd: [g.numpy() for g in f()], warmup=1, steps=n)
            row[f"{label}_wall_ms"] = round(min(wall), 1)
            row[f"{label}_cpu_ms"] = round(min(cpu), 1)
        rows.append(row)
        print(f"{what:<38} " + " | ".join(f"{k} {row[f'{k}_wall_ms']:.1f}" for k in calls), flush=True)
    return rows


def main(args: argparse.Namespace) -> dict:
    formulations = args.formulations.split(",")
    unknown = set(formulations) - set(models.DEPTHWISE_FORMULATIONS)
    if unknown:
        raise SystemExit(f"--formulations: unknown {sorted(unknown)}; choose from {models.DEPTHWISE_FORMULATIONS}")
    machine = {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 Linux builds)"),
    }
    print(f"{machine['cores']} cores, {machine['cpu_model']}, load {machine['loadavg_at_start']}, "
          f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}")  # fmt: skip
    print(f"\nms per training step, batch {BATCH_SIZE}, median wall (cpu); x = keras / formulation")
    model_rows = bench_models(args.models.split(","), formulations, rounds=args.rounds, steps=args.steps)
    op_rows = []
    if not args.skip_ops:
        print("\nms per forward + backward of one depthwise convolution, best wall")
        op_rows = bench_ops(formulations, steps=args.op_steps)
    machine["loadavg_at_end"] = list(os.getloadavg())
    result = {
        "speechlib": __version__,
        "machine": machine,
        "batch_size": BATCH_SIZE,
        "input_shape": list(models.LOGMEL_SHAPE),
        "formulations": formulations,
        "models": model_rows,
        "ops": op_rows,
    }
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {RESULTS.relative_to(REPO)}")
    return result


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names from speechlib.models.MODELS")
    parser.add_argument("--formulations", default=",".join(models.DEPTHWISE_FORMULATIONS),
                        help="comma-separated depthwise formulations to compare (keras first)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the formulations per model")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per formulation per round")
    parser.add_argument("--op_steps", type=int, default=8, help="timed calls per formulation in the op-level table")
    parser.add_argument("--skip_ops", action="store_true", help="leave out the op-level table")
    parser.add_argument("--no_save", action="store_true", help=f"do not write {RESULTS.relative_to(REPO)}")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
