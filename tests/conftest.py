"""Fixtures shared by the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Real Speech Commands clips for development sit beside the checkout, when present.
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real Speech Commands clips beside the checkout; skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real Speech Commands clips not found at {SHARED_DATA} (only present in development checkouts)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic Speech Commands dataset, generated once per test session."""
    from speechlib import datasets

    out = tmp_path_factory.mktemp("synthetic") / "synthetic_small"
    datasets.synthesize(out, small=True, seed=1234)
    return out


@pytest.fixture(autouse=True)
def _no_small_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start in the mode of the environment; a test that changes it changes only itself."""
    monkeypatch.setenv("SPEECHLIB_SMALL", os.environ.get("SPEECHLIB_SMALL", "0"))


@pytest.fixture(scope="session")
def small_store(synthetic_small, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The feature store of the small synthetic dataset (split and featurized in a temporary home)."""
    from speechlib import pipeline

    saved = os.environ.get("SPEECHLIB_HOME")
    os.environ["SPEECHLIB_HOME"] = str(tmp_path_factory.mktemp("home"))
    try:
        return pipeline.prepare(synthetic_small, small=True, workers=2, verbose=False).store
    finally:
        if saved is None:
            os.environ.pop("SPEECHLIB_HOME", None)
        else:
            os.environ["SPEECHLIB_HOME"] = saved


TINY_EPOCHS = 40  # enough for the small CNN below to know the ~400 small training clips, shifted and in noise


def tiny_model(input_shape: tuple[int, int], num_classes: int):
    """Two small convolutions and a global max over time and frequency: shift-invariant and quick to train."""
    import keras

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Reshape((*input_shape, 1))(inputs)
    x = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", padding="same")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x), name="tiny_cnn")


@pytest.fixture(scope="session")
def tiny_bundle(small_store) -> Path:
    """A real trained bundle for tests: a small CNN trained for seconds on the small store, saved beside it.

    Trained once per test session (shift and noise augmentation, no mocks); the
    path is the bundle's ``model.keras``, for ``inference.load_bundle``.
    """
    from speechlib import config, inference, train

    train.set_seed(config.SEED)
    recipe = train.Recipe(gain=False, spec_augment=False, snr_db=(10.0, 30.0))  # shift and noise
    data = train.load_data(small_store, batch_size=32, seed=config.SEED, recipe=recipe)
    model = tiny_model(data.feature_shape, data.num_classes)
    train.compile_model(model, lr=1e-2, steps_per_epoch=int(data.train.cardinality()), epochs=TINY_EPOCHS)
    model.fit(data.train, epochs=TINY_EPOCHS, verbose=0, class_weight=data.class_weight)
    out = train.default_out(small_store, "tiny_cnn")
    return inference.save_bundle(model, out / "model.keras", **data.bundle_info(), data=str(small_store)).path


SLOW_MARKERS = ("notebooks", "spark")  # tests of these kinds start Spark or run whole chapters: minutes each


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every notebook and Spark test is also ``slow``: ``pytest -m "not slow"`` is the quick suite."""
    for item in items:
        if any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
