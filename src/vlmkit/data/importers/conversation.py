"""Multi-turn conversations (ViTextVQA, LLaVA, ShareGPT) -> Samples, split per QA pair or kept whole.

Shared rules:
- roles: human/user -> user, gpt/assistant -> assistant, system -> system (only before the first question)
- `<image>` / `<video>` placeholders in the text become media parts at that position; the literal
  placeholder and the whitespace next to it are dropped ("<image>\\nWhat is it?" -> [image, "What is it?"])
- turns must alternate user/assistant. An odd count (a last question with no answer) is an error; when
  splitting, the answered pairs before it are still written and only the dangling question is reported.
- when splitting, a question whose turn has no media of its own gets the media shown earlier in the
  conversation (a LLaVA follow-up question is still about the image of turn 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from ..schema import Sample
from .base import Outcome, RecordError, record_id

ROLE_NAMES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "system": "system",
}
PLACEHOLDER = re.compile(r"(<image>|<video>)")


def parse_turns(messages: Any, *, role_key: str, content_key: str, field: str) -> list[tuple[str, str]]:
    """[(role, text)] with roles normalised; RecordError naming the turn on anything malformed."""
    if not isinstance(messages, list):
        raise RecordError(f"must be a list of turns, got {type(messages).__name__}", field=field)
    if not messages:
        raise RecordError("conversation is empty", field=field)
    turns = []
    for number, turn in enumerate(messages, start=1):
        if not isinstance(turn, dict):
            raise RecordError(f"turn {number} is a {type(turn).__name__}, not an object", field=field)
        role_value = turn.get(role_key)
        role = ROLE_NAMES.get(str(role_value).strip().lower()) if role_value is not None else None
        if role is None:
            raise RecordError(
                f"turn {number} has role {role_value!r}; expected one of {sorted(ROLE_NAMES)}", field=field
            )
        text = turn.get(content_key)
        if not isinstance(text, str):
            raise RecordError(f"turn {number} has no text in '{content_key}'", field=field)
        turns.append((role, text))
    return turns


def expected_pairs(messages: Any, role_key: str) -> int:
    """Questions in a conversation (for counting what a failed record loses); 1 if unreadable."""
    if not isinstance(messages, list):
        return 1
    users = sum(1 for t in messages if isinstance(t, dict) and ROLE_NAMES.get(str(t.get(role_key)).lower()) == "user")
    return max(1, users)


def text_parts(text: str, take_media: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Split text around placeholders; `take_media('image'|'video')` gives the next stored media part."""
    parts: list[dict[str, Any]] = []
    pieces = PLACEHOLDER.split(text)
    for index, piece in enumerate(pieces):
        if piece in ("<image>", "<video>"):
            parts.append(take_media(piece[1:-1]))
            continue
        if index > 0:
            piece = piece.lstrip()  # whitespace right after a placeholder ("<image>\n")
        if index < len(pieces) - 1:
            piece = piece.rstrip()  # whitespace right before one
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def count_placeholders(turns: list[tuple[str, str]], kind: str) -> int:
    return sum(text.count(f"<{kind}>") for _, text in turns)


def build_conversation(
    turns: list[tuple[str, str]],
    *,
    base_id: str,
    mode: str,
    meta: dict[str, Any],
    media: dict[str, list[dict[str, Any]]],
    field: str,
) -> Iterable[Outcome]:
    """Samples from checked turns. `media` holds stored parts per kind, in placeholder order.

    Media without any placeholder in the text go at the start of the first question (keep) or of
    every question (split), which is where ViTextVQA's single image belongs.
    """
    queues = {kind: list(parts) for kind, parts in media.items()}

    def take(kind: str) -> dict[str, Any]:
        if not queues.get(kind):
            raise RecordError(f"more <{kind}> placeholders than {kind}s", field=field)
        return queues[kind].pop(0)

    system: list[dict[str, Any]] = []
    body: list[tuple[str, list[dict[str, Any]]]] = []
    for number, (role, text) in enumerate(turns, start=1):
        parts = text_parts(text, take)
        if role == "system":
            if body:
                raise RecordError(f"turn {number}: a system turn after the conversation started", field=field)
            system.append({"role": "system", "content": parts or [{"type": "text", "text": ""}]})
            continue
        expected = "user" if not body or body[-1][0] == "assistant" else "assistant"
        if role != expected:
            if not body:
                raise RecordError(
                    f"turn {number}: the conversation must start with a question, not an answer", field=field
                )
            raise RecordError(
                f"turn {number}: two '{role}' turns in a row; turns must alternate user/assistant", field=field
            )
        if not any(p["type"] == "text" and p["text"].strip() for p in parts) and role == "assistant":
            raise RecordError(f"turn {number}: empty answer", field=field)
        if not parts:
            raise RecordError(f"turn {number}: empty question", field=field)
        body.append((role, parts))
    leftover = {kind: len(q) for kind, q in queues.items() if q}
    placed_anywhere = any(p["type"] != "text" for _, parts in body for p in parts)
    if leftover and placed_anywhere:
        detail = ", ".join(f"{n} {kind}(s)" for kind, n in leftover.items())
        raise RecordError(f"{detail} without a <placeholder> in the text; the counts must match", field=field)
    unplaced = [p for q in queues.values() for p in q]
    if not body:
        raise RecordError("conversation has no question", field=field)

    dangling = body[-1][0] == "user"
    answered = body[:-1] if dangling else body
    if mode == "keep":
        if dangling:
            raise RecordError(
                f"odd number of turns ({len(body)}): the last question has no answer "
                "(--turns split keeps the answered pairs)",
                field=field,
            )
        messages = system + [{"role": r, "content": list(p)} for r, p in answered]
        if unplaced:
            messages[len(system)]["content"] = unplaced + messages[len(system)]["content"]
        answers = [_text(answered[-1][1])]
        yield _sample(base_id, messages, answers, meta)
        return

    seen_media: list[dict[str, Any]] = list(unplaced)
    for index in range(0, len(answered), 2):
        question, answer = answered[index][1], answered[index + 1][1]
        own = [p for p in question if p["type"] != "text"]
        if not own:
            question = seen_media + question
        else:
            seen_media.extend(p for p in own if p not in seen_media)
        messages = system + [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        yield _sample(f"{base_id}-{index // 2}", messages, [_text(answer)], {**meta, "turn": index // 2})
    if dangling:
        yield RecordError(f"turn {len(turns)}: question has no answer (odd number of turns)", field=field)


def _text(parts: list[dict[str, Any]]) -> str:
    return " ".join(p["text"] for p in parts if p["type"] == "text").strip()


def _sample(sample_id: str, messages: list[dict[str, Any]], answers: list[str], meta: dict[str, Any]) -> Sample:
    return Sample.model_validate({"id": sample_id, "messages": messages, "answers": answers, "meta": meta})


def stored_media_parts(ctx: Any, record: Any, kind: str, values: list[Any], field: str) -> list[dict[str, Any]]:
    """Store each image/video of a record and return its content parts, in order."""
    store = ctx.media.image if kind == "image" else ctx.media.video
    return [
        {"type": kind, kind: store(v, name=f"{record.where()} {kind}", search_dirs=ctx.media_dirs(), field=field)}
        for v in values
    ]


def record_conversation(
    converter: Any,
    record: Any,
    ctx: Any,
    turns: list[tuple[str, str]],
    media: dict[str, list[dict[str, Any]]],
    field: str,
) -> Iterable[Outcome]:
    """Samples of a conversation record (LLaVA, ShareGPT): ids and meta from the record, turns per --turns."""
    source_id = record_id(record.data, record, "id")
    meta = {"source": converter.name, "source_id": source_id}
    if record.split:
        meta["split"] = record.split
    return build_conversation(
        turns,
        base_id=f"{converter.name}-{source_id}",
        mode=ctx.options.turns or converter.default_turns,
        meta=meta,
        media=media,
        field=field,
    )
