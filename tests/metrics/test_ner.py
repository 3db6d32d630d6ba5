"""Entity F1 from per-sentence rows must equal seqeval's, on real PAN-X sentences.

The sentences are the first 200 of PAN-X dev in three languages, bundled in tests/fixtures/xtreme/panx.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from seqeval.metrics import f1_score, precision_score, recall_score

from xstilts.metrics.ner import entity_stats, token_accuracy_stats
from xstilts.metrics.stats import score_from_stats
from xstilts.tasks import get_task

PANX = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme" / "panx"
TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")


def _perturb(gold: list[list[str]], rate: float, rng: np.random.Generator) -> list[list[str]]:
    """Plausible model errors: random tag swaps, including invalid I- starts seqeval must handle."""
    return [[TAGS[rng.integers(len(TAGS))] if rng.random() < rate else t for t in sent] for sent in gold]


@pytest.mark.parametrize("lang", ["de", "zh", "sw"])
@pytest.mark.parametrize("rate", [0.0, 0.05, 0.3])
def test_matches_seqeval_on_real_panx(lang: str, rate: float) -> None:
    gold = [list(ex.tags) for ex in get_task("panx", {"dir": str(PANX)}).at(PANX).load("eval", lang)]
    pred = _perturb(gold, rate, np.random.default_rng(7))
    stats = entity_stats(gold, pred)
    hits, n_pred, n_gold = stats.sum(axis=0)
    assert score_from_stats("f1", stats) == pytest.approx(100 * f1_score(gold, pred), abs=1e-9)
    assert 100 * hits / n_pred == pytest.approx(100 * precision_score(gold, pred), abs=1e-9)
    assert 100 * hits / n_gold == pytest.approx(100 * recall_score(gold, pred), abs=1e-9)


def test_hand_computed_case() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["I-ORG"]]  # a lone I- starts an entity (conlleval rule)
    stats = entity_stats(gold, pred)
    assert stats.tolist() == [[1, 2, 2], [1, 1, 1]]
    assert score_from_stats("f1", stats) == pytest.approx(100 * 2 * 2 / (3 + 3))


def test_token_accuracy() -> None:
    stats = token_accuracy_stats([["NOUN", "VERB"], ["DET"]], [["NOUN", "NOUN"], ["DET"]])
    assert score_from_stats("token_accuracy", stats) == pytest.approx(200 / 3)


UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
        "PUNCT", "SCONJ", "SYM", "VERB", "X")


def test_pos_runs_crossing_sentences_match_seqeval() -> None:
    """seqeval reads X like O (type '_'): a run of X ending one sentence continues into the next."""
    gold = [["NOUN", "X"], ["X", "VERB"], ["SYM", "SCONJ", "X"], ["NOUN"]]
    pred = [["NOUN", "X"], ["X", "VERB"], ["SYM", "CCONJ", "X"], ["X"]]
    stats = entity_stats(gold, pred)
    assert stats.sum(axis=0)[2] == 6  # per-sentence extraction would find 5: NOUN, X, VERB, SYM, SCONJ
    assert score_from_stats("f1", stats) == pytest.approx(100 * f1_score(gold, pred), abs=1e-9)


@pytest.mark.parametrize("lang", ["de", "ja", "ar"])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.4])
def test_pos_f1_matches_seqeval_as_xtreme_scores_udpos(shared_data: Path, lang: str, rate: float) -> None:
    """XTREME's evaluate.py scores UD-POS with seqeval's f1_score on the tag sequences."""
    gold = [list(ex.tags) for ex in get_task("udpos", data_dir=shared_data).load("eval", lang, limit=300)]
    rng = np.random.default_rng(11)
    # errors biased to X so that runs of X meet at sentence boundaries
    pred = [[("X" if rng.random() < 0.5 else UPOS[rng.integers(len(UPOS))]) if rng.random() < rate else t
             for t in sent] for sent in gold]
    stats = entity_stats(gold, pred)
    hits, n_pred, n_gold = stats.sum(axis=0)
    assert score_from_stats("f1", stats) == pytest.approx(100 * f1_score(gold, pred), abs=1e-9)
    assert 100 * hits / n_pred == pytest.approx(100 * precision_score(gold, pred), abs=1e-9)
    assert 100 * hits / n_gold == pytest.approx(100 * recall_score(gold, pred), abs=1e-9)
