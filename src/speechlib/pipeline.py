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

Example
-------
>>> from speechlib import pipeline
>>> prepared = pipeline.prepare(small=True)  # doctest: +SKIP
>>> prepared.store  # doctest: +SKIP
PosixPath('.../data/work/synthetic_small/features/logmel')
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from speechlib import config

__all__ = ["Prepared", "prepare"]


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
        The feature store folder (open it with :meth:`open_store`).
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

    Returns
    -------
    Prepared
        ``dataset``, ``split_dir``, ``store``, ``kind``, ``small``.

    Raises
    ------
    FileNotFoundError
        ``dataset`` (or ``SPEECHLIB_DATA``) does not exist.
    """
    from speechlib import datasets, featurize, split
    from speechlib.datasets.synth import MARKER

    small = config.is_small() if small is None else bool(small)
    say = print if verbose else (lambda *a, **k: None)

    # 1. The dataset.
    if dataset is None and not os.environ.get("SPEECHLIB_DATA"):
        target = config.synthetic_dir(small)
        done = (target / MARKER).is_file()
        say(f"[1/3] dataset: {target} ({'ready' if done else 'generating the synthetic dataset'})")
        dataset_path = datasets.synthesize(target, small=small, seed=seed, workers=workers)
    else:
        dataset_path = Path(dataset if dataset is not None else config.dataset_dir(small)).expanduser().resolve()
        if not dataset_path.is_dir():
            raise FileNotFoundError(
                f"dataset folder {dataset_path} not found: pass an existing Speech Commands folder "
                "(or unset SPEECHLIB_DATA to use the embedded synthetic dataset)"
            )
        say(f"[1/3] dataset: {dataset_path}")

    # 2. The split (written atomically by make_split: split.json present means complete).
    work = config.work_dir(dataset_path, small)
    split_dir = work / "split"
    if (split_dir / "split.json").is_file():
        say(f"[2/3] split: {split_dir} (ready)")
    else:
        say(f"[2/3] split: writing {split_dir}")
        split.make_split(dataset_path, split_dir, seed=seed, small=small, verbose=verbose)

    # 3. The feature store (featurize resumes a partial store and skips complete splits).
    store = work / "features" / kind
    if _store_complete(store, split_dir):
        say(f"[3/3] features: {store} (ready)")
    else:
        say(f"[3/3] features: computing {kind} into {store}")
        report = featurize.featurize(split_dir, store, kind=kind, workers=workers, seed=seed, progress=verbose)
        if verbose:
            print(featurize.format_report(report))
    return Prepared(dataset=dataset_path, split_dir=split_dir, store=store, kind=kind, small=small)
