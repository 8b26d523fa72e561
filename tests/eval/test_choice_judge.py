"""The optional LLM judge for answers the rules can't place, against a real OpenAI-compatible HTTP server
on 127.0.0.1 (a stand-in judge that reads the prompt): off by default, counts per path in scores.json."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from eval_helpers import write_predictions

from vlmkit.eval.judge import openai_complete
from vlmkit.eval.scorefile import score

ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
PROMPTS = []


class JudgeHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        PROMPTS.append(prompt)
        tail = prompt.rsplit("Example 3", 1)[-1]
        if "a fluffy feline" in tail:
            reply = "A"
        elif "one is definitely there" in tail:
            reply = "Yes"
        else:
            reply = "I cannot tell"
        payload = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), JudgeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    PROMPTS.clear()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def choice_file(tmp_path):
    options = {"A": "cat", "B": "dog"}
    rows = [
        {"id": "1", "question": "Which animal?", "prediction": "B", "answers": ["B"], "meta": {"options": options}},
        {
            "id": "2",
            "question": "Which animal?",
            "prediction": "a fluffy feline",
            "answers": ["A"],
            "meta": {"options": options},
        },
        {
            "id": "3",
            "question": "Which animal?",
            "prediction": "something else entirely",
            "answers": ["A"],
            "meta": {"options": options},
        },
    ]
    return write_predictions(tmp_path / "run" / "predictions.jsonl", rows)


def test_without_judge_undecided_answers_score_wrong(tmp_path):
    summary = score(choice_file(tmp_path), "ai2d", make_plots=False)
    assert summary["overall"]["choice_accuracy"] == pytest.approx(1 / 3)
    assert summary["answer_extraction"] == {"rules": 1, "judge": 0, "undecided": 2, "judge_used": False}


def test_judge_decides_what_the_rules_cannot(tmp_path, judge_url):
    summary = score(choice_file(tmp_path), "ai2d", make_plots=False, judge=openai_complete(judge_url, "judge-1"))
    assert summary["overall"]["choice_accuracy"] == pytest.approx(2 / 3)
    assert summary["answer_extraction"] == {"rules": 1, "judge": 1, "undecided": 1, "judge_used": True}
    assert len(PROMPTS) == 1 + 3  # one try for the feline answer, three for the one nobody can place
    assert "A. cat\nB. dog" in PROMPTS[0] and "Answer: a fluffy feline" in PROMPTS[0]
    assert "_judge_choice" not in summary["groups"]  # the judge's notes are not a grouping key
    assert "by the LLM judge: 1" in (tmp_path / "run" / "report.md").read_text()


def test_score_cli_judge_flags_on_yes_no(tmp_path, judge_url):
    rows = [
        {"id": "1", "question": "Is there a dog?", "prediction": "Yes", "answers": ["yes"], "meta": {}},
        {
            "id": "2",
            "question": "Is there a dog?",
            "prediction": "one is definitely there",
            "answers": ["yes"],
            "meta": {},
        },
    ]
    path = write_predictions(tmp_path / "preds.jsonl", rows)
    args = [sys.executable, "-m", "vlmkit", "score", str(path), "--task", "pope", "--no-plots"]
    out = subprocess.run(
        [*args, "--judge-base-url", judge_url, "--judge-model", "j"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "by the judge: 1" in out.stdout
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["suite"]["overall"]["recall"] == 1.0 and scores["overall"]["yes_no_accuracy"] == 1.0
    out = subprocess.run([*args, "--judge-model", "j"], capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 2 and "--judge-base-url" in out.stderr
