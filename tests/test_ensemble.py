"""Tests for ensembles: models.ensemble (one model, mean logits) and `speechlib ensemble` (bundles in, a bundle out)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_model

from speechlib import cli, config, inference, models, train


def test_ensemble_averages_the_logits_of_its_members(tmp_path: Path) -> None:
    a, b = tiny_model((101, 40), 12), tiny_model((101, 40), 12)  # one architecture: the same layer names
    ens = models.ensemble([a, b])
    X = np.random.default_rng(0).normal(size=(8, 101, 40)).astype(np.float32)
    mean = (a.predict(X, verbose=0) + b.predict(X, verbose=0)) / 2
    np.testing.assert_allclose(ens.predict(X, verbose=0), mean, atol=1e-5)
    assert models.count_params(ens) == models.count_params(a) + models.count_params(b)
    ens.save(tmp_path / "ens.keras")
    np.testing.assert_allclose(models.load_model(tmp_path / "ens.keras").predict(X, verbose=0), mean, atol=1e-5)


def test_ensemble_refuses_one_member_or_members_of_other_shapes() -> None:
    with pytest.raises(ValueError, match="at least two"):
        models.ensemble([tiny_model((101, 40), 12)])
    with pytest.raises(ValueError, match="class counts"):
        models.ensemble([tiny_model((101, 40), 12), tiny_model((101, 40), 10)])


@pytest.fixture(scope="module")
def second_member(small_store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another small CNN trained on the small store with another seed: a second member."""
    train.set_seed(config.SEED + 1)
    data = train.load_data(small_store, batch_size=32, seed=config.SEED + 1, recipe=train.Recipe(spec_augment=False))
    model = tiny_model(data.feature_shape, data.num_classes)
    train.compile_model(model, lr=1e-2, steps_per_epoch=int(data.train.cardinality()), epochs=10)
    model.fit(data.train, epochs=10, verbose=0, class_weight=data.class_weight)
    out = tmp_path_factory.mktemp("member") / "model.keras"
    return inference.save_bundle(model, out, **data.bundle_info(), data=str(small_store), model_name="tiny_cnn").path


def test_speechlib_ensemble_saves_a_bundle_that_predicts_the_mean_of_its_members(
    tiny_bundle, second_member, small_store, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "ensemble"
    assert cli.main(["ensemble", str(tiny_bundle), str(second_member), "--out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    bundle = inference.load_bundle(out)
    assert bundle.meta["members"] == [str(tiny_bundle), str(second_member)]
    assert bundle.meta["model_name"] == "ensemble(tiny_cnn+tiny_cnn)"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["waveform_export_check"]["ok"]
    # Its test accuracy is that of the mean of the members' logits, computed here apart.
    data = train.load_data(small_store, batch_size=64, recipe=train.NO_AUGMENTATION)
    y, X = [], []
    for features, labels in data.split("test").as_numpy_iterator():
        X.append(features)
        y.append(labels)
    X, y = np.concatenate(X), np.concatenate(y)
    members = [inference.load_bundle(p).model for p in (tiny_bundle, second_member)]
    mean = sum(m.predict(X, verbose=0) for m in members) / 2
    assert metrics["test"]["accuracy"] == pytest.approx(float(np.mean(mean.argmax(1) == y)), abs=1e-6)
    # Run again into its own folder: replaced, not refused.
    assert cli.main(["ensemble", str(tiny_bundle), str(second_member), "--out", str(out)]) == 0


def test_speechlib_ensemble_bad_input(
    tiny_bundle, second_member, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(["ensemble", str(tiny_bundle), "--out", str(tmp_path / "one")]) == 2
    assert "at least two" in capsys.readouterr().err
    # Another folder's content is never overwritten.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert cli.main(["ensemble", str(tiny_bundle), str(second_member), "--out", str(mine)]) == 2
    assert "not written by speechlib ensemble" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    # A member trained on other features (here: another normalisation) is named.
    other = tmp_path / "other"
    other.mkdir()
    for name in ("model.keras", "model.json"):
        (other / name).write_bytes((second_member.parent / name).read_bytes())
    meta = json.loads((other / "model.json").read_text())
    meta["normalization"]["mean"] = [m + 1.0 for m in meta["normalization"]["mean"]]
    (other / "model.json").write_text(json.dumps(meta))
    assert cli.main(["ensemble", str(tiny_bundle), str(other), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "differ in normalization" in err and str(other / "model.keras") in err
    assert not (tmp_path / "e").exists()
    assert cli.main(["ensemble", str(tiny_bundle), str(tmp_path / "missing"), "--out", str(tmp_path / "e")]) == 2
    assert "missing/model.keras: no model file here" in capsys.readouterr().err
