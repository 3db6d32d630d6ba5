"""Exported runs load with transformers alone and predict what xstilts predicted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Trained
from safetensors.torch import load_file
from typer.testing import CliRunner

from xstilts.checkpoint import ENCODER_FILE, load_encoder_weights, load_head
from xstilts.cli import app
from xstilts.errors import XstiltsError
from xstilts.evaluation.predict import predict
from xstilts.export.hf import build_model, check_same_outputs
from xstilts.featurize import load_features
from xstilts.heads import get_head_kind
from xstilts.metrics.classification import accuracy_stats
from xstilts.metrics.ner import entity_stats
from xstilts.models.loading import load_encoder, load_tokenizer
from xstilts.store import Store
from xstilts.tasks import get_task
from xstilts.tasks.base import EVAL_SPLIT

pytestmark = pytest.mark.usefixtures("one_thread")


def export(trained: Trained, run: str, out: Path) -> Path:
    result = CliRunner().invoke(app, ["export", str(trained.expdir), run, str(out)])
    assert result.exit_code == 0, result.output
    return out


def xstilts_model(trained: Trained, run_id: str, task_name: str, data: Path):
    """Encoder + head as xstilts trains and evaluates them, from the run's checkpoint."""
    checkpoint = trained.expdir / "checkpoints" / run_id
    encoder = load_encoder(str(trained.model))
    load_encoder_weights(encoder, checkpoint)
    state, info = load_head(checkpoint)
    task = get_task(task_name, info["task_options"], data)
    head = get_head_kind(task.head).build(task, encoder.config.hidden_size, 0.0)
    head.load_state_dict(state)
    return encoder.eval(), head.eval(), task, info["max_length"]


def test_panx_export_tags_german_as_xstilts_did(trained: Trained, shared_data: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    run_id = trained.runs["panx"]
    out = export(trained, run_id, tmp_path / "panx")
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= {p.name for p in out.iterdir()}

    # transformers alone: tokenizer + model, first sub-token of each word
    model = AutoModelForTokenClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert list(model.config.id2label.values()) == list(get_task("panx").labels)
    encoder, head, task, max_length = xstilts_model(trained, run_id, "panx", shared_data)
    examples, features = load_features(task, EVAL_SPLIT, "de", load_tokenizer(str(trained.model)), max_length, 40)
    hf_tags = []
    for ex in examples:
        enc = tokenizer(list(ex.tokens), is_split_into_words=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        assert enc["input_ids"].shape[1] < max_length  # whole sentences: no window, no truncation
        with torch.no_grad():
            best = model(**enc).logits[0].argmax(-1).tolist()
        firsts = {}
        for pos, word in enumerate(enc.word_ids(0)):
            if word is not None:
                firsts.setdefault(word, pos)
        hf_tags.append([model.config.id2label[best[firsts[w]]] for w in range(len(ex.tokens))])

    # xstilts' own prediction path on the same German dev sentences
    kind = get_head_kind("tagging")
    outputs = predict(encoder, head, kind, features, load_tokenizer(str(trained.model)).pad_token_id)
    ours = kind.predict_tags(task, features, outputs, len(examples))
    assert hf_tags == ours
    assert len({t for tags in ours for t in tags}) > 1  # not a constant tagger: the comparison can fail

    # ... and the per-sentence entity counts the run's evaluation stored
    with Store(trained.expdir, readonly=True) as store:
        stored = store.example_stats(run_id, "panx", "de", EVAL_SPLIT, "f1")
    np.testing.assert_array_equal(entity_stats([list(ex.tags) for ex in examples], hf_tags), stored)


def test_xnli_export_gives_the_xstilts_logits(trained: Trained, shared_data: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run_id = trained.runs["xnli"]
    out = export(trained, run_id, tmp_path / "xnli")
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "BertForSequenceClassification"  # the head's dense layer is BERT's pooler
    encoder, head, task, max_length = xstilts_model(trained, run_id, "xnli", shared_data)
    examples, features = load_features(task, EVAL_SPLIT, "de", load_tokenizer(str(trained.model)), max_length, 40)
    batch = get_head_kind("classification").collate(features, tokenizer.pad_token_id)
    enc = tokenizer([ex.text_a for ex in examples], [ex.text_b for ex in examples], truncation="longest_first",
                    max_length=max_length, padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = model(**enc).logits
        ours = head(encoder, batch)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    pred = [model.config.id2label[int(i)] for i in theirs.argmax(-1)]
    with Store(trained.expdir, readonly=True) as store:
        stored = store.example_stats(run_id, "xnli", "de", EVAL_SPLIT, "accuracy")
    np.testing.assert_array_equal(accuracy_stats([ex.label for ex in examples], pred), stored)


def test_phase2_export_is_an_encoder_model(trained: Trained, tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModel

    run_id = trained.runs["sick"]
    killed = tmp_path / ".sick.export-k1ll3d"  # what an export killed with SIGKILL leaves behind
    killed.mkdir()
    (killed / "config.json").write_text("{}")
    out = export(trained, run_id, tmp_path / "sick")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sick"]  # swept; no temp dir of its own left
    assert AutoConfig.from_pretrained(out).architectures == ["BertModel"]
    model = AutoModel.from_pretrained(out)
    saved = load_file(str(trained.expdir / "checkpoints" / run_id / ENCODER_FILE))
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, saved[name], atol=0, rtol=0)
    result = CliRunner().invoke(app, ["predict", str(out), str(out / "README.md")])
    assert result.exit_code == 2 and "encoder-only export" in result.output


@pytest.mark.parametrize("run, expected", [
    ("tgt-no-such-run", "no run 'tgt-no-such-run'"),
    ("bare", "set `[runtime] save_target_checkpoints = true`"),
])
def test_export_errors_are_one_line(trained: Trained, tmp_path: Path, run: str, expected: str) -> None:
    expdir, run_id = (trained.no_checkpoint if run == "bare" else (trained.expdir, run))
    result = CliRunner().invoke(app, ["export", str(expdir), run_id, str(tmp_path / "out")])
    assert result.exit_code == 2
    assert expected in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_non_empty_destination(trained: Trained, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["export", str(trained.expdir), trained.runs["xnli"], str(tmp_path / "out")])
    assert result.exit_code == 2 and "not an empty directory" in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


def test_push_without_network_is_one_line(trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    result = CliRunner().invoke(app, ["export", str(trained.expdir), trained.runs["sick"], str(tmp_path / "out"),
                                      "--push-to-hub", "someone/model"])
    assert result.exit_code == 2
    assert "could not push to the Hub repository 'someone/model'" in result.output
    assert (tmp_path / "out" / "model.safetensors").is_file()  # the export itself is kept


def test_roberta_style_and_foreign_classification_heads(tiny_model: Path) -> None:
    """XLM-R's classification head is xstilts' own layout; ELECTRA's (gelu, not tanh) is refused."""
    from transformers import AutoModel, ElectraConfig, XLMRobertaConfig

    tokenizer = load_tokenizer(str(tiny_model))
    task = get_task("xnli")
    shape = {"vocab_size": tokenizer.vocab_size + 10, "hidden_size": 16, "num_hidden_layers": 1,
             "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 80}
    for config_type, ok in ((XLMRobertaConfig, True), (ElectraConfig, False)):
        torch.manual_seed(0)
        config = config_type(**shape, num_labels=3, pad_token_id=tokenizer.pad_token_id)
        encoder = AutoModel.from_config(config).eval()
        head = get_head_kind("classification").build(task, 16, 0.0).eval()
        model = build_model(config, "classification", encoder.state_dict(), head.state_dict())
        if ok:
            assert check_same_outputs(model, "classification", task, list(task.labels), encoder, head, tokenizer,
                                      32) < 1e-5
        else:
            with pytest.raises(XstiltsError, match="does not reproduce the xstilts classification head"):
                check_same_outputs(model, "classification", task, list(task.labels), encoder, head, tokenizer, 32)
