"""Builders shared by the evaluation tests: samples, datasets on disk, predictions files."""

import json

from vlmkit.data.schema import Sample


def make_sample(i, *, answers=None, meta=None, question=None, image=True):
    content = [{"type": "image", "image": f"media/img{i}.png"}] if image else []
    content.append({"type": "text", "text": question or f"What is the value of item {i}?"})
    answers = [str(i * 7)] if answers is None else answers
    return Sample(
        id=f"s{i:04d}",
        messages=[
            {"role": "user", "content": content},
            {"role": "assistant", "content": answers[0] if answers else "x"},
        ],
        answers=answers,
        meta=meta or {"kind": "even" if i % 2 == 0 else "odd"},
    )


def write_dataset(folder, samples):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "samples.jsonl", "w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(json.dumps(sample.to_json()) + "\n")
    return folder


def write_predictions(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def item_number(question):
    """The i in 'What is the value of item i?' (the deterministic predict functions answer from it)."""
    return int(question.rsplit(" ", 1)[-1].rstrip("?"))


def rule_predict(requests):
    """Deterministic stand-in model: right (7 i) unless i % 3 == 0, then off by one."""
    out = []
    for request in requests:
        i = item_number(request.question)
        out.append(str(7 * i) if i % 3 else str(7 * i + 1))
    return out
