"""vlmkit ensemble: vote and tie rules on hand-made predictions, refusals, and the result through compare."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vlmkit.errors import VlmkitError
from vlmkit.eval.compare import compare
from vlmkit.eval.ensemble import ensemble_runs
from vlmkit.eval.scorefile import score
from vlmkit.eval.tasks import get_task
from vlmkit.io import read_jsonl, write_json, write_jsonl

ANSWERS = {"s1": ["cat"], "s2": ["dog"], "s3": ["red"], "s4": ["two"]}


def make_run(root: Path, name: str, predictions: dict[str, str], *, task: str = "docvqa", extra=None, errors=()):
    run = root / name
    run.mkdir(parents=True)
    write_json(run / "manifest.json", {"task": get_task(task).describe(), "model": name, "status": "complete"})
    rows = []
    for sample_id, text in predictions.items():
        row = {
            "id": sample_id,
            "question": f"q {sample_id}",
            "prediction": text,
            "answers": ANSWERS[sample_id],
            "meta": {},
            "latency_s": 0.5,
        }
        if sample_id in errors:
            row["error"] = "engine failed"
            row["prediction"] = ""
        row.update((extra or {}).get(sample_id, {}))
        rows.append(row)
    write_jsonl(run / "predictions.jsonl", rows)
    score(run, task, make_plots=False)
    return run


def predictions_of(run: Path) -> dict[str, dict]:
    return {row["id"]: row for row in read_jsonl(run / "predictions.jsonl")}


def test_majority_vote_over_normalised_answers(tmp_path):
    runs = [
        make_run(tmp_path, "a", {"s1": "CAT", "s2": "cow", "s3": "red", "s4": "three"}),
        make_run(tmp_path, "b", {"s1": "cat", "s2": "dog", "s3": "blue", "s4": "two"}),
        make_run(tmp_path, "c", {"s1": "lion", "s2": "Dog", "s3": "red", "s4": "two"}),
    ]
    summary = ensemble_runs(runs, tmp_path / "ens", make_plots=False)
    rows = predictions_of(tmp_path / "ens")
    assert {k: r["prediction"].lower().strip(".") for k, r in rows.items()} == {
        "s1": "cat",
        "s2": "dog",
        "s3": "red",
        "s4": "two",
    }
    assert rows["s1"]["ensemble"]["votes"] == {"cat": 2.0, "lion": 1.0}
    assert summary["overall"]["anls"] == 1.0  # every member scores below 1, the vote gets all four
    assert all(json.loads((r / "scores.json").read_text())["overall"]["anls"] < 1.0 for r in runs)
    assert summary["ensemble"]["ties_broken"] == 0 and summary["ensemble"]["unanimous"] == 0
    # latency of an ensemble answer is the work of all members
    assert rows["s1"]["latency_s"] == pytest.approx(1.5)


def test_tie_goes_to_first_listed_run_unless_weighted(tmp_path):
    a = make_run(tmp_path, "a", {"s1": "cat", "s2": "cow", "s3": "red", "s4": "two"})
    b = make_run(tmp_path, "b", {"s1": "lion", "s2": "dog", "s3": "blue", "s4": "two"})
    ensemble_runs([a, b], tmp_path / "ab", make_plots=False)
    ensemble_runs([b, a], tmp_path / "ba", make_plots=False)
    ensemble_runs([a, b], tmp_path / "weighted", weights=[1, 2], make_plots=False)
    assert predictions_of(tmp_path / "ab")["s2"]["prediction"] == "cow"
    assert predictions_of(tmp_path / "ba")["s2"]["prediction"] == "dog"
    assert predictions_of(tmp_path / "weighted")["s2"]["prediction"] == "dog"
    assert predictions_of(tmp_path / "ab")["s2"]["ensemble"]["tie"] is True
    assert predictions_of(tmp_path / "weighted")["s2"]["ensemble"]["tie"] is False


def test_validation_tie_break_uses_held_out_runs_not_the_test_labels(tmp_path):
    a = make_run(tmp_path, "a", {"s1": "cat", "s2": "cow", "s3": "red", "s4": "two"})
    b = make_run(tmp_path, "b", {"s1": "lion", "s2": "dog", "s3": "blue", "s4": "two"})
    val_a = make_run(tmp_path / "val", "a", {"s1": "x", "s2": "y", "s3": "red", "s4": "two"})
    val_b = make_run(tmp_path / "val", "b", {"s1": "cat", "s2": "dog", "s3": "red", "s4": "two"})
    summary = ensemble_runs([a, b], tmp_path / "ens", tie_break="validation", rank_by=[val_a, val_b], make_plots=False)
    rows = predictions_of(tmp_path / "ens")
    assert [rows[k]["prediction"] for k in ("s1", "s2", "s3")] == ["lion", "dog", "blue"]  # b won validation
    assert summary["ensemble"]["ties_broken"] == 3
    with pytest.raises(VlmkitError, match="one validation run per member"):
        ensemble_runs([a, b], tmp_path / "x", tie_break="validation", rank_by=[val_a], make_plots=False)


def test_logprob_tie_break_and_fallback_to_order(tmp_path):
    lp = {"s1": {"mean_logprob": -2.0}, "s2": {"mean_logprob": -0.1}, "s3": {"mean_logprob": -1.0}}
    lp_b = {"s1": {"mean_logprob": -0.5}, "s2": {"mean_logprob": -3.0}}  # s3 has none: falls back to order
    a = make_run(tmp_path, "a", {"s1": "cat", "s2": "cow", "s3": "red", "s4": "two"}, extra=lp)
    b = make_run(tmp_path, "b", {"s1": "lion", "s2": "dog", "s3": "blue", "s4": "two"}, extra=lp_b)
    ensemble_runs([a, b], tmp_path / "ens", tie_break="logprob", make_plots=False)
    rows = predictions_of(tmp_path / "ens")
    assert [rows[k]["prediction"] for k in ("s1", "s2", "s3")] == ["lion", "cow", "red"]


def test_failed_members_do_not_vote(tmp_path):
    a = make_run(tmp_path, "a", {"s1": "lion", "s2": "dog", "s3": "red", "s4": "two"}, errors=("s1", "s4"))
    b = make_run(tmp_path, "b", {"s1": "cat", "s2": "dog", "s3": "red", "s4": "two"}, errors=("s4",))
    summary = ensemble_runs([a, b], tmp_path / "ens", make_plots=False)
    rows = predictions_of(tmp_path / "ens")
    assert rows["s1"]["prediction"] == "cat" and "error" not in rows["s1"]
    assert rows["s4"]["error"] == "every member failed this sample"
    assert summary["ensemble"]["all_members_failed"] == 1


def test_refuses_runs_over_different_tasks_samples_or_an_overlapping_out(tmp_path):
    a = make_run(tmp_path, "a", {"s1": "cat", "s2": "dog", "s3": "red", "s4": "two"})
    other_task = make_run(tmp_path, "t", {"s1": "cat", "s2": "dog", "s3": "red", "s4": "two"}, task="infovqa")
    fewer = make_run(tmp_path, "f", {"s1": "cat", "s2": "dog", "s3": "red"})
    with pytest.raises(VlmkitError, match="different tasks"):
        ensemble_runs([a, other_task], tmp_path / "x")
    with pytest.raises(VlmkitError, match="different samples.*'s4'"):
        ensemble_runs([a, fewer], tmp_path / "x")
    with pytest.raises(VlmkitError, match="overlaps the member run"):
        ensemble_runs([a, fewer], a / "ensemble")
    with pytest.raises(VlmkitError, match="at least two"):
        ensemble_runs([a], tmp_path / "x")


def test_multiple_choice_rows_vote_over_extracted_options(tmp_path):
    metrics = pytest.importorskip("vlmkit.metrics")
    if not hasattr(metrics, "extract_choice"):
        pytest.skip("vlmkit.metrics.extract_choice is not available")
    from vlmkit.eval.ensemble import vote_key
    from vlmkit.eval.predictions import PredictionRecord

    options = {"A": "cat", "B": "dog", "C": "bird"}
    task = get_task("docvqa")
    keys = {
        vote_key(PredictionRecord(id="1", prediction=p, meta={"options": options}), task)
        for p in ("B", "B. dog", "The answer is B.")
    }
    assert keys == {"option:B"}


def test_cli_ensemble_then_compare_shows_it_beside_its_members(tmp_path):
    runs = [
        make_run(tmp_path, "a", {"s1": "CAT", "s2": "cow", "s3": "red", "s4": "three"}),
        make_run(tmp_path, "b", {"s1": "cat", "s2": "dog", "s3": "blue", "s4": "two"}),
        make_run(tmp_path, "c", {"s1": "lion", "s2": "Dog", "s3": "red", "s4": "two"}),
    ]
    out = tmp_path / "ens"
    cli = [sys.executable, "-m", "vlmkit"]
    done = subprocess.run(
        [*cli, "ensemble", *map(str, runs), "--out", str(out), "--no-plots"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "anls 1.0000" in done.stdout
    again = subprocess.run(
        [*cli, "ensemble", *map(str, runs), "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    result = compare([*runs, out], resamples=50, make_png=False)
    # scores x100: a gets 2 of 4, the ensemble all 4
    assert "| ens | 4 | 100.00 | +50.00" in result["markdown"], result["markdown"]
