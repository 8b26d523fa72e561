"""The built-in tasks. Prompts follow the published evaluations (LLaVA-1.5 / lmms-eval post-prompts)."""

from __future__ import annotations

from .spec import GenerationSettings, Task

SHORT_ANSWER = "{question}\nAnswer the question using a single word or phrase."


def _choice_task(name: str, description: str, group_by: tuple[str, ...], **kwargs: object) -> Task:
    """A multiple-choice benchmark scored as VLMEvalKit does: its prompt layout from meta.options, the raw
    answer (no post-processing) read by its rule-based option matcher."""
    return Task(
        name=name,
        description=description,
        prompt="{question}",
        metrics=kwargs.pop("metrics", ("choice_accuracy",)),  # type: ignore[arg-type]
        postprocess=(),
        prompt_style="choice",
        generation=GenerationSettings(max_new_tokens=64),
        group_by=group_by,
        **kwargs,  # type: ignore[arg-type]
    )


def _yes_no_task(name: str, description: str, suite: str) -> Task:
    return Task(
        name=name,
        description=description,
        prompt=SHORT_ANSWER,
        metrics=("yes_no_accuracy",),
        postprocess=(),
        generation=GenerationSettings(max_new_tokens=16),
        group_by=("category",),
        suite=suite,
    )


CHOICE_TASKS = [
    _choice_task(
        "mmbench",
        "MMBench: multiple choice; circular evaluation (every rotation right) and plain accuracy.",
        ("l2-category", "category"),
        suite="mmbench",
    ),
    _choice_task("ai2d", "AI2D: science diagrams, multiple choice.", ("category",)),
    _choice_task("scienceqa", "ScienceQA (image subset): multiple choice with hints.", ("category", "subject")),
    _choice_task("seedbench", "SEED-Bench (image): multiple choice over 9 dimensions.", ("category",)),
    _choice_task(
        "mmmu",
        "MMMU (validation): multi-image multiple choice; open questions scored by MMMU's rule.",
        ("category", "l2-category", "question_type"),
        metrics=("mmmu_accuracy",),
    ),
    _yes_no_task("pope", "POPE: object hallucination, yes/no; accuracy, precision, recall, F1, yes-ratio.", "pope"),
    _yes_no_task("mme", "MME: yes/no per image pair; perception and cognition totals (acc + acc+).", "mme"),
]

BUILTIN_TASKS = [
    Task(
        name="docvqa",
        description="DocVQA: document images, ANLS (threshold 0.5).",
        prompt=SHORT_ANSWER,
        metrics=("anls",),
        generation=GenerationSettings(max_new_tokens=32),
        group_by=("question_types", "question_type", "doc_type", "document_type"),
        submission_format="docvqa",
    ),
    Task(
        name="infovqa",
        description="InfographicVQA: infographics, ANLS (threshold 0.5).",
        prompt=SHORT_ANSWER,
        metrics=("anls",),
        generation=GenerationSettings(max_new_tokens=32),
        group_by=("answer_type", "evidence", "operation_reasoning", "doc_type"),  # as the importer writes them
        submission_format="docvqa",
    ),
    Task(
        name="chartqa",
        description="ChartQA: charts, relaxed accuracy (5% numeric tolerance); human vs augmented split.",
        prompt="{question}\nAnswer the question with a single word.",
        metrics=("relaxed_accuracy",),
        generation=GenerationSettings(max_new_tokens=16),
        group_by=("origin", "type"),  # human / augmented (the importer's meta.origin; `type` in other files)
    ),
    Task(
        name="vizwiz",
        description="VizWiz-VQA: photos by blind people, official VQA accuracy over 10 answers; "
        "'unanswerable' is an answer.",
        prompt="{question}\nWhen the provided information is insufficient, respond with 'Unanswerable'.\n"
        "Answer the question using a single word or phrase.",
        metrics=("vqa_accuracy",),
        postprocess=("strip", "vqa_answer_processor"),
        generation=GenerationSettings(max_new_tokens=16),
        group_by=("answer_type", "answerable"),
        submission_format="vizwiz",
    ),
    Task(
        name="textvqa",
        description="TextVQA: text in natural images, official VQA accuracy over 10 answers.",
        prompt=SHORT_ANSWER,
        metrics=("vqa_accuracy",),
        postprocess=("strip", "vqa_answer_processor"),
        generation=GenerationSettings(max_new_tokens=16),
        group_by=("answer_type", "question_type"),
        submission_format="vqa",
    ),
    Task(
        name="vitextvqa",
        description="ViTextVQA (Vietnamese scene-text VQA): exact match, token F1, BLEU, ROUGE-L.",
        prompt="{question}\nTrả lời câu hỏi bằng một từ hoặc một cụm từ ngắn.",
        metrics=("exact_match", "token_f1", "bleu", "rouge_l"),
        generation=GenerationSettings(max_new_tokens=64),
        group_by=("question_type",),
    ),
    Task(
        name="video-caption",
        description="Video captioning: BLEU-1..4, ROUGE-L, METEOR, CIDEr-D (pycocoevalcap, PTB tokenizer).",
        prompt="{question}",
        metrics=("bleu", "rouge_l", "meteor", "cider"),
        postprocess=("strip",),
        generation=GenerationSettings(max_new_tokens=128),
        failure_threshold=None,  # captions are never "right" or "wrong"; no failure categories
    ),
    *CHOICE_TASKS,
]
