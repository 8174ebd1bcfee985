"""Tests for speechlib.experiments: runs go through speechlib.train, rows, the comparison over seeds, the final rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from speechlib import config, experiments, train
from speechlib.store import FeatureStore

ROW_KEYS = {
    "model", "accuracy", "macro_precision", "macro_recall", "macro_f1", "params", "macs", "seconds_per_epoch",
    "ms_per_clip", "num_samples", "name", "seed", "epochs", "max_epochs", "best_epoch", "early_stopped", "learned",
    "converged", "cv_curve", "cv_f1_curve", "loss_curve", "input", "train_split", "cv_split", "train_rows", "out_dir",
}  # fmt: skip
QUICK = dict(timing_repeats=2, batch_size=32)


@pytest.fixture(scope="module")
def sizes(small_store):
    fs = FeatureStore(small_store)
    return {split: fs.num_rows(split) for split in ("train", "cv")}


@pytest.mark.slow
def test_keras_run_goes_through_train(small_store, sizes, tmp_path, monkeypatch):
    calls = {}
    load_data, fit = train.load_data, train.fit

    def spy_load_data(*args, **kwargs):
        calls["load_data"] = kwargs
        return load_data(*args, **kwargs)

    def spy_fit(*args, **kwargs):
        calls["fit"] = kwargs
        return fit(*args, **kwargs)

    monkeypatch.setattr(train, "load_data", spy_load_data)
    monkeypatch.setattr(train, "fit", spy_fit)
    recipe = train.Recipe(noise=False)
    out = tmp_path / "run"
    row = experiments.run_experiment("ds_cnn_s", small_store, epochs=2, seed=5, recipe=recipe, out_dir=out,
                                     patience=3, **QUICK)  # fmt: skip
    assert calls["load_data"]["recipe"] == recipe and calls["load_data"]["splits"] == ("train", "cv", "cv")
    assert calls["fit"]["out_dir"] == out and calls["fit"]["patience"] == 3 and calls["fit"]["epochs"] == 2
    assert (out / train.LOG_FILE).is_file() and (out / train.BEST_FILE).is_file()
    assert len(train.read_log(out)) == 2
    assert set(row) == ROW_KEYS
    assert row["model"] == row["name"] == "ds_cnn_s" and row["epochs"] == 2 and row["max_epochs"] == 2
    assert row["params"] == 23_180  # trainable weights, the paper's convention
    assert row["macs"] > row["params"]  # a convolution reuses its weights at every position
    assert row["num_samples"] == sizes["cv"] and row["train_rows"] == sizes["train"]
    assert len(row["cv_curve"]) == len(row["loss_curve"]) == 2 and 1 <= row["best_epoch"] <= 2
    assert row["seconds_per_epoch"] > 0 and row["ms_per_clip"] > 0 and 0 <= row["macro_f1"] <= 1
    assert row["out_dir"] == str(out) and isinstance(row["converged"], bool)


@pytest.mark.slow
def test_keras_run_follows_cv_macro_f1_after_min_epochs(small_store, tmp_path):
    """The protocol's monitor: early stopping and the scored checkpoint follow cv macro F1, from min_epochs on."""
    out = tmp_path / "f1"
    row = experiments.run_experiment("ds_cnn_s", small_store, epochs=3, seed=5, recipe=train.NO_AUGMENTATION,
                                     out_dir=out, patience=1, monitor="val_macro_f1", min_epochs=2,
                                     **QUICK)  # fmt: skip
    log = train.read_log(out)
    assert len(log) == 3 and "val_macro_f1" in log  # patience 1 could not stop before epoch 3
    assert row["best_epoch"] == 3 and len(row["cv_f1_curve"]) == 3  # the epochs before min_epochs were no candidates
    assert row["macro_f1"] == pytest.approx(row["cv_f1_curve"][2], abs=1e-4)  # the checkpoint scored is that epoch's
    with pytest.raises(ValueError, match="monitor must be one of"):
        train.callbacks(tmp_path / "bad", monitor="val_loss")
    with pytest.raises(ValueError, match="needs data="):
        train.callbacks(tmp_path / "bad", monitor="val_macro_f1")


def test_a_run_that_never_learned_has_not_converged():
    """Early stopping at a loss that never left chance level is not convergence; min_epochs bounds the best epoch."""
    stuck = pd.DataFrame({"loss": [2.49, 2.48, 2.49, 2.48, 2.49, 2.48],
                          "val_accuracy": [0.04, 0.53, 0.04, 0.05, 0.04, 0.04],
                          "val_macro_f1": [0.01, 0.06, 0.02, 0.01, 0.02, 0.01]})  # fmt: skip
    row = experiments._training_columns(stuck, epochs=40, patience=4, monitor="val_accuracy")
    assert row["best_epoch"] == 2 and row["early_stopped"] and not row["learned"] and not row["converged"]
    assert (
        experiments._training_columns(stuck, epochs=40, patience=4, monitor="val_macro_f1", min_epochs=2)["best_epoch"]
        == 3
    )
    learning = stuck.assign(loss=[2.49, 2.0, 1.5, 1.2, 1.19, 1.19])
    assert experiments._training_columns(learning, epochs=40, patience=4, num_classes=12)["converged"]
    # A first epoch above chance that settles at chance, ln(12) = 2.485: 9 % below the start, still nothing learned
    settled = stuck.assign(loss=[2.78, 2.50, 2.49, 2.486, 2.485, 2.485])
    assert experiments._training_columns(settled, epochs=40, patience=4)["learned"]  # by the first epoch alone
    row = experiments._training_columns(settled, epochs=40, patience=4, num_classes=12)
    assert not row["learned"] and not row["converged"]


def test_run_folder_defaults_to_the_work_dir(tmp_path):
    store = tmp_path / "work" / "features" / "logmel"
    assert experiments.run_dir(store, "course_cnn1d/16", 7) == tmp_path / "work" / "experiments" / "runs" / (
        "course_cnn1d_16-seed7"
    )
    elsewhere = experiments.run_dir(tmp_path / "mystore", "res8", 1)
    assert elsewhere.is_dir() and "res8-seed1" in elsewhere.name


def test_sklearn_baseline_keeps_its_direct_path(small_store, sizes, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("a scikit-learn model is not trained by train.fit")

    monkeypatch.setattr(train, "fit", no_fit)
    row = experiments.run_experiment("logistic_regression", small_store, epochs=1, seed=3, timing_repeats=2)
    assert set(row) == ROW_KEYS
    assert row["params"] is None and row["macs"] is None and row["epochs"] == 0 and row["converged"] is None
    assert row["num_samples"] == sizes["cv"] and row["train_rows"] == sizes["train"]
    assert row["accuracy"] > 1 / 12  # above chance on the synthetic words
    part = experiments.run_experiment("logistic_regression", small_store, epochs=1, timing_repeats=2, train_every=3)
    assert part["train_rows"] == sizes["train"] // 3 and part["num_samples"] == sizes["cv"]  # as load_data reads it
    majority = experiments.run_experiment("majority", small_store, epochs=1, timing_repeats=2)
    y_cv = FeatureStore(small_store).load_array("cv")[1]
    y_train = FeatureStore(small_store).load_array("train")[1]
    assert majority["accuracy"] == pytest.approx(np.mean(y_cv == np.bincount(y_train).argmax()))


def test_wrong_input_kind_and_unknown_model_are_explained(small_store):
    with pytest.raises(ValueError, match="takes 'waveform' input"):
        experiments.run_experiment("course_cnn1d/16", small_store, epochs=1)
    with pytest.raises(ValueError, match="no 'waveform' store"):
        experiments.run_experiment("course_cnn1d/16", {"logmel": small_store}, epochs=1)
    with pytest.raises(KeyError, match="unknown model"):
        experiments.run_experiment("no_such_model", small_store, epochs=1)
    with pytest.raises(ValueError, match="at least 1"):
        experiments.run_experiment("dense", small_store, epochs=0)


@pytest.mark.slow
def test_compare_gives_mean_and_spread_over_seeds(small_store, tmp_path):
    table = experiments.compare(["logistic_regression", "dense"], small_store, seeds=(1, 2), epochs=1,
                                recipe=train.NO_AUGMENTATION, runs_dir=tmp_path, progress=False, **QUICK)  # fmt: skip
    runs = table.attrs["runs"]
    assert len(runs) == 4 and sorted(set(runs["seed"])) == [1, 2]
    assert (tmp_path / "dense-seed1" / train.LOG_FILE).is_file() and (tmp_path / "dense-seed2").is_dir()
    assert set(table["model"]) == {"logistic_regression", "dense"} and (table["seeds"] == 2).all()
    dense = table.set_index("model").loc["dense"]
    f1 = runs.loc[runs["model"] == "dense", "macro_f1"]
    assert dense["macro_f1_mean"] == pytest.approx(f1.mean()) and dense["macro_f1_std"] == pytest.approx(f1.std())
    assert dense["params"] > 0 and dense["macs"] > 0 and dense["epochs_mean"] == 1
    assert table["macro_f1_mean"].is_monotonic_decreasing


def test_summarize_and_flat_loss():
    runs = pd.DataFrame(
        {
            "model": ["a", "a", "a", "b"], "name": ["res8"] * 3 + ["dense"], "seed": [1, 2, 3, 1],
            "accuracy": [0.8, 0.9, 1.0, 0.5], "macro_f1": [0.7, 0.8, 0.9, 0.95], "params": [10, 10, 10, 5],
            "macs": [100, 100, 100, 5], "ms_per_clip": [1.0, 3.0, 2.0, 0.5], "seconds_per_epoch": [1, 1, 1, 1],
            "epochs": [3, 4, 5, 2], "converged": [True, True, False, True],
        }
    )  # fmt: skip
    table = experiments.summarize(runs).set_index("model")
    assert table.index.tolist() == ["b", "a"]  # best macro-F1 first
    assert table.loc["a", "accuracy_mean"] == pytest.approx(0.9)
    assert table.loc["a", "accuracy_std"] == pytest.approx(0.1)  # sample std over seeds
    assert table.loc["a", "ms_per_clip"] == 2.0 and table.loc["a", "epochs_mean"] == 4
    assert not table.loc["a", "converged"] and table.loc["b", "converged"]
    assert np.isnan(table.loc["b", "accuracy_std"])  # one seed: no spread
    assert experiments._flattened([2.0, 1.0, 0.5, 0.30, 0.29, 0.29, 0.29, 0.29, 0.28])
    assert not experiments._flattened([2.0, 1.5, 1.2, 1.0, 0.8, 0.6])
    assert not experiments._flattened([1.0, 0.9])  # too short to tell


@pytest.mark.slow
def test_waveform_model_takes_the_waveform_store(small_store, tmp_path):
    from speechlib import featurize

    fs = FeatureStore(small_store)
    wave = tmp_path / "features" / "waveform"
    featurize.featurize(fs.attrs["split_dir"], wave, kind="waveform", splits=["train", "cv"], progress=False)
    row = experiments.run_experiment("course_cnn1d/16", {"logmel": small_store, "waveform": wave}, epochs=1,
                                     recipe=train.Recipe(noise=False, spec_augment=False), **QUICK)  # fmt: skip
    assert row["input"] == "waveform" and row["name"] == "course_cnn1d" and row["model"] == "course_cnn1d/16"
    assert row["params"] == 112_530 and row["num_samples"] == fs.num_rows("cv")
    assert row["out_dir"].endswith("course_cnn1d_16-seed1234")


def test_choose_final_macro_f1_first_then_cost():
    table = pd.DataFrame(
        {
            "model": ["big", "small", "fast", "weak"],
            "macro_f1": [0.900, 0.895, 0.895, 0.70],
            "accuracy": [0.80, 0.99, 0.99, 0.99],  # accuracy does not decide
            "params": [1_000_000, 20_000, 20_000, 5_000],
            "ms_per_clip": [2.0, 3.0, 1.0, 0.5],
        }
    )
    assert experiments.choose_final(table, tolerance=0.01)["model"] == "fast"  # tied: fewer params, then fewer ms
    assert experiments.choose_final(table, tolerance=0.0)["model"] == "big"  # strict: the best macro-F1 wins
    assert experiments.choose_final(table, tolerance=0.5)["model"] == "weak"
    summary = table.rename(columns={"macro_f1": "macro_f1_mean"})
    assert experiments.choose_final(summary, tolerance=0.01)["model"] == "fast"  # a summarize() table
    with pytest.raises(ValueError, match="empty"):
        experiments.choose_final(table.iloc[:0])
    with pytest.raises(ValueError, match="lacks column"):
        experiments.choose_final(table.drop(columns="params"))


def test_compare_rankings_says_where_two_comparisons_differ():
    def runs(scores: dict) -> pd.DataFrame:
        rows = [{"model": m, "name": m, "seed": seed, "accuracy": f, "macro_f1": f, "params": 1, "macs": 1,
                 "ms_per_clip": 1.0, "seconds_per_epoch": 1.0, "epochs": 3, "converged": True}
                for m, fs in scores.items() for seed, f in enumerate(fs)]  # fmt: skip
        return pd.DataFrame(rows)

    synthetic = runs({"a": [0.9, 0.8], "b": [0.7], "c": [0.6], "d": [0.5], "only_here": [0.99]})
    real = runs({"a": [0.4], "b": [0.8], "c": [0.7], "d": [0.6], "only_real": [0.1]})
    table = experiments.compare_rankings(synthetic, real, moved=3).set_index("model")
    assert table.index.tolist() == ["b", "c", "d", "a"]  # models in both, by the real ranking
    assert table.loc["a", "synthetic_macro_f1"] == pytest.approx(0.85)  # mean over seeds, with its spread
    assert table.loc["a", "synthetic_std"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert np.isnan(table.loc["b", "synthetic_std"])
    assert table.loc["a", "synthetic_rank"] == 1 and table.loc["a", "real_rank"] == 4 and table.loc["a", "shift"] == 3
    assert table["moved"].tolist() == [False, False, False, True]
    assert table.attrs["leaders"] == {"synthetic": "a", "real": "b"}
    assert table.attrs["spearman"] == pytest.approx(-0.2)  # b, c, d keep their order; a falls from first to last
    same = experiments.compare_rankings(real, real)
    assert same.attrs["spearman"] == pytest.approx(1.0) and not same["moved"].any()
    with pytest.raises(ValueError, match="share 1 model"):
        experiments.compare_rankings(runs({"a": [0.5], "x": [0.4]}), runs({"a": [0.5], "y": [0.3]}))


def test_notebook_protocol_constants():
    assert set(experiments.NOTEBOOK_MODELS) <= set(experiments.EXPERIMENTS)
    assert set(experiments.SMALL_MODELS) <= set(experiments.NOTEBOOK_MODELS)
    assert not set(experiments.HEAVY) & set(experiments.NOTEBOOK_MODELS)
    assert experiments.protocol(small=True) is experiments.SMALL_PROTOCOL
    assert experiments.protocol(small=False) is experiments.NOTEBOOK_PROTOCOL
    for p in (experiments.PROTOCOL, experiments.NOTEBOOK_PROTOCOL):
        assert p.splits == ("train", "cv") and len(p.seeds) == 3 and p.patience < p.epochs
        assert p.recipe == train.Recipe()  # every Keras model gets the same augmentation as the final model
        assert set(p.fit_kwargs()) <= set(experiments.run_experiment.__kwdefaults__) | {"epochs"}
    assert experiments.PROTOCOL.train_every == 1 and experiments.NOTEBOOK_PROTOCOL.train_every > 1
    for p in (experiments.PROTOCOL, experiments.NOTEBOOK_PROTOCOL, experiments.SMALL_PROTOCOL):
        assert p.monitor == "val_macro_f1" and p.min_epochs < p.epochs  # ranked and stopped by the same measure


def test_final_model_record_round_trip(tmp_path):
    path = experiments.save_final_model(tmp_path / "x" / "final_model.json", "res8", cv_macro_f1=np.float32(0.9))
    record = experiments.read_final_model(path)
    assert record["model"] == "res8" and record["cv_macro_f1"] == pytest.approx(0.9)
    with pytest.raises(KeyError):
        experiments.save_final_model(tmp_path / "bad.json", "no_such_model")
    with pytest.raises(FileNotFoundError, match="notebook 3"):
        experiments.read_final_model(tmp_path / "missing.json")


def test_final_model_path_is_in_the_work_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHLIB_HOME", str(tmp_path))
    path = experiments.final_model_path(tmp_path / "mydata", small=True)
    assert path == tmp_path / "work" / "mydata-small" / "experiments" / "final_model.json"
    assert config.SEED in experiments.PROTOCOL.seeds


def test_final_bundle_follows_the_datasets_recorded_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHLIB_HOME", str(tmp_path))
    dataset, store = tmp_path / "mydata", tmp_path / "work" / "mydata" / "features" / "logmel"
    # No choice recorded for the dataset: the package's default model.
    assert experiments.final_model_name(dataset, small=False) == train.DEFAULT_MODEL
    default = experiments.final_bundle_path(store, dataset, small=False)
    assert default == train.default_out(store, train.DEFAULT_MODEL) / "model.keras"
    # Notebook 3 chose another model for this dataset: its bundle, where notebook 4 saves it.
    other = next(name for name in ("ds_cnn_s", "res15") if name != train.DEFAULT_MODEL)
    experiments.save_final_model(experiments.final_model_path(dataset, small=False), other)
    assert experiments.final_model_name(dataset, small=False) == other
    assert experiments.final_bundle_path(store, dataset, small=False) == train.default_out(store, other) / "model.keras"
    # A chapter that needs a trained final model: the chosen one when trained, else the course's default, else an
    # error that says what to run.
    with pytest.raises(FileNotFoundError, match="run notebook 4"):
        experiments.trained_final_bundle(store, dataset, small=False)
    default.parent.mkdir(parents=True)
    default.write_bytes(b"")
    assert experiments.trained_final_bundle(store, dataset, small=False) == default
    chosen = train.default_out(store, other) / "model.keras"
    chosen.parent.mkdir(parents=True)
    chosen.write_bytes(b"")
    assert experiments.trained_final_bundle(store, dataset, small=False) == chosen
