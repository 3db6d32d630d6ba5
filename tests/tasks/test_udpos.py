"""UD-POS: reader on real data and on written fixtures, label set, and the word-level accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xstilts.errors import DataError
from xstilts.heads import get_head_kind
from xstilts.metrics.stats import score_from_stats
from xstilts.tasks import get_task
from xstilts.tasks.udpos import UPOS_TAGS

REPO = Path(__file__).resolve().parents[2]


def test_language_lists_and_labels() -> None:
    task = get_task("udpos")
    assert task.head == "tagging" and task.metric == "token_accuracy"
    assert task.all_metrics() == ("token_accuracy", "f1") and task.leaderboard_metrics() == ("f1",)
    assert len(task.languages) == 33 and len(task.languages_r) == 38
    assert set(task.languages) < set(task.languages_r)
    assert {"lt", "pl", "ro", "uk", "wo"} == set(task.languages_r) - set(task.languages)
    assert len(UPOS_TAGS) == 17 and task.labels == UPOS_TAGS


def test_reads_real_train_and_dev(shared_data: Path) -> None:
    task = get_task("udpos", data_dir=shared_data)
    dev = task.read("eval", "de")
    assert len(dev) > 1000
    assert all(len(ex.tokens) == len(ex.tags) for ex in dev)
    assert {t for ex in dev for t in ex.tags} <= set(UPOS_TAGS)
    first = task.load("train", "en", limit=3)
    assert first[0].tokens[:3] == ("Al", "-", "Zaman") and first[0].tags[:3] == ("PROPN", "PUNCT", "PROPN")


def test_bad_tag_names_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "udpos"
    folder.mkdir()
    (folder / "dev-xx.tsv").write_text("Ein\tDET\nHaus\tNOUN\n\nBad\tNN\n", encoding="utf-8")
    task = get_task("udpos", {"dir": str(folder)}, tmp_path)
    with pytest.raises(DataError) as err:
        task.read("eval", "xx")
    assert "dev-xx.tsv:4" in err.value.one_line() and "NN" in err.value.one_line()


def test_crlf_bom_and_lang_prefix(tmp_path: Path) -> None:
    folder = tmp_path / "udpos"
    folder.mkdir()
    (folder / "train-en.tsv").write_bytes(b"\xef\xbb\xbfen:The\tDET\r\nen:cat\tNOUN\r\n\r\nen:Hi\tINTJ\r\n")
    examples = get_task("udpos", {"dir": str(folder)}).at(tmp_path).read("train", "en")
    assert [ex.tokens for ex in examples] == [("The", "cat"), ("Hi",)]
    assert [ex.tags for ex in examples] == [("DET", "NOUN"), ("INTJ",)]


@pytest.mark.parametrize(("lang", "kept"), [
    ("de", {"ftp://ftp.adobe.com/pub/adobe/magic/imageready/win/ir1try.exe",
            "ftp://ftp-pac.adobe.com/pub/adobe/magic/imageready/win/ir1try.exe",
            "ftp://ftp.informatik.hu-berlin.de/pub/Java/Linux/", "ftp://ds.internic.net/rfc/rfc2070.txt",
            "xml:base", 'xml:base="http://www.heise.de/', 'xml:base="/ix/events/">'}),
    ("fi", {"tv:stä", "sdp:n"}),
])
def test_real_tokens_with_colons_survive(tmp_path: Path, lang: str, kept: set[str], shared_data: Path) -> None:
    """The 9 real UD-POS tokens the old per-token prefix guess cut are read unchanged, and a copy of
    the file with XTREME's ``{lang}:`` prefix on every token reads exactly the same tokens."""
    path = shared_data / "xtreme" / "udpos" / f"dev-{lang}.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()
    raw = [line.split("\t")[0] for line in lines if line.strip()]
    assert kept <= set(raw)
    task = get_task("udpos", data_dir=shared_data)
    assert [t for ex in task.read("eval", lang) for t in ex.tokens] == raw
    folder = tmp_path / "udpos"
    folder.mkdir()
    (folder / f"dev-{lang}.tsv").write_text("".join(f"{lang}:{line}\n" if line.strip() else "\n" for line in lines),
                                           encoding="utf-8")
    prefixed = get_task("udpos", {"dir": str(folder)}).at(tmp_path).read("eval", lang)
    assert [t for ex in prefixed for t in ex.tokens] == raw


def test_token_accuracy_uses_first_subtoken(tiny_model: Path) -> None:
    """Hand-made logits: the word-level prediction is read at each word's first sub-token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    task = get_task("udpos")
    from xstilts.tasks.base import TaggingExample

    examples = [TaggingExample(("Unbelievably", "good", "."), ("ADV", "ADJ", "PUNCT")),
                TaggingExample(("Go",), ("VERB",))]
    kind = get_head_kind("tagging")
    feats = kind.encode(task, examples, tok, max_length=32)
    outputs = []
    wrong_tags = {0: "NOUN", 1: "ADJ", 2: "PUNCT"}  # sentence 0: word 0 wrong, words 1-2 right
    for i, (f, ex) in enumerate(zip(feats, examples, strict=True)):
        logits = np.zeros((f["length"], len(UPOS_TAGS)))
        logits[:, UPOS_TAGS.index("X")] = 5.0  # every non-first sub-token says X: must be ignored
        for w, pos in enumerate(f["first_pos"]):
            tag = wrong_tags[w] if i == 0 else ex.tags[w]
            logits[pos] = 0.0
            logits[pos, UPOS_TAGS.index(tag)] = 9.0
        outputs.append(logits)
    assert len(tok.tokenize("Unbelievably")) > 1  # the rule is actually exercised
    ev = kind.evaluate(task, examples, feats, outputs)
    rows = ev.stats["token_accuracy"]
    assert rows.tolist() == [[2, 3, 3], [1, 1, 1]]
    assert score_from_stats("token_accuracy", rows) == pytest.approx(75.0)
    # XTREME's measure beside it: seqeval F1 over runs of equal tags (ADV|ADJ|PUNCT vs NOUN|ADJ|PUNCT)
    from seqeval.metrics import f1_score

    assert ev.stats["f1"].tolist() == [[2, 3, 3], [1, 1, 1]]
    gold, pred = [["ADV", "ADJ", "PUNCT"], ["VERB"]], [["NOUN", "ADJ", "PUNCT"], ["VERB"]]
    assert score_from_stats("f1", ev.stats["f1"]) == pytest.approx(100 * f1_score(gold, pred))
