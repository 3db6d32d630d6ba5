"""SQuAD exact match and token F1, with the normalisation of the official evaluation scripts.

Rules of the official SQuAD v1.1 script (``evaluate-v1.1.py``): an answer is normalised by
lower-casing, removing every ASCII punctuation character, removing the articles *a*, *an*,
*the* as whole words, and collapsing whitespace; EM is equality of normalised strings, F1 is the
bag-of-tokens F1 of the normalised strings; each question scores the maximum over its gold
answers. Unanswerable questions (SQuAD 2.0) follow the v2.0 script: the gold answer is the empty
string, and F1 is 1 when prediction and gold are both empty, else 0.

Scores come back as per-example rows (see :mod:`xstilts.metrics.stats`): ``(score, 1, 1)`` with
score in [0, 1], so the corpus score is the mean ×100 — what the official script prints — and
can be bootstrapped by resampling questions. MLQA's language-specific normalisation is not
here; XTREME scores MLQA with this SQuAD normalisation too.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, drop articles, collapse whitespace (official order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 of the normalised strings (v1.1 rule: no shared token → 0)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
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


def question_scores(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """(EM, F1) of one prediction: max over gold answers; no gold answers = unanswerable."""
    if not golds:
        em = float(normalize_answer(prediction) == "")
        return em, _unanswerable_f1(prediction)
    return max(exact_match(prediction, g) for g in golds), max(token_f1(prediction, g) for g in golds)


def squad_stats(golds: Sequence[Sequence[str]], predictions: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-question rows for ``exact_match`` and ``squad_f1``: ``(score, 1, 1)``."""
    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} questions but {len(predictions)} predictions")
    scores = np.array([question_scores(p, g) for p, g in zip(predictions, golds, strict=True)],
                      dtype=np.float64).reshape(-1, 2)
    ones = np.ones(len(scores))
    return {
        "exact_match": np.stack([scores[:, 0], ones, ones], axis=1).reshape(-1, 3),
        "squad_f1": np.stack([scores[:, 1], ones, ones], axis=1).reshape(-1, 3),
    }
