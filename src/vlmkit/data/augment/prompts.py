"""The prompts of `vlmkit data augment`: defaults, and the user's replacements from `--prompt-file`.

A prompt file is YAML (or JSON) with any of the keys `paraphrase`, `translate` and `check`; each value is the
user message as a string, or a mapping with `system` and `user`. Missing keys keep the defaults below.
Placeholders, written `{name}` (a literal brace is `{{` or `}}`):

    {question}          the text to rewrite: the source question, or (translate, second leg) the pivot text
    {language}          the language to write in, by name ("Vietnamese"); {lang} is its code ("vi")
    {source_language}   the language of {question}, by name; {source_lang} is its code
    {variant}           which variant this request is for (1..n); {n} the number asked per question

`check` gets {question} (the variant) and is sent with the sample's images; its answer is compared with the
source answers.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError

PLACEHOLDERS = ("question", "language", "lang", "source_language", "source_lang", "variant", "n")
KINDS = ("paraphrase", "translate", "check")


@dataclass(frozen=True)
class Template:
    user: str
    system: str | None = None

    def messages(self, **values: Any) -> list[dict[str, Any]]:
        out = [{"role": "system", "content": self.system.format(**values)}] if self.system else []
        return [*out, {"role": "user", "content": self.user.format(**values)}]


DEFAULTS = {
    "paraphrase": Template(
        system="You rewrite questions about an image for a question-answering dataset. "
        "Reply with the rewritten question only: no quotes, no explanation.",
        user="Rewrite this {language} question in other words (variant {variant} of {n}: vary the wording and "
        "the sentence structure). Keep its meaning, keep it in {language}, and keep every name, number and "
        "quoted text exactly as written, so that the same answer still holds.\n\nQuestion: {question}",
    ),
    "translate": Template(
        system="You are a translator. Reply with the translation only: no quotes, no explanation.",
        user="Translate this question from {source_language} into {language}. Keep names, numbers and quoted "
        "text unchanged.\n\n{question}",
    ),
    "check": Template(user="{question}\nAnswer the question using a single word or phrase."),
}


def load_prompts(path: str | Path | None) -> dict[str, Template]:
    """The defaults, with the kinds `path` gives replaced; ConfigError names the file and the problem."""
    prompts = dict(DEFAULTS)
    if path is None:
        return prompts
    from ...io import read_yaml_mapping

    path = Path(path)
    data = read_yaml_mapping(path, "prompt file")
    unknown = sorted(set(data) - set(KINDS))
    if unknown:
        raise ConfigError(f"{path}: unknown prompt {', '.join(unknown)}; the prompts are {', '.join(KINDS)}")
    for kind, value in data.items():
        if isinstance(value, str):
            template = Template(user=value)
        elif isinstance(value, dict) and isinstance(value.get("user"), str) and set(value) <= {"user", "system"}:
            template = Template(user=value["user"], system=value.get("system"))
        else:
            raise ConfigError(f"{path}: {kind}: give the user message as a string, or a mapping of user and system")
        for part in filter(None, (template.system, template.user)):
            _check_placeholders(part, f"{path}: {kind}")
        if "{question}" not in template.user:
            raise ConfigError(f"{path}: {kind}: the user message must contain {{question}}")
        prompts[kind] = template
    return prompts


def _check_placeholders(text: str, where: str) -> None:
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc} (write a literal brace as {{{{ or }}}})") from None
    for name in names:
        if name not in PLACEHOLDERS:
            raise ConfigError(f"{where}: unknown placeholder {{{name}}}; known: {', '.join(PLACEHOLDERS)}")


def fingerprint(prompts: dict[str, Template]) -> str:
    """A short hash of the prompts: a resumed run must have asked with the same ones."""
    import hashlib
    import json

    text = json.dumps({k: [t.system, t.user] for k, t in sorted(prompts.items())}, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
