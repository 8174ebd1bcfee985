"""Tests for speechlib.datasets.download against a real HTTP server on 127.0.0.1.

The server is written here (http.server's SimpleHTTPRequestHandler does not
answer Range requests) and serves small archives generated in tmp_path.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import re
import socket
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlib import config
from speechlib.cli import build_parser
from speechlib.cli import main as cli_main

# The package re-exports the function `download`, which hides the module of the same name.
dl = importlib.import_module("speechlib.datasets.download")

ARCHIVE_NAME = "speech_commands_v0.01.tar.gz"
TARGET_NAME = "speech_commands_v0.01"


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files`` and answers ``Range: bytes=N-`` with 206, like download.tensorflow.org."""

    def do_GET(self) -> None:
        server = self.server
        server.requests.append({"path": self.path, "range": self.headers.get("Range")})
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        wanted = self.headers.get("Range")
        if wanted and not server.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-", wanted)
            start = int(match[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = server.cut_after.pop(0) if server.cut_after else None
        self.wfile.write(body if cut is None else body[:cut])  # a cut: fewer bytes than promised, then close
        self.close_connection = True

    def log_message(self, format: str, *args) -> None:  # quiet
        pass


class Server:
    """A running server; tests set ``files``, ``cut_after`` and ``ignore_range`` and read ``requests``."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
        self.httpd.daemon_threads = True
        self.httpd.files = {}
        self.httpd.requests = []
        self.httpd.cut_after = []  # one entry per request: bytes to send before closing (None: all)
        self.httpd.ignore_range = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, name: str, data: bytes) -> str:
        self.httpd.files[f"/{name}"] = data
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    @property
    def requests(self) -> list[dict]:
        return self.httpd.requests


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def make_tree(root: Path) -> dict[str, bytes]:
    """A few short WAV files in the Speech Commands layout; returns {relpath: bytes}."""
    rng = np.random.default_rng(0)
    files = {}
    for word in ("yes", "no"):
        for speaker in ("0a7c2a8d", "1b2c3d4e"):
            files[f"{word}/{speaker}_nohash_0.wav"] = None
    files[f"{config.BACKGROUND_NOISE_DIR}/white.wav"] = None
    for relpath in files:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.1 * rng.standard_normal(config.SAMPLE_RATE // 4), config.SAMPLE_RATE, subtype="PCM_16")
        files[relpath] = path.read_bytes()
    (root / config.VALIDATION_LIST).write_text("yes/0a7c2a8d_nohash_0.wav\n")
    files[config.VALIDATION_LIST] = (root / config.VALIDATION_LIST).read_bytes()
    return files


@pytest.fixture
def archive(tmp_path) -> tuple[bytes, dict[str, bytes]]:
    """A .tar.gz of a small dataset, with members named ./<relpath> as in the official archives."""
    files = make_tree(tmp_path / "src")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for relpath in files:
            tar.add(tmp_path / "src" / relpath, arcname=f"./{relpath}")
    return buffer.getvalue(), files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_extracted(target: Path, files: dict[str, bytes]) -> None:
    for relpath, data in files.items():
        assert (target / relpath).read_bytes() == data, relpath
    assert (target / dl.COMPLETE_MARKER).is_file()


def leftovers(out: Path) -> list[str]:
    """Everything in ``out`` except the dataset folder itself."""
    return sorted(p.name for p in out.iterdir() if p.name != TARGET_NAME) if out.exists() else []


def test_clean_download_then_nothing_to_do(server, archive, tmp_path):
    data, files = archive
    url = server.serve(ARCHIVE_NAME, data)
    out = tmp_path / "raw"
    target = dl.download("v0.01", out, url=url, sha256=sha256(data), progress=False)
    assert target == out.resolve() / TARGET_NAME
    assert_extracted(target, files)
    assert leftovers(out) == []  # no .part, no archive (not kept), no temporary folder
    assert len(server.requests) == 1 and server.requests[0]["range"] is None

    again = dl.download("v0.01", out, url=url, sha256=sha256(data), progress=False)
    assert again == target
    assert len(server.requests) == 1  # the second run asked the server nothing


def test_cut_download_is_resumed_on_the_next_run(server, archive, tmp_path):
    data, files = archive
    url = server.serve(ARCHIVE_NAME, data)
    out = tmp_path / "raw"
    cut = len(data) // 2
    server.httpd.cut_after = [cut]
    with pytest.raises(dl.DownloadError, match="run the same command again to resume") as err:
        dl.download("v0.01", out, url=url, sha256=sha256(data), progress=False, retries=0)
    assert f"{cut:,} of {len(data):,} bytes" in str(err.value)
    part = out / f"{ARCHIVE_NAME}.part"
    assert part.read_bytes() == data[:cut]  # kept for the resume
    assert not (out / TARGET_NAME).exists()

    target = dl.download("v0.01", out, url=url, sha256=sha256(data), progress=False, retries=0)
    assert [r["range"] for r in server.requests] == [None, f"bytes={cut}-"]
    assert_extracted(target, files)
    assert leftovers(out) == []


def test_cut_download_is_resumed_within_one_call(server, archive, tmp_path):
    data, files = archive
    url = server.serve(ARCHIVE_NAME, data)
    server.httpd.cut_after = [1000, 3000]  # two cuts, then a complete answer
    target = dl.download("v0.01", tmp_path / "raw", url=url, sha256=sha256(data), progress=False, retries=3)
    assert [r["range"] for r in server.requests] == [None, "bytes=1000-", "bytes=4000-"]
    assert_extracted(target, files)


def test_server_without_range_support_restarts_cleanly(server, archive, tmp_path):
    data, files = archive
    url = server.serve(ARCHIVE_NAME, data)
    out = tmp_path / "raw"
    out.mkdir()
    (out / f"{ARCHIVE_NAME}.part").write_bytes(b"stale bytes that must not survive")
    server.httpd.ignore_range = True
    target = dl.download("v0.01", out, url=url, sha256=sha256(data), progress=False)
    assert server.requests[0]["range"] == "bytes=33-"  # asked to resume, got 200: started again from byte 0
    assert_extracted(target, files)


def test_partial_file_already_complete(server, archive, tmp_path):
    data, files = archive
    url = server.serve(ARCHIVE_NAME, data)
    out = tmp_path / "raw"
    out.mkdir()
    (out / f"{ARCHIVE_NAME}.part").write_bytes(data)  # e.g. interrupted between download and verification
    target = dl.download("v0.01", out, url=url, sha256=sha256(data), progress=False)
    assert [r["range"] for r in server.requests] == [f"bytes={len(data)}-"]  # answered 416
    assert_extracted(target, files)


def test_wrong_checksum_extracts_nothing(server, archive, tmp_path):
    data, _ = archive
    url = server.serve(ARCHIVE_NAME, data)
    out = tmp_path / "raw"
    wrong = "0" * 64
    with pytest.raises(dl.DownloadError) as err:
        dl.download("v0.01", out, url=url, sha256=wrong, progress=False)
    message = str(err.value)
    assert f"{ARCHIVE_NAME}.part" in message
    assert f"expected SHA-256 {wrong}, got {sha256(data)}" in message
    assert "the file was removed" in message and "run the same command again" in message
    assert leftovers(out) == []  # the corrupt .part is removed, as the message says
    assert not (out / TARGET_NAME).exists()


def test_unreachable_server(tmp_path):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{ARCHIVE_NAME}"
    with pytest.raises(dl.DownloadError) as err:
        dl.download("v0.01", tmp_path / "raw", url=url, progress=False, retries=0)
    message = str(err.value)
    assert message.startswith(f"could not reach {url} (")
    assert "check your connection" in message and "speechlib data check" in message


def test_missing_file_on_server(server, tmp_path):
    url = server.serve("other.tar.gz", b"x").replace("other", "missing")
    with pytest.raises(dl.DownloadError, match="the server answered 404"):
        dl.download("v0.01", tmp_path / "raw", url=url, progress=False)
    assert len(server.requests) == 1  # a 404 is not retried


def test_hand_unpacked_folder_is_left_alone(server, archive, tmp_path):
    data, _ = archive
    url = server.serve(ARCHIVE_NAME, data)
    out = tmp_path / "raw"
    (out / TARGET_NAME / "yes").mkdir(parents=True)
    with pytest.raises(dl.DownloadError, match="speechlib data check"):
        dl.download("v0.01", out, url=url, sha256=sha256(data), progress=False)
    assert server.requests == []


def test_unknown_version(tmp_path):
    with pytest.raises(ValueError, match=re.escape("v0.01, v0.02, test-v0.02, mini")):
        dl.download("v9", tmp_path)


def test_archive_table_and_cli_choices():
    assert set(dl.ARCHIVES) == {"v0.01", "v0.02", "test-v0.02", "mini"}
    for version, archive in dl.ARCHIVES.items():
        assert re.fullmatch(r"[0-9a-f]{64}", archive.sha256), version
        assert archive.filename == f"{archive.name}{'.zip' if version == 'mini' else '.tar.gz'}"
    parser = build_parser()
    args = parser.parse_args(["data", "download", "--version", "test-v0.02"])
    assert args.dataset_version == "test-v0.02"
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "download", "--version", "v9"])
    for version in dl.ARCHIVES:  # every version the command offers can be downloaded, and only those
        assert parser.parse_args(["data", "download", "--version", version]).dataset_version == version
    for missing in ("mini-v2", "v0.03"):
        with pytest.raises(SystemExit):
            parser.parse_args(["data", "download", "--version", missing])


# --- unsafe archives ------------------------------------------------------------------------------


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", data: bytes = b"evil\n"):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


UNSAFE = {  # tarfile's "data" filter refuses these, in its own words
    "dotdot": (_member("../evil.txt"), "outside the destination"),
    "dotdot-inside": (_member("./yes/../../evil.txt"), "outside the destination"),
    "symlink-out": (_member("./yes/link", tarfile.SYMTYPE, "../../evil.txt"), "would link to"),
    "symlink-absolute": (_member("./yes/passwd", tarfile.SYMTYPE, "/etc/passwd"), "link to an absolute path"),
    "hardlink-out": (_member("./yes/hard", tarfile.LNKTYPE, "../evil.txt"), "would link to"),
    "device": (_member("./yes/dev", tarfile.CHRTYPE), "special file"),
}
GOOD = "./no/0a7c2a8d_nohash_0.wav"


def _archive(*members) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        good = tarfile.TarInfo(GOOD)
        good.size = 4
        tar.addfile(good, io.BytesIO(b"RIFF"))  # a harmless member first: it must not survive a refusal either
        for info, fileobj in members:
            tar.addfile(info, fileobj)
    return buffer.getvalue()


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archive_is_refused(server, tmp_path, case):
    (info, fileobj), phrase = UNSAFE[case]
    data = _archive((info, fileobj))
    url = server.serve(ARCHIVE_NAME, data)
    out = tmp_path / "work" / "raw"
    with pytest.raises(dl.UnsafeArchiveError) as err:
        dl.download("v0.01", out, url=url, sha256=sha256(data), progress=False)
    message = str(err.value)
    assert repr(info.name) in message and phrase in message and "nothing was extracted" in message
    assert not (out / TARGET_NAME).exists()
    assert leftovers(out) == [ARCHIVE_NAME]  # the verified archive stays (the message says to delete it)
    assert not (tmp_path / "work" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_absolute_names_and_links_inside_the_target_are_extracted_inside(tmp_path):
    absolute = _member("/tmp/speechlib-absolute-evil.txt")
    symlink = _member("./yes/link", tarfile.SYMTYPE, "../no/0a7c2a8d_nohash_0.wav")
    hard = _member("./yes/hard", tarfile.LNKTYPE, GOOD)
    archive_path = tmp_path / ARCHIVE_NAME
    archive_path.write_bytes(_archive(absolute, symlink, hard))
    target = dl.extract(archive_path, tmp_path / TARGET_NAME, progress=False)
    assert (target / "tmp" / "speechlib-absolute-evil.txt").read_bytes() == b"evil\n"  # the leading "/" removed
    assert not Path("/tmp/speechlib-absolute-evil.txt").exists()
    assert (target / "yes" / "link").is_symlink() and (target / "yes" / "link").read_bytes() == b"RIFF"
    assert (target / "yes" / "hard").read_bytes() == b"RIFF"


def test_archive_put_by_hand_survives_and_extraction_has_normal_permissions(server, archive, tmp_path):
    """An archive the user put in --out is used and kept; the dataset is readable by the user's group/others."""
    data, files = archive
    out = tmp_path / "raw"
    out.mkdir()
    (out / ARCHIVE_NAME).write_bytes(data)  # downloaded by hand
    (out / "thesis.tex").write_text("\\chapter{Results}\n")  # someone's file beside it
    old_mask = os.umask(0o022)
    try:
        target = dl.download("v0.01", out, url=server.serve(ARCHIVE_NAME, data), sha256=sha256(data), progress=False)
    finally:
        os.umask(old_mask)
    assert server.requests == []  # the archive was there: nothing fetched
    assert (out / ARCHIVE_NAME).read_bytes() == data  # and it is still there
    assert (out / "thesis.tex").read_text() == "\\chapter{Results}\n"
    assert_extracted(target, files)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755  # not mkdtemp's 0700
    for path in target.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o044 == 0o044, (path, oct(mode))  # group and others can read, as after `tar x`
    assert cli_main(["data", "download", "--out", str(out), "--url", "http://127.0.0.1:9/x"]) == 0  # complete


# --- mini: TensorFlow's mini_speech_commands.zip --------------------------------------------------

MINI_ZIP = "mini_speech_commands.zip"
MINI_NAME = "mini_speech_commands"
MINI_WORDS = ("down", "go", "left", "no", "right", "stop", "up", "yes")
MINI_SPEAKERS = ("0a7c2a8d", "1b2c3d4e", "2c3d4e5f", "3d4e5f60", "4e5f6071")


def make_mini(root: Path) -> dict[str, bytes]:
    """The mini layout: <word>/<speaker>_nohash_<n>.wav for the 8 words and a README.md, no noise folder."""
    rng = np.random.default_rng(1)
    files = {}
    for word in MINI_WORDS:
        for speaker in MINI_SPEAKERS:
            relpath = f"{word}/{speaker}_nohash_0.wav"
            path = root / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            samples = config.SAMPLE_RATE // 8
            sf.write(path, 0.1 * rng.standard_normal(samples), config.SAMPLE_RATE, subtype="PCM_16")
            files[relpath] = path.read_bytes()
    (root / "README.md").write_text("# Speech Commands dataset excerpt\n")
    files["README.md"] = (root / "README.md").read_bytes()
    return files


def mini_zip(files: dict[str, bytes], *, extra: dict[str, bytes] | None = None) -> bytes:
    """A ZIP with members mini_speech_commands/<relpath> (and its folder entries), as TensorFlow's."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{MINI_NAME}/", b"")
        for word in MINI_WORDS:
            archive.writestr(f"{MINI_NAME}/{word}/", b"")
        for relpath, data in files.items():
            archive.writestr(f"{MINI_NAME}/{relpath}", data)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def mini(tmp_path) -> tuple[bytes, dict[str, bytes]]:
    files = make_mini(tmp_path / "mini-src")
    return mini_zip(files), files


def mini_leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name != MINI_NAME) if out.exists() else []


def test_mini_download_extracts_the_folder_and_data_check_accepts_it(server, mini, tmp_path, capsys):
    data, files = mini
    url = server.serve(MINI_ZIP, data)
    out = tmp_path / "raw"
    target = dl.download("mini", out, url=url, sha256=sha256(data), progress=False)
    assert target == out.resolve() / MINI_NAME
    assert_extracted(target, files)
    assert sorted(p.name for p in target.iterdir() if p.is_dir()) == list(MINI_WORDS)  # no noise folder
    assert mini_leftovers(out) == []  # no .part, no archive, no temporary folder
    assert dl.download("mini", out, url=url, sha256=sha256(data), progress=False) == target
    assert len(server.requests) == 1  # the second run asked the server nothing

    capsys.readouterr()
    assert cli_main(["data", "check", str(target)]) == 0
    printed = capsys.readouterr().out
    for word in MINI_WORDS:
        assert word in printed
    assert "README" not in printed  # the README is skipped, not reported as a problem file


def test_mini_cli_download_and_split_have_no_silence_class(server, mini, tmp_path, capsys):
    from speechlib import split

    data, _ = mini
    out = tmp_path / "raw"
    # The official checksum cannot match this small test archive: the CLI stops before extracting.
    url = server.serve(MINI_ZIP, data)
    assert cli_main(["data", "download", "--version", "mini", "--out", str(out), "--url", url]) != 0
    message = capsys.readouterr().err
    assert dl.ARCHIVES["mini"].sha256 in message and sha256(data) in message and "Traceback" not in message
    assert not (out / MINI_NAME).exists()

    # With this archive's own checksum (as for a mirror) it is extracted; split the result with the CLI.
    target = dl.download("mini", out, url=url, sha256=sha256(data), progress=False)
    split_dir = tmp_path / "split"
    assert cli_main(["split", "--data", str(target), "--out", str(split_dir)]) == 0
    labels = split.load_info(split_dir)["labels"]
    assert config.SILENCE_LABEL not in labels  # no background noise to cut silence from
    assert set(MINI_WORDS) <= set(labels)


def test_mini_cut_download_is_resumed_to_the_same_bytes(server, mini, tmp_path):
    data, files = mini
    url = server.serve(MINI_ZIP, data)
    out = tmp_path / "raw"
    cut = len(data) // 2
    server.httpd.cut_after = [cut]
    with pytest.raises(dl.DownloadError, match="run the same command again to resume"):
        dl.download("mini", out, url=url, sha256=sha256(data), progress=False, retries=0)
    assert (out / f"{MINI_ZIP}.part").read_bytes() == data[:cut]
    assert not (out / MINI_NAME).exists()

    target = dl.download("mini", out, url=url, sha256=sha256(data), progress=False, retries=0, keep_archive=True)
    assert [r["range"] for r in server.requests] == [None, f"bytes={cut}-"]
    assert (out / MINI_ZIP).read_bytes() == data  # the resumed file is the served archive, byte for byte
    assert_extracted(target, files)
    assert mini_leftovers(out) == [MINI_ZIP]  # kept (--keep-archive); nothing else


def _damage_last_member(data: bytes) -> bytes:
    """Flip bytes inside the last member's compressed data: its CRC (or inflate) fails when it is read."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        last = archive.infolist()[-1]
    header = 30 + len(last.filename.encode()) + len(last.extra)  # the local header before the data
    start = last.header_offset + header
    damaged = bytearray(data)
    for i in range(start + 2, start + min(last.compress_size, 40)):
        damaged[i] ^= 0xFF
    return bytes(damaged)


def test_mini_corrupt_archive_is_a_clear_error_and_leaves_nothing_half_extracted(server, mini, tmp_path, capsys):
    data, _ = mini
    corrupt = _damage_last_member(data)
    assert corrupt != data
    url = server.serve(MINI_ZIP, corrupt)
    out = tmp_path / "raw"
    # A mirror whose checksum was given for the damaged file: it passes verification, then fails to extract.
    with pytest.raises(dl.DownloadError) as err:
        dl.download("mini", out, url=url, sha256=sha256(corrupt), progress=False)
    message = str(err.value)
    assert str(out.resolve() / MINI_ZIP) in message and "damaged" in message
    assert "nothing was extracted" in message and "run the same command again" in message
    assert not (out / MINI_NAME).exists()
    assert mini_leftovers(out) == [MINI_ZIP]  # no temporary folder; the archive stays for the user to delete

    # Through the CLI (the pinned checksum), a truncated archive left in --out is a clear error, no traceback.
    (out / MINI_ZIP).write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert cli_main(["data", "download", "--version", "mini", "--out", str(out), "--url", url]) != 0
    printed = capsys.readouterr().err
    assert "Traceback" not in printed and MINI_ZIP in printed
    assert not (out / MINI_NAME).exists()


def test_mini_unsafe_zip_members_are_refused(tmp_path):
    for case, name in {
        "dotdot": "mini_speech_commands/../../evil.txt",
        "absolute": "/tmp/speechlib-zip-evil.txt",
    }.items():
        archive_path = tmp_path / case / MINI_ZIP
        archive_path.parent.mkdir()
        files = {"yes/0a7c2a8d_nohash_0.wav": b"RIFF"}
        archive_path.write_bytes(mini_zip(files, extra={name: b"evil\n"}))
        with pytest.raises(dl.UnsafeArchiveError) as err:
            dl.extract(archive_path, tmp_path / case / MINI_NAME, progress=False)
        assert repr(name) in str(err.value) and "nothing was extracted" in str(err.value), case
        assert sorted(p.name for p in (tmp_path / case).iterdir()) == [MINI_ZIP], case  # no folder left
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/speechlib-zip-evil.txt").exists()


def test_mini_zip_with_mac_metadata_and_existing_folder(tmp_path):
    files = {"yes/0a7c2a8d_nohash_0.wav": b"RIFF"}
    archive_path = tmp_path / MINI_ZIP
    archive_path.write_bytes(mini_zip(files, extra={"__MACOSX/mini_speech_commands/._README.md": b"x"}))
    target = dl.extract(archive_path, tmp_path / MINI_NAME, progress=False)
    assert (target / "yes" / "0a7c2a8d_nohash_0.wav").read_bytes() == b"RIFF"
    assert sorted(p.name for p in tmp_path.iterdir()) == [MINI_NAME, MINI_ZIP]  # __MACOSX went with the temp


def test_truncated_tar_archive_is_a_clear_error_and_leaves_nothing_half_extracted(server, archive, tmp_path):
    data, _ = archive
    truncated = data[: len(data) * 2 // 3]
    url = server.serve(ARCHIVE_NAME, truncated)
    out = tmp_path / "raw"
    with pytest.raises(dl.DownloadError) as err:  # its own checksum (a mirror's): verified, then unreadable
        dl.download("v0.01", out, url=url, sha256=sha256(truncated), progress=False)
    message = str(err.value)
    assert str(out.resolve() / ARCHIVE_NAME) in message and "damaged" in message
    assert "run the same command again" in message
    assert not (out / TARGET_NAME).exists()
    assert leftovers(out) == [ARCHIVE_NAME]  # no temporary folder
