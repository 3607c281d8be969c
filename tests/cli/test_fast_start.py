"""The command line starts without JAX for what needs none: --version, -h, a command's --help."""

import os
import subprocess
import sys

import pytest

PROBE = """
import sys
from lstmkit.cli import main
try:
    main(sys.argv[1:], prog_name="lstmkit")
except SystemExit as e:
    code = e.code
print("exit", code, "jax" if "jax" in sys.modules else "no-jax", file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [["--version"], ["-h"], ["train", "--help"], ["predict", "--help"], ["explain", "-h"], ["inspect", "--help"]],
)
def test_version_and_help_do_not_import_jax(args):
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "exit 0 no-jax", done.stderr
    assert "lstmkit" in done.stdout


def test_shell_completion_does_not_import_jax():
    env = {**os.environ, "_LSTMKIT_COMPLETE": "bash_complete", "COMP_WORDS": "lstmkit pre", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, env=env)
    assert done.stderr.strip().splitlines()[-1] == "exit 0 no-jax", done.stderr
    assert "predict" in done.stdout and "pretrain" in done.stdout


def test_lstmkit_alone_shows_the_help_not_a_one_line_error():
    """Usage errors are one line (tests/cli/test_bad_invocations.py); no arguments at all is not an error."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert "Commands:" in done.stdout + done.stderr and "predict" in done.stdout + done.stderr
    assert "no-jax" in done.stderr.strip().splitlines()[-1]
