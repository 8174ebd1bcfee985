"""speechlib imports TensorFlow without its C++ start-up lines, unless the user chose a log level."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "import importlib.util, speechlib; importlib.util.find_spec('tensorflow'); import keras; keras.ops.ones(2)"


@pytest.mark.slow
def test_tensorflow_starts_quietly_unless_a_level_is_set():
    # a user's shell: neither a level nor the flag by which speechlib (imported by earlier tests) claims it
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "SPEECHLIB_QUIET_TENSORFLOW")}
    quiet = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "absl::InitializeLog" not in quiet.stderr and "cuda" not in quiet.stderr.lower(), quiet.stderr
    # A level the user chose is left alone: speechlib installs nothing then.
    show = "import os, sys, speechlib; print(os.environ['TF_CPP_MIN_LOG_LEVEL'], len(sys.meta_path))"
    chosen = subprocess.run(
        [sys.executable, "-c", show], capture_output=True, text=True, env={**env, "TF_CPP_MIN_LOG_LEVEL": "0"}
    )
    plain = subprocess.run(
        [sys.executable, "-c", "import sys; print(len(sys.meta_path))"], capture_output=True, text=True, env=env
    )
    level, finders = chosen.stdout.split()
    assert level == "0" and int(finders) == int(plain.stdout)
    # A child of a process that imported speechlib (a notebook kernel) is still quiet.
    child = "import os, subprocess, sys, speechlib; subprocess.run([sys.executable, '-c', sys.argv[1]], check=True)"
    nested = subprocess.run([sys.executable, "-c", child, CODE], capture_output=True, text=True, env=env, timeout=300)
    assert nested.returncode == 0 and "absl::InitializeLog" not in nested.stderr, nested.stderr
