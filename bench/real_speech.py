"""Benchmark: the real-speech headline — speaker-grouped k-fold cross-validation on real clips.

Every clip of a real dataset folder (the dev subset of the official v0.02 test
set in development; any Speech Commands folder works) is predicted exactly
once, by a model that never heard its speaker:

1. the folder is split as ``speechlib split`` splits it (``make_split``), and
   the pooled train/cv/test manifests are cut into ``--folds`` speaker-grouped,
   label-stratified folds (``speechlib.split.write_folds``); in fold ``i`` the
   test part is fold ``i``, and 10% of the other speakers are the cv part that
   picks the checkpoint;
2. each fold is featurized (log-mel, ``speechlib.featurize``) and trained
   through the library's one training path (``speechlib.train.load_data`` with
   a ``Recipe``, ``speechlib.train.fit``, the best-on-cv checkpoint), then
   scored on its test part;
3. the pooled predictions give accuracy with a 95% Wilson interval, macro F1,
   per-class recall and the per-fold spread; when ``final`` runs too, every
   other variant is compared with it on the same clips (``vs``:
   ``speechlib.evaluate.paired_comparison``, the accuracy difference with a
   paired-bootstrap 95% interval and McNemar's exact p), which separates
   variants whose own intervals overlap.

Variants (``--variants``): ``final`` (the final model and recipe), one per
augmentation left out (``no_shift``, ``no_noise``, ``no_gain``,
``no_spec_augment``), ``no_noise_gain`` (neither noise nor gain: shift and
SpecAugment only), ``no_augmentation``, ``mixup``, ``pretrained`` (the model
trained on the synthetic default by ``train_keras.py`` used as the starting
point, then fine-tuned on each fold with the final recipe),
``pretrained_no_noise_gain`` (the same start, fine-tuned without noise and
gain) and ``synthetic`` (that model alone, never trained on real speech,
scored on every clip). ``--paired_with V`` compares every variant with ``V``
instead of ``final`` on the same clips.

``--train_seed N`` trains every variant again with another seed (initial
weights, batch order, augmentation; the folds stay): rows ``VARIANT@sN``, which
show how much one training run of a fold varies. ``--ensembles A+B`` scores the
mean of the logits of the models of rows A and B on each fold
(``speechlib.models.ensemble``, what ``speechlib ensemble`` builds from two
trained bundles), training the members that have not run yet.

Each fold's predictions are saved as they finish, so an interrupted run
continues where it stopped; results go to ``bench/results/real_speech.json``
(``--quick``: into the work folder), merged with variants measured earlier.

The data folder comes from ``--data`` or the environment variable
``SPEECHLIB_REAL_DATA``; without one the script says so and exits 0.

Examples
--------
::

    export SPEECHLIB_REAL_DATA=/path/to/speech_commands_v0.02_test_subset
    python bench/real_speech.py                                   # final recipe, 5 folds
    python bench/real_speech.py --variants no_noise,no_shift --run_folds 0,1
    python bench/real_speech.py --variants final,no_noise,no_spec_augment,no_shift,no_gain \
        --run_folds 0 --out bench/results/real_speech_ablation.json     # the ablation, paired with final
    python bench/real_speech.py --variants synthetic,pretrained
    python bench/real_speech.py --variants pretrained,pretrained_no_noise_gain --paired_with pretrained
    python bench/real_speech.py --variants pretrained_no_noise_gain --train_seed 1   # another training run
    python bench/real_speech.py --ensembles pretrained+pretrained_no_noise_gain --paired_with pretrained_no_noise_gain
    python bench/real_speech.py --quick                           # 2 epochs, 2 folds: a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _machine import cpu_model  # bench/_machine.py (bench/ is on sys.path when run)

from speechlib import config, train

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "real_speech.json"
DATA_ENV = "SPEECHLIB_REAL_DATA"
FINAL_MODEL = "res8"  # see bench/results/real_speech.json and the README: the model of the final recipe
DEFAULT_EPOCHS = None  # train.auto_epochs: about train.DEFAULT_STEPS steps over a fold's ~1,950 training clips
TARGET_ACCURACY = 0.93  # the real-speech target of the project
RECIPES = {
    "final": train.Recipe(),
    "no_shift": train.Recipe(shift=False),
    "no_noise": train.Recipe(noise=False),
    "no_gain": train.Recipe(gain=False),
    "no_spec_augment": train.Recipe(spec_augment=False),
    "no_augmentation": train.NO_AUGMENTATION,
    "mixup": train.Recipe(mixup=0.2),
    "no_noise_gain": train.Recipe(noise=False, gain=False),
    "pretrained": train.Recipe(),
    "pretrained_no_noise_gain": train.Recipe(noise=False, gain=False),
}
PRETRAINED = ("pretrained", "pretrained_no_noise_gain")  # the variants that start from the synthetic default's model
VARIANTS = (*RECIPES, "synthetic")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (see --help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help=f"a real dataset folder (default ${DATA_ENV})")
    parser.add_argument(
        "--variants", default=None, help=f"comma-separated, of: {', '.join(VARIANTS)} (default final, or none with "
        "--ensembles)"
    )  # fmt: skip
    parser.add_argument(
        "--paired_with", default="final", help="compare every variant with this one on the same clips (default final)"
    )
    parser.add_argument(
        "--ensembles",
        default=None,
        help="comma-separated rows A+B[+C...] of rows measured before (VARIANT or VARIANT@sN): the mean of their "
        "models' logits on each fold (speechlib.models.ensemble), e.g. pretrained+pretrained_no_noise_gain",
    )
    parser.add_argument("--model", default=FINAL_MODEL, help=f"speechlib.models name (default {FINAL_MODEL})")
    parser.add_argument(
        "--epochs", type=int, default=DEFAULT_EPOCHS, help="epochs per fold (default: train.auto_epochs)"
    )
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--run_folds", default=None, help="only these folds, e.g. 0,1 (default: all)")
    parser.add_argument("--batch_size", type=int, default=train.DEFAULT_BATCH_SIZE)
    parser.add_argument("--lr", type=float, default=train.DEFAULT_LR)
    parser.add_argument(
        "--seed", type=int, default=config.SEED, help="seed of the split and folds (default %(default)s)"
    )
    parser.add_argument(
        "--train_seed",
        type=int,
        default=None,
        help="seed of training (initialisation, batch order, augmentation; default --seed): another seed is "
        "another run of every variant, its rows named VARIANT@sN",
    )
    parser.add_argument(
        "--synthetic_model",
        type=Path,
        default=None,
        help="bundle trained on synthetic data (default: train_keras.py's)",
    )
    parser.add_argument("--work", type=Path, default=None, help="work folder (default <work dir of --data>/real_cv)")
    parser.add_argument("--out", type=Path, default=None, help=f"results JSON (default {RESULTS})")
    parser.add_argument("--quick", action="store_true", help="2 epochs on 2 folds, results into the work folder")
    return parser.parse_args(argv)


def prepare_folds(data: Path, work: Path, *, k: int, seed: int) -> list[Path]:
    """The split of ``data`` (as ``speechlib split`` makes it), its k fold folders, and a log-mel store per fold."""
    from speechlib import featurize, split

    split_dir = work / "split"
    if not (split_dir / "split.json").is_file():
        split.make_split(data, split_dir, seed=seed, small=False, verbose=False)
    folders = split.write_folds(split_dir, work / "folds", k=k, seed=seed)
    for folder in folders:
        featurize.featurize(folder, folder / "store", kind="logmel", splits=("train", "cv", "test"), seed=seed,
                            progress=False)  # fmt: skip
    return folders


def synthetic_bundle(args: argparse.Namespace) -> Path:
    """The bundle of the model trained on the synthetic default (``python train_keras.py --model MODEL``)."""
    if args.synthetic_model is not None:
        return args.synthetic_model
    from speechlib import pipeline

    store = pipeline.prepare(small=args.quick, verbose=False).store
    bundle = train.default_out(store, args.model) / "model.keras"
    if not bundle.is_file():
        sys.exit(f"no model trained on the synthetic default at {bundle}: run `python train_keras.py --model "
                 f"{args.model}` first (or pass --synthetic_model)")  # fmt: skip
    return bundle


def train_seed(args: argparse.Namespace) -> int:
    """The seed of training: ``--train_seed``, or ``--seed`` when not given."""
    return args.seed if args.train_seed is None else args.train_seed


def run_name(variant: str, args: argparse.Namespace) -> str:
    """A variant's row name: the variant, with ``@sN`` when it trained with another seed than the folds'."""
    return variant if train_seed(args) == args.seed else f"{variant}@s{train_seed(args)}"


def run_tag(name: str, args: argparse.Namespace) -> str:
    """The folder name of a row's runs (under ``<work>/runs``): ``VARIANT_MODEL_eEPOCHS``, ``_sN`` for another seed."""
    variant, _, seed = name.partition("@s")
    return f"{variant}_{args.model}_e{args.epochs or 'auto'}" + (f"_s{seed}" if seed else "")


def ensemble_fold(members: list[str], folder: Path, work: Path, args: argparse.Namespace) -> dict:
    """One fold's test predictions of the mean of the members' logits (``speechlib.models.ensemble``).

    The members are rows (``VARIANT`` or ``VARIANT@sN``); each fold's ensemble
    combines the models those runs selected on that fold's cv part, trained here
    first where they have not run yet.
    """
    from speechlib import models

    paths = []
    for member in members:
        variant, _, seed = member.partition("@s")
        out = work / "runs" / run_tag(member, args) / folder.name
        if not (out / train.BEST_FILE).is_file() or not (out / "predictions.json").is_file():
            run_fold(variant, folder, out, argparse.Namespace(**{**vars(args), "train_seed": int(seed or args.seed)}))
        paths.append(out / train.BEST_FILE)
    model = models.ensemble([models.load_model(p, compile=False) for p in paths])
    data = train.load_data(folder / "store", batch_size=args.batch_size, seed=args.seed, recipe=train.NO_AUGMENTATION)
    y_true, proba = train.predict_split(model, data, "test")
    return {"fold": folder.name, "y_true": y_true.tolist(), "y_pred": proba.argmax(axis=1).tolist(),
            "labels": data.labels, "params": models.count_params(model, trainable_only=True)}  # fmt: skip


def inference_cost(members: list[str], folder: Path, work: Path, args: argparse.Namespace) -> dict:
    """Milliseconds per clip (batch 1, one core) of an ensemble and of its first member alone, timed in turn."""
    from speechlib import evaluate, models

    paths = [work / "runs" / run_tag(member, args) / folder.name / train.BEST_FILE for member in members]
    loaded = [models.load_model(p, compile=False) for p in paths]
    x_one = np.zeros(loaded[0].input_shape[1:], np.float32)
    return {
        "ms_per_clip": round(evaluate.time_inference(models.ensemble(loaded), x_one), 2),
        "member_ms_per_clip": round(evaluate.time_inference(loaded[0], x_one), 2),
    }


def run_fold(variant: str, folder: Path, out: Path, args: argparse.Namespace) -> dict:
    """Train one variant on one fold (or reuse its saved predictions); return its predictions and timings."""
    from speechlib import models

    done = out / "predictions.json"
    if done.is_file():
        return json.loads(done.read_text())
    seed = train_seed(args)
    train.set_seed(seed)
    data = train.load_data(folder / "store", batch_size=args.batch_size, seed=seed, recipe=RECIPES[variant])
    if variant in PRETRAINED:
        model, _, _ = train.init_model(synthetic_bundle(args), data)
    else:
        model = models.build(args.model, input_shape=data.feature_shape, num_classes=data.num_classes)
    started = time.perf_counter()
    # A fixed budget, no early stopping: every fold and variant trains as long; the best-on-cv checkpoint is scored.
    train.fit(model, data, epochs=args.epochs, lr=args.lr, out_dir=out, patience=10**6, verbose=0)
    seconds = time.perf_counter() - started
    best = train.best_model(out, fallback=model)
    y_true, proba = train.predict_split(best, data, "test")
    log = train.read_log(out)
    result = {
        "fold": folder.name,
        "y_true": y_true.tolist(),
        "y_pred": proba.argmax(axis=1).tolist(),
        "proba": np.round(proba, 5).tolist(),  # for ensembles of runs (see --ensemble)
        "labels": data.labels,
        "sizes": data.sizes,
        "epochs": len(log),
        "best_epoch": int(log["val_accuracy"].idxmax()) + 1,
        "final_train_loss": round(float(log["loss"].iloc[-1]), 4),
        "train_loss_last_10_epochs_change": round(
            float(log["loss"].iloc[-10:].max() - log["loss"].iloc[-10:].min()), 4
        ),
        "seconds": round(seconds, 1),
        "params": models.count_params(best, trainable_only=True),
        "recipe": data.recipe.to_dict(),
    }
    out.mkdir(parents=True, exist_ok=True)
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(done)
    return result


def synthetic_only(folders: list[Path], args: argparse.Namespace) -> dict:
    """The synthetic-trained model scored on every clip (each fold's test part, along the inference path)."""
    from speechlib import features, inference
    from speechlib.store import FeatureStore

    bundle = inference.load_bundle(synthetic_bundle(args))
    parts = []
    for folder in folders:
        fs = FeatureStore(folder / "store")
        X, y = fs.load_array("test")  # as stored: the bundle's own normalisation is applied here
        logits = bundle.model.predict(features.normalize(X, bundle.normalization), batch_size=256, verbose=0)
        parts.append({"fold": folder.name, "y_true": y.tolist(), "y_pred": logits.argmax(1).tolist(),
                      "labels": fs.labels})  # fmt: skip
    return {"folds": parts}


def summarize(variant: str, folds: list[dict], args: argparse.Namespace) -> dict:
    """Pooled accuracy with its interval, macro F1, per-class recall and the per-fold spread of one variant."""
    from speechlib import evaluate

    labels = folds[0]["labels"]
    y_true = np.concatenate([f["y_true"] for f in folds])
    y_pred = np.concatenate([f["y_pred"] for f in folds])
    metrics = evaluate.classification_metrics(y_true, y_pred, labels)
    per_fold = [float(np.mean(np.equal(f["y_true"], f["y_pred"]))) for f in folds]
    correct = int(np.sum(y_true == y_pred))
    row = {
        "variant": variant,
        "model": args.model if variant != "synthetic" else "synthetic bundle",
        "folds_done": len(folds),
        "clips": len(y_true),
        "accuracy": round(correct / len(y_true), 4),
        "accuracy_ci95": evaluate.wilson_interval(correct, len(y_true)),
        "macro_f1": round(float(metrics["macro_f1"]), 4),
        "per_fold_accuracy": [round(a, 4) for a in per_fold],
        "per_fold_std": round(float(np.std(per_fold, ddof=1)), 4) if len(per_fold) > 1 else None,
        "recall": {label: round(float(metrics["per_class"][label]["recall"]), 4) for label in labels},
    }
    if "epochs" in folds[0]:
        row.update(
            epochs=folds[0]["epochs"],
            params=folds[0]["params"],
            seconds_per_fold=round(float(np.mean([f["seconds"] for f in folds])), 1),
            best_epochs=[f["best_epoch"] for f in folds],
            train_loss_last_10_epochs_change=[f["train_loss_last_10_epochs_change"] for f in folds],
            recipe=folds[0]["recipe"],
        )
    return row


def against(folds: list[dict], final: list[dict]) -> dict:
    """A variant against another (``--paired_with``, the final recipe by default) on the same clips
    (``evaluate.paired_comparison``: difference, its bootstrap interval, McNemar's p): the two rows' own
    intervals overlap where this still separates them."""
    from speechlib import evaluate

    assert [f["fold"] for f in folds] == [f["fold"] for f in final], "the two variants scored other folds"
    y_true = np.concatenate([f["y_true"] for f in final])
    assert np.array_equal(y_true, np.concatenate([f["y_true"] for f in folds])), "the two variants scored other clips"

    def right(parts: list[dict]) -> np.ndarray:
        return np.concatenate([np.equal(f["y_true"], f["y_pred"]) for f in parts])

    return evaluate.paired_comparison(right(folds), right(final), seed=0)


def main(args: argparse.Namespace) -> int:
    data = args.data or config.real_data_dir()  # SPEECHLIB_REAL_DATA
    if data is None or not data.is_dir():
        print(f"real-speech benchmark skipped: no real dataset folder (pass --data or set {DATA_ENV}); "
              f"{'not found: ' + str(data) if data else ''}")  # fmt: skip
        return 0
    variants = [v.strip() for v in (args.variants or ("" if args.ensembles else "final")).split(",") if v.strip()]
    ensembles = [e.split("+") for e in (args.ensembles or "").split(",") if e.strip()]
    unknown = sorted({m.partition("@s")[0] for members in ensembles for m in members} - set(RECIPES))
    if unknown or any(len(members) < 2 for members in ensembles):
        print(f"--ensembles: each is two or more of {', '.join(RECIPES)} (VARIANT@sN: another training seed) "
              f"joined by +; got {args.ensembles!r}", file=sys.stderr)  # fmt: skip
        return 2
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        print(f"unknown variant(s) {unknown}: choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if args.quick:
        args.epochs, args.run_folds = 2, args.run_folds or "0,1"
    work = args.work or config.work_dir(data.resolve(), False) / ("real_cv_quick" if args.quick else "real_cv")
    out_path = args.out or (work / "real_speech.json" if args.quick else RESULTS)
    folders = prepare_folds(data.resolve(), work, k=args.folds, seed=args.seed)
    run = range(len(folders)) if args.run_folds is None else [int(i) for i in args.run_folds.split(",")]
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    rows = {row["variant"]: row for row in results.get("rows", [])}
    trained = {}  # variant -> its folds' predictions, for the paired comparison with the final recipe
    for variant in variants:
        if variant == "synthetic":
            folds = synthetic_only(folders, args)["folds"]
        else:
            folds = []
            for i in run:
                tag = run_tag(run_name(variant, args), args)
                result = run_fold(variant, folders[i], work / "runs" / tag / folders[i].name, args)
                accuracy = np.mean(np.equal(result["y_true"], result["y_pred"]))
                print(
                    f"{run_name(variant, args)} {folders[i].name}: accuracy {accuracy:.4f} ({result['seconds']:.0f} s)",
                    flush=True,
                )
                folds.append(result)
        name = variant if variant == "synthetic" else run_name(variant, args)
        if variant != "synthetic":
            trained[name] = folds
        row = summarize(name, folds, args)
        rows[name] = row
        print(f"{name}: accuracy {row['accuracy']:.4f} {row['accuracy_ci95']} over {row['clips']} clips, "
              f"macro F1 {row['macro_f1']:.4f}, folds {row['per_fold_accuracy']}", flush=True)  # fmt: skip
    for members in ensembles:
        name = "+".join(members)
        folds = [ensemble_fold(members, folders[i], work, args) for i in run]
        trained[name] = folds
        row = summarize(name, folds, args)
        row.update(model=f"ensemble of {len(members)} {args.model}", params=folds[0]["params"], members=members,
                   epochs=args.epochs, **inference_cost(members, folders[run[0]], work, args))  # fmt: skip
        rows[name] = row
        print(f"{name}: accuracy {row['accuracy']:.4f} {row['accuracy_ci95']} over {row['clips']} clips, "
              f"macro F1 {row['macro_f1']:.4f}, folds {row['per_fold_accuracy']}", flush=True)  # fmt: skip
    base = args.paired_with
    paired = trained.get(base)
    if paired is None and base.partition("@s")[0] in RECIPES and trained:  # not run now: its saved predictions
        seed = base.partition("@s")[2]
        again = argparse.Namespace(**{**vars(args), "train_seed": int(seed or args.seed)})
        paired = [run_fold(base.partition("@s")[0], folders[i], work / "runs" / run_tag(base, args) / folders[i].name,
                           again) for i in run]  # fmt: skip
    if paired is not None:
        for variant, folds in trained.items():
            if variant != base:
                rows[variant]["vs"] = {"variant": base, **against(folds, paired)}
                rows[variant].pop("vs_final", None)  # the older key of a comparison with final
                print(f"{variant} - {base}: {rows[variant]['vs']}", flush=True)
    load = [round(x, 2) for x in os.getloadavg()]
    where = out_path.resolve()
    options = (
        (f" --run_folds {args.run_folds}" if args.run_folds else "")
        + (f" --paired_with {args.paired_with}" if args.paired_with != "final" else "")
        + (f" --train_seed {args.train_seed}" if args.train_seed is not None else "")
        + (f" --out {where.relative_to(REPO)}" if where.is_relative_to(REPO) and where != RESULTS else "")
    )
    machine = {"cores": os.cpu_count(), "cpu_model": cpu_model(), "load_average_end": load}
    for name in trained.keys() | ({"synthetic"} & set(variants)):  # the rows measured by this run: their own
        rows[name].update(options=options.strip(), machine=machine)
    results = {
        "benchmark": "real_speech",
        "command": "python bench/real_speech.py"
        + (f" --variants {','.join(variants)}" if variants else "")
        + (f" --ensembles {args.ensembles}" if args.ensembles else "")
        + options,
        "options": options.strip(),
        "data": data.name,
        "folds": args.folds,
        "target_accuracy": TARGET_ACCURACY,
        "machine": machine,
        "rows": list(rows.values()),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out_path)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
