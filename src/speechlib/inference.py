"""Use a trained model: the saved bundle, predictions on wav files, the raw-waveform export.

The bundle
----------
A trained model is saved as two files side by side:

``model.keras``
    the Keras model (log-mel in, logits out), Keras' native format;
``model.json``
    everything inference needs to rebuild the exact training features: the
    feature kind and every parameter, the normalisation mean/std (fitted on
    the train split), the label list, the task, the clip length and how a
    clip is padded, and the speechlib version that trained it.

:func:`save_bundle` writes them, :func:`load_bundle` reads them back, and
:class:`Predictor` turns wav files or waveforms into probabilities along the
training path: ``audio.load`` -> ``audio.fix_length(position="center")`` ->
``features.compute_batch`` -> ``features.normalize`` -> model -> softmax.

The raw-waveform model
----------------------
:func:`waveform_model` wraps the trained model into one Keras model that takes
raw 16 kHz audio, shape ``(CLIP_SAMPLES,)`` float32 in [-1, 1], and returns
class probabilities: a ``speechlib.models.LogMel`` layer computes the log-mel spectrogram
with ``tf.signal`` exactly as ``speechlib.features.logmel`` does (same
centred zero padding, periodic Hann window of ``win_length`` samples,
``n_fft``-point real FFT, the same librosa mel basis passed in as a constant,
natural log with the same offset), then the training normalisation, the
model and a softmax. :func:`export_waveform_model` saves it as ``.keras``
(and, optionally, as a TensorFlow SavedModel for serving);
:func:`check_waveform_model` measures its agreement with the two-step path.

Example
-------
>>> from speechlib import inference
>>> predictor = inference.Predictor.load("data/work/synthetic/models/ds_cnn_m/model.keras")  # doctest: +SKIP
>>> predictor.predict_files(["yes.wav"], top_k=3)  # doctest: +SKIP
[{'path': 'yes.wav', 'ok': True, 'label': 'yes', 'top': [('yes', 0.98), ...], 'error': ''}]
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from speechlib import __version__, audio, config, datasets, evaluate, features, models
from speechlib._files import check_replaceable_csv
from speechlib._json import jsonable as _jsonable

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "Predictor",
    "check_waveform_model",
    "export_waveform_model",
    "load_bundle",
    "save_bundle",
    "waveform_model",
]

BUNDLE_FORMAT = "speechlib-model"
BUNDLE_FORMAT_VERSION = 1
MODEL_FILE = "model.keras"  # default file name of a bundle's model inside a folder
WAVEFORM_FILE = "model_waveform.keras"  # default file name of the raw-waveform export
PAD_POSITION = "center"  # how clips shorter or longer than CLIP_SAMPLES are fitted, in training and inference
AGREEMENT_TOLERANCE = 1e-3  # max |p_waveform - p_two_step| accepted by check_waveform_model


def _sidecar(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def _model_path(path: str | Path) -> Path:
    """``path`` itself for a ``.keras`` file, ``path/model.keras`` for a folder."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() or path.suffix != ".keras" else path


@dataclasses.dataclass
class Bundle:
    """A trained model and the description of its input (see the module docstring).

    Attributes
    ----------
    model : keras.Model
        Log-mel (or other feature) in, logits out.
    meta : dict
        ``kind``, ``params``, ``normalization`` (``mean``, ``std`` lists),
        ``labels``, ``task``, ``sample_rate``, ``clip_samples``,
        ``pad_position``, ``input_shape``, ``speechlib_version``, ...
    path : Path or None
        The ``.keras`` file it was loaded from or saved to.
    """

    model: Any
    meta: dict
    path: Path | None = None

    @property
    def labels(self) -> list[str]:
        """Class names, indexed by the model's output."""
        return list(self.meta["labels"])

    @property
    def kind(self) -> str:
        """Feature kind, e.g. ``"logmel"``."""
        return self.meta["kind"]

    @property
    def params(self) -> dict:
        """Every feature parameter."""
        return dict(self.meta["params"])

    @property
    def normalization(self) -> dict:
        """``{"mean": ndarray, "std": ndarray}``, float32, shape (bins,)."""
        norm = self.meta["normalization"]
        return {"mean": np.asarray(norm["mean"], np.float32), "std": np.asarray(norm["std"], np.float32)}


def save_bundle(
    model: Any,
    path: str | Path,
    *,
    kind: str,
    params: dict,
    normalization: dict,
    labels: Sequence[str],
    task: str = "kaggle12",
    **extra: Any,
) -> Bundle:
    """Save ``model`` as ``path`` (``.keras``) with its JSON sidecar (``path`` with suffix ``.json``).

    Parameters
    ----------
    model : keras.Model
        The trained model (features in, logits out).
    path : str or Path
        A ``.keras`` file, or a folder (then ``<folder>/model.keras``).
    kind, params : str, dict
        Feature kind and every parameter the model was trained on
        (``FeatureStore.kind`` / ``.params``).
    normalization : dict
        ``mean`` and ``std`` per band, fitted on the train split.
    labels : sequence of str
        Class names in output order.
    task : str
        Task of the split (``kaggle12``, ``all`` or a custom word list).
    **extra
        More JSON-serialisable fields (model name, metrics, training arguments).

    Returns
    -------
    Bundle
    """
    path = _model_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = features.resolve_params(kind, **params)
    meta = _jsonable(
        {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "kind": kind,
            "params": params,
            "normalization": {"mean": normalization["mean"], "std": normalization["std"]},
            "labels": list(labels),
            "task": task,
            "sample_rate": int(params.get("sample_rate", config.SAMPLE_RATE)),
            "clip_samples": config.CLIP_SAMPLES,
            "pad_position": PAD_POSITION,
            "input_shape": list(features.output_shape(kind, **params)),
            "speechlib_version": __version__,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **extra,
        }
    )
    model.save(path)
    _sidecar(path).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return Bundle(model=model, meta=meta, path=path)


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle written by :func:`save_bundle` (the ``.keras`` file or its folder).

    Raises
    ------
    FileNotFoundError
        The model or its ``.json`` sidecar is missing (the message says which).
    ValueError
        The sidecar is not a speechlib model description.
    """
    path = _model_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model file here; pass the model.keras written by train_keras.py")
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise FileNotFoundError(
            f"{sidecar} not found: {path.name} has no description of its input features; "
            "save models with speechlib.inference.save_bundle (train_keras.py does)"
        )
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    if meta.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{sidecar} is not a speechlib model description (format {meta.get('format')!r})")
    model = models.load_model(path)  # the custom layers registered first, in any process
    return Bundle(model=model, meta=meta, path=path)


class Predictor:
    """Probabilities for wav files or waveforms, computed along the training path.

    Parameters
    ----------
    bundle : Bundle
        From :func:`load_bundle` or :func:`save_bundle`.
    batch_size : int
        Clips per forward pass.
    """

    def __init__(self, bundle: Bundle, *, batch_size: int = 128) -> None:
        self.bundle = bundle
        self.batch_size = batch_size
        self.labels = bundle.labels
        self._norm = bundle.normalization

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> Predictor:
        """A predictor for the bundle at ``path``."""
        return cls(load_bundle(path), **kwargs)

    def features(self, waveforms: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Normalised features of waveforms, shape (N, *input_shape), float32.

        Each waveform (any length, float32 in [-1, 1] at the bundle's sample
        rate) is padded or trimmed to ``clip_samples`` around its centre,
        exactly as the featurizer did in training.
        """
        meta = self.bundle.meta
        clips = np.stack(
            [
                audio.fix_length(np.asarray(w, np.float32), length=meta["clip_samples"], position=meta["pad_position"])
                for w in waveforms
            ]
        )
        X = features.compute_batch(clips, self.bundle.kind, **self.bundle.params)
        return features.normalize(X, self._norm)

    def predict_waveforms(self, waveforms: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Class probabilities, shape (N, num_classes), float32 (rows sum to 1)."""
        import keras

        if len(waveforms) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        out = []
        for start in range(0, len(waveforms), self.batch_size):
            X = self.features(waveforms[start : start + self.batch_size])
            logits = self.bundle.model.predict_on_batch(X)
            out.append(np.asarray(keras.ops.softmax(logits, axis=-1), np.float32))
        return np.concatenate(out)

    def _top(self, proba: np.ndarray, top_k: int) -> list[tuple[str, float]]:
        order = np.argsort(-proba)[: max(1, top_k)]
        return [(self.labels[i], float(proba[i])) for i in order]

    def predict_files(self, paths: Iterable[str | Path], *, top_k: int = 3) -> list[dict]:
        """Top-k labels for each file; unreadable files give an error entry instead of stopping.

        Parameters
        ----------
        paths : iterable of str or Path
            Audio files (any rate or channel count soundfile reads: converted like training clips).
        top_k : int
            Labels returned per file, most probable first.

        Returns
        -------
        list of dict, one per path in order
            ``path`` (str), ``ok`` (bool), ``label`` (str, "" on error),
            ``probability`` (float), ``top`` (list of (label, probability)),
            ``error`` (str, "" when ok: ``"<path>: <reason>"``), ``reason`` (str,
            "" when ok: the sentence of :func:`speechlib.audio.inspect`, the
            same that ``speechlib data check`` gives for that file).
        """
        results: list[dict] = []
        paths = [str(p) for p in paths]
        for start in range(0, len(paths), self.batch_size):
            chunk = paths[start : start + self.batch_size]
            waveforms, good, entries = [], [], []
            for path in chunk:
                entry = {"path": path, "ok": False, "label": "", "probability": 0.0, "top": [], "error": ""}
                entry["reason"] = ""
                try:
                    waveforms.append(audio.load(path, sample_rate=self.bundle.meta["sample_rate"]))
                    good.append(entry)
                except audio.AudioError as err:  # every problem of a file: the same verdict as `data check`
                    entry.update(error=str(err), reason=err.reason)
                entries.append(entry)
            proba = self.predict_waveforms(waveforms)
            for entry, p in zip(good, proba, strict=True):
                top = self._top(p, top_k)
                entry.update(ok=True, label=top[0][0], probability=top[0][1], top=top)
            results.extend(entries)
        return results


# --- The raw-waveform model ----------------------------------------------------------------------


def __getattr__(name: str) -> Any:
    if name == "LogMel":  # the layer class, in speechlib.models, built on first access
        return models.LogMel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def waveform_model(bundle: Bundle) -> Any:
    """One Keras model: raw audio (batch, CLIP_SAMPLES) float32 in [-1, 1] -> probabilities (batch, num_classes).

    Log-mel (``speechlib.models.LogMel``) and the training normalisation inside, then the
    bundle's model and a softmax. Only log-mel bundles can be exported.
    """
    import keras

    if bundle.kind != "logmel":
        raise ValueError(f"only log-mel models have a raw-waveform export; this model uses {bundle.kind!r} features")
    norm = bundle.normalization
    inputs = keras.Input(shape=(bundle.meta["clip_samples"],), name="waveform", dtype="float32")
    x = models.LogMel(bundle.params, mean=norm["mean"], std=norm["std"], name="logmel")(inputs)
    logits = bundle.model(x)
    outputs = keras.layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, outputs, name=f"{bundle.model.name}_waveform")


def export_waveform_model(bundle: Bundle, path: str | Path, *, saved_model: str | Path | None = None) -> Any:
    """Build :func:`waveform_model`, save it as ``path`` (``.keras``) and, optionally, as a SavedModel.

    The ``.json`` sidecar beside ``path`` repeats the bundle's description
    with ``"input": "waveform"``. Returns the Keras model.
    """
    model = waveform_model(bundle)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    meta = {**bundle.meta, "input": "waveform", "output": "probabilities", "input_shape": [bundle.meta["clip_samples"]]}
    _sidecar(path).write_text(json.dumps(_jsonable(meta), indent=2) + "\n", encoding="utf-8")
    if saved_model is not None:
        model.export(str(saved_model), format="tf_saved_model", verbose=False)
    return model


def check_waveform_model(
    wave_model: Any, predictor: Predictor, waveforms: np.ndarray, *, tolerance: float = AGREEMENT_TOLERANCE
) -> dict:
    """Compare the raw-waveform model with the two-step path (numpy features, then the model).

    Parameters
    ----------
    wave_model : keras.Model
        From :func:`waveform_model` or loaded from its ``.keras`` file.
    predictor : Predictor
        The two-step path of the same bundle.
    waveforms : np.ndarray, shape (N, CLIP_SAMPLES), float32
    tolerance : float
        Largest accepted absolute difference of a probability.

    Returns
    -------
    dict
        ``max_abs_diff`` (float), ``argmax_agreement`` (fraction of clips with
        the same top label), ``n`` and ``ok`` (both within tolerance and every argmax equal).
    """
    waveforms = np.asarray(waveforms, np.float32)
    two_step = predictor.predict_waveforms(waveforms)
    one_step = np.asarray(wave_model.predict(waveforms, batch_size=predictor.batch_size, verbose=0), np.float32)
    diff = float(np.abs(one_step - two_step).max()) if len(waveforms) else 0.0
    agree = float((one_step.argmax(1) == two_step.argmax(1)).mean()) if len(waveforms) else 1.0
    ok = bool(diff <= tolerance and agree == 1.0)
    return {"n": len(waveforms), "max_abs_diff": diff, "argmax_agreement": agree, "ok": ok}


# --- Whole folders: evaluation and the Kaggle submission -----------------------------------------

SUBMISSION_FALLBACK = config.SILENCE_LABEL  # label written for a file that cannot be read (see write_submission)
FOLDER_CHUNK = 1024  # files read and predicted per step: bounds memory on folders of any size


def label_for(word: str, kind: str, labels: Sequence[str]) -> str | None:
    """The model label of a scanned file, or None when the model has no label for it.

    A ``silence`` file (the test set's ``_silence_`` folder) -> ``silence``;
    a word the model knows -> itself; any other word -> ``unknown`` when the
    model has that class (the test set's ``_unknown_`` words included).
    """
    if kind == "silence":
        return config.SILENCE_LABEL if config.SILENCE_LABEL in labels else None
    if word in labels and word not in (config.SILENCE_LABEL, config.UNKNOWN_LABEL):
        return word
    return config.UNKNOWN_LABEL if config.UNKNOWN_LABEL in labels else None


def _predict_paths(predictor: Predictor, paths: Sequence[str], *, top_k: int, progress: bool, desc: str):
    """Yield :meth:`Predictor.predict_files` results chunk by chunk, with a tqdm bar."""
    with tqdm(total=len(paths), desc=desc, unit="file", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(paths), FOLDER_CHUNK):
            chunk = paths[start : start + FOLDER_CHUNK]
            yield from predictor.predict_files(chunk, top_k=top_k)
            bar.update(len(chunk))


EVALUATE_FILES = ("metrics.json", "predictions.csv", "confusion_matrix.png")  # what `speechlib evaluate` writes
SUBMISSION_HEADER = ("fname", "label")


def _check_evaluate_out(out_dir: Path) -> None:
    """Refuse an evaluation folder that holds anything but an earlier evaluation's files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} is a file: pass a new or empty folder as --out for the evaluation")
    if out_dir.is_dir():
        others = sorted(p.name for p in out_dir.iterdir() if p.name not in EVALUATE_FILES)
        if others:
            raise FileExistsError(
                f"{out_dir} holds files that `speechlib evaluate` did not write ({', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}): nothing was written; pass a new or empty folder as --out"
            )


def wav_entries(data: Path) -> list[Path]:
    """Every entry under ``data`` whose name ends in ``.wav``, sorted.

    Files, symbolic links (broken ones too), and folders or other non-regular
    entries so named (not descended into): each is a file the user expects a
    verdict on. Hidden names (``.*``) are skipped.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(data):
        named = [d for d in dirnames if d.lower().endswith(config.AUDIO_SUFFIXES)]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in named)
        found += [Path(dirpath, n) for n in [*filenames, *named] if n.lower().endswith(config.AUDIO_SUFFIXES)]
    return sorted(p for p in found if not p.name.startswith("."))


def _check_submission_out(out: Path) -> None:
    """Refuse to replace anything but an earlier submission (a CSV whose header is ``fname,label``)."""
    check_replaceable_csv(out, SUBMISSION_HEADER, what="a submission", flag="--out", example="submission.csv")


def evaluate_folder(
    model_path: str | Path, data: str | Path, out_dir: str | Path | None = None, *, progress: bool = True
) -> dict:
    """Evaluate a saved model on every clip of a dataset folder, whatever its split.

    The folder is read with ``speechlib.datasets.scan`` (Speech Commands,
    the official test-set layout or one folder per class). Labels are mapped
    to the model's (:func:`label_for`). Files the scanner marks as errors,
    and files that fail to load, are reported and skipped; background-noise
    recordings are not clips and are left out.

    Writes into ``out_dir`` (default ``<model folder>/evaluate_<data folder name>``),
    which must be new, empty, or hold only these files from an earlier run:
    ``metrics.json`` (``speechlib.evaluate.classification_metrics`` plus
    ``skipped`` files with reasons, ``model``, ``data``) and ``predictions.csv``
    (path, label, predicted, probability); ``speechlib evaluate`` adds
    ``confusion_matrix.png`` (``speechlib.plot.confusion_matrix``).

    Returns
    -------
    dict
        The metrics written to ``metrics.json``, with ``out_dir`` added.

    Raises
    ------
    FileExistsError
        ``out_dir`` is a file, or a folder holding other files (nothing is written).
    """
    predictor = Predictor.load(model_path)
    labels = predictor.labels
    data = Path(data)
    out_dir = Path(out_dir) if out_dir is not None else predictor.bundle.path.parent / f"evaluate_{data.resolve().name}"
    _check_evaluate_out(out_dir)
    clips, skipped = _labelled_clips(data, labels)
    predictions, failed = _predict_clips(predictor, clips, progress=progress)
    metrics = evaluate.classification_metrics(predictions["label"], predictions["predicted"], labels)
    metrics.update(model=str(predictor.bundle.path), data=str(data.resolve()), skipped=skipped + failed)
    _write_evaluation(out_dir, metrics, predictions)
    return {**metrics, "out_dir": str(out_dir)}


def _labelled_clips(data: Path, labels: Sequence[str]) -> tuple[Any, list[dict]]:
    """The scanned clips of ``data`` with a label of the model, and the files skipped (path, reason)."""
    table = datasets.scan(data)
    skipped = [
        {"path": r.path, "reason": r.reason} for r in table.itertuples() if r.status == "error" and r.kind != "other"
    ]
    clips = table[(table["status"] != "error") & table["kind"].isin(["clip", "silence"])].copy()
    clips["label"] = [label_for(w, k, labels) for w, k in zip(clips["word"], clips["kind"], strict=True)]
    no_label = clips["label"].isna()
    skipped += [{"path": p, "reason": "no label of the model for this word"} for p in clips.loc[no_label, "path"]]
    clips = clips[~no_label]
    if clips.empty:
        raise FileNotFoundError(
            f"{data}: no readable clips with a label of the model; check it with `speechlib data check {data}`"
        )
    return clips, skipped


def _predict_clips(predictor: Predictor, clips: Any, *, progress: bool) -> tuple[Any, list[dict]]:
    """The predictions table (path, label, predicted, probability), and the clips that failed to load."""
    rows, failed = [], []
    for result, label in zip(
        _predict_paths(predictor, clips["path"].tolist(), top_k=1, progress=progress, desc="evaluate"),
        clips["label"],
        strict=True,
    ):
        if not result["ok"]:
            failed.append({"path": result["path"], "reason": result["error"]})
            continue
        rows.append(
            {"path": result["path"], "label": label, "predicted": result["label"], "probability": result["probability"]}
        )
    return pd.DataFrame(rows, columns=["path", "label", "predicted", "probability"]), failed


def _write_evaluation(out_dir: Path, metrics: dict, predictions: Any) -> None:
    """Write ``metrics.json`` and ``predictions.csv`` (the figure is the caller's: ``speechlib evaluate`` draws it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    evaluate.save_metrics(out_dir / "metrics.json", metrics)
    predictions.to_csv(out_dir / "predictions.csv", index=False)


def write_submission(
    model_path: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    fallback: str = SUBMISSION_FALLBACK,
    progress: bool = True,
) -> dict:
    """Write a Kaggle submission (``fname,label``) for every ``.wav`` under ``data``, streaming.

    Files are read and predicted ``FOLDER_CHUNK`` at a time and their rows
    written at once, so memory does not grow with the number of files
    (Kaggle's test set has 158,538). ``fname`` is the path relative to
    ``data`` (the bare file name for Kaggle's flat ``test/audio`` folder).

    Kaggle scores one row per file, so every ``.wav`` entry (:func:`wav_entries`:
    broken symbolic links and folders named like a WAV file included) gets a
    row: its prediction, or ``fallback`` (``silence``: an unreadable or empty
    file holds no word, and silence is the label that claims none) for an
    entry that cannot be read. Those are listed in the report with the sentence
    of :func:`speechlib.audio.inspect`. ``out`` is written beside itself and
    renamed into place; it may replace only an earlier submission.

    Returns
    -------
    dict
        ``entries`` (int, ``.wav`` entries found), ``rows`` (int, rows written:
        one per entry), ``predicted`` (int), ``failed`` (list of {"fname",
        "reason"}), ``out`` (str). ``predicted + len(failed) == rows == entries``.

    Raises
    ------
    FileNotFoundError
        ``data`` is not a folder, or holds no ``.wav`` entry.
    FileExistsError
        ``out`` is a folder, or a file that is not a submission.
    """
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"{data} is not a folder: pass the folder of test clips (e.g. test/audio)")
    out = Path(out)
    _check_submission_out(out)
    predictor = Predictor.load(model_path)
    if fallback not in predictor.labels:
        raise ValueError(f"fallback label {fallback!r} is not a label of the model {predictor.labels}")
    paths = [str(p) for p in wav_entries(data)]
    if not paths:
        raise FileNotFoundError(f"{data}: no .wav files found; pass the folder of test clips (e.g. test/audio)")
    rows, failed = _write_submission_csv(predictor, paths, data, out, fallback=fallback, progress=progress)
    return {"entries": len(paths), "rows": rows, "predicted": rows - len(failed), "failed": failed, "out": str(out)}


def _write_submission_csv(predictor: Predictor, paths: list[str], data: Path, out: Path, *, fallback: str,
                          progress: bool) -> tuple[int, list[dict]]:  # fmt: skip
    """Stream one row per path into a file beside ``out``, renamed into place; the rows and the failed entries."""
    out.parent.mkdir(parents=True, exist_ok=True)
    failed, rows = [], 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with open(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(SUBMISSION_HEADER)
            for result in _predict_paths(predictor, paths, top_k=1, progress=progress, desc="submission"):
                fname = Path(result["path"]).relative_to(data).as_posix()
                if not result["ok"]:
                    failed.append({"fname": fname, "reason": result["reason"]})
                writer.writerow([fname, result["label"] if result["ok"] else fallback])
                rows += 1
        tmp.chmod(0o666 & ~_umask())
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows, failed


def _umask() -> int:
    """The process's file-creation mask (read by setting it, then restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
