"""requirements/lock.txt is what `make` installs (`pip install --require-hashes`, then vlmkit with --no-deps):
it must pin, with hashes, every dependency pyproject.toml declares for the tested stack, at a version that
satisfies the declared range, and the torch build requirements/ci.txt names."""

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the lock is for 3.11

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"


def _lock_entries() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes), from the `name==version \\ --hash=sha256:...` blocks that uv/pip-compile write."""
    text = LOCK.read_text(encoding="utf-8").replace("\\\n", " ")
    entries = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)", line)
        assert match, f"requirements/lock.txt: not an exact pin: {line[:80]}"
        entries[canonicalize_name(match[1])] = (match[3], re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
    return entries


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(spec) for spec in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_every_locked_package_is_pinned_with_hashes():
    entries = _lock_entries()
    assert len(entries) > 50
    unhashed = sorted(name for name, (_, hashes) in entries.items() if not hashes)
    assert not unhashed, f"no hash for {unhashed}: pip --require-hashes would refuse the whole file"


@pytest.mark.parametrize("requirement", _declared(), ids=str)
def test_lock_covers_each_declared_dependency(requirement):
    entries = _lock_entries()
    name = canonicalize_name(requirement.name)
    assert name in entries, f"{requirement} is declared in pyproject.toml but not locked: run `make lock`"
    version = entries[name][0]
    assert requirement.specifier.contains(version, prereleases=True), (
        f"lock pins {name}=={version}, outside pyproject's {requirement.specifier}: run `make lock`"
    )


def test_lock_has_the_torch_build_of_ci_txt():
    entries = _lock_entries()
    for line in (ROOT / "requirements" / "ci.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pinned = Requirement(line)
            assert entries[canonicalize_name(pinned.name)][0] in pinned.specifier, line
