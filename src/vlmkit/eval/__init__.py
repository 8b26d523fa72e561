"""vlmkit.eval: tasks, scoring, reports, comparisons and the model-agnostic evaluation runner.

evaluate(predict, task, samples, out_dir)   run + score + report   (`vlmkit eval`)
score(predictions_file, task)               score any predictions  (`vlmkit score`)
compare(run_dirs)                           side-by-side + CIs     (`vlmkit compare`)
"""

from __future__ import annotations

from .compare import compare
from .runner import EvalRequest, EvalResult, evaluate
from .scorefile import score
from .tasks import GenerationSettings, Task, get_task, list_tasks, register_task

__all__ = [
    "evaluate",
    "score",
    "compare",
    "EvalRequest",
    "EvalResult",
    "Task",
    "GenerationSettings",
    "get_task",
    "list_tasks",
    "register_task",
]
