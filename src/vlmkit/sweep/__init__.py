"""`vlmkit sweep`: LoRA-rank ablations and hyper-parameter searches as Optuna studies of vlmkit runs.

spec.py    the sweep file (base config, space, objectives, sampler, budget, pruning) and its validation
runner.py  the worker loop: Optuna study, trials as train + eval run folders, heartbeats and retries
report.py  report.md / report.json / plots of a study
"""

from .spec import RUN_METRICS, Sweep, load_sweep

__all__ = ["RUN_METRICS", "Sweep", "load_sweep"]
