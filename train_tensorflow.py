"""Train the final keyword-spotting model in raw TensorFlow: tf.Module, tf.data, tf.function, GradientTape.

The same model as ``train_keras.py`` (by default ``speechlib.train.DEFAULT_MODEL``,
res8 of Tang & Lin 2018, ``speechlib.models.res_net``; or res15, the CNN
``cnn2d`` or a DS-CNN size), layer for layer and parameter for parameter, the
same data, class weights and learning-rate schedule, written without Keras'
``fit``: the model is a ``tf.Module`` of ``tf.Variable`` s
(``speechlib.tfmodel.ResNet`` / ``CNN2D`` / ``DSCNN``), dropout only in
training, batch norm (res8, DS-CNN) keeps moving statistics for inference,
one Adam step per batch in a ``tf.function``, TensorBoard scalars with
``tf.summary``, resumable ``tf.train.Checkpoint`` s and a SavedModel export
with serving signatures.
Adam is written with tf ops in speechlib.tfmodel (it follows keras.optimizers.Adam).

Writes into --out (default <work dir>/models/<logrun>, logrun tf_<model>):
checkpoints/ (for --resume), best/ (best cv epoch), saved_model/, training_log.csv,
metrics.json (cv and test, per class); TensorBoard logs into <logdir>/<logrun>.

Examples
--------
Train on the embedded synthetic dataset (generated, split and featurized on the first run)::

    python train_tensorflow.py

A quick run in small mode, then resume it for two more epochs (a resumed run, even one
killed with ``kill -9``, ends with the weights of a run that was never stopped)::

    python train_tensorflow.py --small --epochs 2
    python train_tensorflow.py --small --epochs 4 --resume

Train on a downloaded dataset (any layout ``speechlib data check`` reads; split and
featurized into its work dir on the first run, reused after), or on a feature store
written by notebook 2 or ``speechlib featurize``::

    python train_tensorflow.py --path_to_data ~/speech_commands_v0.01
    python train_tensorflow.py --path_to_data data/work/synthetic/features/logmel --epochs 30 --lr 3e-3

Debug the script with random inputs of the right shapes (no data needed)::

    python train_tensorflow.py --random_data --epochs 1

Watch training (scalars loss, accuracy, learning rate)::

    tensorboard --logdir data/work/synthetic/logs

Use the exported model::

    import tensorflow as tf
    serving = tf.saved_model.load("data/work/synthetic/models/tf_res8/saved_model")
    serving.signatures["serving_default"](features=logmel)["label"]  # log-mel (N, 101, 40)
    serving.signatures["waveform"](waveform=clips)["label"]  # raw 16 kHz audio (N, 16000)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from speechlib import config, train

# those speechlib.tfmodel writes out (tfmodel.MODELS)
MODELS = ("cnn2d", "ds_cnn_s", "ds_cnn_m", "ds_cnn_l", "res8", "res15")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments: those of train_keras.py (see --help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_arguments(parser, models=MODELS, logrun_default="tf_<model>")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    """Prepare the data, train, evaluate on cv and test, export the SavedModel; return the metrics."""
    from speechlib import evaluate, pipeline, tfmodel, train

    if args.small:
        config.set_small(True)
    train.set_seed(args.seed)
    logrun = args.logrun or f"tf_{args.model}"

    # Data: random, a given store, or the embedded dataset prepared end to end (as train_keras.py).
    if args.random_data:
        store = None
        data = train.random_data(batch_size=args.batch_size, seed=args.seed)
    else:
        store = pipeline.resolve(args.path_to_data, small=args.small)
    out = args.out or train.default_out(store, logrun)
    logdir = (args.logdir or out.parent.parent / "logs") / logrun
    if store is not None:
        done = tfmodel.checkpoint_epoch(out) if args.resume else 0  # the shuffling continues where it stopped
        data = train.load_data(
            store, batch_size=args.batch_size, seed=args.seed, recipe=train.Recipe.from_args(args), initial_epoch=done
        )

    model = tfmodel.build(args.model, input_shape=data.feature_shape, num_classes=data.num_classes, seed=args.seed)
    print(model.summary())
    print(data.describe())
    print(f"output: {out}\nTensorBoard: tensorboard --logdir {logdir.parent}")

    started = time.perf_counter()
    history = tfmodel.fit(model, data, epochs=args.epochs, lr=args.lr, out_dir=out, logdir=logdir, resume=args.resume)
    seconds = time.perf_counter() - started  # the model now holds the best weights on cv

    results = {split: tfmodel.evaluate_split(model, data, split) for split in ("cv", "test")}
    for split, metrics in results.items():
        print(f"\n{split}: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")
        print(evaluate.per_class_table(metrics).round(3).to_string())

    saved = tfmodel.export_saved_model(
        model, out / tfmodel.SAVED_MODEL_DIR, labels=data.labels, feature_params=data.params,
        normalization=data.normalization, clip_samples=data.clip_samples,
    )  # fmt: skip
    check = None
    if store is not None:  # the waveform signature agrees with numpy features + the features signature
        check = tfmodel.check_saved_model(saved, train.sample_waveforms(store), feature_params=data.params)
        print(f"waveform signature vs two-step path: {check}")

    log = train.read_log(out)
    summary = {
        "model": args.model,
        "implementation": "raw TensorFlow (speechlib.tfmodel)",
        "params": model.count_params(trainable_only=True),
        "data": data.source,
        "sizes": data.sizes,
        "epochs_run": len(log),
        "epochs_this_run": len(history),
        "steps": tfmodel.checkpoint_step(out),
        "seconds_this_run": round(seconds, 1),
        "seconds_per_epoch": round(float(log["seconds"].median()), 1),
        "cv": results["cv"],
        "test": results["test"],
        "saved_model": str(saved),
        "waveform_export_check": check,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    evaluate.save_metrics(out / "metrics.json", summary)
    print(f"\ncv accuracy {results['cv']['accuracy']:.4f}, test accuracy {results['test']['accuracy']:.4f}")
    print(f"saved {saved} (SavedModel), {out / 'metrics.json'}")
    print(json.dumps({"cv_accuracy": results["cv"]["accuracy"], "test_accuracy": results["test"]["accuracy"]}))
    return summary


if __name__ == "__main__":
    sys.exit(train.run_script(main, parse_args(), prog="train_tensorflow.py"))
