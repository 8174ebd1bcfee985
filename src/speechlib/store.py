"""The on-disk feature store: chunked, compressed, appendable, resumable, read lazily.

A store is a folder holding one zarr v3 group per split (``train``, ``cv``,
``test``, ``sample_train``, ...). Each split group holds

``X``
    float32, shape ``(N, *feature_shape)``, e.g. ``(N, 101, 40)`` for log-mel,
    chunked along N (about 8 MiB of rows per chunk), Blosc-compressed
    (zstd level 1, byte shuffle) — bcolz's own compressor, in a maintained format.
``y``
    int32, shape ``(N,)``: the ``label_id`` of each row.
``row``
    int64, shape ``(N,)``: the index of the row's clip in ``manifest.csv``.
``augment``
    int16, shape ``(N,)``: 0 for the clip itself, ``k`` for its k-th
    augmented copy (``speechlib featurize --augment N``).
``manifest.csv``
    a copy of the split's source manifest (``split.py``); the manifest rows
    aligned with ``X`` are ``manifest.iloc[row]`` — see
    :meth:`FeatureStore.manifest`. Clips that could not be read have no row.

The root group's attributes record the feature ``kind`` and every parameter,
the ``labels``, the normalisation statistics (``mean``/``std`` fitted on the
training split only), and the speechlib version. A split group's attributes
record its progress: ``rows_committed`` (rows of X known good, updated after
each chunk is written), ``manifest_rows_done``, the skipped files with their
reasons, the source manifest's SHA-256, and last of all ``complete: true``.
A split without that marker is refused on open (:class:`IncompleteStoreError`);
re-running ``speechlib featurize`` resumes it from ``rows_committed``.

Reading
-------
``FeatureStore(path).load_array("cv")``
    a small split as numpy arrays.
``FeatureStore(path).batches("train", batch_size=64)``
    batches streamed from disk with bounded memory, shuffled across chunks:
    the chunk order is shuffled, then rows within a window of a few chunks.
``.keras_dataset(...)`` / ``.tf_dataset(...)``
    the same batches as a ``keras.utils.PyDataset`` or a ``tf.data.Dataset``.

Compatibility with the original course (bcolz)
----------------------------------------------
:func:`export_bcolz` writes ``<split>_X.bc`` and ``<split>_y.bc`` carrays
(bcolz-zipline) and :func:`import_bcolz` reads such folders into a store.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import bcolz
import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec

from speechlib import __version__, config, features
from speechlib._json import jsonable as _jsonable
from speechlib.manifest import read as read_manifest

STORE_FORMAT = "speechlib-feature-store"
STORE_FORMAT_VERSION = 1
CHUNK_BYTES = 8 * 2**20  # target uncompressed bytes per chunk of X: big enough to compress well, small to stream
MANIFEST_FILE = "manifest.csv"  # copy of the split's source manifest, inside the split's group folder
REPORT_FILE = "report.json"  # the featurizer's last report, at the store's root


def _compressor() -> BloscCodec:
    # zstd level 1 with byte shuffle. Log-mel of real speech is noisy float32: it shrinks only ~1.2x (more with
    # silence or padding), and higher levels gain little but cost encoding time in the featurizer's main process;
    # lz4 is 6x faster to encode but saves nothing.
    return BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")


class IncompleteStoreError(RuntimeError):
    """A split of a feature store whose writing did not finish (no completion marker)."""


class StoreError(ValueError):
    """A feature store that cannot be used as asked (missing split, mismatched parameters, ...)."""


def chunk_rows_for(row_shape: Sequence[int], *, itemsize: int = 4, target_bytes: int = CHUNK_BYTES) -> int:
    """Rows per chunk of X for rows of ``row_shape``: a power of two near ``target_bytes`` per chunk.

    Parameters
    ----------
    row_shape : sequence of int
        Shape of one row (one clip's features), e.g. ``(101, 40)``.
    itemsize : int
        Bytes per value (4 for float32).
    target_bytes : int
        Wanted uncompressed bytes per chunk.

    Returns
    -------
    int
        Between 16 and 4096; 512 for ``(101, 40)`` float32.
    """
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * itemsize)
    rows = 2 ** int(np.round(np.log2(max(1.0, target_bytes / row_bytes))))
    return int(np.clip(rows, 16, 4096))


def is_store(path: str | Path) -> bool:
    """True when ``path`` is a folder holding a speechlib feature store (a zarr group with its ``format``)."""
    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        return False
    try:
        attributes = json.loads(meta.read_text(encoding="utf-8")).get("attributes", {})
    except (OSError, ValueError):
        return False
    return isinstance(attributes, dict) and attributes.get("format") == STORE_FORMAT


def check_store_target(path: str | Path) -> None:
    """Refuse a ``path`` a store must not be written into: a file, or a non-empty folder that is not a store.

    A new path, an empty folder and an existing feature store are accepted.

    Raises
    ------
    StoreError
        The message names the folder and says what to do; nothing was changed.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} is a file, not a feature store folder: choose a new or empty folder for --out")
    if path.is_dir() and not is_store(path) and any(path.iterdir()):
        raise StoreError(
            f"{path} is a folder that is not a speechlib feature store and is not empty: nothing was written or "
            "deleted there. Choose a new or empty folder for --out (--overwrite replaces only a feature store)"
        )


def remove_store(path: str | Path) -> None:
    """Delete a feature store: its ``zarr.json``, its split groups and ``report.json`` (nothing else).

    Raises
    ------
    StoreError
        ``path`` is not a feature store (nothing is deleted).
    """
    path = Path(path)
    if not is_store(path):
        raise StoreError(f"{path} is not a speechlib feature store: refusing to delete anything there")
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink() and (entry / "zarr.json").is_file():
            shutil.rmtree(entry)  # a split group
    for name in (REPORT_FILE, "zarr.json"):  # zarr.json last: an interrupted removal is still a store
        (path / name).unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes (used to tie a store to its source manifest)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _create_root(path: Path, wanted: dict, attrs: dict) -> None:
    """The root group of a new store at ``path``: its format, settings and extra attributes, no normalisation yet."""
    # create_group never deletes: it refuses a folder that already holds a zarr group.
    zarr.create_group(
        store=str(path),
        zarr_format=3,
        attributes=_jsonable(
            {
                "format": STORE_FORMAT,
                "format_version": STORE_FORMAT_VERSION,
                **wanted,
                "normalization": None,
                "speechlib_version": __version__,
                **attrs,
            }
        ),
    )


class FeatureStore:
    """A feature store folder: one zarr group per split plus shared attributes.

    Parameters
    ----------
    path : str or Path
        The store folder (created by :meth:`create` or ``speechlib featurize``).
    mode : {"r", "a"}
        ``"r"`` to read; ``"a"`` to also write splits and attributes.

    Examples
    --------
    >>> fs = FeatureStore("data/work/synthetic/features/logmel")  # doctest: +SKIP
    >>> X, y = fs.load_array("cv")  # doctest: +SKIP
    >>> for X_batch, y_batch in fs.batches("train", batch_size=64):  # doctest: +SKIP
    ...     pass
    """

    def __init__(self, path: str | Path, mode: str = "r") -> None:
        self.path = Path(path)
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")
        if not (self.path / "zarr.json").is_file():
            raise FileNotFoundError(
                f"{self.path} is not a speechlib feature store (no zarr.json): "
                "create one with `speechlib featurize --split-dir DIR --out STORE`"
            )
        self.mode = mode
        self.root = zarr.open_group(str(self.path), mode="r+" if mode == "a" else "r", zarr_format=3)
        if self.root.attrs.get("format") != STORE_FORMAT:
            raise StoreError(
                f"{self.path} is a zarr group but not a speechlib feature store (attribute format missing)"
            )

    # --- creation -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        kind: str,
        params: dict,
        labels: Sequence[str],
        feature_shape: Sequence[int],
        overwrite: bool = False,
        **attrs: Any,
    ) -> FeatureStore:
        """Create an empty store (or open the existing one when its kind and parameters match).

        Parameters
        ----------
        path : str or Path
            The store folder.
        kind : str
            Feature kind, e.g. ``"logmel"`` (see ``speechlib.features``).
        params : dict
            Every parameter of the features, recorded with the data.
        labels : sequence of str
            Class names; ``label_id`` ``i`` is ``labels[i]``.
        feature_shape : sequence of int
            Shape of one row of X, e.g. ``(101, 40)``.
        overwrite : bool
            Delete an existing store at ``path`` first: only what a store is made
            of (its ``zarr.json``, split groups and ``report.json``); any other
            file in the folder is left alone.
        **attrs
            More root attributes to record (JSON-serialisable).

        Raises
        ------
        StoreError
            When a store exists at ``path`` with another kind, parameters or
            labels, or ``path`` is a file or a non-empty folder that is not a
            feature store (nothing is written or deleted then, even with
            ``overwrite``).
        """
        path = Path(path)
        wanted = _jsonable(
            {"kind": kind, "params": dict(params), "labels": list(labels), "feature_shape": list(feature_shape)}
        )
        check_store_target(path)
        if overwrite and is_store(path):
            remove_store(path)
        if (path / "zarr.json").is_file():
            return cls._open_matching(path, wanted)
        path.mkdir(parents=True, exist_ok=True)
        _create_root(path, wanted, attrs)
        return cls(path, mode="a")

    @classmethod
    def _open_matching(cls, path: Path, wanted: dict) -> FeatureStore:
        """The existing store at ``path``, refused when its kind, parameters, labels or feature shape differ."""
        store = cls(path, mode="a")
        have = {key: store.root.attrs.get(key) for key in wanted}
        if have != wanted:
            diff = {k: (have[k], wanted[k]) for k in wanted if have[k] != wanted[k]}
            raise StoreError(
                f"{path} holds features made with other settings {diff} (stored, requested): "
                "choose another --out folder, or delete it (or pass overwrite=True / --overwrite) to start over"
            )
        return store

    # --- attributes -----------------------------------------------------------

    @property
    def attrs(self) -> dict:
        """The store's root attributes (kind, params, labels, normalization, version, ...)."""
        return self.root.attrs.asdict()

    @property
    def kind(self) -> str:
        """Feature kind, e.g. ``"logmel"``."""
        return self.root.attrs["kind"]

    @property
    def params(self) -> dict:
        """Every parameter of the stored features."""
        return dict(self.root.attrs["params"])

    @property
    def labels(self) -> list[str]:
        """Class names, indexed by ``label_id``."""
        return list(self.root.attrs["labels"])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.labels)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one row of X, e.g. ``(101, 40)``."""
        return tuple(self.root.attrs["feature_shape"])

    @property
    def clip_samples(self) -> int:
        """Samples every clip was fitted to before its features were computed (``CLIP_SAMPLES`` unless recorded)."""
        return int(self.root.attrs.get("clip_samples", config.CLIP_SAMPLES))

    @property
    def normalization(self) -> dict | None:
        """``{"mean": ndarray, "std": ndarray, "fit_on": split}`` or None when not fitted yet."""
        norm = self.root.attrs.get("normalization")
        if not norm:
            return None
        return {
            "mean": np.asarray(norm["mean"], dtype=np.float32),
            "std": np.asarray(norm["std"], dtype=np.float32),
            "fit_on": norm.get("fit_on", ""),
        }

    def set_normalization(self, mean: np.ndarray, std: np.ndarray, *, fit_on: str) -> None:
        """Record normalisation statistics (per-band mean/std, fitted on ``fit_on`` only)."""
        self._require_write()
        self.root.attrs["normalization"] = {
            "mean": np.asarray(mean, dtype=np.float32).tolist(),
            "std": np.asarray(std, dtype=np.float32).tolist(),
            "fit_on": fit_on,
        }

    def fit_normalization(self, split: str = "train") -> dict:
        """Fit per-band mean/std on ``split`` (streamed chunk by chunk) and record them.

        Uses ``speechlib.features.fit_normalizer`` so that every part of the
        project normalises the same way. Returns the statistics.
        """
        X, _ = self.open_split(split)
        step = X.chunks[0]
        stats = features.fit_normalizer(X[start : start + step] for start in range(0, X.shape[0], step))
        self.set_normalization(stats["mean"], stats["std"], fit_on=split)
        return self.normalization

    def normalize(self, X: np.ndarray) -> np.ndarray:
        """``(X - mean) / std`` per band with the store's statistics (``speechlib.features.normalize``), float32.

        Raises
        ------
        StoreError
            When no statistics were fitted (featurize the train split first).
        """
        norm = self.normalization
        if norm is None:
            raise StoreError(
                f"{self.path} has no normalisation statistics: featurize the train split "
                "(`speechlib featurize ... --splits train`) or call fit_normalization('train')"
            )
        return features.normalize(X, norm)

    # --- splits ---------------------------------------------------------------

    def all_splits(self) -> list[str]:
        """Every split group in the store, complete or not."""
        # Listed from the folder: zarr's own listing warns about report.json beside the groups.
        return sorted(p.name for p in self.path.iterdir() if (p / "zarr.json").is_file())

    def splits(self) -> list[str]:
        """The complete splits (those that can be read)."""
        return [s for s in self.all_splits() if self.is_complete(s)]

    def is_complete(self, split: str) -> bool:
        """True when ``split`` exists and its completion marker was written."""
        return split in self.root and bool(self.root[split].attrs.get("complete", False))

    def info(self, split: str) -> dict:
        """The split group's attributes (rows_committed, skipped files, manifest hash, ...)."""
        self._require_split(split)
        return self.root[split].attrs.asdict()

    def _require_split(self, split: str) -> None:
        if split not in self.root:
            raise StoreError(f"{self.path} has no split {split!r}; it has {self.all_splits()}")

    def _require_write(self) -> None:
        if self.mode != "a":
            raise StoreError(f"{self.path} was opened read-only; open it with FeatureStore(path, mode='a')")

    def open_split(self, split: str) -> tuple[zarr.Array, zarr.Array]:
        """The lazy ``(X, y)`` zarr arrays of a complete split.

        Raises
        ------
        IncompleteStoreError
            When the split's writing did not finish.
        StoreError
            When the split does not exist.
        """
        self._require_split(split)
        group = self.root[split]
        if not group.attrs.get("complete", False):
            attrs = group.attrs.asdict()
            done = attrs.get("manifest_rows_done", attrs.get("rows_committed", 0))
            total = attrs.get("manifest_rows", "?")
            command = self.root.attrs.get("command") or "speechlib featurize --split-dir DIR --out " + str(self.path)
            raise IncompleteStoreError(
                f"split {split!r} of feature store {self.path} was not finished ({done} of {total} manifest rows "
                f"done); run `{command}` again to resume"
            )
        return group["X"], group["y"]

    def num_rows(self, split: str) -> int:
        """Rows of X in a complete split."""
        return int(self.open_split(split)[1].shape[0])

    def load_array(self, split: str, *, normalize: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Read a whole (small) split into memory.

        Returns
        -------
        X : np.ndarray, shape (N, *feature_shape), float32
        y : np.ndarray, shape (N,), int32
        """
        X, y = self.open_split(split)
        X, y = X[:], y[:]
        return (self.normalize(X) if normalize else X), y

    def manifest(self, split: str) -> pd.DataFrame:
        """The manifest rows aligned with X (row ``i`` describes ``X[i]``).

        The source manifest's columns plus ``row`` (index in the source
        manifest) and ``augment`` (0 for the clip, k for its k-th augmented
        copy). Splits imported from bcolz have no manifest: the frame then
        holds ``label_id``, ``row`` and ``augment`` only.
        """
        self._require_split(split)
        group = self.root[split]
        self.open_split(split)
        row = group["row"][:]
        aug = group["augment"][:]
        source = self.path / split / MANIFEST_FILE
        if source.is_file():
            frame = read_manifest(source).iloc[row].reset_index(drop=True)
        else:
            frame = pd.DataFrame({"label_id": group["y"][:]})
        frame["row"] = row
        frame["augment"] = aug
        return frame

    def new_split(
        self,
        split: str,
        *,
        manifest_path: str | Path | None = None,
        overwrite: bool = False,
        chunk_rows: int | None = None,
        **attrs: Any,
    ) -> SplitWriter:
        """Start writing ``split`` (or resume it when an unfinished one exists).

        Parameters
        ----------
        split : str
            Split name, e.g. ``"train"``.
        manifest_path : str or Path, optional
            The source manifest CSV; copied into the split and hashed, so a
            resumed run can check it still describes the same clips.
        overwrite : bool
            Delete an existing group of that name (complete or not) first.
        chunk_rows : int, optional
            Rows per chunk of X (default :func:`chunk_rows_for` the feature shape).
        **attrs
            More split attributes (e.g. ``augment``, ``manifest_rows``).

        Returns
        -------
        SplitWriter

        Raises
        ------
        StoreError
            When a group exists from another manifest, or is complete (and not ``overwrite``).
        """
        self._require_write()
        sha = file_sha256(manifest_path) if manifest_path is not None else ""
        if not self._resumable(split, sha, overwrite=overwrite):
            self._create_split_group(split, manifest_path=manifest_path, sha=sha, chunk_rows=chunk_rows, attrs=attrs)
        return SplitWriter(self, split)

    def _resumable(self, split: str, sha: str, *, overwrite: bool) -> bool:
        """Whether an unfinished ``split`` of this manifest is there to resume (one to start afresh is deleted)."""
        if split not in self.root:
            return False
        old = self.root[split].attrs.asdict()
        # Nothing committed yet (possibly killed while setting up): start the split afresh.
        if overwrite or (not old.get("complete", False) and not old.get("rows_committed", 0)):
            shutil.rmtree(self.path / split)
            if split not in self.root:
                return False
        if old.get("source_manifest_sha256", "") != sha:
            raise StoreError(
                f"split {split!r} of {self.path} was made from another manifest "
                f"({old.get('source_manifest', '?')}): delete the store or use --overwrite to start over"
            )
        if old.get("complete", False):
            raise StoreError(f"split {split!r} of {self.path} is already complete; use append() to add rows")
        return True

    def _create_split_group(
        self, split: str, *, manifest_path: str | Path | None, sha: str, chunk_rows: int | None, attrs: dict
    ) -> None:
        """An empty split group: its attributes, empty X, y, row and augment arrays, a copy of the manifest."""
        group = self.root.create_group(
            split,
            attributes=_jsonable(
                {
                    "rows_committed": 0,
                    "manifest_rows_done": 0,
                    "skipped": [],
                    "source_manifest": str(manifest_path or ""),
                    "source_manifest_sha256": sha,
                    **attrs,
                    "complete": False,
                }
            ),
        )
        shape = tuple(self.feature_shape)
        rows = chunk_rows or chunk_rows_for(shape)
        group.create_array(
            "X", shape=(0, *shape), chunks=(rows, *shape), dtype="float32", compressors=_compressor(), fill_value=0.0
        )
        small = {"chunks": (max(rows, 4096),), "compressors": _compressor()}
        group.create_array("y", shape=(0,), dtype="int32", fill_value=-1, **small)
        group.create_array("row", shape=(0,), dtype="int64", fill_value=-1, **small)
        group.create_array("augment", shape=(0,), dtype="int16", fill_value=0, **small)
        if manifest_path is not None:
            shutil.copyfile(manifest_path, self.path / split / MANIFEST_FILE)

    def append(self, split: str) -> SplitWriter:
        """A writer that adds rows to an existing split (its completion marker is removed until finish())."""
        self._require_write()
        self._require_split(split)
        self.root[split].attrs["complete"] = False
        return SplitWriter(self, split)

    # --- lazy reading -----------------------------------------------------------

    def batches(
        self,
        split: str,
        *,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = config.SEED,
        window_chunks: int = 4,
        normalize: bool = False,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        drop_remainder: bool = False,
    ) -> BatchReader:
        """Batches of ``split`` streamed from disk; see :class:`BatchReader`."""
        return BatchReader(
            self,
            split,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            window_chunks=window_chunks,
            normalize=normalize,
            transform=transform,
            drop_remainder=drop_remainder,
        )

    def keras_dataset(self, split: str, *, workers: int = 1, **kwargs: Any) -> Any:
        """A ``keras.utils.PyDataset`` over :meth:`batches` (threads only; new order every epoch).

        ``kwargs`` are those of :meth:`batches`.
        """
        return _keras_dataset_class()(self.batches(split, **kwargs), workers=workers)

    def tf_dataset(self, split: str, **kwargs: Any) -> Any:
        """A ``tf.data.Dataset`` of ``(X_batch, y_batch)`` over :meth:`batches`.

        Each pass over the dataset is one epoch in a new shuffled order.
        ``kwargs`` are those of :meth:`batches`. Add ``.prefetch(tf.data.AUTOTUNE)``
        to overlap reading with training.
        """
        import tensorflow as tf

        reader = self.batches(split, **kwargs)
        signature = (
            tf.TensorSpec(shape=(None, *self.feature_shape), dtype=tf.float32),
            tf.TensorSpec(shape=(None,), dtype=tf.int32),
        )
        return tf.data.Dataset.from_generator(reader.epoch, output_signature=signature)


class SplitWriter:
    """Appends chunks of rows to one split and commits progress after each (see :meth:`FeatureStore.new_split`).

    Progress lives in the split's attributes: ``rows_committed`` is written
    only after the rows' data, so a killed run leaves a consistent prefix;
    a new writer truncates anything beyond it.
    """

    def __init__(self, store: FeatureStore, split: str) -> None:
        self.store = store
        self.split = split
        self.group = store.root[split]
        self.rows_committed = int(self.group.attrs.get("rows_committed", 0))
        self.manifest_rows_done = int(self.group.attrs.get("manifest_rows_done", 0))
        self.skipped = list(self.group.attrs.get("skipped", []))
        # Rows written after the last commit by a killed run are not data: cut them off.
        for name in ("X", "y", "row", "augment"):
            array = self.group[name]
            if array.shape[0] != self.rows_committed:
                array.resize((self.rows_committed, *array.shape[1:]))

    def append(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        rows: np.ndarray | None = None,
        augment: np.ndarray | None = None,
        manifest_rows: int | None = None,
        skipped: Sequence[dict] = (),
    ) -> int:
        """Write rows at the end of the split, then commit them.

        Parameters
        ----------
        X : np.ndarray, shape (n, *feature_shape), float32
        y : np.ndarray, shape (n,), int
            ``label_id`` of each row.
        rows : np.ndarray, shape (n,), int, optional
            Index of each row's clip in the split's manifest (default: running count).
        augment : np.ndarray, shape (n,), int, optional
            0 for clips, k for the k-th augmented copy (default 0).
        manifest_rows : int, optional
            Manifest rows consumed by this chunk, including skipped ones (default n).
        skipped : sequence of dict
            ``{"row", "path", "reason"}`` for each clip of the chunk that could not be used.

        Returns
        -------
        int
            Rows committed so far.
        """
        X = np.asarray(X, dtype=np.float32)
        n = X.shape[0]
        if X.shape[1:] != self.store.feature_shape:
            raise StoreError(
                f"rows of shape {X.shape[1:]} do not fit store {self.store.path} of {self.store.feature_shape}"
            )
        if rows is None:
            rows = np.arange(self.manifest_rows_done, self.manifest_rows_done + n)
        if augment is None:
            augment = np.zeros(n, dtype=np.int16)
        start, stop = self.rows_committed, self.rows_committed + n
        if n:
            for name, values, dtype in (
                ("X", X, np.float32),
                ("y", y, np.int32),
                ("row", rows, np.int64),
                ("augment", augment, np.int16),
            ):
                array = self.group[name]
                array.resize((stop, *array.shape[1:]))
                array[start:stop] = np.asarray(values, dtype=dtype)
        self.rows_committed = stop
        self.manifest_rows_done += n if manifest_rows is None else manifest_rows
        self.skipped.extend(_jsonable(list(skipped)))
        # The commit: one atomic write of the group's attributes, after the data. (Not attrs.update(),
        # which zarr performs as one write per key: a kill in between would leave them inconsistent.)
        self.group.update_attributes(
            {
                "rows_committed": self.rows_committed,
                "manifest_rows_done": self.manifest_rows_done,
                "skipped": self.skipped,
            }
        )
        return self.rows_committed

    def finish(self, **attrs: Any) -> None:
        """Record final attributes, then the completion marker (written last)."""
        self.group.update_attributes(_jsonable(attrs))
        self.group.update_attributes({"complete": True})


class BatchReader:
    """Batches of one split read from disk with bounded memory, shuffled across chunks.

    Each epoch the chunk order is shuffled, chunks are grouped into windows
    of ``window_chunks``, and rows are shuffled within each window; batches
    are consecutive slices of that order, so every row appears exactly once
    per epoch. At most ``window_chunks + 1`` decoded chunks are held.

    Supports ``len()``, indexing (``reader[i]`` is batch ``i`` of the current
    epoch), :meth:`on_epoch_end` (next epoch, new order) and :meth:`epoch`
    (a generator over one epoch that then advances).

    Parameters
    ----------
    store : FeatureStore
    split : str
    batch_size : int
    shuffle : bool
        False reads rows in stored order.
    seed : int
        Orders are a function of ``(seed, epoch)``: reproducible.
    window_chunks : int
        Chunks whose rows are mixed together.
    normalize : bool
        Apply the store's mean/std (fitted on train).
    transform : callable, optional
        ``transform(X_batch) -> X_batch`` applied last (e.g. SpecAugment).
    drop_remainder : bool
        Drop the last, smaller batch.
    """

    def __init__(
        self,
        store: FeatureStore,
        split: str,
        *,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = config.SEED,
        window_chunks: int = 4,
        normalize: bool = False,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        drop_remainder: bool = False,
    ) -> None:
        if batch_size < 1 or window_chunks < 1:
            raise ValueError("batch_size and window_chunks must be at least 1")
        self.store = store
        self.split = split
        self.X, y = store.open_split(split)
        self.y = y[:]  # 4 bytes a row: small enough to hold
        self.num_rows = int(self.X.shape[0])
        self.chunk_rows = int(self.X.chunks[0])
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.window_chunks = window_chunks
        self.norm = store.normalization if normalize else None
        if normalize and self.norm is None:
            store.normalize(np.zeros((1, *store.feature_shape), np.float32))  # raises the explanatory StoreError
        self.transform = transform
        self.drop_remainder = drop_remainder
        self.epoch_index = 0
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._plan()

    def _plan(self) -> None:
        n, size = self.num_rows, self.chunk_rows
        chunk_ids = np.arange(-(-n // size))
        if not self.shuffle:
            self.order = np.arange(n)
            return
        rng = np.random.default_rng([self.seed, self.epoch_index])
        rng.shuffle(chunk_ids)
        parts = []
        for w in range(0, len(chunk_ids), self.window_chunks):
            rows = np.concatenate(
                [np.arange(c * size, min((c + 1) * size, n)) for c in chunk_ids[w : w + self.window_chunks]]
            )
            rng.shuffle(rows)
            parts.append(rows)
        self.order = np.concatenate(parts) if parts else np.arange(0)

    def __len__(self) -> int:
        if self.drop_remainder:
            return self.num_rows // self.batch_size
        return -(-self.num_rows // self.batch_size)

    def _chunk(self, c: int) -> np.ndarray:
        with self._lock:
            if c in self._cache:
                self._cache.move_to_end(c)
                return self._cache[c]
        data = self.X[c * self.chunk_rows : (c + 1) * self.chunk_rows]
        with self._lock:
            self._cache[c] = data
            while len(self._cache) > self.window_chunks + 1:
                self._cache.popitem(last=False)
        return data

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range (0..{len(self) - 1})")
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        X = np.empty((len(rows), *self.X.shape[1:]), dtype=np.float32)
        chunk_of = rows // self.chunk_rows
        for c in np.unique(chunk_of):
            mask = chunk_of == c
            X[mask] = self._chunk(int(c))[rows[mask] - c * self.chunk_rows]
        if self.norm is not None:
            X = self.store.normalize(X)
        if self.transform is not None:
            X = np.asarray(self.transform(X), dtype=np.float32)
        return X, self.y[rows]

    def on_epoch_end(self) -> None:
        """Advance to the next epoch: a new shuffled order."""
        self.epoch_index += 1
        self._plan()

    def epoch(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield every batch of the current epoch, then advance to the next epoch."""
        for index in range(len(self)):
            yield self[index]
        self.on_epoch_end()

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.epoch()


_KERAS_CLASS: list[type] = []


def _keras_dataset_class() -> type:
    """The keras PyDataset subclass over a BatchReader (defined on first use: keras imports TensorFlow)."""
    if _KERAS_CLASS:
        return _KERAS_CLASS[0]
    import keras

    class StoreDataset(keras.utils.PyDataset):
        """A ``keras.utils.PyDataset`` over a :class:`BatchReader`."""

        def __init__(self, reader: BatchReader, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.reader = reader

        def __len__(self) -> int:
            return len(self.reader)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            return self.reader[index]

        def on_epoch_end(self) -> None:
            self.reader.on_epoch_end()

    _KERAS_CLASS.append(StoreDataset)
    return StoreDataset


# --- bcolz compatibility (the original course) ---------------------------------


def export_bcolz(store: FeatureStore | str | Path, split: str, out_dir: str | Path) -> tuple[Path, Path]:
    """Write a split as bcolz carrays ``<split>_X.bc`` and ``<split>_y.bc``, as the original course did.

    Chunks are streamed, so memory stays bounded. Read them back with
    ``bcolz.open(path)[:]`` (the original code) or :func:`import_bcolz`.

    Returns
    -------
    (Path, Path)
        The X and y carray folders.
    """
    fs = store if isinstance(store, FeatureStore) else FeatureStore(store)
    X, y = fs.open_split(split)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_dir, y_dir = out_dir / f"{split}_X.bc", out_dir / f"{split}_y.bc"
    step = X.chunks[0]
    x_bc = bcolz.carray(np.empty((0, *X.shape[1:]), np.float32), rootdir=str(x_dir), mode="w")
    for start in range(0, X.shape[0], step):
        x_bc.append(X[start : start + step])
    x_bc.flush()
    y_bc = bcolz.carray(y[:], rootdir=str(y_dir), mode="w")
    y_bc.flush()
    attrs = {"kind": fs.kind, "params": fs.params, "labels": fs.labels}
    x_bc.attrs["speechlib"] = json.dumps(_jsonable(attrs))
    return x_dir, y_dir


def import_bcolz(
    bcolz_dir: str | Path,
    out: str | Path,
    *,
    splits: Sequence[str] | None = None,
    kind: str | None = None,
    params: dict | None = None,
    labels: Sequence[str] | None = None,
) -> FeatureStore:
    """Read ``<split>_X.bc`` / ``<split>_y.bc`` carray folders into a feature store.

    Parameters
    ----------
    bcolz_dir : str or Path
        Folder holding the carrays (as written by the original course or :func:`export_bcolz`).
    out : str or Path
        The store folder to create or add to.
    splits : sequence of str, optional
        Which splits to import (default: every ``*_X.bc`` found).
    kind, params, labels : optional
        Feature description; default: what :func:`export_bcolz` recorded, else
        ``"unknown"``, ``{}`` and ``["0", "1", ...]``.

    Returns
    -------
    FeatureStore
        The store, opened for writing.
    """
    bcolz_dir = Path(bcolz_dir)
    if splits is None:
        splits = sorted(p.name[: -len("_X.bc")] for p in bcolz_dir.glob("*_X.bc"))
    if not splits:
        raise FileNotFoundError(f"no <split>_X.bc folders in {bcolz_dir}: nothing to import")
    store = None
    for split in splits:
        x_path, y_path = bcolz_dir / f"{split}_X.bc", bcolz_dir / f"{split}_y.bc"
        for p in (x_path, y_path):
            if not p.is_dir():
                raise FileNotFoundError(f"{p} not found: a bcolz split needs both {split}_X.bc and {split}_y.bc")
        x_bc, y_bc = bcolz.open(str(x_path), mode="r"), bcolz.open(str(y_path), mode="r")
        if len(x_bc) != len(y_bc):
            raise StoreError(f"{x_path} has {len(x_bc)} rows but {y_path} has {len(y_bc)}: not a matching pair")
        bc_attrs = dict(iter(x_bc.attrs))  # bcolz attrs iterate as (key, value) pairs; `in` does not work
        recorded = json.loads(bc_attrs["speechlib"]) if "speechlib" in bc_attrs else {}
        y_all = np.asarray(y_bc[:])
        if store is None:
            n_classes = int(y_all.max()) + 1 if len(y_all) else 0
            store = FeatureStore.create(
                out,
                kind=kind or recorded.get("kind", "unknown"),
                params=params if params is not None else recorded.get("params", {}),
                labels=labels or recorded.get("labels", [str(i) for i in range(n_classes)]),
                feature_shape=x_bc.shape[1:],
                imported_from=str(bcolz_dir),
            )
        writer = store.new_split(split, overwrite=True, source="bcolz", manifest_rows=len(x_bc))
        step = writer.group["X"].chunks[0]
        for start in range(0, len(x_bc), step):
            stop = min(start + step, len(x_bc))
            writer.append(x_bc[start:stop], y_all[start:stop])
        writer.finish()
    return store
