"""Fine-tuning: LoRA, QLoRA and full fine-tuning on HF Trainer, and merged export.

from vlmkit.train import train, export_merged
result = train("configs/docvqa_qwen2vl_lora.yaml", ["lora.rank=16"])
export_merged(result.run_dir, "merged/")
"""

from .export import export_merged
from .runner import RunResult, train

__all__ = ["RunResult", "export_merged", "train"]
