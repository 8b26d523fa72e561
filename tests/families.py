"""Family lists shared by the parametrised tests (a plain module: `conftest` names are ambiguous across dirs).

FAMILIES is the registry itself, so a new family's adapter is put through every family test without editing any.
"""

from vlmkit.models.registry import family_names

FAMILIES = family_names()
QWEN_FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
