"""SQuAD EM/F1 against cases worked out by hand from the official v1.1/v2.0 script's rules."""

from __future__ import annotations

import numpy as np
import pytest

from xstilts.metrics.squad import exact_match, normalize_answer, question_scores, squad_stats, token_f1
from xstilts.metrics.stats import score_from_stats


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("The  Quick, brown fox!", "quick brown fox"),
        ("an apple a day", "apple day"),
        ("Theater anthem", "theater anthem"),  # articles only as whole words
        ("A.B.", "ab"),  # punctuation goes before articles are removed: 'ab' is no article
        ("a-an", "aan"),
        ("  Denver\tBroncos\n", "denver broncos"),
        ("Über «naïve» café", "über «naïve» café"),  # only ASCII punctuation is stripped
    ],
)
def test_normalisation_follows_the_official_order(raw: str, normal: str) -> None:
    assert normalize_answer(raw) == normal


def test_token_f1_by_hand() -> None:
    assert token_f1("the cat sat", "cat sat down") == pytest.approx(0.8)  # p=1, r=2/3
    assert token_f1("x x y", "x y") == pytest.approx(0.8)  # counts are clipped: p=2/3, r=1
    assert token_f1("Denver", "Broncos") == 0.0
    assert token_f1("", "Broncos") == 0.0
    assert exact_match("The Broncos.", "broncos") == 1.0


def test_max_over_gold_answers() -> None:
    assert question_scores("Denver Broncos", ["Broncos", "Denver Broncos"]) == (1.0, 1.0)
    em, f1 = question_scores("Denver Broncos", ["Denver", "the Broncos team"])
    assert em == 0.0
    assert f1 == pytest.approx(2 / 3)  # vs 'denver': p=1/2, r=1; vs 'broncos team': 1/2


def test_unanswerable_follows_v2_and_answerable_v1() -> None:
    assert question_scores("", []) == (1.0, 1.0)
    assert question_scores("the", []) == (1.0, 1.0)  # normalises to empty
    assert question_scores("Denver", []) == (0.0, 0.0)
    # v1.1 quirk kept on answerable questions: an all-article gold gives EM 1 but F1 0
    assert question_scores("a", ["the"]) == (1.0, 0.0)


def test_rows_give_the_official_corpus_scores() -> None:
    golds = [["Denver Broncos"], ["Santa Clara, California"], []]
    preds = ["Denver Broncos", "Santa Clara", "Levi's Stadium"]
    stats = squad_stats(golds, preds)
    assert set(stats) == {"exact_match", "squad_f1"}
    assert stats["exact_match"].shape == (3, 3)
    np.testing.assert_allclose(stats["squad_f1"][:, 0], [1.0, 0.8, 0.0])  # p=1, r=2/3 for row 2
    assert score_from_stats("exact_match", stats["exact_match"]) == pytest.approx(100 / 3)
    assert score_from_stats("squad_f1", stats["squad_f1"]) == pytest.approx(60.0)
    with pytest.raises(ValueError):
        squad_stats(golds, preds[:2])


@pytest.mark.parametrize(("raw", "language", "normal"), [
    # articles of the answer's language only
    ("Die Katze", "de", "katze"),
    ("Die Katze", None, "die katze"),
    ("The cat", "de", "the cat"),
    ("los gatos y el perro", "es", "gatos y perro"),
    # Unicode punctuation (category P*), which SQuAD's ASCII set keeps
    ("«Hallo» – Welt¿", "de", "hallo welt"),  # guillemets Pi/Pf, en dash Pd, ¿ Po
    ("«Hallo» – Welt¿", None, "«hallo» – welt¿"),
    # Arabic: the prefix ال is removed wherever it occurs
    ("الكتاب", "ar", "كتاب"),
    # Chinese: one token per CJK character, Latin runs split on spaces
    ("北京大学 Peking", "zh", "北 京 大 学 peking"),
    ("hindi नमस्ते", "hi", "hindi नमस्ते"),
])
def test_mlqa_normalisation_by_language(raw: str, language: str | None, normal: str) -> None:
    assert normalize_answer(raw, language) == normal


def test_mlqa_chinese_f1_is_per_character() -> None:
    # gold 北京大学 (4 chars), prediction 北京 (2 chars): P = 1, R = 1/2, F1 = 2/3
    assert token_f1("北京", "北京大学", "zh") == pytest.approx(2 / 3)
    # with SQuAD's rules both are single tokens and share none
    assert token_f1("北京", "北京大学") == 0.0
    assert exact_match("「北京」", "北京", "zh") == 1.0


def test_mlqa_unknown_language_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rules for language 'xx'"):
        normalize_answer("a", "xx")


def test_squad_stats_per_question_language() -> None:
    stats = squad_stats([["die Katze"], ["die Katze"]], ["Katze", "Katze"], ["de", None])
    assert stats["exact_match"][:, 0].tolist() == [1.0, 0.0]
    assert stats["squad_f1"][:, 0].tolist() == pytest.approx([1.0, 2 * 1 * 0.5 / 1.5])
