"""Train the final keyword-spotting model in Keras 3, evaluate it and save it for inference.

A thin script over speechlib: every step is a library call (speechlib.pipeline,
speechlib.train, speechlib.inference). Without --path_to_data it prepares the
embedded synthetic dataset end to end (generate, split, featurize; each step
skipped when already done), so this works on a fresh machine. --path_to_data takes a
dataset folder (Speech Commands, the official test set, Kaggle's train/audio, one folder
per class), prepared the same way into its own work dir, or a feature store:

    pip install -r req.txt && python train_keras.py

More examples:

    python train_keras.py --small --epochs 2                  # a quick run on a few hundred clips
    python train_keras.py --random_data --epochs 1            # debug: random inputs of the right shape
    python train_keras.py --path_to_data ~/speech_commands_v0.01  # a downloaded dataset: split + featurized once
    python train_keras.py --path_to_data data/work/synthetic/features/logmel --model res8 --epochs 30
    python train_keras.py --resume                            # continue a killed run: same result as unkilled
    python train_keras.py --strategy mirrored                 # every local GPU (MirroredStrategy)
    python train_keras.py --path_to_data ~/my_real_clips --init_from data/work/synthetic/models/res8
                                                              # pre-trained on the synthetic default, fine-tuned
    tensorboard --logdir data/work/synthetic/logs             # the curves

Writes into --out (default <work dir>/models/<logrun>): model.keras + model.json (the
bundle: model and everything inference needs), model_waveform.keras (raw 16 kHz audio in,
probabilities out), metrics.json (cv and test), best.keras, training_log.csv, backup/state.npz.
Use the model with `speechlib predict --model OUT FILE.wav` or `speechlib evaluate`.
Bad input (a missing or empty folder, an unfinished store, an unreadable backup) is one
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from speechlib import config, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (see --help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_arguments(parser, logrun_default="the model name")
    parser.add_argument(
        "--init_from",
        type=Path,
        default=None,
        help="start from this trained bundle (e.g. the model trained on the synthetic default) instead of random "
        "weights, then train it on --path_to_data: pre-training, then fine-tuning (its model replaces --model); data "
        "of other labels (your own words) keep its body and get a new output layer",
    )
    parser.add_argument(
        "--head_only",
        action="store_true",
        help="with --init_from: train only the output layer, the bundle's body frozen (a linear classifier on its "
        "features; for a few clips per word)",
    )
    parser.add_argument(
        "--strategy",
        choices=["mirrored"],
        default=None,
        help="mirrored: train on every local GPU at once (tf.distribute.MirroredStrategy; each batch split between "
        "them, gradients all-reduced); default: one device",
    )
    parser.add_argument(
        "--cpu_replicas",
        type=int,
        default=None,
        help="with --strategy mirrored: split the CPU into this many logical devices instead of using GPUs "
        "(to try the strategy on a machine without GPUs; not faster)",
    )
    args = parser.parse_args(argv)
    if args.head_only and args.init_from is None:
        parser.error("--head_only needs --init_from: the bundle whose body is frozen")
    return args


def main(args: argparse.Namespace) -> dict:
    """Prepare the data, train, evaluate on cv and test, save the bundle; return the metrics."""
    from speechlib import models, pipeline, train

    if args.small:
        config.set_small(True)
    train.set_seed(args.seed)
    logrun = args.logrun or args.model
    strategy = train.distribution_strategy(args.strategy, cpu_replicas=args.cpu_replicas)  # before TF runs anything

    # Data: random, or a store: the one given, or prepared from the dataset given (default: the embedded one).
    if args.random_data:
        store = None
        data = train.random_data(batch_size=args.batch_size, seed=args.seed)
    else:
        store = pipeline.resolve(args.path_to_data, small=args.small)
    out = args.out or train.default_out(store, logrun)
    logdir = (args.logdir or train.default_out(store, logrun).parent.parent / "logs") / logrun
    if store is not None:
        done = train.resume_epoch(out) if args.resume else 0  # the data of epoch e depends on (seed, e) only
        data = train.load_data(
            store, batch_size=args.batch_size, seed=args.seed, recipe=train.Recipe.from_args(args), initial_epoch=done
        )

    with strategy.scope() if strategy is not None else contextlib.nullcontext():  # mirrored: variables on every device
        if args.init_from is not None:
            model, args.model, note = train.init_model(args.init_from, data, head_only=args.head_only)
            print(f"fine-tuning {args.model} from {args.init_from}" + (f": {note}" if note else ""))
        else:
            model = models.build(args.model, input_shape=data.feature_shape, num_classes=data.num_classes)
    model.summary()
    print(data.describe())
    if strategy is not None:
        print(f"strategy: MirroredStrategy over {strategy.num_replicas_in_sync} devices, "
              f"{args.batch_size // strategy.num_replicas_in_sync} rows of each batch on each")  # fmt: skip
    print(f"output: {out}\nTensorBoard: tensorboard --logdir {logdir.parent}")

    started = time.perf_counter()
    history = train.fit(
        model, data, epochs=args.epochs, lr=args.lr, out_dir=out, logdir=logdir, resume=args.resume, strategy=strategy
    )
    seconds = time.perf_counter() - started
    return train.finish(
        model, data, out, model_name=args.model, store=store, history=history, seconds=seconds, args=args
    )


if __name__ == "__main__":
    sys.exit(train.run_script(main, parse_args(), prog="train_keras.py"))
