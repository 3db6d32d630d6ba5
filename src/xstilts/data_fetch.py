"""``xstilts data fetch``: build the data layout the readers expect from the Hugging Face Hub.

Why: the README's data folder (``../shared/data``) exists on this project's machines only, and
XTREME's own download script is partly broken (PAN-X's archive is gone). The Hub carries every
set as parquet; this module reads them with ``datasets`` and writes the files in exactly the
formats and places of ``../shared/data/README.md``, so every task reader works on the result.

Which Hub config becomes which file (``DIR`` = ``--to``; ``{l}`` a language of the task's XTREME
list, ``{L}`` the UD name of the language, ``{iso}`` LASER's ISO 639-3 code):

=============  ================================================  ===========================================================
task           Hub repository · config · split                   file under DIR
=============  ================================================  ===========================================================
panx           google/xtreme · PAN-X.en · train                  xtreme/panx/train-en.tsv (``token<TAB>tag``)
               google/xtreme · PAN-X.{l} · validation            xtreme/panx/dev-{l}.tsv
udpos          google/xtreme · udpos.English · train             xtreme/udpos/train-en.tsv (``token<TAB>UPOS``)
               google/xtreme · udpos.{L} · validation            xtreme/udpos/dev-{l}.tsv (languages with a dev set)
xnli           google/xtreme · XNLI · validation (by language)   xtreme/xnli/dev-{l}.tsv (premise, hypothesis, label)
pawsx          google/xtreme · PAWS-X.en · train                 xtreme/pawsx/train-en.tsv
               google/xtreme · PAWS-X.{l} · validation           xtreme/pawsx/dev-{l}.tsv
tatoeba        google/xtreme · tatoeba.{iso} · validation        xtreme/tatoeba/tatoeba.{iso}-eng.{iso} and .eng
                                                                 (LASER's aligned originals: line i translates line i)
xquad          google/xtreme · XQuAD.{l} · validation            xtreme/xquad/xquad.{l}.json (SQuAD v1.1 JSON)
mlqa           google/xtreme · MLQA.{l}.{l} · validation         xtreme/mlqa/MLQA_V1/dev/dev-context-{l}-question-{l}.json
tydiqa         google/xtreme · tydiqa · train (english- ids)     xtreme/tydiqa/tydiqa-goldp-v1.1-train/
                                                                 tydiqa.goldp.en.train.json (SQuAD v1.1 JSON)
               google/xtreme · tydiqa · validation (by id)       xtreme/tydiqa/tydiqa-goldp-v1.1-dev/
                                                                 tydiqa.goldp.{l}.dev.json
mnli           nyu-mll/glue · mnli · train, validation_matched   english/mnli/train.tsv, dev_matched.tsv (GLUE tsv)
sst2           nyu-mll/glue · sst2 · train, validation           english/sst2/train.tsv, dev.tsv
squad          rajpurkar/squad · plain_text · train, validation  english/squad/train-v1.1.json, dev-v1.1.json
qqp            nyu-mll/glue · qqp · train, validation            english/qqp/train.tsv, dev.tsv (GLUE QQP tsv)
anli           facebook/anli · plain_text · {s}_r{n}             english/anli/anli_v1.0/R{n}/{s}.jsonl (s: train, dev, test)
hellaswag      Rowan/hellaswag · default · train, validation     english/hellaswag/hellaswag_{train,val}.jsonl
commonsenseqa  tau/commonsense_qa · default · train, validation  english/commonsenseqa/train_rand_split.jsonl,
                                                                 dev_rand_split.jsonl
cosmosqa       allenai/cosmos_qa · default · train, validation   english/cosmosqa/train.csv, valid.csv
=============  ================================================  ===========================================================

TyDiQA: the Hub keeps Google's multilingual gold-passage files whole; the language is the id's prefix
(``english-…``), as XTREME's ``utils_preprocess.tydiqa_preprocess`` splits them. The English train file
is written as XTREME writes it (one untitled article per question, id cut to its last ``-`` field); the dev
files keep titles and full ids. Unlabelled rows (GLUE/Cosmos QA label -1, HellaSwag/CommonsenseQA test)
are left out; only labelled splits are fetched. Each file is written in the format its data set
distributes (the readers' format): QQP's qid1/qid2 and ANLI's model_label/emturk/genre/tag are not on
the Hub and are left empty or out (no reader uses them); ANLI's premise is written as ``context``, as
the release names it.

Column names checked against the Hub's loading scripts and dataset cards (``xtreme.py`` tydiqa: id,
title, context, question, answers; ``glue.py`` qqp: question1, question2, label, idx; ``anli``
plain_text: uid, premise, hypothesis, label, reason; hellaswag: ind, activity_label, ctx_a, ctx_b, ctx,
endings, source_id, split, split_type, label (a string); commonsense_qa: id, question, question_concept,
choices{label, text}, answerKey; cosmos_qa: id, context, question, answer0-3, label). Not verified
against the live Hub from here (no network): the config names ``default`` of Rowan/hellaswag,
tau/commonsense_qa and allenai/cosmos_qa (seen for the first two on their Hub pages, assumed for the
third), and that TyDiQA's Hub ids keep Google's language prefix (XTREME's own preprocessing relies on it).

With MNLI fetched, XNLI trains on it as XTREME does (:mod:`xstilts.tasks.xnli`, ``train_source =
"auto"``); with SQuAD's train set, XQuAD and MLQA train on it. Not covered: BUCC (``bucc18.{l}``: the
Hub keeps only the gold pairs, not the full monolingual sides among which the task mines them, so the
task cannot be rebuilt from it; bring its files as the data README describes), SNLI (ANLI+'s third
part; fetch ``anli`` and ``mnli`` and set ``components`` to drop it), CCG.

Resumable: ``DIR/.xstilts-fetch.json`` records every written file's SHA-256 and source; a file
present with the recorded checksum is skipped without touching the network. Every file is written
atomically (:func:`xstilts.faults.atomic_path`). ``source`` may name a local folder laid out as
the Hub's repositories are (``{source}/{repo}/{config}/{split}-*.parquet``): a mirror, or tests.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xstilts.errors import DataError, XstiltsError
from xstilts.faults import atomic_path

MANIFEST = ".xstilts-fetch.json"
XTREME = "google/xtreme"
GLUE = "nyu-mll/glue"
SQUAD = "rajpurkar/squad"
ANLI = "facebook/anli"
HELLASWAG = "Rowan/hellaswag"
COMMONSENSEQA = "tau/commonsense_qa"
COSMOSQA = "allenai/cosmos_qa"

#: The Hub's ClassLabel names, used when a parquet file carries integer labels without them.
PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
             "PUNCT", "SCONJ", "SYM", "VERB", "X")
GLUE_NLI = ("entailment", "neutral", "contradiction")
#: google/xtreme's UD-POS config names; XTREME's languages without a dev split (kk tl th yo) are left out.
UD_NAMES = {
    "af": "Afrikans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian", "ta": "Tamil",
    "te": "Telugu", "tr": "Turkish", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}


@dataclass(frozen=True)
class Part:
    """One file of the layout: where it goes, which Hub split it comes from, how its text is made."""

    path: str  # relative to DIR
    repo: str
    config: str
    split: str
    render: Callable[[Any], str]  # a datasets.Dataset -> the file's text

    @property
    def source(self) -> str:
        return f"{self.repo} · {self.config} · {self.split}"


def _clean(text: Any) -> str:
    """One line, one field: tabs and newlines inside a value would break the tsv/line formats."""
    return " ".join(str(text).replace("\t", " ").splitlines()).strip()


def _names(ds: Any, column: str, default: Sequence[str]) -> Sequence[str]:
    """The label names of a (sequence of) ClassLabel column, else the Hub's known ones."""
    feature = ds.features.get(column)
    feature = getattr(feature, "feature", feature)
    return tuple(getattr(feature, "names", None) or default)


def _label(value: Any, names: Sequence[str]) -> str:
    return names[value] if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _conll(tokens_col: str, tags_col: str, default: Sequence[str]) -> Callable[[Any], str]:
    def render(ds: Any) -> str:
        names = _names(ds, tags_col, default)
        blocks = ["\n".join(f"{_clean(tok)}\t{_label(tag, names)}" for tok, tag in zip(row[tokens_col], row[tags_col],
                                                                                        strict=True))
                  for row in ds if row[tokens_col]]
        return "\n\n".join(blocks) + "\n"
    return render


def _pairs(a: str, b: str, label: str, default: Sequence[str], language: str | None = None) -> Callable[[Any], str]:
    def render(ds: Any) -> str:
        names = _names(ds, label, default)
        rows = [f"{_clean(r[a])}\t{_clean(r[b])}\t{_label(r[label], names)}" for r in ds
                if language is None or r.get("language") == language]
        if not rows:
            raise DataError(f"no rows{f' for language {language!r}' if language else ''} in the Hub split")
        return "".join(f"{line}\n" for line in rows)
    return render


def _sst2(ds: Any) -> str:
    return "sentence\tlabel\n" + "".join(f"{_clean(r['sentence'])}\t{int(r['label'])}\n" for r in ds)


GLUE_MNLI_HEADER = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                    "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label")


def _mnli(ds: Any) -> str:
    """GLUE's MNLI tsv (sentences at columns 8/9, gold label last); columns the Hub lacks stay empty."""
    names = _names(ds, "label", GLUE_NLI)
    lines = ["\t".join(GLUE_MNLI_HEADER)]
    for i, r in enumerate(ds):
        if int(r["label"]) < 0:  # unlabelled (GLUE's test): GLUE writes '-' and the reader skips it
            continue
        gold = _label(int(r["label"]), names)
        lines.append("\t".join([str(r.get("idx", i)), "", "", "", "", "", "", "", _clean(r["premise"]),
                                _clean(r["hypothesis"]), gold, gold]))
    return "\n".join(lines) + "\n"


def _answers(r: Any) -> list[dict[str, Any]]:
    """The Hub's ``answers`` (a struct of lists) as SQuAD's list of {text, answer_start}."""
    answers = r["answers"]
    return [{"text": t, "answer_start": int(s)} for t, s in zip(answers["text"], answers["answer_start"], strict=True)]


def _squad_json(rows: Iterable[Any]) -> str:
    """SQuAD v1.1 JSON: paragraphs grouped by title and context, in the Hub's row order."""
    articles: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        paragraphs = articles.setdefault(r.get("title") or "", {})
        paragraphs.setdefault(r["context"], []).append({"id": r["id"], "question": r["question"],
                                                        "answers": _answers(r)})
    data = [{"title": title, "paragraphs": [{"context": c, "qas": q} for c, q in paragraphs.items()]}
            for title, paragraphs in articles.items()]
    return json.dumps({"version": "1.1", "data": data}, ensure_ascii=False) + "\n"


#: TyDiQA-GoldP ids start with the language's English name (``english-<hash>-<n>``; a negative hash gives
#: ``english--<hash>-<n>``): XTREME's utils_preprocess splits the one multilingual file by it.
TYDIQA_LANGS = {"ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian",
                "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu"}
TYDIQA_VERSION = "TyDiQA-GoldP-1.1-for-SQuAD-1.1"  # the version string of Google's gold-passage files


def _tydiqa_rows(ds: Any, lang: str) -> list[Any]:
    rows = [r for r in ds if str(r["id"]).split("-")[0] == TYDIQA_LANGS[lang]]
    if not rows:
        raise DataError(f"no rows whose id starts with {TYDIQA_LANGS[lang]!r}- in the Hub split")
    return rows


def _tydiqa_dev(lang: str) -> Callable[[Any], str]:
    """Google's per-language dev file (tydiqa-goldp-dev-{language}.json, renamed by XTREME): ids kept."""
    return lambda ds: _squad_json(_tydiqa_rows(ds, lang))


def _tydiqa_train(ds: Any) -> str:
    """XTREME's tydiqa.goldp.en.train.json: the English questions of the multilingual train set, each its
    own untitled article, the id cut to its last ``-`` field (as utils_preprocess.tydiqa_preprocess writes)."""
    data = [{"paragraphs": [{"context": r["context"], "qas": [{"answers": _answers(r), "question": r["question"],
                                                               "id": str(r["id"]).split("-")[-1]}]}]}
            for r in _tydiqa_rows(ds, "en")]
    return json.dumps({"data": data, "version": TYDIQA_VERSION}, ensure_ascii=False) + "\n"


def _jsonl(objects: Iterable[dict[str, Any]]) -> str:
    lines = [json.dumps(obj, ensure_ascii=False) for obj in objects]
    if not lines:
        raise DataError("no labelled rows in the Hub split")
    return "".join(f"{line}\n" for line in lines)


QQP_HEADER = ("id", "qid1", "qid2", "question1", "question2", "is_duplicate")


def _qqp(ds: Any) -> str:
    """GLUE's QQP tsv; the Hub has no qid1/qid2 (left empty), unlabelled (-1) rows are left out, and so are
    rows with an empty question (the reader would skip them as broken, with a warning)."""
    lines = ["\t".join(QQP_HEADER)]
    for i, r in enumerate(ds):
        q1, q2, label = _clean(r["question1"]), _clean(r["question2"]), int(r["label"])
        if label in (0, 1) and q1 and q2:
            lines.append("\t".join([str(r.get("idx", i)), "", "", q1, q2, str(label)]))
    return "\n".join(lines) + "\n"


ANLI_LABELS = ("e", "n", "c")  # the release's spelling of the Hub's ClassLabel entailment/neutral/contradiction


def _anli(ds: Any) -> str:
    """ANLI v1.0's jsonl: ``uid``, ``context`` (the premise), ``hypothesis``, ``label`` e/n/c, ``reason``;
    the release's ``model_label``, ``emturk``, ``genre`` and ``tag`` are not on the Hub."""
    names = _names(ds, "label", GLUE_NLI)
    short = dict(zip(GLUE_NLI, ANLI_LABELS, strict=True))
    return _jsonl({"uid": r["uid"], "context": r["premise"], "hypothesis": r["hypothesis"],
                   "label": short[_label(int(r["label"]), names)], "reason": r.get("reason") or ""}
                  for r in ds if int(r["label"]) >= 0)


HELLASWAG_KEYS = ("ind", "activity_label", "ctx_a", "ctx_b", "ctx", "split", "split_type", "label", "endings",
                  "source_id")


def _hellaswag(ds: Any) -> str:
    """HellaSwag's jsonl (label an int, as released; the Hub stores it as a string, empty in test)."""
    return _jsonl({k: (int(r["label"]) if k == "label" else list(r["endings"]) if k == "endings" else r[k])
                   for k in HELLASWAG_KEYS}
                  for r in ds if str(r["label"]).strip().isdigit())


def _commonsenseqa(ds: Any) -> str:
    """CommonsenseQA's jsonl: the Hub's flat ``question``/``question_concept``/``choices`` nested back into
    ``question{question_concept, choices[{label, text}], stem}``."""
    return _jsonl({"answerKey": r["answerKey"], "id": r["id"],
                   "question": {"question_concept": r.get("question_concept") or "",
                                "choices": [{"label": lab, "text": text} for lab, text in
                                            zip(r["choices"]["label"], r["choices"]["text"], strict=True)],
                                "stem": r["question"]}}
                  for r in ds if r["answerKey"])


COSMOSQA_FIELDS = ("id", "context", "question", "answer0", "answer1", "answer2", "answer3", "label")


def _cosmosqa(ds: Any) -> str:
    """Cosmos QA's csv (header id, context, question, answer0-3, label); unlabelled (-1) rows left out."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COSMOSQA_FIELDS)
    rows = [[r[f] for f in COSMOSQA_FIELDS] for r in ds if int(r["label"]) >= 0]
    if not rows:
        raise DataError("no labelled rows in the Hub split")
    writer.writerows(rows)
    return buf.getvalue()


def _column(name: str) -> Callable[[Any], str]:
    return lambda ds: "".join(f"{_clean(r[name])}\n" for r in ds)


def task_parts(task: str, languages: Sequence[str] | None = None) -> list[Part]:
    """The files ``task`` needs (its XTREME languages, or ``languages``); DataError for a task not covered."""
    from xstilts.tasks import get_task
    from xstilts.tasks.tatoeba import ISO3

    def langs(default: Iterable[str]) -> list[str]:
        default = list(default)
        return [lang for lang in default if languages is None or lang in languages]

    t = get_task(task)
    if task == "panx":
        return [Part("xtreme/panx/train-en.tsv", XTREME, "PAN-X.en", "train", _conll("tokens", "ner_tags", PANX_TAGS)),
                *[Part(f"xtreme/panx/dev-{lang}.tsv", XTREME, f"PAN-X.{lang}", "validation",
                       _conll("tokens", "ner_tags", PANX_TAGS)) for lang in langs(t.languages)]]
    if task == "udpos":
        return [Part("xtreme/udpos/train-en.tsv", XTREME, "udpos.English", "train",
                     _conll("tokens", "pos_tags", UPOS_TAGS)),
                *[Part(f"xtreme/udpos/dev-{lang}.tsv", XTREME, f"udpos.{UD_NAMES[lang]}", "validation",
                       _conll("tokens", "pos_tags", UPOS_TAGS)) for lang in langs(t.languages) if lang in UD_NAMES]]
    if task == "xnli":
        return [Part(f"xtreme/xnli/dev-{lang}.tsv", XTREME, "XNLI", "validation",
                     _pairs("sentence1", "sentence2", "gold_label", GLUE_NLI, language=lang))
                for lang in langs(t.languages)]
    if task == "pawsx":
        render = _pairs("sentence1", "sentence2", "label", ("0", "1"))
        return [Part("xtreme/pawsx/train-en.tsv", XTREME, "PAWS-X.en", "train", render),
                *[Part(f"xtreme/pawsx/dev-{lang}.tsv", XTREME, f"PAWS-X.{lang}", "validation", render)
                  for lang in langs(t.languages)]]
    if task == "tatoeba":
        out = []
        for lang in langs(t.languages):
            iso = ISO3.get(lang, lang)
            stem = f"xtreme/tatoeba/tatoeba.{iso}-eng"
            out += [Part(f"{stem}.{iso}", XTREME, f"tatoeba.{iso}", "validation", _column("source_sentence")),
                    Part(f"{stem}.eng", XTREME, f"tatoeba.{iso}", "validation", _column("target_sentence"))]
        return out
    if task == "xquad":
        return [Part(f"xtreme/xquad/xquad.{lang}.json", XTREME, f"XQuAD.{lang}", "validation", _squad_json)
                for lang in langs(t.languages)]
    if task == "mlqa":
        return [Part(f"xtreme/mlqa/MLQA_V1/dev/dev-context-{lang}-question-{lang}.json", XTREME,
                     f"MLQA.{lang}.{lang}", "validation", _squad_json) for lang in langs(t.languages)]
    if task == "mnli":
        return [Part("english/mnli/train.tsv", GLUE, "mnli", "train", _mnli),
                Part("english/mnli/dev_matched.tsv", GLUE, "mnli", "validation_matched", _mnli)]
    if task == "sst2":
        return [Part("english/sst2/train.tsv", GLUE, "sst2", "train", _sst2),
                Part("english/sst2/dev.tsv", GLUE, "sst2", "validation", _sst2)]
    if task == "squad":
        return [Part("english/squad/train-v1.1.json", SQUAD, "plain_text", "train", _squad_json),
                Part("english/squad/dev-v1.1.json", SQUAD, "plain_text", "validation", _squad_json)]
    if task == "tydiqa":
        return [Part("xtreme/tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json", XTREME, "tydiqa", "train",
                     _tydiqa_train),
                *[Part(f"xtreme/tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json", XTREME, "tydiqa",
                       "validation", _tydiqa_dev(lang)) for lang in langs(t.languages)]]
    if task == "qqp":
        return [Part("english/qqp/train.tsv", GLUE, "qqp", "train", _qqp),
                Part("english/qqp/dev.tsv", GLUE, "qqp", "validation", _qqp)]
    if task == "anli":
        return [Part(f"english/anli/anli_v1.0/R{n}/{split}.jsonl", ANLI, "plain_text", f"{split}_r{n}", _anli)
                for n in (1, 2, 3) for split in ("train", "dev", "test")]
    if task == "hellaswag":
        return [Part("english/hellaswag/hellaswag_train.jsonl", HELLASWAG, "default", "train", _hellaswag),
                Part("english/hellaswag/hellaswag_val.jsonl", HELLASWAG, "default", "validation", _hellaswag)]
    if task == "commonsenseqa":
        return [Part("english/commonsenseqa/train_rand_split.jsonl", COMMONSENSEQA, "default", "train",
                     _commonsenseqa),
                Part("english/commonsenseqa/dev_rand_split.jsonl", COMMONSENSEQA, "default", "validation",
                     _commonsenseqa)]
    if task == "cosmosqa":
        return [Part("english/cosmosqa/train.csv", COSMOSQA, "default", "train", _cosmosqa),
                Part("english/cosmosqa/valid.csv", COSMOSQA, "default", "validation", _cosmosqa)]
    raise DataError(f"data fetch does not cover {task!r} yet; covered: {', '.join(COVERED)} "
                    "(bring its files as ../shared/data/README.md describes)")


COVERED = ("panx", "udpos", "xnli", "pawsx", "tatoeba", "xquad", "mlqa", "tydiqa", "mnli", "sst2", "squad",
           "qqp", "anli", "hellaswag", "commonsenseqa", "cosmosqa")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Loader:
    """Loads each Hub split once per fetch: from the Hub, or from a local folder laid out like it."""

    def __init__(self, source: str | Path | None = None):
        self.source = Path(source) if source is not None else None
        self._cache: dict[tuple[str, str, str], Any] = {}

    def __call__(self, part: Part) -> Any:
        key = (part.repo, part.config, part.split)
        if key not in self._cache:
            self._cache[key] = self._load(part)
        return self._cache[key]

    def _load(self, part: Part) -> Any:
        import datasets

        where = part.source
        try:
            if self.source is None:
                return datasets.load_dataset(part.repo, part.config, split=part.split)
            folder = self.source / part.repo / part.config
            files = sorted(str(p) for p in folder.glob(f"{part.split}-*.parquet"))
            if not files:
                raise DataError(f"no {part.split}-*.parquet files for {where}", folder)
            return datasets.load_dataset("parquet", data_files={part.split: files}, split=part.split)
        except XstiltsError:
            raise
        except Exception as exc:  # offline: ConnectionError, OfflineModeIsEnabled, DatasetNotFoundError, ...
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise DataError(f"could not reach {where} on the Hugging Face Hub ({type(exc).__name__}: {reason})") \
                from None


@dataclass
class FetchReport:
    written: list[str]
    skipped: list[str]
    manifest: Path


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")).get("files", {}))
    except (json.JSONDecodeError, AttributeError):
        raise DataError("not a fetch manifest (delete it to fetch everything again)", path) from None


def _write_manifest(path: Path, files: dict[str, dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"files": dict(sorted(files.items()))}, indent=1) + "\n", encoding="utf-8")


def fetch(tasks: Sequence[str], to: str | Path, *, languages: Sequence[str] | None = None,
          source: str | Path | None = None, progress: bool = True) -> FetchReport:
    """Write every file of ``tasks`` under ``to``; files already there with the recorded checksum are kept."""
    from xstilts.progress import progress_bar

    root = Path(to)
    parts = [p for task in dict.fromkeys(tasks) for p in task_parts(task, languages)]
    manifest_path = root / MANIFEST
    manifest = _read_manifest(manifest_path)
    load = Loader(source)
    written, skipped = [], []
    with progress_bar("fetching", len(parts), enabled=progress) as advance:
        for part in parts:
            target = root / part.path
            recorded = manifest.get(part.path)
            if recorded and target.is_file() and sha256(target) == recorded.get("sha256"):
                skipped.append(part.path)
                advance(1)
                continue
            text = part.render(load(part))
            with atomic_path(target) as tmp:
                tmp.write_text(text, encoding="utf-8")
            manifest[part.path] = {"sha256": sha256(target), "source": part.source}
            _write_manifest(manifest_path, manifest)  # after each file: an interrupted fetch resumes here
            written.append(part.path)
            advance(1)
    if not manifest_path.is_file():
        _write_manifest(manifest_path, manifest)
    return FetchReport(written, skipped, manifest_path)
