"""``xstilts data fetch`` offline: small parquet files laid out as the Hub's repositories are
(``{repo}/{config}/{split}-00000-of-00001.parquet``, integer ClassLabel columns as the Hub stores
them) become the layout xstilts' own readers load; checksums are recorded; a second fetch skips
what is there; an unreachable source is one line naming it; with MNLI fetched XNLI trains on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.data_fetch import MANIFEST, PANX_TAGS, UPOS_TAGS, fetch, sha256
from xstilts.errors import DataError
from xstilts.tasks import get_task

SQUAD_ROW = {"id": "q1", "title": "Berlin", "context": "Berlin ist die Hauptstadt Deutschlands.",
             "question": "Was ist Berlin?", "answers": {"text": ["die Hauptstadt Deutschlands"], "answer_start": [11]}}


def _parquet(root: Path, repo: str, config: str, split: str, rows: list[dict]) -> None:
    folder = root / repo / config
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / f"{split}-00000-of-00001.parquet")


@pytest.fixture()
def hub(tmp_path: Path) -> Path:
    root = tmp_path / "hub"
    x = "google/xtreme"
    tag = {t: i for i, t in enumerate(PANX_TAGS)}
    _parquet(root, x, "PAN-X.en", "train", [
        {"tokens": ["Angela", "Merkel", "visited", "Paris", "."],
         "ner_tags": [tag["B-PER"], tag["I-PER"], tag["O"], tag["B-LOC"], tag["O"]], "langs": ["en"] * 5},
        {"tokens": ["Google", "grows"], "ner_tags": [tag["B-ORG"], tag["O"]], "langs": ["en"] * 2}])
    for lang in ("en", "de"):
        _parquet(root, x, f"PAN-X.{lang}", "validation", [
            {"tokens": ["Berlin", "ist", "groß"], "ner_tags": [tag["B-LOC"], 0, 0], "langs": [lang] * 3}])
    pos = {t: i for i, t in enumerate(UPOS_TAGS)}
    for config, split in (("udpos.English", "train"), ("udpos.English", "validation"), ("udpos.German", "validation")):
        _parquet(root, x, config, split, [{"tokens": ["Dogs", "bark", "."],
                                           "pos_tags": [pos["NOUN"], pos["VERB"], pos["PUNCT"]]}])
    _parquet(root, x, "XNLI", "validation", [
        {"language": lang, "sentence1": f"premise {lang} {i}", "sentence2": f"hypothesis\t{lang} {i}",
         "gold_label": label}
        for lang in ("en", "de", "sw") for i, label in enumerate(["entailment", "neutral", "contradiction"])])
    for lang in ("en", "de"):
        _parquet(root, x, f"XQuAD.{lang}", "validation", [SQUAD_ROW, {**SQUAD_ROW, "id": "q2", "question": "Wo?"}])
    _parquet(root, x, "tatoeba.deu", "validation", [
        {"source_sentence": "Ich bin müde.\n", "target_sentence": "I am tired.\n", "source_lang": "deu",
         "target_lang": "eng"},
        {"source_sentence": "Danke.", "target_sentence": "Thank you.", "source_lang": "deu", "target_lang": "eng"}])
    mnli = [{"premise": "A man sleeps.", "hypothesis": "A person rests.", "label": 0, "idx": 0},
            {"premise": "A man sleeps.", "hypothesis": "A man runs.", "label": 2, "idx": 1},
            {"premise": "Kids play.", "hypothesis": "Kids are happy.", "label": 1, "idx": 2}]
    _parquet(root, "nyu-mll/glue", "mnli", "train", mnli)
    _parquet(root, "nyu-mll/glue", "mnli", "validation_matched", mnli[:2])
    return root


def test_fetched_layout_is_what_the_readers_load(hub: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    tasks = ["panx", "udpos", "xnli", "xquad", "tatoeba", "mnli"]
    report = fetch(tasks, data, languages=["en", "de"], source=hub, progress=False)
    assert not report.skipped and "xtreme/panx/dev-de.tsv" in report.written

    panx = get_task("panx", data_dir=data)
    train = panx.load("train", "en")
    assert (train[0].tokens, train[0].tags) == (("Angela", "Merkel", "visited", "Paris", "."),
                                                ("B-PER", "I-PER", "O", "B-LOC", "O"))
    assert [e.tags for e in train] == [("B-PER", "I-PER", "O", "B-LOC", "O"), ("B-ORG", "O")]
    assert [e.tags for e in panx.load("eval", "de")] == [("B-LOC", "O", "O")]
    assert [e.tags for e in get_task("udpos", data_dir=data).load("eval", "de")] == [("NOUN", "VERB", "PUNCT")]

    xquad = get_task("xquad", data_dir=data).load("eval", "de")
    assert {e.id for e in xquad} == {"q1", "q2"}
    first = next(e for e in xquad if e.id == "q1")
    assert first.answers == (("die Hauptstadt Deutschlands", 11),)
    assert first.context[11:].startswith("die Hauptstadt Deutschlands")

    tatoeba = get_task("tatoeba", data_dir=data)
    folder = data / "xtreme/tatoeba"  # LASER's aligned originals (line i translates line i) are what it reads
    assert tatoeba.files("eval", "de") == [folder / "tatoeba.deu-eng.deu", folder / "tatoeba.deu-eng.eng"]
    assert tatoeba.sentences("de") == ["Ich bin müde.", "Danke."]
    assert (data / "xtreme/tatoeba/tatoeba.deu-eng.deu").read_text(encoding="utf-8") == "Ich bin müde.\nDanke.\n"
    assert (data / "xtreme/tatoeba/tatoeba.deu-eng.eng").read_text(encoding="utf-8") == "I am tired.\nThank you.\n"

    # XNLI: one Hub split, one file per language; a tab inside a sentence does not shift the columns
    assert (data / "xtreme/xnli/dev-de.tsv").read_text(encoding="utf-8").splitlines()[1] == \
        "premise de 1\thypothesis de 1\tneutral"
    assert not (data / "xtreme/xnli/dev-sw.tsv").exists()  # --languages en,de
    # with MNLI present, XNLI trains on MNLI as XTREME does
    xnli = get_task("xnli", data_dir=data)
    assert xnli.train_source() == "mnli"
    assert [(e.text_a, e.text_b) for e in xnli.load("train", "en")][:1] == [("A man sleeps.", "A person rests.")]
    assert len(xnli.load("train", "en")) == 3 and len(xnli.load("eval", "de")) == 3  # all of dev: nothing split off
    assert [e.label for e in get_task("mnli", data_dir=data).load("train", "en")] == \
        [e.label for e in xnli.load("train", "en")]

    manifest = json.loads((data / MANIFEST).read_text())["files"]
    assert set(manifest) == set(report.written)
    for rel, entry in manifest.items():
        assert entry["sha256"] == sha256(data / rel), rel
    assert manifest["english/mnli/train.tsv"]["source"] == "nyu-mll/glue · mnli · train"


def test_fetch_resumes_and_rewrites_a_changed_file(hub: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    fetch(["panx"], data, languages=["en", "de"], source=hub, progress=False)
    dev = data / "xtreme/panx/dev-de.tsv"
    good = dev.read_bytes()
    dev.write_text("Berlin\tO\n", encoding="utf-8")  # damaged since: its checksum no longer matches
    again = fetch(["panx"], data, languages=["en", "de"], source=hub, progress=False)
    assert again.written == ["xtreme/panx/dev-de.tsv"]
    assert sorted(again.skipped) == ["xtreme/panx/dev-en.tsv", "xtreme/panx/train-en.tsv"]
    assert dev.read_bytes() == good
    assert not list(data.rglob("*.tmp*"))  # atomic writes leave no temporaries


def test_unreachable_source_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to fall back on
    with pytest.raises(DataError) as err:
        fetch(["xnli"], tmp_path / "data", languages=["de"], progress=False)
    message = err.value.one_line()
    assert "google/xtreme · XNLI · validation" in message and "\n" not in message

    result = CliRunner().invoke(app, ["data", "fetch", "--to", str(tmp_path / "d2"), "--tasks", "sst2"])
    assert result.exit_code == 2
    assert "nyu-mll/glue · sst2 · train" in result.output
    assert not (tmp_path / "d2" / "english").exists()


def test_cli_fetch_and_uncovered_task(hub: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "fetch", "--to", str(tmp_path / "d"), "--tasks", "panx,udpos",
                             "--languages", "en,de", "--source", str(hub)])
    assert ok.exit_code == 0, ok.output
    assert "6 file(s) written, 0 already there" in ok.output
    bad = runner.invoke(app, ["data", "fetch", "--to", str(tmp_path / "d"), "--tasks", "bucc"])
    assert bad.exit_code == 2 and "does not cover 'bucc'" in bad.output
