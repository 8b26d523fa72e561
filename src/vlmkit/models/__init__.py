"""Model families: one small adapter per family behind a registry (see registry.py)."""

from .registry import FAMILIES, detect_family, family_names, get_family

__all__ = ["FAMILIES", "detect_family", "family_names", "get_family"]
