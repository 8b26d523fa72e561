"""Progress of `vlmkit eval` and `vlmkit infer` as a person sees it: on a terminal one bar that starts with the real
count (no empty "0sample" bar drawn before the total is known), off a terminal plain lines only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import make_sample, write_dataset

VLMKIT = Path(sys.executable).parent / "vlmkit"
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "NO_COLOR": "1",
    "OMP_NUM_THREADS": "1",
    "VLMKIT_PROGRESS_SECONDS": "0",
    "PYTHONPATH": os.pathsep.join(sys.path),
}


@pytest.fixture
def text_data(tmp_path):
    return write_dataset(tmp_path / "data", [make_sample(i, image=False) for i in range(4)])


def _eval_args(model: Path, data: Path, out: Path) -> list[str]:
    return ["eval", "--model", str(model), "--task", "docvqa", "--data", str(data), "--out", str(out)]


def _args(*args: str) -> list[str]:
    return [*args, "--max-new-tokens", "2", "--no-plots", "--batch-size", "2"]


def test_eval_on_a_terminal_draws_one_bar_with_the_real_count(tiny_model, text_data, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    model = tiny_model("qwen2_vl")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "vlmkit", *_args(*_eval_args(model, text_data, tmp_path / "run"))],
        env={**ENV, "COLUMNS": "160"},
        encoding="utf-8",
        timeout=300,
        dimensions=(40, 160),
    )
    child.expect(pexpect.EOF)
    child.close()
    screen = child.before
    assert child.exitstatus == 0, screen[-2000:]
    bars = [part for part in re.split(r"[\r\n]+", screen) if "eval docvqa" in part]
    assert bars, screen[-2000:]
    assert not any(re.search(r"\b0sample\b", bar) for bar in bars), bars[:3]  # the empty bar of issue 18
    assert all(re.search(r"\d+/4\b", bar) for bar in bars), bars[:3]  # every drawing knows the total
    assert "4/4" in bars[-1]


def test_eval_and_infer_off_a_terminal_print_plain_lines(tiny_model, text_data, tmp_path):
    model = tiny_model("qwen2_vl")
    out = subprocess.run(
        [sys.executable, "-m", "vlmkit", *_args(*_eval_args(model, text_data, tmp_path / "run"))],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "\r" not in out.stderr and "\x1b[" not in out.stderr, repr(out.stderr[-500:])
    assert re.search(r"^eval docvqa: 4/4 sample \(100%\), [\d.]+ sample/s", out.stderr, re.M), out.stderr[-1000:]

    infer = subprocess.run(
        [sys.executable, "-m", "vlmkit", "infer", "--model", str(model), "--data", str(text_data)]
        + ["--out", str(tmp_path / "pred.jsonl"), "--max-new-tokens", "2"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert infer.returncode == 0, infer.stderr[-2000:]
    assert "\r" not in infer.stderr and "\x1b[" not in infer.stderr, repr(infer.stderr[-500:])
    assert re.search(r"^infer: 4/4 sample \(100%\)", infer.stderr, re.M), infer.stderr[-1000:]
