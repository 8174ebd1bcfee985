"""Benchmark: the real-speech check (DESIGN.md) end to end, with its figures written, never asserted.

``../shared/data/speech_commands_v0.02_test_subset`` holds real clips of 60% of
the speakers of Google's official v0.02 test set. Its speakers all lie in the
official *testing* hash band, so ``speechlib.split.make_split`` splits it with
the hash rule *within that band* (10% cv, 10% test, speakers disjoint). This
script then

1. featurizes the three parts (log-mel, the library's featurizer) into a work
   folder under ``<project home>/work/<dataset>/real_speech_check`` (never
   inside the data folder);
2. trains the final model (``speechlib.train.DEFAULT_MODEL`` unless
   ``--model``) on the real training part alone — variant ``real``;
3. trains the same model on the real training part *plus* the training split
   of the embedded synthetic default (``speechlib.pipeline.prepare``): a
   combined split folder (the two train manifests concatenated; cv and test
   are the real ones) featurized by the library — variant ``real+synthetic``;
4. takes the model trained on synthetic data alone (the bundle that
   ``python train_keras.py --model MODEL`` saved in
   ``<work dir of the synthetic set>/models/MODEL``, copied here first; trained
   here with ``--synthetic_epochs`` when there is none) — variant ``synthetic``;
5. evaluates all three on the same real cv and test clips along the inference
   path (wav -> ``speechlib.inference.Predictor`` -> label) and reports
   12-class accuracy with a 95% Wilson interval, macro F1, per-class recall
   of the variant chosen on the real cv part, the sizes (clips, speakers) of
   each part, epochs, seconds per epoch, the machine and its load average.

The real test part is small (about 150 clips from 8 speakers: one clip is
0.7 points of accuracy), so the interval is printed beside every accuracy.
Every training run uses the same ``--seed`` (shuffling, SpecAugment, weights).

Results go to ``bench/results/real_speech.json`` (``--quick``: into the work
folder, so a smoke test never replaces the full figures). When the data
folder is absent the script says so and exits 0 without writing anything.

Examples
--------
::

    python bench/real_speech.py                        # the full check (~20 min on the 2-core machine)
    python bench/real_speech.py --quick                # 2 + 1 epochs: a smoke test of every step
    python bench/real_speech.py --model ds_cnn_m --epochs 20 --combined_epochs 10
    python bench/real_speech.py --data /path/to/speech_commands_v0.02_test_subset
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from _machine import cpu_model  # bench/_machine.py (bench/ is on sys.path when run)

from speechlib import __version__, config, train

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "real_speech.json"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "speech_commands_v0.02_test_subset"
TARGET_ACCURACY = 0.85  # issue 8: 12-class accuracy on the real testing part
SPLITS = ("train", "cv", "test")
VARIANTS = ("real", "real+synthetic", "synthetic")
DEFAULT_EPOCHS = 40  # real-only: ~2.4 k clips per epoch (early stopping, patience 5, on real cv)
DEFAULT_COMBINED_EPOCHS = 15  # real+synthetic: ~10.4 k clips per epoch
DEFAULT_SYNTHETIC_EPOCHS = 20  # only when no synthetic-only bundle exists (train_keras.py's default)
DEFAULT_BATCH_SIZE = train.DEFAULT_BATCH_SIZE  # as train_keras.py
DEFAULT_LR = train.DEFAULT_LR  # as train_keras.py: peak of the warm-up + cosine schedule


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (see --help)."""
    from speechlib import train

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help=f"the real clips in the official test-set layout (default {DEFAULT_DATA})",
    )
    parser.add_argument(
        "--model", default=train.DEFAULT_MODEL, help=f"speechlib.models name (default {train.DEFAULT_MODEL})"
    )
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="maximum epochs of the real-only model")
    parser.add_argument(
        "--combined_epochs",
        type=int,
        default=DEFAULT_COMBINED_EPOCHS,
        help="maximum epochs of the real+synthetic model",
    )
    parser.add_argument(
        "--synthetic_epochs",
        type=int,
        default=DEFAULT_SYNTHETIC_EPOCHS,
        help="maximum epochs of the synthetic-only model, when it is trained here",
    )
    parser.add_argument(
        "--synthetic_model",
        type=Path,
        default=None,
        help="bundle (model.keras or its folder) of a model trained on synthetic data alone "
        "(default: the one train_keras.py saved for --model)",
    )
    parser.add_argument(
        "--train_synthetic", action="store_true", help="train the synthetic-only model here even when a bundle exists"
    )
    parser.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE, help=f"default {DEFAULT_BATCH_SIZE}")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"peak learning rate (default {DEFAULT_LR})")
    parser.add_argument("--seed", type=int, default=config.SEED, help=f"seed of every step (default {config.SEED})")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default <work dir of --data>/...)")
    parser.add_argument("--out", type=Path, default=None, help=f"results JSON (default {RESULTS})")
    parser.add_argument("--quick", action="store_true", help="2 + 1 epochs, results into the work folder")
    return parser.parse_args(argv)


# --- Machine ------------------------------------------------------------------------------------


def machine() -> dict:
    """Cores, CPU model, memory, load average and library versions of this machine."""
    import keras
    import tensorflow as tf

    model = cpu_model()
    memory = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gib": memory,
        "load_average": load_average(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "speechlib": __version__,
    }


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


# --- Data ---------------------------------------------------------------------------------------


def wilson_interval(correct: int, total: int) -> list[float]:
    """95% Wilson score interval of a proportion ``correct / total`` (scipy), as [low, high]."""
    from scipy import stats

    if total == 0:
        return [0.0, 1.0]
    ci = stats.binomtest(int(correct), int(total)).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def describe_part(manifest) -> dict:
    """Clips, speakers, silence clips and per-label counts of one manifest (DataFrame)."""
    words = manifest[manifest["speaker"] != ""]
    return {
        "clips": len(manifest),
        "speakers": int(words["speaker"].nunique()),
        "silence_clips": int((manifest["label"] == config.SILENCE_LABEL).sum()),
        "per_label": {str(k): int(v) for k, v in manifest["label"].value_counts().sort_index().items()},
    }


def featurize_store(split_dir: Path, out: Path, *, seed: int) -> dict:
    """Log-mel store of the train/cv/test manifests of ``split_dir`` (skipped when done; redone when stale)."""
    from speechlib import featurize
    from speechlib.store import StoreError

    try:
        report = featurize.featurize(split_dir, out, kind="logmel", splits=SPLITS, seed=seed, progress=True)
    except StoreError as err:  # made from other manifests (e.g. the synthetic set was regenerated): start over
        print(f"note: {err}\n      recomputing {out}")
        report = featurize.featurize(
            split_dir, out, kind="logmel", splits=SPLITS, seed=seed, progress=True, overwrite=True
        )
    print(featurize.format_report(report))
    return report


def combined_split(real_split: Path, synthetic_split: Path, out_dir: Path) -> dict:
    """A split folder whose train part is the real train manifest plus the synthetic one; cv and test are real.

    Parameters
    ----------
    real_split, synthetic_split : Path
        Folders written by ``speechlib.split.make_split`` for the same task (same labels, same order).
    out_dir : Path
        Written with ``train.csv``, ``cv.csv``, ``test.csv`` and ``split.json`` (the real one's
        information with the combined train counts and both sources recorded).

    Returns
    -------
    dict
        The ``split.json`` written.

    Raises
    ------
    ValueError
        The two splits have different label lists.
    """
    import pandas as pd

    from speechlib import split
    from speechlib.store import read_manifest

    real_info, synth_info = split.load_info(real_split), split.load_info(synthetic_split)
    if real_info["labels"] != synth_info["labels"]:
        raise ValueError(
            f"{real_split} and {synthetic_split} have different labels "
            f"({real_info['labels']} vs {synth_info['labels']}): split both for the same task"
        )
    real_train = read_manifest(real_split / "train.csv")
    synth_train = read_manifest(synthetic_split / "train.csv")
    train_rows = pd.concat([real_train, synth_train[real_train.columns]], ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {
        "train": train_rows,
        "cv": read_manifest(real_split / "cv.csv"),
        "test": read_manifest(real_split / "test.csv"),
    }
    for name, frame in frames.items():
        frame.to_csv(out_dir / f"{name}.csv", index=False, lineterminator="\n")
    counts = {
        name: {str(k): int(v) for k, v in frame["label"].value_counts().items()} for name, frame in frames.items()
    }
    info = {
        **{k: v for k, v in real_info.items() if k not in ("counts", "sample_counts", "noise_regions")},
        "counts": counts,
        "noise_regions": {},
        "dataset": f"{real_info['dataset']} (train + cv + test) + {synth_info['dataset']} (train)",
        "combined_from": {"real": str(real_split), "synthetic_train": str(synthetic_split)},
    }
    (out_dir / "split.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


# --- Models -------------------------------------------------------------------------------------


def train_variant(name: str, store: Path, out_dir: Path, *, model_name: str, epochs: int, args) -> dict:
    """Train ``model_name`` on ``store``'s train split (cv: its cv split), save the bundle; return timings."""
    from speechlib import inference, models, train

    print(f"\n=== training {name}: {model_name}, up to {epochs} epochs, data {store}")
    train.set_seed(args.seed)
    data = train.load_data(store, batch_size=args.batch_size, seed=args.seed)
    print(data.describe())
    model = models.build(model_name, input_shape=data.feature_shape, num_classes=data.num_classes)
    load_before = load_average()
    started = time.perf_counter()
    train.fit(model, data, epochs=epochs, lr=args.lr, out_dir=out_dir, verbose=2)
    seconds = time.perf_counter() - started
    load_after = load_average()
    model = train.best_model(out_dir, fallback=model)
    log = train.read_log(out_dir)
    store_test = train.evaluate_split(model, data, "test")
    bundle = inference.save_bundle(
        model, out_dir / inference.MODEL_FILE, **data.bundle_info(), model_name=model_name, data=data.source,
        seed=args.seed, epochs=epochs,
    )  # fmt: skip
    best_epoch = int(log["val_accuracy"].idxmax()) if "val_accuracy" in log and len(log) else None
    return {
        "bundle": str(bundle.path),
        "model": model_name,
        "params": models.count_params(model, trainable_only=True),
        "train_rows": int(data.sizes["train"]),
        "cv_rows": int(data.sizes["cv"]),
        "max_epochs": epochs,
        "epochs_run": len(log),
        "best_epoch": None if best_epoch is None else int(log["epoch"].iloc[best_epoch]) + 1,
        "seconds_per_epoch_median": round(float(log["seconds"].median()), 2) if "seconds" in log else None,
        "train_seconds": round(seconds, 1),
        "train_samples_per_second": round(data.sizes["train"] * len(log) / seconds, 1) if seconds > 0 else None,
        "load_average_1min": {"before": load_before[0], "after": load_after[0]},
        "store_test_accuracy": round(store_test["accuracy"], 4),  # the store's features: agrees with the wav path
        "seed": args.seed,
    }


def synthetic_snapshot(args, prepared, work: Path) -> tuple[Path | None, dict]:
    """Copy the synthetic-only bundle (train_keras.py's, or ``--synthetic_model``) into the work folder.

    Taken before any training here, because another run may rewrite the
    original later. Returns ``(None, {...})`` when there is none (or with
    ``--train_synthetic``): :func:`main` then trains one.
    """
    from speechlib import inference, train

    out_dir = work / "models" / f"synthetic_{args.model}"
    source = Path(args.synthetic_model or train.default_out(prepared.store, args.model) / inference.MODEL_FILE)
    if source.is_dir() or source.suffix != ".keras":
        source = source / inference.MODEL_FILE
    sidecar = source.with_suffix(".json")
    if args.train_synthetic or not (source.is_file() and sidecar.is_file()):
        if not args.train_synthetic:
            print(f"note: no synthetic-only bundle at {source}: one is trained here ({args.synthetic_epochs} epochs)")
        return None, {"bundle": str(source)}
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    for path in (source, sidecar):
        shutil.copy2(path, out_dir / path.name)
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    metrics_path = source.parent / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    print(f"synthetic-only model: {source} (saved {meta.get('saved', '?')}), copied to {out_dir}")
    return out_dir / source.name, {
        "bundle": str(source),
        "trained_here": False,
        "created_by": metrics.get("created_by", "train_keras.py" if "args" in metrics else ""),
        "model": meta.get("model_name", ""),
        "saved": meta.get("saved", ""),
        "data": meta.get("data", ""),
        "synthetic_test_accuracy": meta.get("test_accuracy"),
        "train_rows": (metrics.get("sizes") or {}).get("train"),
        "epochs_run": metrics.get("epochs_run"),
        "seconds_per_epoch_median": metrics.get("seconds_per_epoch"),
        "seed": (metrics.get("args") or {}).get("seed"),  # None: not recorded by its creator
    }


def evaluate_bundle(bundle_path: Path, manifests: dict) -> dict:
    """12-class metrics of a bundle on the real cv and test manifests, wav -> Predictor -> label."""
    from speechlib import audio, evaluate, inference

    predictor = inference.Predictor.load(bundle_path)
    labels = predictor.labels
    result = {}
    for part, manifest in manifests.items():
        rows = manifest.to_dict("records")
        waveforms = [audio.load_row(row) for row in rows]
        proba = predictor.predict_waveforms(waveforms)
        predicted = [labels[i] for i in proba.argmax(axis=1)]
        metrics = evaluate.classification_metrics(list(manifest["label"]), predicted, labels)
        correct = sum(t == p for t, p in zip(manifest["label"], predicted, strict=True))
        metrics["accuracy_ci95"] = wilson_interval(correct, metrics["num_samples"])
        metrics["correct"] = correct
        result[part] = metrics
    return result


# --- Main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the check; return the exit code (0, also when the data is absent)."""
    args = parse_args(argv)
    command = " ".join(["python", "bench/real_speech.py", *(sys.argv[1:] if argv is None else argv)])
    data = args.data.expanduser().resolve()
    if not data.is_dir():
        print(
            f"note: the real clips are not here: {data} does not exist.\n"
            "      The real-speech check needs ../shared/data/speech_commands_v0.02_test_subset beside the checkout "
            "(or --data PATH to a folder in the official test-set layout); nothing was measured or written."
        )
        return 0
    if config.project_root() is None and not os.environ.get("SPEECHLIB_HOME"):
        os.environ["SPEECHLIB_HOME"] = str(REPO / "data")  # run from elsewhere: still this checkout's data folder
    if os.environ.pop("SPEECHLIB_DATA", None):  # the synthetic default must be the synthetic set
        print("note: SPEECHLIB_DATA ignored: this check uses --data and the embedded synthetic set")
    if args.quick:
        args.epochs, args.combined_epochs, args.synthetic_epochs = 2, 1, 1

    from speechlib import evaluate, pipeline, split
    from speechlib.store import read_manifest

    info = machine()
    load_start = info["load_average"]
    print(f"machine: {info['cores']} cores, {info['cpu_model']}, load average {load_start}")
    print(f"model {args.model}, seed {args.seed}, epochs: real {args.epochs}, real+synthetic {args.combined_epochs}")
    work = (args.work or config.work_dir(data, small=False) / "real_speech_check").resolve()
    if work == data or data in work.parents:
        raise SystemExit(f"error: the work folder {work} is inside the data folder {data}: pass another --work")
    out_json = args.out or (work / "results_quick.json" if args.quick else RESULTS)
    phases: dict[str, float] = {}
    training: dict[str, dict] = {}
    bundles: dict[str, Path | None] = {}

    # 1. The real clips: hash split within the official testing band, then log-mel features.
    started = time.perf_counter()
    real_split = work / "split"
    if not (real_split / "split.json").is_file():
        split.make_split(data, real_split, seed=args.seed, small=False)
    split_info = split.load_info(real_split)
    manifests = {part: read_manifest(real_split / f"{part}.csv") for part in SPLITS}
    parts = {part: describe_part(manifest) for part, manifest in manifests.items()}
    for part, d in parts.items():
        print(f"{part}: {d['clips']} clips, {d['speakers']} speakers, {d['silence_clips']} silence clips")
    real_store = work / "features" / "logmel"
    featurize_store(real_split, real_store, seed=args.seed)
    phases["split_and_featurize_real_s"] = round(time.perf_counter() - started, 1)

    # 2. The synthetic default (generated / split / featurized on first use) and the combined split.
    started = time.perf_counter()
    prepared = pipeline.prepare(small=False, seed=config.SEED)
    combined_dir = work / "split_real+synthetic"
    combined_split(real_split, prepared.split_dir, combined_dir)
    combined_store = work / "features_real+synthetic" / "logmel"
    featurize_store(combined_dir, combined_store, seed=args.seed)
    bundles["synthetic"], training["synthetic"] = synthetic_snapshot(args, prepared, work)
    phases["prepare_synthetic_and_featurize_combined_s"] = round(time.perf_counter() - started, 1)

    # 3. The three models.
    models_dir = work / "models"
    runs = (("real", real_store, args.epochs), ("real+synthetic", combined_store, args.combined_epochs))
    for name, store, epochs in runs:
        out_dir = models_dir / f"{name.replace('+', '_')}_{args.model}"
        training[name] = train_variant(name, store, out_dir, model_name=args.model, epochs=epochs, args=args)
        bundles[name] = Path(training[name]["bundle"])
    if bundles.get("synthetic") is None:
        out_dir = models_dir / f"synthetic_{args.model}"
        epochs = args.synthetic_epochs
        training["synthetic"] = train_variant(
            "synthetic", prepared.store, out_dir, model_name=args.model, epochs=epochs, args=args
        )
        training["synthetic"]["trained_here"] = True
        bundles["synthetic"] = Path(training["synthetic"]["bundle"])

    # 4. Every model on the same real clips, along the inference path.
    started = time.perf_counter()
    real_parts = {"cv": manifests["cv"], "test": manifests["test"]}
    scores = {name: evaluate_bundle(bundles[name], real_parts) for name in VARIANTS}
    phases["evaluate_s"] = round(time.perf_counter() - started, 1)
    best = max(("real", "real+synthetic"), key=lambda name: scores[name]["cv"]["accuracy"])  # chosen on cv, not test
    best_test = scores[best]["test"]

    n_test, speakers_test = parts["test"]["clips"], parts["test"]["speakers"]
    print(
        f"\n=== 12-class accuracy on the real testing part: {n_test} clips, {speakers_test} speakers "
        f"(small: one clip = {100 / max(n_test, 1):.2f} points; 95% Wilson intervals)"
    )
    for name in VARIANTS:
        s, t = scores[name], training[name]
        lo, hi = s["test"]["accuracy_ci95"]
        print(
            f"{name:>15}: test {s['test']['accuracy']:.4f} [{lo:.3f}, {hi:.3f}] ({s['test']['correct']}/{n_test}), "
            f"macro F1 {s['test']['macro_f1']:.4f}, real cv {s['cv']['accuracy']:.4f}; "
            f"epochs {t.get('epochs_run')}, {t.get('seconds_per_epoch_median')} s/epoch"
        )
    table = evaluate.per_class_table(best_test)
    print(f"\nper-class recall of {best} (chosen on real cv accuracy):")
    print(table[["recall", "support"]].round(3).to_string())
    met = best_test["accuracy"] >= TARGET_ACCURACY
    print(
        f"\ntarget {TARGET_ACCURACY:.0%} on the real test part: {'met' if met else 'missed'} by {best} "
        f"({best_test['accuracy']:.4f})"
    )

    load_end = load_average()
    notes = [
        f"The real testing part is small: {n_test} clips from {speakers_test} speakers "
        f"({parts['test']['silence_clips']} silence clips); one clip is {100 / max(n_test, 1):.2f} accuracy points, "
        "so read the 95% Wilson intervals beside each accuracy.",
        "All three variants are scored on the same real cv and test clips along the inference path "
        "(wav -> Predictor -> label); 'best' is chosen on real cv accuracy, never on test.",
        f"Every model trained in this run uses seed {args.seed}; the synthetic-only model "
        + (
            "was trained here too."
            if training["synthetic"].get("trained_here")
            else f"is the bundle {training['synthetic']['bundle']} written by "
            f"{training['synthetic'].get('created_by') or 'another run'} at {training['synthetic'].get('saved')} "
            f"(seed {training['synthetic'].get('seed') or 'not recorded'}), copied before use; "
            "--train_synthetic trains it here instead."
        ),
        f"Load average was {load_start} at start and {load_end} at the end: seconds per epoch are only "
        "comparable between runs on a similarly loaded machine.",
    ]
    result = {
        "benchmark": "real_speech",
        "command": command,
        "quick": bool(args.quick),
        "data": str(data),
        "work": str(work),
        "machine": info,
        "load_average_1min": {"before": load_start[0], "after": load_end[0]},
        "load_average_end": load_end,
        "split": {
            "rule": split_info.get("rule"),
            "validation_percent": split_info.get("validation_percent"),
            "testing_percent": split_info.get("testing_percent"),
            "seed": split_info.get("seed"),
            "parts": parts,
            "synthetic_train_rows": training["real+synthetic"]["train_rows"] - parts["train"]["clips"],
        },
        "model": args.model,
        "seed": args.seed,
        "epochs": {"real": args.epochs, "real+synthetic": args.combined_epochs},
        "batch_size": args.batch_size,
        "lr": args.lr,
        "variants": {
            name: {
                "test_accuracy": round(scores[name]["test"]["accuracy"], 4),
                "test_accuracy_ci95": scores[name]["test"]["accuracy_ci95"],
                "test_correct": scores[name]["test"]["correct"],
                "test_macro_f1": round(scores[name]["test"]["macro_f1"], 4),
                "cv_accuracy": round(scores[name]["cv"]["accuracy"], 4),
                "training": training[name],
                "test": scores[name]["test"],
            }
            for name in VARIANTS
        },
        "best_variant": best,
        "best_per_class_recall": {label: round(v["recall"], 4) for label, v in best_test["per_class"].items()},
        "target_accuracy": TARGET_ACCURACY,
        "met": bool(met),
        "phases": phases,
        "notes": notes,
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
