"""PAWS-X: both file forms, the sentence-disjoint offline split, and the real-train switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.errors import DataError
from xstilts.tasks import get_task
from xstilts.tasks.base import ClassificationExample
from xstilts.tasks.pawsx import read_pawsx_tsv, sentence_groups, split_rows

REPO = Path(__file__).resolve().parents[2]


def test_metadata() -> None:
    task = get_task("pawsx")
    assert task.head == "classification" and task.metric == "accuracy" and task.labels == ("0", "1")
    assert task.languages == ("de", "en", "es", "fr", "ja", "ko", "zh") and task.chance == 50.0


def test_groups_link_rows_sharing_any_sentence() -> None:
    rows = [ClassificationExample(a, b, "0") for a, b in
            [("s1", "s2"), ("s3", "s4"), ("s2", "s5"), ("s6", "s1"), ("s7", "s8")]]
    groups = sentence_groups(rows).tolist()
    assert groups[0] == groups[2] == groups[3]  # s1-s2, s2-s5, s6-s1 are one component
    assert len({groups[0], groups[1], groups[4]}) == 3


def test_offline_split_is_sentence_disjoint_and_parallel(shared_data: Path) -> None:
    task = get_task("pawsx", data_dir=shared_data)
    english = read_pawsx_tsv(shared_data / "xtreme/pawsx/dev-en.tsv")
    train_rows, eval_rows = split_rows(english, 0.5)
    assert len(train_rows) + len(eval_rows) == 2000 and not set(train_rows) & set(eval_rows)
    seen = {s for i in train_rows for s in (english[i].text_a, english[i].text_b)}
    assert not any(english[i].text_a in seen or english[i].text_b in seen for i in eval_rows)
    train = task.read("train", "en")
    assert train == [english[i] for i in train_rows]
    german = read_pawsx_tsv(shared_data / "xtreme/pawsx/dev-de.tsv")
    assert task.read("eval", "de") == [german[i] for i in eval_rows]
    assert task.files("train", "en")[0].name == "dev-en.tsv"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_real_train_file_and_header_form(tmp_path: Path) -> None:
    folder = tmp_path / "pawsx"
    _write(folder / "dev-en.tsv", "a b\tb a\t1\nc d\td e\t0\n")
    _write(folder / "dev-fr.tsv", "id\tsentence1\tsentence2\tlabel\n1\tun\tdeux\t1\n2\ttrois\tquatre\t0\n")
    train = _write(tmp_path / "x-final/en/train.tsv", "id\tsentence1\tsentence2\tlabel\n7\tx y\ty x\t1\n")
    task = get_task("pawsx", {"dir": str(folder), "train_file": str(train)}, tmp_path)
    assert task.read("train", "en") == [ClassificationExample("x y", "y x", "1")]
    assert len(task.read("eval", "en")) == 2  # whole dev set once real training data exists
    assert task.read("eval", "fr")[1] == ClassificationExample("trois", "quatre", "0")
    assert task.files("train", "en") == [train]
    # train-en.tsv beside the dev files is picked up without an option
    _write(folder / "train-en.tsv", "p q\tq p\t0\n")
    assert get_task("pawsx", {"dir": str(folder)}).at(tmp_path).read("train", "en")[0].label == "0"


def test_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "pawsx"
    _write(folder / "dev-en.tsv", "a\tb\t1\nc\td\tyes\n")
    with pytest.raises(DataError, match=r"dev-en.tsv:2.*'yes'"):
        get_task("pawsx", {"dir": str(folder)}).at(tmp_path).read("eval", "en")
    _write(folder / "dev-en.tsv", "a\tb\t1\nc\td\n")
    with pytest.raises(DataError, match=r"dev-en.tsv:2.*columns"):
        get_task("pawsx", {"dir": str(folder)}).at(tmp_path).read("eval", "en")
    _write(folder / "dev-en.tsv", "a\tb\t1\nc\td\t0\n")
    _write(folder / "dev-de.tsv", "a\tb\t1\n")
    with pytest.raises(DataError, match="parallel"):
        get_task("pawsx", {"dir": str(folder)}).at(tmp_path).read("eval", "de")
