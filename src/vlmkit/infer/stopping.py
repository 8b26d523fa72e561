"""Stopping criteria for `model.generate`: stop strings, and cancellation of a stream.

Stop strings are checked on decoded text, the same text the answer is cut from (see text.py). transformers'
own `stop_strings` option precomputes a table over the whole vocabulary on every `generate` call, 2-4 s
for Qwen's 151k tokens, which a server answering requests with stop lists cannot afford; decoding the tail
of each row per step costs microseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

# A character can take up to 4 byte-level tokens; a stop string that just completed lies in this many tokens.
TOKENS_PER_CHAR = 4


def stop_strings_criterion(tokenizer: Any, stop: Sequence[str], prompt_width: int) -> Any:
    """Criterion that finishes a row once its new text contains one of `stop`."""
    from transformers import StoppingCriteria

    stops = tuple(stop)
    tail = TOKENS_PER_CHAR * max(len(s) for s in stops) + 8

    class StopStrings(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            start = max(prompt_width, input_ids.shape[1] - tail)
            texts = tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            done = [any(s in text for s in stops) for text in texts]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopStrings()


def cancel_criterion(event: threading.Event) -> Any:
    """Criterion that ends generation once `event` is set (the stream's consumer went away)."""
    from transformers import StoppingCriteria

    class StopOnEvent(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StopOnEvent()
