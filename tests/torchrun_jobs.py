"""Killing a torchrun job outright, as a crash or the OOM killer would: torchrun starts each rank in a session of
its own, outside the launcher's process group, so killing the group leaves the ranks running. They are found by
their command line, which names the test's own folder."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def kill_job(job: subprocess.Popen, marker: str, timeout: float = 30) -> None:
    """SIGKILL the launcher (started with start_new_session=True) and every process whose command line holds
    `marker`, and wait until none is left."""
    os.killpg(job.pid, signal.SIGKILL)
    subprocess.run(["pkill", "-KILL", "-f", marker], check=False)
    job.wait(timeout=timeout)
    deadline = time.time() + timeout
    while subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0:
        if time.time() > deadline:
            raise TimeoutError(f"processes matching {marker} outlived SIGKILL")
        time.sleep(0.1)
