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
import json
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
        "weights, then train it on --path_to_data: pre-training, then fine-tuning (its model replaces --model)",
    )
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    """Prepare the data, train, evaluate on cv and test, save the bundle; return the metrics."""
    from speechlib import evaluate, inference, models, pipeline, train

    if args.small:
        config.set_small(True)
    train.set_seed(args.seed)
    logrun = args.logrun or args.model

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

    if args.init_from is not None:
        model, args.model = train.init_model(args.init_from, data)
        print(f"fine-tuning {args.model} from {args.init_from}")
    else:
        model = models.build(args.model, input_shape=data.feature_shape, num_classes=data.num_classes)
    model.summary()
    print(data.describe())
    print(f"output: {out}\nTensorBoard: tensorboard --logdir {logdir.parent}")

    started = time.perf_counter()
    history = train.fit(model, data, epochs=args.epochs, lr=args.lr, out_dir=out, logdir=logdir, resume=args.resume)
    seconds = time.perf_counter() - started
    model = train.best_model(out, fallback=model)  # selected on cv

    results = {split: train.evaluate_split(model, data, split) for split in ("cv", "test")}
    for split, metrics in results.items():
        print(f"\n{split}: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")
        print(evaluate.per_class_table(metrics).round(3).to_string())

    log = train.read_log(out)
    bundle = inference.save_bundle(
        model, out / inference.MODEL_FILE, **data.bundle_info(), model_name=args.model, data=data.source,
        cv_accuracy=results["cv"]["accuracy"], test_accuracy=results["test"]["accuracy"],
    )  # fmt: skip
    wave_model = inference.export_waveform_model(bundle, out / inference.WAVEFORM_FILE)
    check = None
    if store is not None:  # the raw-waveform export agrees with the two-step path on real clips
        check = inference.check_waveform_model(wave_model, inference.Predictor(bundle), train.sample_waveforms(store))
        print(f"raw-waveform export vs two-step path: {check}")

    summary = {
        "model": args.model,
        "params": models.count_params(model, trainable_only=True),
        "data": data.source,
        "sizes": data.sizes,
        "epochs_run": len(log),
        "epochs_this_run": len(history.epoch),
        "seconds_this_run": round(seconds, 1),
        "seconds_per_epoch": round(float(log["seconds"].median()), 1) if "seconds" in log else None,
        "cv": results["cv"],
        "test": results["test"],
        "waveform_export_check": check,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    evaluate.save_metrics(out / "metrics.json", summary)
    print(f"\ncv accuracy {results['cv']['accuracy']:.4f}, test accuracy {results['test']['accuracy']:.4f}")
    print(f"saved {bundle.path}, {out / inference.WAVEFORM_FILE}, {out / 'metrics.json'}")
    print(json.dumps({"cv_accuracy": results["cv"]["accuracy"], "test_accuracy": results["test"]["accuracy"]}))
    return summary


if __name__ == "__main__":
    sys.exit(train.run_script(main, parse_args(), prog="train_keras.py"))
