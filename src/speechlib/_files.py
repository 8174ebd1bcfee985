"""Writing only over what is ours: the check shared by every command that replaces a CSV file it wrote."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def check_replaceable_csv(path: Path, header: Sequence[str], *, what: str, flag: str, example: str) -> None:
    """Refuse to replace ``path`` unless it is a CSV file that starts with ``header`` (one we wrote before).

    Parameters
    ----------
    path : Path
        The file about to be written.
    header : sequence of str
        The columns of the first line of the files this command writes.
    what : str
        What the command writes, for the message (e.g. "a submission").
    flag, example : str
        The option that named ``path`` and an example value, for the message.

    Raises
    ------
    FileExistsError
        ``path`` is a folder, or an existing file that does not start with ``header``.
    """
    if path.is_dir():
        raise FileExistsError(f"{path} is a folder: pass a file name for {what}, e.g. {flag} {example}")
    if path.exists() or path.is_symlink():
        try:
            with open(path, encoding="utf-8", newline="") as f:
                first = f.readline().strip()
        except (OSError, UnicodeDecodeError):
            first = ""
        if first != ",".join(header):
            raise FileExistsError(
                f"{path} exists and is not {what} (its first line is not {','.join(header)}): nothing was written; "
                f"pass another {flag}"
            )
