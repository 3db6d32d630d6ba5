from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.errors import DataError
from xstilts.tasks import get_task


def test_reads_real_train_and_dev(shared_data: Path) -> None:
    task = get_task("panx")
    train = task.load("train", "en", shared_data)
    assert len(train) == 20000
    assert train[0].tokens[:2] == ("R.H.", "Saunders")
    assert train[0].tags[:2] == ("B-ORG", "I-ORG")
    de = task.load("eval", "de", shared_data, limit=50)
    assert len(de) == 50 and all(len(ex.tokens) == len(ex.tags) for ex in de)


def test_raw_lang_prefixed_form_is_accepted(tmp_path: Path) -> None:
    folder = tmp_path / "xtreme" / "panx"
    folder.mkdir(parents=True)
    (folder / "dev-de.tsv").write_text("de:Berlin\tB-LOC\nde:ist\tO\n\nde:a:b\tO\n", encoding="utf-8")
    examples = get_task("panx").load("eval", "de", tmp_path)
    assert examples[0].tokens == ("Berlin", "ist")
    assert examples[1].tokens == ("a:b",)


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        ("Berlin\tB-LOC\nist\tB-FOO\n", "unknown tag 'B-FOO'", 2),
        ("Berlin\tB-LOC\nist O\n", "expected 'token<TAB>tag'", 2),
        ("Berlin\tB-LOC\n\nx\ty\tz\n", "found 3 column(s)", 3),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, content: str, message: str, line: int) -> None:
    folder = tmp_path / "xtreme" / "panx"
    folder.mkdir(parents=True)
    (folder / "dev-xx.tsv").write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        get_task("panx").load("eval", "xx", tmp_path)
    assert info.value.line == line
    assert message in info.value.one_line()
    assert info.value.one_line().startswith(str(folder / "dev-xx.tsv") + f":{line}:")


def test_missing_and_empty_files(tmp_path: Path) -> None:
    folder = tmp_path / "xtreme" / "panx"
    folder.mkdir(parents=True)
    with pytest.raises(DataError, match="not found"):
        get_task("panx").load("eval", "qq", tmp_path)
    (folder / "dev-qq.tsv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no examples"):
        get_task("panx").load("eval", "qq", tmp_path)
