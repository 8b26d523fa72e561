"""Task registry, YAML custom tasks (errors name the key), prompts and post-processing."""

import pytest
from eval_helpers import make_sample

from vlmkit.errors import ConfigError, VlmkitError
from vlmkit.eval.tasks import get_task, list_tasks, load_task_file, task_from_dict


def test_builtin_tasks_and_their_metrics():
    assert {"docvqa", "infovqa", "chartqa", "vizwiz", "textvqa", "vitextvqa", "video-caption"} <= set(list_tasks())
    assert get_task("docvqa").metrics == ("anls",)
    assert get_task("chartqa").metrics == ("relaxed_accuracy",)
    assert get_task("vizwiz").metrics == get_task("textvqa").metrics == ("vqa_accuracy",)
    assert get_task("vitextvqa").score_keys == [
        "exact_match",
        "token_f1",
        "bleu_1",
        "bleu_2",
        "bleu_3",
        "bleu_4",
        "rouge_l",
    ]
    assert set(get_task("video-caption").metrics) == {"bleu", "rouge_l", "meteor", "cider"}
    assert get_task("docvqa").prompt.endswith("Answer the question using a single word or phrase.")


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(VlmkitError) as err:
        get_task("docvqa2")
    assert "unknown task 'docvqa2'" in str(err.value) and "chartqa" in str(err.value)


def test_build_messages_applies_the_prompt_and_keeps_the_image():
    sample = make_sample(3)
    messages = get_task("docvqa").build_messages(sample)
    assert len(messages) == 1 and messages[0]["role"] == "user"  # the assistant target is dropped
    parts = messages[0]["content"]
    assert parts[0] == {"type": "image", "image": "media/img3.png"}
    assert parts[1]["text"] == "What is the value of item 3?\nAnswer the question using a single word or phrase."


def test_vizwiz_postprocessing_normalises_like_the_submission_converter():
    task = get_task("vizwiz")
    assert task.postprocess_answer(" Unanswerable\n") == "unanswerable"
    assert task.postprocess_answer("Two dogs.") == "2 dogs"


def test_yaml_custom_task(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: receipts\n"
        "extends: docvqa\n"
        'prompt: "Receipt question: {question}\\nAnswer briefly."\n'
        "metrics: [anls, exact_match]\n"
        "postprocess: [strip, first_line, {regex: 'Answer: (.*)'}]\n"
        "generation: {max_new_tokens: 8}\n"
        "group_by: [store]\n",
        encoding="utf-8",
    )
    task = get_task(str(path))
    assert task.name == "receipts" and task.score_keys == ["anls", "exact_match"]
    assert task.generation.max_new_tokens == 8 and task.generation.greedy
    assert task.submission_format == "docvqa"  # inherited
    assert task.postprocess_answer("  Answer: 12.50\nmore text") == "12.50"
    assert task.render_prompt("Total?") == "Receipt question: Total?\nAnswer briefly."


@pytest.mark.parametrize(
    "data, key, message",
    [
        ({"name": "x", "metrics": ["anls"], "promt": "{question}"}, "promt", "unknown key"),
        ({"name": "x", "metrics": ["bleu5"]}, "metrics", "unknown metric 'bleu5'"),
        ({"name": "x", "metrics": ["anls"], "prompt": "no placeholder"}, "prompt", "must contain {question}"),
        ({"name": "x", "metrics": ["anls"], "prompt": "{question} {image}"}, "prompt", "unknown placeholder"),
        ({"name": "x", "metrics": ["anls"], "generation": {"max_new_tokens": 0}}, "generation.max_new_tokens", ""),
        ({"name": "x", "metrics": ["anls"], "postprocess": ["shout"]}, "postprocess", "unknown post-processing"),
        ({"name": "x", "metrics": ["anls"], "postprocess": [{"regex": "("}]}, "postprocess", "does not compile"),
        ({"name": "x"}, "metrics", "required"),
        ({"name": "x", "extends": "nope"}, "extends", "unknown task 'nope'"),
        ({"metrics": ["anls"]}, "name", ""),
    ],
)
def test_yaml_errors_name_the_key(data, key, message):
    with pytest.raises(ConfigError) as err:
        task_from_dict(data, source="bad.yaml")
    assert f"key '{key}" in str(err.value) and message in str(err.value) and "bad.yaml" in str(err.value)


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_task_file(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_task_file(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_task_file(tmp_path / "list.yaml")


def test_similarity_needs_a_model_path():
    with pytest.raises(ConfigError, match="metric_options.similarity.model"):
        task_from_dict({"name": "s", "metrics": ["similarity"]})
    task = task_from_dict({"name": "s", "metrics": ["similarity"], "metric_options": {"similarity": {"model": "/m"}}})
    assert task.metric_options["similarity"]["model"] == "/m"
