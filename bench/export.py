"""Benchmark: the final model in every edge format — file size, test accuracy, agreement with Keras, ms per clip.

The bundle (default: the final model trained on the course's dataset by
``train_keras.py`` / notebook 4) is exported as a SavedModel and as TFLite
float, float16 and full-integer int8 (calibrated on its store's training
split), plus the waveform-in float export; each is scored on the store's
test split (LiteRT for TFLite, one clip per call, one thread; Keras and the
SavedModel with TensorFlow limited to one thread). Run it on one core:

::

    taskset -c 0 python bench/export.py
    taskset -c 0 python bench/export.py --model data/work/synthetic/models/res8/model.keras

Targets (issue #15): int8 <= 30% of the float file, accuracy within 1 point
of float, argmax agreement >= 98%, int8 < 1 ms per clip on one core.
Results go to ``bench/results/export.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _machine import cpu_model  # bench/_machine.py (bench/ is on sys.path when run)

import speechlib  # noqa: F401  (TensorFlow starts quietly)
from speechlib import export, features, inference, pipeline, train
from speechlib.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "export.json"
TARGETS = {"int8_size_vs_float_max": 0.30, "int8_accuracy_drop_max": 0.01, "int8_agreement_min": 0.98,
           "int8_ms_per_clip_max": 1.0}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (see --help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="bundle (default: the course's final model)")
    parser.add_argument("--data", type=Path, default=None, help="its feature store (default: the bundle's)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    parser.add_argument("--timing_clips", type=int, default=export.TIMING_CLIPS, help="single-clip calls timed")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    one_thread = export.limit_tensorflow_threads(1)
    if args.model is None:
        store = pipeline.prepare(verbose=False).store
        args.model = train.default_out(store, train.DEFAULT_MODEL) / inference.MODEL_FILE
    bundle = inference.load_bundle(args.model)
    store = args.data or Path(bundle.meta["data"])
    started = time.perf_counter()
    folder = args.model.parent / "edge"
    files = {"keras": bundle.path, "saved_model": export.export_saved_model(bundle, folder / "saved_model")}
    for quantize in export.QUANTIZATIONS:
        files[f"tflite {quantize}"] = export.export_tflite(bundle, folder / f"model_{quantize}.tflite",
                                                          quantize=quantize, store=store)  # fmt: skip
    files["tflite waveform float"] = export.export_tflite(bundle, folder / "model_waveform_float.tflite", waveform=True)
    convert_seconds = time.perf_counter() - started
    X, y = FeatureStore(store).load_array("test")
    X = features.normalize(X, bundle.normalization)
    waveforms = train.sample_waveforms(store, split="test", n=len(y))
    table = export.compare_formats(bundle, files, X, y, waveforms=waveforms, timing_clips=args.timing_clips)
    print(table.round(4).to_string())
    int8, flt = table.loc["tflite int8"], table.loc["tflite float"]
    measured = {"int8_size_vs_float": round(float(int8["size_vs_float"]), 4),
                "int8_accuracy_drop": round(float(flt["accuracy"] - int8["accuracy"]), 4),
                "int8_agreement": round(float(int8["agreement"]), 4),
                "int8_ms_per_clip": round(float(int8["ms_per_clip"]), 3)}  # fmt: skip
    met = {"int8_size_vs_float": measured["int8_size_vs_float"] <= TARGETS["int8_size_vs_float_max"],
           "int8_accuracy_drop": measured["int8_accuracy_drop"] <= TARGETS["int8_accuracy_drop_max"],
           "int8_agreement": measured["int8_agreement"] >= TARGETS["int8_agreement_min"],
           "int8_ms_per_clip": measured["int8_ms_per_clip"] < TARGETS["int8_ms_per_clip_max"]}  # fmt: skip
    results = {
        "benchmark": "export",
        "command": "taskset -c 0 python bench/export.py",
        "model": bundle.meta.get("model_name", bundle.model.name), "test_clips": len(y),
        "formats": {name: {k: (round(float(v), 6)) for k, v in row.items()} for name, row in table.iterrows()},
        "measured": measured, "targets": TARGETS, "met": met, "convert_seconds": round(convert_seconds, 1),
        "machine": {"cores": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu_model": cpu_model(),
                    "tensorflow_threads_1": one_thread, "litert_threads": 1,
                    "load_average_end": [round(x, 2) for x in os.getloadavg()]},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({"measured": measured, "met": met}))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main(parse_args()))
