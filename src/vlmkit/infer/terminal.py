"""Model output on a terminal: control characters shown, never obeyed.

A model's answer is untrusted text. Printed raw, a `\\r` moves the cursor back over the `assistant>` label, and
escape sequences can recolour, clear or retitle the terminal. On a terminal every control character but
newline and tab is shown as its escape (`\\r`, `\\x1b`), as are the invisible bidirectional overrides that
reorder what is shown; written to a file or a pipe, the answer stays byte-exact.
"""

from __future__ import annotations

import re
from typing import TextIO

# C0 controls but \t and \n, DEL, C1 controls, and the bidi embedding/override/isolate characters.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\r": "\\r", "\x0b": "\\v", "\x0c": "\\f", "\x08": "\\b", "\x07": "\\a"}


def visible(text: str) -> str:
    """`text` with every control character replaced by a printable escape (see the module docstring)."""
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str, stream: TextIO) -> str:
    """`text` made visible when `stream` is a terminal, unchanged otherwise."""
    isatty = getattr(stream, "isatty", None)
    return visible(text) if isatty is not None and isatty() else text
