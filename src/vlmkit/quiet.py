"""Known third-party noise, filtered by exact message so real warnings still show.

- bitsandbytes (imported by peft/transformers whenever it is installed) tries to fetch a CPU kernel from the hub
  at import and warns "Failed to load CPU gemm_4bit_forward …" even for plain LoRA; `kernels` adds "Skipping
  publisher trust check … offline mode".
- DeepSpeed, when installed, prints "Setting accelerator to CPU …" to stdout (it would corrupt `vlmkit infer`'s
  answer on stdout).
- transformers 5.x raises a FutureWarning about `is_gradient_checkpointing` from inside its own Trainer.
"""

from __future__ import annotations

import logging
import warnings

NOISE = {
    "bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward",),
    "kernels._internals.hf_hub": ("Skipping publisher trust check",),
    "DeepSpeed": ("Setting accelerator to CPU",),
}
FUTURE_WARNINGS = (r"`is_gradient_checkpointing` is deprecated",)


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def install() -> None:
    """Idempotent: attach the filters to the named loggers (they exist before the libraries configure them)."""
    for name, prefixes in NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(prefixes))
    for message in FUTURE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
