"""Caption tokenizers for the corpus metrics.

- ``ptb``: the Stanford PTB tokenizer that ships inside pycocoevalcap (java), run exactly as
  pycocoevalcap's PTBTokenizer runs it (``-preserveLines -lowerCase``, then its punctuation tokens removed).
  We start the JVM ourselves so that (a) nothing is written into site-packages (read-only installs work),
  (b) its chatter on stderr is captured, (c) line breaks of every kind become spaces so one caption is
  always one line (pycocoevalcap only replaces "\\n"; a "\\r" there silently shifts every later caption).
- ``simple``: a java-free approximation of that pipeline (lowercase; split off punctuation, "$", "%" and
  English clitics like "n't" / "'s"; map brackets to -lrb-/-rrb-/...; drop the same punctuation tokens).
  It agrees with PTB on ordinary captions; it does not know PTB's abbreviation list, so "no." or "mr."
  at the end of a sentence may differ. Scores computed with it are close to, not identical to, published ones.
- ``none``: the texts are used as they are (already tokenized, space-separated).
- ``auto``: ``ptb`` when java is on PATH, else ``simple`` (with a warning).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import VlmkitError

log = logging.getLogger(__name__)

TOKENIZERS = ("auto", "ptb", "simple", "none")

# pycocoevalcap's list of tokens removed after PTB tokenization (note: the bracket tokens are listed in
# upper case but PTB runs with -lowerCase, so "-lrb-" etc. survive; that is what published numbers used).
PTB_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
_LINE_BREAKS = re.compile(r"\r\n|[\n\r\u2028\u2029\x0b\x0c\x85]")


def java_available() -> bool:
    return shutil.which("java") is not None


def resolve_tokenizer(name: str) -> str:
    """Turn ``auto`` into ``ptb`` or ``simple``; reject unknown names."""
    if name not in TOKENIZERS:
        raise VlmkitError(f"unknown tokenizer '{name}' (choose from {', '.join(TOKENIZERS)})")
    if name == "auto":
        if java_available():
            return "ptb"
        log.warning(
            "java not found: using the java-free 'simple' tokenizer; BLEU/ROUGE-L/CIDEr will be close "
            "to, but not exactly, the published PTB-tokenized numbers"
        )
        return "simple"
    return name


def tokenize(texts: Sequence[str], tokenizer: str = "auto") -> list[str]:
    """Tokenize every text with the named tokenizer (one output string of space-separated tokens per text)."""
    name = resolve_tokenizer(tokenizer)
    if name == "ptb":
        return ptb_tokenize(texts)
    if name == "simple":
        return [simple_tokenize(t) for t in texts]
    return [t for t in texts]


def _corenlp_jar() -> Path:
    try:
        from pycocoevalcap.tokenizer import ptbtokenizer
    except ImportError as exc:  # pragma: no cover - pycocoevalcap is a dependency
        raise VlmkitError("the PTB tokenizer needs pycocoevalcap (pip install pycocoevalcap)") from exc
    jar = Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
    if not jar.exists():
        raise VlmkitError(f"pycocoevalcap's Stanford CoreNLP jar is missing: {jar}")
    return jar


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTB tokenization of each text (needs java)."""
    texts = list(texts)
    if not texts:
        return []
    if not java_available():
        raise VlmkitError(
            "the PTB tokenizer needs java on PATH (install a JRE, e.g. apt-get install "
            "default-jre-headless), or pass tokenizer='simple' for the java-free approximation"
        )
    lines = "\n".join(_LINE_BREAKS.sub(" ", t) for t in texts)
    fd, tmp = tempfile.mkstemp(prefix="vlmkit-ptb-", suffix=".txt")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(lines.encode("utf-8"))
        cmd = [
            "java",
            "-Dfile.encoding=UTF-8",
            "-cp",
            str(_corenlp_jar()),
            "edu.stanford.nlp.process.PTBTokenizer",
            "-preserveLines",
            "-lowerCase",
            "-encoding",
            "utf-8",
            tmp,
        ]
        proc = subprocess.run(cmd, capture_output=True, check=False)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace")[-500:]
        raise VlmkitError(f"PTB tokenizer failed (exit {proc.returncode}): {detail}")
    out_lines = proc.stdout.decode("utf-8").split("\n")
    result = []
    for i in range(len(texts)):
        line = out_lines[i] if i < len(out_lines) else ""
        result.append(" ".join(w for w in line.rstrip().split(" ") if w not in PTB_PUNCTUATION))
    return result


# --- the java-free approximation ------------------------------------------------------------------------
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_SPECIAL_WORDS = {
    "cannot": "can not",
    "gonna": "gon na",
    "wanna": "wan na",
    "gotta": "got ta",
    "gimme": "gim me",
    "lemme": "lem me",
}
# Curly quotes become straight ones; PTB also writes every currency sign as "$".
_QUOTES = str.maketrans(
    {
        "\u2019": "'",
        "\u2018": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u00b4": "'",
        "\u20ac": "$",
        "\u00a3": "$",
        "\u00a5": "$",
    }
)
_DROP = PTB_PUNCTUATION | {'"'}  # a double quote becomes `` or '' in PTB, both dropped
_TOKEN = re.compile(
    r"""
    https?://\S+ | www\.\S+                         # URLs stay whole
  | [\w.+-]+@[\w-]+(?:\.[\w-]+)+                    # e-mail addresses
  | (?:\w\.){2,}(?!\w)                               # acronyms with dots: u.s. p.m.
  | (?:mr|mrs|ms|dr|prof|st|jr|sr|vs|etc|inc|co|ltd|corp|no|fig
      |jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.(?=\s|$)   # abbreviations PTB keeps whole
  | [#@][^\W\d_]\w*                                 # hashtags and handles stay whole
  | \d+(?:[.,:/-]\d+)*(?!\w)                         # numbers: 1,234.56 3:30 3/4 10-20 (no sign)
  | \.\d+                                           # .5
  | \w+(?:[-'&./]\w+)*                              # words, incl. co-op o'clock at&t x.y
  | \.\.\.+ | --+ | [?!]+ | [`']{2}                 # runs PTB keeps as one token
  | \S                                              # any other single mark
    """,
    re.VERBOSE | re.UNICODE,
)
_CLITICS = ("'s", "'re", "'ve", "'d", "'ll", "'m")
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'d|'ll|'m)$")


def _split_clitic(token: str) -> list[str]:
    if token in _SPECIAL_WORDS:
        return _SPECIAL_WORDS[token].split()
    match = _CLITIC.match(token)
    if not match:
        return [token]
    head, clitic = match.groups()
    if clitic == "n't" and head in ("ca", "wo", "sha", "ai"):
        return [head, clitic]
    return _split_clitic(head) + [clitic] if head else [clitic]


def simple_tokenize(text: str) -> str:
    """Java-free approximation of pycocoevalcap's PTB tokenization (see the module docstring)."""
    text = _LINE_BREAKS.sub(" ", text).translate(_QUOTES).lower()
    text = text.replace("n't", "n't ")  # "don'tgo" is rare; this keeps the clitic split below simple
    tokens: list[str] = []
    for raw in _TOKEN.findall(text):
        if raw in _BRACKETS:
            tokens.append(_BRACKETS[raw])
            continue
        if raw.startswith("'") and raw not in _CLITICS and len(raw) > 1 and raw[1:].isalnum():
            tokens.extend(["'", raw[1:]])  # an opening quote glued to a word
            continue
        if raw.endswith("'") and not raw.endswith("''") and len(raw) > 1:
            tokens.extend(_split_clitic(raw[:-1]) + ["'"])  # a closing quote glued to a word
            continue
        if raw.endswith(".") and "." not in raw[:-1] and raw[:-1].isdigit():
            tokens.extend([raw[:-1], "."])
            continue
        tokens.extend(_split_clitic(raw))
    return " ".join(t for t in tokens if t not in _DROP)
