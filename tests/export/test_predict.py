"""`xstilts predict` tags and classifies new text with an export as xstilts would."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Trained
from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.errors import DataError
from xstilts.evaluation.predict import predict
from xstilts.export import export_run
from xstilts.export.predict import read_items
from xstilts.featurize import load_features
from xstilts.heads import get_head_kind
from xstilts.models.loading import load_tokenizer
from xstilts.tasks.base import EVAL_SPLIT

pytestmark = pytest.mark.usefixtures("one_thread")


def test_predict_tags_german_sentences_as_xstilts(trained: Trained, shared_data: Path, tmp_path: Path) -> None:
    from test_hf import xstilts_model

    run_id = trained.runs["panx"]
    out = export_run(trained.expdir, run_id, tmp_path / "panx").path
    encoder, head, task, _ = xstilts_model(trained, run_id, "panx", shared_data)
    # a short window: long sentences are cut into several, as in xstilts' evaluation
    tokenizer = load_tokenizer(str(trained.model))
    examples, features = load_features(task, EVAL_SPLIT, "de", tokenizer, 64, 40)
    examples = [ex for ex in examples if all(len(t.split()) == 1 for t in ex.tokens)]
    features = get_head_kind("tagging").encode(task, examples, tokenizer, 64)
    kind = get_head_kind("tagging")
    expected = kind.predict_tags(task, features, predict(encoder, head, kind, features, tokenizer.pad_token_id),
                                 len(examples))
    text = tmp_path / "de.txt"
    text.write_text("".join(" ".join(ex.tokens) + "\n" for ex in examples), encoding="utf-8")
    result = CliRunner().invoke(app, ["predict", str(out), str(text)])
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.stdout.splitlines()] == expected


def test_predict_classifies_sentence_pairs(trained: Trained, tmp_path: Path) -> None:
    out = export_run(trained.expdir, trained.runs["xnli"], tmp_path / "xnli").path
    text = tmp_path / "pairs.txt"
    text.write_text("Der Mann spielt Gitarre.\tJemand macht Musik.\nEine Frau schläft.\tDie Frau rennt.\n"
                    "Nur ein Satz.\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["predict", str(out), str(text)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and set(lines) <= {"entailment", "neutral", "contradiction"}


def test_predict_names_the_bad_line(trained: Trained, tmp_path: Path) -> None:
    out = export_run(trained.expdir, trained.runs["xnli"], tmp_path / "xnli").path
    text = tmp_path / "bad.txt"
    text.write_text("Ein Satz.\na\tb\tc\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["predict", str(out), str(text)])
    assert result.exit_code == 2 and f"{text}:2" in result.output.replace("\n", "")


def test_invalid_utf8_input_names_the_line(tmp_path: Path) -> None:
    text = tmp_path / "bad.txt"
    text.write_bytes("Berlin ist schön\nein Satz\n".encode() + b"d\xffrei\n")
    with pytest.raises(DataError) as err:
        read_items(text, "tagging")
    assert err.value.one_line() == f"{text}:3: invalid UTF-8 at byte 28"
