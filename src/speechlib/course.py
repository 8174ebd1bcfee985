"""Run the course's notebooks: in place (to commit their outputs) or in a copy (to test them).

The course is the numbered notebooks in ``notebooks/``, run in file-name order:
each one reads what the previous one wrote. :func:`execute_notebook` runs one
notebook top to bottom with nbclient and fails on the first cell error with
the failing cell's source and traceback in the message.

Examples
--------
>>> from speechlib import course
>>> paths = course.notebook_paths("notebooks")        # doctest: +SKIP
>>> course.execute_notebook(paths[0], "/tmp/out.ipynb")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from speechlib import QUIET_TENSORFLOW, config

NOTEBOOK_GLOB = "[0-9]*_*.ipynb"  # numbered chapters: 0_split_by_speaker.ipynb, 1_..., ...

# TensorFlow's graph optimizer (grappler) logs at error level when it cannot apply one of its optional
# rewrites, e.g. "E0000 00:00:1796307475.633776   23280 meta_optimizer.cc:967] remapper failed: ..." for
# Conv2D + BiasAdd + LeakyReLU (tensorflow/tensorflow: a fusion it skips; the graph runs unfused and the
# results are unchanged). Nothing a learner can act on: committed outputs leave such lines out.
GRAPPLER_NOTICE = re.compile(r"^[IWE]\d{4} [\d:.]+\s+\d+ meta_optimizer\.cc:\d+\] .*(?:\n|$)", re.MULTILINE)


class NotebookError(RuntimeError):
    """A notebook cell raised an error; the message shows the notebook, the cell and the traceback."""


def notebook_paths(folder: str | Path = "notebooks") -> list[Path]:
    """Return the course's notebooks in the order a learner runs them.

    Parameters
    ----------
    folder : str or Path
        The notebooks folder.

    Returns
    -------
    list of Path
        ``<n>_<name>.ipynb`` files sorted by their leading number.
    """
    folder = Path(folder)
    paths = [p for p in folder.glob(NOTEBOOK_GLOB) if p.stem.split("_", 1)[0].isdigit()]
    return sorted(paths, key=lambda p: (int(p.stem.split("_", 1)[0]), p.name))


def execute_notebook(
    path: str | Path,
    out: str | Path | None = None,
    *,
    timeout: int = 3600,
    env: dict[str, str] | None = None,
    kernel_name: str = "python3",
) -> Path:
    """Execute a notebook top to bottom and write the executed copy.

    The notebook runs with its own folder as the working directory, as in
    Jupyter. Environment variables in ``env`` are set for the kernel (for
    example ``{"SPEECHLIB_SMALL": "1"}``).

    Parameters
    ----------
    path : str or Path
        The notebook to run.
    out : str or Path, optional
        Where to write the executed notebook; ``None`` writes nothing. Pass
        ``path`` itself to update the notebook in place.
    timeout : int
        Seconds one cell may run.
    env : dict, optional
        Extra environment variables for the kernel.
    kernel_name : str
        The Jupyter kernel to use.

    Returns
    -------
    Path
        The executed notebook's path (``out``), or ``path`` when ``out`` is None.

    Raises
    ------
    NotebookError
        When a cell fails: the message names the notebook and the cell
        number, and shows the cell's source and the error.
    """
    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    _execute(nb, path, timeout=timeout, env=env, kernel_name=kernel_name)
    if out is not None:
        return _write_executed(nb, Path(out))
    return path


def _execute(nb: Any, path: Path, *, timeout: int, env: dict[str, str] | None, kernel_name: str) -> None:
    """Run every cell in the notebook's folder with ``env`` set (restored after); a NotebookError when one fails.

    The kernel imports TensorFlow quietly even where the shell has set ``TF_CPP_MIN_LOG_LEVEL``
    (``SPEECHLIB_QUIET_TENSORFLOW``; see ``speechlib/__init__.py``): TensorFlow prints its start-up
    lines through absl whatever that level says, and executed notebooks are committed.
    """
    old_env = dict(os.environ)
    os.environ.update({QUIET_TENSORFLOW: "1", **(env or {})})
    try:
        running: dict[str, int] = {}  # the cell being run: its index, for a kernel that dies or a cell that times out

        def started(cell: Any, cell_index: int) -> None:
            running["index"] = cell_index

        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name=kernel_name,
            resources={"metadata": {"path": str(path.parent)}},
            on_cell_execute=started,
        )
        try:
            client.execute()
        except CellExecutionError as err:
            index = _failing_cell(nb)
            raise NotebookError(f"{path.name}: cell {index} failed.\n{err}") from None
        except CellTimeoutError:
            raise NotebookError(
                f"{path.name}: cell {running.get('index', -1)} ran longer than {timeout} s and was stopped; the "
                "notebook on disk is unchanged: run it again with a larger --timeout (seconds per cell)"
            ) from None
        except DeadKernelError:
            raise NotebookError(
                f"{path.name}: the kernel died while running cell {running.get('index', -1)} (killed from outside, "
                "or out of memory); the notebook on disk is unchanged: free some memory and run it again, or try "
                "--small first"
            ) from None
    finally:
        os.environ.clear()
        os.environ.update(old_env)


def _write_executed(nb: Any, out: Path) -> Path:
    """Write the executed notebook atomically to ``out``, output paths made relative to the project root."""
    root = config.project_root()
    if root is not None:
        relative_outputs(nb, root)
    drop_optimizer_notices(nb)
    tmp = out.with_name(out.name + ".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, out)  # never leave a half-written notebook under the final name
    return out


def relative_outputs(nb: Any, root: str | Path) -> int:
    """Print paths under the project ``root`` relative to it in a notebook's outputs (no machine paths committed).

    ``/home/me/speechlib/data/work/synthetic`` becomes ``data/work/synthetic``
    in stream text and in ``text/plain``, ``text/html`` (a DataFrame's table) and
    ``text/markdown`` results; the outputs are changed in place.

    Returns
    -------
    int
        Outputs changed.
    """
    prefix = str(Path(root).resolve()) + "/"
    changed = 0
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            places = [(output, "text"), *((data, key) for key in ("text/plain", "text/html", "text/markdown"))]
            for holder, key in places:
                text = holder.get(key)
                if text is None:
                    continue
                joined = "".join(text) if isinstance(text, list) else text
                if prefix in joined:
                    holder[key] = joined.replace(prefix, "")
                    changed += 1
    return changed


def drop_optimizer_notices(nb: Any) -> int:
    """Remove TensorFlow graph-optimizer notices (:data:`GRAPPLER_NOTICE`) from a notebook's stream outputs.

    Outputs left empty are dropped; the notebook is changed in place.

    Returns
    -------
    int
        Lines removed.
    """
    removed = 0
    for cell in nb["cells"]:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type", "stream") == "stream" and "text" in output:
                text = "".join(output["text"]) if isinstance(output["text"], list) else output["text"]
                cleaned, n = GRAPPLER_NOTICE.subn("", text)
                removed += n
                if n:
                    output["text"] = cleaned
                if not cleaned:
                    continue
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return removed


def _failing_cell(nb) -> int:
    """Index (0-based, code and markdown cells counted) of the first cell with an error output."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index
    return -1
