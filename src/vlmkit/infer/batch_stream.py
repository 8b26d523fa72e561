"""Streaming text of a whole batch: one `model.generate` call, each row's new text sent to its own sink.

transformers' text streamers take one row only, so a server that streamed each request alone ran streaming
clients one at a time. Here each step's new tokens are split by row; a row's tokens are decoded whole and its
`StreamText` releases only what can no longer change (stop strings, trailing space, half characters), so
the pieces a sink gets add up to the row's batch answer (`finish` sends the rest from the final result).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .text import StreamText

Sink = Callable[[str], None]


class BatchTextStreamer:
    """A transformers streamer (`put`/`end`) over a batch; `texts[k]`/`sinks[k]` belong to row k."""

    def __init__(self, tokenizer: Any, texts: Sequence[StreamText], sinks: Sequence[Sink], eos_ids: set[int]):
        self.tokenizer, self.texts, self.sinks, self.eos_ids = tokenizer, list(texts), list(sinks), eos_ids
        self.ids: list[list[int]] = [[] for _ in self.texts]
        self.ended = [False] * len(self.texts)
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # the first call carries the prompts
            self._prompt_seen = True
            return
        rows = value.reshape(len(self.texts), -1).tolist()
        for row, tokens in enumerate(rows):
            if self.ended[row]:
                continue  # finished rows are padded: nothing more to show
            for token in tokens:
                if token in self.eos_ids:
                    self.ended[row] = True
                    break
                self.ids[row].append(token)
            new = self.texts[row].update(self.tokenizer.decode(self.ids[row], skip_special_tokens=True))
            if new:
                self.sinks[row](new)

    def end(self) -> None:
        pass

    def finish(self, answers: Sequence[str]) -> None:
        """Send each row the rest of its final answer (computed from all its tokens)."""
        for text, sink, answer in zip(self.texts, self.sinks, answers):
            rest = text.finish(answer)
            if rest:
                sink(rest)
