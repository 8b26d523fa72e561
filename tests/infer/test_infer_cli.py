"""`vlmkit infer`: one answer on stdout, a dataset to predictions.jsonl (resumable), clear errors."""

from __future__ import annotations

import json
import socket

import pytest
from infer_helpers import request, write_dataset

from vlmkit.data.schema import read_samples
from vlmkit.infer import GenerationParams
from vlmkit.io import read_jsonl

PREDICTION_KEYS = {"id", "question", "prediction", "answers", "meta", "latency_s"}


def run_cli(capsys, *args):
    from vlmkit.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_one_question_prints_the_answer(capsys, tiny_model, engine_for, images):
    model = tiny_model("qwen2_vl")
    code, out, err = run_cli(
        capsys, "infer", "--model", model, "--image", images[0], "--question", "What is it?", "--max-new-tokens", 10
    )
    assert code == 0, err
    expected = (
        engine_for("qwen2_vl")
        .generate([request("question", "What is it?", images=[images[0]])], GenerationParams(max_new_tokens=10))[0]
        .text
    )
    assert out == expected + "\n"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("case", ["missing", "url", "unsupported", "empty", "no-question"])
def test_bad_single_questions_give_clear_errors(capsys, tiny_model, images, tmp_path, case):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    image, question, expected = {
        "missing": (tmp_path / "nope.jpg", "What?", "nope.jpg: file not found"),
        "url": (f"http://127.0.0.1:{_closed_port()}/cat.png", "What?", "cannot connect"),
        "unsupported": (text_file, "What?", "notes.txt: not an image"),
        "empty": (images[0], "  ", "--question is empty"),
        "no-question": (images[0], None, "give --question"),
    }[case]
    args = ["infer", "--model", tiny_model("qwen2_vl"), "--image", image]
    if question is not None:
        args += ["--question", question]
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    last = err.strip().splitlines()[-1]  # earlier stderr lines may be the model-loading progress bar
    assert last.startswith("error: ") and expected in last
    assert "Traceback" not in err


def test_dataset_predictions_with_a_bad_sample(capsys, tiny_model, engine_for, images, tmp_path):
    data = write_dataset(tmp_path / "data", images, n=10, bad_ids={"q4"})
    out = tmp_path / "run" / "predictions.jsonl"
    code, _, err = run_cli(
        capsys,
        "infer",
        "--model",
        tiny_model("qwen2_vl"),
        "--data",
        data,
        "--out",
        out,
        "--batch-size",
        4,
        "--max-new-tokens",
        8,
        "--max-pixels",
        28 * 28 * 16,
        "--save-samples",
        tmp_path / "saved",
    )
    assert code == 0, err
    assert "9 predicted" in err and "1 failed" in err and "q4: image" in err  # a failed sample is not predicted
    counts = json.loads((out.parent / (out.name + ".manifest.json")).read_text())["counts"]
    assert (counts["predicted"], counts["errors"]) == (9, 1)

    rows = {row["id"]: row for row in read_jsonl(out)}
    assert set(rows) == {f"q{k}" for k in range(10)}
    assert "file not found" in rows["q4"]["error"] and rows["q4"]["prediction"] == ""
    samples = [s for s in read_samples(data) if s.id != "q4"]
    for sample in samples:
        assert set(rows[sample.id]) == PREDICTION_KEYS
        assert rows[sample.id]["answers"] == ["red", "dark red"] and rows[sample.id]["meta"] == sample.meta
        assert rows[sample.id]["question"] == sample.question()
    expected = engine_for("qwen2_vl", max_pixels=28 * 28 * 16).generate(samples, GenerationParams(max_new_tokens=8))
    assert [rows[s.id]["prediction"] for s in samples] == [r.text for r in expected]

    manifest = json.loads((tmp_path / "run" / "predictions.jsonl.manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["counts"]["errors"] == 1
    assert manifest["media"]["max_pixels"] == 28 * 28 * 16 and manifest["generation"]["max_new_tokens"] == 8
    assert manifest["engine"]["family"] == "qwen2_vl" and manifest["samples_per_s"] > 0

    saved = tmp_path / "saved"
    assert {p.name for p in saved.glob("q0_*")} == {"q0_in.json", "q0_img.jpg", "q0_out.json"}
    assert {p.name for p in saved.glob("q4_*")} == {"q4_in.json", "q4_out.json"}
    assert json.loads((saved / "q0_out.json").read_text())["prediction"] == rows["q0"]["prediction"]


def test_resume_skips_finished_ids_and_repairs_a_torn_line(capsys, tiny_model, images, tmp_path):
    data = write_dataset(tmp_path / "data", images, n=9)
    model = tiny_model("qwen2_vl")
    common = ["--model", model, "--data", data, "--max-new-tokens", 6, "--no-progress"]

    once = tmp_path / "once.jsonl"
    assert run_cli(capsys, "infer", *common, "--out", once, "--batch-size", 1)[0] == 0
    reference = {row["id"]: row["prediction"] for row in read_jsonl(once)}

    out = tmp_path / "resumed.jsonl"
    code, _, err = run_cli(capsys, "infer", *common, "--out", out, "--slice", "0:4", "--batch-size", 4)
    assert code == 0 and "4 predicted" in err
    with open(out, "a", encoding="utf-8") as handle:  # a crash in the middle of writing a line
        handle.write('{"id": "q7", "question": "What col')
    code, _, err = run_cli(capsys, "infer", *common, "--out", out, "--batch-size", 4)
    assert code == 0 and "5 predicted" in err and "4 already done" in err
    rows = read_jsonl(out)
    assert sorted(row["id"] for row in rows) == sorted(reference)  # each id once, the torn line gone
    assert {row["id"]: row["prediction"] for row in rows} == reference  # batch size changes nothing

    code, _, err = run_cli(capsys, "infer", *common, "--out", out)
    assert code == 0 and "nothing to do" in err


def test_resume_with_other_settings_is_refused(capsys, tiny_model, images, tmp_path):
    data = write_dataset(tmp_path / "data", images, n=3)
    out = tmp_path / "p.jsonl"
    common = ["infer", "--model", tiny_model("qwen2_vl"), "--data", data, "--out", out, "--no-progress"]
    assert run_cli(capsys, *common, "--max-new-tokens", 4)[0] == 0
    code, _, err = run_cli(capsys, *common, "--max-new-tokens", 5)
    assert code == 2 and "generation.max_new_tokens: 4 then, 5 now" in err


def test_failed_samples_are_retried_on_resume_with_retry_errors(capsys, tiny_model, images, tmp_path):
    data = write_dataset(tmp_path / "data", images, n=4, bad_ids={"q2"})
    out = tmp_path / "p.jsonl"
    args = [
        "infer",
        "--model",
        tiny_model("qwen2_vl"),
        "--data",
        data,
        "--out",
        out,
        "--no-progress",
        "--max-new-tokens",
        4,
    ]
    code, _, err = run_cli(capsys, *args)
    assert code == 0 and "1 failed (--retry-errors predicts them again)" in err
    (data / "media" / "missing.png").write_bytes(images[0].read_bytes())  # the user fixes the missing image
    code, _, err = run_cli(capsys, *args)  # as eval: a plain resume keeps the failure
    assert code == 0 and "nothing to do" in err and any("error" in r for r in read_jsonl(out))
    code, _, err = run_cli(capsys, *args, "--retry-errors")
    assert code == 0 and "1 predicted" in err and "0 failed" in err
    rows = read_jsonl(out)
    assert sorted(r["id"] for r in rows) == ["q0", "q1", "q2", "q3"] and not any("error" in r for r in rows)


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--slice", "20:30"], "--slice 20:30 is out of range: the dataset has 5 samples"),
        (["--slice", "0:6"], "STOP can be at most 5"),
        (["--question", "hi"], "the questions come from the dataset"),
    ],
)
def test_bad_dataset_runs_give_clear_errors(capsys, tiny_model, images, tmp_path, extra, expected):
    data = write_dataset(tmp_path / "data", images, n=5)
    code, _, err = run_cli(
        capsys, "infer", "--model", tiny_model("qwen2_vl"), "--data", data, "--out", tmp_path / "p.jsonl", *extra
    )
    assert code == 2 and expected in err


def test_out_must_not_be_a_dataset_file(capsys, tiny_model, images, tmp_path):
    data = write_dataset(tmp_path / "data", images, n=2)
    before = (data / "samples.jsonl").read_bytes()
    code, _, err = run_cli(
        capsys, "infer", "--model", tiny_model("qwen2_vl"), "--data", data, "--out", data / "samples.jsonl"
    )
    assert code == 2 and "not a predictions file" in err
    assert (data / "samples.jsonl").read_bytes() == before


def test_run_config_sets_pixel_bounds_and_flags_override_it(capsys, tiny_model, engine_for, images, tmp_path):
    data = write_dataset(tmp_path / "data", images, n=4)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"model: {{path: {tiny_model('qwen2_vl')}}}\ndata: {{train: {data}, max_pixels: {28 * 28 * 4}, nframes: 4}}\n"
    )
    out = tmp_path / "p.jsonl"
    code, _, err = run_cli(
        capsys,
        "infer",
        "--model",
        tiny_model("qwen2_vl"),
        "--data",
        data,
        "--out",
        out,
        "--config",
        config,
        "--min-pixels",
        28 * 28 * 2,
        "--max-new-tokens",
        6,
        "--no-progress",
    )
    assert code == 0, err
    manifest = json.loads((tmp_path / "p.jsonl.manifest.json").read_text())
    assert manifest["media"] == {
        "min_pixels": 28 * 28 * 2,
        "max_pixels": 28 * 28 * 4,
        "nframes": 4,
        "fps": None,
        "max_frames": 64,
    }
    engine = engine_for("qwen2_vl", min_pixels=28 * 28 * 2, max_pixels=28 * 28 * 4, nframes=4)
    expected = engine.generate(read_samples(data), GenerationParams(max_new_tokens=6))
    assert {row["id"]: row["prediction"] for row in read_jsonl(out)} == {
        s.id: r.text for s, r in zip(read_samples(data), expected)
    }


def test_quantized_inference_from_the_cli(capsys, tiny_model, images, tmp_path):
    """--quantization 4bit loads the language model in NF4 (bitsandbytes runs it on the CPU), the vision tower
    stays full precision, and the run manifest says so; a wrong value fails before the weights load."""
    import bitsandbytes as bnb

    from vlmkit.infer import load_engine

    model = tiny_model("qwen2_vl")
    data = write_dataset(tmp_path / "data", images, n=3)
    out = tmp_path / "p.jsonl"
    code, _, err = run_cli(
        capsys,
        "infer",
        "--model",
        model,
        "--data",
        data,
        "--out",
        out,
        "--quantization",
        "4bit",
        "--max-new-tokens",
        4,
        "--no-progress",
    )
    assert code == 0, err
    engine_info = json.loads((tmp_path / "p.jsonl.manifest.json").read_text())["engine"]
    assert engine_info["quantization"] == "4bit" and engine_info["hardware"].endswith(" cores")  # the CPU here
    assert sorted(row["id"] for row in read_jsonl(out)) == sorted(s.id for s in read_samples(data))
    code, _, err = run_cli(
        capsys, "infer", "--model", model, "--data", data, "--out", out, "--max-new-tokens", 4, "--no-progress"
    )  # resuming in full precision would mix two models' answers
    assert code == 2 and "quantization: '4bit' then, None now" in err
    engine = load_engine(model, quantization="4bit", batch_size=1)
    kinds = {name: type(module) for name, module in engine.model.named_modules()}
    assert kinds["model.language_model.layers.0.self_attn.q_proj"] is bnb.nn.Linear4bit
    assert not any(issubclass(kind, bnb.nn.Linear4bit) for name, kind in kinds.items() if ".visual." in f".{name}")
    code, _, err = run_cli(
        capsys, "infer", "--model", model, "--image", images[0], "--question", "Hi?", "--quantization", "3bit"
    )
    assert code == 2 and "4bit, 8bit" in err
