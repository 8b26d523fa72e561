"""`vlmkit.eval.suite.evaluate_suite`: the library call behind `vlmkit eval`, the quickstart and sweeps. One
predict function over several (task, dataset) pairs, each into its own resumable run folder, plus summary.md."""

import json

import pytest
from eval_helpers import make_sample, rule_predict, write_dataset

from vlmkit.errors import VlmkitError
from vlmkit.eval import GenerationSettings, Task
from vlmkit.eval.suite import SuiteRun, evaluate_suite

TASK = Task(name="values", metrics=("exact_match",), generation=GenerationSettings(max_new_tokens=4))
OTHER = Task(name="values2", metrics=("exact_match",), generation=GenerationSettings(max_new_tokens=4))


def test_suite_runs_every_pair_into_its_folder_and_summarises(tmp_path):
    first = write_dataset(tmp_path / "a", [make_sample(i) for i in range(1, 7)])
    second = write_dataset(tmp_path / "b", [make_sample(i) for i in range(10, 13)])
    calls, seen = [], []

    def predict(requests):
        calls.append([r.id for r in requests])
        return rule_predict(requests)

    result = evaluate_suite(
        "rule",
        [SuiteRun(TASK, first), (OTHER, second)],
        tmp_path / "out",
        predictor=(predict, {"model": "rule"}),
        batch_size=4,
        make_plots=False,
        on_result=lambda run, evaluated: seen.append((run.task.name, evaluated.predicted)),
    )
    assert seen == [("values", 6), ("values2", 3)]
    assert [e.out_dir for _, e in result.runs] == [tmp_path / "out" / "values", tmp_path / "out" / "values2"]
    scores = json.loads((tmp_path / "out" / "values" / "scores.json").read_text())
    assert scores["overall"]["exact_match"] == pytest.approx(4 / 6)  # ids 3 and 6 are answered off by one
    assert result.summary_file and "| values2 | 3 | exact_match |" in result.summary_file.read_text()
    assert sum(len(c) for c in calls) == 9

    again = evaluate_suite(
        "rule", [(TASK, first), (OTHER, second)], tmp_path / "out", predictor=(predict, {"model": "rule"})
    )
    assert [e.predicted for _, e in again.runs] == [0, 0] and sum(len(c) for c in calls) == 9  # resumed


def test_suite_checks_everything_before_loading_the_model(tmp_path):
    data = write_dataset(tmp_path / "a", [make_sample(1)])
    with pytest.raises(VlmkitError, match="task values is given twice"):
        evaluate_suite("never-loaded", [(TASK, data), (TASK, data)], tmp_path / "out")
    with pytest.raises(VlmkitError, match="--num-beams must be at least 1"):
        evaluate_suite("never-loaded", [(TASK, data)], tmp_path / "out", num_beams=0)
    with pytest.raises(VlmkitError, match="samples.jsonl"):
        evaluate_suite("never-loaded", [(TASK, tmp_path / "missing")], tmp_path / "out")
