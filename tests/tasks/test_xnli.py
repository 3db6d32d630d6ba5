from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.mnli import read_mnli
from xstilts.tasks.xnli import premise_groups, read_xtreme_tsv, split_rows


def test_premise_disjoint_split_on_real_data(shared_data: Path) -> None:
    task = get_task("xnli", data_dir=shared_data)
    assert task.train_source() == "xnli-dev-split"
    english = read_xtreme_tsv(shared_data / "xtreme/xnli/dev-en.tsv")
    train_rows, eval_rows = split_rows(english, 0.5)
    groups = premise_groups(english)
    assert set(groups[train_rows]).isdisjoint(groups[eval_rows])
    assert len(train_rows) + len(eval_rows) == len(english) == 2490
    train = task.load("train", "en")
    train_premises = {ex.text_a for ex in train}
    en_eval = task.load("eval", "en")
    assert train_premises.isdisjoint({ex.text_a for ex in en_eval})
    # other languages are evaluated on the translations of exactly the English eval rows
    de_all = read_xtreme_tsv(shared_data / "xtreme/xnli/dev-de.tsv")
    de_eval = task.load("eval", "de")
    assert de_eval == [de_all[i] for i in eval_rows]
    assert [ex.label for ex in de_eval] == [ex.label for ex in en_eval]


ORIGINAL_HEADER = (
    "language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
    "sentence1\tsentence2\tpromptID\tpairID\tgenre\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\t"
    "sentence1_tokenized\tsentence2_tokenized\tmatch"
)


def _original_row(lang: str, label: str, s1: str, s2: str) -> str:
    cols = [
        lang,
        label,
        "",
        "",
        "",
        "",
        s1,
        s2,
        "1",
        "2",
        "travel",
        label,
        label,
        label,
        label,
        label,
        s1,
        s2,
        "True",
    ]
    return "\t".join(cols)


def test_original_xnli_19_column_file(tmp_path: Path) -> None:
    path = tmp_path / "xnli.dev.tsv"
    rows = [
        ORIGINAL_HEADER,
        _original_row("en", "neutral", "A man.", "A person."),
        _original_row("de", "contradiction", "Ein Mann.", "Keine Person."),
        _original_row("de", "entailment", "Ein Hund.", "Ein Tier."),
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    task = get_task("xnli", {"xnli_file": str(path), "train_source": "mnli"}, tmp_path)
    de = task.load("eval", "de")
    assert [(ex.text_a, ex.label) for ex in de] == [
        ("Ein Mann.", "contradiction"),
        ("Ein Hund.", "entailment"),
    ]
    path.write_text("\n".join([*rows, _original_row("de", "maybe", "x", "y")]) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        task.load("eval", "de")
    assert info.value.line == 5 and "unknown NLI label 'maybe'" in info.value.message


GLUE_HEADER = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
)


def test_mnli_glue_tsv_and_jsonl(tmp_path: Path) -> None:
    tsv = tmp_path / "train.tsv"
    tsv.write_text(
        GLUE_HEADER + "\n"
        "0\t1\t1e\tfiction\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tPremise one.\tHyp one.\tneutral\tneutral\n"
        "1\t2\t2c\tfiction\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tPremise two.\tHyp two.\tentailment\t-\n",
        encoding="utf-8",
    )
    assert [(e.text_a, e.text_b, e.label) for e in read_mnli(tsv)] == [
        ("Premise one.", "Hyp one.", "neutral")
    ]
    jsonl = tmp_path / "multinli_1.0_train.jsonl"
    jsonl.write_text(
        '{"gold_label": "contradiction", "sentence1": "P.", "sentence2": "H.", "genre": "x"}\n'
        '{"gold_label": "-", "sentence1": "P2.", "sentence2": "H2."}\n'
        "{not json}\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError) as info:
        read_mnli(jsonl)
    assert info.value.line == 3
    jsonl.write_text(
        '{"gold_label": "contradiction", "sentence1": "P.", "sentence2": "H."}\n', encoding="utf-8"
    )
    assert read_mnli(jsonl)[0].label == "contradiction"


def test_xnli_trains_on_mnli_when_present(tmp_path: Path, shared_data: Path) -> None:
    mnli = tmp_path / "english" / "mnli"
    mnli.mkdir(parents=True)
    (mnli / "train.tsv").write_text(
        GLUE_HEADER + "\n0\t1\t1e\tfiction\t-\t-\t-\t-\tP.\tH.\tneutral\tneutral\n", encoding="utf-8"
    )
    task = get_task("xnli", {"dir": str(shared_data / "xtreme/xnli")}, tmp_path)
    assert task.train_source() == "mnli"
    assert len(task.load("train", "en")) == 1
    assert len(task.load("eval", "de")) == 2490  # whole dev set when training on MNLI
