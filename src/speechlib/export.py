"""Edge export: TFLite flat buffers (float, float16, full-integer int8) and LiteRT inference.

A bundle (``speechlib.inference``) is converted with TensorFlow's own
converter (``tf.lite.TFLiteConverter``, from a SavedModel of the Keras
model) and run with LiteRT (``ai_edge_litert.interpreter.Interpreter``),
the maintained TFLite interpreter, following the TensorFlow Lite
post-training quantization guide:

``float``
    float32 weights and activations, the Keras model as it is.
``float16``
    weights stored as float16 (half the file), computed in float32.
``int8``
    full-integer: int8 weights, activations, input and output, calibrated on
    a *representative dataset* of normalised training features
    (:func:`representative_features`, drawn from the training split only).

Two inputs
    The features-in export takes normalised log-mel (batch, frames, n_mels),
    what the Keras model takes; the device then computes the front end
    ``speechlib.features.logmel`` + ``features.normalize`` (and, for int8,
    quantizes with the input's scale and zero point, :class:`LiteRTModel`
    does it). ``waveform=True`` exports ``inference.waveform_model``
    instead: raw 16 kHz audio in, probabilities out, the log-mel computed
    inside by TFLite's RFFT; float and float16 only, because the RFFT has no
    int8 kernel (full-integer int8 is features-in).

Files
    :func:`export_tflite` writes ``<name>.tflite`` and a JSON sidecar
    ``<name>.tflite.json`` (input kind, quantization, the bundle it came
    from); :func:`default_path` names them beside the bundle
    (``model_float.tflite``, ``model_int8.tflite``, ``model_waveform_float16.tflite``).

Example
-------
>>> from speechlib import export, inference
>>> bundle = inference.load_bundle("data/work/synthetic/models/res8/model.keras")  # doctest: +SKIP
>>> path = export.export_tflite(bundle, quantize="int8", store="data/work/synthetic/features/logmel")  # doctest: +SKIP
>>> export.LiteRTModel(path).predict(X).argmax(axis=1)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ai_edge_litert.interpreter import Interpreter

from speechlib import config, features, inference
from speechlib._json import jsonable
from speechlib._stderr import redirected as _quiet_stderr
from speechlib.store import FeatureStore
from speechlib.stream import keras_scorer

__all__ = [
    "FORMATS",
    "QUANTIZATIONS",
    "LiteRTModel",
    "compare_formats",
    "convert",
    "default_path",
    "export_saved_model",
    "export_tflite",
    "limit_tensorflow_threads",
    "ms_per_clip",
    "representative_features",
]

FORMATS = ("tflite", "saved_model")
QUANTIZATIONS = ("float", "float16", "int8")
NUM_REPRESENTATIVE = 500  # training clips that calibrate int8 (the guide suggests a few hundred)
NUM_REPRESENTATIVE_SMALL = 64  # small mode
TIMING_CLIPS = 200  # single-clip calls timed per format (after TIMING_WARMUP)
TIMING_WARMUP = 10
SIDECAR_SUFFIX = ".json"  # model_int8.tflite -> model_int8.tflite.json


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def limit_tensorflow_threads(threads: int = 1) -> bool:
    """Run TensorFlow on ``threads`` threads (one core for latency figures); False when too late (already started)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow's runtime is already initialised in this process
        return False
    return True


def representative_features(
    store_path: str | Path, bundle: Any, *, n: int | None = None, seed: int = config.SEED
) -> np.ndarray:
    """Normalised features of ``n`` random clips of the store's *training* split, shape (n, frames, bins), float32.

    Parameters
    ----------
    store_path : str or Path
        The feature store the bundle was trained on (its ``train`` split).
    bundle : speechlib.inference.Bundle
        Its normalisation is applied; its feature kind and parameters must be the store's.
    n : int, optional
        Clips (default ``NUM_REPRESENTATIVE``, ``NUM_REPRESENTATIVE_SMALL`` in small mode).

    Raises
    ------
    ValueError
        The store holds other features than the bundle's.
    """
    fs = FeatureStore(store_path)
    if fs.kind != bundle.kind or features.resolve_params(fs.kind, **fs.params) != bundle.params:
        raise ValueError(f"{store_path} holds {fs.kind} features with other parameters than the model's: "
                         "pass the store the model was trained on (--data)")  # fmt: skip
    n = n or (NUM_REPRESENTATIVE_SMALL if config.is_small() else NUM_REPRESENTATIVE)
    X, _ = fs.open_split("train")
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(X.shape[0], size=min(n, X.shape[0]), replace=False))
    rows = np.stack([np.asarray(X[int(i)]) for i in index])
    return features.normalize(rows, bundle.normalization)


def _keras_to_saved_model(model: Any, folder: Path) -> Path:
    model.export(str(folder), format="tf_saved_model", verbose=False)
    return folder


def convert(
    bundle: Any, *, quantize: str = "float", representative: np.ndarray | None = None, waveform: bool = False
) -> bytes:
    """The TFLite flat buffer of a bundle's model.

    Parameters
    ----------
    bundle : speechlib.inference.Bundle
    quantize : {"float", "float16", "int8"}
    representative : np.ndarray, shape (n, frames, bins), float32, optional
        Normalised training features; required for ``"int8"``.
    waveform : bool
        Export the raw-waveform model (``inference.waveform_model``): input
        (1, CLIP_SAMPLES) float32, output probabilities. Not with ``"int8"``.

    Returns
    -------
    bytes
        The ``.tflite`` content.
    """
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r}: choose one of {', '.join(QUANTIZATIONS)}")
    if quantize == "int8" and waveform:
        raise ValueError("full-integer int8 takes features in: the log-mel front end's RFFT has no int8 kernel; "
                         "export --quantize int8 without --waveform and compute speechlib.features.logmel on "
                         "the device")  # fmt: skip
    if quantize == "int8" and representative is None:
        raise ValueError("int8 needs a representative dataset of training features (representative_features)")
    model = inference.waveform_model(bundle) if waveform else bundle.model
    with tempfile.TemporaryDirectory(prefix="speechlib-export-") as tmp:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(_keras_to_saved_model(model, Path(tmp) / "sm")))
        if quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            rows = np.asarray(representative, np.float32)

            def calibration():
                for row in rows:
                    yield [row[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = calibration
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        with _quiet_stderr():  # the converter's C++ notes (e.g. "fully_quantize: 0, ...") go to fd 2
            return converter.convert()


def default_path(bundle: Any, *, quantize: str = "float", waveform: bool = False) -> Path:
    """``<bundle folder>/<model>[_waveform]_<quantize>.tflite``, e.g. ``model_int8.tflite``."""
    stem = bundle.path.stem + ("_waveform" if waveform else "")
    return bundle.path.parent / f"{stem}_{quantize}.tflite"


def export_tflite(
    bundle: Any,
    out: str | Path | None = None,
    *,
    quantize: str = "float",
    waveform: bool = False,
    store: str | Path | None = None,
    representative: np.ndarray | None = None,
) -> Path:
    """Convert a bundle (:func:`convert`) and write ``out`` (``.tflite``) with its JSON sidecar.

    Parameters
    ----------
    bundle : speechlib.inference.Bundle
    out : str or Path, optional
        Default :func:`default_path`.
    quantize, waveform
        As :func:`convert`.
    store : str or Path, optional
        For int8: the feature store whose training split calibrates it
        (default: the store the bundle records as its ``data``).
    representative : np.ndarray, optional
        For int8: calibration features already at hand (instead of ``store``).

    Returns
    -------
    Path
        The ``.tflite`` file.
    """
    if quantize == "int8" and representative is None and not waveform:
        store = store or bundle.meta.get("data")
        if not store or not (Path(store) / "zarr.json").is_file():
            raise FileNotFoundError(f"int8 needs the training features the model was trained on; the bundle names "
                                    f"{store or 'no feature store'}: pass --data STORE")  # fmt: skip
        representative = representative_features(store, bundle)
    content = convert(bundle, quantize=quantize, representative=representative, waveform=waveform)
    out = Path(out) if out is not None else default_path(bundle, quantize=quantize, waveform=waveform)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_bytes(content)
    tmp.replace(out)
    meta = {
        "format": "tflite", "quantize": quantize, "input": "waveform" if waveform else "features",
        "output": "probabilities" if waveform else "logits", "bundle": str(bundle.path), "labels": bundle.labels,
        "input_shape": [bundle.meta["clip_samples"]] if waveform else bundle.meta["input_shape"],
        "representative_clips": 0 if representative is None else len(representative), "bytes": len(content),
    }  # fmt: skip
    Path(str(out) + SIDECAR_SUFFIX).write_text(json.dumps(jsonable(meta), indent=2) + "\n", encoding="utf-8")
    return out


def export_saved_model(bundle: Any, folder: str | Path | None = None) -> Path:
    """The bundle's Keras model as a TensorFlow SavedModel folder (default ``<bundle folder>/saved_model``)."""
    folder = Path(folder) if folder is not None else bundle.path.parent / "saved_model"
    return _keras_to_saved_model(bundle.model, folder)


class LiteRTModel:
    """A ``.tflite`` model run by LiteRT, one clip per call (as on a device).

    Parameters
    ----------
    path : str or Path
        A file written by :func:`export_tflite` (its sidecar says whether the
        output is logits or probabilities; without one, logits are assumed
        for features-in models).
    num_threads : int
        Interpreter threads (1: one core).

    Attributes
    ----------
    input_shape : tuple of int
        One input without the batch axis, e.g. (101, 40) or (16000,).
    quantized : bool
        True for an int8 input (inputs are quantized, outputs dequantized here).
    """

    def __init__(self, path: str | Path, *, num_threads: int = 1) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no TFLite model here; write one with `speechlib export`")
        sidecar = Path(str(self.path) + SIDECAR_SUFFIX)
        self.meta = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
        with _quiet_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self.input_shape = tuple(int(v) for v in self._in["shape"][1:])
        self.quantized = self._in["dtype"] == np.int8
        self.probabilities = self.meta.get("output") == "probabilities"

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        if self.quantized:
            scale, zero = self._in["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        self.interpreter.set_tensor(self._in["index"], x[None])
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._out["index"])[0]
        if self._out["dtype"] == np.int8:
            scale, zero = self._out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return np.asarray(y, np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities, shape (n, num_classes), float32, for inputs shape (n, *input_shape) float32."""
        X = np.asarray(X, np.float32)
        if X.shape[1:] != self.input_shape:
            raise ValueError(f"{self.path.name} takes inputs of shape (n, {', '.join(map(str, self.input_shape))}); "
                             f"got {X.shape}")  # fmt: skip
        out = np.stack([self._invoke(x) for x in X]) if len(X) else np.zeros((0, self._out["shape"][-1]), np.float32)
        return out if self.probabilities else _softmax(out)


def ms_per_clip(predict: Callable[[np.ndarray], Any], X: np.ndarray, *, clips: int = TIMING_CLIPS) -> float:
    """Median milliseconds of one call of ``predict`` on a single clip (batch of 1), after a warm-up."""
    X = np.asarray(X, np.float32)
    for i in range(TIMING_WARMUP):
        predict(X[i % len(X)][None])
    times = []
    for i in range(clips):
        x = X[i % len(X)][None]
        start = time.perf_counter()
        predict(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _saved_model_predict(folder: Path) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    serve = tf.saved_model.load(str(folder)).signatures["serving_default"]

    def predict(X: np.ndarray) -> np.ndarray:
        out = serve(tf.constant(np.asarray(X, np.float32)))
        return _softmax(np.asarray(next(iter(out.values()))))

    return predict


def compare_formats(
    bundle: Any,
    files: Mapping[str, str | Path],
    X: np.ndarray,
    y: np.ndarray,
    *,
    waveforms: np.ndarray | None = None,
    timing_clips: int = TIMING_CLIPS,
) -> pd.DataFrame:
    """Size, accuracy, agreement with Keras and single-clip latency of each exported format.

    Parameters
    ----------
    bundle : speechlib.inference.Bundle
        The reference: its Keras model on ``X``.
    files : mapping name -> path
        ``"keras"`` (the ``.keras`` file), ``"saved_model"`` (a folder of
        :func:`export_saved_model`) and ``.tflite`` files (:func:`export_tflite`).
    X : np.ndarray, shape (n, frames, bins), float32
        Normalised test features; ``y`` their label ids, shape (n,).
    waveforms : np.ndarray, shape (n, CLIP_SAMPLES), float32, optional
        The same clips as audio, for waveform-in exports (else those are skipped).
    timing_clips : int
        Single-clip calls timed per format.

    Returns
    -------
    pandas.DataFrame
        Index ``format``; ``bytes``, ``size_vs_float`` (of ``"tflite float"``
        when present), ``accuracy``, ``agreement`` (argmax equal to Keras'),
        ``max_abs_diff`` (probabilities), ``ms_per_clip``.
    """
    keras_predict = keras_scorer(bundle)
    reference = np.concatenate([keras_predict(X[i : i + 256]) for i in range(0, len(X), 256)])
    rows = []
    for name, path in files.items():
        path = Path(path)
        inputs = X
        if path.suffix == ".keras":
            predict = keras_predict
        elif path.is_dir():
            predict = _saved_model_predict(path)
        else:
            predict = LiteRTModel(path).predict
            if predict.__self__.input_shape != X.shape[1:]:
                if waveforms is None:
                    continue
                inputs = waveforms
        proba = np.concatenate([predict(inputs[i : i + 256]) for i in range(0, len(inputs), 256)])
        rows.append({"format": name, "bytes": _size(path), "accuracy": float((proba.argmax(1) == y).mean()),
                     "agreement": float((proba.argmax(1) == reference.argmax(1)).mean()),
                     "max_abs_diff": float(np.abs(proba - reference).max()),
                     "ms_per_clip": ms_per_clip(predict, inputs, clips=timing_clips)})  # fmt: skip
    table = pd.DataFrame(rows).set_index("format")
    base = next((n for n in table.index if "tflite" in n and "float" in n and "16" not in n), None)
    table.insert(1, "size_vs_float", table["bytes"] / table.loc[base, "bytes"] if base else np.nan)
    return table
