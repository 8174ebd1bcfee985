"""The data pipeline in one call: dataset -> split -> feature store, each step done only once.

Notebooks 1-5, ``train_keras.py`` and ``train_tensorflow.py`` all start from
:func:`prepare`. It makes sure that

1. the dataset exists: ``SPEECHLIB_DATA`` (or the folder passed), else the
   embedded synthetic dataset, generated on first use
   (:func:`speechlib.datasets.synthesize`);
2. the split exists: ``<work dir>/split`` with the manifests and
   ``split.json`` (:func:`speechlib.split.make_split`);
3. the feature store exists: ``<work dir>/features/<kind>``
   (:func:`speechlib.featurize.featurize`).

A step whose output is complete is skipped; a step that was interrupted is
resumed (the generator and the featurizer both continue where they stopped;
the split is written atomically, so it is either there or redone). Small
mode (``SPEECHLIB_SMALL=1`` or ``small=True``) uses its own folders, so the
two modes never mix.

:func:`resolve` is what the training scripts' ``--path_to_data`` goes
through: a feature store is checked and used as it is, a raw dataset folder
(any layout :func:`speechlib.datasets.detect_layout` reads) is prepared with
:func:`prepare`, and anything else is refused with an :class:`InputError`
that says what the folder is and what to pass instead.

Example
-------
>>> from speechlib import pipeline
>>> prepared = pipeline.prepare(small=True)  # doctest: +SKIP
>>> prepared.store  # doctest: +SKIP
PosixPath('.../data/work/synthetic_small/features/logmel')
>>> pipeline.resolve("~/data/speech_commands_v0.01")  # doctest: +SKIP
PosixPath('.../data/work/speech_commands_v0.01/features/logmel')
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from speechlib import config

# speechlib.train imports this module and speechlib.cli imports train to build its parser (`speechlib --help`): the
# speechlib modules that load pandas, librosa or zarr (datasets, featurize, split, store) are imported in the
# functions that use them.

__all__ = ["TRAINING_SPLITS", "InputError", "Prepared", "check_store", "prepare", "resolve"]

TRAINING_SPLITS = ("train", "cv", "test")  # the store splits a training run reads


class InputError(ValueError):
    """Input a person gave (a path, a flag, a run to resume) that cannot be used.

    The message names the file or folder, what is wrong and what to do; the
    training scripts print it as one line (no traceback) and exit with code 2.
    """


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Where :func:`prepare` put things.

    Attributes
    ----------
    dataset : Path
        The raw dataset folder (only ever read).
    split_dir : Path
        The manifests and ``split.json``.
    store : Path
        The feature store folder (open it with :meth:`open_store`); not made yet when
        :func:`prepare` was asked for the split only (``features=False``).
    kind : str
        The feature kind of the store.
    small : bool
        Whether small mode was used.
    """

    dataset: Path
    split_dir: Path
    store: Path
    kind: str = "logmel"
    small: bool = False

    def open_store(self):
        """The :class:`speechlib.store.FeatureStore` (read-only)."""
        from speechlib.store import FeatureStore

        return FeatureStore(self.store)


def _store_complete(store_path: Path, split_dir: Path) -> bool:
    """True when every manifest of ``split_dir`` is a complete split of the store, with statistics."""
    from speechlib.featurize import MANIFEST_NAMES
    from speechlib.store import FeatureStore

    if not (store_path / "zarr.json").is_file():
        return False
    fs = FeatureStore(store_path)
    wanted = [name for name in MANIFEST_NAMES if (split_dir / f"{name}.csv").is_file()]
    return all(fs.is_complete(name) for name in wanted) and fs.normalization is not None


def prepare(
    dataset: str | os.PathLike | None = None,
    *,
    small: bool | None = None,
    kind: str = "logmel",
    seed: int = config.SEED,
    workers: int | None = None,
    verbose: bool = True,
    features: bool = True,
) -> Prepared:
    """Make sure the dataset, its split and its feature store exist; return where they are.

    Parameters
    ----------
    dataset : path, optional
        A Speech Commands folder (any layout the scanner reads). Default:
        ``config.dataset_dir()``: ``SPEECHLIB_DATA`` when set, else the
        embedded synthetic dataset, which is generated when missing.
    small : bool, optional
        Small mode (a few hundred clips); default ``config.is_small()``.
    kind : str
        Feature kind of the store (``speechlib.features.KINDS``).
    seed : int
        The *data* seed: of the synthetic generator, the split and the
        featurizer. Keep the default unless you mean to make another dataset;
        the training seed is separate (``speechlib.train.set_seed``).
    workers : int, optional
        Worker processes for generating and featurizing (default: all cores).
    verbose : bool
        Print one line per step and the featurizer's progress bars.
    features : bool
        Make the feature store too (default). ``False`` stops after the split, for
        the chapters that come before features are taught (notebook 1); the
        returned ``store`` is where the store will be.

    Returns
    -------
    Prepared
        ``dataset``, ``split_dir``, ``store``, ``kind``, ``small``.

    Raises
    ------
    FileNotFoundError
        ``dataset`` (or ``SPEECHLIB_DATA``) does not exist.
    """
    small = config.is_small() if small is None else bool(small)
    say = print if verbose else (lambda *a, **k: None)
    dataset_path = _ensure_dataset(dataset, small=small, seed=seed, workers=workers, say=say)
    work = config.work_dir(dataset_path, small)
    split_dir, store = work / "split", work / "features" / kind
    _ensure_split(dataset_path, split_dir, small=small, seed=seed, verbose=verbose, say=say)
    if features:
        _ensure_store(split_dir, store, kind=kind, seed=seed, workers=workers, verbose=verbose, say=say)
    else:
        say(f"[3/3] features: not computed here ({store} is made by `speechlib featurize` or notebook 2)")
    return Prepared(dataset=dataset_path, split_dir=split_dir, store=store, kind=kind, small=small)


def _ensure_dataset(
    dataset: str | os.PathLike | None, *, small: bool, seed: int, workers: int | None, say: Callable[..., None]
) -> Path:
    """Step 1: the dataset folder: the one given, SPEECHLIB_DATA, or the synthetic dataset (generated when missing)."""
    from speechlib import datasets
    from speechlib.datasets.synth import MARKER

    if dataset is None and not os.environ.get("SPEECHLIB_DATA"):
        target = config.synthetic_dir(small)
        done = (target / MARKER).is_file()
        say(f"[1/3] dataset: {target} ({'ready' if done else 'generating the synthetic dataset'})")
        return datasets.synthesize(target, small=small, seed=seed, workers=workers)
    dataset_path = Path(dataset if dataset is not None else config.dataset_dir(small)).expanduser().resolve()
    if not dataset_path.is_dir():
        raise FileNotFoundError(
            f"dataset folder {dataset_path} not found: pass an existing Speech Commands folder "
            "(or unset SPEECHLIB_DATA to use the embedded synthetic dataset)"
        )
    say(f"[1/3] dataset: {dataset_path}")
    return dataset_path


def _ensure_split(
    dataset_path: Path, split_dir: Path, *, small: bool, seed: int, verbose: bool, say: Callable[..., None]
) -> None:
    """Step 2: write the split, unless it is there (make_split writes atomically: split.json means complete)."""
    from speechlib import split

    if (split_dir / "split.json").is_file():
        say(f"[2/3] split: {split_dir} (ready)")
    else:
        say(f"[2/3] split: writing {split_dir}")
        split.make_split(dataset_path, split_dir, seed=seed, small=small, verbose=verbose)


def _ensure_store(
    split_dir: Path,
    store: Path,
    *,
    kind: str,
    seed: int,
    workers: int | None,
    verbose: bool,
    say: Callable[..., None],
) -> None:
    """Step 3: compute the feature store, unless complete (featurize resumes a partial one, skips complete splits)."""
    from speechlib import featurize

    if _store_complete(store, split_dir):
        say(f"[3/3] features: {store} (ready)")
    else:
        say(f"[3/3] features: computing {kind} into {store}")
        report = featurize.featurize(split_dir, store, kind=kind, workers=workers, seed=seed, progress=verbose)
        if verbose:
            print(featurize.format_report(report))


def check_store(store_path: str | os.PathLike, *, splits: tuple[str, ...] = TRAINING_SPLITS) -> Path:
    """Check that a feature store can be trained on: ``splits`` complete and normalisation statistics fitted.

    Parameters
    ----------
    store_path : path
        A feature store folder (``speechlib featurize``).
    splits : tuple of str
        The splits that must be complete.

    Returns
    -------
    Path
        The store folder, resolved.

    Raises
    ------
    InputError
        Not a speechlib store, a split missing or unfinished (the message
        names the ``speechlib featurize`` command that completes it), or no
        statistics.
    """
    from speechlib.store import FeatureStore, IncompleteStoreError, StoreError

    path = Path(store_path).expanduser().resolve()
    try:
        fs = FeatureStore(path)
    except (FileNotFoundError, StoreError) as err:
        raise InputError(str(err)) from err
    command = fs.attrs.get("command") or f"speechlib featurize --split-dir SPLIT_DIR --out {path}"
    present = fs.all_splits()
    for name in splits:
        if name in present:
            try:
                fs.open_split(name)
            except IncompleteStoreError as err:  # its message names the command that resumes it
                raise InputError(str(err)) from err
    missing = [name for name in splits if name not in present]
    if missing:
        split_dir = fs.attrs.get("split_dir") or "SPLIT_DIR"
        raise InputError(
            f"feature store {path} has no {', '.join(missing)} split (it has {', '.join(present) or 'none'}); "
            f"training needs {', '.join(splits)}: featurize them with `speechlib featurize --split-dir {split_dir} "
            f"--splits {','.join(missing)} --out {path}`, or pass the dataset folder instead"
        )
    if fs.normalization is None:
        raise InputError(
            f"feature store {path} has no normalisation statistics (its train split was not finished): "
            f"run `{command}` again to complete it"
        )
    return path


def _not_a_dataset(path: Path) -> str:
    """Why ``path`` (an existing folder) is neither a feature store nor a dataset, and what to pass instead."""
    from speechlib.datasets.scan import UNKNOWN_LAYOUT, detect_layout

    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if not entries:
        return f"{path} is an empty folder: pass a Speech Commands dataset folder or a feature store"
    if (path / "split.json").is_file():
        return (
            f"{path} is a split folder (manifests, no features): featurize it with `speechlib featurize "
            f"--split-dir {path} --out STORE` and pass STORE, or pass the dataset folder it was made from"
        )
    stores = sorted(p for p in path.glob("features/*") if (p / "zarr.json").is_file())
    if stores:
        return f"{path} is a work folder, not a dataset: pass its feature store, {stores[0]}"
    inner = [p.name for p in sorted(entries) if p.is_dir() and detect_layout(p) != UNKNOWN_LAYOUT]
    if inner:
        return f"{path} holds datasets, not word folders: pass one of them ({', '.join(inner)})"
    return (
        f"{path} has no class folders with WAV files in them: pass a Speech Commands folder "
        "(<folder>/<word>/<file>.wav, with _background_noise_/), the official test set "
        "(_unknown_/, _silence_/), Kaggle's train/ or train/audio/, one folder per class, or a feature store"
    )


def resolve(
    path: str | os.PathLike | None,
    *,
    small: bool | None = None,
    kind: str = "logmel",
    workers: int | None = None,
    verbose: bool = True,
) -> Path:
    """The feature store to train on, from what a user passes as ``--path_to_data``.

    Parameters
    ----------
    path : path or None
        A feature store (used as it is, after :func:`check_store`); a raw
        dataset folder in any layout the scanner reads (Speech Commands,
        the official test set, Kaggle's ``train/audio``, one folder per class),
        which is split and featurized into its work dir by :func:`prepare`
        (each step skipped when done); or None: the default dataset
        (``SPEECHLIB_DATA``, else the embedded synthetic one), prepared.
    small : bool, optional
        Small mode for a dataset that is prepared (default ``config.is_small()``).
    kind : str
        Feature kind of a store that is prepared.
    workers : int, optional
        Worker processes for preparing.
    verbose : bool
        Print the preparation steps.

    Returns
    -------
    Path
        A feature store with complete train, cv and test splits and statistics.

    Raises
    ------
    InputError
        ``path`` does not exist, is a file, an empty folder or no dataset; a
        half-written store or one without cv/test; a dataset that cannot be
        split or featurized. The message says what to do.
    """
    from speechlib.datasets.scan import UNKNOWN_LAYOUT, detect_layout
    from speechlib.store import IncompleteStoreError

    if path is not None:
        given = Path(path).expanduser()
        if not given.exists():
            raise InputError(
                f"{given} does not exist: pass a Speech Commands dataset folder or a feature store "
                "(or leave --path_to_data out to use the default dataset)"
            )
        if not given.is_dir():
            hint = f" (pass its folder, {given.parent})" if given.name == "zarr.json" else ""
            raise InputError(f"{given} is a file: pass a dataset folder or a feature store folder{hint}")
        given = given.resolve()
        if (given / "zarr.json").is_file():
            return check_store(given)
        if detect_layout(given) == UNKNOWN_LAYOUT:
            raise InputError(_not_a_dataset(given))
    try:
        prepared = prepare(None if path is None else given, small=small, kind=kind, workers=workers, verbose=verbose)
    except (FileNotFoundError, NotADirectoryError, IncompleteStoreError, ValueError) as err:
        # the dataset, split and featurize steps say which file or folder is wrong (LeakageError and
        # StoreError are ValueErrors too)
        where = "the default dataset" if path is None else str(given)
        raise InputError(f"cannot prepare {where} for training: {err}") from err
    return check_store(prepared.store)
