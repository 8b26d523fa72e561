"""Benchmark files in VLMEvalKit's TSV layout and lmms-eval's parquet layouts, generated on the fly:
base64 images, multi-image rows (JSON list), image-index references, MMBench-style circular groups."""

from __future__ import annotations

import base64
import csv
import json
import string
from pathlib import Path
from typing import Any

from fixtures_data import image_bytes

CIRCULAR = 1_000_000


def b64(index: int) -> str:
    return base64.b64encode(image_bytes(index, fmt="PNG")).decode()


def write_tsv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, delimiter="\t")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})
    return path


def rotations(options: list[str], answer: int) -> list[tuple[list[str], str]]:
    """Circular evaluation: the options shifted by 0..n-1, with the answer letter following its text."""
    n = len(options)
    return [
        ([options[(i + shift) % n] for i in range(n)], string.ascii_uppercase[(answer - shift) % n])
        for shift in range(n)
    ]


def mmbench_rows(questions: int = 3) -> list[dict[str, Any]]:
    """Each question with its rotations: index q, then q + k * 1_000_000 whose image is a reference to q."""
    rows = []
    texts = [["cat", "dog", "bird"], ["red", "green", "blue", "white"], ["one", "two"]]
    for q in range(questions):
        options = texts[q % len(texts)]
        for shift, (opts, letter) in enumerate(rotations(options, answer=q % len(options))):
            index = q + shift * CIRCULAR
            row = {
                "index": index,
                "question": f"Which thing is shown in picture {q}?",
                "hint": "Look closely." if q == 0 else "",
                "answer": letter,
                "category": "color" if q % 2 else "animal",
                "l2-category": "perception",
                "split": "dev",
                "image": b64(q) if shift == 0 else str(q),
            }
            row.update({string.ascii_uppercase[i]: t for i, t in enumerate(opts)})
            rows.append(row)
    return rows


def mmmu_rows() -> list[dict[str, Any]]:
    """Two multi-image rows (a JSON list of base64) with <image N> placeholders, and an open question."""
    return [
        {
            "index": 1,
            "question": "Compare <image 1> and <image 2>: which is brighter?",
            "A": "the first",
            "B": "the second",
            "answer": "B",
            "category": "Art",
            "image": json.dumps([b64(1), b64(2)]),
        },
        {"index": 2, "question": "How many sides has the shape in <image 1>?", "answer": "4", "image": b64(3)},
    ]
