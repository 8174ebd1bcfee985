"""speechlib: spoken-word (keyword) classification on Speech Commands.

The library of the speechlib course; one module per stage of the pipeline.
Import modules explicitly (``from speechlib import features``); nothing heavy
(TensorFlow, Spark) is imported until it is used.

Data
    config       constants: sample rate, word lists, the 12-class task, paths, small mode
    datasets     the embedded synthetic dataset, the real download, scanning and checking
    hashsplit    the dataset's speaker hash rule
    split        speaker-disjoint manifests, silence from noise, the sample set, leakage checks
    stats        per-clip level, duration and word position; dataset tables

Features
    audio        decode, resample, mono, pad / trim
    features     log-mel, MFCC, STFT, FFT, tempogram, chroma, waveform; normalisation
    augment      noise at an SNR from a split's own noise, shift, stretch, pitch, gain, SpecAugment
    store        the zarr feature store (bcolz compatible), lazy batches
    featurize    manifests -> feature store, parallel and resumable
    spark        the same featurization on Spark, and distributed inference

Models
    models       one builder per architecture, with its paper
    experiments  one protocol for comparing models; the final-model choice
    train        training glue shared by the notebooks and train_keras.py
    tfmodel      the final model in raw TensorFlow (train_tensorflow.py)
    evaluate     metrics, confusion matrices, timing
    inference    the saved model bundle, prediction, folder evaluation, Kaggle submission
    plot         every figure of the course

Running
    pipeline     dataset -> split -> feature store, each step once
    course       execute the notebooks
    cli          the ``speechlib`` command
"""

__version__ = "0.1.0"
