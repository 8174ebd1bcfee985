"""Download, verify and safely extract a real Speech Commands archive.

The archives are the official ones listed in DATA.md (Warden 2018, CC BY 4.0),
and ``mini``: TensorFlow's ``mini_speech_commands.zip`` excerpt (8 words, about
8,000 clips, no background noise) used by its audio tutorial.
:func:`download` streams an archive with a progress bar, resumes a partial
download with an HTTP ``Range`` request, verifies its SHA-256 before anything
is extracted, extracts it into a temporary folder next to the target while
refusing unsafe members, and renames the folder into place when complete.
A second run on a complete folder does nothing and touches no network.

A dataset downloaded or unpacked by hand (Kaggle's ``train/audio``, an archive
extracted elsewhere) needs no download: check it with ``speechlib data check``.

Examples
--------
::

    speechlib data download --version v0.01 --out data/raw
    # -> data/raw/speech_commands_v0.01/
    speechlib data download --version mini --out data/raw
    # -> data/raw/mini_speech_commands/<word>/<speaker>_nohash_<n>.wav

>>> from speechlib import datasets
>>> root = datasets.download("v0.01", "data/raw")  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from speechlib import __version__

CHUNK_BYTES = 1 << 20  # read and hash 1 MiB at a time
TIMEOUT_SECONDS = 60  # a stalled connection fails after this long (and is resumed)
COMPLETE_MARKER = ".speechlib-download-complete"  # written inside the target when extraction is complete
MAC_METADATA = frozenset({"__MACOSX", ".DS_Store"})  # ignored beside an archive's wrapping folder


@dataclass(frozen=True)
class Archive:
    """One downloadable Speech Commands archive.

    Attributes
    ----------
    version : str
        The name used on the command line, e.g. ``"v0.01"``.
    url : str
        The official download URL.
    sha256 : str
        The expected SHA-256 of the archive, lowercase hex.
    name : str
        The folder the archive is extracted into, inside ``out``.
    num_bytes : int or None
        The archive's size in bytes, when known.
    """

    version: str
    url: str
    sha256: str
    name: str
    num_bytes: int | None = None

    @property
    def filename(self) -> str:
        """The archive's file name, taken from its URL (e.g. ``speech_commands_v0.01.tar.gz``)."""
        return PurePosixPath(urllib.parse.urlparse(self.url).path).name


# The official archives (DATA.md). The same files are mirrored under
# https://storage.googleapis.com/download.tensorflow.org/data/ (pass it as ``url=``).
ARCHIVES: dict[str, Archive] = {
    "v0.01": Archive(
        version="v0.01",
        url="http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
        sha256="743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
        name="speech_commands_v0.01",
    ),
    "v0.02": Archive(
        version="v0.02",
        url="http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
        sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        name="speech_commands_v0.02",
        num_bytes=2_428_923_189,
    ),
    # This checksum was seen in one public project only, not published by Google:
    # confirm it on the first real download (a mismatch names both digests).
    "test-v0.02": Archive(
        version="test-v0.02",
        url="http://download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz",
        sha256="cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
        name="speech_commands_test_set_v0.02",
        num_bytes=112_563_277,
    ),
    # TensorFlow's tutorial excerpt: a ZIP whose members are mini_speech_commands/<word>/*.wav and
    # a README.md. Google publishes no checksum for it; this SHA-256 (and the 182,082,353 bytes) is
    # the one pinned by several independent public projects that download this URL (Keras
    # `get_file(..., file_hash=...)` calls, downloaders and dataset manifests). A mismatch on the
    # first real download names both digests.
    "mini": Archive(
        version="mini",
        url="https://storage.googleapis.com/download.tensorflow.org/data/mini_speech_commands.zip",
        sha256="49650f2341b26d886b46b3f4fb8fed59e30300b17550f1ee4a768b3106cf93a0",
        name="mini_speech_commands",
        num_bytes=182_082_353,
    ),
}


class DownloadError(RuntimeError):
    """A download or extraction failed; the message says what happened and what to do."""


class UnsafeArchiveError(DownloadError):
    """The archive holds a member that would be written outside the target folder, or a device."""


def download(
    version: str,
    out: str | os.PathLike,
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    retries: int = 3,
    keep_archive: bool = False,
) -> Path:
    """Download, verify and extract a Speech Commands archive into ``out/<name>``.

    Parameters
    ----------
    version : str
        ``"v0.01"``, ``"v0.02"``, ``"test-v0.02"`` or ``"mini"`` (the keys of :data:`ARCHIVES`).
    out : path-like
        The folder that receives the dataset folder (created if missing). The
        archive is downloaded beside it as ``<archive>.part`` while incomplete.
    url : str, optional
        Download from this URL (a mirror) instead of the official one.
    sha256 : str, optional
        The expected SHA-256 (lowercase hex); default: the official archive's.
    progress : bool
        Show a progress bar (only on a terminal).
    retries : int
        How many times a failed transfer is retried (each retry resumes where
        the last one stopped).
    keep_archive : bool
        Keep the downloaded archive in ``out`` after extraction (default: remove
        it). An archive that was already in ``out`` (put there by hand) is
        verified, used and always kept.

    Returns
    -------
    Path
        The dataset folder, ``out/<name>`` (e.g. ``data/raw/speech_commands_v0.01``).

    Raises
    ------
    DownloadError
        The server cannot be reached, the checksum does not match, the target
        exists without having been completed by this function, the archive is
        damaged (it cannot be read to the end), or it is unsafe
        (:class:`UnsafeArchiveError`). The message says what to do.
    ValueError
        ``version`` is not a known version.

    Notes
    -----
    A partial download is kept as ``out/<archive>.part`` and resumed with an HTTP
    ``Range`` request; a server that answers ``200`` instead of ``206`` gets a
    clean restart. A file whose checksum does not match is removed (resuming a
    corrupt file cannot help), so the next run downloads it afresh. Nothing is
    extracted before the checksum matches; extraction goes into a temporary
    folder in ``out`` that is renamed to ``out/<name>`` only when complete, and a
    marker file in it makes a second run return at once.
    """
    if version not in ARCHIVES:
        raise ValueError(f"unknown dataset version {version!r}; choose one of {', '.join(ARCHIVES)}")
    archive = ARCHIVES[version]
    url = url or archive.url
    expected = (sha256 or archive.sha256).lower()
    out = Path(out).expanduser().resolve()
    target = out / archive.name
    if _already_complete(target):
        return target
    out.mkdir(parents=True, exist_ok=True)
    archive_path = out / (PurePosixPath(urllib.parse.urlparse(url).path).name or archive.filename)
    by_hand = archive_path.is_file()  # put there by the user (or kept by --keep-archive): never deleted
    if by_hand:
        _verify_by_hand(archive_path, expected, version, progress=progress)
    else:
        _fetch_verified(url, archive_path, expected, retries=retries, progress=progress)
    extract(archive_path, target, progress=progress, info={"version": version, "url": url, "sha256": expected})
    if not keep_archive and not by_hand:
        archive_path.unlink()
    return target


def _already_complete(target: Path) -> bool:
    """True when a previous run completed ``target``; a ``target`` without its completion marker is refused."""
    if (target / COMPLETE_MARKER).is_file():
        return True
    if target.exists():
        raise DownloadError(
            f"{target} exists but was not completed by `speechlib data download` (it has no "
            f"{COMPLETE_MARKER} file). If you unpacked the dataset there yourself, use it as it is and "
            f"check it with `speechlib data check {target}`; otherwise remove that folder and run again."
        )
    return False


def _verify_by_hand(archive_path: Path, expected: str, version: str, *, progress: bool) -> None:
    """Check the checksum of an archive already in ``out`` (downloaded by hand, or kept); never delete it."""
    actual = sha256_file(archive_path, progress=progress)
    if actual != expected:
        raise DownloadError(
            f"checksum mismatch for {archive_path}: expected SHA-256 {expected}, got {actual}. "
            f"The file is not the official {version} archive or is damaged; it was left in place: "
            "remove it and run the same command again to download it."
        )


def _fetch_verified(url: str, archive_path: Path, expected: str, *, retries: int, progress: bool) -> None:
    """Download into ``<archive>.part``, check its checksum (removing a corrupt file), rename it to the archive."""
    part = archive_path.parent / (archive_path.name + ".part")
    _fetch(url, part, retries=retries, progress=progress)
    actual = sha256_file(part, progress=progress)
    if actual != expected:
        part.unlink()
        raise DownloadError(
            f"checksum mismatch for {part} (from {url}): expected SHA-256 {expected}, got {actual}. "
            "The download is corrupt or is not the official archive; the file was removed (resuming a "
            "corrupt file cannot help), so run the same command again to download it afresh. If this "
            f"repeats, download {url} by hand, extract it, and run `speechlib data check <folder>`."
        )
    part.replace(archive_path)


def sha256_file(path: str | os.PathLike, *, progress: bool = False) -> str:
    """Return the SHA-256 of a file as lowercase hex, reading it in 1 MiB chunks."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f, _bar(path.stat().st_size, f"verifying {path.name}", progress) as bar:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def extract(
    archive_path: str | os.PathLike, target: str | os.PathLike, *, progress: bool = True, info: dict | None = None
) -> Path:
    """Extract a tar or ZIP archive safely into ``target`` (which must not exist yet).

    A tar archive's members pass tarfile's ``"data"`` extraction filter: a
    member that would be written outside the target (``..`` components), a
    link (symbolic or hard) to an absolute path or outside the target, and a
    device or FIFO file are refused with :class:`UnsafeArchiveError`; leading
    slashes of absolute member names are removed. A ZIP archive (a name ending
    in ``.zip``) is read with :mod:`zipfile`: every member name is checked before
    anything is written, and an absolute name or one whose ``..`` components
    leave the target is refused the same way; each member's CRC is checked as
    it is extracted. An archive that cannot be read to the end (truncated,
    damaged, a bad CRC) raises :class:`DownloadError`. Extraction goes into a
    temporary folder beside ``target``, which is removed on any failure and
    renamed to ``target`` when complete, with a marker file inside it. The
    folders and files get the permissions of the archive's members as the
    ``"data"`` filter leaves them (the user's umask for a ZIP), and ``target``
    itself the user's umask (not the 0700 of a temporary folder).

    Parameters
    ----------
    archive_path : path-like
        A tar archive, compressed or not, or a ``.zip`` file.
    target : path-like
        The folder to create.
    progress : bool
        Show a progress bar (members extracted), only on a terminal.
    info : dict, optional
        Written into the marker file (version, URL, checksum).

    Returns
    -------
    Path
        ``target``.
    """
    archive_path = Path(archive_path)
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extracting-", dir=target.parent))
    # mkdtemp makes a private (0700) folder; the dataset folder gets the user's normal permissions.
    tmp.chmod(0o777 & ~_umask())
    try:
        with _bar(None, f"extracting {archive_path.name}", progress, in_bytes=False) as bar:
            if archive_path.name.lower().endswith(".zip"):
                _extract_zip(archive_path, tmp, bar)
            else:
                _extract_tar(archive_path, tmp, bar)
        root = _single_top_folder(tmp, target.name)
        marker = {"created_by": f"speechlib {__version__}", "archive": archive_path.name, **(info or {})}
        marker["completed"] = datetime.now(UTC).isoformat(timespec="seconds")
        (root / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if target.exists():
            raise DownloadError(
                f"{target} appeared while extracting (another download running?); remove it and run again"
            )
        root.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def _damaged(archive_path: Path, err: BaseException) -> DownloadError:
    """The error for an archive that cannot be read to the end."""
    return DownloadError(
        f"cannot extract {archive_path}: the archive is damaged ({err}); nothing was extracted. Delete "
        f"{archive_path} and run the same command again to download it afresh."
    )


def _extract_tar(archive_path: Path, tmp: Path, bar: tqdm) -> None:
    try:
        with tarfile.open(archive_path, "r:*") as tar:
            for member in tar:
                try:
                    tar.extract(member, tmp, filter="data")
                except tarfile.FilterError as err:
                    raise UnsafeArchiveError(
                        f"refusing to extract {archive_path}: member {member.name!r} is unsafe ({err}). The archive "
                        "is damaged or not a genuine dataset archive; nothing was extracted. Delete it and download "
                        "it again from the official URL."
                    ) from err
                bar.update(1)
    except (tarfile.ReadError, tarfile.CompressionError, gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise _damaged(archive_path, err) from err


def _extract_zip(archive_path: Path, tmp: Path, bar: tqdm) -> None:
    base = tmp.resolve()
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = archive.infolist()
            for member in members:  # every name is checked before anything is written
                reason = _zip_member_problem(member.filename, base)
                if reason:
                    raise UnsafeArchiveError(
                        f"refusing to extract {archive_path}: member {member.filename!r} is unsafe ({reason}). The "
                        "archive is damaged or not a genuine dataset archive; nothing was extracted. Delete it and "
                        "download it again from the official URL."
                    )
            for member in members:
                archive.extract(member, tmp)  # reads the member to its end: a bad CRC raises BadZipFile
                bar.update(1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError) as err:
        raise _damaged(archive_path, err) from err


def _zip_member_problem(name: str, base: Path) -> str | None:
    """Why a ZIP member name is unsafe to extract into ``base`` (None when it is safe)."""
    if "\x00" in name:
        return "its name holds a NUL byte"
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "it has an absolute path"
    if not (base / name).resolve().is_relative_to(base):
        return f"it would be extracted outside the destination {base}"
    return None


def _umask() -> int:
    """The process's file-creation mask (read by setting it, then restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _single_top_folder(tmp: Path, name: str) -> Path:
    """The folder to rename into place: ``tmp``, or ``tmp/<name>`` when the archive wraps everything in it.

    macOS metadata beside the wrapping folder (``__MACOSX/``, ``.DS_Store``, as a ZIP made on a Mac
    may hold) does not count; it stays in ``tmp`` and is removed with it.
    """
    entries = [p for p in tmp.iterdir() if p.name not in MAC_METADATA]
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name == name:
        return entries[0]
    return tmp


def _fetch(url: str, part: Path, *, retries: int, progress: bool) -> None:
    """Download ``url`` into ``part``, resuming what is already there; retry failed transfers."""
    attempt = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            _fetch_once(url, part, progress=progress)
            return
        except _RetryableError as err:
            gained = (part.stat().st_size if part.exists() else 0) - before
            attempt += 1
            if attempt > retries:
                raise DownloadError(str(err)) from err.__cause__
            if gained <= 0:  # no progress: wait a little before the next try; after progress, resume at once
                time.sleep(min(2**attempt, 30))


class _RetryableError(Exception):
    """A transfer failure worth retrying; its message is the final, actionable one."""


def _fetch_once(url: str, part: Path, *, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": f"speechlib/{__version__}"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    by_hand = f"download {url} by hand, extract it, and run `speechlib data check <folder>`"
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the partial file is already complete
            return
        message = f"the server answered {err.code} {err.reason} for {url}; check the URL, or {by_hand}"
        if err.code >= 500:
            raise _RetryableError(message) from err
        raise DownloadError(message) from err
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise _RetryableError(f"could not reach {url} ({reason}); check your connection, or {by_hand}") from err
    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        if status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != have:
                raise DownloadError(
                    f"the server resumed {url} at byte {start}, not at {have}; remove {part} and run again"
                )
            mode = "ab"
        else:  # 200: the server ignores Range (or nothing to resume): start from the beginning
            have = 0
            mode = "wb"
        total = have + length if length is not None else None
        received = 0
        with open(part, mode) as f, _bar(total, f"downloading {part.name[:-5]}", progress, initial=have) as bar:
            try:
                while chunk := response.read(CHUNK_BYTES):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as err:
                raise _RetryableError(
                    f"the connection to {url} broke after {have + received:,} bytes ({err}); the partial file "
                    f"{part} is kept: run the same command again to resume, or {by_hand}"
                ) from err
    if length is not None and received < length:
        raise _RetryableError(
            f"the connection to {url} closed after {have + received:,} of {have + length:,} bytes; the partial "
            f"file {part} is kept: run the same command again to resume, or {by_hand}"
        )


def _content_range_start(value: str) -> int:
    """The first byte of a ``Content-Range: bytes START-END/TOTAL`` header (-1 when malformed)."""
    try:
        unit, _, spec = value.partition(" ")
        return int(spec.split("-", 1)[0]) if unit == "bytes" else -1
    except ValueError:
        return -1


def _bar(total: int | None, desc: str, progress: bool, *, initial: int = 0, in_bytes: bool = True) -> tqdm:
    """A progress bar on stderr; hidden when ``progress`` is False or stderr is not a terminal."""
    unit = {"unit": "B", "unit_scale": True, "unit_divisor": 1024} if in_bytes else {"unit": "file"}
    return tqdm(total=total, initial=initial, desc=desc, disable=None if progress else True, leave=False, **unit)
