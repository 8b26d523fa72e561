"""Corpus metrics through pycocoevalcap's own scorers: BLEU-1..4, ROUGE-L, CIDEr-D and METEOR.

Each function takes a list of predictions and a list of reference lists, tokenizes both (PTB by default,
see `tokenizers.py`), and returns what the pycocoevalcap scorer's ``compute_score`` returns, as plain Python
numbers: ``(corpus_score, per_sample_scores)``; for BLEU ``([b1, b2, b3, b4], [[per-sample b1], ...])``.
pycocoevalcap's ``Cider`` is CIDEr-D (Gaussian length penalty, clipped counts, x10), as in COCO.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Sequence
from typing import Any

from ..errors import VlmkitError
from .tokenizers import java_available, tokenize


def as_reference_lists(references: Sequence[Sequence[str] | str]) -> list[Sequence[str]]:
    """A bare string stands for a one-reference list, as in the per-sample metrics."""
    return [[refs] if isinstance(refs, str) else refs for refs in references]


def _check(predictions: Sequence[str], references: Sequence[Sequence[str]], metric: str) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{metric}: {len(predictions)} predictions but {len(references)} reference lists")
    if not predictions:
        raise ValueError(f"{metric}: nothing to score (no predictions)")
    for i, (pred, refs) in enumerate(zip(predictions, references)):
        if not isinstance(pred, str):
            raise TypeError(f"{metric}: prediction {i} must be a string, got {type(pred).__name__}")
        if not isinstance(refs, (list, tuple)) or not refs:
            raise ValueError(f"{metric}: references[{i}] must be a non-empty list of strings")
        for ref in refs:
            if not isinstance(ref, str):
                raise TypeError(f"{metric}: references[{i}] holds a {type(ref).__name__}, not a string")


def prepare(
    predictions: Sequence[str], references: Sequence[Sequence[str]], tokenizer: str, metric: str
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Tokenize everything in one pass and build pycocoevalcap's (gts, res) dicts keyed 0..n-1."""
    references = as_reference_lists(references)
    _check(predictions, references, metric)
    flat = list(predictions) + [r for refs in references for r in refs]
    tokens = tokenize(flat, tokenizer)
    res = {i: [tokens[i]] for i in range(len(predictions))}
    gts, pos = {}, len(predictions)
    for i, refs in enumerate(references):
        gts[i] = tokens[pos : pos + len(refs)]
        pos += len(refs)
    return gts, res


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def bleu(
    predictions: Sequence[str], references: Sequence[Sequence[str]], *, tokenizer: str = "auto"
) -> tuple[list[float], list[list[float]]]:
    """BLEU-1..4 (pycocoevalcap Bleu(4), 'closest' reference length)."""
    from pycocoevalcap.bleu.bleu import Bleu

    gts, res = prepare(predictions, references, tokenizer, "bleu")
    with contextlib.redirect_stdout(io.StringIO()):  # the scorer prints its length ratios
        score, scores = Bleu(4).compute_score(gts, res, verbose=0)
    return _floats(score), [_floats(s) for s in scores]


def rouge_l(
    predictions: Sequence[str], references: Sequence[Sequence[str]], *, tokenizer: str = "auto"
) -> tuple[float, list[float]]:
    """ROUGE-L F-measure (beta 1.2), mean over samples (pycocoevalcap Rouge)."""
    from pycocoevalcap.rouge.rouge import Rouge

    gts, res = prepare(predictions, references, tokenizer, "rouge_l")
    score, scores = Rouge().compute_score(gts, res)
    return float(score), _floats(scores)


def cider(
    predictions: Sequence[str], references: Sequence[Sequence[str]], *, tokenizer: str = "auto"
) -> tuple[float, list[float]]:
    """CIDEr-D (pycocoevalcap Cider; document frequencies from these references)."""
    from pycocoevalcap.cider.cider import Cider

    gts, res = prepare(predictions, references, tokenizer, "cider")
    score, scores = Cider().compute_score(gts, res)
    return float(score), _floats(scores)


_meteor_lock = threading.Lock()
_meteor_scorer: Any = None


def _meteor() -> Any:
    """One METEOR java process per Python process: it takes seconds to start (paraphrase tables)."""
    global _meteor_scorer
    if _meteor_scorer is None:
        if not java_available():
            raise VlmkitError(
                "METEOR needs java on PATH (pycocoevalcap runs meteor-1.5.jar); install a JRE "
                "(e.g. apt-get install default-jre-headless) or leave 'meteor' out of the metrics"
            )
        from pycocoevalcap.meteor.meteor import Meteor

        _meteor_scorer = Meteor()
    return _meteor_scorer


def meteor(
    predictions: Sequence[str], references: Sequence[Sequence[str]], *, tokenizer: str = "auto"
) -> tuple[float, list[float]]:
    """METEOR 1.5 (pycocoevalcap Meteor: -l en -norm); needs java."""
    if not java_available():
        raise VlmkitError(
            "METEOR needs java on PATH (pycocoevalcap runs meteor-1.5.jar); install a JRE "
            "(e.g. apt-get install default-jre-headless) or leave 'meteor' out of the metrics"
        )
    gts, res = prepare(predictions, references, tokenizer, "meteor")
    # "|||" separates fields and a newline ends a request in METEOR's stdio protocol; neither may reach it.
    clean = lambda s: " ".join(s.replace("|||", " ").split())  # noqa: E731
    gts = {k: [clean(r) for r in v] for k, v in gts.items()}
    res = {k: [clean(v[0])] for k, v in res.items()}
    with _meteor_lock:
        scorer = _meteor()
        try:
            score, scores = scorer.compute_score(gts, res)
        except (ValueError, BrokenPipeError) as exc:
            global _meteor_scorer
            _meteor_scorer = None
            stderr = b""
            with contextlib.suppress(Exception):
                scorer.meteor_p.kill()
                stderr = scorer.meteor_p.stderr.read()[-2000:]
            # pycocoevalcap leaves its lock held on error; its __del__ would then hang at interpreter exit.
            if scorer.lock.locked():
                scorer.lock.release()
            raise VlmkitError(f"METEOR (java) failed: {exc}; {stderr.decode(errors='replace')}") from exc
    return float(score), _floats(scores)
