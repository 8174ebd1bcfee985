"""Benchmark: training speed of the final model against the original course's 28 M-parameter CNN, and inference.

Measures, in one run and on the same machine:

- training samples per second of the final model (Keras,
  ``speechlib.train.DEFAULT_MODEL`` by default: ``cnn2d``, the model notebook 3
  chose; log-mel input (101, 40)) and of the original course's final model
  (``models.build("course_cnn1d")`` at full width: 28.4 M parameters on the
  raw 16 kHz waveform), each compiled with Adam and the from-logits loss,
  warmed up, then timed with ``fit`` over batches of random inputs of the
  right shapes (the speed does not depend on the values);
- the ratio of the two per sample (target: the final model at least 20x faster);
- inference milliseconds per clip, wav file to label, batch size 1, every
  thread pinned to one core: ``speechlib.inference.Predictor.predict_files``
  (decode, fit to one second, log-mel, normalise, model, softmax), with the
  model call alone (``evaluate.time_inference``) beside it;
- the machine (cores, CPU model, load average before and after: the figures
  are only comparable between runs on an idle machine).

With ``--metrics`` / ``--course_metrics`` (a ``metrics.json`` written by
train_keras.py or train_tensorflow.py) the test accuracy of each model is
recorded too. Nothing is asserted: the figures are printed and saved to
``bench/results/train.json``.

Examples
--------
::

    python bench/train.py                     # 8 timed batches of 32 per model
    python bench/train.py --quick             # 2 timed batches: a smoke test
    python bench/train.py --epochs 3 --batches 16 --metrics data/work/synthetic/models/res8/metrics.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _machine import cpu_model  # bench/_machine.py (bench/ is on sys.path when run)

from speechlib import __version__, config
from speechlib.train import DEFAULT_MODEL  # the final model (notebook 3's choice), as train_keras.py trains it

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "train.json"
COURSE_MODEL = "course_cnn1d"  # the original course's raw-waveform CNN, full width: 28.4 M parameters
TARGET_SPEEDUP = 20.0  # final model at least 20x faster per training sample


def machine() -> dict:
    """Cores, CPU model, load average and library versions of this machine."""
    import keras
    import tensorflow as tf

    model = cpu_model()
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "speechlib": __version__,
    }


def training_speed(name: str, *, batch_size: int, batches: int, epochs: int, seed: int) -> dict:
    """Samples per second of ``fit`` on random inputs for the registered model ``name``.

    One untimed ``train_on_batch`` (tracing, allocation), then ``epochs``
    passes of ``fit`` over ``batches`` batches, each pass timed; the median
    pass gives the rate.
    """
    import keras

    from speechlib import models

    keras.utils.set_random_seed(seed)
    model = models.build(name)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    shape = model.input_shape[1:]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batches * batch_size, *shape)).astype(np.float32)
    y = rng.integers(0, 12, batches * batch_size).astype(np.int32)
    model.train_on_batch(X[:batch_size], y[:batch_size])  # warm-up: tracing and first allocations
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(X, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        seconds.append(time.perf_counter() - start)
    per_pass = statistics.median(seconds)
    result = {
        "model": name,
        "params": models.count_params(model, trainable_only=True),
        "input_shape": list(shape),
        "batch_size": batch_size,
        "samples_timed": batches * batch_size * epochs,
        "seconds_per_pass": [round(s, 3) for s in seconds],
        "samples_per_s": round(batches * batch_size / per_pass, 2),
        "ms_per_sample": round(1000.0 * per_pass / (batches * batch_size), 3),
    }
    print(f"{name}: {result['params']:,} parameters, {result['samples_per_s']:.1f} training samples/s "
          f"({result['ms_per_sample']:.1f} ms per sample, batch {batch_size})")  # fmt: skip
    return result


def a_wav_file(folder: Path) -> Path:
    """A real clip of ``SPEECHLIB_REAL_DATA`` when set, else one second of a synthetic tone written to ``folder``."""
    real = config.real_data_dir()
    if real is not None:
        for path in sorted(real.glob("yes/*.wav"))[:1]:
            return path
    t = np.arange(config.CLIP_SAMPLES) / config.SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t) * np.hanning(config.CLIP_SAMPLES)).astype(np.float32)
    path = folder / "tone.wav"
    sf.write(path, tone, config.SAMPLE_RATE, subtype=config.SAMPLE_SUBTYPE)
    return path


def inference_speed(name: str, *, bundle_path: Path | None, repeats: int, folder: Path) -> dict:
    """Milliseconds per clip, wav file to label, batch size 1, on one core (median of ``repeats``)."""
    from speechlib import evaluate, features, inference, models

    if bundle_path is not None:
        bundle = inference.load_bundle(bundle_path)
    else:  # an untrained model of the same architecture: inference time does not depend on the weights
        params = features.resolve_params("logmel")
        bins = int(params["n_mels"])
        bundle = inference.save_bundle(
            models.build(name), folder / "model.keras", kind="logmel", params=params, labels=config.KAGGLE12_LABELS,
            normalization={"mean": np.zeros(bins, np.float32), "std": np.ones(bins, np.float32)},
        )  # fmt: skip
    predictor = inference.Predictor(bundle, batch_size=1)
    wav = a_wav_file(folder)
    times = []
    with evaluate.pinned_to_one_core() as core:
        for _ in range(3):  # warm-up
            predictor.predict_files([wav])
        for _ in range(repeats):
            start = time.perf_counter()
            result = predictor.predict_files([wav])
            times.append(time.perf_counter() - start)
    if not result[0]["ok"]:
        raise RuntimeError(f"inference on {wav} failed: {result[0]['error']}")
    model_ms = evaluate.time_inference(bundle.model, predictor.features([sf.read(wav, dtype="float32")[0]])[0])
    out = {
        "model": name,
        "bundle": str(bundle_path) if bundle_path else "untrained (same architecture)",
        "wav": f"{wav.parent.name}/{wav.name}" if wav.parent.name == "yes" else "a synthetic tone",
        "core": core,
        "repeats": repeats,
        "ms_per_clip_wav_to_label": round(1000.0 * statistics.median(times), 2),
        "ms_per_clip_model_only": round(model_ms, 2),
    }
    print(f"inference {name}: {out['ms_per_clip_wav_to_label']:.2f} ms per clip wav -> label "
          f"(model alone {out['ms_per_clip_model_only']:.2f} ms), batch 1, one core")  # fmt: skip
    return out


def accuracy_of(path: str | None) -> dict | None:
    """Test (and cv) accuracy from a metrics.json of train_keras.py / train_tensorflow.py."""
    if not path:
        return None
    from speechlib import evaluate

    metrics = evaluate.load_metrics(path)
    test = metrics.get("test", metrics)
    return {"metrics": str(path), "test_accuracy": test.get("accuracy"),
            "cv_accuracy": metrics.get("cv", {}).get("accuracy"),
            "data": Path(metrics.get("data") or "").name}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"the final model (speechlib.models name; default {DEFAULT_MODEL})"
    )
    parser.add_argument("--batch_size", type=int, default=32, help="training batch size of both models")
    parser.add_argument("--batches", type=int, default=8, help="batches per timed pass")
    parser.add_argument("--epochs", type=int, default=1, help="timed passes over the batches (median reported)")
    parser.add_argument("--repeats", type=int, default=50, help="timed inference calls")
    parser.add_argument("--quick", action="store_true", help="2 batches, 1 pass, 10 inference calls: a smoke test")
    parser.add_argument("--bundle", type=Path, help="a trained model.keras for the inference timing (optional)")
    parser.add_argument("--metrics", help="metrics.json of the trained final model (its accuracy is recorded)")
    parser.add_argument("--course_metrics", help="metrics.json of a trained course_cnn1d (optional)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--seed", type=int, default=config.SEED)
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.epochs, args.repeats = 2, 1, 10

    info = machine()
    print(f"machine: {info['cores']} cores, {info['cpu_model']}, load average {info['load_average']}")
    final = training_speed(args.model, batch_size=args.batch_size, batches=args.batches, epochs=args.epochs,
                           seed=args.seed)  # fmt: skip
    course = training_speed(COURSE_MODEL, batch_size=args.batch_size, batches=args.batches, epochs=args.epochs,
                            seed=args.seed)  # fmt: skip
    speedup = final["samples_per_s"] / course["samples_per_s"]
    print(f"{args.model} trains {speedup:.1f}x faster per sample than {COURSE_MODEL} (target {TARGET_SPEEDUP:g}x)")
    with tempfile.TemporaryDirectory() as tmp:
        infer = inference_speed(args.model, bundle_path=args.bundle, repeats=args.repeats, folder=Path(tmp))
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results = {
        "benchmark": "train",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "training": {"final": final, "course": course},
        "speedup_per_sample": round(speedup, 2),
        "target_speedup": TARGET_SPEEDUP,
        "target_met": bool(speedup >= TARGET_SPEEDUP),
        "inference": infer,
        "accuracy": {"final": accuracy_of(args.metrics), "course": accuracy_of(args.course_metrics)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"saved {args.out}")
    return results


if __name__ == "__main__":
    main()
