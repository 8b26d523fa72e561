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
    evaluate(
        better_predict, TASK, samples, root / "lora-r16", manifest={"model": "tiny", "adapter": "r16"}, make_plots=False
    )
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
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlmkit",
            "compare",
            str(root / "base"),
            str(root / "lora-r16"),
            "--out",
            str(tmp_path / "c"),
            "--resamples",
            "200",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "| lora-r16 |" in out.stdout and (tmp_path / "c" / "compare.png").exists()


def test_compare_breaks_deltas_down_by_group(two_runs, tmp_path):
    """Per-group rows (the seed's Forms / Tables / Invoices table): each label's scores are the runs' own group
    scores, and the delta interval is the paired bootstrap on exactly that group's samples."""
    root, _ = two_runs
    result = compare([root / "base", root / "lora-r16"], names=["base", "r16"], out_dir=tmp_path / "cmp", resamples=300)
    odd = result["groups"]["kind"]["odd"]
    ids = range(1, 61, 2)
    base_em = [float(i % 3 != 0) for i in ids]
    new_em = [float(i % 7 != 0) for i in ids]
    assert odd["n"] == 30 and odd["scores"]["base"] == pytest.approx(np.mean(base_em))
    assert odd["scores"]["r16"] == pytest.approx(np.mean(new_em))
    assert odd["deltas"]["r16"] == paired_bootstrap(base_em, new_em, resamples=300)
    text = (tmp_path / "cmp" / "compare.md").read_text(encoding="utf-8")
    assert "**By kind** (exact_match" in text
    assert f"| odd | 30 | {100 * np.mean(base_em):.2f} | {100 * np.mean(new_em):.2f} |" in text


def test_compare_shows_lora_rank_and_trainable_parameters(tmp_path):
    """A LoRA-rank ablation table: the rank from adapter_config.json, the trainable count from the training
    run's manifest next to the adapter."""
    samples = [make_sample(i) for i in range(1, 21)]
    runs = [tmp_path / "base"]
    evaluate(rule_predict, TASK, samples, runs[0], manifest={"model": "tiny"}, make_plots=False)
    for rank, trainable in ((8, 41_984), (16, 1_234_567)):
        adapter = tmp_path / f"train-r{rank}" / "adapter"
        adapter.mkdir(parents=True)
        (adapter / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 2 * rank}))
        (adapter.parent / "manifest.json").write_text(json.dumps({"parameters": {"all": {"trainable": trainable}}}))
        runs.append(tmp_path / f"eval-r{rank}")
        # as `vlmkit eval --adapter train-rN/adapter` run from tmp_path records it: relative, plus the absolute
        # folder (compare runs from another working directory here)
        evaluate(
            better_predict,
            TASK,
            samples,
            runs[-1],
            make_plots=False,
            manifest={"model": "tiny", "adapter": f"train-r{rank}/adapter", "adapter_dir": str(adapter)},
        )
    result = compare(runs, names=["base", "r8", "r16"], resamples=100)
    assert [r["training"] for r in result["runs"]] == [
        None,
        {"lora_rank": 8, "lora_alpha": 16, "trainable_params": 41_984},
        {"lora_rank": 16, "lora_alpha": 32, "trainable_params": 1_234_567},
    ]
    lines = result["markdown"].splitlines()
    assert lines[2].startswith("| run | n | LoRA r | trainable |")
    assert lines[4].startswith("| base | 20 | – | – |") and lines[5].startswith("| r8 | 20 | 8 | 42.0k |")
    assert lines[6].startswith("| r16 | 20 | 16 | 1.23M |")


def test_group_tables_follow_predictions_scored_elsewhere(two_runs, tmp_path):
    """`vlmkit score preds.jsonl --out DIR` leaves predictions.jsonl outside DIR: compare finds it through
    scores.json; with it gone, compare.md says why there are no per-group tables."""
    import shutil

    from vlmkit.eval import score

    root, _ = two_runs
    for name in ("base", "lora-r16"):
        shutil.copy(root / name / "predictions.jsonl", tmp_path / f"{name}.jsonl")
        score(tmp_path / f"{name}.jsonl", TASK, out_dir=tmp_path / f"scored-{name}", make_plots=False)
    runs = [tmp_path / "scored-base", tmp_path / "scored-lora-r16"]
    assert compare(runs, resamples=50)["groups"]["kind"]["odd"]["n"] == 30
    (tmp_path / "base.jsonl").unlink()
    result = compare(runs, resamples=50)
    assert result["groups"] == {"kind": None} and "No per-group tables" in result["markdown"]


def test_hardware_column_when_runs_were_measured_on_different_hardware(tmp_path):
    """The seed's latency / cost per GPU table: the hardware from each run's manifest, as a column only when
    the runs differ in it; each run's report.md names it beside the speed table."""
    samples = [make_sample(i) for i in range(1, 11)]
    for name, hardware in (("a100", "NVIDIA A100-SXM4-80GB"), ("t4", "Tesla T4"), ("t4-again", "Tesla T4")):
        evaluate(
            rule_predict,
            TASK,
            samples,
            tmp_path / name,
            make_plots=False,
            manifest={"model": "m", "engine": {"hardware": hardware}},
        )
    assert "Measured on Tesla T4." in (tmp_path / "t4" / "report.md").read_text()
    lines = compare([tmp_path / "a100", tmp_path / "t4"], resamples=50)["markdown"].splitlines()
    header = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert header[-4:] == ["hardware", "p50 latency", "samples/s", "$/1K images"]
    assert "| NVIDIA A100-SXM4-80GB |" in lines[4] and "| Tesla T4 |" in lines[5]
    same = compare([tmp_path / "t4", tmp_path / "t4-again"], resamples=50)["markdown"]
    assert "hardware" not in same.splitlines()[2]
