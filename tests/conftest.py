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


SLOW_MARKERS = ("notebooks", "spark")  # tests of these kinds start Spark or run whole chapters: minutes each


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every notebook and Spark test is also ``slow``: ``pytest -m "not slow"`` is the quick suite."""
    for item in items:
        if any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
