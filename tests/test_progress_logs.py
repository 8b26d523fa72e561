"""Progress off a terminal is plain lines (no carriage returns or cursor codes, no bars); train.log gets the
same lines; import shows progress too."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from vlmkit.progress import PlainProgress

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "VLMKIT_PROGRESS_SECONDS": "0"}
CODE = "import sys; from vlmkit.cli import main; main(sys.argv[1:])"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CODE, *args], capture_output=True, text=True, env=ENV, timeout=600)


def assert_plain(text: str) -> None:
    assert "\r" not in text and "\x1b[" not in text, repr(text[-500:])


def test_plain_progress_prints_lines_with_rate_and_eta(monkeypatch):
    monkeypatch.setenv("VLMKIT_PROGRESS_SECONDS", "0")
    stream = io.StringIO()
    bar = PlainProgress(4, "import", "rec", stream=stream)
    for _ in range(4):
        bar.update(1)
        bar.set_postfix(samples=3)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("import: 1/4 rec (25%), ") and "rec/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("import: 4/4 rec (100%)") and lines[-1].endswith("samples=3")


def test_import_off_a_terminal_prints_plain_progress(tmp_path):
    records = [
        {"id": str(i), "conversations": [{"from": "human", "value": f"Q{i}?"}, {"from": "gpt", "value": "A"}]}
        for i in range(30)
    ]
    (tmp_path / "data.json").write_text(json.dumps(records))
    out = cli("data", "import", str(tmp_path / "data.json"), "-o", str(tmp_path / "out"), "-f", "llava")
    assert out.returncode == 0, out.stderr
    assert_plain(out.stderr)
    assert "import: 30" in out.stderr


def test_train_off_a_terminal_prints_plain_lines_and_train_log_has_them(tmp_path, tiny_model):
    sys.path.insert(0, str(Path(__file__).parent / "train"))
    from train_helpers import base_config, write_config, write_image_dataset

    data = write_image_dataset(tmp_path / "data", n=4)
    config = write_config(tmp_path / "run.yaml", base_config(tiny_model("qwen2_vl"), data, tmp_path / "run"))
    out = cli("train", str(config))
    assert out.returncode == 0, out.stderr[-2000:]
    assert_plain(out.stderr)
    steps = [line for line in out.stderr.splitlines() if line.startswith("step ")]
    assert steps[0].startswith("step 1/4, loss ") and ", lr " in steps[0] and "samples/s" in steps[-1]
    assert steps[-1].startswith("step 4/4")
    log = (tmp_path / "run" / "logs" / "train.log").read_text()
    assert_plain(log)
    for step in range(1, 5):
        assert f"step {step}/4, loss " in log
