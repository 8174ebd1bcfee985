"""Word sequences and CTC: the builder, fixed sets, WER, decoding, training, the detector baseline, transcribe."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from speechlib import audio, cli, config, ctc, inference, sequences, train

TINY_VOCABULARY = ["marvin", "no", "yes"]  # three words that share no sound: separable in a few hundred steps
TINY_STEPS = 200
TINY_SECONDS = 3.5  # one to three words fit


@pytest.fixture(scope="module")
def builders(small_store) -> dict[str, sequences.SequenceBuilder]:
    """A builder per split of the small store (every word of the train split)."""
    out = {"train": sequences.SequenceBuilder(small_store, "train")}
    for name in ("cv", "test"):
        out[name] = sequences.SequenceBuilder(small_store, name, vocabulary=out["train"].vocabulary)
    return out


def test_utterances_match_the_clips_used(builders) -> None:
    b = builders["train"]
    for index in range(20):
        u = b.utterance(index)
        assert sequences.MIN_WORDS <= len(u.words) <= sequences.MAX_WORDS
        assert u.transcript == " ".join(u.words)
        # the word of each clip is its folder (the dataset's layout): the transcript names the clips used
        assert [Path(r).parts[0] for r in u.relpaths] == u.words
        assert set(u.words) <= set(b.vocabulary)
        # timings: inside the audio, in order, not overlapping, at least one 10-ms frame long
        assert 0 < u.starts[0] and u.stops[-1] < u.duration <= sequences.MAX_SECONDS
        assert np.all(u.stops - u.starts >= 0.01) and np.all(u.starts[1:] >= u.stops[:-1])
        # the words are where the timings say: louder than the noise between them (SNR >= 5 dB)
        sr = u.sample_rate
        inside = np.zeros(len(u.waveform), bool)
        for s, e in zip(u.starts, u.stops, strict=True):
            inside[round(s * sr) : round(e * sr)] = True
        assert np.sqrt(np.mean(u.waveform[inside] ** 2)) > 1.5 * np.sqrt(np.mean(u.waveform[~inside] ** 2))
        assert u.waveform.dtype == np.float32 and np.abs(u.waveform).max() <= 1.0


def test_utterances_are_deterministic(builders, small_store) -> None:
    a, b = builders["train"].utterance(7), builders["train"].utterance(7)
    assert a.words == b.words and np.array_equal(a.waveform, b.waveform)
    other = sequences.SequenceBuilder(small_store, "train", seed=config.SEED + 1)
    assert any(other.utterance(i).transcript != builders["train"].utterance(i).transcript for i in range(5))
    batch = builders["train"].batch([0, 1, 2])
    assert {len(u.waveform) for u in batch} == {builders["train"].max_samples}
    assert [u.words for u in batch] == [builders["train"].utterance(i).words for i in range(3)]


def test_no_speaker_crosses_splits(builders) -> None:
    used = {name: {s for i in range(40) for s in b.utterance(i).speakers} for name, b in builders.items()}
    for name, b in builders.items():
        assert used[name] <= b.speakers
    assert not used["train"] & used["cv"] and not used["train"] & used["test"] and not used["cv"] & used["test"]
    assert not builders["train"].speakers & builders["test"].speakers


def test_trim_speech_finds_the_word() -> None:
    sr = config.SAMPLE_RATE
    clip = np.zeros(sr, np.float32)
    t = np.arange(int(0.3 * sr)) / sr
    clip[int(0.4 * sr) : int(0.7 * sr)] = 0.5 * np.sin(2 * np.pi * 440 * t)
    start, stop = sequences.trim_speech(clip)
    assert abs(start / sr - 0.4) < 0.06 and abs(stop / sr - 0.7) < 0.06
    assert sequences.trim_speech(np.zeros(100, np.float32)) == (0, 100)


def test_fixed_set_written_once_and_read_back(builders, tmp_path: Path) -> None:
    folder = tmp_path / "sets" / "test"
    first = sequences.fixed_set(builders["test"], 5, out_dir=folder)
    assert sorted(p.name for p in folder.iterdir())[:2] == ["00000.wav", "00001.wav"]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no partial folder left
    stamp = (folder / "set.json").stat().st_mtime_ns
    again = sequences.fixed_set(builders["test"], 5, out_dir=folder)
    assert (folder / "set.json").stat().st_mtime_ns == stamp  # read, not rewritten
    for a, b in zip(first, again, strict=True):
        assert a.words == b.words and np.allclose(a.starts, b.starts)
        assert np.array_equal(a.waveform, b.waveform)
    built = builders["test"].utterance(2, min_samples=builders["test"].max_samples)
    assert again[2].words == built.words and np.abs(again[2].waveform - built.waveform).max() < 1e-3  # 16-bit PCM
    with pytest.raises(FileExistsError, match="not this sequence set"):
        sequences.fixed_set(builders["test"], 6, out_dir=folder)


def test_word_errors_counts() -> None:
    refs = ["yes no up", "left right", "stop"]
    hyps = ["yes up", "left left right", "go"]  # a deletion; an insertion; a substitution
    r = sequences.word_errors(refs, hyps)
    assert (r["substitutions"], r["deletions"], r["insertions"], r["hits"], r["words"]) == (1, 1, 1, 4, 6)
    assert r["wer"] == pytest.approx(3 / 6)
    assert sequences.word_errors([["yes", "no"]], [[]])["deletions"] == 2
    with pytest.raises(ValueError, match="references but"):
        sequences.word_errors(["yes"], [])
    assert sequences.to_labels(["yes", "marvin", "stop"], config.KAGGLE12_LABELS) == ["yes", "unknown", "stop"]


def test_paired_word_errors_separate_two_recognisers_on_the_same_utterances() -> None:
    refs = [["yes", "no", "up"], ["down", "left"], ["stop", "go", "on", "off"]] * 20
    perfect = [list(r) for r in refs]
    worse = [[*r[:-1], "yes", "no"] if i % 2 else list(r) for i, r in enumerate(refs)]  # every other: 2 errors
    paired = sequences.paired_word_errors(refs, perfect, worse, resamples=2000)
    expected = sequences.word_errors(refs, worse)["wer"]
    assert paired["wer_a"] == 0.0 and paired["wer_b"] == round(expected, 4) > 0
    assert paired["difference"] == -paired["wer_b"] and paired["ci95"][1] < 0 < paired["wer_b"]
    assert sequences.paired_word_errors(refs, worse, worse, resamples=200)["ci95"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="references but"):
        sequences.paired_word_errors(refs, perfect[:-1], worse)


def _posterior(paths: list[list[int]], num_tokens: int) -> np.ndarray:
    logits = np.full((len(paths), len(paths[0]), num_tokens), -8.0, np.float32)
    for b, path in enumerate(paths):
        for t, k in enumerate(path):
            logits[b, t, k] = 8.0
    return logits


def test_decoding_a_hand_made_posterior() -> None:
    tokens = [ctc.BLANK, "no", "up", "yes"]
    # frames: yes yes _ no _ no no _ _ up  ->  yes no no up (the blank separates the repeated word)
    path = [3, 3, 0, 1, 0, 1, 1, 0, 0, 2]
    logits = _posterior([path, [0] * 10], len(tokens))
    expected = [["yes", "no", "no", "up"], []]
    assert ctc.decode(logits, tokens=tokens) == expected
    assert ctc.decode(logits, tokens=tokens, beam_width=8) == expected
    assert ctc.decode(logits, [4, 10], tokens=tokens)[0] == ["yes", "no"]  # only the valid frames
    words = ctc.greedy_words(logits[0], tokens=tokens, frame_seconds=0.04)
    assert [w.word for w in words] == expected[0]
    assert [(w.start, w.stop) for w in words] == [(0.0, 0.08), (0.12, 0.16), (0.2, 0.28), (0.36, 0.4)]
    assert all(w.score > 0.99 for w in words)
    with pytest.raises(ValueError, match="do not match"):
        ctc.decode(logits[..., :3], tokens=tokens)


def test_ctc_model_keeps_its_frames_in_graph_mode() -> None:
    """The compiled (tf.function) model gives output_frames(frames) frames for any length, as the eager one does."""
    import tensorflow as tf

    model = ctc.build_model(4, n_mels=8, filters=8, units=4)
    graph = tf.function(lambda x: model(x, training=True), input_signature=[tf.TensorSpec((None, None, 8), tf.float32)])
    for frames in (51, 351):
        X = np.zeros((3, frames, 8), np.float32)
        assert tuple(graph(X).shape) == tuple(model(X).shape) == (3, ctc.output_frames(frames), 4)


def test_forward_is_the_eager_model_traced_once_for_any_length() -> None:
    """ctc.forward gives the eager model's logits for every batch size and length, from one trace."""
    model = ctc.build_model(4, n_mels=8, filters=8, units=4)
    rng = np.random.default_rng(0)
    for batch, frames in ((1, 51), (3, 351), (2, 120)):
        X = rng.normal(size=(batch, frames, 8)).astype(np.float32)
        np.testing.assert_allclose(ctc.forward(model, X), np.asarray(model(X, training=False)), atol=1e-5)
    assert ctc._FORWARD[model].experimental_get_tracing_count() == 1


def test_frame_targets_mark_each_word() -> None:
    tokens = [ctc.BLANK, "no", "yes"]
    got = ctc.frame_targets([0.1, 0.5], [0.3, 0.75], ["yes", "no"], tokens, frames=10, frame_seconds=0.08)
    # frame centres 0.04, 0.12, ..., 0.76: 0.12, 0.20, 0.28 inside "yes"; 0.52, 0.60, 0.68 inside "no"
    assert got.tolist() == [0, 2, 2, 2, 0, 0, 1, 1, 1, 0]


@pytest.fixture(scope="module")
def tiny_ctc(small_store, tmp_path_factory: pytest.TempPathFactory) -> tuple[ctc.Transcriber, list]:
    """A small CTC model trained for a few hundred steps on utterances of three separable words."""
    train.set_seed(config.SEED)
    kwargs = {"vocabulary": TINY_VOCABULARY, "words": (1, 3), "max_seconds": TINY_SECONDS}
    builder = sequences.SequenceBuilder(small_store, "train", **kwargs)
    cv_builder = sequences.SequenceBuilder(small_store, "cv", **kwargs)
    out = tmp_path_factory.mktemp("ctc")
    cv = sequences.fixed_set(cv_builder, 16, out_dir=out / "cv")
    model = ctc.build_model(len(TINY_VOCABULARY) + 1, filters=32, units=32, dropout=0.0, momentum=0.9)
    transcriber = ctc.fit(builder, out_dir=out / "model", cv=cv, steps=TINY_STEPS, batch_size=16, lr=1e-2,
                          model=model, verbose=0)  # fmt: skip
    return transcriber, cv


@pytest.mark.slow
def test_a_confidence_threshold_drops_weak_greedy_words(tiny_ctc, small_store) -> None:
    transcriber, cv = tiny_ctc
    tokens = transcriber.tokens
    strong, weak = 1, 2
    path = [strong, strong, 0, weak, weak, 0, 0]
    logits = _posterior([path], len(tokens))[0]
    logits[3:5, weak], logits[3:5, 0] = 0.0, -0.3  # the second word's frames: posterior about 0.57
    words = ctc.greedy_words(logits, tokens=tokens, frame_seconds=0.08)
    assert [w.word for w in words] == [tokens[strong], tokens[weak]] and 0.5 < words[1].score < 0.6
    assert transcriber.transcripts([None], logits=[logits]) == [[tokens[strong], tokens[weak]]]
    assert transcriber.transcripts([None], logits=[logits], min_score=0.6) == [[tokens[strong]]]
    with pytest.raises(ValueError, match="greedy"):
        transcriber.transcripts([None], logits=[logits], beam_width=4, min_score=0.5)
    score, wer = ctc.choose_min_score(transcriber, cv)
    assert score in ctc.MIN_SCORES and wer == transcriber.evaluate(cv, min_score=score)["wer"]
    assert wer <= transcriber.evaluate(cv)["wer"]  # 0 is a candidate: the choice is never worse on cv


@pytest.mark.slow
def test_ctc_learns_a_tiny_vocabulary(tiny_ctc, small_store) -> None:
    transcriber, _ = tiny_ctc
    # new utterances (another seed: other word orders, pauses, noise) of the training clips
    fresh = sequences.SequenceBuilder(small_store, "train", vocabulary=TINY_VOCABULARY, words=(1, 3),
                                      max_seconds=TINY_SECONDS, seed=config.SEED + 7)  # fmt: skip
    fresh = fresh.batch(range(24))
    greedy = transcriber.evaluate(fresh)
    assert greedy["words"] == sum(len(u.words) for u in fresh)
    assert greedy["wer"] <= 0.05, greedy  # near zero after a few hundred steps
    assert transcriber.evaluate(fresh, beam_width=4)["wer"] <= 0.05
    log = train.read_log(transcriber.bundle.path.parent)
    assert len(log) == ctc.epoch_steps(TINY_STEPS)[1] and log["loss"].iloc[-1] < log["loss"].iloc[0] / 3
    assert "val_wer" in log and log["val_wer"].iloc[-1] < 1.0
    # the word times of the greedy path fall on the spoken words
    u = fresh[0]
    words = transcriber.transcribe(u.waveform)
    if [w.word for w in words] == u.words:
        centres = [(w.start + w.stop) / 2 for w in words]
        assert all(s - 0.3 <= c <= e + 0.3 for c, s, e in zip(centres, u.starts, u.stops, strict=True))
    # a finished run is loaded, not trained again, and quietly (no optimizer-variable warning from Keras)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = ctc.fit(sequences.SequenceBuilder(small_store, "train", vocabulary=TINY_VOCABULARY, words=(1, 3),
                                                  max_seconds=TINY_SECONDS),
                        out_dir=transcriber.bundle.path.parent, steps=TINY_STEPS, batch_size=16, lr=1e-2)  # fmt: skip
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)], [str(w.message) for w in caught]
    assert train.read_log(transcriber.bundle.path.parent).shape == log.shape and again.tokens == transcriber.tokens


def test_detector_baseline_on_the_same_utterances(tiny_bundle, builders) -> None:
    bundle = inference.load_bundle(tiny_bundle)
    cv = [builders["cv"].utterance(i) for i in range(4)]
    test = [builders["test"].utterance(i) for i in range(4)]
    result = ctc.detector_baseline(bundle, cv, test, thresholds=(0.5, 0.8), refractory=(0.3, 1.0))
    assert result["threshold"] in (0.5, 0.8) and result["refractory_seconds"] in (0.3, 1.0)
    assert result["test"]["words"] == sum(len(u.words) for u in test)
    assert set(w for h in result["hypotheses"] for w in h) <= set(bundle.labels) - {config.SILENCE_LABEL}
    assert result["references"][0] == sequences.to_labels(test[0].words, bundle.labels)


@pytest.mark.slow
def test_transcribe_end_to_end(tiny_ctc, capsys: pytest.CaptureFixture) -> None:
    transcriber, cv = tiny_ctc
    wavs = sorted((transcriber.bundle.path.parent.parent / "cv").glob("*.wav"))
    assert len(wavs) == len(cv)
    hits = 0
    for wav, u in zip(wavs[:4], cv[:4], strict=True):
        assert cli.main(["transcribe", str(wav), "--model", str(transcriber.bundle.path), "--beam", "4"]) == 0
        out = capsys.readouterr()
        lines = [line.split() for line in out.out.splitlines() if not line.startswith("beam")]
        said = [fields[4] for fields in lines]
        assert all(0 <= float(f[0]) < float(f[2]) <= u.duration + 0.05 for f in lines)
        assert f"word(s): {' '.join(said)}" in out.err
        hits += said == u.words
        scores = [float(f[5]) for f in lines]
        assert cli.main(["transcribe", str(wav), "--model", str(transcriber.bundle.path), "--min-score", "0.9"]) == 0
        strong = [line.split()[4] for line in capsys.readouterr().out.splitlines()]
        assert strong == [w for w, score in zip(said, scores, strict=True) if score >= 0.9]
    assert hits >= 1


def test_transcribe_bad_input(tiny_ctc, tiny_bundle, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    transcriber, _ = tiny_ctc
    model = str(transcriber.bundle.path)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio\n")
    short = tmp_path / "short.wav"
    import soundfile

    soundfile.write(short, np.zeros(100, np.float32), config.SAMPLE_RATE)
    cases = [
        (["transcribe", str(tmp_path / "missing.wav"), "--model", model], "missing.wav"),
        (["transcribe", str(not_audio), "--model", model], "notes.wav"),
        (["transcribe", str(short), "--model", model], "too short"),
        (["transcribe", str(short), "--model", str(tiny_bundle)], "not a CTC word model"),
        (["transcribe", str(short), "--model", str(tmp_path)], "no model file"),
        (["transcribe", str(short), "--model", model, "--min-score", "1.5"], "--min-score 1.5"),
    ]
    for argv, expected in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("speechlib: error:") and expected in err and "\n" not in err, err
    assert audio.inspect(short).frames == 100
