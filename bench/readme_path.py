"""Benchmark: the README's real-data path, run as a user runs it, scored on its own test split.

The README tells a user with real clips to run ``train_keras.py`` on the
dataset folder: the folder is split by speaker (the hash rule of the dataset)
and featurized into its work dir on the first run, the final model is trained
with the final recipe, and the test split is read once. This script runs
exactly those commands on a real dataset folder, in two variants:

- ``scratch``: ``python train_keras.py --path_to_data DATA``;
- ``pretrained``: ``python train_keras.py --path_to_data DATA --init_from BUNDLE``,
  where BUNDLE is the model ``python train_keras.py`` trained on the synthetic
  default (the course's pre-training, then fine-tuning).

Each run goes to ``<work dir>/models/readme_path_<variant>`` and is started
with ``--resume``, so an interrupted benchmark continues and a finished run is
only evaluated again. The test accuracy (with its 95% Wilson interval), macro
F1, epochs and sizes go to ``bench/results/readme_path.json``.

The data folder is ``--data`` or ``SPEECHLIB_REAL_DATA``; without one the script
says so and exits 0.

Examples
--------
::

    export SPEECHLIB_REAL_DATA=/path/to/speech_commands_v0.02_test_subset
    python train_keras.py                    # once: the synthetic default, the pre-training of `pretrained`
    python bench/readme_path.py              # both variants
    python bench/readme_path.py --variants scratch
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _machine import cpu_model  # bench/_machine.py (bench/ is on sys.path when run)

from speechlib import config, evaluate, pipeline, train

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "readme_path.json"
DATA_ENV = "SPEECHLIB_REAL_DATA"
VARIANTS = ("pretrained", "scratch")
TARGET_ACCURACY = 0.92  # the project's target for this path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (see --help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help=f"a real dataset folder (default ${DATA_ENV})")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument(
        "--synthetic_model", type=Path, default=None, help="the pre-trained bundle (default: train_keras.py's)"
    )
    return parser.parse_args(argv)


def synthetic_bundle(path: Path | None) -> Path:
    """The bundle ``python train_keras.py`` trained on the synthetic default (or ``path``)."""
    bundle = path or train.default_out(pipeline.prepare(verbose=False).store, train.DEFAULT_MODEL)
    if not (Path(bundle) / "model.keras").is_file() and not Path(bundle).is_file():
        sys.exit(f"no pre-trained model at {bundle}: run `python train_keras.py` first (or pass --synthetic_model)")
    return Path(bundle)


def run_variant(variant: str, data: Path, bundle: Path | None) -> dict:
    """Run the README's command for ``variant`` (resumed when it ran before); return its test figures."""
    logrun = f"readme_path_{variant}"
    command = [sys.executable, str(REPO / "train_keras.py"), "--path_to_data", str(data), "--logrun", logrun,
               "--resume", *(["--init_from", str(bundle)] if variant == "pretrained" else [])]  # fmt: skip
    print(" ".join(["python", *command[1:]]), flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{variant}: train_keras.py failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    metrics = evaluate.load_metrics(train.default_out(pipeline.resolve(data), logrun) / "metrics.json")
    return {
        "variant": variant,
        "command": " ".join(["python", "train_keras.py", *command[2:]])
        .replace(str(data), "DATA")
        .replace(f"{REPO}{os.sep}", ""),
        "model": metrics["model"],
        **evaluate.accuracy_summary(metrics["test"], "test"),
        "cv_accuracy": round(metrics["cv"]["accuracy"], 4),
        "sizes": metrics["sizes"],
        "epochs_run": metrics["epochs_run"],
        "seconds_per_epoch": metrics["seconds_per_epoch"],
    }


def main(args: argparse.Namespace) -> int:
    """Run the variants, print and save their figures."""
    data = args.data or config.real_data_dir()
    if data is None or not Path(data).is_dir():
        print(f"no real dataset folder: pass --data or set {DATA_ENV}; nothing to measure")
        return 0
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        sys.exit(f"unknown variants {unknown}: choose from {', '.join(VARIANTS)}")
    bundle = synthetic_bundle(args.synthetic_model) if "pretrained" in variants else None
    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    rows = {row["variant"]: row for row in old.get("rows", [])}
    for variant in variants:
        rows[variant] = run_variant(variant, Path(data), bundle)
        row = rows[variant]
        low, high = row["test_accuracy_ci95"]
        print(f"{variant}: test accuracy {row['test_accuracy']:.4f} (95% CI {low:.4f}-{high:.4f}) "
              f"on {row['test_clips']} clips, {row['epochs_run']} epochs")  # fmt: skip
    result = {
        "benchmark": "readme_path",
        "data": Path(data).name,
        "target_accuracy": TARGET_ACCURACY,
        "machine": {"cores": os.cpu_count(), "cpu_model": cpu_model()},
        "rows": [rows[v] for v in VARIANTS if v in rows],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
