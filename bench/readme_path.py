"""Benchmark: the README's real-data path, run as a user runs it, scored on its own test split.

The README tells a user with real clips to run ``train_keras.py`` on the
dataset folder: the folder is split by speaker (the hash rule of the dataset)
and featurized into its work dir on the first run, the final model is trained
with the final recipe, and the test split is read once. This script runs
exactly those commands on a real dataset folder, in two variants:

- ``scratch``: ``python train_keras.py --path_to_data DATA``;
- ``pretrained``: ``python train_keras.py --path_to_data DATA --init_from BUNDLE``,
  where BUNDLE is the model ``python train_keras.py`` trained on the synthetic
  default (the course's pre-training, then fine-tuning);
- ``pretrained_no_noise_gain``: the same, fine-tuned with ``--no_noise --no_gain``;
- ``pretrained_ensemble``: ``speechlib ensemble`` of the two fine-tuned models
  (the mean of their logits: the final recipe on real speech, see
  ``bench/real_speech.py``), run after them.

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
    python bench/readme_path.py              # every variant
    python bench/readme_path.py --variants scratch
    python bench/readme_path.py --variants pretrained_ensemble   # its two members first
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
VARIANTS = ("pretrained_ensemble", "pretrained", "pretrained_no_noise_gain", "scratch")
PRETRAINED = ("pretrained", "pretrained_no_noise_gain")  # fine-tuned from the synthetic default's model
FLAGS = {"scratch": [], "pretrained": [], "pretrained_no_noise_gain": ["--no_noise", "--no_gain"]}
ENSEMBLE = {"pretrained_ensemble": PRETRAINED}  # variant -> the variants it averages
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


def command_of(variant: str, data: Path, bundle: Path | None) -> list[str]:
    """The README's command of ``variant``: ``train_keras.py`` (resumed if it ran before) or ``speechlib ensemble``."""
    if variant in ENSEMBLE:
        members = [train.default_out(pipeline.resolve(data), f"readme_path_{m}") for m in ENSEMBLE[variant]]
        out = train.default_out(pipeline.resolve(data), f"readme_path_{variant}")
        return [sys.executable, "-m", "speechlib", "ensemble", *map(str, members), "--out", str(out)]
    return [sys.executable, str(REPO / "train_keras.py"), "--path_to_data", str(data), "--logrun",
            f"readme_path_{variant}", "--resume", *(["--init_from", str(bundle)] if variant in PRETRAINED else []),
            *FLAGS[variant]]  # fmt: skip


def run_variant(variant: str, data: Path, bundle: Path | None) -> dict:
    """Run the README's command for ``variant``; return its test figures."""
    command = command_of(variant, data, bundle)
    shown = " ".join(["python", *command[1:]]).replace(str(REPO / "train_keras.py"), "train_keras.py")
    shown = shown.replace("python -m speechlib", "speechlib")
    print(shown, flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{variant}: {shown} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    metrics = evaluate.load_metrics(
        train.default_out(pipeline.resolve(data), f"readme_path_{variant}") / "metrics.json"
    )
    work = str(config.work_dir(Path(data).resolve(), False))
    return {
        "variant": variant,
        "command": shown.replace(work, f"data/work/{Path(work).name}")
        .replace(str(data), "DATA")
        .replace(f"{REPO}{os.sep}", ""),  # the work folder as a new user's checkout has it
        "model": metrics["model"],
        "params": metrics["params"],
        **evaluate.accuracy_summary(metrics["test"], "test"),
        "cv_accuracy": round(metrics["cv"]["accuracy"], 4),
        "sizes": metrics["sizes"],
        "epochs_run": metrics["epochs_run"],
        "seconds_per_epoch": metrics["seconds_per_epoch"],
        "machine": {"cores": os.cpu_count(), "cpu_model": cpu_model()},  # rows of other runs keep their own
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
    needed = [m for v in variants for m in ENSEMBLE.get(v, ())]  # an ensemble's members train first
    variants = [*dict.fromkeys([m for m in needed if m not in variants] + variants)]
    variants.sort(key=lambda v: v in ENSEMBLE)
    bundle = synthetic_bundle(args.synthetic_model) if set(variants) & set(PRETRAINED) else None
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
