"""`vlmkit chat` in a real pseudo-terminal, and the ChatSession logic behind it."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from vlmkit.data.schema import Sample, parse_sample
from vlmkit.errors import VlmkitError
from vlmkit.infer import GenerationParams
from vlmkit.infer.chat import ChatSession

PARAMS = GenerationParams(max_new_tokens=8)
VLMKIT = Path(sys.executable).with_name("vlmkit")


def conversation(image, *turns):
    """The Sample a chat with these (question, answer) turns asks the model for next."""
    messages = []
    for k, (question, answer) in enumerate(turns):
        content = ([{"type": "image", "image": str(image)}] if k == 0 else []) + [{"type": "text", "text": question}]
        messages.append({"role": "user", "content": content})
        if answer is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return Sample(id="chat", messages=messages)


def test_chat_in_a_terminal_two_turns_reset_quit(tiny_model, engine_for, images, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    model = tiny_model("qwen2_vl")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "NO_COLOR": "1"}
    child = pexpect.spawn(
        str(VLMKIT),
        ["chat", "--model", str(model), "--image", str(images[0]), "--max-new-tokens", "8"],
        env=env,
        encoding="utf-8",
        timeout=180,
    )
    try:
        child.expect_exact("you> ")
        child.sendline("What is in the picture?")
        child.expect_exact("assistant> ")
        child.expect_exact("\r\nyou> ")
        first = child.before.replace("\r\n", "\n").strip()  # the terminal turns \n into \r\n
        child.sendline("And which colour is it?")
        child.expect_exact("assistant> ")
        child.expect_exact("\r\nyou> ")
        second = child.before.replace("\r\n", "\n").strip()

        saved = tmp_path / "talk.jsonl"
        child.sendline(f"/save {saved}")
        child.expect_exact("saved the conversation")
        child.expect_exact("you> ")
        child.sendline(f"/image {tmp_path / 'nope.png'}")
        child.expect_exact("file not found")
        child.expect_exact("you> ")
        child.sendline("/reset")
        child.expect_exact("conversation cleared")
        child.expect_exact("you> ")
        child.sendline(f"/save {tmp_path / 'empty.json'}")
        child.expect_exact("nothing to save yet")
        child.expect_exact("you> ")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0

    # What streamed into the terminal is what the engine answers for the same conversation, history included.
    engine = engine_for("qwen2_vl")
    expected_first = engine.generate([conversation(images[0], ("What is in the picture?", None))], PARAMS)[0].text
    expected_second = engine.generate(
        [conversation(images[0], ("What is in the picture?", expected_first), ("And which colour is it?", None))],
        PARAMS,
    )[0].text
    assert (first, second) == (expected_first, expected_second)

    assert len(saved.read_text().splitlines()) == 1  # one samples.jsonl line
    record = parse_sample(json.loads(saved.read_text()))
    assert [m.role for m in record.messages] == ["user", "assistant", "user", "assistant"]
    assert record.media("image") == [str(images[0])]
    assert record.messages[1].text() == first and record.meta["model"] == str(model)
    assert not (tmp_path / "empty.json").exists()


def test_session_keeps_history_and_attaches_media_to_the_next_turn(engine_for, images, tmp_path):
    engine = engine_for("qwen2_vl")
    session = ChatSession(engine, PARAMS)
    session.attach_image(str(images[1]))
    first = "".join(session.ask("What is this?"))
    assert session.pending == []
    second_reply = session.ask("Say it again.")
    second = "".join(second_reply)
    assert second_reply.text == second
    assert [m["role"] for m in session.messages] == ["user", "assistant"] * 2
    assert session.messages[0]["content"][0] == {"type": "image", "image": str(images[1])}
    assert session.messages[1]["content"][0]["text"] == first
    assert len(session.messages[2]["content"]) == 1  # the image went with the first question only

    path = session.save(tmp_path / "chat.jsonl")
    assert parse_sample(json.loads(path.read_text())).messages[3].text() == second
    session.reset()
    assert session.messages == [] and session.pending == []
    with pytest.raises(VlmkitError, match="nothing to save"):
        session.to_record()


def test_session_refuses_bad_media_and_empty_messages(engine_for, video, tmp_path):
    session = ChatSession(engine_for("llava"), PARAMS)
    with pytest.raises(VlmkitError, match="file not found"):
        session.attach_image(str(tmp_path / "nope.png"))
    with pytest.raises(VlmkitError, match="llava models do not take video"):
        session.attach_video(str(video))
    with pytest.raises(VlmkitError, match="empty message"):
        session.ask("   ")
    assert session.messages == [] and session.pending == []


def test_a_reply_stopped_early_keeps_what_was_shown(engine_for, images):
    session = ChatSession(engine_for("qwen2_vl"), GenerationParams(max_new_tokens=100))
    reply = session.ask("Tell me a long story.")
    shown = next(reply)
    reply.close()
    assert session.messages[-1] == {"role": "assistant", "content": [{"type": "text", "text": shown}]}


def test_saved_conversations_are_samples_jsonl_lines_that_data_import_reads_back(engine_for, images, tmp_path):
    from vlmkit.cli import main
    from vlmkit.data.schema import read_samples

    session = ChatSession(engine_for("qwen2_vl"), PARAMS, system="Be brief.")
    session.attach_image(str(images[0]))
    first = "".join(session.ask("What is this?"))
    saved = session.save(tmp_path / "chats.jsonl")
    "".join(session.ask("And now?"))
    session.save(saved)  # a second /save adds a line: a file of saved chats is a dataset source
    lines = saved.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["messages"] for line in lines)

    try:
        # the chat attached files from elsewhere: the import's outside-path policy wants their folder named
        media_root = str(Path(images[0]).parent)
        main(["data", "import", str(saved), "--media-root", media_root, "--out", str(tmp_path / "imported")])
    except SystemExit as done:
        assert done.code in (0, None)
    samples = read_samples(tmp_path / "imported")
    assert [len(s.messages) for s in samples] == [3, 5]  # system + the turns
    assert samples[0].messages[2].text() == first
    stored = samples[0].media("image")
    imported_media = tmp_path / "imported" / "media"
    assert len(stored) == 1 and Path(stored[0]).is_relative_to(imported_media) and Path(stored[0]).is_file()


def test_save_does_not_create_missing_folders(engine_for, tmp_path):
    session = ChatSession(engine_for("qwen2_vl"), PARAMS)
    "".join(session.ask("Hello?"))
    with pytest.raises(VlmkitError, match="folder .*typo does not exist"):
        session.save(tmp_path / "typo" / "chat.jsonl")
    assert not (tmp_path / "typo").exists()
    with pytest.raises(VlmkitError, match="it is a folder"):
        session.save(tmp_path)


class ScriptedEngine:
    """An engine whose answer is fixed text: what a model may emit, control characters included."""

    def __init__(self, family, answer: str):
        self.family, self.answer, self.model_id, self.processor = family, answer, "scripted", None

    def stream(self, sample, params=None, *, media=None):
        from vlmkit.infer import GenerationResult, TextStream

        def pieces():
            yield from (self.answer[: len(self.answer) // 2], self.answer[len(self.answer) // 2 :])
            return GenerationResult(text=self.answer)

        return TextStream(pieces())

    def info(self):
        return {"model": self.model_id}


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_control_characters_in_an_answer_are_shown_not_obeyed_on_a_terminal(engine_for, monkeypatch, tty):
    from vlmkit.infer.chat import chat_loop

    answer = "one\rtwo \x1b[2J\x1b]0;pwned\x07 \u202egnp.exe\tok\nnext line"
    screen = FakeTerminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stdout", screen)
    lines = iter(["Say it.", "/quit"])
    chat_loop(ChatSession(ScriptedEngine(engine_for("qwen2_vl").family, answer), PARAMS), read=lambda _: next(lines))
    shown = screen.getvalue().split("assistant> ", 1)[1]
    if tty:
        assert shown.startswith("one\\rtwo \\x1b[2J\\x1b]0;pwned\\a \\u202egnp.exe\tok\nnext line")
        assert not any(c in shown for c in "\r\x1b\x07\u202e")
    else:  # redirected to a file: the answer byte-exact
        assert shown.startswith(answer)


def test_the_chat_prompt_goes_to_stdout_not_stderr(tiny_model, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    errors = tmp_path / "stderr.txt"
    command = f"{VLMKIT} chat --model {tiny_model('qwen2_vl')} --max-new-tokens 4 2> {errors}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "NO_COLOR": "1"}
    child = pexpect.spawn("/bin/sh", ["-c", command], env=env, encoding="utf-8", timeout=180)
    try:
        child.expect_exact("you> ")  # on the terminal while stderr goes to a file
        child.sendline("Hi")
        child.expect_exact("assistant> ")
        child.expect_exact("you> ")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert "you> " not in errors.read_text()
