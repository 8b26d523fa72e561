"""The offline quickstart: ShapesVQA data, an English base, a Vietnamese LoRA fine-tune, eval, compare, report.

    from vlmkit.quickstart import QuickstartOptions, run_quickstart
    report = run_quickstart(QuickstartOptions(out="quickstart"))
    report["tuned"]["vi"]   # exact match of base + adapter on held-out Vietnamese questions

Importing this package is cheap (no torch); the stages import what they need.
"""

from .pipeline import QuickstartOptions, run_quickstart
from .shapes import ShapesConfig

__all__ = ["QuickstartOptions", "ShapesConfig", "run_quickstart"]
