"""A scripted rewriting endpoint for the augment tests: FakeOpenAI whose answers come from tables.

`ScriptedRewriter(variants, back, answers)` answers
- a paraphrase request (the default prompt: "variant K of N ... Question: Q") with variants[Q][K-1];
- the first back-translation leg ("into English") with "EN: Q", and the second (from English) with
  back[Q][seed] (the request's seed is the variant index);
- a check request (images + "V\nAnswer the question ...") with answers[V], else "?".
"""

from __future__ import annotations

import re
from typing import Any

from fake_openai import last_user_text

PARAPHRASE = re.compile(r"variant (\d+) of \d+.*Question: (.*)$", re.DOTALL)


class ScriptedRewriter:
    def __init__(
        self,
        variants: dict[str, list[str]],
        back: dict[str, list[str]] | None = None,
        answers: dict[str, str] | None = None,
    ):
        self.variants, self.back, self.answers = variants, back or {}, answers or {}

    def __call__(self, body: dict[str, Any]) -> str:
        text = last_user_text(body)
        match = PARAPHRASE.search(text)
        if match:
            return self.variants[match.group(2).strip()][int(match.group(1)) - 1]
        if text.startswith("Translate") and "into English" in text:
            return "EN: " + text.split("\n\n", 1)[1]
        if text.startswith("Translate"):
            pivot = text.split("\n\n", 1)[1]
            return self.back[pivot.removeprefix("EN: ")][body["seed"]]
        if "Answer the question" in text:
            return self.answers.get(text.split("\n")[0].strip(), "?")
        raise AssertionError(f"unexpected request: {text!r}")
