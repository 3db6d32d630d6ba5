"""Masked-LM during phase 2: a tied head, pretraining's masking rates, the mixing rate, text input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _experiment import TINY_TRAIN_OPTIONS

from xstilts.config import ExperimentConfig, load_config
from xstilts.context import RunContext
from xstilts.errors import ConfigError, DataError
from xstilts.plan import make_plan
from xstilts.training.mlm import MLMHead, MLMObjective, extract_tatoeba_sentences, read_sentences

REPO = Path(__file__).resolve().parents[2]
FIXTURE_DATA = REPO / "tests" / "fixtures" / "data"


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def german(shared_data: Path) -> list[str]:
    text = (shared_data / "xtreme" / "tatoeba" / "de-en.de").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def _encoder(tiny_model: Path) -> Any:
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_model)


def test_head_decoder_is_the_embedding_matrix(tiny_model: Path) -> None:
    encoder = _encoder(tiny_model)
    head = MLMHead(encoder)
    embedding = encoder.get_input_embeddings().weight
    assert head.decoder_weight() is embedding
    assert set(head.state_dict()) == {"dense.weight", "dense.bias", "layer_norm.weight", "layer_norm.bias",
                                      "bias"}
    hidden = torch.randn(5, encoder.config.hidden_size)
    logits = head(hidden)
    assert logits.shape == (5, embedding.shape[0])
    logits[:, 7].sum().backward()
    assert embedding.grad is not None and embedding.grad[7].abs().sum() > 0
    assert head.dense.weight.grad is not None and head.bias.grad[7] != 0


def test_masking_is_pretrainings_15_80_10_10(tiny_model: Path, tokenizer: Any, german: list[str]) -> None:
    obj = MLMObjective(_encoder(tiny_model), tokenizer, german, rate=1.0, seed=3, batch_size=64,
                       max_length=64)
    special = set(tokenizer.all_special_ids)
    n_tokens = n_masked = n_mask_token = n_same = 0
    for _ in range(25):
        batch = obj.batch()
        ids, labels = batch["input_ids"], batch["labels"]
        chosen = labels != -100
        assert not any(int(t) in special for t in labels[chosen])  # <s>, </s>, <pad> never masked
        real = batch["attention_mask"].bool()
        assert not bool((chosen & ~real).any())
        originals = torch.where(chosen, labels, ids)
        n_tokens += int(sum(1 for t in originals[real].tolist() if t not in special))
        n_masked += int(chosen.sum())
        n_mask_token += int((ids[chosen] == tokenizer.mask_token_id).sum())
        n_same += int((ids[chosen] == labels[chosen]).sum())
    assert n_masked > 2000
    assert n_masked / n_tokens == pytest.approx(0.15, abs=0.015)
    assert n_mask_token / n_masked == pytest.approx(0.8, abs=0.03)
    assert n_same / n_masked == pytest.approx(0.1, abs=0.025)
    assert (n_masked - n_mask_token - n_same) / n_masked == pytest.approx(0.1, abs=0.025)  # random tokens


def test_mixing_rate_is_the_fraction_of_steps_with_mlm(tiny_model: Path, tokenizer: Any) -> None:
    obj = MLMObjective(_encoder(tiny_model), tokenizer, ["Hallo Welt .", "Guten Morgen ."], rate=0.3, seed=1,
                       batch_size=2, max_length=16)
    obj.loss = lambda batch: torch.tensor(2.0)  # type: ignore[method-assign]  # count, don't compute
    hook = obj.extra_loss()
    results = [hook(step) for step in range(2000)]
    used = [r for r in results if r is not None]
    assert len(used) / 2000 == pytest.approx(0.3, abs=0.03)
    assert obj.mlm_steps == len(used) and all(float(r) == 2.0 for r in used)
    with pytest.raises(ConfigError):
        MLMObjective(_encoder(tiny_model), tokenizer, ["a b"], rate=0.0, seed=1, batch_size=2, max_length=8)


def test_real_loss_is_finite_and_reaches_encoder(tiny_model: Path, tokenizer: Any, german: list[str]) -> None:
    encoder = _encoder(tiny_model)
    obj = MLMObjective(encoder, tokenizer, german[:50], rate=1.0, seed=2, batch_size=8, max_length=32)
    loss = obj.extra_loss()(1)
    assert loss is not None and torch.isfinite(loss)
    # untrained: close to uniform over the vocabulary
    assert float(loss.detach()) == pytest.approx(np.log(encoder.config.vocab_size), rel=0.2)
    loss.backward()
    assert encoder.encoder.layer[0].attention.self.query.weight.grad is not None


def test_read_sentences(tmp_path: Path) -> None:
    (tmp_path / "de.txt").write_text("Hallo Welt .\n\nGuten Tag .\nBis bald .\n", encoding="utf-8")
    (tmp_path / "sw.txt").write_text("Habari ya asubuhi .\n", encoding="utf-8")
    assert read_sentences(tmp_path) == {"de": ["Hallo Welt .", "Guten Tag .", "Bis bald ."],
                                        "sw": ["Habari ya asubuhi ."]}
    assert read_sentences(tmp_path, ["de"], max_per_language=2) == {"de": ["Hallo Welt .", "Guten Tag ."]}
    with pytest.raises(DataError, match="data file not found") as err:
        read_sentences(tmp_path, ["fr"])
    assert "fr.txt" in err.value.one_line()
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(DataError, match="invalid UTF-8") as err:
        read_sentences(tmp_path, ["bad"])
    assert err.value.line == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no <language>.txt files"):
        read_sentences(tmp_path / "empty")
    with pytest.raises(DataError, match="MLM text folder not found"):
        read_sentences(tmp_path / "missing")


def test_extract_tatoeba(tmp_path: Path, shared_data: Path) -> None:
    out = extract_tatoeba_sentences(shared_data, tmp_path / "mlm", ["de", "sw"])
    texts = read_sentences(out)
    assert set(texts) == {"de", "sw"}
    source = [s for s in (shared_data / "xtreme" / "tatoeba" / "sw-en.sw").read_text(encoding="utf-8").splitlines()
              if s.strip()]
    assert texts["sw"] == [s.strip() for s in source]
    with pytest.raises(DataError, match="no Tatoeba text for language 'xx'"):
        extract_tatoeba_sentences(shared_data, tmp_path / "mlm", ["xx"])


def test_extract_tatoeba_reads_through_the_task_and_its_dir_option(tmp_path: Path) -> None:
    folder = REPO / "tests" / "fixtures" / "xtreme" / "tatoeba"  # XTREME's fr files, LASER's German ones
    out = extract_tatoeba_sentences(tmp_path / "no-data-here", tmp_path / "mlm", (), {"dir": str(folder)})
    texts = read_sentences(out)
    assert set(texts) == {"de", "fr"}
    assert texts["de"] == [s.strip() for s in (folder / "tatoeba.deu-eng.deu").read_text(encoding="utf-8").splitlines()
                           if s.strip()]
    with pytest.raises(DataError, match="no Tatoeba files"):
        extract_tatoeba_sentences(tmp_path, tmp_path / "mlm2")


def test_config_requires_text(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('name = "x"\n[intermediate]\nsettings = ["sst2"]\nmlm_rate = 0.5\n'
                    '[target]\ntasks = ["xnli"]\n')
    with pytest.raises(ConfigError, match="mlm_rate > 0 needs mlm_data"):
        load_config(path)


def test_phase2_with_mlm(tmp_path: Path, tiny_model: Path, tokenizer: Any, monkeypatch: pytest.MonkeyPatch,
                         ) -> None:
    import xstilts.phases.intermediate as phase
    from xstilts.phases.intermediate import run_intermediate

    text = tmp_path / "text"
    text.mkdir()
    (text / "de.txt").write_text("Der Hund bellt laut .\nDie Katze schläft im Garten .\nEs regnet heute .\n",
                                 encoding="utf-8")
    (text / "sw.txt").write_text("Mbwa anabweka .\nPaka analala bustanini .\n", encoding="utf-8")
    losses: dict[float, list[float]] = {}
    real = phase.train

    def spy(*args, **kwargs):
        outcome = real(*args, **kwargs)
        losses[rate] = outcome.losses
        return outcome

    monkeypatch.setattr(phase, "train", spy)
    results = {}
    for rate in (0.0, 1.0):
        cfg = ExperimentConfig.model_validate({
            "name": "mlm", "model": str(tiny_model), "data_dir": str(FIXTURE_DATA), "seeds": [1],
            "output_dir": str(tmp_path / f"exp{rate}"),
            "intermediate": {"settings": ["sst2"], "mlm_rate": rate, "mlm_data": str(text),
                             "mlm_languages": ["de", "sw"],
                             "train": TINY_TRAIN_OPTIONS},
            "target": {"tasks": ["xnli"]}, "runtime": {"progress": False}})
        ctx = RunContext.create(cfg, tmp_path / f"exp{rate}")
        ctx._tokenizer = tokenizer
        (run,) = [r for r in make_plan(cfg) if r.phase == "intermediate"]
        results[rate] = run_intermediate(run, ctx)
    steps = TINY_TRAIN_OPTIONS["max_steps"]
    assert results[1.0].extra["mlm_steps"] == steps and "mlm_steps" not in results[0.0].extra
    assert results[1.0].train_steps == steps
    # every step added an MLM loss over a 250k vocabulary (~ln 250k = 12.4) to the task loss (~0.7)
    assert min(losses[1.0]) > 8 > max(losses[0.0])
