from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.errors import DataError
from xstilts.tasks import get_task


def test_reads_real_train_and_dev(shared_data: Path) -> None:
    task = get_task("panx", data_dir=shared_data)
    train = task.load("train", "en")
    assert len(train) == 20000
    assert train[0].tokens[:2] == ("R.H.", "Saunders")
    assert train[0].tags[:2] == ("B-ORG", "I-ORG")
    de = task.load("eval", "de", limit=50)
    assert len(de) == 50 and all(len(ex.tokens) == len(ex.tags) for ex in de)


def test_raw_lang_prefixed_form_is_accepted(tmp_path: Path) -> None:
    folder = tmp_path / "xtreme" / "panx"
    folder.mkdir(parents=True)
    (folder / "dev-de.tsv").write_text("de:Berlin\tB-LOC\nde:ist\tO\n\nde:a:b\tO\n", encoding="utf-8")
    examples = get_task("panx").at(tmp_path).load("eval", "de")
    assert examples[0].tokens == ("Berlin", "ist")
    assert examples[1].tokens == ("a:b",)


def _tokens(path: Path) -> list[str]:
    return [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("lines", "tokens"),
    [
        # the file's own prefix on every token: stripped exactly once, whatever follows it
        (["de:Berlin", "de:bar:24", "", "de:xml:base", "de:ftp://x.org", "de:de:x"],
         ["Berlin", "bar:24", "xml:base", "ftp://x.org", "de:x"]),
        # not on every token: nothing is touched (these were corrupted by the old per-token guess)
        (["bar:24", "ftp://x.org", "", "xml:base", "de:Dur"], ["bar:24", "ftp://x.org", "xml:base", "de:Dur"]),
        (["de:Berlin", "de:liegt", "", "an:der"], ["de:Berlin", "de:liegt", "an:der"]),
        # another language's prefix is a real token in a German file
        (["en:Berlin", "en:bar"], ["en:Berlin", "en:bar"]),
    ],
)
def test_lang_prefix_stripped_only_when_every_token_has_it(tmp_path: Path, lines: list[str], tokens: list[str]
                                                           ) -> None:
    folder = tmp_path / "xtreme" / "panx"
    folder.mkdir(parents=True)
    (folder / "dev-de.tsv").write_text("".join(f"{t}\tO\n" if t else "\n" for t in lines), encoding="utf-8")
    assert [t for ex in get_task("panx").at(tmp_path).load("eval", "de") for t in ex.tokens] == tokens


def test_prefix_alone_is_an_empty_token(tmp_path: Path) -> None:
    folder = tmp_path / "xtreme" / "panx"
    folder.mkdir(parents=True)
    (folder / "dev-de.tsv").write_text("de:Berlin\tB-LOC\n\nde:\tO\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        get_task("panx").at(tmp_path).load("eval", "de")
    assert info.value.line == 3 and "empty token" in info.value.one_line()


@pytest.mark.parametrize(("split", "lang", "name", "kept"),
                         [("eval", "en", "dev-en.tsv", {"bar:24", "bar:2007"}), ("train", "en", "train-en.tsv", {"bar:7"})])
def test_real_tokens_with_colons_survive(shared_data: Path, tmp_path: Path, split: str, lang: str, name: str,
                                        kept: set[str]) -> None:
    """Every token of the real (unprefixed) file is read unchanged; a prefixed copy reads the same."""
    path = shared_data / "xtreme" / "panx" / name
    raw = _tokens(path)
    assert kept <= set(raw)
    read = [t for ex in get_task("panx").at(shared_data).load(split, lang) for t in ex.tokens]
    assert read == raw
    folder = tmp_path / "xtreme" / "panx"
    folder.mkdir(parents=True)
    lines = path.read_text(encoding="utf-8").splitlines()
    (folder / name).write_text("".join(f"{lang}:{line}\n" if line.strip() else "\n" for line in lines), encoding="utf-8")
    assert [t for ex in get_task("panx").at(tmp_path).load(split, lang) for t in ex.tokens] == raw


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
        get_task("panx").at(tmp_path).load("eval", "xx")
    assert info.value.line == line
    assert message in info.value.one_line()
    assert info.value.one_line().startswith(str(folder / "dev-xx.tsv") + f":{line}:")


def test_missing_and_empty_files(tmp_path: Path) -> None:
    folder = tmp_path / "xtreme" / "panx"
    folder.mkdir(parents=True)
    with pytest.raises(DataError, match="not found"):
        get_task("panx").at(tmp_path).load("eval", "qq")
    (folder / "dev-qq.tsv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no examples"):
        get_task("panx").at(tmp_path).load("eval", "qq")
