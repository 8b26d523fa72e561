"""The multiple-choice and yes/no tasks: leaderboard prompt layout, scores on hand-checked predictions
(MMBench circular groups, POPE precision/recall/F1/yes-ratio per split, MME acc + acc+ totals, MMMU open
questions), `vlmkit score --task mmbench` on a bare predictions file, and compare showing per-category
deltas (the "did my fine-tune forget?" table)."""

import json
import os
import subprocess
import sys

import pytest
from eval_helpers import write_predictions

from vlmkit.data.schema import Sample
from vlmkit.eval import compare, evaluate
from vlmkit.eval.scorefile import score
from vlmkit.eval.tasks import get_task

ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def mcq(sample_id, options, answer, *, question="What is it?", meta=None, images=1):
    content = [{"type": "image", "image": f"/tmp/img{n}.png"} for n in range(images)]
    content.append({"type": "text", "text": question})
    return Sample(
        id=str(sample_id),
        messages=[{"role": "user", "content": content}, {"role": "assistant", "content": answer}],
        answers=[answer],
        meta={"options": dict(zip("ABCDEFG", options)), **(meta or {})},
    )


def test_choice_prompt_is_vlmevalkit_layout():
    sample = mcq(1, ["cat", "dog"], "B", meta={"hint": "A pet."})
    messages = get_task("mmbench").build_messages(sample)
    assert len(messages) == 1 and messages[0]["content"][0]["type"] == "image"
    assert messages[0]["content"][1]["text"] == (
        "Hint: A pet.\nQuestion: What is it?\nOptions:\nA. cat\nB. dog\n"
        "Please select the correct answer from the options above. \n"
    )


def test_mmmu_placeholders_interleave_images_and_open_questions_have_no_options():
    sample = mcq(2, ["x", "y"], "A", question="Is <image 2> older than <image 1>?", images=2)
    content = get_task("mmmu").build_messages(sample)[0]["content"]
    assert [p["type"] for p in content] == ["text", "image", "text", "image", "text"]
    assert content[1]["image"] == "/tmp/img1.png" and content[3]["image"] == "/tmp/img0.png"
    assert content[0]["text"] == "Question: Is " and content[2]["text"] == " older than "
    open_q = Sample(id="3", messages=[{"role": "user", "content": "2+2?"}], answers=["4"], meta={})
    assert get_task("mmmu").build_messages(open_q)[0]["content"][-1]["text"] == "Question: 2+2?\n"


def predictions_rows(rows):
    return [{"id": str(i), "prediction": p, "answers": [a], "meta": m} for i, p, a, m in rows]


def test_mmbench_circular_and_plain_scores(tmp_path):
    opts = {"A": "cat", "B": "dog", "C": "bird"}
    rot1 = {"A": "bird", "B": "cat", "C": "dog"}
    rot2 = {"A": "dog", "B": "bird", "C": "cat"}
    base = {"category": "animal", "l2-category": "perception"}
    rows = [
        # question 0 (answer dog): every rotation right -> counts
        (0, "B", "B", {"options": opts, "index": 0, **base}),
        (1000000, "The answer is C", "C", {"options": rot1, "index": 1000000, **base}),
        (2000000, "dog", "A", {"options": rot2, "index": 2000000, **base}),
        # question 1 (answer cat): original right, one rotation wrong -> does not count
        (1, "A", "A", {"options": opts, "index": 1, "category": "color", "l2-category": "perception"}),
        (1000001, "C", "B", {"options": rot1, "index": 1000001, "category": "color", "l2-category": "perception"}),
    ]
    path = write_predictions(tmp_path / "p" / "predictions.jsonl", predictions_rows(rows))
    summary = score(path, "mmbench", make_plots=False)
    assert summary["overall"]["choice_accuracy"] == pytest.approx(4 / 5)
    suite = summary["suite"]["overall"]
    assert suite["circular_accuracy"] == 0.5 and suite["vanilla_accuracy"] == 1.0 and suite["questions"] == 2
    assert summary["suite"]["tables"]["category"]["color"]["circular_accuracy"] == 0.0
    assert summary["suite"]["tables"]["category"]["animal"]["circular_accuracy"] == 1.0
    assert set(summary["groups"]) >= {"category"}
    report = (tmp_path / "p" / "report.md").read_text()
    assert "circular_accuracy" in report and "50.0" in report


def test_score_cli_on_a_bare_predictions_file(tmp_path):
    rows = predictions_rows(
        [(7, "B", "B", {"options": {"A": "x", "B": "y"}}), (8, "I'd say x", "B", {"options": {"A": "x", "B": "y"}})]
    )
    path = write_predictions(tmp_path / "preds.jsonl", rows)
    out = subprocess.run(
        [sys.executable, "-m", "vlmkit", "score", str(path), "--task", "mmbench", "--out", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    scores = json.loads((tmp_path / "s" / "scores.json").read_text())
    assert scores["overall"]["choice_accuracy"] == 0.5 and scores["suite"]["overall"]["questions"] == 2


def test_pope_scores_per_split(tmp_path):
    rows = [
        (1, "Yes", "yes", {"category": "adversarial"}),  # tp
        (2, "No, there isn't.", "yes", {"category": "adversarial"}),  # fn
        (3, "yes", "no", {"category": "random"}),  # fp
        (4, "no", "no", {"category": "random"}),  # tn
        (5, "I am not sure", "no", {"category": "random"}),  # neither: wrong, counts as "no" for P/R
    ]
    path = write_predictions(tmp_path / "predictions.jsonl", predictions_rows(rows))
    summary = score(path, "pope", make_plots=False)
    overall = summary["suite"]["overall"]
    assert overall["accuracy"] == pytest.approx(2 / 5) and overall["precision"] == 0.5 and overall["recall"] == 0.5
    assert overall["f1"] == 0.5 and overall["yes_ratio"] == pytest.approx(2 / 5)
    adversarial = summary["suite"]["tables"]["split"]["adversarial"]
    assert (
        adversarial["precision"] == 1.0 and adversarial["recall"] == 0.5 and adversarial["f1"] == pytest.approx(2 / 3)
    )
    assert summary["overall"]["yes_no_accuracy"] == pytest.approx(2 / 5)


def test_pope_question_in_two_splits_counts_in_each(tmp_path):
    rows = [(1, "Yes", "yes", {"category": "popular,random"}), (2, "Yes", "no", {"category": "random"})]
    summary = score(write_predictions(tmp_path / "predictions.jsonl", predictions_rows(rows)), "pope", make_plots=False)
    overall, tables = summary["suite"]["overall"], summary["suite"]["tables"]["split"]
    assert overall["n"] == 3 and overall["precision"] == pytest.approx(2 / 3)  # the tp counted twice
    assert tables["popular"]["n"] == 1 and tables["random"]["precision"] == 0.5


def test_mme_perception_and_cognition_totals(tmp_path):
    rows = [
        # existence, image a: both right; image b: one right -> acc 75 + acc+ 50 = 125
        (1, "Yes", "Yes", {"category": "existence", "image_key": "a"}),
        (2, "No", "No", {"category": "existence", "image_key": "a"}),
        (3, "Yes", "Yes", {"category": "existence", "image_key": "b"}),
        (4, "Yes", "No", {"category": "existence", "image_key": "b"}),
        # code_reasoning, image c: both right -> 100 + 100
        (5, "yes", "Yes", {"category": "code_reasoning", "image_key": "c"}),
        (6, "no.", "No", {"category": "code_reasoning", "image_key": "c"}),
    ]
    path = write_predictions(tmp_path / "predictions.jsonl", predictions_rows(rows))
    summary = score(path, "mme", make_plots=False)
    suite = summary["suite"]
    assert suite["tables"]["category"]["existence"] == {"n": 4, "acc": 75.0, "acc_plus": 50.0, "score": 125.0}
    assert suite["overall"]["perception"] == 125.0 and suite["overall"]["cognition"] == 200.0


def test_mmmu_mixed_choice_and_open(tmp_path):
    rows = [
        (1, "B", "B", {"options": {"A": "x", "B": "y"}, "question_type": "multiple-choice"}),
        (2, "So the total is 1,200.", "1200", {"question_type": "open"}),
        (3, "It is 12", "13", {"question_type": "open"}),
    ]
    path = write_predictions(tmp_path / "predictions.jsonl", predictions_rows(rows))
    summary = score(path, "mmmu", make_plots=False)
    assert summary["overall"]["mmmu_accuracy"] == pytest.approx(2 / 3)


def test_compare_base_and_tuned_shows_per_category_deltas(tmp_path):
    """A "fine-tune" that forgot colours: compare gives the per-category delta with its interval."""
    samples = []
    for i in range(40):
        category = "color" if i % 2 else "animal"
        samples.append(mcq(i, ["cat", "dog", "red", "blue"], "ABCD"[i % 4], meta={"category": category, "index": i}))

    def base_model(requests):
        return [r.sample.answers[0] for r in requests]

    def tuned_model(requests):  # wrong on every colour question
        return [r.sample.answers[0] if r.sample.meta["category"] == "animal" else "none" for r in requests]

    evaluate(base_model, "mmbench", samples, tmp_path / "base", make_plots=False)
    evaluate(tuned_model, "mmbench", samples, tmp_path / "tuned", make_plots=False)
    result = compare([tmp_path / "base", tmp_path / "tuned"], out_dir=tmp_path / "cmp", resamples=200, make_png=False)
    assert result["runs"][1]["deltas"]["choice_accuracy"]["delta"] == pytest.approx(-0.5)
    color = result["groups"]["category"]["color"]["deltas"][result["runs"][1]["name"]]
    animal = result["groups"]["category"]["animal"]["deltas"][result["runs"][1]["name"]]
    assert color["delta"] == pytest.approx(-1.0) and color["ci_high"] < 0 and animal["delta"] == 0
    assert "By category" in (tmp_path / "cmp" / "compare.md").read_text()


def test_yaml_task_extending_a_choice_task_keeps_layout_and_suite():
    from vlmkit.errors import ConfigError
    from vlmkit.eval.tasks import task_from_dict

    task = task_from_dict({"name": "mine", "extends": "mmbench", "prompt": "{question}Answer with the letter."})
    assert task.prompt_style == "choice" and task.suite == "mmbench" and task.postprocess == ()
    text = task.build_messages(mcq(1, ["a", "b"], "A"))[0]["content"][-1]["text"]
    assert text.endswith("above. \nAnswer with the letter.")
    with pytest.raises(ConfigError, match="suite"):
        task_from_dict({"name": "bad", "metrics": ["choice_accuracy"], "suite": "nope"})
