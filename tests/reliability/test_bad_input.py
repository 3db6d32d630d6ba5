"""The bad-input catalogue: every way a user's files or config can be wrong, through the real CLI.

Each case starts from a working experiment (tiny model, a private copy of the mini data), breaks
one thing, runs ``xstilts run`` and asserts what a user must see: exit code 2, exactly one
``error:`` line naming the file (and line, where there is one) with the reason, no traceback, and
nothing half-done left behind (no run marked done, no score, no checkpoint).

BOMs and Windows line endings are not errors: ``test_bom_and_crlf_are_accepted`` runs a study on
data carrying both and checks every reader returns exactly the examples of the clean files.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub.constants
import pytest
from _mounts import unwritable_dir
from _reliability import checkpoint_files, done_rows, experiment_toml
from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.tasks import get_task


@dataclass
class Expect:
    """What the error line must say: a fragment of the reason, and where (file, line)."""

    fragment: str
    path: Path | None = None
    line: int | None = None


class Bench:
    """A working experiment in a temp dir; cases break one thing in it (``undo``: mounts, patches)."""

    def __init__(self, tmp: Path, mini_data: Path, model: Path, undo: ExitStack | None = None,
                 monkeypatch: pytest.MonkeyPatch | None = None):
        self.tmp, self.model = tmp, model
        self.undo, self.monkeypatch = undo or ExitStack(), monkeypatch or pytest.MonkeyPatch()
        self.data = tmp / "data"
        shutil.copytree(mini_data, self.data)
        self.out = tmp / "exp"
        self.config = tmp / "exp.toml"
        self.write()

    def toml(self, **kwargs: object) -> str:
        return experiment_toml(self.model, self.data, self.out, **kwargs)  # type: ignore[arg-type]

    def write(self, text: str | None = None, **kwargs: object) -> Path:
        self.config.write_text(text if text is not None else self.toml(**kwargs), encoding="utf-8")
        return self.config

    def edit(self, old: str, new: str, count: int = 1) -> int:
        """Replace text in the config; returns the line the replacement starts on."""
        text = self.config.read_text(encoding="utf-8")
        assert old in text, old
        pos = text.index(old)
        self.config.write_text(text.replace(old, new, count), encoding="utf-8")
        return text.count("\n", 0, pos) + 1

    def file(self, rel: str) -> Path:
        return self.data / rel


def set_line(path: Path, lineno: int, new: bytes | str) -> int:
    """Replace line ``lineno`` (1-based) of a file; returns it."""
    lines = path.read_bytes().split(b"\n")
    lines[lineno - 1] = new.encode() if isinstance(new, str) else new
    path.write_bytes(b"\n".join(lines))
    return lineno


def data_line(path: Path, n: int, header: bool = False) -> int:
    """The line number of the n-th (1-based) non-blank data line of a file."""
    seen = 0
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if header and i == 1:
            continue
        if line.strip():
            seen += 1
            if seen == n:
                return i
    raise AssertionError(f"{path} has fewer than {n} data lines")


def nli_rows(b: Bench, n: int = 24) -> list[tuple[str, str, str]]:
    rows = [tuple(line.split("\t")) for line in b.file("xtreme/xnli/dev-en.tsv").read_text().splitlines()]
    return rows[:n]  # type: ignore[return-value]


# ---- files in the other distributed formats, built from the mini data's sentences -----------------

GLUE_MNLI_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
XNLI1_COLUMNS = ("language gold_label sentence1_binary_parse sentence2_binary_parse sentence1_parse "
                 "sentence2_parse sentence1 sentence2 promptID pairID genre label1 label2 label3 label4 "
                 "label5 sentence1_tokenized sentence2_tokenized match").split()


def write_mnli_tsv(b: Bench) -> Path:
    folder = b.file("english/mnli")
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.tsv", nli_rows(b)), ("dev_matched.tsv", nli_rows(b, 12))):
        body = [f"{i}\t{i}\t{i}n\tfiction\t( {p} )\t( {h} )\t(ROOT {p})\t(ROOT {h})\t{p}\t{h}\t{lab}\t{lab}"
                for i, (p, h, lab) in enumerate(rows)]
        (folder / name).write_text("\n".join([GLUE_MNLI_HEADER, *body]) + "\n", encoding="utf-8")
    return folder


def write_mnli_jsonl(b: Bench) -> Path:
    folder = b.file("english/mnli")
    folder.mkdir(parents=True, exist_ok=True)
    files = (("multinli_1.0_train.jsonl", nli_rows(b)), ("multinli_1.0_dev_matched.jsonl", nli_rows(b, 12)))
    for name, rows in files:
        body = [json.dumps({"annotator_labels": [lab], "genre": "fiction", "gold_label": lab,
                            "pairID": f"{i}n", "promptID": i, "sentence1": p, "sentence2": h})
                for i, (p, h, lab) in enumerate(rows)]
        (folder / name).write_text("\n".join(body) + "\n", encoding="utf-8")
    return folder


MNLI_JSONL_OPTIONS = """[intermediate.task_options.mnli]
train_file = "multinli_1.0_train.jsonl"
eval_file = "multinli_1.0_dev_matched.jsonl"
"""


def write_xnli1(b: Bench, languages: tuple[str, ...] = ("en", "de", "sw")) -> Path:
    """The XNLI-1.0 ``xnli.dev.tsv`` form: one file, 19 columns, a ``language`` column."""
    lines = ["\t".join(XNLI1_COLUMNS)]
    for lang in languages:
        for i, line in enumerate(b.file(f"xtreme/xnli/dev-{lang}.tsv").read_text().splitlines()):
            p, h, lab = line.split("\t")
            row = {c: "" for c in XNLI1_COLUMNS}
            row.update(language=lang, gold_label=lab, sentence1=p, sentence2=h, promptID=str(i // 3),
                       pairID=str(i), genre="fiction", label1=lab, match="True")
            lines.append("\t".join(row[c] for c in XNLI1_COLUMNS))
    path = b.tmp / "XNLI-1.0" / "xnli.dev.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def xnli1_options(path: Path) -> str:
    return f'[target.task_options.xnli]\nxnli_file = "{path}"\n'


def write_english(b: Bench, task: str) -> Path:
    """A small valid data folder for one of the other intermediate tasks."""
    folder = b.tmp / task
    folder.mkdir()
    rows = nli_rows(b, 16)
    if task == "sst2":
        for name in ("train.tsv", "dev.tsv"):
            body = [f"{p}\t{i % 2}" for i, (p, _, _) in enumerate(rows)]
            (folder / name).write_text("\n".join(["sentence\tlabel", *body]) + "\n", encoding="utf-8")
    elif task == "qqp":
        for name in ("train.tsv", "dev.tsv"):
            body = [f"{i}\t{2 * i}\t{2 * i + 1}\t{p}?\t{h}?\t{i % 2}"
                    for i, (p, h, _) in enumerate(rows)]
            header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
            (folder / name).write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    elif task == "hellaswag":
        for name in ("hellaswag_train.jsonl", "hellaswag_val.jsonl"):
            body = [json.dumps({"ind": i, "ctx_a": p, "ctx_b": "then", "label": i % 4, "source_id": f"s{i}",
                                "endings": [h, "a", "b", "c"]}) for i, (p, h, _) in enumerate(rows)]
            (folder / name).write_text("\n".join(body) + "\n", encoding="utf-8")
    elif task == "commonsenseqa":
        for name in ("train_rand_split.jsonl", "dev_rand_split.jsonl"):
            body = [json.dumps({"answerKey": "A", "id": str(i), "question": {"stem": p, "choices": [
                {"label": k, "text": t} for k, t in zip("ABC", (h, "x", "y"), strict=True)]}})
                for i, (p, h, _) in enumerate(rows)]
            (folder / name).write_text("\n".join(body) + "\n", encoding="utf-8")
    elif task == "squad":
        articles = [{"title": f"article {a}", "paragraphs": [{"context": p, "qas": [
            {"id": f"q{a}-{i}", "question": "What?", "answers": [{"text": p.split()[0], "answer_start": 0}]}]}
            for i, (p, _, _) in enumerate(rows[a * 4: a * 4 + 4])]} for a in range(4)]
        (folder / "squaddev_v1.1.json").write_text(json.dumps({"version": "1.1", "data": articles}, indent=1),
                                                   encoding="utf-8")
    elif task == "ccg":
        (folder / "tags_to_id.json").write_text(json.dumps({"N": 0, "NP": 1, ".": 2}), encoding="utf-8")
        for name in ("ccg.train", "ccg.dev"):
            (folder / name).write_text("Dogs bark .\tN NP .\nCats sleep .\tN NP .\n", encoding="utf-8")
    else:  # pragma: no cover - a case names a task this helper does not know
        raise AssertionError(task)
    return folder


def english_setting(b: Bench, task: str) -> Path:
    folder = write_english(b, task)
    b.write(settings=f'["{task}"]', tasks='["xnli"]', languages='["en"]',
            extra=f'[intermediate.task_options.{task}]\ndir = "{folder}"\n')
    return folder


# ---- the catalogue --------------------------------------------------------------------------------

CASES: dict[str, Callable[[Bench], Expect]] = {}


def case(fn: Callable[[Bench], Expect]) -> Callable[[Bench], Expect]:
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn


@case
def config_bad_toml(b: Bench) -> Expect:
    line = b.edit('name = "reliability"', 'name = "reliability')  # unterminated string
    return Expect("invalid TOML", b.config, line)


@case
def config_unknown_key(b: Bench) -> Expect:
    line = b.edit('name = "reliability"', 'name = "reliability"\nnmae = "typo"') + 1
    return Expect("key 'nmae': unknown key", b.config, line)


@case
def config_unknown_nested_key(b: Bench) -> Expect:
    text = b.config.read_text()
    b.config.write_text(text.replace("[target.train]\nlr = 1e-3", "[target.train]\nlearning_rate = 1e-3"))
    line = b.config.read_text().splitlines().index("learning_rate = 1e-3") + 1
    return Expect("key 'target.train.learning_rate': unknown key", b.config, line)


@case
def config_negative_lr(b: Bench) -> Expect:
    return Expect("key 'intermediate.train.lr': Input should be greater than 0", b.config,
                  b.edit("lr = 1e-3", "lr = -1e-3"))


@case
def config_huge_lr(b: Bench) -> Expect:
    text = b.config.read_text()
    b.config.write_text(text.replace("[target.train]\nlr = 1e-3", "[target.train]\nlr = 1e6"))
    line = b.config.read_text().splitlines().index("lr = 1e6") + 1
    return Expect("key 'target.train.lr': Input should be less than or equal to 1", b.config, line)


@case
def config_batch_size_zero(b: Bench) -> Expect:
    return Expect("key 'intermediate.train.batch_size'", b.config, b.edit("batch_size = 8", "batch_size = 0"))


@case
def config_max_length_3(b: Bench) -> Expect:
    line = b.edit("max_length = 32", "max_length = 3")
    return Expect("key 'intermediate.train.max_length'", b.config, line)


@case
def config_wrong_type(b: Bench) -> Expect:
    return Expect("key 'seeds'", b.config, b.edit("seeds = [1]", 'seeds = "one"'))


@case
def config_unknown_target_task(b: Bench) -> Expect:
    line = b.edit('tasks = ["panx", "xnli"]', 'tasks = ["panx", "xnlii"]')
    return Expect("unknown task 'xnlii'", b.config, line)


@case
def config_unknown_intermediate_task(b: Bench) -> Expect:
    line = b.edit('settings = ["none", "sick"]', 'settings = ["none", "sikc"]')
    return Expect("unknown task 'sikc'", b.config, line)


@case
def config_model_not_a_model(b: Bench) -> Expect:
    folder = b.tmp / "not-a-model"
    folder.mkdir()
    (folder / "notes.txt").write_text("weights are elsewhere")
    b.edit(f'model = "{b.model}"', f'model = "{folder}"')
    return Expect("not a model directory", folder)


@case
def config_model_config_corrupt(b: Bench) -> Expect:
    folder = b.tmp / "broken-model"
    shutil.copytree(b.model, folder)
    (folder / "config.json").write_text('{"model_type": "bert", "hidden_size": ')  # cut off mid-write
    b.edit(f'model = "{b.model}"', f'model = "{folder}"')
    return Expect("cannot load", folder)


@case
def config_data_dir_missing(b: Bench) -> Expect:
    missing = b.tmp / "no-such-data"
    b.edit(f'data_dir = "{b.data}"', f'data_dir = "{missing}"')
    return Expect("data directory not found", missing)


@case
def config_file_missing(b: Bench) -> Expect:
    b.config.unlink()
    return Expect("config file not found", b.config)


@case
def config_output_dir_is_a_file(b: Bench) -> Expect:
    b.out.write_text("not a directory")
    return Expect("output directory is not a directory (a file is in the way)", b.out)


@case
def config_output_dir_under_a_file(b: Bench) -> Expect:
    plain = b.tmp / "plain-file"
    plain.write_text("not a directory")
    b.edit(f'output_dir = "{b.out}"', f'output_dir = "{plain / "exp"}"')
    return Expect(f"cannot create the output directory: {plain} is a file, not a directory", plain / "exp")


@case
def config_output_dir_read_only(b: Bench) -> Expect:
    locked = b.undo.enter_context(unwritable_dir(b.tmp / "read-only"))
    b.edit(f'output_dir = "{b.out}"', f'output_dir = "{locked / "exp"}"')
    return Expect(f"cannot create the output directory: {locked} is not writable", locked / "exp")


@case
def config_cache_dir_under_a_file(b: Bench) -> Expect:
    plain = b.tmp / "plain-file"
    plain.write_text("not a directory")
    b.write(runtime=f'progress = false\nthreads = 1\ncache_dir = "{plain / "cache"}"\n')
    return Expect(f"cannot create the cache directory: {plain} is a file, not a directory", plain / "cache")


@case
def config_model_hub_id_unavailable(b: Bench) -> Expect:
    b.monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network: fail at once
    b.edit(f'model = "{b.model}"', 'model = "xstilts-test/no-such-model"')
    return Expect("model 'xstilts-test/no-such-model' is not a local directory, and its config is neither in "
                  "the Hugging Face cache nor downloadable from here")


@case
def config_no_seeds(b: Bench) -> Expect:
    return Expect("key 'seeds': List should have at least 1 item", b.config, b.edit("seeds = [1]", "seeds = []"))


@case
def output_store_is_a_directory(b: Bench) -> Expect:
    (b.out / "results.sqlite").mkdir(parents=True)
    return Expect("results store is not a writable file", b.out / "results.sqlite")


def _config_line(b: Bench, text: str) -> int:
    return b.config.read_text().splitlines().index(text) + 1


@case
def config_repeated_seed(b: Bench) -> Expect:
    return Expect("key 'seeds': seeds must be distinct", b.config, b.edit("seeds = [1]", "seeds = [1, 1]"))


@case
def config_unknown_language(b: Bench) -> Expect:
    line = b.edit('languages = ["en", "de", "sw"]', 'languages = ["xx"]')
    return Expect("key 'target.languages': no target evaluates on 'xx'", b.config, line)


@case
def config_language_in_capitals(b: Bench) -> Expect:
    line = b.edit('languages = ["en", "de", "sw"]', 'languages = ["en", "DE"]')
    return Expect("no target evaluates on 'DE' (did you mean 'de'?)", b.config, line)


@case
def config_unknown_task_in_overrides(b: Bench) -> Expect:
    b.write(extra="[target.overrides.pnax]\nlr = 0.5\n")
    return Expect("key 'target.overrides.pnax': unknown task 'pnax' (did you mean 'panx'?)", b.config,
                  _config_line(b, "[target.overrides.pnax]"))


@case
def config_unknown_task_in_task_options(b: Bench) -> Expect:
    b.write(extra="[intermediate.task_options.sikc]\nfile = 'SICK.txt'\n")
    return Expect("key 'intermediate.task_options.sikc': unknown task 'sikc' (did you mean 'sick'?)", b.config,
                  _config_line(b, "[intermediate.task_options.sikc]"))


@case
def config_unknown_task_option(b: Bench) -> Expect:
    b.write(extra="[target.task_options.xnli]\ntrain_fractoin = 0.9\n")
    return Expect("key 'target.task_options.xnli.train_fractoin': xnli has no option 'train_fractoin' "
                  "(did you mean 'train_fraction'?)", b.config, _config_line(b, "train_fractoin = 0.9"))


@case
def config_unknown_nested_task_option(b: Bench) -> Expect:
    b.write(extra='[target.task_options.xnli]\nmnli = { dri = "elsewhere" }\n')
    return Expect("key 'target.task_options.xnli.mnli.dri': mnli has no option 'dri' (did you mean 'dir'?)",
                  b.config, _config_line(b, 'mnli = { dri = "elsewhere" }'))


@case
def config_max_length_beyond_the_model(b: Bench) -> Expect:
    text = b.config.read_text()
    start = text.index("[target.train]")
    b.config.write_text(text[:start] + text[start:].replace("max_length = 32", "max_length = 1000", 1))
    return Expect("key 'target.train.max_length': 1000 is more than the model's 512 positions", b.config,
                  _config_line(b, "max_length = 1000"))


@case
def config_model_path_missing(b: Bench) -> Expect:
    missing = b.tmp / "no-such-model"
    b.edit(f'model = "{b.model}"', f'model = "{missing}"')
    return Expect("model directory not found", missing)


@case
def sick_unknown_eval_set(b: Bench) -> Expect:
    b.write(extra='[intermediate.task_options.sick]\neval_set = "DEV"\n')
    return Expect("no rows with SemEval_set 'DEV' (the file has 'TRAIN', 'TRIAL')", b.file("english/sick/SICK.txt"))


@case
def panx_malformed_line(b: Bench) -> Expect:
    path = b.file("xtreme/panx/train-en.tsv")
    return Expect("found 3 column(s)", path, set_line(path, 3, "Saunders\tI-ORG\textra"))


@case
def panx_eval_label_not_in_train_label_set(b: Bench) -> Expect:
    path = b.file("xtreme/panx/dev-de.tsv")
    line = data_line(path, 2)
    token = path.read_text().splitlines()[line - 1].split("\t")[0]
    return Expect("unknown tag 'B-MISC'", path, set_line(path, line, f"{token}\tB-MISC"))


@case
def panx_empty_train_file(b: Bench) -> Expect:
    path = b.file("xtreme/panx/train-en.tsv")
    path.write_text("")
    return Expect("no examples found", path)


@case
def panx_missing_language_file(b: Bench) -> Expect:
    b.edit('languages = ["en", "de", "sw"]', 'languages = ["en", "de", "sw", "fr"]')
    return Expect("panx eval file for language 'fr' not found", b.file("xtreme/panx/dev-fr.tsv"))


@case
def panx_invalid_utf8(b: Bench) -> Expect:
    path = b.file("xtreme/panx/dev-sw.tsv")
    return Expect("invalid UTF-8", path, set_line(path, 2, b"Nairobi\xff\xfe\tB-LOC"))


@case
def panx_empty_token(b: Bench) -> Expect:
    path = b.file("xtreme/panx/dev-en.tsv")
    return Expect("empty token", path, set_line(path, data_line(path, 3), "\tO"))


@case
def xnli_malformed_row(b: Bench) -> Expect:
    path = b.file("xtreme/xnli/dev-de.tsv")
    return Expect("expected 3 tab-separated columns, found 2", path, set_line(path, 5, "Nur zwei\tSpalten"))


@case
def xnli_unknown_label(b: Bench) -> Expect:
    path = b.file("xtreme/xnli/dev-en.tsv")
    p, h, _ = path.read_text().splitlines()[6].split("\t")
    return Expect("unknown NLI label 'entails'", path, set_line(path, 7, f"{p}\t{h}\tentails"))


@case
def xnli_files_not_parallel(b: Bench) -> Expect:
    path = b.file("xtreme/xnli/dev-sw.tsv")
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    return Expect("59 rows but dev-en has 60", path)


@case
def xnli_empty_language_file(b: Bench) -> Expect:
    path = b.file("xtreme/xnli/dev-de.tsv")
    path.write_text("")
    return Expect("0 rows but dev-en has 60", path)


@case
def xnli1_header_lacks_column(b: Bench) -> Expect:
    path = write_xnli1(b)
    b.write(extra=xnli1_options(path))
    set_line(path, 1, "\t".join(c if c != "gold_label" else "label" for c in XNLI1_COLUMNS))
    return Expect("header lacks column(s) gold_label", path, 1)


@case
def xnli1_short_row(b: Bench) -> Expect:
    path = write_xnli1(b)
    b.write(extra=xnli1_options(path))
    return Expect("expected 19 tab-separated columns, found 3", path, set_line(path, 4, "en\tneutral\tx"))


@case
def xnli1_unknown_label(b: Bench) -> Expect:
    path = write_xnli1(b)
    b.write(extra=xnli1_options(path))
    cols = path.read_text().splitlines()[9].split("\t")
    cols[1] = "maybe"
    return Expect("unknown NLI label 'maybe'", path, set_line(path, 10, "\t".join(cols)))


@case
def xnli1_language_missing(b: Bench) -> Expect:
    path = write_xnli1(b, languages=("en", "de"))
    b.write(extra=xnli1_options(path))
    return Expect("no rows for language 'sw'", path)


@case
def sick_header_lacks_column(b: Bench) -> Expect:
    path = b.file("english/sick/SICK.txt")
    header = path.read_text().splitlines()[0]
    set_line(path, 1, header.replace("entailment_label", "label"))
    return Expect("header lacks column(s) entailment_label", path, 1)


@case
def sick_unknown_label(b: Bench) -> Expect:
    path = b.file("english/sick/SICK.txt")
    cols = path.read_text().splitlines()[4].split("\t")
    cols[3] = "ENTAILS"
    return Expect("unknown NLI label 'ENTAILS'", path, set_line(path, 5, "\t".join(cols)))


@case
def sick_misspelt_set(b: Bench) -> Expect:
    """A row of no known set would be dropped from every split without a word."""
    path = b.file("english/sick/SICK.txt")
    lines = path.read_text().splitlines()
    column = lines[0].split("\t").index("SemEval_set")
    cols = lines[4].split("\t")
    cols[column] = "TRIAN"
    return Expect("SemEval_set 'TRIAN' is none of TRAIN, TRIAL, TEST", path, set_line(path, 5, "\t".join(cols)))


@case
def sick_short_row(b: Bench) -> Expect:
    path = b.file("english/sick/SICK.txt")
    return Expect("expected 12 tab-separated columns, found 2", path, set_line(path, 3, "3\tA man"))


@case
def mnli_tsv_not_glue_header(b: Bench) -> Expect:
    folder = write_mnli_tsv(b)
    b.write(settings='["mnli"]', tasks='["xnli"]', languages='["en"]')
    path = folder / "train.tsv"
    return Expect("not a GLUE MNLI header", path, set_line(path, 1, "premise\thypothesis\tlabel"))


@case
def mnli_tsv_short_row(b: Bench) -> Expect:
    folder = write_mnli_tsv(b)
    b.write(settings='["mnli"]', tasks='["xnli"]', languages='["en"]')
    path = folder / "dev_matched.tsv"
    return Expect("expected 12 tab-separated columns, found 3", path, set_line(path, 4, "a\tb\tneutral"))


@case
def mnli_tsv_unknown_label(b: Bench) -> Expect:
    folder = write_mnli_tsv(b)
    b.write(settings='["mnli"]', tasks='["xnli"]', languages='["en"]')
    path = folder / "train.tsv"
    cols = path.read_text().splitlines()[5].split("\t")
    cols[-1] = "hidden"
    return Expect("unknown NLI label 'hidden'", path, set_line(path, 6, "\t".join(cols)))


@case
def mnli_jsonl_invalid_json(b: Bench) -> Expect:
    folder = write_mnli_jsonl(b)
    b.write(settings='["mnli"]', tasks='["xnli"]', languages='["en"]', extra=MNLI_JSONL_OPTIONS)
    path = folder / "multinli_1.0_train.jsonl"
    return Expect("invalid JSON", path, set_line(path, 8, '{"gold_label": "neutral", "sentence1": "cut off'))


@case
def mnli_jsonl_missing_key(b: Bench) -> Expect:
    folder = write_mnli_jsonl(b)
    b.write(settings='["mnli"]', tasks='["xnli"]', languages='["en"]', extra=MNLI_JSONL_OPTIONS)
    path = folder / "multinli_1.0_dev_matched.jsonl"
    line = set_line(path, 3, json.dumps({"sentence1": "a", "sentence2": "b", "label": "neutral"}))
    return Expect("missing key 'gold_label'", path, line)


@case
def mnli_jsonl_not_an_object(b: Bench) -> Expect:
    folder = write_mnli_jsonl(b)
    b.write(settings='["mnli"]', tasks='["xnli"]', languages='["en"]', extra=MNLI_JSONL_OPTIONS)
    path = folder / "multinli_1.0_train.jsonl"
    return Expect("expected a JSON object", path, set_line(path, 2, '["a", "b", "neutral"]'))


@case
def mnli_files_missing(b: Bench) -> Expect:
    b.write(settings='["mnli"]', tasks='["xnli"]', languages='["en"]')
    return Expect("mnli train file for language 'en' not found", b.file("english/mnli/train.tsv"))


@case
def sst2_label_not_binary(b: Bench) -> Expect:
    path = english_setting(b, "sst2") / "train.tsv"
    sentence = path.read_text().splitlines()[3].split("\t")[0]
    return Expect("label must be 0 or 1, found '2'", path, set_line(path, 4, f"{sentence}\t2"))


@case
def qqp_label_not_binary(b: Bench) -> Expect:
    path = english_setting(b, "qqp") / "dev.tsv"
    cols = path.read_text().splitlines()[2].split("\t")
    cols[-1] = "yes"
    return Expect("is_duplicate must be 0 or 1, found 'yes'", path, set_line(path, 3, "\t".join(cols)))


@case
def hellaswag_label_out_of_range(b: Bench) -> Expect:
    path = english_setting(b, "hellaswag") / "hellaswag_train.jsonl"
    obj = json.loads(path.read_text().splitlines()[4])
    obj["label"] = 7
    return Expect("'label' must be an ending index 0-3, found 7", path, set_line(path, 5, json.dumps(obj)))


@case
def commonsenseqa_answer_key_not_a_choice(b: Bench) -> Expect:
    path = english_setting(b, "commonsenseqa") / "dev_rand_split.jsonl"
    obj = json.loads(path.read_text().splitlines()[1])
    obj["answerKey"] = "E"
    return Expect("answerKey 'E' is not one of the choice labels", path, set_line(path, 2, json.dumps(obj)))


@case
def commonsenseqa_choice_labels_repeat(b: Bench) -> Expect:
    path = english_setting(b, "commonsenseqa") / "dev_rand_split.jsonl"
    obj = json.loads(path.read_text().splitlines()[1])
    obj["question"]["choices"][1]["label"] = obj["question"]["choices"][0]["label"]
    return Expect("choice labels repeat", path, set_line(path, 2, json.dumps(obj)))


@case
def squad_answer_not_in_context(b: Bench) -> Expect:
    path = english_setting(b, "squad") / "squaddev_v1.1.json"
    doc = json.loads(path.read_text())
    doc["data"][2]["paragraphs"][1]["qas"][0]["answers"][0]["text"] = "Zanzibar"
    path.write_text(json.dumps(doc, indent=1))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), start=1) if '"q2-1"' in text)
    return Expect("answer 'Zanzibar' does not occur in its context", path, line)


@case
def ccg_tag_not_in_tag_set(b: Bench) -> Expect:
    path = english_setting(b, "ccg") / "ccg.dev"
    return Expect("tag 'S' is not in tags_to_id.json", path, set_line(path, 2, "Cats sleep .\tN S ."))


@pytest.fixture()
def bench(tmp_path: Path, mini_data: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    with ExitStack() as undo:
        yield Bench(tmp_path, mini_data, tiny_model, undo, monkeypatch)


def test_the_catalogue_is_large() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_nothing_written(name: str, bench: Bench) -> None:
    expect = CASES[name](bench)
    before = sorted(bench.tmp.rglob("*"))
    check = CliRunner().invoke(app, ["plan", "--check", str(bench.config)])  # the same checks, nothing created
    assert check.exit_code == 2 and "Traceback" not in check.output, check.output
    assert sorted(bench.tmp.rglob("*")) == before
    result = CliRunner().invoke(app, ["run", str(bench.config)])
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output and isinstance(result.exception, SystemExit), output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    error = errors[0]
    checked = [line for line in check.output.splitlines() if line.startswith("error:")]
    assert checked[0] == error, check.output  # run stops at the first problem plan --check lists
    assert expect.fragment in error, error
    if expect.path is not None:
        where = f"{expect.path}:{expect.line}: " if expect.line is not None else f"{expect.path}: "
        assert where in error, error
    assert done_rows(bench.out) == 0
    if (bench.out / "results.sqlite").is_file():
        with sqlite3.connect(bench.out / "results.sqlite") as con:
            assert con.execute("SELECT count(*) FROM scores").fetchone()[0] == 0
    assert checkpoint_files(bench.out) == []
    if name.startswith("config-") and name != "config-output-dir-is-a-file":
        assert not bench.out.exists(), "a config error must stop the run before anything is created"


# ---- accepted, not errors: UTF-8 BOM and Windows line endings ---------------------------------------

def _bom_crlf(path: Path) -> None:
    raw = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + raw)


def test_bom_and_crlf_are_accepted(tmp_path: Path, mini_data: Path, tiny_model: Path) -> None:
    clean = Bench(tmp_path / "clean", mini_data, tiny_model)
    dirty = Bench(tmp_path / "dirty", mini_data, tiny_model)
    for b in (clean, dirty):
        write_mnli_tsv(b)
        write_mnli_jsonl(b)
        write_xnli1(b)
    for path in dirty.data.rglob("*"):
        if path.is_file():
            _bom_crlf(path)
    _bom_crlf(dirty.tmp / "XNLI-1.0" / "xnli.dev.tsv")

    readers = [
        (get_task("panx"), ["train", "eval"], ["en", "de", "sw"]),
        (get_task("xnli"), ["train", "eval"], ["en", "de", "sw"]),
        (get_task("sick"), ["train", "eval"], ["en"]),
        (get_task("mnli"), ["train", "eval"], ["en"]),
        (get_task("mnli", {"train_file": "multinli_1.0_train.jsonl",
                           "eval_file": "multinli_1.0_dev_matched.jsonl"}), ["train", "eval"], ["en"]),
    ]
    for task, splits, langs in readers:
        for split in splits:
            for lang in langs:
                want = task.at(clean.data).read(split, lang)
                assert want and task.at(dirty.data).read(split, lang) == want, (task.name, split, lang)
    for lang in ("en", "de", "sw"):
        opts = lambda b: {"xnli_file": str(b.tmp / "XNLI-1.0" / "xnli.dev.tsv")}  # noqa: E731
        want = get_task("xnli", opts(clean)).at(clean.data).read("eval", lang)
        assert want and get_task("xnli", opts(dirty)).at(dirty.data).read("eval", lang) == want

    dirty.write(settings='["sick"]', tasks='["panx", "xnli"]', languages='["en", "de"]')
    result = CliRunner().invoke(app, ["run", str(dirty.config)])
    assert result.exit_code == 0, result.output
    assert "error" not in result.output
    with sqlite3.connect(dirty.out / "results.sqlite") as con:
        statuses = [s for (s,) in con.execute("SELECT status FROM runs")]
    assert statuses == ["done"] * 3


# ---- plan --check: the same checks as run, every problem at once, nothing created ------------------

def test_plan_check_says_ok_and_creates_nothing(bench: Bench) -> None:
    result = CliRunner().invoke(app, ["plan", "--check", str(bench.config)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK: {bench.config}: 5 runs, output {bench.out}"), result.output
    assert not bench.out.exists()


def test_a_max_length_from_set_names_the_set_not_the_file_line(bench: Bench) -> None:
    """The file's own max_length is fine; blaming its line would send the user to the wrong place."""
    result = CliRunner().invoke(app, ["plan", "--check", str(bench.config), "--set", "target.train.max_length=1000"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert ("error: --set 'target.train.max_length=1000': key 'target.train.max_length': 1000 is more than "
            "the model's 512 positions") in result.output, result.output


def test_plan_check_lists_every_problem_run_stops_at_the_first(bench: Bench) -> None:
    plain = bench.tmp / "plain-file"
    plain.write_text("not a directory")
    bench.edit(f'output_dir = "{bench.out}"', f'output_dir = "{plain / "exp"}"')
    text = bench.config.read_text()
    start = text.index("[target.train]")
    bench.config.write_text(text[:start] + text[start:].replace("max_length = 32", "max_length = 1000", 1))
    bench.file("xtreme/panx/dev-de.tsv").unlink()
    bench.file("xtreme/xnli/dev-sw.tsv").write_text("premise\thypothesis\n")
    result = CliRunner().invoke(app, ["plan", "--check", str(bench.config)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 4, result.output
    assert "key 'target.train.max_length': 1000 is more than the model's 512 positions" in errors[0]
    assert f"{plain / 'exp'}: cannot create the output directory: {plain} is a file" in errors[1]
    assert f"{bench.file('xtreme/panx/dev-de.tsv')}: panx eval file for language 'de' not found" in errors[2]
    assert f"{bench.file('xtreme/xnli/dev-sw.tsv')}:1: " in errors[3]
    run = CliRunner().invoke(app, ["run", str(bench.config)])
    assert run.exit_code == 2
    assert [line for line in run.output.splitlines() if line.startswith("error:")] == errors[:1], run.output
