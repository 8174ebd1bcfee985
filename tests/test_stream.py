"""Streaming detection: incremental features, the detector on constructed long audio, evaluation, `listen`.

The model is a small Keras network trained for a few seconds on the small
synthetic set (no mocks); the words of the constructed file are training clips
that the model classifies right on their own, so the tests check the detector
(windows, features, smoothing, thresholds, refractory period, timing), not
the model's generalisation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from speechlib import audio, config, features, stream

TIME_TOLERANCE = 0.2  # s: a detection must be this close to the word's centre (the target)
WORDS = 4  # keyword clips placed in the constructed file
SNR_DB = 30.0  # speech over the recordings' own noise
THRESHOLD = 0.7  # smoothed score a word needs
CONTEXTS = 3  # noise contexts (and offsets to the window grid) a word must be found in, alone, to be placed


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    from speechlib import inference

    return inference.load_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def detector(bundle):
    return stream.Detector(bundle, threshold=THRESHOLD)


def _alone(clip, bank, seed: int) -> stream.LongAudio:
    """One clip in about 3 s of noise, at an offset to the window grid that depends on ``seed``."""
    return stream.long_audio([clip], bank, snr_db=SNR_DB, keywords=config.COMMANDS, gap_seconds=(0.9, 1.2),
                             noise_rms=None, seed=seed)  # fmt: skip


def _found(detector, long: stream.LongAudio) -> bool:
    found = detector.detect(long.waveform)
    truth = long.truth
    return [d.label for d in found] == [truth["label"][0]] and abs(
        found[0].time - truth["time"][0]
    ) <= TIME_TOLERANCE / 2


@pytest.fixture(scope="module")
def constructed(bundle, detector, small_store):
    """Known keywords at known times in the training noise: different words, each detected right on its own.

    A training clip qualifies when the detector finds it once, with its label,
    alone in about 3 s of noise, in each of ``CONTEXTS`` noise contexts; the
    file is the first contexts of ``WORDS`` such clips end to end. The tests of
    the whole file then check what the detector adds over a long stream
    (timing, one detection per word, nothing between, chunking), not how well
    the tiny model generalises.
    """
    from speechlib import train
    from speechlib.store import FeatureStore

    fs = FeatureStore(small_store)
    bank = train.noise_bank(fs, "train")
    rows = fs.manifest("train")
    rows = rows[(rows["augment"] == 0) & rows["label"].isin(config.COMMANDS)]
    chosen = []
    for row in rows.to_dict("records"):
        if row["label"] in {long.truth["label"][0] for long in chosen} or len(chosen) == WORDS:
            continue
        clip = (row["label"], audio.load_row(row))
        contexts = [_alone(clip, bank, seed) for seed in range(CONTEXTS)]
        if all(_found(detector, long) for long in contexts):
            chosen.append(contexts[0])
    assert len(chosen) >= WORDS, f"the tiny model detects only {len(chosen)} words on their own"
    offsets = np.cumsum([0.0] + [long.duration for long in chosen[:-1]])
    events = pd.concat([long.events.assign(time=long.events["time"] + offset, start=long.events["start"] + offset,
                                           stop=long.events["stop"] + offset)
                        for long, offset in zip(chosen, offsets, strict=True)], ignore_index=True)  # fmt: skip
    return stream.LongAudio(np.concatenate([long.waveform for long in chosen]), events, SNR_DB)


def test_window_features_equal_features_compute(bundle):
    """The incremental log-mel of every window equals features.compute of that second, at two hops."""
    rng = np.random.default_rng(0)
    waveform = (rng.standard_normal(config.CLIP_SAMPLES * 3) * 0.1).astype(np.float32)
    for hop in (0.05, 0.03):
        det = stream.Detector(bundle, hop_seconds=hop, block_windows=4)
        det._samples.extend(waveform[: len(det._samples.data)])
        hop_samples = det.geometry.hop
        count = (len(det._samples.data) - config.CLIP_SAMPLES) // hop_samples
        X = det.window_features(0, count)
        for k in (0, 1, count - 1):
            expected = features.compute(waveform[k * hop_samples : k * hop_samples + config.CLIP_SAMPLES],
                                        bundle.kind, **bundle.params)  # fmt: skip
            np.testing.assert_allclose(X[k], expected, atol=1e-5)
        assert X.shape == (count, *bundle.meta["input_shape"])


def test_detects_each_word_once_at_its_time(detector, constructed):
    found = detector.detect(constructed.waveform)
    truth = constructed.truth
    assert len(found) == len(truth), f"expected {len(truth)} detections, got {found}"
    for d, (t, label) in zip(sorted(found), zip(truth["time"], truth["label"], strict=True), strict=True):
        assert d.label == label and abs(d.time - t) <= TIME_TOLERANCE, (d, t, label)
    scores = stream.match_detections(found, truth, duration=constructed.duration)
    assert scores["hits"] == WORDS and scores["false_accepts"] == 0 and scores["recall"] == 1.0


def test_nothing_in_noise_alone(detector, small_store):
    from speechlib import train
    from speechlib.store import FeatureStore

    noise = stream.long_audio([], train.noise_bank(FeatureStore(small_store), "train"), snr_db=SNR_DB,
                              keywords=config.COMMANDS, gap_seconds=(20.0, 20.0), noise_rms=None)  # fmt: skip
    assert noise.duration == pytest.approx(20.0)
    assert detector.detect(noise.waveform) == []
    assert detector.detect(np.zeros(config.CLIP_SAMPLES * 5, np.float32)) == []  # digital silence


def test_chunked_file_and_whole_input_agree(detector, constructed, tmp_path):
    whole = detector.detect(constructed.waveform)
    chunked = detector.detect(constructed.waveform, chunk_samples=777)  # not a multiple of anything
    path = tmp_path / "long.wav"
    sf.write(path, constructed.waveform, config.SAMPLE_RATE, subtype="FLOAT")
    from_file = list(detector.run(stream.file_chunks(path, chunk_seconds=1.3)))
    assert [(d.time, d.label) for d in chunked] == [(d.time, d.label) for d in whole]
    assert [(d.time, d.label) for d in from_file] == [(d.time, d.label) for d in whole]
    np.testing.assert_allclose([d.score for d in chunked], [d.score for d in whole], atol=1e-4)
    times, scores = detector.scores([constructed.waveform])
    replay = stream.trigger(times, scores, detector.keyword_ids, detector.labels, threshold=detector.threshold)
    assert [(d.time, d.label) for d in replay] == [(d.time, d.label) for d in whole]


def test_memory_stays_constant(detector, constructed):
    """Buffers are allocated once: an hour of audio would use what a minute uses."""
    sizes = (detector._samples.data.nbytes, detector._frames.data.nbytes)
    detector.reset()
    for start in range(0, len(constructed.waveform), 1600):
        detector.feed(constructed.waveform[start : start + 1600])
    assert (detector._samples.data.nbytes, detector._frames.data.nbytes) == sizes
    assert detector._samples.end == len(constructed.waveform)


def test_refractory_and_per_keyword_thresholds(bundle, constructed):
    strict = {label: 1.01 for label in constructed.truth["label"]}  # unreachable: those words never fire
    quiet = stream.Detector(bundle, threshold=strict).detect(constructed.waveform)
    assert not {d.label for d in quiet} & set(strict)
    times = np.arange(0, 3, 0.05)
    scores = np.zeros((len(times), len(bundle.labels)))
    yes = bundle.labels.index("yes")
    scores[(times > 0.5) & (times < 0.8), yes] = 0.9  # one word ...
    scores[(times > 1.0) & (times < 1.2), yes] = 0.9  # ... and its echo 0.5 s later: inside the refractory period
    ids = [bundle.labels.index(k) for k in config.COMMANDS]
    once = stream.trigger(times, scores, ids, bundle.labels, threshold=0.5, refractory_seconds=1.0)
    twice = stream.trigger(times, scores, ids, bundle.labels, threshold=0.5, refractory_seconds=0.1)
    assert [d.label for d in once] == ["yes"] and len(twice) == 2
    assert once[0].time == pytest.approx(0.65, abs=0.03)  # the middle of the run above the threshold


def test_a_run_names_its_best_keyword_not_the_first_to_cross():
    labels = [*config.COMMANDS, config.SILENCE_LABEL, config.UNKNOWN_LABEL]
    times = np.arange(0, 3, 0.05)
    scores = np.zeros((len(times), len(labels)))
    go, no = labels.index("go"), labels.index("no")
    scores[(times > 0.9) & (times < 1.2), go] = 0.6  # the onset of "no" sounds like "go" for a few windows ...
    scores[(times > 1.05) & (times < 1.5), no] = 0.95  # ... then the whole word is heard
    found = stream.trigger(times, scores, list(range(len(config.COMMANDS))), labels, threshold=0.5)
    assert [(d.label, d.score) for d in found] == [("no", 0.95)]
    assert found[0].time == pytest.approx(1.2, abs=0.06)  # the middle of the whole run, 0.95 s to 1.45 s


def test_the_next_word_starts_its_own_run_once_this_ones_score_falls():
    labels = [*config.COMMANDS, config.SILENCE_LABEL, config.UNKNOWN_LABEL]
    times = np.arange(0, 3, 0.05)
    scores = np.zeros((len(times), len(labels)))
    yes, up = labels.index("yes"), labels.index("up")
    scores[(times > 0.5) & (times < 0.8), yes] = 0.9  # "yes" ...
    scores[(times >= 0.8) & (times < 1.0), up] = 0.3  # ... "up" follows at once: its onset is above the release level
    scores[(times >= 1.0) & (times < 1.3), up] = 0.9  # but below the threshold, then the word itself, all within 0.8 s
    found = stream.trigger(times, scores, list(range(len(config.COMMANDS))), labels, threshold=0.5,
                           refractory_seconds=0.2)  # fmt: skip
    assert [d.label for d in found] == ["yes", "up"]  # not one run that swallows the second word


def test_bad_settings_are_refused(bundle):
    with pytest.raises(ValueError, match="multiple of the feature hop"):
        stream.Detector(bundle, hop_seconds=0.033)
    with pytest.raises(ValueError, match="not keywords"):
        stream.Detector(bundle, threshold={"banana": 0.5})


def test_match_detections_and_det_curve():
    truth = pd.DataFrame({"time": [1.0, 3.0, 5.0], "label": ["yes", "no", "up"]})
    found = [stream.Detection(1.1, "yes", 0.9), stream.Detection(1.2, "yes", 0.9),  # a double: one false accept
             stream.Detection(3.0, "up", 0.8),  # "no" heard as "up": a substitution (and a miss)
             stream.Detection(9.0, "go", 0.7)]  # nothing said there: a false accept  # fmt: skip
    m = stream.match_detections(found, truth, duration=1800.0)
    assert (m["hits"], m["misses"], m["substitutions"], m["false_accepts"]) == (1, 2, 1, 2)
    assert m["false_accepts_per_hour"] == pytest.approx(4.0) and m["substitutions_per_hour"] == pytest.approx(2.0)
    assert m["recall"] == pytest.approx(1 / 3)
    labels = [*config.COMMANDS, config.SILENCE_LABEL, config.UNKNOWN_LABEL]
    times = np.arange(0, 8, 0.05)
    scores = np.zeros((len(times), len(labels)))
    for t, label, level in [(1.0, "yes", 0.95), (3.0, "no", 0.6), (6.5, "go", 0.7)]:
        scores[np.abs(times - t) < 0.2, labels.index(label)] = level
    curve = stream.det_curve(times, scores, labels, config.COMMANDS, truth, duration=3600.0,
                             thresholds=[0.5, 0.65, 0.8, 0.99])  # fmt: skip
    assert curve["recall"].tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3, 0.0])
    assert curve["false_accepts_per_hour"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert stream.choose_threshold(curve, max_false_accepts_per_hour=0.0) == 0.8


def test_smoothing_a_raw_trace_equals_the_detectors_own(bundle):
    """stream.smooth of a trace scored without smoothing is the trace a detector that smooths gives."""
    rng = np.random.default_rng(1)
    waveform = (rng.standard_normal(config.CLIP_SAMPLES * 2) * 0.05).astype(np.float32)
    raw_times, raw = stream.Detector(bundle, smooth_windows=1).scores([waveform])
    for windows in (1, 3, 6):
        times, smoothed = stream.Detector(bundle, smooth_windows=windows, block_windows=5).scores([waveform])
        again_times, again = stream.smooth(raw_times, raw, windows)
        np.testing.assert_allclose(again_times, times, atol=1e-9)
        np.testing.assert_allclose(again, smoothed, atol=1e-6)
    assert not np.allclose(stream.smooth(raw_times, raw, 6)[1], raw)  # smoothing changed the trace


def test_false_accepts_are_told_apart_by_what_they_fired_on():
    events = pd.DataFrame({"time": [0.5, 2.5, 4.5], "start": [0.0, 2.0, 4.0], "stop": [1.0, 3.0, 5.0],
                           "label": ["yes", "unknown", "no"], "keyword": [True, False, True]})  # fmt: skip
    found = [stream.Detection(0.5, "yes", 0.9),  # a hit
             stream.Detection(0.95, "yes", 0.9),  # the same word again: a false accept on a keyword
             stream.Detection(2.4, "go", 0.8),  # an unknown word heard as "go"
             stream.Detection(4.6, "up", 0.8),  # "no" heard as "up": a substitution, not a false accept
             stream.Detection(7.0, "off", 0.7), stream.Detection(8.5, "on", 0.7)]  # noise alone  # fmt: skip
    sources = stream.false_accept_sources(found, events)
    assert sources == {"unknown word": 1, "keyword": 1, "noise": 2}
    m = stream.match_detections(found, events[events["keyword"]].reset_index(drop=True), duration=3600.0)
    assert m["false_accepts"] == sum(sources.values()) and m["substitutions"] == 1
    labels = [*config.COMMANDS, config.SILENCE_LABEL, config.UNKNOWN_LABEL]
    times = np.arange(0, 10, 0.05)
    scores = np.zeros((len(times), len(labels)))
    for t, label in [(0.5, "yes"), (2.5, "go"), (7.0, "off")]:
        scores[np.abs(times - t) < 0.2, labels.index(label)] = 0.9
    curve = stream.det_curve(times, scores, labels, config.COMMANDS, events[events["keyword"]], duration=3600.0,
                             thresholds=[0.5, 0.95], events=events)  # fmt: skip
    assert curve[
        ["false_accepts_on_unknown_word", "false_accepts_on_keyword", "false_accepts_on_noise"]
    ].values.tolist() == [[1, 0, 1], [0, 0, 0]]
    assert (curve["false_accepts"] == curve.filter(like="false_accepts_on_").sum(axis=1)).all()


def test_the_operating_point_takes_the_best_recall_within_the_false_accept_budget():
    def curve(rows):
        return pd.DataFrame(rows, columns=["threshold", "recall", "false_accepts_per_hour"])

    curves = {3: curve([(0.5, 0.9, 12.0), (0.8, 0.7, 0.0)]),  # at <= 1/h: recall 0.7
              8: curve([(0.5, 0.88, 6.0), (0.7, 0.8, 1.0), (0.9, 0.6, 0.0)]),  # at <= 1/h: recall 0.8
              12: curve([(0.5, 0.85, 3.0), (0.7, 0.8, 0.0)])}  # recall 0.8 with no false accept  # fmt: skip
    assert stream.choose_operating_point(curves, max_false_accepts_per_hour=1.0) == (12, 0.7)
    assert stream.choose_operating_point(curves, max_false_accepts_per_hour=20.0) == (3, 0.5)
    with pytest.raises(ValueError, match="no DET curves"):
        stream.choose_operating_point({})


def test_microphone_needs_sounddevice():
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError):
        with pytest.raises(ImportError, match="pip install sounddevice"):
            next(stream.microphone_chunks(seconds=0.1))
    else:
        pytest.skip("sounddevice is installed: the missing-package message cannot be shown")


def test_listen_cli(bundle, constructed, tmp_path, capsys):
    from speechlib import cli

    path = tmp_path / "long.wav"
    sf.write(path, constructed.waveform, config.SAMPLE_RATE, subtype="PCM_16")
    assert cli.main(["listen", str(path), "--model", str(bundle.path), "--threshold", str(THRESHOLD)]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == WORDS and "detection(s)" in err
    for line, label in zip(lines, constructed.truth["label"], strict=True):
        assert line.split()[2] == label
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    for argv in (["listen", str(bad), "--model", str(bundle.path)],
                 ["listen", str(path), "--model", str(tmp_path / "missing" / "model.keras")],
                 ["listen", str(path), "--model", str(bundle.path), "--threshold", "yes=high"]):  # fmt: skip
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("speechlib: error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
