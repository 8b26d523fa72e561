"""Optional LLM judge for the answers the rule-based matchers can't place (VLMEvalKit's judge step).

Off by default: multiple-choice and yes/no answers are read by the rules (`extract_choice`,
`extract_yes_no`), and an answer they can't read scores wrong (VLMEvalKit's `exact_matching`). With a judge
(`vlmkit score --judge-base-url URL --judge-model NAME`, any OpenAI-compatible server), each such answer
is shown to the judge with the question and the options, as VLMEvalKit's matching prompt does; the judge's
reply is read by the same rules, up to three tries (the later ones sampled). A reply that still selects
nothing leaves the answer undecided (VLMEvalKit would pick an option at random; we score it wrong, so the
result is reproducible). Which path decided how many answers goes into scores.json (`answer_extraction`).

The judge is a plain function `prompt -> reply` (`Complete`), so any client can stand behind it;
`openai_complete` builds one on the `openai` package.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import VlmkitError
from ..metrics.choice import JUDGE_CHOICE, JUDGE_YES_NO, extract_choice, extract_yes_no, options_of
from .predictions import PredictionRecord

Complete = Callable[[str, float], str]  # (prompt, temperature) -> the judge's reply
TRIES = 3


def choice_judge_prompt(question: str, options: dict[str, str], prediction: str) -> str:
    """VLMEvalKit's matching prompt: which option is the answer most similar to; Z when none is."""
    letters = ", ".join(options)
    listed = "".join(f"{letter}. {text}\n" for letter, text in options.items())
    return (
        "You are an AI assistant who will help me to match an answer with several options of a single-choice "
        "question. You are provided with a question, several options, and an answer, and you need to find which "
        "option is most similar to the answer. If the meaning of all options are significantly different from "
        f"the answer, output Z. You should output a single uppercase character in {letters} (if they are valid "
        "options), and Z. \n"
        "Example 1: \nQuestion: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
        "Answer: a cute teddy bear\nYour output: A\n"
        "Example 2: \nQuestion: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
        "Answer: Spider\nYour output: Z\n"
        f"Example 3: \nQuestion: {question}?\nOptions: There are several options: \n{listed}\n"
        f"Answer: {prediction}\nYour output: "
    )


def yes_no_judge_prompt(question: str, prediction: str) -> str:
    """VLMEvalKit's yes/no matching prompt: Yes, No or Unknown."""
    return (
        "You are an AI assistant who will help me to match an answer with two options of a question. The options "
        "are only Yes / No. You are provided with a question and an answer, and you need to find which option "
        "(Yes / No) is most similar to the answer. If the meaning of all options are significantly different from "
        "the answer, output Unknown. You should output a single word among the following 3 choices: Yes, No, "
        "Unknown.\n"
        "Example 1: \nQuestion: Is the word in this image 'Hello'?\nAnswer: The word in this image is 'Hello'.\n"
        "Your output: Yes\n"
        "Example 2: \nQuestion: Is the word in this image 'Hello'?\n"
        "Answer: The word in this image is not 'Hello'.\nYour output: No\n"
        f"Example 3: \nQuestion: {question}?\nAnswer: {prediction}\nYour output: "
    )


def openai_complete(base_url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0) -> Complete:
    """A `Complete` on an OpenAI-compatible chat endpoint (the `openai` package)."""
    try:
        from openai import OpenAI
    except ImportError:
        raise VlmkitError("the LLM judge needs the openai package: pip install 'openai>=1.30'") from None
    client = OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "none", timeout=timeout)

    def complete(prompt: str, temperature: float = 0.0) -> str:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], temperature=temperature, max_tokens=16
        )
        return reply.choices[0].message.content or ""

    return complete


def _kind(metrics: Sequence[str]) -> str | None:
    if any(m in ("choice_accuracy", "mmmu_accuracy") for m in metrics):
        return "choice"
    if "yes_no_accuracy" in metrics:
        return "yes_no"
    return None


def extraction_counts(
    records: Sequence[PredictionRecord], predictions: Sequence[str], metrics: Sequence[str], judge: Complete | None
) -> dict[str, Any] | None:
    """Run the judge (if any) on the answers the rules can't place, leaving its reading in each record's
    meta for the metrics; returns how many answers the rules, the judge, and nobody decided."""
    kind = _kind(metrics)
    if kind is None:
        return None
    counts = {"rules": 0, "judge": 0, "undecided": 0, "judge_used": judge is not None}
    for record, prediction in zip(records, predictions):
        if kind == "choice":
            options = options_of(record.meta)
            if not options:  # an open (MMMU) question: not a matter of picking an option
                continue
            if extract_choice(prediction, options) is not None:
                counts["rules"] += 1
                continue
            prompt = choice_judge_prompt(record.question, options, prediction)
            read, key = (lambda reply, o=options: extract_choice(reply, o)), JUDGE_CHOICE
        else:
            if extract_yes_no(prediction) is not None:
                counts["rules"] += 1
                continue
            prompt = yes_no_judge_prompt(record.question, prediction)
            read, key = extract_yes_no, JUDGE_YES_NO
        decided = None
        for attempt in range(TRIES if judge is not None else 0):
            decided = read(judge(prompt, 0.5 * attempt))
            if decided is not None:
                break
        if decided is None:
            counts["undecided"] += 1
        else:
            record.meta[key] = decided
            counts["judge"] += 1
    return counts
