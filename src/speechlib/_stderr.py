"""Point file descriptor 2 somewhere else for a while: what C and Java code and child processes print there, too."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def redirected(path: str | os.PathLike = os.devnull):
    """Send file descriptor 2 to ``path`` (appended; default the null device) inside the block.

    Child processes started inside the block keep the descriptor they
    inherited; this process gets its own standard error back at the end.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)
