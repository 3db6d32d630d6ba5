"""Conformance: xstilts' submission scorer gives what google-research/xtreme's ``evaluate.py`` gives.

Gold labels are written from real dev data (small slices of all nine tasks) in XTREME's layout,
then several prediction sets (gold itself, perturbed gold, random) are scored twice: by
:func:`xstilts.evaluation.submission.score_submission` (xstilts' metric code) and by the reference
below, an independent re-implementation of ``evaluate.py``'s semantics written for this test:
its file readers (``read_tag``, ``read_label``, ``read_squad``), seqeval's ``f1_score`` /
``precision_score`` / ``recall_score`` called the way ``evaluate.py`` calls them, SQuAD v1.1's and
MLQA's answer normalisation, BUCC's set F1, accuracy, and the averaging into ``avg_metric``,
group scores and ``all_task``. Every number must agree to 1e-9.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import string
import sys
import unicodedata
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score

from xstilts.errors import DataError
from xstilts.evaluation.submission import (
    score_submission,
    submission_file,
    write_gold,
    write_gold_examples,
    write_labels,
    write_predictions,
    write_submission,
    write_tags,
)
from xstilts.tasks import get_task

# ---------------------------------------------------------------------------------------------
# The reference: evaluate.py's semantics, re-implemented here

REF_LANGS = {  # XTREME's language list per task, as evaluate.py's XTREME_TASK2LANGS gives it
    "pawsx": "de en es fr ja ko zh",
    "xnli": "ar bg de el en es fr hi ru sw th tr ur vi zh",
    "panx": "ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw yo "
            "my zh kk tr et fi hu",
    "udpos": "af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te th tl tr ur vi yo zh",
    "bucc2018": "de fr ru zh",
    "tatoeba": "ar he vi id jv tl eu ml ta te af nl de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw zh kk "
               "tr et fi hu",
    "xquad": "en es de el ru tr ar vi th zh hi",
    "mlqa": "en es de ar hi vi zh",
    "tydiqa": "en ar bn fi id ko ru sw te",
}
REF_GROUPS = {"classification": ["pawsx", "xnli"], "tagging": ["udpos", "panx"],
              "qa": ["xquad", "mlqa", "tydiqa"], "retrieval": ["bucc2018", "tatoeba"]}


def ref_read_tag(path: Path) -> list[list[str]]:
    sentences, current = [], []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            current.append(raw.strip())
        else:
            sentences.append(current)
            current = []
    return sentences + ([current] if current else [])


def ref_read_label(path: Path) -> list[str]:
    return [raw.strip() for raw in path.read_text(encoding="utf-8").splitlines()]


def ref_squad_questions(path: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    articles = doc["data"] if "data" in doc else doc
    return [qa for art in articles for par in art["paragraphs"] for qa in par["qas"]]


REF_ALL_PUNCT = set(string.punctuation) | {
    chr(c) for c in range(sys.maxunicode) if unicodedata.category(chr(c))[0] == "P"}
REF_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "ar": r"\sال^|ال",
    "hi": None,
    "zh": None,
}


def ref_tokens(text: str, mlqa_lang: str | None) -> list[str]:
    """The normalised answer's tokens: SQuAD v1.1 rules, or MLQA's for ``mlqa_lang``."""
    text = text.lower()
    punct = set(string.punctuation) if mlqa_lang is None else REF_ALL_PUNCT
    text = "".join(c for c in text if c not in punct)
    pattern = REF_ARTICLES["en"] if mlqa_lang is None else REF_ARTICLES[mlqa_lang]
    if pattern:
        text = re.sub(pattern, " ", text)
    if mlqa_lang == "zh":  # every CJK character alone, other text split on whitespace
        return re.findall(r"[\u4e00-\u9fa5]|[^\s\u4e00-\u9fa5]+", text)
    return text.split()


def ref_qa(label_path: Path, pred_path: Path, mlqa_lang: str | None) -> dict[str, float]:
    answers = json.loads(pred_path.read_text(encoding="utf-8"))
    em_sum = f1_sum = 0.0
    questions = ref_squad_questions(label_path)
    for qa in questions:
        if qa["id"] not in answers:
            continue
        pred = ref_tokens(answers[qa["id"]], mlqa_lang)
        ems, f1s = [], []
        for gold_answer in qa["answers"]:
            gold = ref_tokens(gold_answer["text"], mlqa_lang)
            ems.append(1.0 if pred == gold else 0.0)
            overlap = sum((Counter(pred) & Counter(gold)).values())
            f1s.append(0.0 if overlap == 0 else 2 * overlap / (len(pred) + len(gold)))
        em_sum += max(ems)
        f1_sum += max(f1s)
    return {"exact_match": 100 * em_sum / len(questions), "f1": 100 * f1_sum / len(questions)}


def ref_score_file(task: str, pred_path: Path, label_path: Path, lang: str) -> dict[str, float]:
    if task in ("panx", "udpos"):
        gold, pred = ref_read_tag(label_path), ref_read_tag(pred_path)
        assert len(gold) == len(pred)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {"f1": 100 * f1_score(gold, pred), "precision": 100 * precision_score(gold, pred),
                    "recall": 100 * recall_score(gold, pred)}
    if task == "bucc2018":
        gold_pairs = {tuple(line.split("\t")) for line in ref_read_label(label_path)}
        pred_pairs = {tuple(line.split("\t")) for line in ref_read_label(pred_path)}
        hits = len(gold_pairs & pred_pairs)
        if not hits:
            return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
        p, r = hits / len(pred_pairs), hits / len(gold_pairs)
        return {"f1": 100 * 2 * p * r / (p + r), "precision": 100 * p, "recall": 100 * r}
    if task in ("xquad", "mlqa", "tydiqa"):
        return ref_qa(label_path, pred_path, lang if task == "mlqa" else None)
    gold, pred = ref_read_label(label_path), ref_read_label(pred_path)
    assert len(gold) == len(pred)
    return {"accuracy": 100 * sum(g == p for g, p in zip(gold, pred, strict=True)) / len(pred)}


def ref_evaluate(pred_dir: Path, label_dir: Path) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """evaluate.py's aggregation, over the XTREME languages that have a label file."""
    detailed: dict[str, dict[str, Any]] = {}
    for task, langs in REF_LANGS.items():
        if not ((pred_dir / task).is_dir() and (label_dir / task).is_dir()):
            continue
        ext = "json" if task in REF_GROUPS["qa"] else "tsv"
        per_metric: dict[str, dict[str, float]] = {}
        for lang in langs.split():
            label = label_dir / task / f"test-{lang}.{ext}"
            if label.exists():
                for metric, value in ref_score_file(task, pred_dir / task / f"test-{lang}.{ext}", label, lang).items():
                    per_metric.setdefault(metric, {})[lang] = value
        entry: dict[str, Any] = dict(per_metric)
        for metric, by_lang in per_metric.items():
            entry[f"avg_{metric}"] = sum(by_lang.values()) / len(by_lang)
        if task in REF_GROUPS["qa"]:
            entry["avg_metric"] = (entry["avg_exact_match"] + entry["avg_f1"]) / 2
        else:
            entry["avg_metric"] = entry["avg_f1"] if "avg_f1" in entry else entry["avg_accuracy"]
        detailed[task] = entry
    overall = {}
    if set(detailed) == set(REF_LANGS):
        overall["all_task"] = sum(d["avg_metric"] for d in detailed.values()) / len(detailed)
    for group, tasks in REF_GROUPS.items():
        if all(t in detailed for t in tasks):
            overall[group] = sum(detailed[t]["avg_metric"] for t in tasks) / len(tasks)
    return overall, detailed


def assert_same(ours: Any, ref: Any, where: str = "") -> None:
    if isinstance(ref, dict):
        assert set(ours) == set(ref), f"{where}: keys {sorted(ours)} != {sorted(ref)}"
        for k in ref:
            assert_same(ours[k], ref[k], f"{where}/{k}")
    else:
        assert ours == pytest.approx(ref, abs=1e-9, rel=0), where


# ---------------------------------------------------------------------------------------------
# Real data slices and prediction sets

SLICES = {  # xstilts task -> (languages, examples per language)
    "panx": (("en", "de", "zh", "ar"), 200),
    "udpos": (("en", "de", "ja", "tr"), 200),
    "xnli": (("en", "fr", "sw"), 300),
    "pawsx": (("en", "de", "ko"), 300),
    "xquad": (("en", "es", "zh", "th"), 100),
    "mlqa": (("en", "es", "de", "ar", "hi", "vi", "zh"), 100),
    "tydiqa": (("en", "fi", "ko"), 100),
    "tatoeba": (("de", "fr", "ja"), 200),
    "bucc": (("zh",), None),
}
PREDICTION_SETS = ("gold", "perturbed", "random")


def perturbed_answer(rng: random.Random, ex: Any) -> str | None:
    """A gold answer changed in ways the normalisations treat differently (None: leave unanswered)."""
    gold = ex.answers[0][0]
    words = gold.split()
    return rng.choice([
        gold,
        f"The {gold.upper()}.",  # case, article, punctuation: SQuAD forgives all three
        f"el «{gold}»",  # Spanish article and Unicode quotes: MLQA forgives them, SQuAD does not
        f"die {gold}, das",
        f"ال{gold}",
        " ".join(words[1:]) or gold[1:],  # partial overlap
        gold[: max(1, len(gold) // 2)],  # half the characters: partial credit where tokens are characters
        ex.context[:30],
        "",
        None,
    ])


def predictions_for(name: str, task: Any, lang: str, examples: list[Any], mode: str, rng: random.Random) -> Any:
    """One prediction set in the form :func:`write_predictions` takes."""
    if name in ("panx", "udpos"):
        def tag(t: str) -> str:
            if mode == "random" or (mode == "perturbed" and rng.random() < 0.15):
                return rng.choice(task.labels)
            return t
        return [[tag(t) for t in ex.tags] for ex in examples]
    if name in ("xnli", "pawsx"):
        return [rng.choice(task.labels) if mode == "random" or (mode == "perturbed" and rng.random() < 0.3)
                else ex.label for ex in examples]
    if name == "tatoeba":
        n = len(examples)
        return [rng.randrange(n) if mode == "random" or (mode == "perturbed" and rng.random() < 0.25) else j
                for j in range(n)]
    raise AssertionError(name)


@pytest.fixture(scope="module")
def submissions(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``labels`` and one folder per prediction set, all nine tasks, written by xstilts."""
    root = tmp_path_factory.mktemp("submission")
    rng = random.Random(15)
    for name, (langs, limit) in SLICES.items():
        task = get_task(name, None, shared_data)
        for lang in langs:
            if name == "bucc":
                write_gold(root / "labels", task, lang, limit)
                gold = sorted(next(c for c in reversed(task.read("eval", lang)) if c.gold is not None).gold)
                src = sorted({s for s, _ in gold})
                trg = sorted({t for _, t in gold})
                sets = {"gold": gold,
                        "perturbed": [(s, rng.choice(trg) if rng.random() < 0.3 else t) for s, t in gold
                                      if rng.random() < 0.8] + [("zh-999999999", "en-000000001")],
                        "random": [(rng.choice(src), rng.choice(trg)) for _ in range(300)]}
                for mode, pairs in sets.items():
                    write_predictions(root / mode, task, lang, [], pairs)
                continue
            examples = task.load("eval", lang, limit)
            write_gold_examples(root / "labels", task, lang, examples)
            for mode in PREDICTION_SETS:
                if name in ("xquad", "mlqa", "tydiqa"):
                    answers = {ex.id: ex.answers[0][0] if mode == "gold" else
                               perturbed_answer(rng, ex) if mode == "perturbed" else
                               rng.choice(examples).answers[0][0] for ex in examples}
                    kept = [(ex, a) for ex, a in answers.items() if a is not None]
                    by_id = {ex.id: ex for ex in examples}
                    write_predictions(root / mode, task, lang, [by_id[i] for i, _ in kept], [a for _, a in kept])
                else:
                    write_predictions(root / mode, task, lang, examples,
                                      predictions_for(name, task, lang, examples, mode, rng))
    return {"labels": root / "labels", **{m: root / m for m in PREDICTION_SETS}}


@pytest.mark.parametrize("mode", PREDICTION_SETS)
def test_scores_equal_the_reference_semantics(submissions: dict[str, Path], mode: str) -> None:
    ours = score_submission(submissions[mode], submissions["labels"])
    overall, detailed = ref_evaluate(submissions[mode], submissions["labels"])
    assert set(detailed) == set(REF_LANGS)  # all nine tasks scored
    assert_same(ours.detailed, detailed, mode)
    assert_same(ours.overall, overall, mode)
    assert set(ours.overall) == {"all_task", *REF_GROUPS}
    if mode == "gold":
        assert ours.overall["all_task"] == pytest.approx(100.0)
    else:
        assert ours.overall["all_task"] < 100.0
    # the languages not written are reported, not silently averaged away
    assert "mlqa" not in ours.missing_languages  # all seven written
    assert set(ours.missing_languages["bucc2018"]) == {"de", "fr", "ru"}
    assert set(ours.missing_languages["xquad"]) == set(REF_LANGS["xquad"].split()) - set(SLICES["xquad"][0])


def test_perturbations_reach_every_rule(submissions: dict[str, Path]) -> None:
    """The perturbed set is not trivially right or wrong: each task scores strictly between 0 and 100,
    and MLQA's language rules matter (scoring Spanish with SQuAD's rules gives another number)."""
    detailed = score_submission(submissions["perturbed"], submissions["labels"]).detailed
    for task, entry in detailed.items():
        assert 0 < entry["avg_metric"] < 100, task
    es_mlqa = ref_qa(submission_file(submissions["labels"], "mlqa", "es"),
                     submission_file(submissions["perturbed"], "mlqa", "es"), "es")
    es_squad = ref_qa(submission_file(submissions["labels"], "mlqa", "es"),
                      submission_file(submissions["perturbed"], "mlqa", "es"), None)
    assert es_mlqa["exact_match"] > es_squad["exact_match"]
    assert detailed["mlqa"]["exact_match"]["es"] == pytest.approx(es_mlqa["exact_match"], abs=1e-9)
    # UD-POS is seqeval F1 over prefix-less tags, which is not word accuracy
    gold = ref_read_tag(submission_file(submissions["labels"], "udpos", "en"))
    pred = ref_read_tag(submission_file(submissions["perturbed"], "udpos", "en"))
    pairs = [(g, p) for gs, ps in zip(gold, pred, strict=True) for g, p in zip(gs, ps, strict=True)]
    word_accuracy = 100 * sum(g == p for g, p in pairs) / len(pairs)
    assert abs(detailed["udpos"]["f1"]["en"] - word_accuracy) > 1


def test_layout_matches_xtreme(submissions: dict[str, Path], shared_data: Path) -> None:
    labels = submissions["labels"]
    assert sorted(p.name for p in labels.iterdir()) == sorted(REF_LANGS)
    assert sorted(p.name for p in (labels / "xquad").iterdir()) == [f"test-{x}.json" for x in ("en", "es", "th", "zh")]
    assert sorted(p.name for p in (labels / "bucc2018").iterdir()) == ["test-zh.tsv"]
    # tagging: the task's own gold tags, one per line, a blank line after each sentence
    first = get_task("panx", None, shared_data).load("eval", "en", 2)
    text = (labels / "panx" / "test-en.tsv").read_text(encoding="utf-8")
    assert text.startswith("\n".join(first[0].tags) + "\n\n" + "\n".join(first[1].tags) + "\n\n")
    answers = json.loads((submissions["gold"] / "tydiqa" / "test-fi.json").read_text(encoding="utf-8"))
    assert len(answers) == 100 and all(isinstance(k, str) and isinstance(v, str) for k, v in answers.items())
    bucc = (labels / "bucc2018" / "test-zh.tsv").read_text(encoding="utf-8").splitlines()
    assert len(bucc) == 257 and all(re.fullmatch(r"zh-\d+\ten-\d+", line) for line in bucc)


def test_unlisted_languages_are_ignored_as_evaluate_py_does(submissions: dict[str, Path], tmp_path: Path,
                                                           shared_data: Path) -> None:
    """XQuAD's ro is an XTREME-R language: evaluate.py (XTREME) never opens its files."""
    import shutil

    labels, preds = tmp_path / "labels", tmp_path / "preds"
    shutil.copytree(submissions["labels"] / "xquad", labels / "xquad")
    shutil.copytree(submissions["random"] / "xquad", preds / "xquad")
    before = score_submission(preds, labels).detailed["xquad"]
    task = get_task("xquad", None, shared_data)
    write_gold(labels, task, "ro", 20)
    (preds / "xquad" / "test-ro.json").write_text("not json", encoding="utf-8")
    after = score_submission(preds, labels).detailed["xquad"]
    assert after == before
    assert "ro" not in after["f1"]


def test_bad_submissions_are_one_line_errors(submissions: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    labels, preds = tmp_path / "labels", tmp_path / "preds"
    shutil.copytree(submissions["labels"] / "panx", labels / "panx")
    shutil.copytree(submissions["gold"] / "panx", preds / "panx")
    (preds / "panx" / "test-de.tsv").unlink()
    with pytest.raises(DataError, match=r"test-de.tsv: submission file not found"):
        score_submission(preds, labels)
    # the CoNLL token<TAB>tag layout instead of one tag per line: named with its line
    (preds / "panx" / "test-de.tsv").write_text("Berlin\tB-LOC\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test-de.tsv:1: expected one tag per line"):
        score_submission(preds, labels)
    # one sentence short
    gold_sentences = (submissions["gold"] / "panx" / "test-de.tsv").read_text(encoding="utf-8").split("\n\n")
    (preds / "panx" / "test-de.tsv").write_text("\n\n".join(gold_sentences[1:]), encoding="utf-8")
    with pytest.raises(DataError, match="199 sentences"):
        score_submission(preds, labels)


def test_writers_refuse_what_could_not_be_read_back(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tab"):
        write_tags(tmp_path / "t.tsv", [["B-PER", "I-PER\tx"]])
    with pytest.raises(ValueError, match="empty"):
        write_tags(tmp_path / "t.tsv", [["B-PER", ""]])
    assert not (tmp_path / "t.tsv").exists()



def _runs(root: Path) -> tuple[list[Path], list[Path]]:
    """The per-run folders ``write_predictions = true`` leaves: a panx and an xnli target run, each
    with German predictions under ``root/predictions/RUN`` and labels under ``root/labels/RUN``."""
    preds = [root / "predictions" / "tgt-panx", root / "predictions" / "tgt-xnli"]
    labels = [root / "labels" / run.name for run in preds]
    for where in (preds[0], labels[0]):
        write_tags(submission_file(where, "panx", "de"), [["B-PER", "O"], ["O", "B-LOC", "I-LOC"], ["O"]])
    for where in (preds[1], labels[1]):
        write_labels(submission_file(where, "xnli", "de"), ["entailment", "neutral"])
    return preds, labels


def test_write_submission_gathers_runs_into_a_new_folder(tmp_path: Path) -> None:
    preds, labels = _runs(tmp_path / "exp")
    out = tmp_path / "sub" / "OUT"
    assert write_submission(preds, labels, out) == ["panx", "xnli"]
    assert score_submission(out / "predictions", out / "labels").detailed["xnli"]["avg_metric"] == 100.0
    assert sorted(p.name for p in out.parent.iterdir()) == ["OUT"]  # no temporary sibling left


@pytest.mark.parametrize("damage", ["truncated", "not_utf8", "task_twice"])
def test_bad_runs_leave_no_submission_folder(tmp_path: Path, damage: str) -> None:
    preds, labels = _runs(tmp_path / "exp")
    source = submission_file(preds[0], "panx", "de")
    if damage == "truncated":  # the labels have sentences the predictions lack
        source.write_bytes(source.read_bytes()[:8])
        expected = rf"^{re.escape(str(source))}: 1 sentences but the labels {re.escape(str(labels[0]))}\S* have 3$"
    elif damage == "not_utf8":
        source.write_bytes(b"O\n\nx\xff\n")
        expected = rf"^{re.escape(str(source))}:3: invalid UTF-8 at byte 4$"
    else:  # a second seed of panx gathered with the first
        preds.append(shutil.copytree(preds[0], preds[0].with_name("tgt-panx-s2")))
        labels.append(shutil.copytree(labels[0], labels[0].with_name("tgt-panx-s2")))
        expected = r"task panx comes from two runs: tgt-panx and tgt-panx-s2"
    out = tmp_path / "sub" / "OUT"
    with pytest.raises(DataError) as err:
        write_submission(preds, labels, out)
    assert re.search(expected, err.value.one_line()), err.value.one_line()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no OUT, half-written or temporary
    # an OUT the user already has is not touched either
    write_labels(out / "predictions" / "xnli" / "test-de.tsv", ["contradiction"])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(DataError):
        write_submission(preds, labels, out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["OUT"]
