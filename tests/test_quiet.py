"""Plain commands print no known third-party noise (bitsandbytes kernel fetch, DeepSpeed accelerator line,
transformers' is_gradient_checkpointing FutureWarning), and real warnings still come through."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def test_importing_the_training_stack_prints_no_known_noise():
    code = (
        "import vlmkit, transformers.trainer, peft\n"
        "from vlmkit.train.trainer import VlmTrainer\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('deepspeed'):\n"
        "    from deepspeed.accelerator import get_accelerator; get_accelerator()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    for noise in ("gemm_4bit_forward", "publisher trust check", "Setting accelerator to CPU"):
        assert noise not in text, text[-2000:]


def test_filters_are_exact_and_keep_real_warnings(caplog):
    import vlmkit  # noqa: F401  (installs the filters)

    with caplog.at_level(logging.WARNING):
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward from x")
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("a real problem")
    assert "a real problem" in caplog.text and "gemm_4bit_forward" not in caplog.text
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        import vlmkit.quiet

        vlmkit.quiet.install()
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed", FutureWarning, stacklevel=1)
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else is deprecated"]
