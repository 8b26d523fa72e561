"""From decoded tokens to the answer text: one rule for batch and streaming output.

The answer is the decoded new tokens, cut before the first stop string, stripped. Streaming applies the
same rule to the text decoded so far and only releases what can no longer change: text that might be the
start of a stop string, trailing whitespace (the answer is stripped) and a trailing replacement character
(half of a multi-byte character) wait for the next piece. So the pieces always add up to the batch answer.
"""

from __future__ import annotations

from collections.abc import Sequence

REPLACEMENT_CHAR = "\ufffd"


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def final_text(decoded: str, stop: Sequence[str]) -> tuple[str, bool]:
    """The answer for fully decoded new tokens, and whether a stop string ended it."""
    text, hit = cut_at_stop(decoded, stop)
    return text.strip(), hit


class StreamText:
    """Turns the growing decoded text into safe-to-show increments (see the module docstring)."""

    def __init__(self, stop: Sequence[str]):
        self.stop = tuple(stop)
        self.raw = ""
        self.shown = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add decoded text; return the new part that is safe to show (may be empty)."""
        if self.stopped:
            return ""
        self.raw += piece
        text, self.stopped = cut_at_stop(self.raw, self.stop)
        if not self.stopped:
            text = text[: len(text) - self._pending_stop(text)]
            text = text.rstrip(REPLACEMENT_CHAR)
        return self._advance(text.strip())

    def update(self, decoded: str) -> str:
        """Like `feed`, given the whole text decoded so far instead of the new piece."""
        if self.stopped:
            return ""
        self.raw = ""
        return self.feed(decoded)

    def finish(self, final: str) -> str:
        """The rest of the final answer (computed from all tokens, as the batch path does)."""
        if not final.startswith(self.shown):  # cannot happen when decoding is prefix-stable; never repeat text
            return ""
        return self._advance(final)

    def _advance(self, safe: str) -> str:
        if len(safe) <= len(self.shown) or not safe.startswith(self.shown):
            return ""
        new = safe[len(self.shown) :]
        self.shown = safe
        return new

    def _pending_stop(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
        longest = 0
        for stop in self.stop:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
