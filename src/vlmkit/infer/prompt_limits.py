"""How long a prompt may be: a cap in tokens, and a cap in characters checked before anything is tokenized.

A prompt longer than the model's context cannot be answered, and one far below it can still take seconds and
gigabytes (attention grows with its square) while nobody else is served. So every engine refuses, per request:

- prompts whose text is over `max_chars` characters, before tokenizing (a 10 MB question costs nothing);
- prompts over `max_tokens` tokens (text and media placeholders together), once encoded.

`max_tokens` is the smaller of the model's context and the operator's cap (`--max-prompt-tokens`, default
DEFAULT_MAX_PROMPT_TOKENS); `max_chars` allows CHARS_PER_TOKEN characters per token, far more than any
tokenizer packs, so only prompts that could never fit are refused unread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import VlmkitError

DEFAULT_MAX_PROMPT_TOKENS = 8192
CHARS_PER_TOKEN = 8
# OpenAI's code for the same refusal, so clients that handle it there handle it here.
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"


class PromptTooLong(VlmkitError):
    """A prompt over the engine's limit; the message gives its size and the limit."""

    code = CONTEXT_LENGTH_EXCEEDED


@dataclass(frozen=True)
class PromptLimits:
    max_tokens: int
    max_chars: int
    context: int | None = None  # the model's own context, when its config tells

    @classmethod
    def for_model(cls, config: Any, max_prompt_tokens: int | None = None) -> PromptLimits:
        """The limits for a model with this transformers config and an operator's cap (None: the default)."""
        requested = DEFAULT_MAX_PROMPT_TOKENS if max_prompt_tokens is None else max_prompt_tokens
        if not isinstance(requested, int) or requested < 1:
            raise VlmkitError(f"max_prompt_tokens must be a positive integer, not {requested!r}")
        context = model_context(config)
        tokens = min(requested, context) if context else requested
        return cls(max_tokens=tokens, max_chars=tokens * CHARS_PER_TOKEN, context=context)

    def check_chars(self, sample: Any) -> None:
        """Refuse a prompt whose text alone is over the character cap (raises PromptTooLong)."""
        chars = prompt_chars(sample)
        if chars > self.max_chars:
            raise PromptTooLong(
                f"the prompt is {chars:,} characters, over the limit of {self.max_chars:,} characters "
                f"({CHARS_PER_TOKEN} per token of the {self.max_tokens:,}-token limit, {self._source()}); "
                "shorten the messages"
            )

    def check_tokens(self, tokens: int) -> None:
        if tokens > self.max_tokens:
            raise PromptTooLong(
                f"the prompt is {tokens:,} tokens (text and media), over the limit of {self.max_tokens:,} tokens "
                f"({self._source()}); shorten the messages or send fewer or smaller images"
            )

    def _source(self) -> str:
        if self.context is not None and self.max_tokens == self.context:
            return "the model's context"
        return "set by max_prompt_tokens"

    def as_dict(self) -> dict[str, Any]:
        return {"max_prompt_tokens": self.max_tokens, "max_prompt_chars": self.max_chars, "context": self.context}


def prompt_chars(sample: Any) -> int:
    return sum(len(message.text()) for message in sample.prompt_messages())


def model_context(config: Any) -> int | None:
    """The longest sequence the model's positions cover (of its language model, for a VLM), if it says."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for candidate in (text_config, config):
        value = getattr(candidate, "max_position_embeddings", None)
        if isinstance(value, int) and value > 0:
            return value
    return None
