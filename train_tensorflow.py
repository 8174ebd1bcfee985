"""Train the final keyword-spotting model in raw TensorFlow: tf.Module, tf.data, tf.function, GradientTape.

The same model (DS-CNN, ``speechlib.models.ds_cnn``, layer for layer and
parameter for parameter), the same data, class weights and learning-rate
schedule as ``train_keras.py``, written without Keras' ``fit``: the model is
a ``tf.Module`` of ``tf.Variable`` s (``speechlib.tfmodel.DSCNN``), batch norm
keeps moving statistics for inference, one Adam step per batch in a
``tf.function``, TensorBoard scalars with ``tf.summary``, resumable
``tf.train.Checkpoint`` s and a SavedModel export with serving signatures.

Examples
--------
Train on the embedded synthetic dataset (generated, split and featurized on the first run)::

    python train_tensorflow.py

A quick run in small mode, then resume it for two more epochs::

    python train_tensorflow.py --small --epochs 2
    python train_tensorflow.py --small --epochs 4 --resume

Train on a feature store written by notebook 2 or ``speechlib featurize``::

    python train_tensorflow.py --path_to_data data/work/synthetic/features/logmel --epochs 30 --lr 3e-3

Debug the script with random inputs of the right shapes (no data needed)::

    python train_tensorflow.py --random_data --epochs 1

Watch training::

    tensorboard --logdir data/work/synthetic/models/tf_ds_cnn_m/logs

Use the exported model::

    import tensorflow as tf
    serving = tf.saved_model.load("data/work/synthetic/models/tf_ds_cnn_m/saved_model")
    serving.signatures["serving_default"](features=logmel)["label"]  # log-mel (N, 101, 40)
    serving.signatures["waveform"](waveform=clips)["label"]  # raw 16 kHz audio (N, 16000)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MODELS = ("ds_cnn_s", "ds_cnn_m", "ds_cnn_l")  # the DS-CNN sizes speechlib.tfmodel writes out in raw TensorFlow
DEFAULT_MODEL = "ds_cnn_m"  # the final model of notebook 3, as in train_keras.py
DEFAULT_EPOCHS = 30  # early stopping on cv usually ends the run before
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 3e-3  # peak of the warm-up + cosine schedule


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (the flags of train_keras.py)."""
    parser = argparse.ArgumentParser(
        description="Train the DS-CNN keyword-spotting model in raw TensorFlow (see the module docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_mutually_exclusive_group()
    data.add_argument(
        "--path_to_data",
        metavar="STORE",
        help="feature store folder (speechlib featurize); default: prepare the embedded dataset",
    )
    data.add_argument(
        "--random_data", action="store_true", help="random inputs of the right shape, for debugging the script"
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=MODELS, help="DS-CNN size")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="total epochs (a resumed run included)")
    parser.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE, help="clips per batch")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help="peak learning rate of Adam")
    parser.add_argument("--seed", type=int, default=None, help="training seed (default speechlib.config.SEED)")
    parser.add_argument("--logdir", help="TensorBoard folder; default OUT/logs")
    parser.add_argument(
        "--logrun", default=None, help="name of this run (default tf_<model>); logs go to LOGDIR/LOGRUN"
    )
    parser.add_argument("--out", help="folder for checkpoints, the SavedModel and metrics (default: beside the store)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT")
    parser.add_argument("--small", action="store_true", help="small mode: a few hundred clips (SPEECHLIB_SMALL=1)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        parser.error("--epochs and --batch_size must be at least 1 and --lr positive")
    args.logrun = args.logrun or f"tf_{args.model}"
    return args


def main(args: argparse.Namespace) -> dict:
    """Prepare the data, train, evaluate on cv and test, export; returns the metrics written to OUT/metrics.json."""
    from speechlib import config, evaluate, pipeline, tfmodel, train

    if args.small:
        config.set_small(True)
    seed = config.SEED if args.seed is None else args.seed
    train.set_seed(seed)

    store = None
    if not args.random_data:
        store = Path(args.path_to_data) if args.path_to_data else pipeline.prepare(small=args.small or None).store
    out = Path(args.out) if args.out else train.default_out(store, args.logrun)
    first_epoch = tfmodel.checkpoint_epoch(out) if args.resume else 0
    if args.random_data:
        data = train.random_data(batch_size=args.batch_size, seed=seed)
    else:
        data = train.load_data(store, batch_size=args.batch_size, seed=seed, initial_epoch=first_epoch)
    print(data.describe())

    size = args.model.rsplit("_", 1)[-1]
    model = tfmodel.DSCNN(input_shape=data.feature_shape, num_classes=data.num_classes, size=size, seed=seed)
    print(model.summary())
    logdir = Path(args.logdir) / args.logrun if args.logdir else out / "logs"
    print(f"output: {out}\nTensorBoard: tensorboard --logdir {logdir}")

    history = tfmodel.fit(
        model,
        data,
        epochs=args.epochs,
        lr=args.lr,
        out_dir=out,
        logdir=logdir,
        resume=args.resume,
    )

    results = {split: tfmodel.evaluate_split(model, data, split) for split in ("cv", "test")}
    saved = tfmodel.export_saved_model(
        model, out / tfmodel.SAVED_MODEL_DIR, labels=data.labels, feature_params=data.params,
        normalization=data.normalization,
    )  # fmt: skip
    metrics = {
        "script": "train_tensorflow.py",
        "model": args.model,
        "params": model.count_params(trainable_only=True),
        "data": data.source,
        "sizes": data.sizes,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seed": seed,
        "epochs_run": len(train.read_log(out)) if (out / tfmodel.LOG_FILE).is_file() else len(history),
        "cv": results["cv"],
        "test": results["test"],
        "accuracy": results["test"]["accuracy"],
        "saved_model": str(saved),
    }
    evaluate.save_metrics(out / "metrics.json", metrics)
    print(f"cv accuracy {results['cv']['accuracy']:.4f}, test accuracy {results['test']['accuracy']:.4f}")
    print(evaluate.per_class_table(results["test"]).round(3).to_string())
    print(f"saved: {saved} (SavedModel), {out / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
