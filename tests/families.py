"""Family lists shared by the parametrised tests (a plain module: `conftest` names are ambiguous across dirs)."""

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "smolvlm"]
QWEN_FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
