"""vlmkit: from a visual question answering dataset to a fine-tuned, evaluated and served VLM."""

__version__ = "0.1.0"

from . import quiet as _quiet

_quiet.install()
