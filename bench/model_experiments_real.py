"""Benchmark: notebook 3's sample-set model comparison, repeated on the shared real clips.

Notebook 3 (``notebooks/3_model_experiments.ipynb``) trains every model on the
sample set (``sample_train``: 20 clips per class, evaluated on ``sample_cv``:
5 per class) of the embedded synthetic default. This script runs *the same
table* on real speech:

1. ``../shared/data/speech_commands_v0.02_test_subset`` (real clips of 60% of
   the speakers of Google's official v0.02 test set) is split by the hash rule
   (``speechlib.split.make_split``; its speakers all lie in the official
   *testing* band, so the rule is applied within that band) and featurized as
   log-mel by ``speechlib.pipeline.prepare(dataset=..., small=False)``: the
   split in ``<project home>/work/speech_commands_v0.02_test_subset/split``,
   the store in ``.../features/logmel`` (normalisation fitted on the real
   ``train`` part, as notebook 3's store is on the synthetic one);
2. the sample splits are also stored as raw waveforms (``.../features/waveform``)
   for the raw-waveform course CNN, as notebook 3 does;
3. every model of notebook 3's full-mode sample-set table is trained with the
   same protocol: ``speechlib.experiments.run_experiment`` with 10 epochs,
   batch size 8 and the training seed ``config.SEED`` (the majority baseline:
   ``epochs=1``, as in the notebook); the notebook's heavy variants
   (``ds_cnn_l``, ``res15``, ``bc_resnet_8``) are left out there and here.

The table (model, accuracy, macro F1, params, seconds per epoch, ms per clip,
plus the rest of ``run_experiment``'s row) is written to
``bench/results/model_experiments_real.csv`` and printed, beside the same
model's accuracy on the synthetic sample set (``bench/results/model_experiments.csv``)
when that file exists. Nothing is asserted. ``sample_cv`` holds 60 clips, so
one clip is 1.7 points of accuracy: read the ranking, not the third decimal.
When the data folder is absent the script says so and exits 0.

Examples
--------
::

    python bench/model_experiments_real.py            # ~5 min on the 2-core machine
    python bench/model_experiments_real.py --data /path/to/speech_commands_v0.02_test_subset
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from speechlib import config

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "speech_commands_v0.02_test_subset"
RESULTS = REPO / "bench" / "results" / "model_experiments_real.csv"
SYNTHETIC_RESULTS = REPO / "bench" / "results" / "model_experiments.csv"  # notebook 3's full-mode table

# Notebook 3's full-mode protocol for the sample-set table (its first code cell; keep the two in step).
SEED = config.SEED  # the training seed of every first run
EPOCHS = 10  # every Keras model gets the same budget (300 steps of 8 clips)
BATCH_SIZE = 8  # 240 sample clips -> 30 steps an epoch
EXPERIMENTS = {  # table label -> (name in models.MODELS, builder hyper-parameters)
    "majority": ("majority", {}),
    "logistic_regression": ("logistic_regression", {}),
    "random_forest": ("random_forest", {}),
    "mlp": ("mlp", {}),
    "dense": ("dense", {}),
    "cnn2d": ("cnn2d", {}),
    "gru": ("gru", {}),
    "lstm": ("lstm", {}),
    "course_cnn1d/16": ("course_cnn1d", {"width": 1 / 16}),  # 1/16 of the 28 M-parameter original
    "urban_cnn": ("urban_cnn", {}),
    "ds_cnn_s": ("ds_cnn_s", {}),
    "ds_cnn_m": ("ds_cnn_m", {}),
    "ds_cnn_l": ("ds_cnn_l", {}),
    "res8": ("res8", {}),
    "res15": ("res15", {}),
    "bc_resnet_1": ("bc_resnet_1", {}),
    "bc_resnet_8": ("bc_resnet_8", {}),
}
HEAVY = ["ds_cnn_l", "res15", "bc_resnet_8"]  # left out of notebook 3's timed full-mode run
MODELS_TO_RUN = [label for label in EXPERIMENTS if label not in HEAVY]
COLUMNS = ["model", "accuracy", "macro_f1", "params", "seconds_per_epoch", "ms_per_clip"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (see --help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help=f"the real clips in the official test-set layout (default {DEFAULT_DATA})",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results CSV (default {RESULTS})")
    return parser.parse_args(argv)


def prepare_data(data: Path):
    """Split and featurize ``data``; return (log-mel ExperimentData, waveform ExperimentData, split dir)."""
    from speechlib import experiments, featurize, pipeline

    prepared = pipeline.prepare(data, small=False, kind="logmel", seed=config.SEED)
    waveform_store = config.work_dir(prepared.dataset, small=False) / "features" / "waveform"
    featurize.featurize(
        prepared.split_dir,
        waveform_store,
        kind="waveform",
        splits=["sample_train", "sample_cv"],
        seed=config.SEED,
        progress=False,
    )
    logmel = experiments.load(prepared.store, train="sample_train", cv="sample_cv")
    waveform = experiments.load(waveform_store, train="sample_train", cv="sample_cv")
    return logmel, waveform, prepared.split_dir


def same_as_real_speech_check(split_dir: Path) -> str:
    """Whether ``bench/real_speech.py``'s split of the same folder lists the same clips (a one-line note)."""
    import pandas as pd

    other = split_dir.parent / "real_speech_check" / "split"
    if not (other / "split.json").is_file():
        return f"no split by bench/real_speech.py at {other} to compare with"
    different = []
    for part in ("train", "cv", "test", "sample_train", "sample_cv"):
        if not (other / f"{part}.csv").is_file():
            continue
        columns = ["relpath", "label", "offset", "num_samples"]
        ours = pd.read_csv(split_dir / f"{part}.csv", usecols=columns, keep_default_na=False)
        theirs = pd.read_csv(other / f"{part}.csv", usecols=columns, keep_default_na=False)
        if not ours.equals(theirs):
            different.append(part)
    if different:
        return f"differs from bench/real_speech.py's split ({other}) in: {different}"
    return f"same clips as bench/real_speech.py's split ({other})"


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; write and print the table. Returns the exit code."""
    args = parse_args(argv)
    data = args.data.expanduser().resolve()
    if not data.is_dir():
        print(
            f"note: real clips not found at {data}; nothing to do. Pass --data with a Speech Commands folder "
            "(e.g. ../shared/data/speech_commands_v0.02_test_subset beside the checkout) to run the comparison."
        )
        return 0

    import numpy as np
    import pandas as pd

    from speechlib import experiments, models

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    pd.set_option("display.precision", 3)
    pd.set_option("display.width", 160)
    started = time.perf_counter()
    logmel, waveform, split_dir = prepare_data(data)
    print(f"split: {split_dir} ({same_as_real_speech_check(split_dir)})")
    sets = {"logmel": logmel, "waveform": waveform}  # by models.INPUT_KIND
    y_cv = logmel.arrays("sample_cv")[1]
    y_train = logmel.arrays("sample_train")[1]
    if not np.array_equal(waveform.arrays("sample_cv")[1], y_cv):
        raise RuntimeError(f"the waveform and log-mel stores of {split_dir} list sample_cv in different orders")
    counts = pd.DataFrame(
        {
            "sample_train": np.bincount(y_train, minlength=logmel.num_classes),
            "sample_cv": np.bincount(y_cv, minlength=logmel.num_classes),
        },
        index=pd.Index(logmel.labels, name="label"),
    )
    print(counts.T.to_string())
    print(f"{len(MODELS_TO_RUN)} models, {EPOCHS} epochs, batch size {BATCH_SIZE}, seed {SEED}", flush=True)

    rows = []
    for label in MODELS_TO_RUN:
        name, kwargs = EXPERIMENTS[label]
        if name == "majority":
            row = experiments.run_experiment("majority", logmel, epochs=1, seed=SEED)
        else:
            row = experiments.run_experiment(
                name,
                sets[models.INPUT_KIND[name]],
                epochs=EPOCHS,
                seed=SEED,
                batch_size=BATCH_SIZE,
                model_kwargs=kwargs,
                label=label,
            )
        rows.append({**row, "stage": "sample", "dataset": data.name})
        print(
            f"{label:20s} accuracy {row['accuracy']:.3f}  macro F1 {row['macro_f1']:.3f}  "
            f"{row['seconds_per_epoch']:6.2f} s/epoch  {row['ms_per_clip']:6.2f} ms/clip",
            flush=True,
        )

    table = pd.DataFrame(rows).sort_values(["accuracy", "macro_f1"], ascending=False).reset_index(drop=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)

    shown = table[COLUMNS].copy()
    if SYNTHETIC_RESULTS.is_file():
        synthetic = pd.read_csv(SYNTHETIC_RESULTS)
        synthetic = synthetic[(synthetic["stage"] == "sample") & (synthetic["seed"] == SEED)]
        shown["synthetic_accuracy"] = shown["model"].map(synthetic.set_index("model")["accuracy"])
    print(f"\nsample set of {data.name}: accuracy on sample_cv ({len(y_cv)} clips; one clip = "
          f"{100 / len(y_cv):.1f} points), trained on sample_train ({len(y_train)} clips)")  # fmt: skip
    print(shown.to_string(index=False))
    keras_rows = table[table["params"].notna()]
    chosen = experiments.choose_final(keras_rows, tolerance=0.01)
    print(
        f"\nbest Keras model by notebook 3's rule (accuracy first; within 1 point, fewest ms/clip) on this sample set: "
        f"{chosen['model']} ({chosen['accuracy']:.3f})"
    )
    print(f"wrote {args.out} ({len(table)} rows) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
