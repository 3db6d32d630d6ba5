from __future__ import annotations

from pathlib import Path

import numpy as np

from xstilts.heads import get_head_kind
from xstilts.models.loading import load_tokenizer
from xstilts.tasks import get_task
from xstilts.tasks.base import TaggingExample


def test_first_subtoken_labels_and_truncated_words_scored(default_model: Path) -> None:
    tok = load_tokenizer(str(default_model))
    task = get_task("panx")
    kind = get_head_kind("tagging")
    words = ("Schwarzwaldhochstraße", "liegt", "in", "Baden-Württemberg", "und", "Deutschland")
    tags = ("B-LOC", "O", "O", "B-LOC", "O", "B-LOC")
    (feat,) = kind.encode(task, [TaggingExample(words, tags)], tok, max_length=8)
    labelled = [i for i, lab in enumerate(feat["labels"]) if lab != -100]
    # every word that fits has exactly one labelled (first) sub-token, in order
    fitted = [p for p in feat["first_pos"] if p >= 0]
    assert labelled == fitted and fitted == sorted(fitted)
    assert len(feat["input_ids"]) == 8
    assert feat["first_pos"][-1] == -1  # cut off by max_length
    # a model that predicts the gold tag everywhere still loses the truncated entity: it is scored, as O
    logits = np.full((8, len(task.labels)), -5.0)
    for w, p in enumerate(feat["first_pos"]):
        if p >= 0:
            logits[p, task.labels.index(tags[w])] = 5.0
    ev = kind.evaluate(task, [TaggingExample(words, tags)], [feat], [logits])
    hits, n_pred, n_gold = ev.stats["f1"][0]
    assert n_gold == 3 and n_pred == hits < 3


def test_classification_pair_encoding(default_model: Path) -> None:
    from xstilts.tasks.base import ClassificationExample

    tok = load_tokenizer(str(default_model))
    task = get_task("xnli")
    kind = get_head_kind("classification")
    ex = [ClassificationExample("Ein Mann schläft.", "Niemand schläft.", "contradiction")]
    (feat,) = kind.encode(task, ex, tok, max_length=64)
    assert feat["input_ids"][0] == tok.cls_token_id and feat["input_ids"][-1] == tok.sep_token_id
    assert feat["input_ids"].count(tok.sep_token_id) >= 2  # a pair, not one sentence
    assert feat["label"] == task.labels.index("contradiction")
