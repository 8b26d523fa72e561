"""BLEU / ROUGE-L / CIDEr-D / METEOR go through pycocoevalcap exactly as COCOEvalCap drives it: our results
must equal pycocoevalcap's own PTBTokenizer + scorers on the same data. Also the tokenizers and the
no-java behaviour."""

import logging
import shutil

import pytest

from vlmkit.errors import VlmkitError
from vlmkit.metrics import bleu, cider, meteor, rouge_l
from vlmkit.metrics.tokenizers import ptb_tokenize, simple_tokenize, tokenize

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="java is not installed")

PREDICTIONS = [
    "A man is riding a horse on the beach.",
    "Two dogs play with a red ball in the park!",
    "A woman slices tomatoes (fresh ones) in the kitchen.",
    "",
    "Một người đàn ông đang đi xe đạp.",
]
REFERENCES = [
    ["A man rides a horse along the beach.", "A person on a horse near the sea.", "Someone riding a horse."],
    ["Dogs are playing in a park.", "Two dogs chase a ball.", "A pair of dogs play fetch on the grass."],
    ["A woman is cutting tomatoes.", "Someone slices vegetables in a kitchen."],
    ["A cat sleeps on a sofa."],
    ["Một người đàn ông đi xe đạp trên đường.", "Người đàn ông đạp xe."],
]

# What the Stanford PTB tokenizer (pycocoevalcap's jar, -preserveLines -lowerCase, punctuation removed)
# printed for these inputs; the java-free tokenizer must reproduce them.
PTB_OBSERVED = {
    "Don't do it, it's John's car!": "do n't do it it 's john 's car",
    "I can't believe he won't go; we'd've gone.": "i ca n't believe he wo n't go we 'd 've gone",
    "The total is $1,234.56 (approx).": "the total is $ 1,234.56 -lrb- approx -rrb-",
    '"Hello," she said -- and left...': "hello she said and left",
    "U.S. troops in the U.K. at 3:30 p.m.": "u.s. troops in the u.k. at 3:30 p.m.",
    "50% of 3/4 is 37.5%": "50 % of 3/4 is 37.5 %",
    "A cat (black) sits on a mat [left] {x}": "a cat -lrb- black -rrb- sits on a mat -lsb- left -rsb- -lcb- x -rcb-",
    "Một người đàn ông đang đi xe đạp.": "một người đàn ông đang đi xe đạp",
    "can not cannot gonna wanna gimme": "can not can not gon na wan na gim me",
    "don’t “quoted” ‘single’ it’s": "do n't quoted single it 's",
    "#hashtag @user 100km 5pm 2nd": "#hashtag @user 100km 5pm 2nd",
    "The co-op's cost was 4.5$ or €5": "the co-op 's cost was 4.5 $ or $ 5",
    "Tab\tseparated\twords": "tab separated words",
    "end with question?": "end with question",
    "": "",
}


def coco_reference(scorer, predictions, references):
    """The COCOEvalCap path: pycocoevalcap's PTBTokenizer on both sides, then the scorer."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
    return scorer.compute_score(gts, res)


@needs_java
def test_bleu_rouge_cider_equal_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    score, scores = bleu(PREDICTIONS, REFERENCES, tokenizer="ptb")
    ref_score, ref_scores = coco_reference(Bleu(4), PREDICTIONS, REFERENCES)
    assert score == pytest.approx(ref_score, abs=1e-12)
    assert scores == [pytest.approx(list(s), abs=1e-12) for s in ref_scores]
    for ours, scorer in ((rouge_l, Rouge()), (cider, Cider())):
        score, scores = ours(PREDICTIONS, REFERENCES, tokenizer="ptb")
        ref_score, ref_scores = coco_reference(scorer, PREDICTIONS, REFERENCES)
        assert score == pytest.approx(float(ref_score), abs=1e-12)
        assert scores == pytest.approx(list(ref_scores), abs=1e-12)


@needs_java
def test_meteor_equals_pycocoevalcap():
    from vlmkit.metrics.caption import _meteor

    score, scores = meteor(PREDICTIONS, REFERENCES, tokenizer="ptb")
    # The same pycocoevalcap Meteor process (it takes seconds to start), fed by pycocoevalcap's tokenizer.
    ref_score, ref_scores = coco_reference(_meteor(), PREDICTIONS, REFERENCES)
    assert score == pytest.approx(ref_score, abs=1e-9)
    assert scores == pytest.approx(ref_scores, abs=1e-9)
    assert 0 < score < 1 and scores[3] == 0.0


@needs_java
def test_pix2struct_published_cider():
    # pix2struct/metrics_test.py: CIDEr 128.6 (x100) on its eight short answers, PTB-tokenized.
    predictions = ["abc", "abc", "Abc", "100%", "100%", "100%", "100%", "Don't"]
    targets = [["abc"], ["Abc"], ["abc"], ["96%"], ["94%"], ["0.96"], ["0.94"], ["Won't"]]
    assert 100 * cider(predictions, targets)[0] == pytest.approx(128.6, abs=0.05)


@needs_java
def test_ptb_tokenize_equals_pycocoevalcap_tokenizer():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    texts = list(PTB_OBSERVED) + ["last one\n", "   ", "ĐÂY LÀ CHỮ HOA"]
    theirs = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    assert ptb_tokenize(texts) == [theirs[i][0] for i in range(len(texts))]
    for text, expected in PTB_OBSERVED.items():
        assert ptb_tokenize([text]) == [expected]


@needs_java
def test_ptb_keeps_one_line_per_caption_with_carriage_returns():
    # pycocoevalcap only replaces "\n"; a "\r" would split the caption and shift every later one.
    assert ptb_tokenize(["a\rb", "c\u2028d", "e"]) == ["a b", "c d", "e"]


@pytest.mark.parametrize("text, expected", list(PTB_OBSERVED.items()))
def test_simple_tokenizer_reproduces_ptb(text, expected):
    assert simple_tokenize(text) == expected


def test_no_java_fallback_and_meteor_error(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no java anywhere
    with caplog.at_level(logging.WARNING):
        assert tokenize(["A man, riding."], "auto") == ["a man riding"]
    assert "java not found" in caplog.text
    with pytest.raises(VlmkitError, match="METEOR needs java"):
        meteor(["a man"], [["a man"]])
    with pytest.raises(VlmkitError, match="needs java"):
        ptb_tokenize(["a"])
    score, _ = bleu(["a man rides a horse"], [["a man rides a horse"]], tokenizer="auto")
    assert score[0] == pytest.approx(1.0)


def test_corpus_argument_checks():
    with pytest.raises(ValueError, match="2 predictions but 1"):
        rouge_l(["a", "b"], [["a"]], tokenizer="none")
    with pytest.raises(ValueError, match="non-empty list"):
        rouge_l(["a"], [[]], tokenizer="none")
    with pytest.raises(TypeError):
        cider([None], [["a"]], tokenizer="none")
    with pytest.raises(VlmkitError, match="unknown tokenizer"):
        bleu(["a"], [["a"]], tokenizer="spacy")


def test_pretokenized_input_skips_tokenization():
    # With tokenizer="none" the strings are scored as given: punctuation stays a token.
    score, per_sample = rouge_l(["a man ."], [["a man"]], tokenizer="none")
    # LCS 2, precision 2/3, recall 1, beta 1.2: (1 + 1.44) * 2/3 / (1 + 1.44 * 2/3)
    assert score == pytest.approx((2.44 * 2 / 3) / (1 + 1.44 * 2 / 3))
    assert per_sample == [score]
