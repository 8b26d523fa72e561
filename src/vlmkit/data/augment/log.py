"""The request log of an augment run, `OUT/augment_requests.jsonl`: what makes `vlmkit data augment` resumable.

Line 1 is a header with the settings that decide what a request returns (model, endpoint, prompts, languages,
decoding); every further line is one finished request, appended and flushed as it arrives:

    {"id": "q7", "question": "3f2a9c1b07de", "method": "paraphrase", "variant": 2, "stage": "variant",
     "text": "...", "finish_reason": "stop", "prompt_tokens": 61, "completion_tokens": 9, "error": null}

(`question`: a hash of the source question, so a question edited in DIR since is asked afresh.)

`stage` is `pivot` (back-translation, first leg), `variant` (the new question) or `check` (the endpoint's answer
to it). After `kill -9` the torn last line is dropped and a rerun sends only what has no successful line; a
later line for the same key replaces an earlier one (a retried failure). A rerun with other header settings is
refused, so answers of two set-ups are never mixed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError, DataError
from ...io import JsonlAppender, iter_jsonl

LOG_FILE = "augment_requests.jsonl"
Key = tuple[str, str, str, int, str]  # (source id, question hash, method, variant index from 0, stage)


class RequestLog:
    def __init__(self, out: Path, header: dict[str, Any], *, overwrite: bool = False):
        self.path = out / LOG_FILE
        if overwrite:
            self.path.unlink(missing_ok=True)
        existed = self.path.exists() and self.path.stat().st_size > 0
        self._appender = JsonlAppender(self.path)  # repairs a torn tail first
        self.entries: dict[Key, dict[str, Any]] = {}
        self.resumed = existed
        if existed:
            lines = iter_jsonl(self.path, skip_torn_tail=True)
            first = next(lines, (0, None))[1]
            old = first.get("header") if isinstance(first, dict) else None
            if not isinstance(old, dict):
                raise ConfigError(f"{self.path}: not an augment request log (no header); remove it or pass --overwrite")
            changed = [k for k in header if old.get(k) != header[k]]
            if changed:
                what = "; ".join(f"{k} {old.get(k)!r} then, {header[k]!r} now" for k in changed)
                raise ConfigError(
                    f"{self.path} holds a run with other settings ({what}); pass --overwrite to start over, "
                    "or choose another --out"
                )
            for line, entry in lines:
                try:
                    self.entries[key_of(entry)] = entry
                except (KeyError, TypeError, ValueError, AttributeError):
                    raise DataError(
                        "not a request entry (id, question, method, variant, stage)",
                        path=self.path,
                        record=f"line {line}",
                    ) from None
        else:
            self._appender.write({"header": header})

    def done(self, key: Key) -> dict[str, Any] | None:
        """The successful entry for `key`, or None (never asked, or failed: asked again)."""
        entry = self.entries.get(key)
        return entry if entry is not None and not entry.get("error") else None

    def add(self, key: Key, entry: dict[str, Any]) -> None:
        entry = {"id": key[0], "question": key[1], "method": key[2], "variant": key[3], "stage": key[4], **entry}
        self._appender.write(entry)
        self.entries[key] = entry

    def close(self) -> None:
        self._appender.close()


def key_of(entry: dict[str, Any]) -> Key:
    return (str(entry["id"]), str(entry["question"]), str(entry["method"]), int(entry["variant"]), str(entry["stage"]))


def question_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
