"""`compare`: side-by-side runs with deltas and paired bootstrap intervals, as Markdown, JSON and PNG."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from eval_helpers import item_number, make_sample, rule_predict

from vlmkit.errors import VlmkitError
from vlmkit.eval import compare, evaluate
from vlmkit.eval.stats import paired_bootstrap
from vlmkit.eval.tasks import task_from_dict

TASK = task_from_dict({"name": "em", "metrics": ["exact_match", "anls"]})


def better_predict(requests):
    """Right unless i % 7 == 0."""
    out = []
    for r in requests:
        i = item_number(r.question)
        out.append(str(7 * i) if i % 7 else "?")
    return out


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    samples = [make_sample(i) for i in range(1, 61)]
    evaluate(rule_predict, TASK, samples, root / "base", manifest={"model": "tiny"}, make_plots=False)
    evaluate(better_predict, TASK, samples, root / "lora-r16", manifest={"model": "tiny", "adapter": "r16"},
             make_plots=False)
    return root, samples


def test_compare_two_runs(two_runs, tmp_path):
    root, samples = two_runs
    result = compare([root / "base", root / "lora-r16"], out_dir=tmp_path / "cmp", resamples=500)
    base_em = [float(i % 3 != 0) for i in range(1, 61)]
    new_em = [float(i % 7 != 0) for i in range(1, 61)]
    base, other = result["runs"]
    assert base["overall"]["exact_match"] == pytest.approx(np.mean(base_em))
    delta = other["deltas"]["exact_match"]
    assert delta["delta"] == pytest.approx(np.mean(new_em) - np.mean(base_em))
    assert delta["ci_low"] < delta["delta"] < delta["ci_high"] and delta["ci_low"] > 0  # clearly better
    assert delta == paired_bootstrap(base_em, new_em, resamples=500)
    assert other["adapter"] == "r16" and other["common"] == 60
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| base |" in md and "| lora-r16 |" in md and "Δ exact_match" in md
    assert f"{100 * delta['delta']:+.2f}*" in md
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 5000
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["base"] == "base"


def test_identical_runs_have_a_zero_interval(two_runs):
    root, _ = two_runs
    result = compare([root / "base", root / "base"], names=["a", "b"], resamples=100)
    stats = result["runs"][1]["deltas"]["anls"]
    assert stats["delta"] == stats["ci_low"] == stats["ci_high"] == 0.0


def test_compare_only_on_common_samples(two_runs, tmp_path):
    root, samples = two_runs
    evaluate(better_predict, TASK, samples[:30], tmp_path / "half", make_plots=False)
    result = compare([root / "base", tmp_path / "half"], resamples=100)
    assert result["runs"][1]["common"] == 30
    assert "compared on the 30 samples" in result["markdown"]


def test_compare_errors(two_runs, tmp_path):
    root, _ = two_runs
    with pytest.raises(VlmkitError, match="at least two"):
        compare([root / "base"])
    with pytest.raises(VlmkitError, match="not a scored run"):
        compare([root / "base", tmp_path])
    with pytest.raises(VlmkitError, match="not scored in every run"):
        compare([root / "base", root / "lora-r16"], metrics=["bleu_4"])


def test_compare_cli(two_runs, tmp_path):
    root, _ = two_runs
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "vlmkit", "compare", str(root / "base"), str(root / "lora-r16"),
                          "--out", str(tmp_path / "c"), "--resamples", "200"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "| lora-r16 |" in out.stdout and (tmp_path / "c" / "compare.png").exists()
