"""speechlib: spoken-word (keyword) classification on Speech Commands.

The library of the speechlib course; one module per stage of the pipeline.
Import modules explicitly (``from speechlib import features``); nothing heavy
(TensorFlow, Spark) is imported until it is used.

Data
    config       constants: sample rate, word lists, the 12-class task, paths, small mode
    datasets     the embedded synthetic dataset, the real download, scanning and checking
    hashsplit    the dataset's speaker hash rule
    split        speaker-disjoint manifests, silence from noise, the sample set, leakage checks
    manifest     the manifest schema (columns, dtypes, names) and its read / write
    stats        per-clip level, duration and word position; dataset tables

Features
    audio        decode, resample, mono, pad / trim
    features     log-mel, MFCC, STFT, FFT, tempogram, chroma, waveform; normalisation
    augment      noise at an SNR from a split's own noise, shift, stretch, pitch, gain, SpecAugment
    store        the zarr feature store (bcolz compatible), lazy batches
    featurize    manifests -> feature store, parallel and resumable
    spark        the same featurization on Spark, and distributed inference
    spark_train  training across Spark executors (barrier stage + MultiWorkerMirroredStrategy)

Models
    models       one builder per architecture, with its paper
    experiments  one protocol for comparing models; the final-model choice
    train        training glue shared by the notebooks and train_keras.py
    crossval     k-fold cross-validation through train: one row per fold, mean and spread
    tfmodel      the final model in raw TensorFlow (train_tensorflow.py)
    evaluate     metrics, confusion matrices, timing
    inference    the saved model bundle, prediction, folder evaluation, Kaggle submission
    sequences    utterances of 2-6 words from one split's clips, fixed cv / test sets, word error rate
    ctc          the CTC word model (conv + bidirectional GRU), its training, decoding, the detector baseline
    plot         every figure of the course

Deployment
    stream       the keyword detector over audio of any length; long-audio benchmarks (recall, false accepts/h, DET)
    export       TFLite float / float16 / int8 and waveform-in flat buffers, run with LiteRT
    serve        the web app (``speechlib serve``): the page, the JSON API, live detection over a WebSocket

Running
    pipeline     dataset -> split -> feature store, each step once
    course       execute the notebooks
    cli          the ``speechlib`` command
"""

import importlib.abc as _abc
import importlib.util as _util
import os as _os
import sys as _sys

from speechlib._stderr import redirected as _redirected_stderr

__version__ = "0.1.0"


class _QuietTensorFlow(_abc.MetaPathFinder):
    """Import TensorFlow without its start-up lines on stderr (oneDNN notice, CUDA probing on a CPU machine).

    TensorFlow logs them through absl before its own log level applies, so
    ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them; the import and the device
    discovery run with stderr on the null device instead. Installed only when
    the user has not chosen a level (``TF_CPP_MIN_LOG_LEVEL`` unset); errors
    still raise as usual.
    """

    _busy = False

    def find_spec(self, name, path, target=None):
        if name != "tensorflow" or self._busy:
            return None
        self._busy = True  # the other finders locate the package; a probe (find_spec) may come before the import
        try:
            spec = _util.find_spec(name)
        finally:
            self._busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module
        finder = self

        def quiet_exec(module):
            if finder in _sys.meta_path:
                _sys.meta_path.remove(finder)
            with _redirected_stderr():
                exec_module(module)
                module.config.list_physical_devices()  # the CUDA probe happens here, not at import

        spec.loader.exec_module = quiet_exec
        return spec


# The level is the user's unless speechlib set it (in this process or a parent: a notebook kernel, a worker).
QUIET_TENSORFLOW = "SPEECHLIB_QUIET_TENSORFLOW"  # "1": speechlib owns the level (set by it, or by `course run`)
_OURS = _os.environ.get(QUIET_TENSORFLOW) == "1"
if ("TF_CPP_MIN_LOG_LEVEL" not in _os.environ or _OURS) and "tensorflow" not in _sys.modules:
    _os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # later C++ notices and warnings; errors still show
    _os.environ[QUIET_TENSORFLOW] = "1"
    _sys.meta_path.insert(0, _QuietTensorFlow())
