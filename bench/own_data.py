"""Benchmark: a dataset of one's own — spoken digits at 8 kHz, speaker ids in the file names, speakers held out.

A learner's digits set: ten folders ``zero`` ... ``nine`` of 8 kHz clips named
``<speaker>-<take>.wav`` (no ``_nohash_``), built here from the digit words of
a real Speech Commands folder (the dev subset of the official v0.02 test set
in development), then run through the command line as the README's "Your own
data" section shows:

1. the digit clips (read with ``speechlib.datasets.scan``, which knows both
   Speech Commands layouts) are resampled to 8 kHz (``speechlib.audio.load``)
   and written as ``<work>/digits8k/<digit>/<speaker>-<take>.wav``;
2. the held-out speakers are those with the most digit clips, taken in that
   order until they hold ``--test-clips`` clips (one speaker says each digit
   at most a few times in this data, so one speaker alone is too few clips to
   measure); their clips are also linked into ``<work>/heldout/<digit>/``;
3. ``speechlib data check`` and ``speechlib split --speaker-pattern ...
   --test-speakers ...`` (the held-out speakers are the test split, cv is the
   first speakers of the rest in hash order), ``speechlib featurize``,
   ``python train_keras.py --path_to_data STORE`` four times — from random
   weights, and from the synthetic default's model with ``--init_from`` (its
   body kept, a new output layer for the ten digits: transfer learning; the
   synthetic default's labels are the 12 Speech Commands ones), and from a
   model of the ten digits trained on the synthetic default's own digit clips
   (``speechlib split --words zero,...,nine --no-unknown --no-silence`` on it,
   then ``train_keras.py``: the same labels, so the whole model carries over),
   and from a res8 of real speech trained on the real folder without any clip
   of the held-out speakers (``speechlib split --test-speakers``; the
   README's real-data recipe, pre-trained on the synthetic default), and
   from the same res8 of real speech trained on the real folder resampled to
   8 kHz (the digits set's band), whole or with its body frozen
   (``--head_only``) — and ``speechlib evaluate --data <work>/heldout``
   for each;
4. each row's held-out accuracy with its 95% Wilson interval
   (``speechlib.evaluate.wilson_interval``) goes to ``bench/results/own_data.json``.

A step whose output is complete is not run again (``--resume`` for training).
``--variants`` measures some rows and keeps the others from an earlier run
of the same set. The real folder is ``--data`` or ``SPEECHLIB_REAL_DATA``;
without one the script says so and exits 0.

Example
-------
::

    export SPEECHLIB_REAL_DATA=/path/to/speech_commands_v0.02_test_subset
    nice -n 19 python bench/own_data.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import soundfile as sf
from _machine import cpu_model  # bench/_machine.py (bench/ is on sys.path when run)

from speechlib import audio, config, datasets, evaluate

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "own_data.json"
DATA_ENV = "SPEECHLIB_REAL_DATA"
DIGITS = "zero one two three four five six seven eight nine".split()
RATE = 8_000  # Hz: the digits set's own sample rate (the library resamples it to 16 kHz on load)
SPEAKER_PATTERN = r"^(?P<speaker>[0-9a-f]+)-(?P<utterance>[0-9]+)[.]wav$"
TARGET_ACCURACY = 0.95
HEAD_LR = "0.03"  # --head_only rows: ten times train_keras.py's default peak learning rate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (see --help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help=f"a real dataset folder (default ${DATA_ENV})")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default <project home>/work/own_data)")
    parser.add_argument("--test-clips", type=int, default=30, help="held-out speakers hold at least this many clips")
    parser.add_argument("--model", default="res8", help="the model train_keras.py trains (default res8)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: train_keras.py's)")
    parser.add_argument(
        "--init_from", type=Path, default=None,
        help="the bundle the pre-trained row starts from (default: the synthetic default's model, trained by "
        "`python train_keras.py`); without one only the from-scratch row is measured",
    )  # fmt: skip
    parser.add_argument(
        "--variants", type=lambda text: [v for v in text.split(",") if v], default=None,
        help=f"comma-separated rows to measure (default all: {','.join(INIT_FROM)}); the others are kept from an "
        "earlier run of the same set in bench/results/own_data.json",
    )  # fmt: skip
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants or []) - set(INIT_FROM))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(INIT_FROM)}")
    return args


def synthetic_bundle(args: argparse.Namespace) -> Path | None:
    """The model trained on the synthetic default (``python train_keras.py``), if there is one."""
    if args.init_from is not None:
        return args.init_from
    from speechlib import pipeline, train

    store = pipeline.prepare(verbose=False).store
    bundle = train.default_out(store, args.model) / "model.keras"
    return bundle if bundle.is_file() else None


def synthetic_digits_model(args: argparse.Namespace, log: list[dict]) -> Path:
    """A model of the ten digits trained on the synthetic default's own digit clips (its other words left out).

    ``speechlib split --words zero,...,nine --no-unknown --no-silence`` on the
    synthetic default, ``speechlib featurize``, ``python train_keras.py``: the
    same ten labels as the digits set, so fine-tuning keeps the whole model, its
    output layer included. Each step is skipped when its output is complete.
    """
    from speechlib import pipeline

    synthetic = pipeline.prepare(verbose=False).dataset
    split_dir, store = DIGITS_WORK / "split", DIGITS_WORK / "features" / "logmel"
    model = DIGITS_WORK / "models" / args.model
    speechlib = [sys.executable, "-m", "speechlib"]
    if not (split_dir / "split.json").is_file():
        run([*speechlib, "split", "--data", str(synthetic), "--out", str(split_dir), "--words", ",".join(DIGITS),
             "--no-unknown", "--no-silence"], log)  # fmt: skip
    run([*speechlib, "featurize", "--split-dir", str(split_dir), "--out", str(store), "--no-progress"], log)
    run([sys.executable, "train_keras.py", "--path_to_data", str(store), "--model", args.model, "--out", str(model),
         "--resume"], log)  # fmt: skip
    return model / "model.keras"


DIGITS_WORK = config.project_home() / "work" / "synthetic_digits"  # synthetic_digits_model's folders


def resampled_folder(source: Path, out: Path, rate: int) -> Path:
    """A copy of the folder ``source`` with every wav file resampled to ``rate`` Hz (the same names); ``out``.

    Other files (README, LICENSE, lists) are copied as they are. Written once:
    a ``.complete`` marker says the copy is whole.
    """
    done = out / ".complete"
    if done.is_file():
        return out
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        target = out / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".wav":
            sf.write(target, audio.load(path, sample_rate=rate), rate, subtype="PCM_16")
        else:
            shutil.copyfile(path, target)
    done.write_text("")
    return out


def real_speech_model(args: argparse.Namespace, data: Path, work: Path, test_speakers: list[str], log: list[dict],
                      start: Path | None, rate: int | None = None) -> Path:  # fmt: skip
    """A model of real speech that never heard the held-out speakers: the real folder minus all their clips.

    ``speechlib split --data DATA --test-speakers <held-out>`` (every clip of
    theirs, any word, goes to the test split, which is never trained on),
    ``speechlib featurize``, ``python train_keras.py`` from the synthetic
    default's model (``--init_from``, the README's real-data recipe). Its 12
    Speech Commands labels lump the digits into ``unknown``: fine-tuning gives
    it a new output layer. What a learner with a digits set of their own
    starts from: a model trained on a large set of real voices.

    With ``rate``, the real folder is first resampled to ``rate`` Hz
    (:func:`resampled_folder`), so that the model is trained on the band the
    digits set has (an 8 kHz recording has nothing above 4 kHz: a model
    trained on 16 kHz speech has learnt to look there too).
    """
    folder = work / ("real_pretrain" if rate is None else f"real_pretrain_{rate // 1000}k")
    if rate is not None:
        data = resampled_folder(data, folder / "data", rate)
    split_dir, store, model = folder / "split", folder / "features" / "logmel", folder / "models" / args.model
    speechlib = [sys.executable, "-m", "speechlib"]
    if not (split_dir / "split.json").is_file():
        run([*speechlib, "split", "--data", str(data), "--out", str(split_dir), "--test-speakers",
             ",".join(test_speakers)], log)  # fmt: skip
    run([*speechlib, "featurize", "--split-dir", str(split_dir), "--out", str(store), "--no-progress"], log)
    heard = set()
    for name in ("train", "cv"):
        heard |= set(pd.read_csv(split_dir / f"{name}.csv", dtype=str)["speaker"])
    if heard & set(test_speakers):  # the split put a held-out speaker in training: the row would measure nothing
        sys.exit(f"{split_dir}: held-out speakers {sorted(heard & set(test_speakers))} are in train or cv")
    extra = ["--init_from", str(start)] if start is not None else []
    run([sys.executable, "train_keras.py", "--path_to_data", str(store), "--model", args.model, "--out", str(model),
         "--resume", *extra], log)  # fmt: skip
    return model / "model.keras"


def starting_point(model: Path, test: str = "synthetic_test") -> dict:
    """A starting model's own figures (its metrics.json): what it knew before fine-tuning.

    ``test`` names its test split in the keys (``<test>_accuracy``, ``<test>_clips``).
    """
    metrics = evaluate.load_metrics(model / "metrics.json")
    return {"model": metrics["model"], "train_clips": metrics["sizes"]["train"],
            f"{test}_accuracy": round(metrics["test"]["accuracy"], 4), f"{test}_clips": metrics["sizes"]["test"],
            "epochs_run": metrics["epochs_run"]}  # fmt: skip


INIT_FROM = {
    "scratch": None,
    "pretrained": "the synthetic default's model (12 Speech Commands labels: a new output layer for the digits)",
    "pretrained_digits": "a model of the ten digits trained on the synthetic default's digit clips",
    "pretrained_real": "a model of the 12 Speech Commands labels trained on the real folder's clips of every speaker "
    "but the held-out ones (itself pre-trained on the synthetic default): a new output layer for the digits",
    "pretrained_real_8k": "the same model of real speech trained on the real folder resampled to 8 kHz, the digits "
    "set's band: a new output layer for the digits",
    "pretrained_real_8k_head": "the same 8 kHz model of real speech, only its new output layer trained "
    f"(--head_only: the body frozen; --lr {HEAD_LR})",
}


def build_digits(data: Path, out: Path) -> dict[str, list[str]]:
    """Write the 8 kHz digits set into ``out``; return {speaker: [relpath, ...]}."""
    table = datasets.scan(data)
    clips = table[(table["kind"] == "clip") & table["word"].isin(DIGITS) & (table["status"] != "error")]
    clips = clips[clips["speaker"] != ""].sort_values("relpath")
    by_speaker: dict[str, list[str]] = {}
    done = out / ".complete"
    for row in clips.itertuples(index=False):
        take = len([r for r in by_speaker.get(row.speaker, []) if r.startswith(f"{row.word}/")])
        relpath = f"{row.word}/{row.speaker}-{take}.wav"
        by_speaker.setdefault(row.speaker, []).append(relpath)
        target = out / relpath
        if not done.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(target, audio.load(row.path, sample_rate=RATE), RATE, subtype="PCM_16")
    done.write_text("")
    return by_speaker


def held_out(by_speaker: dict[str, list[str]], min_clips: int) -> list[str]:
    """The speakers with the most clips (ties by id), until they hold ``min_clips`` clips."""
    chosen, total = [], 0
    for speaker in sorted(by_speaker, key=lambda s: (-len(by_speaker[s]), s)):
        if total >= min_clips:
            break
        chosen.append(speaker)
        total += len(by_speaker[speaker])
    return chosen


def shown(command: list[str]) -> str:
    """A command as the results record it: ``python`` for this interpreter, paths under the project relative."""
    return " ".join(command).replace(sys.executable, "python").replace(f"{REPO}{os.sep}", "")


def run(command: list[str], log: list[dict]) -> str:
    """Run one command in the project folder; record it (paths of this machine as placeholders) and its output."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    print(f"$ {shown(command)}", flush=True)
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    print(proc.stdout[-2500:], flush=True)
    if proc.returncode not in (0,):
        sys.exit(f"failed (exit {proc.returncode}): {shown(command)}\n{proc.stderr[-3000:]}")
    log.append({"command": shown(command), "tail": proc.stdout.strip().splitlines()[-3:]})
    return proc.stdout


def merged_with_earlier(result: dict) -> dict:
    """``result`` with the rows (and starting models, commands) of an earlier run of the same set it did not re-run.

    ``--variants`` measures some rows again; the others are kept from
    ``bench/results/own_data.json`` when that run had the same digits set and
    held-out speakers (the split, and so every row, is then the same); the
    result's ``variants_run`` lists the rows of this run.
    """
    result["variants_run"] = [row["variant"] for row in result["rows"]]
    for row in result["rows"]:  # each row says where it was measured (the report lists every machine)
        row.setdefault("machine", result["machine"])
    if not RESULTS.is_file():
        return result
    earlier = json.loads(RESULTS.read_text())
    same = all(earlier.get(key) == result[key] for key in ("data", "clips", "speakers", "test_speakers"))
    if not same:
        return result
    new = {row["variant"]: row for row in result["rows"]}
    rows = [new.pop(row["variant"], {"machine": earlier.get("machine"), **row}) for row in earlier["rows"]]
    rows += list(new.values())
    merged = {key: result[key] if result.get(key) is not None else earlier.get(key) for key in result}
    commands = earlier.get("commands", []) + [c for c in result["commands"] if c not in earlier.get("commands", [])]
    return {**merged, "rows": rows, "commands": commands}


def main(args: argparse.Namespace) -> int:
    """Build the digits set, run the command line on it, save the held-out accuracy."""
    data = args.data or config.real_data_dir()
    if data is None or not Path(data).is_dir():
        print(f"no real dataset folder: pass --data or set {DATA_ENV}; nothing to measure")
        return 0
    work = (args.work or config.project_home() / "work" / "own_data").resolve()
    digits, heldout = work / "digits8k", work / "heldout"
    by_speaker = build_digits(Path(data), digits)
    test_speakers = held_out(by_speaker, args.test_clips)
    for speaker in test_speakers:  # the held-out speakers' clips alone, for `speechlib evaluate`
        for relpath in by_speaker[speaker]:
            link = heldout / relpath
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(digits / relpath)
    speechlib = [sys.executable, "-m", "speechlib"]
    split_dir, store = work / "split", work / "features" / "logmel"
    log: list[dict] = []
    run([*speechlib, "data", "check", str(digits), "--speaker-pattern", SPEAKER_PATTERN], log)
    split_command = [*speechlib, "split", "--data", str(digits), "--out", str(split_dir), "--speaker-pattern",
                     SPEAKER_PATTERN, "--test-speakers", ",".join(test_speakers)]  # fmt: skip
    if not (split_dir / "split.json").is_file():
        run(split_command, log)
    else:  # made by an earlier run: recorded all the same, so the results list every command
        log.append({"command": shown(split_command), "tail": ["(the split of an earlier run)"]})
    run([*speechlib, "featurize", "--split-dir", str(split_dir), "--out", str(store), "--no-progress"], log)
    rows = []
    start = synthetic_bundle(args)
    wanted = set(args.variants or INIT_FROM)
    variants = [("scratch", [])] + ([("pretrained", ["--init_from", str(start)])] if start is not None else [])
    if args.init_from is None and "pretrained_digits" in wanted:  # the synthetic default's own digits
        variants.append(("pretrained_digits", ["--init_from", str(synthetic_digits_model(args, log))]))
    if args.init_from is None and "pretrained_real" in wanted:
        real = real_speech_model(args, Path(data), work, test_speakers, log, start)
        variants.append(("pretrained_real", ["--init_from", str(real)]))
    if args.init_from is None and wanted & {"pretrained_real_8k", "pretrained_real_8k_head"}:
        real = real_speech_model(args, Path(data), work, test_speakers, log, start, rate=RATE)
        variants.append(("pretrained_real_8k", ["--init_from", str(real)]))
        # a linear layer alone takes a larger step: at the default rate it is still underfit when cv stops it
        variants.append(("pretrained_real_8k_head", ["--init_from", str(real), "--head_only", "--lr", HEAD_LR]))
    for variant, extra in [(name, extra) for name, extra in variants if name in wanted]:
        model = work / "models" / f"{args.model}_{variant}"
        epochs = ["--epochs", str(args.epochs)] if args.epochs else []
        run([sys.executable, "train_keras.py", "--path_to_data", str(store), "--model", args.model, "--out",
             str(model), "--resume", *extra, *epochs], log)  # fmt: skip
        out = work / f"evaluate_heldout_{variant}"
        run([*speechlib, "evaluate", "--model", str(model), "--data", str(heldout), "--out", str(out)], log)
        metrics = evaluate.load_metrics(out / "metrics.json")
        trained = evaluate.load_metrics(model / "metrics.json")
        rows.append({
            "variant": variant,
            "model": trained["model"],
            "init_from": INIT_FROM.get(variant) if args.init_from is None else str(start),
            "epochs_run": trained["epochs_run"],
            **evaluate.accuracy_summary(metrics, "heldout"),
            "train_keras_test_accuracy": round(trained["test"]["accuracy"], 4),
            "cv_accuracy": round(trained["cv"]["accuracy"], 4),
        })  # fmt: skip
    if not rows:
        sys.exit(f"no row to measure: --variants {','.join(sorted(wanted))} needs the synthetic default's model")
    starts = {  # the starting models' own figures (a real model's test split: every clip of the held-out speakers)
        "synthetic_digits_model": (DIGITS_WORK / "models" / args.model, "synthetic_test"),
        "real_speech_model": (work / "real_pretrain" / "models" / args.model, "heldout_speakers"),
        "real_speech_model_8k": (work / "real_pretrain_8k" / "models" / args.model, "heldout_speakers"),
    }
    result = {
        "benchmark": "own_data",
        "data": f"digits zero-nine of {Path(data).name}, resampled to {RATE} Hz, named <speaker>-<take>.wav",
        "clips": sum(len(v) for v in by_speaker.values()),
        "speakers": len(by_speaker),
        "test_speakers": test_speakers,
        "sizes": trained["sizes"],
        "rows": rows,
        **{
            key: starting_point(model, test) if args.init_from is None and (model / "metrics.json").is_file() else None
            for key, (model, test) in starts.items()
        },
        "target_accuracy": TARGET_ACCURACY,
        "commands": [entry["command"].replace(str(work), "WORK").replace(str(data), "DATA") for entry in log],
        "machine": {"cores": os.cpu_count(), "cpu_model": cpu_model()},
    }
    result = merged_with_earlier(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        low, high = row["heldout_accuracy_ci95"]
        print(f"{row['variant']}: held-out speakers ({len(test_speakers)}, {row['heldout_clips']} clips): accuracy "
              f"{row['heldout_accuracy']:.4f} (95% CI {low:.4f}-{high:.4f})")  # fmt: skip
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
