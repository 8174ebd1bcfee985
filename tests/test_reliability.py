"""One verdict per file, every entry accounted for: the same bad files through every command.

A small dataset is split while every file is good; then files go bad in
place (the way a copy or a download goes wrong after the manifests were
written): empty, truncated, text named .wav, MP3 and Ogg bytes renamed .wav,
a header that claims more data than the file holds, NaN samples in a float
WAV, a broken symbolic link and a folder named like a clip. ``check``,
``split``, ``featurize``, ``evaluate``, ``predict``, ``submit`` and
``spark-featurize`` must each reject every one of them with the same
sentence (``speechlib.audio.inspect``'s), naming the file. A clip whose name
yields no speaker id is valid audio: reported by ``check`` and ``split``,
used by the others.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from speechlib import audio, cli, config, datasets, features, inference
from speechlib.featurize import featurize

SPEAKERS = [f"{i:02x}c0ffee" for i in range(8)]
NAMELESS = "yes/grabación ñandú.wav"  # a unicode name without _nohash_: no speaker id


def _tone(rng: np.random.Generator, n: int = config.CLIP_SAMPLES) -> np.ndarray:
    t = np.arange(n) / config.SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + rng.normal(0, 0.01, n)).astype(np.float32)


def _good(path: Path) -> bytes:
    sf.write(path, _tone(np.random.default_rng(len(str(path)))), config.SAMPLE_RATE, subtype="PCM_16")
    return path.read_bytes()


def _nan(path: Path) -> None:
    wave = _tone(np.random.default_rng(1))
    wave[4000] = np.nan
    path.unlink()
    sf.write(path, wave, config.SAMPLE_RATE, subtype="FLOAT")


def _replace(path: Path, make) -> None:
    path.unlink()
    make(path)


# relpath -> how the file goes bad (it is a good clip at split time); the expected start of the sentence.
BAD = {
    "yes/bad00000_nohash_0.wav": (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "yes/bad00001_nohash_0.wav": (lambda p: p.write_bytes(p.read_bytes()[:30]), "truncated: the file ends"),
    "yes/bad00002_nohash_0.wav": (lambda p: p.write_text("just some notes\n"), "not a RIFF/WAV file"),
    "no/bad00003_nohash_0.wav": (
        lambda p: p.write_bytes(b"ID3\x04\x00\x00" + bytes(range(256)) * 8),
        "not a RIFF/WAV file: it starts with b'ID3\\x04' (looks like an MP3)",
    ),
    "no/bad00004_nohash_0.wav": (
        lambda p: _replace(p, lambda q: sf.write(q, _tone(np.random.default_rng(2)), 16000, format="OGG")),
        "not a RIFF/WAV file: it starts with b'OggS' (looks like an Ogg file)",
    ),
    "no/bad00005_nohash_0.wav": (  # the header claims 2,000 more bytes of audio than the file holds
        lambda p: p.write_bytes(p.read_bytes()[:-2000]),
        "truncated: header says 32,000 bytes of audio, file has 30,000",
    ),
    "yes/bad00006_nohash_0.wav": (_nan, "NaN or infinite samples"),
    "yes/bad00007_nohash_0.wav": (
        lambda p: _replace(p, lambda q: q.symlink_to(q.parent / "moved_away.wav")),
        "broken symbolic link",
    ),
    "no/bad00008_nohash_0.wav": (lambda p: _replace(p, lambda q: q.mkdir()), "a folder, not an audio file"),
}


def _make_dataset(root: Path) -> None:
    for i, speaker in enumerate(SPEAKERS):
        for word in ("yes", "no", "bed"):
            (root / word).mkdir(parents=True, exist_ok=True)
            _good(root / word / f"{speaker}_nohash_{i % 2}.wav")
    for relpath in [*BAD, NAMELESS]:
        _good(root / relpath)
    (root / config.BACKGROUND_NOISE_DIR).mkdir()
    noise = np.random.default_rng(0).normal(0, 0.1, 8 * config.SAMPLE_RATE).astype(np.float32)
    sf.write(root / config.BACKGROUND_NOISE_DIR / "white.wav", noise, config.SAMPLE_RATE, subtype="PCM_16")


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict:
    """The dataset, its split made while every file was good, then the files gone bad; check's verdicts."""
    base = tmp_path_factory.mktemp("reliability")
    root = base / "data"
    _make_dataset(root)
    split_dir = base / "split"
    from speechlib import split

    split.make_split(root, split_dir, rule="hash", verbose=False)
    listed = pd.concat([split.load_manifest(split_dir, name) for name in config.SPLITS])
    assert set(BAD) <= set(listed["relpath"]) and NAMELESS in set(listed["relpath"])  # featurize will meet them
    for relpath, (make, _) in BAD.items():
        make(root / relpath)
    table = datasets.scan(root).set_index("relpath")
    verdicts = {}
    for relpath, (_, start) in BAD.items():
        row = table.loc[relpath]
        assert row["status"] == "error" and row["reason"].startswith(start), (relpath, row["reason"])
        verdicts[relpath] = row["reason"]
    return {"root": root.resolve(), "split_dir": split_dir, "verdicts": verdicts, "base": base}


def _relpath(path: str, root: Path) -> str:
    return Path(path).relative_to(root).as_posix() if Path(path).is_absolute() else path


def test_check_prints_every_verdict_and_the_nameless_clip(broken, capsys):
    assert cli.main(["data", "check", str(broken["root"])]) == 0
    printed = capsys.readouterr().out
    for relpath, reason in broken["verdicts"].items():
        assert f"  error  {relpath}: {reason}" in printed
    assert f"  warn   {NAMELESS}: name does not follow <speaker>_nohash_<n>.wav" in printed


def test_verdicts_are_speechlib_audio_s(broken):
    for relpath, reason in broken["verdicts"].items():
        with pytest.raises(audio.AudioError) as err:
            audio.load(broken["root"] / relpath)
        assert err.value.reason == reason


def test_split_skips_each_file_with_the_same_sentence(broken, capsys):
    out = broken["base"] / "split_after"
    assert cli.main(["split", "--data", str(broken["root"]), "--out", str(out), "--rule", "hash"]) == 0
    printed = capsys.readouterr().out
    info = json.loads((out / "split.json").read_text())
    skipped = {item["relpath"]: item["reason"] for item in info["skipped"]}
    assert {k: skipped[k] for k in broken["verdicts"]} == broken["verdicts"]
    for relpath, reason in broken["verdicts"].items():
        assert f"skipped {relpath}: {reason}" in printed
    assert any(w.startswith(f"{NAMELESS}: name does not follow") for w in info["warnings"])
    assert f"warning: {NAMELESS}: name does not follow" in printed


def test_featurize_skips_each_file_with_the_same_sentence(broken, capsys):
    out = broken["base"] / "features"
    code = cli.main(["featurize", "--split-dir", str(broken["split_dir"]), "--out", str(out), "--workers", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    skipped = {_relpath(s["path"], broken["root"]): s["reason"] for s in report["skipped"]}
    assert skipped == broken["verdicts"]  # every bad file, nothing else (the nameless clip is used)
    for entry in report["splits"].values():
        assert entry["processed"] + entry["skipped"] == entry["manifest_rows"]
    for relpath, reason in broken["verdicts"].items():
        assert f"{broken['root'] / relpath}: {reason}" in printed


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """An untrained linear model saved as a bundle (no training needed to test the commands)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((101, config.N_MELS)), keras.layers.Flatten(), keras.layers.Dense(len(config.KAGGLE12_LABELS))]
    )
    rng = np.random.default_rng(1)
    stats = features.fit_normalizer(features.compute_batch(np.stack([_tone(rng) for _ in range(8)])))
    path = tmp_path_factory.mktemp("model") / "model.keras"
    inference.save_bundle(model, path, kind="logmel", params={}, normalization=stats, labels=config.KAGGLE12_LABELS)
    return path


@pytest.mark.slow
def test_evaluate_predict_submit_give_the_same_sentence(broken, bundle, capsys):
    root, verdicts = broken["root"], broken["verdicts"]
    out = broken["base"] / "evaluate"
    assert cli.main(["evaluate", "--model", str(bundle), "--data", str(root), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    skipped = {_relpath(s["path"], root): s["reason"] for s in metrics["skipped"]}
    assert {k: skipped[k] for k in verdicts} == verdicts
    for relpath, reason in verdicts.items():
        assert f"skipped {root / relpath}: {reason}" in err

    paths = [str(root / relpath) for relpath in [*verdicts, NAMELESS]]
    assert cli.main(["predict", "--model", str(bundle), *paths]) == 1
    printed, err = capsys.readouterr()
    for relpath, reason in verdicts.items():
        assert f"{root / relpath}: error: {reason}" in err
    assert f"{root / NAMELESS}: " in printed and len(printed.strip().splitlines()) == 1

    submission = broken["base"] / "submission.csv"
    assert cli.main(["submit", "--model", str(bundle), "--data", str(root), "--out", str(submission)]) == 0
    printed, err = capsys.readouterr()
    rows = pd.read_csv(submission, keep_default_na=False)
    entries = inference.wav_entries(root)
    listed = [line for line in err.splitlines() if line.startswith("unreadable")]
    assert len(rows) == len(entries) and len(set(rows["fname"])) == len(entries)
    for relpath, reason in verdicts.items():
        assert f"unreadable, labelled {inference.SUBMISSION_FALLBACK}: {relpath}: {reason}" in listed
    assert len(listed) == len(verdicts)
    predicted = len(entries) - len(listed)  # predicted rows + listed errors = entries
    assert f"{len(entries)} rows written" in printed and f"{predicted} predicted, {len(listed)} unreadable" in printed


def test_permission_denied_is_one_verdict(broken, capsys, monkeypatch):
    """An unreadable file (chmod 000; simulated, since root reads anything) gets one sentence everywhere."""
    root = broken["root"]
    locked = root / "yes" / f"{SPEAKERS[0]}_nohash_0.wav"
    real_open = audio._open_binary

    def open_binary(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path)

    monkeypatch.setattr(audio, "_open_binary", open_binary)
    reason = audio.PERMISSION
    assert datasets.scan(root).set_index("relpath").loc[locked.relative_to(root).as_posix(), "reason"] == reason
    manifest = pd.concat([pd.read_csv(broken["split_dir"] / f"{n}.csv", keep_default_na=False) for n in config.SPLITS])
    assert locked.relative_to(root).as_posix() in set(manifest["relpath"])
    report = featurize(broken["split_dir"], broken["base"] / "features_locked", workers=1, progress=False)
    assert {s["path"]: s["reason"] for s in report["skipped"]}[str(locked)] == reason
    with pytest.raises(audio.AudioError) as err:
        audio.load(locked)
    assert err.value.reason == reason


def test_chmod_000_file_as_a_user(tmp_path):
    """The real thing where it can be tested: skipped when running as root (root reads a chmod 000 file)."""
    locked = tmp_path / "x.wav"
    _good(locked)
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): a chmod 000 file is still readable")
        with pytest.raises(audio.AudioError) as err:
            audio.inspect(locked)
        assert err.value.reason == audio.PERMISSION
    finally:
        locked.chmod(0o644)


@pytest.mark.spark
@pytest.mark.slow
def test_spark_featurize_gives_the_same_sentence(broken, capsys):
    pytest.importorskip("pyspark")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from speechlib import spark as spark_mod

    session = spark_mod.session("local[1]", app_name="speechlib-reliability", **{"spark.ui.enabled": "false"})
    session.sparkContext.setLogLevel("ERROR")
    out = broken["base"] / "parquet"
    args = ["spark-featurize", "--split-dir", str(broken["split_dir"]), "--out", str(out), "--partitions", "2"]
    try:
        assert cli.main(args) == 0
        errors = session.read.parquet(str(out)).where("status = 'error'").select("relpath", "error").collect()
    finally:
        session.stop()
    printed = capsys.readouterr().out
    got = {row["relpath"]: row["error"] for row in errors}
    assert got == {relpath: f"{relpath}: {reason}" for relpath, reason in broken["verdicts"].items()}
    report = spark_mod.read_report(out)
    manifest_rows = sum(len(pd.read_csv(broken["split_dir"] / f"{n}.csv")) for n in config.SPLITS)
    assert report["rows"] == manifest_rows and report["error"] == len(broken["verdicts"])
    for relpath, reason in broken["verdicts"].items():
        assert f"{relpath}: {reason}" in printed
