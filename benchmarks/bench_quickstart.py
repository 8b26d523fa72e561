"""Benchmark `vlmkit quickstart`: wall time and peak memory against the issue's budget (10 min, 4 GB on 2 cores).

Each mode runs `vlmkit quickstart --quiet` in a fresh process (the process's own peak RSS, as measured by the
run and written to report.json, plus the parent's view of the child via wait4). Reported per mode: wall, the
share spent in each stage, peak RSS, and the ratios wall/budget and memory/budget (< 1 passes), next to the
accuracies the run reached, so a faster run that stopped learning does not look like a win.

Usage: python benchmarks/bench_quickstart.py [--modes default from-scratch] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 600.0
BUDGET_MB = 4096.0
FLAGS = {"default": [], "from-scratch": ["--from-scratch"]}


def run_mode(mode: str, out: Path) -> dict:
    args = [sys.executable, "-m", "vlmkit", "quickstart", "--quiet", "--out", str(out), *FLAGS[mode]]
    out.mkdir(parents=True, exist_ok=True)
    log = out / "quickstart.log"  # a file, not a pipe: nobody reads a pipe while we wait, and it would fill
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as sink:
        child = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{mode}: vlmkit quickstart failed:\n{log.read_text(encoding='utf-8')[-3000:]}")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    peak_mb = max(usage.ru_maxrss / 1024, report["peak_rss_mb"])
    return {
        "mode": mode,
        "wall_s": round(wall, 1),
        "peak_mb": round(peak_mb),
        "stages_s": report["stages_s"],
        "wall_vs_budget": round(wall / BUDGET_S, 3),
        "memory_vs_budget": round(peak_mb / BUDGET_MB, 3),
        "accuracy": {m: report[m] for m in ("base", "tuned")},
        "targets_met": all(check["met"] for check in report["targets"].values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", choices=sorted(FLAGS), default=["default", "from-scratch"])
    parser.add_argument("--keep", type=Path, help="keep the run folders here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-quickstart-"))
    try:
        rows = [run_mode(mode, root / mode) for mode in args.modes]
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{'mode':<14}{'wall s':>8}{'/budget':>9}{'peak MB':>9}{'/budget':>9}  {'targets':<8} stages (s)")
    for row in rows:
        stages = " ".join(f"{k} {v:.0f}" for k, v in row["stages_s"].items())
        print(
            f"{row['mode']:<14}{row['wall_s']:>8.1f}{row['wall_vs_budget']:>9.2f}{row['peak_mb']:>9}"
            f"{row['memory_vs_budget']:>9.2f}  {'met' if row['targets_met'] else 'MISSED':<8} {stages}"
        )
    print(json.dumps({"budget": {"wall_s": BUDGET_S, "peak_mb": BUDGET_MB}, "runs": rows}, indent=2))
    if not all(r["wall_vs_budget"] < 1 and r["memory_vs_budget"] < 1 and r["targets_met"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
