"""`vlmkit data augment` against a scripted OpenAI-compatible endpoint on 127.0.0.1 (tests/fake_openai.py with
the tables of augment_script.py): counts per filter, provenance, back-translation, the answer check, resume after
a real kill -9, and the split / leakage grouping of variants with their sources."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from augment_script import ScriptedRewriter
from fake_openai import FakeOpenAI
from fixtures_data import image_bytes
from waiting import wait_for_lines

from vlmkit.cli import main
from vlmkit.data.augment import AugmentSettings, augment_dataset
from vlmkit.data.augment.filters import Limits
from vlmkit.data.augment.prompts import load_prompts
from vlmkit.data.leakage import check_leakage
from vlmkit.data.schema import DatasetWriter, read_samples
from vlmkit.data.split import split_dataset
from vlmkit.errors import ConfigError, DataError
from vlmkit.infer.options import EndpointSettings

ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "VLMKIT_PROGRESS_SECONDS": "0.2"}

# source question -> (answer, the endpoint's three paraphrases)
SOURCES = {
    "Biển hiệu ghi chữ gì?": (
        "Phở Hà Nội",
        ["Trên biển hiệu có dòng chữ nào?", "trên biển hiệu có dòng chữ nào", "Biển hiệu ghi chữ gì"],
    ),
    "Cửa hàng mở cửa lúc mấy giờ?": (
        "7 giờ",
        ["   ", "What time does the shop open?", "Mấy giờ thì cửa hàng bắt đầu mở cửa?"],
    ),
    "Số điện thoại trên tấm bảng là gì?": (
        "0912 345 678",
        [
            "Hãy đọc số điện thoại " * 12,
            "Tấm bảng ghi số điện thoại nào?",
            "Số điện thoại được viết trên bảng là số nào?",
        ],
    ),
    "Chiếc xe màu gì?": ("đỏ", ["这辆车是什么颜色？", "Chiếc xe có màu nào?", "Màu sắc của chiếc xe là gì?"]),
}
EXPECTED_FILTERS = {"empty": 1, "overlong": 1, "wrong_language": 2, "same_as_source": 1, "duplicate": 1}


def make_dataset(root: Path, sources: dict[str, tuple[str, list[str]]] = SOURCES, images: bool = True) -> Path:
    with DatasetWriter(root) as writer:
        for index, (question, (answer, _)) in enumerate(sources.items()):
            content = [{"type": "text", "text": question}]
            if images:
                content.insert(0, {"type": "image", "image": writer.add_media_bytes(image_bytes(index), ".jpg")})
            writer.write(
                {
                    "id": f"s{index}",
                    "messages": [{"role": "user", "content": content}, {"role": "assistant", "content": answer}],
                    "answers": [answer],
                    "meta": {"doc_id": f"d{index}"},
                }
            )
    return root


def rewriter(sources=SOURCES, **tables) -> ScriptedRewriter:
    return ScriptedRewriter({q: variants for q, (_, variants) in sources.items()}, **tables)


def run_augment(server, data, out, **settings):
    endpoint = EndpointSettings(base_url=server.url, concurrency=4, request_timeout=5.0, max_retries=2)
    return augment_dataset(
        data, out, endpoint=endpoint, model="fake-model", settings=AugmentSettings(**settings), progress=False
    )


def test_every_filter_counts_what_it_removed_and_variants_keep_their_source(tmp_path):
    data = make_dataset(tmp_path / "data")
    with FakeOpenAI(answer=rewriter(), faults={}) as server:
        report = run_augment(server, data, tmp_path / "out", n=3, lang="vi")
        url = server.url
    counts = {name: entry["count"] for name, entry in report["filters"].items() if entry["count"]}
    assert counts == EXPECTED_FILTERS
    assert report["variants_requested"] == 12 and report["variants_kept"] == 6
    example = report["filters"]["wrong_language"]["examples"][0]
    assert example["text"] in ("What time does the shop open?", "这辆车是什么颜色？") and example["source_id"] in (
        "s1",
        "s3",
    )
    assert report["filters"]["duplicate"]["examples"][0]["text"] == "trên biển hiệu có dòng chữ nào"
    assert "answer_mismatch" not in report["filters"]  # the check was not asked for

    samples = read_samples(tmp_path / "out", resolve_media=False)
    assert [s.id for s in samples] == [
        "s0", "s0~paraphrase-1",
        "s1", "s1~paraphrase-3",
        "s2", "s2~paraphrase-2", "s2~paraphrase-3",
        "s3", "s3~paraphrase-2", "s3~paraphrase-3",
    ]  # fmt: skip
    sources = {s.id: s for s in samples if "~" not in s.id}
    for variant in (s for s in samples if "~" in s.id):
        source = sources[variant.meta["source_id"]]
        assert variant.answers == source.answers and variant.target() == source.target()
        assert variant.media() == source.media() and (tmp_path / "out" / variant.media()[0]).is_file()
        assert variant.question() != source.question()
        assert variant.meta["doc_id"] == source.meta["doc_id"]
        augment = variant.meta["augment"]
        assert augment["method"] == "paraphrase" and augment["lang"] == "vi"
        assert augment["endpoint"] == {"base_url": url, "model": "fake-model"}
    assert samples[1].question() == "Trên biển hiệu có dòng chữ nào?" and samples[1].meta["augment"]["variant"] == 1
    # the token cost is the endpoint's usage, summed over the successful requests
    usage = report["tokens"]
    assert usage["requests"] == 12 and usage["completion_tokens"] == sum(
        len(v.split()) for _, variants in SOURCES.values() for v in variants
    )
    saved = json.loads((tmp_path / "out" / "augment_report.json").read_text())
    assert saved["filters"]["overlong"]["count"] == 1 and saved["tokens"] == usage


def test_variants_only_and_auto_language(tmp_path):
    data = make_dataset(tmp_path / "data")
    with FakeOpenAI(answer=rewriter()) as server:
        report = run_augment(server, data, tmp_path / "out", n=3, include_sources=False)  # lang auto: vi by script
    assert report["filters"]["wrong_language"]["count"] == 2 and report["dataset_lang"] == "vi"
    samples = read_samples(tmp_path / "out")
    assert len(samples) == 6 and all(s.meta["source_id"] for s in samples)


def test_backtranslation_goes_through_the_pivot_and_records_it(tmp_path):
    sources = {"Chiếc xe màu gì?": ("đỏ", [])}
    data = make_dataset(tmp_path / "data", sources)
    back = {"Chiếc xe màu gì?": ["Xe có màu gì?", "Chiếc xe màu gì?", "What color is the car?"]}
    with FakeOpenAI(answer=rewriter(sources, back=back)) as server:
        report = run_augment(server, data, tmp_path / "out", n=3, lang="vi", methods=("backtranslate",), via="en")
        legs = Counter("into English" in str(b["messages"]) for b in server.bodies)
    assert legs == {True: 3, False: 3}
    assert report["filters"]["same_as_source"]["count"] == 1 and report["filters"]["wrong_language"]["count"] == 1
    variant = read_samples(tmp_path / "out")[1]
    assert variant.id == "s0~backtranslate-en-1" and variant.question() == "Xe có màu gì?"
    assert variant.meta["augment"] | {"endpoint": None} == {
        "method": "backtranslate",
        "variant": 1,
        "lang": "vi",
        "via": "en",
        "pivot": "EN: Chiếc xe màu gì?",
        "prompts": variant.meta["augment"]["prompts"],
        "endpoint": None,
    }


def test_answer_check_keeps_only_variants_the_endpoint_answers_alike(tmp_path):
    data = make_dataset(tmp_path / "data")
    answers = {
        "Trên biển hiệu có dòng chữ nào?": "phở hà nội.",  # agrees after normalisation
        "Mấy giờ thì cửa hàng bắt đầu mở cửa?": "8 giờ",  # disagrees
        "Tấm bảng ghi số điện thoại nào?": "0912 345 678",
        "Số điện thoại được viết trên bảng là số nào?": "0912 345 679",  # one digit off: disagrees by default
        "Chiếc xe có màu nào?": "xanh",  # disagrees
        "Màu sắc của chiếc xe là gì?": "Đỏ",
    }
    with FakeOpenAI(answer=rewriter(answers=answers)) as server:
        report = run_augment(server, data, tmp_path / "out", n=3, lang="vi", check_answer=True)
        checks = [b for b in server.bodies if "Answer the question" in str(b["messages"])]
    assert report["filters"]["answer_mismatch"]["count"] == 3 and report["variants_kept"] == 3
    mismatch = {e["text"]: e["answer"] for e in report["filters"]["answer_mismatch"]["examples"]}
    assert mismatch == {
        "Mấy giờ thì cửa hàng bắt đầu mở cửa?": "8 giờ",
        "Số điện thoại được viết trên bảng là số nào?": "0912 345 679",
        "Chiếc xe có màu nào?": "xanh",
    }
    assert len(checks) == 6  # only variants that passed the other filters are checked, each with its image
    content = checks[0]["messages"][-1]["content"]
    assert content[0]["type"] == "image_url" and content[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    kept = read_samples(tmp_path / "out")
    assert {s.id for s in kept if "~" in s.id} == {"s0~paraphrase-1", "s2~paraphrase-2", "s3~paraphrase-3"}
    assert next(s for s in kept if s.id == "s0~paraphrase-1").meta["augment"]["check_answer"] == "phở hà nội."


def test_failed_requests_are_reported_and_retried_by_a_rerun(tmp_path):
    data = make_dataset(tmp_path / "data")
    question = "Chiếc xe màu gì?"
    with FakeOpenAI(answer=rewriter()) as probe:
        run_augment(probe, data, tmp_path / "probe", n=3, lang="vi")
        prompt_of_variant_2 = next(
            m["content"]
            for b in probe.bodies
            for m in b["messages"]
            if m["role"] == "user" and question in m["content"] and "variant 2 of" in m["content"]
        )
    with FakeOpenAI(answer=rewriter(), faults={prompt_of_variant_2: ["400"]}) as server:
        first = run_augment(server, data, tmp_path / "out", n=3, lang="vi")
        assert first["filters"]["failed"]["count"] == 1 and first["tokens"]["requests_failed_this_run"] == 1
        assert "will never work" in first["filters"]["failed"]["examples"][0]["text"]
        assert "s3~paraphrase-2" not in {s.id for s in read_samples(tmp_path / "out")}
        sent = len(server.bodies)
        again = run_augment(server, data, tmp_path / "out", n=3, lang="vi")  # the 400 is gone now
        assert len(server.bodies) == sent + 1  # only the failed request is asked again
    assert again["filters"]["failed"]["count"] == 0 and again["variants_kept"] == 6 and again["resumed"]
    assert "s3~paraphrase-2" in {s.id for s in read_samples(tmp_path / "out")}


def test_an_edited_source_question_is_asked_afresh(tmp_path):
    data = make_dataset(tmp_path / "data")
    with FakeOpenAI(answer=rewriter()) as server:
        run_augment(server, data, tmp_path / "out", n=3, lang="vi")
        lines = (data / "samples.jsonl").read_text(encoding="utf-8").splitlines()
        edited = json.loads(lines[3])
        edited["messages"][0]["content"][1]["text"] = "Biển hiệu ghi chữ gì?"  # s3 now asks what s0 asks
        lines[3] = json.dumps(edited, ensure_ascii=False)
        (data / "samples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        sent = len(server.bodies)
        report = run_augment(server, data, tmp_path / "out", n=3, lang="vi")
        assert len(server.bodies) == sent + 3  # s3's three variants, for its new question
    s3 = [s for s in read_samples(tmp_path / "out") if s.meta.get("source_id") == "s3"]
    assert [s.question() for s in s3] == ["Trên biển hiệu có dòng chữ nào?"]  # no variant of the old question
    assert report["variants_kept"] == 5


def test_changed_settings_are_refused_on_resume_and_prompt_files_are_used(tmp_path):
    data = make_dataset(tmp_path / "data")
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("paraphrase: 'Say it again (variant {variant} of {n}) Question: {question}'\n")
    with FakeOpenAI(answer=rewriter()) as server:
        run_augment(server, data, tmp_path / "out", n=1, lang="vi", prompt_file=prompts)
        assert [{"role": "user", "content": "Say it again (variant 1 of 1) Question: Biển hiệu ghi chữ gì?"}] in [
            b["messages"] for b in server.bodies
        ]
        with pytest.raises(ConfigError, match="other settings.*prompts"):
            run_augment(server, data, tmp_path / "out", n=1, lang="vi")
    bad = tmp_path / "bad.yaml"
    bad.write_text("paraphrase: 'Rewrite {question} as {style}'\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: paraphrase: unknown placeholder \{style\}"):
        load_prompts(bad)


def _augment_cli(url, data, out, *extra, wait=True):
    command = [
        sys.executable, "-m", "vlmkit", "data", "augment", str(data), "--out", str(out), "--model", "fake-model",
        "--base-url", url, "--lang", "vi", *extra,
    ]  # fmt: skip
    if wait:
        return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_run_then_rerun_gives_every_variant_once(tmp_path):
    many = {
        f"Câu hỏi số {i} về bức ảnh là gì?": (
            "x",
            [f"Bức ảnh cho thấy điều gì ở câu số {i}, lần {k}?" for k in range(3)],
        )
        for i in range(20)
    }
    data = make_dataset(tmp_path / "data", many, images=False)
    out = tmp_path / "out"
    with FakeOpenAI(answer=rewriter(many), latency=0.1) as server:
        process = _augment_cli(server.url, data, out, "--n", "3", "--concurrency", "2", wait=False)
        log = out / "augment_requests.jsonl"
        wait_for_lines(log, 12)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        logged = log.read_text().count("\n") - 1
        assert 11 <= logged < 60 and not (out / "samples.jsonl").exists()  # killed mid-run
        rerun = _augment_cli(server.url, data, out, "--n", "3", "--concurrency", "2")
        assert rerun.returncode == 0, rerun.stderr
        attempts = server.attempts
    # only what was in flight at the kill (--concurrency 2) is asked again; such a key can count one more attempt
    # when the client retried it before the kill (seen once on a loaded CI box: one key asked 3 times)
    re_asked = [key for key, count in attempts.items() if count > 1]
    assert len(re_asked) <= 2 and sum(attempts.values()) - 60 >= len(re_asked)
    assert len(attempts) == 60
    entries = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    keys = Counter((e["id"], e["method"], e["variant"]) for e in entries)
    assert len(keys) == 60 and set(keys.values()) == {1}  # nothing lost, nothing twice
    samples = read_samples(out)
    assert len(samples) == 80 and len({s.id for s in samples}) == 80
    assert "kept 60 variants" in rerun.stdout and "requests sent now" in rerun.stdout


def test_a_second_run_on_the_same_out_is_refused_while_the_first_runs(tmp_path):
    """Two runs appending to one request log would each write the dataset from a log the other is changing; the
    second is refused at once (exit 2, naming the folder), and once the first has ended (a lock the kernel drops
    with the process, kill -9 included) the folder is free again."""
    many = {
        f"Câu hỏi số {i} về bức ảnh là gì?": ("x", [f"Bức ảnh số {i}, lần {k}?" for k in range(2)]) for i in range(8)
    }
    data = make_dataset(tmp_path / "data", many, images=False)
    out = tmp_path / "out"
    with FakeOpenAI(answer=rewriter(many), latency=0.2) as server:
        first = _augment_cli(server.url, data, out, "--n", "2", "--concurrency", "1", wait=False)
        log = out / "augment_requests.jsonl"
        wait_for_lines(log, 2)
        second = _augment_cli(server.url, data, out, "--n", "2")
        assert second.returncode == 2, second.stderr
        assert "another `vlmkit data augment` is writing" in second.stderr and str(out) in second.stderr
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        rerun = _augment_cli(server.url, data, out, "--n", "2")
        assert rerun.returncode == 0, rerun.stderr
    assert len(read_samples(out)) == 8 + 16


def test_cli_usage_errors_are_one_line(tmp_path, capsys):
    data = make_dataset(tmp_path / "data")
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "augment", str(data), "--out", str(data / "aug"), "--model", "m", "--method", "rewrite"])
    assert exit_info.value.code == 2
    assert "--method must be one of paraphrase, backtranslate" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "augment", str(data), "--out", str(data), "--model", "m", "--base-url", "http://127.0.0.1:9/v1"])
    assert exit_info.value.code == 2 and "an input of this command" in capsys.readouterr().err


def test_a_taken_variant_id_is_refused_before_any_request(tmp_path):
    data = tmp_path / "data"
    with DatasetWriter(data) as writer:
        for sample_id in ("a", "a~paraphrase-1"):
            writer.write({"id": sample_id, "messages": [{"role": "user", "content": "Xe màu gì?"}]})
    with FakeOpenAI(answer=rewriter()) as server:
        with pytest.raises(DataError, match="'a~paraphrase-1' is taken"):
            run_augment(server, data, tmp_path / "out", n=1)
        assert not server.bodies


def test_split_keeps_text_only_variants_with_their_source(tmp_path):
    many = {
        f"Câu hỏi thứ {i} là gì?": ("x", [f"Câu thứ {i} hỏi điều gì, cách {k}?" for k in range(2)]) for i in range(30)
    }
    data = make_dataset(tmp_path / "data", many, images=False)  # no shared image to group them by
    with FakeOpenAI(answer=rewriter(many)) as server:
        run_augment(server, data, tmp_path / "aug", n=2, lang="vi")
    report = split_dataset(tmp_path / "aug", val=0.2, test=0.2, seed=3)
    side = {}
    for name in ("train", "val", "test"):
        for sample in read_samples(tmp_path / "aug" / "splits" / name):
            side[sample.id] = name
    assert len(side) == 90 and report["samples"]["test"] > 0
    for sample_id, name in side.items():
        assert side[sample_id.split("~")[0]] == name, sample_id


def test_check_leakage_flags_a_variant_whose_source_is_in_eval(tmp_path):
    data = make_dataset(tmp_path / "data", images=False)
    with FakeOpenAI(answer=rewriter()) as server:
        run_augment(server, data, tmp_path / "aug", n=3, lang="vi", include_sources=False)
    evaluation = tmp_path / "eval"
    with DatasetWriter(evaluation) as writer:
        writer.write({"id": "s2", "messages": [{"role": "user", "content": "Số điện thoại trên tấm bảng là gì?"}]})
        writer.write({"id": "e9", "messages": [{"role": "user", "content": "Something else?"}]})
    report = check_leakage(tmp_path / "aug", evaluation, progress=False)
    items = report["augmented_from_eval"]["items"]
    assert report["leaks"] and report["augmented_from_eval"]["count"] == 2
    assert {(i["train_sample"], i["eval_sample"]) for i in items} == {
        ("s2~paraphrase-2", "s2"),
        ("s2~paraphrase-3", "s2"),
    }
    assert report["eval_samples_leaking"] == 1
    clean = check_leakage(tmp_path / "aug", _other_eval(tmp_path), progress=False)
    assert not clean["leaks"] and clean["augmented_from_eval"]["count"] == 0


def _other_eval(tmp_path: Path) -> Path:
    root = tmp_path / "eval-clean"
    with DatasetWriter(root) as writer:
        writer.write({"id": "e1", "messages": [{"role": "user", "content": "Unrelated?"}]})
    return root


@pytest.mark.parametrize("limits", [Limits(max_ratio=0)])
def test_bad_limits_are_refused(limits):
    with pytest.raises(ConfigError, match="--max-ratio"):
        AugmentSettings(limits=limits)


def test_a_larger_n_later_asks_only_for_the_new_variants(tmp_path):
    data = make_dataset(tmp_path / "data")
    with FakeOpenAI(answer=rewriter()) as server:
        first = run_augment(server, data, tmp_path / "out", n=2, lang="vi")
        assert len(server.bodies) == 8 and first["variants_requested"] == 8
        second = run_augment(server, data, tmp_path / "out", n=3, lang="vi")
        assert len(server.bodies) == 12  # variant 3 of each question only
    assert second["tokens"]["requests_sent_this_run"] == 4 and second["tokens"]["requests"] == 12
    assert {name: e["count"] for name, e in second["filters"].items() if e["count"]} == EXPECTED_FILTERS


def test_an_endpoint_that_answers_nothing_is_one_clear_error(tmp_path):
    data = make_dataset(tmp_path / "data")
    with FakeOpenAI(answer=rewriter(), faults={}) as server:
        url = server.url  # a port that was listening; closed below
    endpoint = EndpointSettings(base_url=url, max_retries=0, request_timeout=2.0)
    with pytest.raises(ConfigError, match=r"every request to http://127.0.0.1:\d+/v1 failed \(4\).*connection failed"):
        augment_dataset(
            data, tmp_path / "out", endpoint=endpoint, model="m", settings=AugmentSettings(), progress=False
        )
    assert not (tmp_path / "out" / "samples.jsonl").exists()


def test_no_secret_reaches_the_output(tmp_path, monkeypatch):
    """The key (from --api-key-env) and credentials in the URL stay out of meta, the log and the report."""
    secret = "sk-augment-SECRET-51c0"
    monkeypatch.setenv("AUG_TEST_KEY", secret)
    data = make_dataset(tmp_path / "data")
    with FakeOpenAI(answer=rewriter()) as server:
        port = server.url.split(":")[2].split("/")[0]
        url = f"http://user:pw-SECRET@127.0.0.1:{port}/v1"
        with_key = EndpointSettings(base_url=server.url, api_key_env="AUG_TEST_KEY")
        augment_dataset(data, tmp_path / "out", endpoint=with_key, model="m", progress=False)
        assert server.headers[0]["authorization"] == f"Bearer {secret}"  # the key was used
        with_credentials = EndpointSettings(base_url=url, api_key_env="AUG_TEST_KEY")
        augment_dataset(data, tmp_path / "out2", endpoint=with_credentials, model="m", progress=False)
    variant = next(s for s in read_samples(tmp_path / "out2") if "~" in s.id)
    assert variant.meta["augment"]["endpoint"] == {"base_url": f"http://127.0.0.1:{port}/v1", "model": "m"}
    for path in [*(tmp_path / "out").rglob("*"), *(tmp_path / "out2").rglob("*")]:
        if path.is_file():
            assert b"SECRET" not in path.read_bytes(), path
