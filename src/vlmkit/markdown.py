"""Markdown tables for the reports vlmkit writes (data stats, eval reports, compare, the quickstart report)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table as lines (cells already formatted: pass text through `md_cell` where it may hold '|')."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def md_cell(text: Any, limit: int = 80, empty: str = "") -> str:
    """One table cell: a single line, pipes escaped, text over `limit` characters cut with an ellipsis."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    if not text:
        return empty
    return text if len(text) <= limit else text[: limit - 1] + "…"
