"""Crash-safe file helpers: a torn last line (kill -9 mid-write) is repaired before appending."""

import os
import signal
import subprocess
import sys
import time

from vlmkit.io import JsonlAppender, atomic_write_text, iter_jsonl, read_jsonl


def test_appender_repairs_a_torn_tail_and_keeps_complete_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1}\n{"id": 2}\n{"id": 3, "pred', encoding="utf-8")
    with JsonlAppender(path) as out:
        out.write({"id": 3, "prediction": "x"})
    assert [r["id"] for r in read_jsonl(path)] == [1, 2, 3]


def test_torn_tail_can_be_skipped_when_reading(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1}\n{"id": 2', encoding="utf-8")
    assert [obj["id"] for _, obj in iter_jsonl(path, skip_torn_tail=True)] == [1]


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "x" / "f.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["f.txt"]


def test_check_output_dir_refuses_a_folder_that_is_holds_or_sits_in_a_source(tmp_path):
    import pytest

    from vlmkit.errors import ConfigError
    from vlmkit.io import check_output_dir

    source = tmp_path / "runs" / "run1"
    source.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "runs")
    for out, relation in [
        (source, "is"),
        (tmp_path / "runs", "contains"),
        (source / "merged", "is inside"),
        (tmp_path / "link", "contains"),
    ]:
        with pytest.raises(ConfigError, match=f"--out {out} {relation} run_dir \\({source}\\)"):
            check_output_dir(out, {"run_dir": source, "model": "Org/hub-id"})
    assert check_output_dir(tmp_path / "runs" / "run2", [source, None, "Org/hub-id"]) == tmp_path / "runs" / "run2"
    assert check_output_dir(tmp_path / "runs" / "run1-merged", [source]).name == "run1-merged"  # a prefix, not a parent


def _try_lock_in_another_process(path) -> subprocess.CompletedProcess:
    code = (
        "import sys\nfrom vlmkit.io import exclusive_lock\n"
        "with exclusive_lock(sys.argv[1], '`test`'):\n    print('locked')\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)


def test_a_lock_is_refused_to_another_process_and_is_not_kept_by_a_forked_child(tmp_path):
    """A DataLoader worker forked while its parent holds a run's lock must not keep the lock alive once the
    parent lets go (or is killed): a flock lasts while any copy of its descriptor is open."""
    from vlmkit.io import exclusive_lock

    lock = tmp_path / ".run.lock"
    with exclusive_lock(lock, "`test`"):
        refused = _try_lock_in_another_process(lock)
        assert refused.returncode != 0 and "another `test` is writing to" in refused.stderr
        child = os.fork()
        if child == 0:  # a worker that outlives the parent's hold on the lock
            time.sleep(5)
            os._exit(0)
    try:
        taken = _try_lock_in_another_process(lock)
        assert taken.returncode == 0 and "locked" in taken.stdout, taken.stderr
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
