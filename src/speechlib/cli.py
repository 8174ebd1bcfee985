"""The ``speechlib`` command: one subcommand per stage of the pipeline.

Examples
--------
::

    speechlib data synth --out data/synthetic          # the embedded default dataset
    speechlib data synth --out data/synthetic_small --small
    speechlib data download --version v0.01 --out data/raw
    speechlib data check data/synthetic
    speechlib course run --small                        # execute the notebooks in place

Each subcommand is a thin wrapper: it parses arguments and calls one
function of the library, importing it only when run, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from speechlib import __version__, config


class UserError(Exception):
    """An error caused by the input (a file, a folder, a flag): printed without a traceback."""


# --- data ------------------------------------------------------------------


def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser(
        "data",
        help="generate, download or check a Speech Commands dataset",
        description="Generate the embedded synthetic dataset, download the real one, or check a folder.",
    )
    dsub = data.add_subparsers(dest="data_command", metavar="{synth,download,check}", required=True)

    synth = dsub.add_parser(
        "synth",
        help="generate the embedded synthetic dataset (offline, espeak-ng)",
        description=(
            "Generate a synthetic dataset in the exact Speech Commands v0.01 layout: 30 words "
            "spoken by synthetic speakers (espeak-ng), background noise, and the official "
            "validation/testing lists computed with the dataset's hash rule. Deterministic for a "
            "seed; re-running on a complete folder does nothing, on a partial one completes it."
        ),
    )
    synth.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: data/synthetic, or data/synthetic_small with --small)",
    )
    synth.add_argument("--small", action="store_true", help="a few hundred clips instead of the full default size")
    synth.add_argument("--seed", type=int, default=config.SEED, help=f"random seed (default {config.SEED})")
    synth.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    synth.set_defaults(func=_run_data_synth)

    download = dsub.add_parser(
        "download",
        help="download and extract the real Speech Commands data (needs the internet)",
        description=(
            "Download a Speech Commands archive with a progress bar, resume a partial download, "
            "verify its SHA-256, and extract it safely into OUT/<name>. Does nothing when the "
            "dataset is already there."
        ),
    )
    download.add_argument(
        "--version",
        dest="dataset_version",
        default="v0.01",
        choices=["v0.01", "v0.02", "test-v0.02", "mini"],
        help="v0.01, v0.02, test-v0.02 (the official test set) or mini (TensorFlow's 8-word "
        "mini_speech_commands ZIP; it has no background noise, so no silence class); default v0.01",
    )
    download.add_argument("--out", type=Path, default=None, help="folder to extract into (default: data/raw)")
    download.add_argument("--url", default=None, help="download from this URL instead of the official one (a mirror)")
    download.add_argument("--keep-archive", action="store_true", help="keep the archive after extracting it")
    download.set_defaults(func=_run_data_download)

    check = dsub.add_parser(
        "check",
        help="scan a dataset folder and report whether it is usable",
        description=(
            "Scan every file of a dataset folder (Speech Commands layout, official test-set layout, "
            "or one folder per class) and print clips per word, speakers, durations and every "
            "problem file with its reason. Never modifies a file. Exit code 0 when usable."
        ),
    )
    check.add_argument("root", type=Path, help="the dataset folder")
    check.add_argument("--strict", action="store_true", help="also fail (exit 1) when any file has a problem")
    check.add_argument("--report", type=Path, default=None, help="write the full scan table to this CSV file")
    _add_own_data_arguments(check)
    check.set_defaults(func=_run_data_check)


def _add_own_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--speaker-pattern`` and ``--clip-seconds``: a dataset of one's own (data check and split)."""
    parser.add_argument(
        "--speaker-pattern",
        default=None,
        help="regex with a named group 'speaker', searched in each file name without _nohash_, e.g. "
        "'^(?P<speaker>[^-]+)-' for alice-3.wav (without speakers a split cannot be speaker-disjoint)",
    )
    parser.add_argument(
        "--clip-seconds",
        default=None,
        help="clip length in seconds (default 1.0): longer clips keep their middle, shorter ones are zero-padded "
        "around the centre; 'auto' = the longest clip",
    )


def _clip_seconds(value: str | None) -> float | str | None:
    """``--clip-seconds``: a number of seconds, ``auto``, or None (the default, 1 s)."""
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise UserError(f"--clip-seconds {value!r}: give a number of seconds (e.g. 2.5) or auto") from None


def _run_data_synth(args: argparse.Namespace) -> int:
    from speechlib import datasets

    out = args.out or config.synthetic_dir(args.small)
    try:
        path = datasets.synthesize(out, small=args.small, seed=args.seed, workers=args.workers)
    except (FileExistsError, ValueError) as err:  # a folder made with other settings, or bad sizes
        raise UserError(str(err)) from None
    print(f"dataset ready: {path}\ncheck it with: speechlib data check {path}")
    return 0


def _run_data_download(args: argparse.Namespace) -> int:
    from speechlib import datasets
    from speechlib.datasets.download import DownloadError

    out = args.out or config.project_home() / "raw"
    try:
        path = datasets.download(args.dataset_version, out, url=args.url, keep_archive=args.keep_archive)
    except DownloadError as err:
        raise UserError(str(err)) from err
    print(f"dataset ready: {path}")
    print(f"check it with: speechlib data check {path}")
    return 0


def _run_data_check(args: argparse.Namespace) -> int:
    from speechlib import datasets

    seconds = _clip_seconds(args.clip_seconds)
    if seconds == "auto":
        seconds = None  # check reports the longest clip and the --clip-seconds that keeps it whole
    return datasets.check(
        args.root, strict=args.strict, report=args.report, speaker_pattern=args.speaker_pattern, clip_seconds=seconds
    )


# --- course ----------------------------------------------------------------


def _add_course(sub: argparse._SubParsersAction) -> None:
    course = sub.add_parser("course", help="run the notebooks of the course", description="Run the course's notebooks.")
    csub = course.add_subparsers(dest="course_command", metavar="{run}", required=True)
    run = csub.add_parser(
        "run",
        help="execute every notebook in order, in place (writes their outputs)",
        description=(
            "Execute notebooks/*.ipynb in file-name order, in place, so that the committed "
            "notebooks carry their outputs. Stops at the first failing cell."
        ),
    )
    run.add_argument("--small", action="store_true", help="small mode (SPEECHLIB_SMALL=1)")
    run.add_argument("--notebooks", type=Path, default=None, help="the notebooks folder (default: ./notebooks)")
    run.add_argument(
        "--only", nargs="*", default=None, help="run only notebooks whose file name starts with one of these prefixes"
    )
    run.add_argument("--timeout", type=int, default=3600, help="seconds a cell may run (default 3600)")
    run.set_defaults(func=_run_course_run)


def _run_course_run(args: argparse.Namespace) -> int:
    from speechlib import course

    if args.small:
        config.set_small(True)
    folder = args.notebooks or Path("notebooks")
    paths = course.notebook_paths(folder)
    if args.only:
        paths = [p for p in paths if any(p.name.startswith(prefix) for prefix in args.only)]
    if not paths:
        raise UserError(
            f"no notebooks found in {folder.resolve()}: run this from the project's root or pass --notebooks"
        )
    for path in paths:
        course.execute_notebook(path, path, timeout=args.timeout)
    return 0


# --- split -----------------------------------------------------------------


def _add_split(sub: argparse._SubParsersAction) -> None:
    split = sub.add_parser(
        "split",
        help="speaker-disjoint train/cv/test manifests, silence from noise, the sample set",
        description=(
            "Split a dataset into train / cv / test manifests (CSV) without moving a file: the official "
            "validation/testing lists when the folder has them, else the dataset's hash rule on the speaker id. "
            "Silence is cut from disjoint regions of the background-noise recordings. Prints the counts per "
            "label and split and the leakage checks (no speaker, file or noise region in two splits)."
        ),
    )
    split.add_argument("--data", type=Path, default=None, help="the dataset folder (default: the course's dataset)")
    split.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <work dir of the dataset>/split)"
    )
    split.add_argument(
        "--task",
        choices=["auto", "kaggle12", "all", "folders"],
        default="auto",
        help="label set: kaggle12 for Speech Commands, folders (every class folder or CSV label) for any other "
        "dataset (default auto: the one that fits)",
    )
    split.add_argument("--words", default=None, help="custom task: comma-separated words, e.g. zero,one,two")
    split.add_argument("--no-unknown", action="store_true", help="no 'unknown' class (the other words are left out)")
    split.add_argument(
        "--no-silence", action="store_true", help="no 'silence' class (default: one only where there is noise)"
    )
    split.add_argument("--seed", type=int, default=config.SEED, help=f"random seed (default {config.SEED})")
    split.add_argument(
        "--rule", choices=["auto", "lists", "hash"], default="auto", help="lists when present (auto), or force one"
    )
    split.add_argument(
        "--validation-percent", type=float, default=config.VALIDATION_PERCENT, help="hash rule: %% of speakers in cv"
    )
    split.add_argument(
        "--testing-percent", type=float, default=config.TESTING_PERCENT, help="hash rule: %% of speakers in test"
    )
    split.add_argument("--noise", type=Path, default=None, help="background-noise folder, for a dataset without one")
    split.add_argument("--small", action="store_true", help="keep a few hundred clips, by whole speakers")
    split.add_argument("--materialize", action="store_true", help="also build main/ and sample/ folders of symlinks")
    _add_own_data_arguments(split)
    split.add_argument(
        "--folds",
        type=Path,
        default=None,
        help="a metadata CSV with folds: UrbanSound8K's (slice_file_name, fold, classID, class) or path, label, "
        "fold [, speaker] columns; test = --test-fold, cv = --cv-fold, train = the other folds",
    )
    split.add_argument("--test-fold", default=None, help="with --folds: the test fold (default: the last)")
    split.add_argument("--cv-fold", default=None, help="with --folds: the cv fold (default: the one before the test)")
    split.add_argument(
        "--test-speakers", default=None, help="comma-separated speakers held out as the test split (all their clips)"
    )
    split.set_defaults(func=_run_split)


def _run_split(args: argparse.Namespace) -> int:
    from speechlib import split

    if args.small:
        config.set_small(True)
    data = args.data or config.dataset_dir()
    out = args.out or config.work_dir(data) / "split"
    words = [w for w in args.words.split(",") if w.strip()] if args.words is not None else None
    try:
        split.make_split(
            data,
            out,
            task=args.task,
            words=words,
            include_unknown=not args.no_unknown,
            include_silence=False if args.no_silence else None,
            seed=args.seed,
            rule=args.rule,
            validation_percent=args.validation_percent,
            testing_percent=args.testing_percent,
            noise_dir=args.noise,
            materialize=args.materialize,
            speaker_pattern=args.speaker_pattern,
            clip_seconds=_clip_seconds(args.clip_seconds),
            folds=args.folds,
            test_fold=args.test_fold,
            cv_fold=args.cv_fold,
            test_speakers=[s for s in args.test_speakers.split(",") if s.strip()] if args.test_speakers else None,
        )
    except (ValueError, FileExistsError) as err:  # LeakageError is a ValueError too
        raise UserError(str(err)) from err
    print(f"manifests written to {out}")
    return 0


# --- featurize ---------------------------------------------------------------


def _add_featurize(sub: argparse._SubParsersAction) -> None:
    featurize = sub.add_parser(
        "featurize",
        help="compute features of the split manifests into a feature store (parallel, resumable)",
        description=(
            "Compute one feature kind (log-mel by default) for every clip of the manifests that "
            "`speechlib split` wrote, in parallel worker processes, into a zarr feature store. Unreadable "
            "files are skipped and listed with their reasons. A run that was interrupted (even killed) "
            "resumes where it stopped when the same command is run again. Prints the report."
        ),
    )
    featurize.add_argument("--split-dir", type=Path, required=True, help="folder with the manifests and split.json")
    featurize.add_argument("--features", dest="kind", default="logmel", help="feature kind (default logmel)")
    featurize.add_argument(
        "--preset", default=None, help="a named parameter set of the kind, e.g. spark for stft (n_fft 2048, hop 321)"
    )
    featurize.add_argument(
        "--augment", type=int, default=0, help="augmented copies of each training clip to store (default 0)"
    )
    featurize.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    featurize.add_argument("--splits", default=None, help="comma-separated manifests, e.g. train,cv (default: all)")
    featurize.add_argument("--chunk-size", type=int, default=None, help="manifest rows per task and per commit")
    featurize.add_argument("--seed", type=int, default=config.SEED, help=f"augmentation seed (default {config.SEED})")
    featurize.add_argument(
        "--out", type=Path, default=None, help="the store folder (default: <split-dir>/../features/<kind>)"
    )
    featurize.add_argument(
        "--overwrite",
        action="store_true",
        help="delete an existing feature store at --out first (only a store: any other folder is refused)",
    )
    featurize.add_argument("--no-progress", action="store_true", help="no progress bar")
    featurize.set_defaults(func=_run_featurize)


def _run_featurize(args: argparse.Namespace) -> int:
    from speechlib import featurize, store

    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None
    try:
        report = featurize.featurize(
            args.split_dir,
            args.out,
            kind=args.kind,
            params={"preset": args.preset} if args.preset else None,
            augment=args.augment,
            workers=args.workers,
            chunk_size=args.chunk_size,
            splits=splits,
            progress=not args.no_progress,
            seed=args.seed,
            overwrite=args.overwrite,
        )
    except (ValueError, store.StoreError) as err:  # unknown kind/preset/parameter, mismatched store
        raise UserError(str(err)) from err
    print(featurize.format_report(report))
    return 0


# --- crossval ---------------------------------------------------------------


def _add_crossval(sub: argparse._SubParsersAction) -> None:
    from speechlib import train  # light: TensorFlow is imported only when a model is built

    parser = sub.add_parser(
        "crossval",
        help="k-fold cross-validation: one training per fold, mean and spread of the accuracy",
        description=(
            "Cut a split folder into folds (the predefined folds of `speechlib split --folds CSV`, else --folds K "
            "speaker-grouped, label-stratified folds), featurize each fold, train the model once per fold through "
            "speechlib.train (best-on-cv checkpoint), score it on the fold's test part, and print one row per fold "
            "with the mean and standard deviation over the folds. A finished fold is not trained again."
        ),
    )
    parser.add_argument("--split-dir", type=Path, required=True, help="folder written by `speechlib split`")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <split-dir>/../crossval)")
    parser.add_argument("--folds", type=int, default=5, help="folds when the split has none predefined (default 5)")
    parser.add_argument("--model", default=None, help=f"the model to train (default {train.DEFAULT_MODEL})")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fold (default: train.auto_epochs)")
    parser.add_argument("--batch_size", type=int, default=None, help=f"default {train.DEFAULT_BATCH_SIZE}")
    parser.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {train.DEFAULT_LR})")
    parser.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs")
    parser.add_argument("--seed", type=int, default=config.SEED, help=f"seed (default {config.SEED})")
    parser.add_argument("--workers", type=int, default=None, help="featurizer processes (default: all cores)")
    train.add_recipe_arguments(parser)
    parser.set_defaults(func=_run_crossval)


def _run_crossval(args: argparse.Namespace) -> int:
    from speechlib import crossval, store, train

    out = args.out or args.split_dir.resolve().parent / "crossval"
    try:
        result = crossval.crossval(
            args.split_dir, out, k=args.folds, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
            lr=args.lr, seed=args.seed, recipe=train.Recipe.from_args(args), patience=args.patience,
            workers=args.workers,
        )  # fmt: skip
    except (ValueError, store.StoreError) as err:
        raise UserError(str(err)) from err
    print(crossval.format_result(result))
    return 0


# --- spark featurize | predict | train (and spark-featurize) -------------------------------


_SPARK_FEATURIZE_DESCRIPTION = (
    "Read the clips with Spark's binaryFile source, join the split manifests, compute the same "
    "features as `speechlib featurize` in Arrow pandas UDFs and write Parquet partitioned by split. "
    "Bad files become rows with status=error; the output is replaced only when the job succeeds. "
    "The cluster commands (spark-submit, --py-files, HDFS/S3) are in the docstring of speechlib.spark."
)


def _add_spark_featurize_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `speechlib spark featurize` and of its older name `speechlib spark-featurize`."""
    parser.add_argument("--split-dir", required=True, help="folder of `speechlib split` (train.csv, ..., split.json)")
    parser.add_argument(
        "--out",
        required=True,
        help="output folder or URI: new, empty, or an earlier output (replaced only on success)",
    )
    parser.add_argument("--master", default=None, help="Spark master: local[*] (default), spark://host:7077, yarn")
    parser.add_argument("--features", default="logmel", help="feature kind: logmel (default), mfcc, stft, ...")
    parser.add_argument("--preset", default=None, help="named parameter set of the kind (e.g. spark for stft)")
    parser.add_argument("--partitions", type=int, default=None, help="tasks for the featurization (default 3 x cores)")
    parser.add_argument("--data-root", default=None, help="dataset root (default: split.json's); hdfs://, s3a:// URIs")
    parser.add_argument("--splits", nargs="*", default=None, help="manifests to featurize (default: train cv test)")
    parser.add_argument("--noise-dir", default=None, help="noise recordings' folder on the executors (. with --files)")
    parser.set_defaults(func=_run_spark_featurize)


def _add_spark_featurize(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "spark-featurize",
        help="featurize the split's clips on Spark into Parquet (local[*] or a cluster); = spark featurize",
        description=_SPARK_FEATURIZE_DESCRIPTION,
    )
    _add_spark_featurize_arguments(parser)


def _add_spark(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "spark",
        help="Spark jobs: featurize into Parquet, predict with a saved model, train on N executors",
        description="Jobs on Spark (local[*] or a cluster): `speechlib spark featurize` writes Parquet features, "
        "`speechlib spark predict` runs a saved model over them, `speechlib spark train` trains across executors. "
        "`python -m speechlib.spark` and `spark-submit src/speechlib/spark_job.py` take the same commands.",
    )
    commands = parser.add_subparsers(dest="spark_command", metavar="COMMAND", required=True)
    featurize = commands.add_parser(
        "featurize",
        help="featurize the split's clips on Spark into Parquet (local[*] or a cluster)",
        description=_SPARK_FEATURIZE_DESCRIPTION,
    )
    _add_spark_featurize_arguments(featurize)
    _add_spark_predict(commands)
    _add_spark_train(commands)


def _add_spark_predict(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "predict",
        help="Parquet features + a saved .keras model -> predictions (Parquet)",
        description="Run a saved Keras model (or model bundle, normalisation included) over the output of "
        "`speechlib spark featurize` with predict_batch_udf; write label ids and probabilities as Parquet.",
    )
    parser.add_argument("--features-dir", required=True, help="output of featurize")
    parser.add_argument("--model", required=True, help="saved .keras model")
    parser.add_argument("--out", required=True, help="where to write the predictions (Parquet)")
    parser.add_argument("--master", default=None, help="Spark master (default local[*] or spark-submit's)")
    parser.add_argument("--batch-size", type=int, default=256, help="rows per model call (default 256)")
    parser.set_defaults(func=_run_spark_predict)


def _add_spark_train(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "train",
        help="train the final model on N Spark executors at once (barrier stage + MultiWorkerMirroredStrategy)",
        description="A barrier stage of N tasks, one TensorFlow worker each, reading its shard of a feature store "
        "on shared storage; the chief writes checkpoints, logs and the bundle to --out. See speechlib.spark_train.",
    )
    run.add_argument("--store", required=True, help="feature store every executor can read at this path")
    run.add_argument("--out", required=True, help="output folder on shared storage (checkpoints, logs, bundle)")
    run.add_argument("--num-workers", type=int, default=2, help="barrier tasks, one per executor (default 2)")
    run.add_argument("--master", default=None, help="Spark master (default local[*] or spark-submit's)")
    run.add_argument("--model", default=None, help="model name (default: the final model)")
    run.add_argument("--epochs", type=int, default=None, help="epochs (default: train.auto_epochs)")
    run.add_argument("--batch-size", type=int, default=64, help="global batch over all workers (default 64)")
    run.add_argument("--lr", type=float, default=None, help="peak learning rate (default train.DEFAULT_LR)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its last backup")
    run.set_defaults(func=_run_spark_train)


def _run_spark_featurize(args: argparse.Namespace) -> int:
    from speechlib import features, spark

    if args.features not in features.KINDS:
        raise UserError(f"unknown feature kind {args.features!r}: choose one of {', '.join(features.KINDS)}")
    report = spark.featurize(
        args.split_dir, args.out, kind=args.features, params={"preset": args.preset} if args.preset else None,
        master=args.master, partitions=args.partitions, data_root=args.data_root, splits=args.splits,
        noise_dir=args.noise_dir,
    )  # fmt: skip
    print(spark.format_report(report))
    return 0 if report["ok"] else 1


def _run_spark_predict(args: argparse.Namespace) -> int:
    from speechlib import spark

    spark.write_predictions(args.features_dir, args.model, args.out, batch_size=args.batch_size, master=args.master)
    print(f"wrote predictions to {args.out}")
    return 0


def _run_spark_train(args: argparse.Namespace) -> int:
    from speechlib import spark_train

    metrics = spark_train.train(
        args.store, args.out, num_workers=args.num_workers, model=args.model, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, resume=args.resume, master=args.master,
    )  # fmt: skip
    print(metrics["output"])
    print(f"{args.num_workers} workers, {metrics['seconds']} s: test accuracy {metrics['test']['accuracy']:.4f}")
    return 0


# --- ensemble / evaluate / predict / submit (a trained model) ----------------


def _add_ensemble(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "ensemble",
        help="one model that averages the logits of several trained models, scored and saved as a bundle",
        description=(
            "Combine two or more models trained by train_keras.py on one feature store (another --seed, another "
            "recipe, another --model) into one model that averages their logits: models trained apart err on "
            "other clips, and their average errs less. The ensemble is scored on the store's cv and test splits "
            "and saved in --out like a trained model (model.keras + model.json, model_waveform.keras, "
            "metrics.json), so predict, evaluate, export, listen and serve take it. --out must be new, empty or "
            "an earlier ensemble's folder."
        ),
    )
    parser.add_argument("members", nargs="+", type=Path, help="model.keras files (or their folders)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--path_to_data", "--path-to-data", type=Path, default=None,
        help="the feature store to score on (default: the one the first model was trained on)",
    )  # fmt: skip
    parser.set_defaults(func=_run_ensemble)


def _run_ensemble(args: argparse.Namespace) -> int:
    from speechlib import train

    summary = train.ensemble(args.members, args.out, store=args.path_to_data)
    print(f"{summary['model']}: {summary['params']:,} parameters; cv accuracy {summary['cv']['accuracy']:.4f}, "
          f"test accuracy {summary['test']['accuracy']:.4f}; saved in {args.out}")  # fmt: skip
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="accuracy, per-class report and confusion matrix of a saved model on a dataset folder",
        description=(
            "Evaluate a model saved by train_keras.py on every clip of a dataset folder, whatever its split "
            "(Speech Commands, the official test-set layout, or one folder per class). Words map to the model's "
            "labels: commands to themselves, other words and _unknown_ to unknown, _silence_ to silence. "
            "Unreadable files are reported and skipped. Writes metrics.json, predictions.csv and "
            "confusion_matrix.png into --out, which must be new, empty or an earlier evaluation's folder."
        ),
    )
    parser.add_argument("--model", type=Path, required=True, help="model.keras (or its folder) from train_keras.py")
    parser.add_argument("--data", type=Path, required=True, help="the dataset folder")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <model folder>/evaluate_<data>)"
    )
    parser.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from speechlib import evaluate, inference, plot

    try:
        metrics = inference.evaluate_folder(args.model, args.data, args.out)
    except ValueError as err:
        raise UserError(str(err)) from err
    figure = plot.confusion_matrix(metrics["confusion_matrix"], metrics["labels"])
    plot.save(figure, Path(metrics["out_dir"]) / "confusion_matrix.png")
    print(evaluate.per_class_table(metrics).round(3).to_string())
    for entry in metrics["skipped"]:
        print(f"skipped {entry['path']}: {entry['reason']}", file=sys.stderr)
    print(
        f"accuracy {metrics['accuracy']:.4f} on {metrics['num_samples']} clips "
        f"({len(metrics['skipped'])} skipped); written to {metrics['out_dir']}"
    )
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "predict",
        help="top-k labels with probabilities for wav files",
        description=(
            "Print the most probable labels of each file, computed as in training (load, pad to 1 s around "
            "the centre, features, normalisation, model). Unreadable files are reported; the exit code is 1 "
            "when any file failed, and the others are still printed."
        ),
    )
    parser.add_argument("--model", type=Path, required=True, help="model.keras (or its folder) from train_keras.py")
    parser.add_argument("files", nargs="+", type=Path, help="audio files (.wav)")
    parser.add_argument("--top-k", type=int, default=3, help="labels per file (default 3)")
    parser.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from speechlib import inference

    try:
        results = inference.Predictor.load(args.model).predict_files(args.files, top_k=args.top_k)
    except ValueError as err:
        raise UserError(str(err)) from err
    failed = 0
    for result in results:
        if result["ok"]:
            print(f"{result['path']}: " + ", ".join(f"{label} {p:.3f}" for label, p in result["top"]))
        else:
            failed += 1
            print(f"{result['path']}: error: {result['reason']}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(results)} files could not be read", file=sys.stderr)
    return 1 if failed else 0


def _add_submit(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "submit",
        help="a Kaggle submission CSV (fname,label) for a folder of test clips",
        description=(
            "Predict every .wav under --data, streaming in batches with a progress bar (memory does not "
            "grow with the number of files), and write fname,label rows. Kaggle needs one row per file: an "
            "unreadable entry (an empty or broken file, a broken link, a folder named x.wav) is listed on stderr "
            "with its reason and gets the label 'silence' (it holds no word). An existing --out is replaced only "
            "when it is a submission (first line fname,label)."
        ),
    )
    parser.add_argument("--model", type=Path, required=True, help="model.keras (or its folder) from train_keras.py")
    parser.add_argument("--data", type=Path, required=True, help="folder of test clips, e.g. test/audio")
    parser.add_argument("--out", type=Path, default=Path("submission.csv"), help="CSV file (default submission.csv)")
    parser.set_defaults(func=_run_submit)


def _run_submit(args: argparse.Namespace) -> int:
    from speechlib import inference

    try:
        report = inference.write_submission(args.model, args.data, args.out)
    except ValueError as err:
        raise UserError(str(err)) from err
    for entry in report["failed"]:
        print(
            f"unreadable, labelled {inference.SUBMISSION_FALLBACK}: {entry['fname']}: {entry['reason']}",
            file=sys.stderr,
        )
    print(
        f"{report['rows']} rows written to {report['out']} for {report['entries']} .wav entries: "
        f"{report['predicted']} predicted, {len(report['failed'])} unreadable (labelled "
        f"{inference.SUBMISSION_FALLBACK}, listed on stderr)"
    )
    return 0


# --- listen / export (streaming detection, edge formats) ---------------------


def _default_bundle() -> Path:
    """The final model of the course's dataset, where train_keras.py and notebook 4 write it."""
    from speechlib import experiments

    dataset = config.dataset_dir()
    return experiments.final_bundle_path(config.work_dir(dataset) / "features" / "logmel", dataset)


def _add_listen(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "listen",
        help="detect keywords with timestamps in a long recording (or a microphone)",
        description=(
            "Slide the model's one-second window over audio of any length (one window every --hop seconds, "
            "features computed incrementally, constant memory), smooth the posteriors, and print each detected "
            "keyword once with its time: TIME_S LABEL SCORE. The file is read chunk by chunk; --mic listens to "
            "the default microphone instead (needs the optional package sounddevice)."
        ),
    )
    parser.add_argument("file", type=Path, nargs="?", default=None, help="audio file (.wav); omit with --mic")
    parser.add_argument("--model", type=Path, default=None, help="model.keras (or its folder); default: final model")
    parser.add_argument(
        "--threshold",
        default=None,
        help="smoothed score a keyword needs: one value (0.8) or per keyword (yes=0.9,no=0.7); default 0.5",
    )
    parser.add_argument("--hop", type=float, default=None, help="seconds between windows (default 0.05)")
    parser.add_argument("--smooth", type=int, default=None, help="windows averaged (default 3)")
    parser.add_argument("--refractory", type=float, default=None, help="seconds of quiet after a detection (default 1)")
    parser.add_argument("--tflite", type=Path, default=None, help="score with this LiteRT model (speechlib export)")
    parser.add_argument("--mic", action="store_true", help="listen to the default microphone (Ctrl-C stops)")
    parser.add_argument("--seconds", type=float, default=None, help="with --mic: stop after this many seconds")
    parser.set_defaults(func=_run_listen)


def _parse_threshold(text: str | None) -> float | dict[str, float] | None:
    if text is None:
        return None
    try:
        if "=" not in text:
            return float(text)
        return {k.strip(): float(v) for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())}
    except ValueError:
        raise UserError(f"--threshold {text!r}: give a number (0.8) or label=number pairs (yes=0.9,no=0.7)") from None


def _run_listen(args: argparse.Namespace) -> int:
    from speechlib import inference, stream

    if (args.file is None) == (not args.mic):
        raise UserError("give one audio file to listen to, or --mic for the microphone")
    if args.file is not None:
        from speechlib import audio

        audio.inspect(args.file)  # a bad file: one line naming it and what is wrong, before the model loads
    bundle = inference.load_bundle(args.model or _default_bundle())
    options = {"threshold": _parse_threshold(args.threshold), "hop_seconds": args.hop,
               "smooth_windows": args.smooth, "refractory_seconds": args.refractory}  # fmt: skip
    options = {k: v for k, v in options.items() if v is not None}
    if args.tflite is not None:
        from speechlib import export

        options["scorer"] = export.LiteRTModel(args.tflite).predict
    detector = stream.Detector(bundle, **options)
    if args.mic:
        chunks = stream.microphone_chunks(sample_rate=detector.sample_rate, seconds=args.seconds)
        print("listening to the microphone (Ctrl-C stops)", file=sys.stderr)
    else:
        chunks = stream.file_chunks(args.file, sample_rate=detector.sample_rate)
    count = 0
    for detection in detector.run(chunks):
        count += 1
        print(f"{detection.time:9.2f} s  {detection.label:8s} {detection.score:.3f}", flush=True)
    print(f"{count} detection(s); keywords: {', '.join(detector.keywords)}", file=sys.stderr)
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="TFLite (float, float16, full-integer int8) or SavedModel files of a saved model, for the edge",
        description=(
            "Convert a model saved by train_keras.py with TensorFlow's TFLite converter. int8 is full-integer "
            "(int8 input and output), calibrated on clips of the training split of the model's feature store "
            "(--data; default: the store the model records). --waveform exports raw audio in, probabilities out "
            "(the log-mel computed inside; float and float16 only). Writes the file and a .json sidecar."
        ),
    )
    parser.add_argument("--model", type=Path, required=True, help="model.keras (or its folder) from train_keras.py")
    parser.add_argument("--format", dest="export_format", choices=["tflite", "saved_model"], default="tflite")
    parser.add_argument("--quantize", choices=["float", "float16", "int8"], default="float", help="(default float)")
    parser.add_argument("--waveform", action="store_true", help="raw 16 kHz audio in (float / float16)")
    parser.add_argument("--data", type=Path, default=None, help="int8: the feature store whose train split calibrates")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: beside the model)")
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from speechlib import export, inference

    bundle = inference.load_bundle(args.model)
    if args.export_format == "saved_model":
        if args.quantize != "float" or args.waveform:
            raise UserError("--quantize and --waveform apply to --format tflite only")
        out = export.export_saved_model(bundle, args.out)
    else:
        out = export.export_tflite(bundle, args.out, quantize=args.quantize, waveform=args.waveform, store=args.data)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) if out.is_dir() else out.stat().st_size
    print(f"wrote {out} ({size / 1024:,.0f} KB)")
    return 0


# --- serve (the web app) -----------------------------------------------------


def _add_serve(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="the web app: upload or record a word in the browser and see the prediction; a JSON API",
        description=(
            "Serve one page (upload a WAV or record from the browser microphone; waveform, log-mel spectrogram "
            "and top-k probabilities; a live mode over a WebSocket into the streaming detector) and a JSON API "
            "(POST /api/predict, GET /api/model, GET /health, docs at /docs). The model is loaded once at start; "
            "binds 127.0.0.1 unless --host says otherwise. Ctrl-C stops."
        ),
    )
    parser.add_argument("--model", type=Path, default=None, help="model.keras (or its folder); default: final model")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--max-upload-mb", type=float, default=10.0, help="largest upload in MB (default 10)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="longest audio in seconds (default 30)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to receive and to answer a request")
    parser.add_argument("--threshold", type=float, default=0.5, help="detector threshold for long clips and live")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from speechlib import serve

    try:
        limits = serve.Limits(max_upload_bytes=round(args.max_upload_mb * serve.MB), max_seconds=args.max_seconds,
                              timeout_seconds=args.timeout)  # fmt: skip
    except ValueError as err:
        raise UserError(f"--max-upload-mb, --max-seconds and --timeout: {err}") from None
    sock = serve.bind(args.host, args.port)  # a taken port: one line, before the model loads
    try:
        hosts = serve.LOOPBACK_NAMES if args.host in serve.LOOPBACK_NAMES else None  # no DNS rebinding
        app = serve.create_app(args.model or _default_bundle(), limits=limits, threshold=args.threshold,
                               allowed_hosts=hosts)  # fmt: skip
    except BaseException:
        sock.close()
        raise
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.host}: anyone who can reach it can use the model (no authentication)",
              file=sys.stderr)  # fmt: skip
    print(f"serving {app.state.service.name} at {serve.url_of(sock)} (API docs at {serve.url_of(sock)}docs; "
          "Ctrl-C stops)", flush=True)  # fmt: skip
    serve.run(app, sock, log_level=args.log_level)
    return 0


# --- transcribe (word sequences with CTC) -------------------------------------


def _add_transcribe(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "transcribe",
        help="the words of a recording, with timestamps (a CTC word model, notebook 8)",
        description=(
            "Recognise a sequence of spoken words with a CTC model trained by speechlib.ctc.fit (notebook 8, "
            "bench/ctc.py) and print one line per word: START_S STOP_S WORD SCORE (greedy path: the frames where "
            "the model emitted the word). --min-score leaves out weak words (choose it on cv: "
            "speechlib.ctc.choose_min_score; bench/ctc.py prints it). --beam N prints the beam-search transcript too."
        ),
    )
    parser.add_argument("file", type=Path, help="audio file (.wav, 16 kHz mono)")
    parser.add_argument("--model", type=Path, required=True, help="model.keras (or its folder) of a CTC word model")
    parser.add_argument("--beam", type=int, default=0, help="also decode with beam search of this width (default off)")
    parser.add_argument(
        "--min-score", dest="min_score", type=float, default=0.0,
        help="leave out words whose mean posterior is below this (0 to 1; default 0: every word)",
    )  # fmt: skip
    parser.set_defaults(func=_run_transcribe)


def _run_transcribe(args: argparse.Namespace) -> int:
    from speechlib import audio, ctc

    if args.beam < 0:
        raise UserError(f"--beam {args.beam}: give a positive beam width, or 0 for greedy decoding only")
    if not 0.0 <= args.min_score < 1.0:
        raise UserError(f"--min-score {args.min_score}: give a posterior from 0 (every word) to below 1")
    audio.inspect(args.file)  # a bad file: one line naming it and what is wrong, before the model loads
    model = ctc.load(args.model)
    waveform = audio.load(args.file, sample_rate=model.sample_rate)
    try:
        words = [w for w in model.transcribe(waveform) if w.score >= args.min_score]
    except ValueError as err:
        raise UserError(f"{args.file}: {err}") from None
    for w in words:
        print(f"{w.start:8.2f} s {w.stop:8.2f} s  {w.word:8s} {w.score:.3f}", flush=True)
    if args.beam:
        beam = ctc.decode(model.logits(waveform)[None], tokens=model.tokens, beam_width=args.beam)[0]
        print(f"beam search ({args.beam}): {' '.join(beam)}")
    print(f"{len(words)} word(s): {' '.join(w.word for w in words)}", file=sys.stderr)
    return 0


# --- the parser --------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Return the ``speechlib`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="speechlib",
        description="Spoken-word (keyword) classification on Speech Commands: data, splits, features, models.",
    )
    parser.add_argument("--version", action="version", version=f"speechlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


_SUBCOMMANDS = [
    _add_data,
    _add_course,
    _add_split,
    _add_spark_featurize,
    _add_spark,
    _add_featurize,
    _add_crossval,
    _add_ensemble,
    _add_evaluate,
    _add_predict,
    _add_submit,
    _add_listen,
    _add_export,
    _add_transcribe,
    _add_serve,
]


def _is_known(err: BaseException) -> bool:
    """An error with a message a person can act on: bad input, a file or folder problem, or speechlib's own."""
    return isinstance(err, UserError | OSError | ValueError) or type(err).__module__.startswith("speechlib")


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text if "\n" not in text or type(err).__name__ == "NotebookError" else " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``speechlib`` and ``python -m speechlib``; returns the exit code.

    Exit codes: 0 success; 1 a result that is not a success (``data check`` on
    an unusable folder, ``predict`` with unreadable files); 2 bad input (a
    file, folder or flag: one line naming it and what to do, never a
    traceback); 3 an internal error (one line; ``SPEECHLIB_DEBUG=1`` shows the
    traceback); 130 interrupted.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("speechlib: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``speechlib data check DIR | head``): stop quietly.
        sys.stdout = open(os.devnull, "w")  # Python flushes stdout at exit: give it somewhere to go
        return 141
    except ImportError as err:  # an optional dependency (pyspark, tensorflow, ...) is missing
        print(f"speechlib: error: {err}; install the project's requirements: pip install -r req.txt", file=sys.stderr)
        return 2
    except Exception as err:
        if os.environ.get("SPEECHLIB_DEBUG"):
            raise
        if _is_known(err):
            print(f"speechlib: error: {_one_line(err)}", file=sys.stderr)
            return 2
        print(
            f"speechlib: internal error: {type(err).__name__}: {_one_line(err)}; this is a bug in speechlib, "
            "please report it with the command you ran (SPEECHLIB_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
