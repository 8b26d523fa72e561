"""Submission files for test splits without answers (uploaded to the official servers).

    vizwiz   [{"image": "VizWiz_test_00000001.jpg", "answer": "..."}]      (VizWiz / EvalAI)
    docvqa   [{"questionId": 12345, "answer": "..."}]                        (DocVQA, InfographicVQA / RRC)
    vqa      [{"question_id": 12345, "answer": "..."}]                       (TextVQA, VQAv2 / EvalAI)
    *.npy    a numpy array of the answers in dataset order, any task          (seed 002's submission.npy)
Answers are the task's post-processed predictions (for VizWiz/TextVQA that includes the EvalAI processor).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError, VlmkitError
from ..io import atomic_write_bytes, write_json
from .predictions import PredictionRecord
from .tasks import Task

_TRAILING_INT = re.compile(r"(\d+)$")


def _image_name(record: PredictionRecord) -> str:
    for key in ("image", "image_name", "image_id", "file_name"):
        value = record.meta.get(key)
        if isinstance(value, str) and value:
            return Path(value).name
    return record.id if Path(record.id).suffix else f"{record.id}.jpg"


def _question_id(record: PredictionRecord, path: object) -> int:
    for key in ("questionId", "question_id"):
        value = record.meta.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    match = _TRAILING_INT.search(record.id)
    if not match:
        raise DataError(
            "no numeric question id (set meta.question_id, or use ids ending in the number)",
            path=path,
            record=f"line {record.line}" if record.line else record.id,
            field="id",
        )
    return int(match.group(1))


def submission_rows(
    records: Sequence[PredictionRecord], task: Task, fmt: str | None = None, path: object = None
) -> list[dict[str, Any]]:
    fmt = fmt or task.submission_format
    if fmt is None:
        raise VlmkitError(f"task '{task.name}' has no submission format (known: vizwiz, docvqa, vqa)")
    rows = []
    for record in records:
        answer = task.postprocess_answer(record.prediction)
        if fmt == "vizwiz":
            rows.append({"image": _image_name(record), "answer": answer})
        elif fmt == "docvqa":
            rows.append({"questionId": _question_id(record, path), "answer": answer})
        elif fmt == "vqa":
            rows.append({"question_id": _question_id(record, path), "answer": answer})
        else:
            raise VlmkitError(f"unknown submission format '{fmt}' (known: vizwiz, docvqa, vqa)")
    return rows


def write_submission(
    records: Sequence[PredictionRecord],
    task: Task,
    path: str | os.PathLike,
    fmt: str | None = None,
    source: object = None,
) -> Path:
    """The task's JSON format; a path ending in .npy gets the bare answers as a numpy array instead (records
    come in dataset order, which is what such a file is matched by)."""
    if Path(path).suffix.lower() == ".npy":
        import io

        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, np.array([task.postprocess_answer(r.prediction) for r in records], dtype=str))
        return atomic_write_bytes(path, buffer.getvalue())
    return write_json(path, submission_rows(records, task, fmt, path=source))
