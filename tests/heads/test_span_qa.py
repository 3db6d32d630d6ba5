"""Span QA head: windows over long contexts, gold-span labels, n-best search, and prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from xstilts.errors import ConfigError
from xstilts.heads import get_head_kind
from xstilts.heads.span_qa import answer_tokens, best_spans, nbest_answers, predict_answers
from xstilts.tasks import get_task
from xstilts.tasks.base import SpanQAExample

CONTEXT = (
    "Super Bowl 50 was an American football game to determine the champion of the National "
    "Football League for the 2015 season. The American Football Conference champion Denver Broncos "
    "defeated the National Football Conference champion Carolina Panthers to earn their third Super "
    "Bowl title. The game was played on February 7, 2016, at Levi's Stadium in the San Francisco Bay "
    "Area at Santa Clara, California."
)


def _example(qid: str, question: str, answer: str | None) -> SpanQAExample:
    answers = () if answer is None else ((answer, CONTEXT.index(answer)),)
    return SpanQAExample(qid, question, CONTEXT, answers)


EXAMPLES = [
    _example("q1", "Which team won Super Bowl 50?", "Denver Broncos"),
    _example("q2", "Where was the game played?", "Santa Clara, California"),
    _example("q3", "Which NFL team represented the NFC at Super Bowl 50 in the end?", "Carolina Panthers"),
    _example("q4", "Who sang the anthem?", None),
]


@pytest.fixture(scope="module")
def tokenizer(default_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model)


def test_windows_cover_the_context_and_gold_spans_decode_to_the_answer(tokenizer: Any) -> None:
    task = get_task("squad")
    feats = get_head_kind("span_qa").encode(task, EXAMPLES, tokenizer, max_length=32)
    for i, ex in enumerate(EXAMPLES):
        windows = [f for f in feats if f["example_index"] == i]
        assert len(windows) > 3  # a long context at max_length 32 needs several windows
        covered = set()
        for f in windows:
            assert f["length"] == len(f["input_ids"]) <= 32
            spans = [o for o in f["offsets"] if o is not None]
            covered.update(range(spans[0][0], spans[-1][1]))
            if f["start"] == 0:
                assert f["end"] == 0
                if ex.answers:  # CLS only when the answer is not wholly inside the window
                    text, char = ex.answers[0]
                    assert not (spans[0][0] <= char and char + len(text) <= spans[-1][1])
                continue
            text, _ = ex.answers[0]
            decoded = ex.context[f["offsets"][f["start"]][0] : f["offsets"][f["end"]][1]]
            assert decoded == text
        # windows overlap (stride) and together cover every non-space character of the context
        assert all(c in covered for c, ch in enumerate(CONTEXT) if not ch.isspace())
        if ex.answers:
            assert any(f["start"] > 0 for f in windows)
        else:
            assert all(f["start"] == f["end"] == 0 for f in windows)


def test_long_question_is_cut_so_windows_keep_context(tokenizer: Any) -> None:
    long_q = _example("q5", " ".join(["Which team won the game?"] * 20), "Denver Broncos")
    task = get_task("squad", {"max_query_length": 8})
    feats = get_head_kind("span_qa").encode(task, [long_q], tokenizer, max_length=32)
    context_tokens = [sum(o is not None for o in f["offsets"]) for f in feats]
    assert min(context_tokens[:-1]) == 32 - 8 - 4  # question cut to 8 tokens, 4 special tokens
    assert any(f["start"] > 0 for f in feats)
    with pytest.raises(ConfigError, match="no room"):
        get_head_kind("span_qa").encode(get_task("squad", {"max_query_length": 30}), [long_q], tokenizer, 32)


def test_answer_tokens_inside_and_outside() -> None:
    offsets = [None, (0, 5), (6, 10), (11, 13), None]
    assert answer_tokens(offsets, 6, 13) == (2, 3)
    assert answer_tokens(offsets, 7, 9) == (2, 2)  # inside one token
    assert answer_tokens(offsets, 12, 20) == (0, 0)  # runs past the window
    assert answer_tokens([None, None], 0, 3) == (0, 0)


def test_best_spans_respects_context_order_and_length() -> None:
    offsets = [None, None, (0, 3), (4, 7), (8, 11), (12, 15), None]
    start = np.array([9.0, 0, 1.0, 5.0, 0.5, 0.0, 8.0])
    end = np.array([9.0, 0, 0.0, 1.0, 4.0, 3.0, 8.0])
    spans = best_spans(start, end, offsets, n_best=3, max_answer_length=30)
    assert spans == [(9.0, 3, 4), (8.0, 3, 5), (6.0, 3, 3)]  # CLS (0) and position 6 never chosen
    short = best_spans(start, end, offsets, n_best=20, max_answer_length=1)
    assert all(s == e for _, s, e in short)
    assert short[0] == (6.0, 3, 3)
    # an end before every start is no span
    assert best_spans(
        np.array([0, 0, 5.0, 0]), np.array([0, 0, 0, 0.0]), [None, None, (0, 1), None], n_best=5
    ) == [(5.0, 2, 2)]


def _oracle_outputs(feats: list[dict], null_for: set[int] = frozenset()) -> list[np.ndarray]:
    outs = []
    for f in feats:
        out = np.full((f["length"], 2), -5.0)
        if f["example_index"] in null_for or f["start"] == 0:
            out[0] = 2.0
        else:
            out[f["start"], 0] = out[f["end"], 1] = 6.0
        outs.append(out)
    return outs


def test_prediction_over_windows_and_null_answers(tokenizer: Any) -> None:
    kind = get_head_kind("span_qa")
    task = get_task("squad")
    feats = kind.encode(task, EXAMPLES, tokenizer, max_length=48)
    outs = _oracle_outputs(feats)
    preds = predict_answers(EXAMPLES, feats, outs)
    assert preds[:3] == ["Denver Broncos", "Santa Clara, California", "Carolina Panthers"]
    assert preds[3] != ""  # v1.1 never answers "nothing"
    with_null = predict_answers(EXAMPLES, feats, outs, allow_null=True)
    assert with_null == ["Denver Broncos", "Santa Clara, California", "Carolina Panthers", ""]
    nbest = nbest_answers(EXAMPLES, feats, outs, n_best=4)
    assert all(len(r) == 4 and [s for _, s in r] == sorted((s for _, s in r), reverse=True) for r in nbest)
    assert len({t for t, _ in nbest[0]}) == 4  # distinct texts

    ev = kind.evaluate(get_task("squad_v2"), EXAMPLES, feats, outs)
    assert list(ev.stats) == ["squad_f1", "exact_match"]
    assert ev.scores == {"squad_f1": 100.0, "exact_match": 100.0}
    v1 = kind.evaluate(task, EXAMPLES, feats, outs)
    assert v1.scores["exact_match"] == pytest.approx(75.0)  # the unanswerable one is missed


def test_module_and_loss(tokenizer: Any, tiny_model: Path) -> None:
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tiny_model)
    kind = get_head_kind("span_qa")
    task = get_task("squad")
    feats = kind.encode(task, EXAMPLES, tokenizer, max_length=32)[:6]
    batch = kind.collate(feats, tokenizer.pad_token_id)
    logits = kind.build(task, encoder.config.hidden_size, 0.1)(encoder, batch)
    assert logits.shape == (*batch["input_ids"].shape, 2)
    loss = kind.loss(logits, batch)
    assert torch.isfinite(loss) and loss.item() > 0
    outs = kind.outputs(logits.detach(), batch)
    assert [o.shape for o in outs] == [(f["length"], 2) for f in feats]
