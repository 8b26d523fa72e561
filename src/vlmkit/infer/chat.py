"""Multi-turn chat over an engine: history kept as messages, media attached to the next user turn.

`ChatSession` is the logic (usable from a notebook or a test); `chat_loop` is the terminal front end that
`vlmkit chat` runs: it prompts on stdout, reads lines with `input()`, streams each answer to stdout (control
characters shown, not obeyed: see `terminal`), and understands /image PATH, /video PATH, /reset, /save FILE,
/help and /quit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..data.schema import Sample
from ..errors import VlmkitError
from ..io import dumps_line
from .engine import Engine, GenerationParams, TextStream
from .terminal import for_terminal

HELP = (
    "commands: /image PATH_OR_URL  attach an image to your next message | /video PATH  attach a video | "
    "/reset  start over | /save FILE  add the conversation to FILE as a samples.jsonl line | /quit  leave"
)


class ChatSession:
    def __init__(self, engine: Engine, params: GenerationParams | None = None, *, system: str | None = None):
        self.engine = engine
        self.params = params or GenerationParams(max_new_tokens=256)
        self.system = system
        self.messages: list[dict[str, Any]] = []
        self.pending: list[dict[str, str]] = []  # media parts waiting for the next user message

    # --- media -------------------------------------------------------------------------------
    def attach_image(self, source: str) -> None:
        """Check the image opens now (a clear error at once, not after typing a question), then queue it."""
        from ..data.media import load_image

        source = _absolute(source)
        load_image(source)
        self.pending.append({"type": "image", "image": source})

    def attach_video(self, path: str) -> None:
        from ..data.media import probe_video

        if not self.engine.family.supports_video:
            raise VlmkitError(f"{self.engine.family.name} models do not take video input")
        path = _absolute(path)
        probe_video(path)
        self.pending.append({"type": "video", "video": path})

    # --- turns -------------------------------------------------------------------------------
    def ask(self, text: str) -> ChatReply:
        """Start the answer to `text`; the turn joins the history once the reply is consumed or closed."""
        if not text.strip():
            raise VlmkitError("empty message: type a question")
        user = {"role": "user", "content": [*self.pending, {"type": "text", "text": text}]}
        prefix = [{"role": "system", "content": [{"type": "text", "text": self.system}]}] if self.system else []
        request = Sample(id="chat", messages=[*prefix, *self.messages, user])
        stream = self.engine.stream(request, self.params)
        self.pending = []
        return ChatReply(self, user, stream)

    def _record(self, user: dict[str, Any], answer: str) -> None:
        self.messages += [user, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]

    def reset(self) -> None:
        self.messages, self.pending = [], []

    # --- saving ------------------------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        """The conversation as a sample record (the samples.jsonl schema), so it can be reused as data."""
        if not self.messages:
            raise VlmkitError("nothing to save yet: the conversation is empty")
        prefix = [{"role": "system", "content": [{"type": "text", "text": self.system}]}] if self.system else []
        info = self.engine.info()
        sample = Sample(
            id=f"chat-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}",
            messages=[*prefix, *self.messages],
            meta={
                "source": "vlmkit chat",
                "model": info.get("model"),
                "adapter": info.get("adapter"),
                "family": info.get("family"),
                "generation": self.params.to_dict(),
            },
        )
        return sample.to_json()

    def save(self, path: str | os.PathLike) -> Path:
        """Append the conversation to `path` as one samples.jsonl line (`vlmkit data import` reads it back).
        The folder must exist: a typo in it is an error, not a new folder somewhere."""
        path = Path(path).expanduser()
        line = dumps_line(self.to_record()) + "\n"
        if not path.parent.is_dir():
            raise VlmkitError(f"cannot save to {path}: folder {path.parent} does not exist")
        if path.is_dir():
            raise VlmkitError(f"cannot save to {path}: it is a folder; give a file name such as chat.jsonl")
        try:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError as exc:
            raise VlmkitError(f"cannot save to {path}: {exc.strerror or exc}") from None
        return path


class ChatReply:
    """The streamed answer of one turn. Iterate for text pieces; exhausting or closing it records the turn
    (a reply stopped early keeps what was shown)."""

    def __init__(self, session: ChatSession, user: dict[str, Any], stream: TextStream):
        self._session, self._user, self._stream = session, user, stream
        self.text = ""
        self._recorded = False

    def __iter__(self) -> ChatReply:
        return self

    def __next__(self) -> str:
        try:
            piece = next(self._stream)
        except StopIteration:
            self._record()
            raise
        self.text += piece
        return piece

    def close(self) -> None:
        self._stream.close()
        self._record()

    def _record(self) -> None:
        if not self._recorded:
            self._recorded = True
            self._session._record(self._user, self.text)


def chat_loop(
    session: ChatSession, *, read: Callable[[str], str] | None = None, write: Callable[[str], Any] | None = None
) -> None:
    """The terminal conversation: prompts with `you> `, streams `assistant> ...`, runs slash commands."""
    write = write or _stdout
    read = read or _read_line
    write(HELP + "\n")
    while True:
        try:
            line = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            write("\n")
            return
        if not line:
            continue
        if line.startswith("/"):
            try:
                if not _command(session, line, write):
                    return
            except VlmkitError as exc:
                write(f"error: {exc}\n")
            continue
        try:
            reply = session.ask(line)
        except VlmkitError as exc:
            write(f"error: {exc}\n")
            continue
        write("assistant> ")
        try:
            for piece in reply:
                write(for_terminal(piece, sys.stdout))
        except KeyboardInterrupt:
            reply.close()
            write(" [stopped]")
        except VlmkitError as exc:
            write(f"\nerror: {exc}")
        write("\n")


def _command(session: ChatSession, line: str, write: Callable[[str], Any]) -> bool:
    """Run one slash command; False means leave the chat."""
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    if name in ("/quit", "/exit", "/q"):
        return False
    if name in ("/image", "/video"):
        if not arg:
            raise VlmkitError(f"usage: {name} PATH")
        (session.attach_image if name == "/image" else session.attach_video)(arg)
        write(f"attached {name[1:]} {arg} to your next message\n")
    elif name == "/reset":
        session.reset()
        write("conversation cleared\n")
    elif name == "/save":
        if not arg:
            raise VlmkitError("usage: /save FILE")
        write(f"saved the conversation to {session.save(arg)}\n")
    elif name == "/help":
        write(HELP + "\n")
    else:
        write(f"unknown command {name}; {HELP}\n")
    return True


def _absolute(source: str) -> str:
    """Local paths become absolute (so a saved conversation still points at them); URLs stay as they are."""
    if "://" in source or source.startswith("data:"):
        return source
    return str(Path(source).expanduser().resolve())


def _stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _read_line(prompt: str) -> str:
    # input(prompt) on a terminal writes the prompt to stderr (readline's way); the prompt belongs to stdout.
    _stdout(prompt)
    return input()
