"""SQuAD exact match and token F1, with the normalisation of the official evaluation scripts.

Rules of the official SQuAD v1.1 script (``evaluate-v1.1.py``): an answer is normalised by
lower-casing, removing every ASCII punctuation character, removing the articles *a*, *an*,
*the* as whole words, and collapsing whitespace; EM is equality of normalised strings, F1 is the
bag-of-tokens F1 of the normalised strings; each question scores the maximum over its gold
answers. Unanswerable questions (SQuAD 2.0) follow the v2.0 script: the gold answer is the empty
string, and F1 is 1 when prediction and gold are both empty, else 0.

Scores come back as per-example rows (see :mod:`xstilts.metrics.stats`): ``(score, 1, 1)`` with
score in [0, 1], so the corpus score is the mean ×100 — what the official script prints — and
can be bootstrapped by resampling questions.

MLQA's official script (``mlqa_evaluation_v1.py``) normalises by the answer's language instead:
punctuation is every Unicode character of category P* (plus ASCII punctuation), the removed
articles are that language's (none for hi and zh; Arabic strips the prefix *al*), and Chinese is
split into single CJK characters (mixed segmentation) so F1 is character-level there. Pass
``language`` to get those rules; ``None`` keeps SQuAD's.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import cache

import numpy as np

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")

# MLQA: articles per answer language (None = the language has none); zh is segmented per character
_MLQA_ARTICLES: dict[str, re.Pattern[str] | None] = {
    "en": _ARTICLES,
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "ar": re.compile(r"\sال^|ال"),
    "hi": None,
    "zh": None,
}
_CJK = re.compile(r"[\u4e00-\u9fa5]")


@cache
def _unicode_punct() -> frozenset[str]:
    """Every code point of Unicode category P*, plus ASCII punctuation (MLQA's set)."""
    return frozenset(chr(i) for i in range(sys.maxunicode + 1)
                     if unicodedata.category(chr(i)).startswith("P")) | _PUNCT


def _mixed_segmentation(text: str, punct: frozenset[str]) -> list[str]:
    """MLQA's Chinese tokens: each CJK character or punctuation mark alone, other runs split on spaces."""
    tokens: list[str] = []
    run = ""
    for ch in text:
        if _CJK.match(ch) or ch in punct:
            tokens.extend(run.split())
            run = ""
            tokens.append(ch)
        else:
            run += ch
    tokens.extend(run.split())
    return tokens


def normalize_answer(text: str, language: str | None = None) -> str:
    """Lower-case, drop punctuation, drop articles, collapse whitespace (official order).

    ``language`` selects MLQA's rules for that answer language; ``None`` is SQuAD v1.1.
    """
    text = text.lower()
    if language is None:
        text = "".join(ch for ch in text if ch not in _PUNCT)
        return " ".join(_ARTICLES.sub(" ", text).split())
    if language not in _MLQA_ARTICLES:
        raise ValueError(f"MLQA normalisation has no rules for language {language!r} "
                         f"(known: {', '.join(sorted(_MLQA_ARTICLES))})")
    punct = _unicode_punct()
    text = "".join(ch for ch in text if ch not in punct)
    articles = _MLQA_ARTICLES[language]
    if articles is not None:
        text = articles.sub(" ", text)
    tokens = _mixed_segmentation(text, punct) if language == "zh" else text.split()
    return " ".join(t for t in tokens if t.strip())


def exact_match(prediction: str, gold: str, language: str | None = None) -> float:
    return float(normalize_answer(prediction, language) == normalize_answer(gold, language))


def token_f1(prediction: str, gold: str, language: str | None = None) -> float:
    """Bag-of-tokens F1 of the normalised strings (v1.1 rule: no shared token → 0)."""
    pred_tokens = normalize_answer(prediction, language).split()
    gold_tokens = normalize_answer(gold, language).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _unanswerable_f1(prediction: str) -> float:
    """v2.0 rule against an empty gold answer: right only if the prediction is empty too."""
    return float(not normalize_answer(prediction).split())


def question_scores(prediction: str, golds: Sequence[str], language: str | None = None) -> tuple[float, float]:
    """(EM, F1) of one prediction: max over gold answers; no gold answers = unanswerable."""
    if not golds:
        em = float(normalize_answer(prediction) == "")
        return em, _unanswerable_f1(prediction)
    return (max(exact_match(prediction, g, language) for g in golds),
            max(token_f1(prediction, g, language) for g in golds))


def squad_stats(golds: Sequence[Sequence[str]], predictions: Sequence[str],
                languages: Sequence[str | None] | None = None) -> dict[str, np.ndarray]:
    """Per-question rows for ``exact_match`` and ``squad_f1``: ``(score, 1, 1)``.

    ``languages`` (one per question, ``None`` = SQuAD rules) selects MLQA's normalisation.
    """
    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} questions but {len(predictions)} predictions")
    langs = languages if languages is not None else [None] * len(golds)
    if len(langs) != len(golds):
        raise ValueError(f"{len(golds)} questions but {len(langs)} answer languages")
    scores = np.array([question_scores(p, g, lang) for p, g, lang in zip(predictions, golds, langs, strict=True)],
                      dtype=np.float64).reshape(-1, 2)
    ones = np.ones(len(scores))
    return {
        "exact_match": np.stack([scores[:, 0], ones, ones], axis=1).reshape(-1, 3),
        "squad_f1": np.stack([scores[:, 1], ones, ones], axis=1).reshape(-1, 3),
    }
