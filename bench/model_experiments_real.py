"""Benchmark: notebook 3's model comparison, repeated on real speech clips.

Notebook 3 (``notebooks/3_model_experiments.ipynb``) trains every model of
``speechlib.experiments.NOTEBOOK_MODELS`` on the full training split of the
course's dataset with one protocol (``speechlib.experiments.PROTOCOL``: the
same augmentation, budget and early stopping for every Keras model, all of
them trained by ``speechlib.train``) and picks the final model by cv macro F1,
then cost. This script runs *the same comparison* on a folder of real clips:

1. the folder (e.g. the ``speech_commands_v0.02_test_subset`` of real clips
   from Google's official v0.02 test set) is split by the hash rule and
   featurized as log-mel by ``speechlib.pipeline.prepare(dataset=..., small=False)``
   (split and store in ``<project home>/work/<folder name>/``);
2. its ``train`` and ``cv`` splits are also stored as raw waveforms
   (``.../features/waveform``) for the raw-waveform course CNN, as notebook 3 does;
3. every model runs once with the first seed (``experiments.compare``), the
   ``PROTOCOL.top_k`` best Keras models by cv macro F1 with the other seeds,
   and the rule of notebook 3 (``experiments.choose_final``) names the model it
   would choose on this data.

Every run (``experiments.run_experiment``'s row: model, seed, accuracy, macro
F1, params, multiply-adds, seconds per epoch, ms per clip, epochs, cv curve) is
written to ``bench/results/model_experiments_real.csv`` as soon as it ends (an
interrupted comparison resumes from there; ``--fresh`` trains every run again),
the summary (mean and spread over seeds) is printed, and then the two rankings
side by side (``speechlib.experiments.compare_rankings``: notebook 3's on the
course's dataset, from ``bench/results/model_experiments.csv``, when that file
exists). Nothing is asserted.

The data folder is ``--data`` or the environment variable ``SPEECHLIB_REAL_DATA``;
when neither is given, or the folder is missing, the script says so and exits 0.
``--quick`` is a smoke run of about a minute: two models, one epoch, one seed,
small mode (a few hundred clips).

Examples
--------
::

    python bench/model_experiments_real.py --data /path/to/speech_commands_v0.02_test_subset
    SPEECHLIB_REAL_DATA=/path/to/clips python bench/model_experiments_real.py --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from speechlib import config

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "SPEECHLIB_REAL_DATA"  # the folder of real clips, when --data is not given
RESULTS = REPO / "bench" / "results" / "model_experiments_real.csv"
SYNTHETIC_RESULTS = REPO / "bench" / "results" / "model_experiments.csv"  # notebook 3's full-mode runs
QUICK_MODELS = ("logistic_regression", "ds_cnn_s")  # --quick: one baseline, one Keras model
COLUMNS = ["model", "seeds", "macro_f1_mean", "macro_f1_std", "accuracy_mean", "params", "macs", "ms_per_clip",
           "seconds_per_epoch", "epochs_mean", "converged"]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (see --help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"a Speech Commands folder of real clips (default: the environment variable {DATA_ENV})",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help=f"results CSV (default {RESULTS}; with --quick, a temporary file)"
    )
    parser.add_argument(
        "--top_k",
        type=int,
        default=None,
        help="how many leaders run again with the protocol's other seeds (default: the protocol's top_k)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="train every run again (default: keep the runs of the same protocol already in the results CSV, so "
        "that an interrupted comparison resumes where it stopped)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: small mode, two models, one epoch, one seed (about a minute)"
    )
    return parser.parse_args(argv)


def data_folder(args: argparse.Namespace) -> Path | None:
    """``--data``, else ``$SPEECHLIB_REAL_DATA``; None when neither is set."""
    if args.data is not None:
        return args.data.expanduser().resolve()
    env = os.environ.get(DATA_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else None


def prepare_stores(data: Path, *, small: bool, splits: tuple[str, str]) -> tuple[dict, Path]:
    """Split and featurize ``data`` (log-mel, and the waveforms of ``splits``); return ({kind: store}, split dir)."""
    from speechlib import featurize, pipeline

    prepared = pipeline.prepare(data, small=small, kind="logmel", seed=config.SEED)
    waveform_store = config.work_dir(prepared.dataset, small=small) / "features" / "waveform"
    featurize.featurize(
        prepared.split_dir, waveform_store, kind="waveform", splits=list(splits), seed=config.SEED, progress=False
    )
    return {"logmel": prepared.store, "waveform": waveform_store}, prepared.split_dir


def earlier_runs(path: Path, protocol, dataset: str):
    """The runs of ``path`` made with this protocol on this dataset (none when the file is missing or older)."""
    import pandas as pd

    if not path.is_file():
        return pd.DataFrame()
    runs = pd.read_csv(path)
    needed = {"model", "seed", "max_epochs", "train_split", "cv_split", "dataset"}
    if not needed <= set(runs.columns):
        return pd.DataFrame()
    keras = runs["max_epochs"].fillna(0) > 0
    same = (runs["dataset"] == dataset) & (runs["train_split"] == protocol.splits[0]) & (
        runs["cv_split"] == protocol.splits[1]) & (~keras | (runs["max_epochs"] == protocol.epochs))  # fmt: skip
    return runs[same].reset_index(drop=True)


def run_missing(names: list[str], seeds, stores: dict, protocol, runs, out: Path, dataset: str):
    """Run every (model, seed) of ``names`` x ``seeds`` not yet in ``runs``; append each row to ``out`` as it ends."""
    import pandas as pd

    from speechlib import experiments

    done = set() if runs.empty else set(zip(runs["model"], runs["seed"].astype(int), strict=True))
    for name in names:
        for seed in seeds:
            if (name, int(seed)) in done:
                continue
            row = experiments.compare([name], stores, seeds=(seed,), **protocol.fit_kwargs()).attrs["runs"]
            runs = pd.concat([runs, row.assign(dataset=dataset)], ignore_index=True)
            # after every run, so that an interrupted comparison loses at most one; without the run folders'
            # paths (this machine's)
            runs = runs.drop(columns="out_dir", errors="ignore")
            runs.to_csv(out, index=False)
    return runs


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; write and print the table. Returns the exit code."""
    args = parse_args(argv)
    data = data_folder(args)
    if data is None:
        print(f"note: no data folder given: pass --data or set {DATA_ENV} to a folder of real Speech Commands "
              "clips to run the comparison; nothing to do")  # fmt: skip
        return 0
    if not data.is_dir():
        print(f"note: real clips not found at {data} (from {'--data' if args.data else DATA_ENV}); nothing to do")
        return 0

    import pandas as pd

    from speechlib import experiments

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    pd.set_option("display.precision", 3)
    pd.set_option("display.width", 160)
    started = time.perf_counter()
    protocol = experiments.PROTOCOL
    names = list(experiments.NOTEBOOK_MODELS)
    if args.quick:
        protocol = dataclasses.replace(experiments.SMALL_PROTOCOL, epochs=1, seeds=(config.SEED,), top_k=0)
        names = list(QUICK_MODELS)
    stores, split_dir = prepare_stores(data, small=args.quick, splits=protocol.splits)
    print(f"split: {split_dir}\n{len(names)} models; {protocol}", flush=True)

    if args.out is None:  # a smoke run never replaces the committed results
        args.out = Path(tempfile.mkdtemp(prefix="model_experiments_real-")) / RESULTS.name if args.quick else RESULTS
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = pd.DataFrame() if args.fresh else earlier_runs(args.out, protocol, data.name)
    if not runs.empty:
        print(f"resuming: {len(runs)} runs of this protocol already in {args.out} (--fresh to train them again)")
    runs = run_missing(names, protocol.seeds[:1], stores, protocol, runs, args.out, data.name)
    top_k = protocol.top_k if args.top_k is None else args.top_k
    first = experiments.summarize(runs[runs["seed"] == protocol.seeds[0]])
    top = first[first["params"].notna()].head(top_k)["model"].tolist()
    if top and len(protocol.seeds) > 1:
        runs = run_missing(top, protocol.seeds[1:], stores, protocol, runs, args.out, data.name)

    table = experiments.summarize(runs)
    print(f"\n{data.name}: scored on {runs['cv_split'].iloc[0]} ({runs['num_samples'].iloc[0]} clips), trained on "
          f"{runs['train_split'].iloc[0]} ({runs['train_rows'].iloc[0]} clips)")  # fmt: skip
    print(table[COLUMNS].to_string(index=False))
    if SYNTHETIC_RESULTS.is_file():
        rankings = experiments.compare_rankings(pd.read_csv(SYNTHETIC_RESULTS), runs)
        print(f"\nagainst notebook 3's ranking ({SYNTHETIC_RESULTS.relative_to(REPO)}): Spearman rank correlation "
              f"{rankings.attrs['spearman']:.2f}; leaders {rankings.attrs['leaders']}")  # fmt: skip
        print(rankings.to_string(index=False))
    keras_models = table[table["params"].notna()]
    if not keras_models.empty:
        chosen = experiments.choose_final(keras_models, tolerance=0.01)
        print(f"\nnotebook 3's rule (cv macro F1 first; within 1 point, fewest params, then ms/clip) on this data: "
              f"{chosen['model']} (macro F1 {chosen['macro_f1_mean']:.3f})")  # fmt: skip
    print(f"results: {args.out} ({len(runs)} runs) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
