"""`--engine openai` against real servers on 127.0.0.1: a fault-injecting OpenAI-compatible endpoint
(tests/fake_openai.py) for retries, errors, concurrency, resume and secrets, and `vlmkit serve` for parity
with the in-process engine."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import zlib

import pytest
from fake_openai import FakeOpenAI, last_user_text
from waiting import wait_for_lines

from vlmkit.data.schema import DatasetWriter, Sample
from vlmkit.errors import ConfigError
from vlmkit.infer import GenerationParams
from vlmkit.infer.openai_client import ChatClient, backoff_delay, retry_after
from vlmkit.infer.options import EndpointSettings, EngineOptions

SECRET = "sk-test-SECRET-7f3a9c"
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "HF_HUB_OFFLINE": "1", "VLMKIT_TEST_KEY": SECRET}


def engine_on(server, **endpoint):
    settings = EndpointSettings(base_url=server.url, **{"concurrency": 4, "request_timeout": 5.0, **endpoint})
    return EngineOptions(engine="openai", endpoint=settings).load("fake-model")


def scrambled(key: str) -> float:
    """A per-question latency (0-40 ms) so answers finish out of order."""
    return (zlib.crc32(key.encode()) % 5) * 0.01


def questions(n: int) -> list[Sample]:
    return [Sample(id=f"s{i}", messages=[{"role": "user", "content": f"question {i}"}]) for i in range(n)]


def test_answers_land_on_their_samples_through_every_fault(monkeypatch):
    monkeypatch.setattr("vlmkit.infer.openai_client.BACKOFF_BASE_S", 0.01)
    faults = {
        "question 1": ["429", "429"],  # rate limited twice, then answered
        "question 2": ["500", "503"],
        "question 3": ["hang"],  # no answer within the timeout
        "question 4": ["broken"],  # a 200 whose body is not JSON
        "question 5": ["400"],  # permanent: an error, not retried
        "question 6": ["empty"],  # a 200 without choices
        "question 7": ["503"] * 9,  # retries used up
    }
    samples = questions(30)
    with FakeOpenAI(faults=faults, latency_for=scrambled, hang_s=2.0) as server:
        engine = engine_on(server, request_timeout=0.5, max_retries=3)
        pairs = list(engine.iter_generate(samples, GenerationParams(max_new_tokens=8)))
    finished = [index for index, _ in pairs]
    results = [result for _, result in sorted(pairs, key=lambda pair: pair[0])]
    assert sorted(finished) == list(range(30)) and finished != list(range(30))  # all, out of order
    for sample, result in zip(samples, results):
        key = sample.question()
        if key == "question 5":
            assert result.error == "HTTP 400: Invalid content for 'question 5': this request will never work"
        elif key == "question 7":
            assert result.error.startswith("HTTP 503") and "gave up after 4 attempts" in result.error
        else:
            assert result.error is None and result.text == f"echo: {key}", key
            assert result.prompt_tokens > 0 and result.completion_tokens == len(result.text.split())
    assert server.attempts["question 5"] == 1 and server.attempts["question 1"] == 3


def test_no_more_requests_in_flight_than_the_concurrency(monkeypatch):
    monkeypatch.setattr("vlmkit.infer.openai_client.BACKOFF_BASE_S", 0.01)
    faults = {f"question {i}": ["429"] for i in range(0, 40, 7)}  # retries must not break the bound either
    with FakeOpenAI(faults=faults, latency=0.03) as server:
        results = engine_on(server, concurrency=4).generate(questions(40), GenerationParams(max_new_tokens=4))
    assert all(r.ok for r in results)
    assert 1 < server.max_in_flight <= 4


def test_the_request_is_the_prompt_the_local_engine_would_build(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "red.png")
    sample = Sample(
        id="a",
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": str(tmp_path / "red.png")},
                    {"type": "text", "text": "What colour?"},
                ],
            },
            {"role": "assistant", "content": "Red."},
            {"role": "user", "content": "And the shape?"},
            {"role": "assistant", "content": "the target, never sent"},
        ],
    )
    params = GenerationParams(max_new_tokens=7, stop=("\n",), seed=3)
    with FakeOpenAI() as server:
        assert engine_on(server).generate([sample], params)[0].text == "echo: And the shape?"
        body = server.bodies[0]
        assert server.headers[0]["authorization"].startswith("Bearer ")
        with pytest.raises(ConfigError, match="beam search"):
            engine_on(server).generate([sample], GenerationParams(num_beams=2))
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    image = body["messages"][1]["content"][0]["image_url"]["url"]
    assert image.startswith("data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1]) == (tmp_path / "red.png").read_bytes()  # stored bytes, as is
    assert body["messages"][1]["content"][1] == {"type": "text", "text": "What colour?"}
    assert (body["max_tokens"], body["temperature"], body["stop"], body["seed"]) == (7, 0, ["\n"], 3)


def test_a_key_quoted_back_by_the_endpoint_is_not_kept(monkeypatch):
    monkeypatch.setenv("VLMKIT_TEST_KEY", SECRET)
    with FakeOpenAI(faults={"question 0": ["401"]}) as server:
        result = engine_on(server, api_key_env="VLMKIT_TEST_KEY").generate(questions(1))[0]
    assert result.error == "HTTP 401: Incorrect API key provided: [api key]"


def test_retry_after_and_backoff_rules():
    assert retry_after({"retry-after": "2"}) == 2.0 and retry_after({"retry-after-ms": "150"}) == 0.15
    assert retry_after({}) is None and 0 <= retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) < 1
    assert backoff_delay(1, asked=3.0) >= 3.0  # never sooner than the endpoint asked
    assert all(0 <= backoff_delay(k) <= 30 for k in range(1, 20))


def test_client_runs_free_form_chat_outside_eval():
    """The request core is a plain client an augment command can use: bodies in, completions out."""
    with FakeOpenAI(answer=lambda body: last_user_text(body).upper()) as server:
        client = ChatClient(EndpointSettings(base_url=server.url, concurrency=2), model="fake-model")
        bodies = [{"messages": [{"role": "user", "content": w}], "max_tokens": 5} for w in ("ab", "cd", "ef")]
        got = dict(client.complete_many(bodies))
    assert [got[i].text for i in range(3)] == ["AB", "CD", "EF"] and got[0].system_fingerprint == "fp_fake_1"


ECHO_TASK = "name: echo\nmetrics: [exact_match]\nprompt: '{question}'\ngeneration: {max_new_tokens: 8}\n"


def _dataset(root, n):
    root.parent.mkdir(parents=True, exist_ok=True)
    (root.parent / "echo.yaml").write_text(ECHO_TASK)
    with DatasetWriter(root) as writer:
        for i in range(n):
            writer.write(
                Sample(id=f"s{i:03d}", messages=[{"role": "user", "content": f"q{i}"}], answers=[f"echo: q{i}"])
            )
    return root


def _eval(server_url, data, out, *extra, wait=True):
    args = [
        sys.executable,
        "-m",
        "vlmkit",
        "eval",
        "--engine",
        "openai",
        "--base-url",
        server_url,
        "--model",
        "fake-model",
        "--api-key-env",
        "VLMKIT_TEST_KEY",
        "--task",
        str(data.parent / "echo.yaml"),
        "--data",
        str(data),
        "--out",
        str(out),
        "--no-plots",
        *map(str, extra),
    ]
    if not wait:
        return subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_eval_cli_records_tokens_and_cost_refuses_another_endpoint_and_never_writes_the_key(tmp_path):
    data = _dataset(tmp_path / "data", 12)
    out = tmp_path / "run"
    with FakeOpenAI(faults={"q3": ["400"]}, usage=lambda body, text: (100, 10)) as server:
        prices = ["--price-input", "2.5", "--price-output", "10"]
        run = _eval(server.url, data, out, "--concurrency", "3", *prices)
        assert run.returncode == 0, run.stderr
        assert all(h["authorization"] == f"Bearer {SECRET}" for h in server.headers)  # read from the named variable
        rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert sorted(r["id"] for r in rows) == [f"s{i:03d}" for i in range(12)]
        failed = [r for r in rows if r.get("error")]
        assert [r["id"] for r in failed] == ["s003"] and "never work" in failed[0]["error"]
        assert all((r["prompt_tokens"], r["completion_tokens"]) == (100, 10) for r in rows if not r.get("error"))
        scores = json.loads((out / "scores.json").read_text())
        assert set(scores["cost"]) == {
            "prompt_tokens",
            "completion_tokens",
            "usd_total",
            "usd_per_1k_images",
            "price_input",
            "price_output",
        }
        usd = (11 * 100 * 2.5 + 11 * 10 * 10) / 1e6
        assert scores["cost"]["usd_total"] == pytest.approx(usd)
        assert scores["cost"]["usd_per_1k_images"] == pytest.approx(usd / 11 * 1000)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["engine"]["base_url"] == server.url and manifest["engine"]["system_fingerprint"] == "fp_fake_1"
        assert "openai:fake-model" in (out / "report.md").read_text()

        again = _eval(server.url, data, out, "--retry-errors", *prices)  # the failed sample is asked again
        assert again.returncode == 0, again.stderr
        assert server.attempts["q3"] == 2 and server.attempts["q4"] == 1
        rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 12 and not any(r.get("error") for r in rows)
        assert json.loads((out / "scores.json").read_text())["cost"]["prompt_tokens"] == 1200  # survives resume

    with FakeOpenAI() as other:  # another endpoint (another port): refused, not mixed into the run
        refused = _eval(other.url, data, out)
        assert refused.returncode == 2 and "different engine.base_url" in refused.stderr
        assert not other.bodies

    compared = subprocess.run(
        [sys.executable, "-m", "vlmkit", "compare", str(out), str(out)], env=ENV, capture_output=True, text=True
    )
    assert compared.returncode == 0 and "openai:fake-model" in compared.stdout and "(tokens)" in compared.stdout
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in run.stdout + run.stderr + again.stdout + again.stderr


@pytest.mark.slow
def test_kill_9_and_resume_gives_every_sample_exactly_once(tmp_path):
    data = _dataset(tmp_path / "data", 60)
    out = tmp_path / "run"
    with FakeOpenAI(latency=0.05) as server:
        process = _eval(server.url, data, out, "--concurrency", "2", wait=False)
        predictions = out / "predictions.jsonl"
        wait_for_lines(predictions, 10)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        killed_at = predictions.read_text().count("\n")
        assert 10 <= killed_at < 60
        run = _eval(server.url, data, out, "--concurrency", "4")
        assert run.returncode == 0, run.stderr
    ids = [json.loads(line)["id"] for line in predictions.read_text().splitlines()]
    assert sorted(ids) == [f"s{i:03d}" for i in range(60)]  # every sample, exactly once
    answers = {json.loads(line)["id"]: json.loads(line)["prediction"] for line in predictions.read_text().splitlines()}
    assert all(answers[f"s{i:03d}"] == f"echo: q{i}" for i in range(60))


@pytest.mark.slow
def test_a_second_eval_on_a_running_out_is_refused_and_the_folder_is_free_after_a_kill(tmp_path):
    """Two evals appending to one predictions.jsonl would ask every sample twice and race on the manifest and the
    scores; the second is refused at once (exit 2), and the lock goes with the first process, kill -9 included."""
    data = _dataset(tmp_path / "data", 40)
    out = tmp_path / "run"
    with FakeOpenAI(latency=0.2) as server:
        first = _eval(server.url, data, out, "--concurrency", "1", wait=False)
        predictions = out / "predictions.jsonl"
        wait_for_lines(predictions, 2)
        second = _eval(server.url, data, out, "--concurrency", "4")
        assert second.returncode == 2, second.stderr
        assert "another `vlmkit eval` is writing to" in second.stderr and str(out) in second.stderr
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert predictions.read_text().count("\n") < 40  # the second asked nothing: the first was still running
        rerun = _eval(server.url, data, out, "--concurrency", "8")
        assert rerun.returncode == 0, rerun.stderr
    ids = [json.loads(line)["id"] for line in predictions.read_text().splitlines()]
    assert sorted(ids) == [f"s{i:03d}" for i in range(40)]


@pytest.mark.slow
def test_a_second_infer_on_a_predictions_file_being_written_is_refused(tmp_path):
    data = _dataset(tmp_path / "data", 40)
    preds = tmp_path / "preds.jsonl"
    command = [sys.executable, "-m", "vlmkit", "infer", "--engine", "openai", "--base-url"]
    with FakeOpenAI(latency=0.2) as server:
        command += [server.url, "--model", "fake-model", "--api-key-env", "VLMKIT_TEST_KEY", "--data", str(data)]
        command += ["--out", str(preds), "--no-progress"]
        first = subprocess.Popen([*command, "--concurrency", "1"], env=ENV, stdout=subprocess.DEVNULL)
        wait_for_lines(preds, 2)
        second = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr
        assert "another `vlmkit infer` is writing to" in second.stderr and str(preds) in second.stderr
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        rerun = subprocess.run([*command, "--concurrency", "8"], env=ENV, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
    ids = [json.loads(line)["id"] for line in preds.read_text().splitlines()]
    assert sorted(ids) == [f"s{i:03d}" for i in range(40)]


@pytest.mark.slow
def test_vlmkit_serve_as_endpoint_gives_the_in_process_predictions(tiny_model, tmp_path):
    """Greedy answers through `vlmkit serve` + --engine openai equal the in-process engine's on the same model:
    prompts, images and decoding match end to end."""
    from PIL import Image

    from vlmkit.eval.suite import SuiteRun, evaluate_suite

    model = tiny_model("qwen2_vl")
    with DatasetWriter(tmp_path / "data") as writer:
        for i in range(4):
            image = tmp_path / f"{i}.png"
            Image.new("RGB", (48 + 16 * i, 40), (60 * i, 90, 200 - 40 * i)).save(image)
            stored = writer.add_media_file(image)
            writer.write(
                Sample(
                    id=f"d{i}",
                    messages=[
                        {
                            "role": "user",
                            "content": [{"type": "image", "image": stored}, {"type": "text", "text": f"What is {i}?"}],
                        }
                    ],
                    answers=["x"],
                )
            )
    local = evaluate_suite(
        str(model), [SuiteRun("docvqa", tmp_path / "data", tmp_path / "local")], batch_size=1, max_new_tokens=6
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "vlmkit", "serve", "--model", str(model), "--port", "0", "--max-batch", "1"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = ""
        while "serving" not in line:
            line = process.stdout.readline()
            assert line, "vlmkit serve exited"
        url = line.split(" on ", 1)[1].split()[0]
        remote = evaluate_suite(
            model.name,
            [SuiteRun("docvqa", tmp_path / "data", tmp_path / "remote")],
            engine_options=EngineOptions(engine="openai", endpoint=EndpointSettings(base_url=f"{url}/v1")),
            max_new_tokens=6,
        )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)

    def predictions(run):
        rows = [json.loads(x) for x in (run.runs[0][1].out_dir / "predictions.jsonl").read_text().splitlines()]
        return {r["id"]: (r["prediction"], r.get("error")) for r in rows}

    assert predictions(remote) == predictions(local)
    assert all(error is None for _, error in predictions(local).values())
    assert any(text for text, _ in predictions(local).values())  # real answers were compared, not empty strings
