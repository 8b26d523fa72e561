"""Help and docs agree with the CLI: every verb's --help shows its install hints intact (extras that exist), and
every `vlmkit …` command in a fenced block of README.md or docs/*.md names a real verb and real flags.

Verbs and flags are read from the rendered `--help` pages (walked from `vlmkit --help`), never from a list kept
here, so the test follows the CLI as it changes. No model is loaded.
"""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlmkit.cli import app

ROOT = Path(__file__).resolve().parents[1]
BOX = "│╭╮╰╯─"


@functools.cache
def help_page(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0, f"vlmkit {' '.join(path)} --help: {result.output}"
    return result.output


def _panels(page: str) -> dict[str, list[list[str]]]:
    """{panel title: rows as token lists} of a rendered help page; a wrapped description's continuation lines
    (indented past the name column) are not rows."""
    panels: dict[str, list[list[str]]] = {}
    current = None
    for line in page.splitlines():
        if line.startswith("╭─"):
            current = panels.setdefault(line.strip(BOX + " "), [])
        elif line.startswith("╰"):
            current = None
        elif current is not None:
            body = line.lstrip("│")
            if len(body) - len(body.lstrip()) <= 4:  # "│ name", "│ *  --flag", "│    --flag"
                current.append(body.strip(BOX + " ").split())
    return panels


@functools.cache
def subcommands(*path: str) -> tuple[str, ...]:
    rows = _panels(help_page(*path)).get("Commands", [])
    return tuple(row[0] for row in rows if row and re.fullmatch(r"[a-z][a-z0-9-]*", row[0]))


@functools.cache
def flags(*path: str) -> frozenset[str]:
    """Every option name on the page: the leading -x/--name tokens of each row of every option panel."""
    found = set()
    for title, rows in _panels(help_page(*path)).items():
        if title == "Commands":
            continue
        for row in rows:
            for token in row:
                if token == "*":  # required marker
                    continue
                if not token.startswith("-"):
                    break
                found.add(token)
    return frozenset(found)


def every_command(path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    commands = [path] if path else []
    for name in subcommands(*path):
        commands += every_command((*path, name))
    return commands


def test_the_help_walk_finds_every_verb_and_its_flags():
    commands = every_command()
    for expected in [("eval",), ("data", "merge"), ("data", "check-leakage"), ("models", "tiny"), ("train",)]:
        assert expected in commands
    assert {"--model", "--max-pixels", "--quantization", "--no-progress", "-b"} <= flags("infer")
    assert {"--sample", "--greedy"} <= flags("infer") and {"--shuffle", "--no-shuffle"} <= flags("data", "merge")


def pyproject_extras() -> set[str]:
    """The extra names under [project.optional-dependencies] (read by hand: tomllib needs Python 3.11)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([A-Za-z0-9_-]+)\s*=", section, flags=re.M))


def test_install_hints_in_help_name_existing_extras():
    extras = pyproject_extras()
    hints = []
    for command in every_command():
        text = " ".join(help_page(*command).replace("│", " ").split())
        for spec in re.findall(r"pip install (\S+)", text):
            hints.append(spec)
            name = spec.strip("'\"();,.")
            assert name.startswith("vlmkit[") and name.endswith("]"), f"vlmkit {' '.join(command)}: {spec}"
            for extra in name[len("vlmkit[") : -1].split(","):
                assert extra in extras, f"vlmkit {' '.join(command)} --help names extra '{extra}' not in pyproject"
    assert any("vlmkit[qlora]" in h for h in hints)  # --quantization's hint survives Rich rendering


# --- documented commands ---------------------------------------------------------------------------------
def documented_commands() -> list[tuple[str, int, str]]:
    """(file, line, command) for each `vlmkit …` line of a fenced code block (backslash continuations joined)
    and each inline code span that starts with `vlmkit ` (the README's pipeline table)."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        in_block, pending, start = False, "", 0
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_block, pending = not in_block, ""
                continue
            if not in_block:
                found += [(path.relative_to(ROOT).as_posix(), number, m) for m in re.findall(r"`(vlmkit [^`]+)`", line)]
                continue
            text = line.strip()
            if pending:
                pending += " " + text
            elif re.match(r"^(\$ )?vlmkit( |$)", text):
                pending, start = text.removeprefix("$ "), number
            if pending and pending.endswith("\\"):
                pending = pending[:-1]
                continue
            if pending:
                found.append((path.relative_to(ROOT).as_posix(), start, pending))
                pending = ""
    return found


def _check_command(command: str) -> list[str]:
    tokens = shlex.split(command, comments=True)
    tokens = tokens[: next((i for i, t in enumerate(tokens) if t in ("|", "&&", ";", ">", "2>&1")), len(tokens))]
    path: tuple[str, ...] = ()
    rest = tokens[1:]
    while rest and rest[0] in subcommands(*path):
        path, rest = (*path, rest[0]), rest[1:]
    if not path:
        if not rest or rest[0] in ("--help", "-h") or rest[0].isupper():  # `vlmkit --help`, `vlmkit VERB --help`
            return []
        return [f"unknown verb {rest[0]!r}"]
    if subcommands(*path) and not rest:
        return []
    if subcommands(*path):
        return [f"unknown sub-verb 'vlmkit {' '.join(path)} {rest[0]}'"]
    known = flags(*path) | {"--help", "-h"}
    problems = []
    for token in rest:
        token = token.strip("[]")
        if token == "--":
            break
        if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", token) and token.split("=", 1)[0] not in known:
            problems.append(f"'vlmkit {' '.join(path)}' has no option {token.split('=', 1)[0]}")
    return problems


def test_documented_commands_name_real_verbs_and_flags():
    commands = documented_commands()
    assert len(commands) > 20 and any(c.startswith("vlmkit eval") for _, _, c in commands)
    problems = [f"{file}:{line}: {p}" for file, line, command in commands for p in _check_command(command)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("vlmkit evl --task docvqa", "unknown verb 'evl'"),
        ("vlmkit data improt x", "unknown sub-verb"),
        ("vlmkit eval --model m --max-pixel 5", "has no option --max-pixel"),
        ("vlmkit infer -m m --sample --top-k=5 # --not-checked", None),
    ],
)
def test_the_docs_check_catches_a_wrong_command(command, problem):
    problems = _check_command(command)
    assert (problem is None and not problems) or (problem and any(problem in p for p in problems)), problems
