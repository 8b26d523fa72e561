"""The multiple-choice prompt as VLMEvalKit builds it, from a sample's question and meta.

    Hint: {hint}
    Question: {question}
    Options:
    A. {option A}
    B. {option B}
    Please select the correct answer from the options above.

(no "Options" lines for a question without options, e.g. MMMU's open questions). Images come first, in
order; when the text has MMMU's `<image N>` placeholders, the text is cut there and image N goes in its
place (an image no placeholder names is left out, as VLMEvalKit does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...metrics.choice import normalize_options

SELECT = "Please select the correct answer from the options above. \n"


def choice_question(question: str, meta: Mapping[str, Any]) -> str:
    hint = meta.get("hint")
    text = ""
    if isinstance(hint, str) and hint.strip():
        text += f"Hint: {hint}\n"
    text += f"Question: {question}\n"
    options = normalize_options(meta.get("options"))
    if options:
        text += "Options:\n" + "".join(f"{letter}. {value}\n" for letter, value in options.items()) + SELECT
    return text


def choice_content(parts: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """Content parts of the user turn: the media parts of `parts`, then `text` (or interleaved at
    `<image N>` placeholders)."""
    media = [p for p in parts if p.get("type") != "text"]
    images = [p for p in media if p.get("type") == "image"]
    pieces = text.split("<image ")
    if len(pieces) == 1 or not images:
        return [*media, {"type": "text", "text": text}]
    content: list[dict[str, Any]] = [{"type": "text", "text": pieces[0]}]
    for piece in pieces[1:]:
        if len(piece) >= 2 and piece[0].isdigit() and piece[1] == ">" and 0 < int(piece[0]) <= len(images):
            content += [images[int(piece[0]) - 1], {"type": "text", "text": piece[2:]}]
        else:  # not a placeholder after all: keep the text as written
            content[-1] = {"type": "text", "text": content[-1]["text"] + "<image " + piece}
    return [p for p in content if p.get("type") != "text" or p["text"]]
