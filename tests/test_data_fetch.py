"""``xstilts data fetch`` offline: small parquet files laid out as the Hub's repositories are
(``{repo}/{config}/{split}-00000-of-00001.parquet``, integer ClassLabel columns as the Hub stores
them) become the layout xstilts' own readers load; checksums are recorded; a second fetch skips
what is there; an unreachable source is one line naming it; with MNLI fetched XNLI trains on it.
TyDiQA, QQP, ANLI, HellaSwag, CommonsenseQA and Cosmos QA are converted from their Hub columns and
read back with their own readers.
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
    # the variables are read when datasets is imported, which an earlier test may have done; without these
    # the Hub client retries the unreachable network with back-off (about 30 s) before giving up
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
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


def _answers(text: str, start: int) -> dict:
    return {"text": [text], "answer_start": [start]}


@pytest.fixture()
def hub_more(tmp_path: Path) -> Path:
    """The Hub forms of the tasks converted from columns: TyDiQA, QQP, ANLI, HellaSwag, CSQA, Cosmos QA."""
    root = tmp_path / "hub_more"
    ctx_en, ctx_ar = "Paris is the capital of France.", "القاهرة عاصمة مصر."
    _parquet(root, "google/xtreme", "tydiqa", "train", [  # Google's one multilingual file, language in the id
        {"id": "english-7311-0", "title": "", "context": ctx_en, "question": "What is Paris?",
         "answers": _answers("the capital of France", 9)},
        {"id": "arabic-2387-1", "title": "", "context": ctx_ar, "question": "ما هي القاهرة؟",
         "answers": _answers("عاصمة مصر", 8)},
        {"id": "english--4410-3", "title": "", "context": ctx_en, "question": "Capital of which country?",
         "answers": _answers("France", 24)}])
    _parquet(root, "google/xtreme", "tydiqa", "validation", [
        {"id": "english--3215-2", "title": "Paris", "context": ctx_en, "question": "Which city?",
         "answers": _answers("Paris", 0)},
        {"id": "arabic-99-0", "title": "القاهرة", "context": ctx_ar, "question": "ما هي القاهرة؟",
         "answers": _answers("عاصمة مصر", 8)},
        {"id": "swahili-5-0", "title": "Nairobi", "context": "Nairobi ni mji.", "question": "Nini?",
         "answers": _answers("mji", 11)}])
    glue = "nyu-mll/glue"
    _parquet(root, glue, "qqp", "train", [
        {"question1": "How do I learn Python?", "question2": "What is the best way\nto learn Python?", "label": 1,
         "idx": 0},
        {"question1": "Why is the sky blue?", "question2": "How tall is Everest?", "label": 0, "idx": 1},
        {"question1": "Broken row", "question2": "", "label": 0, "idx": 2}])  # empty question: left out
    _parquet(root, glue, "qqp", "validation", [
        {"question1": "What is AI?", "question2": "What does AI mean?", "label": 1, "idx": 0}])
    for n in (1, 2, 3):
        for split in ("train", "dev", "test"):
            _parquet(root, "facebook/anli", "plain_text", f"{split}_r{n}", [
                {"uid": f"{split}-r{n}-{i}", "premise": f"Round {n} {split} premise {i}.",
                 "hypothesis": f"Hypothesis {i}.", "label": label, "reason": "because" if i else ""}
                for i, label in enumerate((0, 1, 2))])
    hs = {"activity_label": "Baking", "ctx": "x", "split_type": "indomain"}
    _parquet(root, "Rowan/hellaswag", "default", "train", [
        {**hs, "ind": 4, "ctx_a": "A man mixes flour.", "ctx_b": "he", "split": "train", "source_id": "v1",
         "endings": ["bakes bread.", "swims.", "flies.", "sings."], "label": "0"}])
    _parquet(root, "Rowan/hellaswag", "default", "validation", [
        {**hs, "ind": 24, "ctx_a": "A woman holds a bow.", "ctx_b": "she", "split": "val", "source_id": "v9",
         "endings": ["eats it.", "shoots an arrow.", "sleeps.", "runs."], "label": "1"}])
    choices = {"label": ["A", "B", "C", "D", "E"], "text": ["bank", "river", "tree", "shop", "sky"]}
    for split, key in (("train", "B"), ("validation", "E")):
        _parquet(root, "tau/commonsense_qa", "default", split, [
            {"id": f"csqa-{split}", "question": f"Where is water ({split})?", "question_concept": "water",
             "choices": choices, "answerKey": key}])
    cosmos = {"context": 'She said, "hi,\nthere".', "question": "Why?", "answer0": "a", "answer1": "b, c",
              "answer2": "d", "answer3": "None of the above choices ."}
    _parquet(root, "allenai/cosmos_qa", "default", "train", [{**cosmos, "id": "c1", "label": 3}])
    _parquet(root, "allenai/cosmos_qa", "default", "validation", [{**cosmos, "id": "c2", "label": 1}])
    return root


def test_converted_tasks_read_back_with_their_readers(hub_more: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    report = fetch(["tydiqa", "qqp", "anli", "hellaswag", "commonsenseqa", "cosmosqa"], data,
                   languages=["en", "ar"], source=hub_more, progress=False)
    assert len(report.written) == 3 + 2 + 9 + 2 + 2 + 2 and not report.skipped

    tydiqa = get_task("tydiqa", data_dir=data)
    train = tydiqa.load("train", "en")  # English only, ids cut to their last field as XTREME writes them
    assert [(e.id, e.question, e.answers) for e in train] == [
        ("0", "What is Paris?", (("the capital of France", 9),)), ("3", "Capital of which country?", (("France", 24),))]
    dev_en, dev_ar = tydiqa.load("eval", "en"), tydiqa.load("eval", "ar")
    assert [(e.id, e.answers) for e in dev_en] == [("english--3215-2", (("Paris", 0),))]
    assert [(e.id, e.context[e.answers[0][1]:]) for e in dev_ar] == [("arabic-99-0", "عاصمة مصر.")]
    assert not (data / "xtreme/tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.sw.dev.json").exists()  # --languages

    qqp = get_task("qqp", data_dir=data)
    assert [(e.text_a, e.text_b, e.label) for e in qqp.load("train", "en")] == [
        ("How do I learn Python?", "What is the best way to learn Python?", "duplicate"),
        ("Why is the sky blue?", "How tall is Everest?", "not_duplicate")]
    assert [e.label for e in qqp.load("eval", "en")] == ["duplicate"]

    anli = get_task("anli", data_dir=data)
    anli_train = anli.load("train", "en")
    assert len(anli_train) == 9 and anli_train[0].text_a == "Round 1 train premise 0."
    assert [e.label for e in anli_train[:3]] == ["entailment", "neutral", "contradiction"]
    assert anli.load("eval", "en")[4].text_a == "Round 2 dev premise 1."
    assert get_task("anli", {"eval_file": "test.jsonl"}).at(data).load("eval", "en")[8].text_a == \
        "Round 3 test premise 2."
    first = json.loads((data / "english/anli/anli_v1.0/R1/train.jsonl").read_text().splitlines()[0])
    assert first == {"uid": "train-r1-0", "context": "Round 1 train premise 0.", "hypothesis": "Hypothesis 0.",
                     "label": "e", "reason": ""}  # the release's keys and labels

    hellaswag = get_task("hellaswag", data_dir=data)  # the validation file present: the real splits
    (val,) = hellaswag.load("eval", "en")
    assert (val.context, val.question, val.choices[1], val.label) == (
        "A woman holds a bow.", "she", "shoots an arrow.", 1)
    assert [e.label for e in hellaswag.load("train", "en")] == [0]

    csqa = get_task("commonsenseqa", data_dir=data)
    (dev,) = csqa.load("eval", "en")
    assert (dev.context, dev.choices, dev.label) == ("Where is water (validation)?",
                                                     ("bank", "river", "tree", "shop", "sky"), 4)
    assert csqa.load("train", "en")[0].label == 1

    cosmos = get_task("cosmosqa", data_dir=data)  # train.csv present: train and eval are the real splits
    (ctrain,), (cdev,) = cosmos.load("train", "en"), cosmos.load("eval", "en")
    assert (ctrain.context, ctrain.choices[1], ctrain.label) == ('She said, "hi,\nthere".', "b, c", 3)
    assert cdev.label == 1 and cosmos.files("eval", "en") == [data / "english/cosmosqa/valid.csv"]
