from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from xstilts.evaluation.predict import predict
from xstilts.featurize import cache_key, load_features
from xstilts.heads import get_head_kind
from xstilts.heads.tagging import IGNORE, MISSING, owners, plan_windows
from xstilts.models.loading import load_tokenizer
from xstilts.tasks import get_task
from xstilts.tasks.base import TaggingExample

LONG_WORD = "Donaudampfschifffahrtsgesellschaftskapitänsmützenabzeichenhalterung"  # 16 sub-tokens


@pytest.fixture(scope="module")
def tok(default_model: Path):
    return load_tokenizer(str(default_model))


class IdEncoder(nn.Module):
    """Stands in for an encoder: only its device matters to ``predict``."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Linear(1, 1)


class IdHead(nn.Module):
    """Known outputs: at every position the best tag is ``labels[input_id % n_labels]``."""

    def __init__(self, n_labels: int) -> None:
        super().__init__()
        self.n_labels = n_labels

    def forward(self, encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.one_hot(batch["input_ids"] % self.n_labels, self.n_labels).float()


def first_subtoken_ids(tok, words: list[str]) -> list[int]:
    """Each word's first sub-token id, from the whole sentence tokenised without any length limit."""
    enc = tok([words], is_split_into_words=True, add_special_tokens=False, verbose=False)
    first: dict[int, int] = {}
    for token_id, w in zip(enc["input_ids"][0], enc.word_ids(0), strict=True):
        first.setdefault(w, token_id)
    return [first.get(w, tok.unk_token_id) for w in range(len(words))]


def oracle_logits(task, examples, features) -> list[np.ndarray]:
    """Outputs that give the gold tag at the first sub-token of every word a feature owns."""
    outputs = []
    for f in features:
        logits = np.zeros((f["length"], len(task.labels)))
        for w, p in enumerate(f["first_pos"]):
            if p >= 0:
                logits[p, task.labels.index(examples[f["example_index"]].tags[w])] = 1.0
        outputs.append(logits)
    return outputs


@pytest.mark.parametrize("room", [1, 3, 8, 14])
def test_windows_cover_every_word_and_overlap_at_most_stride(room: int) -> None:
    rng = np.random.default_rng(room)
    for _ in range(200):
        sizes = rng.integers(1, 2 * room + 2, size=int(rng.integers(1, 40)))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
        n = int(sizes.sum())
        for stride in (0, room // 2):
            spans = plan_windows(starts, n, room, stride)
            assert spans[0][0] == 0
            assert spans[-1][1] == n or starts[-1] < spans[-1][1] < n  # or the last word is cut
            for (s, e), nxt in zip(spans, spans[1:] + [None], strict=True):
                assert s in starts and 0 < e - s <= room
                long_word_cut = not any(s < w <= e for w in starts)
                assert e in starts or e == n or long_word_cut  # cut only inside a word longer than the room
                if nxt is not None:
                    assert s < nxt[0] and (e - nxt[0] <= stride)
            owner = owners(starts, spans)
            for w, p in enumerate(starts):  # exactly one window predicts each word: the one with most context
                inside = [k for k, (s, e) in enumerate(spans) if s <= p < e]
                assert owner[w] in inside
                context = [min(p - spans[k][0], spans[k][1] - 1 - p) for k in inside]
                assert min(p - spans[owner[w]][0], spans[owner[w]][1] - 1 - p) == max(context)


def test_overlapping_words_go_to_the_window_where_they_are_most_central() -> None:
    spans = [(0, 10), (5, 15), (10, 20)]
    owner = owners(list(range(20)), spans)
    # word 7: context 2 in window 0, 2 in window 1 -> tie, the earlier window; word 8: 1 vs 3
    assert owner == [0] * 8 + [1] * 5 + [2] * 7
    assert plan_windows(list(range(20)), 20, 10, 5) == spans


def test_long_sentence_every_word_predicted_once_from_its_own_subtoken(tok) -> None:
    """A fake model whose output at each position is a function of the token there: after the
    sliding windows are merged, every word carries the tag read at its own first sub-token."""
    task = get_task("udpos")
    kind = get_head_kind("tagging")
    base = "Die Schwarzwaldhochstraße liegt in Baden-Württemberg , und das ist \u200b schön .".split(" ")
    words = (base * 12)[:-3] + [LONG_WORD, "Ende", "."]  # about 150 sub-tokens, a word longer than a window
    expected = [task.labels[i % len(task.labels)] for i in first_subtoken_ids(tok, words)]
    examples = [TaggingExample(("Kurz", "."), ("ADJ", "PUNCT")), TaggingExample(tuple(words), tuple(expected)),
                TaggingExample(("Hallo",), ("INTJ",))]
    features = kind.encode(task, examples, tok, max_length=16)
    assert len(features) > len(examples) + 10 and all(f["length"] <= 16 for f in features)
    assert [f["example_index"] for f in features] == sorted(f["example_index"] for f in features)
    long_feats = [f for f in features if f["example_index"] == 1]
    owned = np.array([[p >= 0 for p in f["first_pos"]] for f in long_feats])
    assert owned.sum(axis=0).tolist() == [1] * len(words)  # each word owned by exactly one window
    for f in features:  # the loss sees exactly the owned first sub-tokens
        assert sorted(p for p in f["first_pos"] if p >= 0) == [i for i, lab in enumerate(f["labels"]) if lab != IGNORE]
    head = IdHead(len(task.labels))
    for bucket in (True, False):  # length bucketing over more features than sentences
        outputs = predict(IdEncoder(), head, kind, features, tok.pad_token_id, batch_size=4, bucket=bucket)
        assert kind.predict_tags(task, features, outputs, len(examples))[1] == expected
        rows = kind.evaluate(task, examples, features, outputs).stats["token_accuracy"]
        assert rows[1].tolist() == [len(words)] * 3


def test_without_windows_cut_words_are_wrong_never_default_correct(tok) -> None:
    """``windows = false`` truncates; words past the cut count as wrong even when gold is 'O' / labels[0]."""
    kind = get_head_kind("tagging")
    words = ("Schwarzwaldhochstraße", "liegt", "in", "Baden-Württemberg", "und", "Deutschland", "gut")
    cases = [(get_task("panx", {"windows": False}), ("B-LOC", "O", "O", "B-LOC", "O", "B-LOC", "O")),
             (get_task("udpos", {"windows": False}), ("ADJ",) * 7)]  # ADJ is UD-POS's first label
    for task, tags in cases:
        examples = [TaggingExample(words, tags)]
        (feat,) = kind.encode(task, examples, tok, max_length=8)
        assert len(feat["input_ids"]) == 8
        fitted = [w for w, p in enumerate(feat["first_pos"]) if p >= 0]
        assert fitted == list(range(len(fitted))) and 2 <= len(fitted) < 5
        outputs = oracle_logits(task, examples, [feat])
        (pred,) = kind.predict_tags(task, [feat], outputs, 1)
        assert pred == list(tags[: len(fitted)]) + [MISSING] * (len(words) - len(fitted))
        ev = kind.evaluate(task, examples, [feat], outputs)
        if task.name == "panx":  # the cut entities are missed; nothing is invented for the cut words
            assert ev.stats["f1"][0].tolist() == [1, 1, 3]
        else:
            assert ev.stats["token_accuracy"][0].tolist() == [len(fitted), len(words), len(words)]
        # with windows (the default) the same sentence is scored in full
        task_on = get_task(task.name)
        feats_on = kind.encode(task_on, examples, tok, max_length=8)
        ev_on = kind.evaluate(task_on, examples, feats_on, oracle_logits(task_on, examples, feats_on))
        assert ev_on.scores[task.metric] == 100.0


def test_word_longer_than_the_window_is_still_predicted(tok) -> None:
    task = get_task("panx")
    kind = get_head_kind("tagging")
    examples = [TaggingExample(("Die", LONG_WORD, "ist", "\u200b", "lang"), ("O", "B-ORG", "O", "O", "O"))]
    features = kind.encode(task, examples, tok, max_length=8)
    assert all(f["length"] <= 8 for f in features)
    (pred,) = kind.predict_tags(task, features, oracle_logits(task, examples, features), 1)
    assert pred == list(examples[0].tags)


def read_words(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def test_every_word_of_real_panx_zh_is_scored_at_128(tok, shared_data: Path) -> None:
    task = get_task("panx", data_dir=shared_data)
    kind = get_head_kind("tagging")
    examples = task.load("eval", "zh")
    features = kind.encode(task, examples, tok, max_length=128)
    assert max(f["length"] for f in features) == 128 and len(features) > len(examples)
    n_words = read_words(shared_data / "xtreme" / "panx" / "dev-zh.tsv")
    assert sum(p >= 0 for f in features for p in f["first_pos"]) == n_words
    preds = kind.predict_tags(task, features, oracle_logits(task, examples, features), len(examples))
    assert sum(len(p) for p in preds) == n_words and not any(MISSING in p for p in preds)
    ev = kind.evaluate(task, examples, features, oracle_logits(task, examples, features))
    assert ev.scores["f1"] == 100.0  # every entity is reachable (without windows: 98.7)


def test_eval_cap_counts_sentences_and_cache_key_covers_windows(tok, tmp_path: Path, shared_data: Path) -> None:
    task = get_task("panx", data_dir=shared_data)
    examples, features = load_features(task, "eval", "zh", tok, 64, limit=300, cache_dir=tmp_path)
    assert len(examples) == 300 and len(features) > 300
    assert sorted({f["example_index"] for f in features}) == list(range(300))
    assert load_features(task, "eval", "zh", tok, 64, limit=300, cache_dir=tmp_path) == (examples, features)
    keys = {cache_key(get_task("panx", options).at(shared_data), "eval", "zh", tok, 64, 300)
            for options in ({}, {"stride": 8}, {"windows": False})}
    keys.add(cache_key(task, "eval", "zh", tok, 32, 300))
    assert len(keys) == 4


def test_classification_pair_encoding(tok) -> None:
    from xstilts.tasks.base import ClassificationExample

    task = get_task("xnli")
    kind = get_head_kind("classification")
    ex = [ClassificationExample("Ein Mann schläft.", "Niemand schläft.", "contradiction")]
    (feat,) = kind.encode(task, ex, tok, max_length=64)
    assert feat["input_ids"][0] == tok.cls_token_id and feat["input_ids"][-1] == tok.sep_token_id
    assert feat["input_ids"].count(tok.sep_token_id) >= 2  # a pair, not one sentence
    assert feat["label"] == task.labels.index("contradiction")
