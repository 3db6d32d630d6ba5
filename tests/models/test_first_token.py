"""runtime.first_token_only: the last layer for ``<s>`` alone equals the full layer's first row."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from xstilts.models.first_token import first_token_only, install, installed

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def encoder(tiny_model: Path) -> nn.Module:
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_model, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(5, 1000, (5, 11))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding: the first token must not attend to it either
    mask[3, 9:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _hidden(encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return encoder(**batch).last_hidden_state


def test_first_row_equals_the_full_layer_and_gradients_match(encoder: nn.Module) -> None:
    batch = _batch()
    plain = copy.deepcopy(encoder)
    keys = list(encoder.state_dict())
    assert install(encoder) and installed(encoder) and not installed(plain)
    assert list(encoder.state_dict()) == keys  # checkpoints unchanged
    encoder.train()
    plain.train()
    with first_token_only(encoder):
        first = _hidden(encoder, batch)
    full = _hidden(plain, batch)
    assert first.shape == (5, 1, encoder.config.hidden_size)
    torch.testing.assert_close(first[:, 0], full[:, 0], rtol=1e-5, atol=1e-6)
    weights = torch.randn(encoder.config.hidden_size)
    (first[:, 0] @ weights).sum().backward()
    (full[:, 0] @ weights).sum().backward()
    grads = dict(plain.named_parameters())
    for name, p in encoder.named_parameters():
        if grads[name].grad is None:  # the pooler takes no part in either
            assert p.grad is None, name
            continue
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-6, msg=name)


def test_outside_the_block_the_layer_is_the_ordinary_one(encoder: nn.Module) -> None:
    batch = _batch()
    with torch.no_grad():
        before = _hidden(encoder.eval(), batch)
        install(encoder)
        install(encoder)  # idempotent
        assert torch.equal(_hidden(encoder, batch), before)  # token-level heads see every token
        with first_token_only(encoder):
            assert _hidden(encoder, batch).shape[1] == 1
        assert _hidden(encoder, batch).shape == before.shape  # the flag is reset on exit
        copied = copy.deepcopy(encoder)  # a copy's layer is patched for itself, not for the original
        with first_token_only(copied):
            assert _hidden(copied, batch).shape[1] == 1
            assert _hidden(encoder, batch).shape == before.shape


def test_installed_for_evaluation_only_a_training_step_is_the_full_layer(tiny_model: Path) -> None:
    """train=False (runtime.first_token_eval): eval mode takes the shortcut, training mode does not,
    so a training step's dropout draws -- and its loss -- equal those of an encoder without it."""
    from transformers import AutoModel

    batch = _batch()
    encoder = AutoModel.from_pretrained(tiny_model, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    plain = copy.deepcopy(encoder)
    assert install(encoder, train=False)
    encoder.train()
    plain.train()
    torch.manual_seed(3)
    with first_token_only(encoder):
        trained = _hidden(encoder, batch)
    torch.manual_seed(3)
    assert trained.shape[1] == batch["input_ids"].shape[1]  # every token: the full layer ran
    assert torch.equal(trained, _hidden(plain, batch))  # the same dropout draws
    with torch.no_grad(), first_token_only(encoder.eval()):
        first = _hidden(encoder, batch)
        assert first.shape[1] == 1
        torch.testing.assert_close(first[:, 0], _hidden(plain.eval(), batch)[:, 0], rtol=1e-5, atol=1e-6)
    install(encoder, train=True)  # a second call sets the mode anew
    with first_token_only(encoder.train()):
        assert _hidden(encoder, batch).shape[1] == 1


def test_no_op_where_not_installed_or_not_bert_shaped(encoder: nn.Module) -> None:
    batch = _batch()
    with torch.no_grad(), first_token_only(encoder):
        assert _hidden(encoder.eval(), batch).shape == (5, 11, encoder.config.hidden_size)
    assert not install(nn.Linear(3, 3))
    decoder = copy.deepcopy(encoder)
    decoder.encoder.layer[-1].is_decoder = True
    assert not install(decoder) and not installed(decoder)


def test_heads_and_the_runtime_switch(encoder: nn.Module, tiny_model: Path, shared_data: Path) -> None:
    """Through prepare_encoder: classification logits unchanged, tagging still per token, fast dropout too."""
    from transformers import AutoTokenizer

    from xstilts.config import RuntimeConfig
    from xstilts.heads import get_head_kind
    from xstilts.tasks import get_task
    from xstilts.training.speed import prepare_encoder

    tok = AutoTokenizer.from_pretrained(tiny_model)
    xnli, panx = get_task("xnli", data_dir=shared_data), get_task("panx", data_dir=shared_data)
    cls_kind, tag_kind = get_head_kind(xnli.head), get_head_kind(panx.head)
    cls_feats = cls_kind.encode(xnli, xnli.load("eval", "en", 6), tok, 64)
    tag_feats = tag_kind.encode(panx, panx.load("eval", "en", 6), tok, 64)
    torch.manual_seed(1)
    cls_head, tag_head = cls_kind.build(xnli, 32, 0.0).eval(), tag_kind.build(panx, 32, 0.0).eval()
    plain = copy.deepcopy(encoder).eval()
    info = prepare_encoder(encoder, RuntimeConfig(threads=1, first_token_only=True, fast_dropout=True),
                           [cls_feats, tag_feats], tok.pad_token_id)
    assert info.first_token_only
    encoder.eval()
    with torch.no_grad():
        cls_batch = cls_kind.collate(cls_feats, tok.pad_token_id)
        torch.testing.assert_close(cls_head(encoder, cls_batch), cls_head(plain, cls_batch), rtol=1e-5, atol=1e-6)
        tag_batch = tag_kind.collate(tag_feats, tok.pad_token_id)
        assert tag_head(encoder, tag_batch).shape[:2] == tag_batch["input_ids"].shape
    default = prepare_encoder(copy.deepcopy(plain), RuntimeConfig(threads=1), [cls_feats], tok.pad_token_id)
    assert not default.first_token_only and default.first_token_eval  # evaluation only, by default
    off = prepare_encoder(copy.deepcopy(plain), RuntimeConfig(threads=1, first_token_eval=False), [cls_feats],
                          tok.pad_token_id)
    assert not off.first_token_eval


def test_the_block_is_per_thread(encoder: nn.Module) -> None:
    """Evaluation predicts on several threads: one thread's block must not switch another's layer."""
    batch = _batch()
    install(encoder, train=False)
    encoder.eval()
    inside, leave = threading.Event(), threading.Event()
    shapes: list[int] = []

    def asks() -> None:
        with torch.no_grad(), first_token_only(encoder):
            inside.set()
            leave.wait(30)
            shapes.append(_hidden(encoder, batch).shape[1])

    t = threading.Thread(target=asks)
    t.start()
    inside.wait(30)
    with torch.no_grad():
        assert _hidden(encoder, batch).shape[1] == batch["input_ids"].shape[1]  # this thread did not ask
        with first_token_only(encoder):
            with first_token_only(encoder):  # nested: the inner exit keeps the outer block's request
                pass
            assert _hidden(encoder, batch).shape[1] == 1
    leave.set()
    t.join(30)
    assert shapes == [1]  # this thread's exit did not switch the other's off
