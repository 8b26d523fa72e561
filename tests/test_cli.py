"""The command line: every verb listed, no heavy imports at start-up, clear errors."""

import os
import subprocess
import sys
from pathlib import Path

from families import FAMILIES

VLMKIT = [sys.executable, "-m", "vlmkit"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200"}


def run(*args, timeout=120):
    return subprocess.run([*VLMKIT, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def test_help_lists_every_verb():
    out = run("--help")
    assert out.returncode == 0, out.stderr
    for verb in (
        "data",
        "models",
        "train",
        "export",
        "infer",
        "chat",
        "eval",
        "score",
        "compare",
        "serve",
        "quickstart",
    ):
        assert f" {verb} " in out.stdout, f"verb '{verb}' missing from --help"


def test_cli_start_up_imports_no_torch_or_transformers():
    code = (
        "import sys; import vlmkit.cli; "
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'matplotlib') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stdout + out.stderr


def test_models_list_and_tiny(tmp_path):
    out = run("models", "list")
    assert out.returncode == 0
    for family in FAMILIES:
        assert family in out.stdout
    out = run("models", "tiny", "smolvlm", str(tmp_path / "m"))
    assert out.returncode == 0, out.stderr
    assert (Path(tmp_path / "m") / "config.json").exists() and (tmp_path / "m" / "chat_template.jinja").exists()


def test_unknown_family_is_a_one_line_error_with_exit_2(tmp_path):
    out = run("models", "tiny", "gpt5", str(tmp_path / "m"))
    assert out.returncode == 2
    assert "unknown model family 'gpt5'" in out.stderr and "Traceback" not in out.stderr
