"""The ``speechlib`` command: help texts, version, errors, and the config helpers it relies on."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from speechlib import __version__, cli, config, course


def test_python_m_speechlib_help_lists_subcommands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "speechlib", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("data", "course"):
        assert name in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of ``parser`` (``("data",)``, ``("data", "synth")``, ...), read from the parser itself."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                found += [(*prefix, name), *_subcommands(subparser, (*prefix, name))]
    return found


SUBCOMMANDS = _subcommands(cli.build_parser())


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    """``speechlib <command> --help`` for every command the parser knows (new ones are picked up by themselves)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: speechlib {' '.join(argv)}") and len(text.splitlines()) > 4, text


def test_the_command_list_is_complete() -> None:
    assert {("data", "synth"), ("data", "download"), ("data", "check"), ("course", "run"), ("split",),
            ("featurize",), ("evaluate",), ("predict",), ("submit",), ("spark-featurize",),
            ("spark", "featurize"), ("spark", "predict"), ("spark", "train")} <= set(SUBCOMMANDS)  # fmt: skip


@pytest.mark.slow
def test_spark_modules_are_libraries_and_their_scripts_run_the_cli() -> None:
    """spark.py and spark_train.py never import the command line; cli imports them only in a command.

    ``python -m speechlib.spark`` and ``spark-submit .../spark_job.py`` are ``speechlib spark``.
    """
    probe = (
        "import sys; import speechlib.spark, speechlib.spark_train; a = 'speechlib.cli' in sys.modules; "
        "del sys.modules['speechlib.spark'], sys.modules['speechlib.spark_train']; import speechlib.cli; "
        "print(a, sorted(m for m in sys.modules if m.startswith('speechlib.spark')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "[]"], done.stdout + done.stderr
    job = Path(cli.__file__).with_name("spark_job.py")
    for argv in (["-m", "speechlib.spark", "--help"], [str(job), "--help"]):
        out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=True).stdout
        assert out.startswith("usage: speechlib spark") and all(c in out for c in ("featurize", "predict", "train"))
    done = subprocess.run([sys.executable, str(job), "predict"], capture_output=True, text=True)
    assert done.returncode == 2 and "the following arguments are required: --features-dir" in done.stderr


def test_all_registered_subcommands_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) >= {"data", "course"}
    for name, subparser in sub.choices.items():
        assert subparser.description, f"subcommand {name!r} has no description"


def test_unknown_subcommand_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_course_run_without_notebooks_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["course", "run", "--notebooks", str(tmp_path)])
    assert code == 2
    assert "no notebooks found" in capsys.readouterr().err


def test_notebook_paths_are_in_chapter_order(tmp_path: Path) -> None:
    for name in ("10_last.ipynb", "2_b.ipynb", "0_a.ipynb", "notes.ipynb", "1_x.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in course.notebook_paths(tmp_path)] == ["0_a.ipynb", "1_x.ipynb", "2_b.ipynb", "10_last.ipynb"]


@pytest.mark.slow
def test_course_run_executes_in_place_and_reports_failing_cell(tmp_path: Path) -> None:
    import nbformat

    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 6 * 7\nprint(x)")])
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert 1 == 2, 'shapes differ'")])
    nbformat.write(good, tmp_path / "0_good.ipynb")
    nbformat.write(bad, tmp_path / "1_bad.ipynb")
    course.execute_notebook(tmp_path / "0_good.ipynb", tmp_path / "0_good.ipynb", timeout=120)
    executed = nbformat.read(tmp_path / "0_good.ipynb", as_version=4)
    assert executed.cells[0].execution_count == 1
    assert executed.cells[0].outputs[0]["text"] == "42\n"
    with pytest.raises(course.NotebookError, match=r"1_bad.ipynb: cell 0 failed(.|\n)*shapes differ"):
        course.execute_notebook(tmp_path / "1_bad.ipynb", None, timeout=120)


@pytest.mark.slow
def test_course_run_names_the_cell_when_the_kernel_dies_or_a_cell_times_out(tmp_path: Path) -> None:
    import nbformat

    cells = [nbformat.v4.new_markdown_cell("# a chapter"), nbformat.v4.new_code_cell("x = 1")]
    killed = nbformat.v4.new_notebook(cells=[*cells, nbformat.v4.new_code_cell(
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")])  # fmt: skip
    slow = nbformat.v4.new_notebook(cells=[*cells, nbformat.v4.new_code_cell("import time\ntime.sleep(60)")])
    nbformat.write(killed, tmp_path / "0_killed.ipynb")
    nbformat.write(slow, tmp_path / "1_slow.ipynb")
    before = (tmp_path / "0_killed.ipynb").read_bytes()
    with pytest.raises(course.NotebookError, match=r"0_killed.ipynb: the kernel died while running cell 2"):
        course.execute_notebook(tmp_path / "0_killed.ipynb", tmp_path / "0_killed.ipynb", timeout=120)
    assert (tmp_path / "0_killed.ipynb").read_bytes() == before  # nothing half-written in place
    with pytest.raises(course.NotebookError, match=r"1_slow.ipynb: cell 2 ran longer than 3 s(.|\n)*--timeout"):
        course.execute_notebook(tmp_path / "1_slow.ipynb", None, timeout=3)


@pytest.mark.slow
def test_course_run_imports_tensorflow_quietly_whatever_the_shell_set(tmp_path: Path, monkeypatch) -> None:
    """A shell with TF_CPP_MIN_LOG_LEVEL set (CI sets it) turns speechlib's quiet import off, and TensorFlow then
    prints its absl start-up lines into the committed outputs: the kernel gets SPEECHLIB_QUIET_TENSORFLOW=1."""
    import nbformat

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("SPEECHLIB_QUIET_TENSORFLOW", raising=False)
    source = "import os\nimport speechlib\nprint(os.environ.get('SPEECHLIB_QUIET_TENSORFLOW'), speechlib._OURS)"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), tmp_path / "0_env.ipynb")
    course.execute_notebook(tmp_path / "0_env.ipynb", tmp_path / "0_env.ipynb", timeout=120)
    outputs = nbformat.read(tmp_path / "0_env.ipynb", as_version=4).cells[0].outputs
    assert [o.get("text") for o in outputs] == ["1 True\n"], outputs
    assert "SPEECHLIB_QUIET_TENSORFLOW" not in os.environ  # this process's environment restored


def test_paths_follow_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPEECHLIB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SPEECHLIB_DATA", raising=False)
    monkeypatch.setenv("SPEECHLIB_SMALL", "1")
    assert config.is_small()
    assert config.synthetic_dir() == tmp_path / "home" / "synthetic_small"
    assert config.dataset_dir() == tmp_path / "home" / "synthetic_small"
    assert config.work_dir(config.dataset_dir()) == tmp_path / "home" / "work" / "synthetic_small"
    monkeypatch.setenv("SPEECHLIB_SMALL", "0")
    assert config.synthetic_dir() == tmp_path / "home" / "synthetic"
    assert config.work_dir(tmp_path / "speech_commands_v0.01", small=True).name == "speech_commands_v0.01-small"
    monkeypatch.setenv("SPEECHLIB_DATA", str(tmp_path / "real"))
    assert config.dataset_dir() == tmp_path / "real"


def test_project_home_found_from_a_subfolder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPEECHLIB_HOME", raising=False)
    (tmp_path / "req.txt").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert config.project_root() == tmp_path
    assert config.project_home() == tmp_path / "data"
    assert config.imgs_dir() == tmp_path / "imgs"


def test_constants_are_consistent() -> None:
    assert config.CLIP_SAMPLES == config.SAMPLE_RATE
    assert len(set(config.WORDS_V001)) == len(config.WORDS_V001) and set(config.WORDS_V001) < set(config.WORDS_V002)
    assert set(config.COMMANDS) <= set(config.WORDS_V001)
    # 101 centred frames of 10 ms for a one-second clip
    assert 1 + config.CLIP_SAMPLES // config.HOP_LENGTH == 101


def test_data_synth_into_a_foreign_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A non-empty folder that synth did not make is refused without a traceback, and left as it was."""
    (tmp_path / "notes.txt").write_text("mine")
    code = cli.main(["data", "synth", "--small", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("speechlib: error:") and "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_no_traceback_ever_reaches_the_user(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    """Bad input: one line, exit 2. An unexpected error: one line, exit 3 (SPEECHLIB_DEBUG=1 re-raises)."""
    code = cli.main(["predict", "--model", str(tmp_path / "missing.keras"), str(tmp_path / "a.wav")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "missing.keras: no model file here" in err
    report = tmp_path / "thesis.csv"
    report.write_text("my,own\n1,2\n")
    assert cli.main(["data", "check", str(tmp_path), "--report", str(report)]) == 2
    assert report.read_text() == "my,own\n1,2\n" and "not a scan table" in capsys.readouterr().err

    def bug(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(cli, "_run_data_check", bug)
    assert cli.main(["data", "check", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("speechlib: internal error: TypeError: unsupported operand") and "Traceback" not in err
    monkeypatch.setenv("SPEECHLIB_DEBUG", "1")
    with pytest.raises(TypeError):
        cli.main(["data", "check", str(tmp_path)])


def test_course_outputs_print_project_paths_relative(tmp_path):
    from speechlib import course

    root = tmp_path / "speechlib"
    nb = {
        "cells": [
            {"cell_type": "code", "outputs": [{"name": "stdout", "text": [f"saved {root}/data/work/x\n", "ok\n"]}]},
            {
                "cell_type": "code",
                "outputs": [
                    {
                        "data": {
                            "text/plain": f"PosixPath('{root}/imgs/a.png')",
                            "text/html": f"<td>{root}/data/yes/a.wav</td>",
                        }
                    }
                ],
            },
            {"cell_type": "markdown"},
        ]
    }
    assert course.relative_outputs(nb, root) == 3
    assert nb["cells"][0]["outputs"][0]["text"] == "saved data/work/x\nok\n"
    assert nb["cells"][1]["outputs"][0]["data"]["text/plain"] == "PosixPath('imgs/a.png')"
    assert nb["cells"][1]["outputs"][0]["data"]["text/html"] == "<td>data/yes/a.wav</td>"


def test_optimizer_notices_leave_committed_outputs() -> None:
    from speechlib import course

    notice = ("E0000 00:00:1796307475.633776   23280 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: "
              "Mutation::Apply error: fanout 'x' exist for missing node 'y'.\n")  # fmt: skip
    nb = {
        "cells": [
            {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stderr", "text": notice},
                                              {"output_type": "stream", "name": "stdout", "text": ["Epoch 6\n", notice,
                                                                                                  "done\n"]}]},
            {"cell_type": "markdown", "source": notice},
        ]
    }  # fmt: skip
    assert course.drop_optimizer_notices(nb) == 2
    assert nb["cells"][0]["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "Epoch 6\ndone\n"}]
    assert nb["cells"][1]["source"] == notice  # only outputs change
    assert course.drop_optimizer_notices(nb) == 0
