"""The predictions file (predictions.jsonl), shared with `vlmkit infer --out`: one JSON object per line,

    {"id", "question", "prediction", "answers", "meta", "latency_s"}  plus an optional "error".

`read_predictions` accepts files from any tool: only "id" and "prediction" are required ("answers" too when
scoring); unknown extra fields are ignored. Every problem raises DataError naming the file and line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import iter_jsonl

PREDICTIONS_FILE = "predictions.jsonl"
# Optional per-row facts from the engine: token counts as the endpoint counted them (for cost), and its
# system_fingerprint.
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "system_fingerprint")


@dataclass
class PredictionRecord:
    id: str
    prediction: str
    answers: list[str] = field(default_factory=list)
    question: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    latency_s: float | None = None
    error: str | None = None
    line: int | None = None
    usage: dict[str, Any] = field(default_factory=dict)  # prompt_tokens, completion_tokens, system_fingerprint

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "prediction": self.prediction,
            "answers": self.answers,
            "meta": self.meta,
            "latency_s": self.latency_s,
        }
        if self.error is not None:
            row["error"] = self.error
        row.update(self.usage)
        return row


def _type_name(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return "null" if value is None else type(value).__name__


def _find_non_finite(value: Any, where: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_non_finite(item, f"{where}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _find_non_finite(item, f"{where}[{i}]")
            if found:
                return found
    return None


def parse_prediction(
    obj: Any, *, path: object = None, line: int | None = None, require_answers: bool = True
) -> PredictionRecord:
    """Validate one decoded line; DataError names the file, the line and the field."""
    where = {"path": path, "record": f"line {line}" if line is not None else None}
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {_type_name(obj)}", **where)

    def fail(field_name: str, reason: str) -> DataError:
        return DataError(reason, field=field_name, **where)

    if "id" not in obj:
        raise fail("id", "missing field 'id'")
    raw_id = obj["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise fail("id", f"must be a string or an integer, got {_type_name(raw_id)}")
    sample_id = str(raw_id)
    if not sample_id.strip():
        raise fail("id", "must not be empty")

    error = obj.get("error")
    if error is not None and not isinstance(error, str):
        raise fail("error", f"must be a string or null, got {_type_name(error)}")
    if "prediction" not in obj:
        raise fail("prediction", "missing field 'prediction'")
    prediction = obj["prediction"]
    if prediction is None and error is not None:
        prediction = ""  # a failed sample may carry no text; it scores as an empty answer
    if not isinstance(prediction, str):
        raise fail("prediction", f"must be a string, got {_type_name(prediction)}")

    if "answers" not in obj:
        if require_answers:
            raise fail("answers", "missing field 'answers' (the reference answers are needed to score)")
        answers: list[str] = []
    else:
        answers = obj["answers"]
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list):
            raise fail("answers", f"must be a list of strings, got {_type_name(answers)}")
        for i, answer in enumerate(answers):
            if not isinstance(answer, str):
                raise fail(f"answers[{i}]", f"must be a string, got {_type_name(answer)}")

    question = obj.get("question", "")
    if question is None:
        question = ""
    if not isinstance(question, str):
        raise fail("question", f"must be a string, got {_type_name(question)}")

    meta = obj.get("meta", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise fail("meta", f"must be an object, got {_type_name(meta)}")
    bad = _find_non_finite(meta, "meta")
    if bad:
        raise fail(bad, "is NaN or infinite")

    latency = obj.get("latency_s")
    if latency is not None:
        if isinstance(latency, bool) or not isinstance(latency, (int, float)):
            raise fail("latency_s", f"must be a number of seconds or null, got {_type_name(latency)}")
        if not math.isfinite(latency):
            raise fail("latency_s", f"is {_type_name(latency) if math.isnan(latency) else latency}; must be finite")
        if latency < 0:
            raise fail("latency_s", f"must not be negative, got {latency}")
        latency = float(latency)

    usage = {}
    for key in USAGE_KEYS:
        value = obj.get(key)
        if value is None:
            continue
        if key == "system_fingerprint":
            if not isinstance(value, str):
                raise fail(key, f"must be a string or null, got {_type_name(value)}")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise fail(key, f"must be a token count (an integer >= 0), got {value!r}")
        usage[key] = value

    return PredictionRecord(
        id=sample_id,
        prediction=prediction,
        answers=list(answers),
        question=question,
        meta=meta,
        latency_s=latency,
        error=error,
        line=line,
        usage=usage,
    )


def read_predictions(
    path: str | os.PathLike, *, require_answers: bool = True, skip_torn_tail: bool = False
) -> list[PredictionRecord]:
    """Read and validate a predictions file; duplicate ids are an error naming both lines."""
    path = Path(path)
    if path.is_dir():
        path = path / PREDICTIONS_FILE
    records: list[PredictionRecord] = []
    first_line: dict[str, int] = {}
    for line, obj in iter_jsonl(path, skip_torn_tail=skip_torn_tail):
        record = parse_prediction(obj, path=path, line=line, require_answers=require_answers)
        if record.id in first_line:
            raise DataError(
                f"duplicate id '{record.id}' (first seen on line {first_line[record.id]})",
                path=path,
                record=f"line {line}",
                field="id",
            )
        first_line[record.id] = line
        records.append(record)
    if not records:
        raise DataError("no predictions in file", path=path)
    return records
