"""A reduced quickstart (a few images, two training steps per stage) end to end: every stage's artefacts exist
and reload, and report.json has the promised structure with the evaluator's numbers."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from vlmkit.data.schema import read_samples
from vlmkit.errors import VlmkitError
from vlmkit.quickstart import QuickstartOptions, ShapesConfig, run_quickstart
from vlmkit.quickstart.pipeline import STAGES, TRAINING_RECORD, Layout, make_base
from vlmkit.quickstart.report import TARGETS

pytestmark = pytest.mark.slow

STEPS = ["train.max_steps=2", "train.batch_size=4"]


def reduced(out: Path, **kwargs) -> QuickstartOptions:
    return QuickstartOptions(
        out=out,
        shapes=ShapesConfig(train_images=16, base_train_images=24, test_images=6),
        base_overrides=STEPS,
        finetune_overrides=STEPS,
        eval_batch_size=16,
        threads=2,
        **kwargs,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quickstart")
    options = reduced(root / "out", train_base=True, shipped_base=root / "shipped" / "base")
    report = run_quickstart(options, show_progress=False)
    return Layout(options.out), options, report


def test_report_json_has_the_promised_numbers(run):
    layout, _, report = run
    on_disk = json.loads((layout.out / "report.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(report))
    for model in ("base", "tuned"):
        assert set(on_disk[model]) == {"en", "vi"}
        for lang in ("en", "vi"):
            assert 0.0 <= on_disk[model][lang] <= 1.0
            scores = json.loads((layout.eval(model, lang) / "scores.json").read_text(encoding="utf-8"))
            assert on_disk[model][lang] == scores["overall"]["exact_match"]  # the evaluator's number, unchanged
            assert set(on_disk["by_question_type"][model][lang]) == {"color", "shape", "count"}
    assert set(on_disk["targets"]) == {f"{model}_{lang}" for model, lang in TARGETS}
    assert list(on_disk["stages_s"]) == list(STAGES)
    # every figure is rounded to 0.01 s, so the sum may exceed the wall by half a hundredth per figure
    rounding = 0.005 * (len(on_disk["stages_s"]) + 1)
    assert on_disk["wall_s"] >= sum(on_disk["stages_s"].values()) - rounding - 1e-9
    assert on_disk["peak_rss_mb"] > 0
    assert on_disk["base_source"] == "trained"
    assert on_disk["test_samples"] == {"en": 6, "vi": 6}
    assert len(on_disk["examples"]) == 5 and all(Path(e["image"]).is_file() for e in on_disk["examples"])
    assert {e["question_type"] for e in on_disk["examples"]} == {"color", "shape", "count"}
    assert on_disk["chat_command"].startswith(f"vlmkit chat --model {layout.base} --adapter {layout.adapter}")


def test_report_files_exist_and_open(run):
    layout, _, report = run
    text = (layout.out / "report.md").read_text(encoding="utf-8")
    assert "# vlmkit quickstart report" in text and report["chat_command"] in text
    for path in report["artefacts"]["plots"].values():
        with Image.open(path) as image:
            assert image.size[0] > 100
    for lang in ("en", "vi"):
        assert (layout.compare(lang) / "compare.json").is_file()
        assert (layout.compare(lang) / "compare.png").is_file()
        assert f"({lang})" in (layout.compare(lang) / "compare.md").read_text(encoding="utf-8")


def test_datasets_reload_and_test_images_are_held_out(run):
    layout, options, report = run
    names = ["en-train", "vi-train", "en-test", "vi-test", "base-train", "finetune-train"]
    assert set(report["data"]["datasets"]) == set(names)
    loaded = {name: read_samples(layout.data(name)) for name in names}
    for name in names:
        assert (layout.data(name) / "stats" / "stats.json").is_file()  # `data stats` ran
    train_images = {Path(p).name for s in loaded["base-train"] for p in s.media("image")}
    test_images = {Path(p).name for s in loaded["en-test"] for p in s.media("image")}
    assert train_images.isdisjoint(test_images)
    langs = [s.meta["lang"] for s in loaded["finetune-train"]]
    assert langs.count("vi") == 16 and langs.count("en") == 8  # all Vietnamese + 50 % English replay
    assert len(loaded["en-train"]) == len(loaded["vi-train"]) == 16
    assert len(loaded["base-train"]) == 24  # the base trains on more English
    assert [s.to_json() for s in read_samples(layout.data("en-train"), resolve_media=False)] == [
        s.to_json() for s in read_samples(layout.data("base-train"), resolve_media=False)[:16]
    ]


def test_checkpoint_and_adapter_reload(run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmkit.models.loading import load_model

    layout, _, _ = run
    base = AutoModelForImageTextToText.from_pretrained(layout.base)
    assert base.config.model_type == "qwen2_vl" and base.config.text_config.hidden_size == 128
    assert AutoProcessor.from_pretrained(layout.base).tokenizer("Hình tròn màu gì?")["input_ids"]
    trained = json.loads((layout.base / TRAINING_RECORD).read_text(encoding="utf-8"))
    assert trained["steps"] == 2 and trained["accuracy"].keys() == {"en", "vi"}
    tuned = load_model(layout.base, adapter=layout.adapter)
    assert isinstance(tuned.model, PeftModel)
    # The adapter changes the model: LoRA B matrices moved away from their zero init in two steps.
    moved = [n for n, p in tuned.model.named_parameters() if "lora_B" in n and torch.count_nonzero(p) > 0]
    assert moved
    config = json.loads((layout.adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert "lm_head" in config["target_modules"] and "embed_tokens" in config["target_modules"]


def test_train_base_replaced_the_shipped_checkpoint(run):
    layout, options, _ = run
    shipped = options.shipped_base
    assert (shipped / "model.safetensors").read_bytes() == (layout.base / "model.safetensors").read_bytes()
    assert not (shipped / "training_args.bin").exists()
    assert json.loads((shipped / TRAINING_RECORD).read_text(encoding="utf-8"))["command"].startswith(
        "vlmkit quickstart --train-base"
    )


def test_default_run_starts_from_the_shipped_base(run, tmp_path):
    layout, options, _ = run
    target = Layout(tmp_path / "out")
    info = make_base(target, reduced(target.out, shipped_base=options.shipped_base), display=None)
    assert info["source"] == "shipped" and info["training"]["steps"] == 2
    assert (target.base / "model.safetensors").read_bytes() == (options.shipped_base / "model.safetensors").read_bytes()


def test_missing_shipped_base_says_how_to_build_it(tmp_path):
    layout = Layout(tmp_path / "out")
    with pytest.raises(VlmkitError, match="--train-base"):
        make_base(layout, reduced(layout.out, shipped_base=tmp_path / "nowhere"), display=None)


def test_same_seed_gives_the_same_run(run, tmp_path):
    """Determinism: a second reduced run with the same seed writes the same data, base weights, adapter and
    predictions as the first."""
    import hashlib

    layout, options, report = run
    again = reduced(tmp_path / "again", from_scratch=True, shipped_base=options.shipped_base)
    second = run_quickstart(again, show_progress=False)
    other = Layout(again.out)

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    for name in ("en-train", "vi-test", "finetune-train"):
        assert digest(layout.data(name) / "samples.jsonl") == digest(other.data(name) / "samples.jsonl")
    assert digest(layout.base / "model.safetensors") == digest(other.base / "model.safetensors")
    assert digest(layout.adapter / "adapter_model.safetensors") == digest(other.adapter / "adapter_model.safetensors")
    for model in ("base", "tuned"):
        for lang in ("en", "vi"):
            first = [
                json.loads(line)["prediction"]
                for line in (layout.eval(model, lang) / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
            ]
            again_preds = [
                json.loads(line)["prediction"]
                for line in (other.eval(model, lang) / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
            ]
            assert first == again_preds
            assert second[model][lang] == report[model][lang]


def test_cli_runs_the_quickstart_and_prints_the_table(tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "cli"
    args = [
        sys.executable,
        "-m",
        "vlmkit",
        "quickstart",
        "--out",
        str(out),
        "--from-scratch",
        "--quiet",
        "--train-images",
        "8",
        "--base-train-images",
        "8",
        "--test-images",
        "3",
        "--threads",
        "2",
    ]
    for flag in ("--base-set", "--finetune-set"):
        for override in STEPS:
            args += [flag, override]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "exact match on held-out images" in done.stdout and "vlmkit chat --model" in done.stdout
    assert "it/s" not in done.stderr and "it/s" not in done.stdout  # --quiet: no progress bars, training's neither
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["base_source"] == "trained" and report["test_samples"] == {"en": 3, "vi": 3}
    assert report["training"]["finetune"]["steps"] == 2


def test_report_rerun_commands_work_as_written(run, tmp_path):
    """Every command under "Re-run a stage by hand" in report.md runs as written (on a copy of the run, through the
    installed console script): the fine-tune is redone over the old run, the tuned model re-evaluated, compared."""
    import os
    import shlex
    import subprocess
    import sys

    layout, _, report = run
    text = (layout.out / "report.md").read_text(encoding="utf-8")
    listed = text.split("Re-run a stage by hand", 1)[1].split("```")[1].strip().splitlines()
    assert listed == report["rerun_commands"] and [c.split()[1] for c in listed] == ["train", "eval", "compare"]

    copy = tmp_path / "copy"
    shutil.copytree(layout.out, copy)
    script = Path(sys.executable).with_name("vlmkit")
    script = str(script) if script.exists() else shutil.which("vlmkit")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "2", "NO_COLOR": "1"}
    old_manifest = json.loads((copy / "runs" / "finetune" / "manifest.json").read_text(encoding="utf-8"))
    outputs = []
    for command in listed:
        argv = shlex.split(command.replace(str(layout.out), str(copy)))
        assert argv[0] == "vlmkit"
        done = subprocess.run([script, *argv[1:]], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    new_manifest = json.loads((copy / "runs" / "finetune" / "manifest.json").read_text(encoding="utf-8"))
    assert "--overwrite" in new_manifest["command"] and "--overwrite" not in old_manifest["command"]  # a new run
    history = json.loads((copy / "runs" / "finetune" / "log_history.json").read_text(encoding="utf-8"))
    assert max(row["step"] for row in history) == report["training"]["finetune"]["steps"]  # same overrides
    scores = json.loads((copy / "eval" / "tuned-vi" / "scores.json").read_text(encoding="utf-8"))
    assert scores["counts"]["scored"] == report["test_samples"]["vi"]
    assert "tuned-vi" in outputs[2]
