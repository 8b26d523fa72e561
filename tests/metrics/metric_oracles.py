"""Test oracles: the published evaluation algorithms written out step by step in their original structure
(answer records with ids, in-place mutation, the original loops and regex calls), for differential tests.

They follow GT-Vision-Lab/VQA vqaEval.py (master), the DocVQA/InfographicVQA RRC ANLS script and
pix2struct's relaxed_correctness; vlmkit's own implementations are written differently (precomputed match
counts, one-pass normalisation), so agreement on random inputs is evidence, not a tautology.
"""

import re

from vlmkit.metrics.vqa import ARTICLES, CONTRACTIONS, NUMBER_WORDS, PUNCTUATION

PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")


def _punct(in_text):
    out_text = in_text
    for p in PUNCTUATION:
        if (p + " " in in_text or " " + p in in_text) or (re.search(COMMA_STRIP, in_text) != None):  # noqa: E711
            out_text = out_text.replace(p, "")
        else:
            out_text = out_text.replace(p, " ")
    return PERIOD_STRIP.sub("", out_text, re.UNICODE)


def _digit_article(in_text):
    manual_map = dict(NUMBER_WORDS)
    out = []
    for word in in_text.lower().split():
        word = manual_map.setdefault(word, word)
        if word not in ARTICLES:
            out.append(word)
    for i, word in enumerate(out):
        if word in CONTRACTIONS:
            out[i] = CONTRACTIONS[word]
    return " ".join(out)


def vqa_official(prediction, answers):
    gts = [{"answer": a, "answer_id": i + 1} for i, a in enumerate(answers)]
    for ans in gts:
        ans["answer"] = ans["answer"].replace("\n", " ").replace("\t", " ").strip()
    res = prediction.replace("\n", " ").replace("\t", " ").strip()
    gt_answers = [ans["answer"] for ans in gts]
    if len(set(gt_answers)) > 1:
        for ans in gts:
            ans["answer"] = _punct(ans["answer"])
            ans["answer"] = _digit_article(ans["answer"])
        res = _punct(res)
        res = _digit_article(res)
    gt_acc = []
    for datum in gts:
        others = [item for item in gts if item != datum]
        matching = [item for item in others if item["answer"] == res]
        gt_acc.append(min(1, float(len(matching)) / 3))
    return float(sum(gt_acc)) / len(gt_acc)


def levenshtein(s1, s2):
    if len(s1) > len(s2):
        s1, s2 = s2, s1
    distances = range(len(s1) + 1)
    for i2, c2 in enumerate(s2):
        row = [i2 + 1]
        for i1, c1 in enumerate(s1):
            row.append(distances[i1] if c1 == c2 else 1 + min((distances[i1], distances[i1 + 1], row[-1])))
        distances = row
    return distances[-1]


def anls_official(prediction, answers, threshold=0.5):
    values = []
    for answer in answers:
        gt_answer = " ".join(answer.strip().lower().split())
        det_answer = " ".join(prediction.strip().lower().split())
        dist = levenshtein(gt_answer, det_answer)
        length = max(len(answer.upper()), len(prediction.upper()))
        values.append(0.0 if length == 0 else float(dist) / float(length))
    question_result = 1 - min(values)
    if question_result < threshold:
        question_result = 0
    return question_result


def relaxed_pix2struct(prediction, targets, max_relative_change=0.05):
    def to_float(text):
        try:
            if text.endswith("%"):
                return float(text.rstrip("%")) / 100.0
            return float(text)
        except ValueError:
            return None

    def correct(target, pred):
        p, t = to_float(pred), to_float(target)
        if p is not None and t:
            return abs(p - t) / abs(t) <= max_relative_change
        return pred.lower() == target.lower()

    return max(correct(t, prediction) for t in targets)
