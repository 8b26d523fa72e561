"""Usage mistakes through the installed `vlmkit` console script: usage line, one `Error:` line, a suggestion
for a near miss, the `--help` hint, exit status 2 and never a traceback."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from vlmkit.cli import app

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200"}


def console_script() -> str:
    script = Path(sys.executable).with_name("vlmkit")
    found = str(script) if script.exists() else shutil.which("vlmkit")
    assert found, "the vlmkit console script is not installed (pip install -e .)"
    return found


def vlmkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([console_script(), *args], capture_output=True, text=True, env=ENV, timeout=120)


def assert_usage_error(out: subprocess.CompletedProcess, command: str, error: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    assert f"Usage: {command} " in out.stderr, out.stderr
    assert f"Try '{command} --help' for help." in out.stderr, out.stderr
    error_lines = [line for line in out.stderr.splitlines() if line.startswith("Error: ")]
    assert error_lines == [f"Error: {error}"], out.stderr


@pytest.mark.parametrize(
    ("args", "command", "error"),
    [
        (["evl"], "vlmkit", "No such command 'evl'. Did you mean 'eval'?"),
        (["foo"], "vlmkit", "No such command 'foo'."),
        (["data", "improt", "x"], "vlmkit data", "No such command 'improt'. Did you mean 'import'?"),
        (["models", "tiyn"], "vlmkit models", "No such command 'tiyn'. Did you mean 'tiny'?"),
        (["eval", "--bogus"], "vlmkit eval", "No such option: --bogus"),
        (
            ["infer", "-m", "m", "--max-pixel", "5"],
            "vlmkit infer",
            "No such option: --max-pixel. Did you mean '--max-pixels'?",
        ),
        (["eval", "--task", "docvqa"], "vlmkit eval", "Missing option '--model' / '-m'."),
        (["data", "split"], "vlmkit data split", "Missing argument 'dataset'."),
        (
            ["infer", "-m", "m", "--batch-size", "abc"],
            "vlmkit infer",
            "Invalid value for '--batch-size' / '-b': Input should be a valid integer, unable to parse string as "
            "an integer (got 'abc')",
        ),
        (
            ["models", "tiny", "smolvlm", "out", "--vocab", "qwn"],
            "vlmkit models tiny",
            "Invalid value for '--vocab': 'qwn' is not one of 'small', 'qwen'. Did you mean 'qwen'?",
        ),
    ],
)
def test_usage_mistake_gets_usage_error_and_suggestion(args, command, error):
    assert_usage_error(vlmkit(*args), command, error)


def _every_command(group, path=("vlmkit",)):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _every_command(command, (*path, name))
        else:
            yield (*path, name)


def test_every_verb_and_sub_verb_answers_an_unknown_option_with_exit_2():
    commands = list(_every_command(typer.main.get_command(app)))
    assert ("vlmkit", "data", "merge") in commands and ("vlmkit", "eval") in commands
    for command in commands:
        out = vlmkit(*command[1:], "--definitely-not-an-option")
        assert_usage_error(out, " ".join(command), "No such option: --definitely-not-an-option")


def test_vlmkit_own_errors_stay_one_line(tmp_path):
    out = vlmkit("train", str(tmp_path / "missing.yaml"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "missing.yaml" in out.stderr
