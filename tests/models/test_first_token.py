"""The last layer for ``<s>`` alone equals the full layer's first row (runtime.first_token_only,
first_token_train, first_token_eval)."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import pytest
import torch
from _gradients import assert_same_gradients
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
    """train="no" (runtime.first_token_eval alone): eval mode takes the shortcut, training mode does not,
    so a training step's dropout draws -- and its loss -- equal those of an encoder without it."""
    from transformers import AutoModel

    batch = _batch()
    encoder = AutoModel.from_pretrained(tiny_model, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    plain = copy.deepcopy(encoder)
    assert install(encoder, train="no")
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
    install(encoder, train="own-draws")  # a second call sets the mode anew
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
    # by default: training with the full layer's draws, and evaluation
    assert not default.first_token_only and default.first_token_train and default.first_token_eval
    off = prepare_encoder(copy.deepcopy(plain), RuntimeConfig(threads=1, first_token_eval=False), [cls_feats],
                          tok.pad_token_id)
    assert off.first_token_train and not off.first_token_eval
    with torch.no_grad():  # evaluation takes the full layer then
        off_encoder = copy.deepcopy(plain)
        prepare_encoder(off_encoder, RuntimeConfig(threads=1, first_token_eval=False), [cls_feats], tok.pad_token_id)
        with first_token_only(off_encoder):
            assert off_encoder.eval()(**cls_batch).last_hidden_state.shape[1] == cls_batch["input_ids"].shape[1]
    packed = prepare_encoder(copy.deepcopy(plain), RuntimeConfig(threads=1, pack_sequences=True), [cls_feats],
                             tok.pad_token_id)
    assert not packed.first_token_train and packed.first_token_eval  # packed masks: the full layer trains


def test_the_block_is_per_thread(encoder: nn.Module) -> None:
    """Evaluation predicts on several threads: one thread's block must not switch another's layer."""
    batch = _batch()
    install(encoder, train="no")
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


@pytest.mark.parametrize("attention", ["sdpa", "eager", "fast"])
@pytest.mark.parametrize("bf16", [False, True])
def test_same_draws_trains_like_the_full_layer(tiny_model: Path, attention: str, bf16: bool) -> None:
    """train="same-draws" (runtime.first_token_train): the first token alone, yet the generator ends
    where the full layer leaves it, so the head's dropout and every later step draw the same; the
    first row and the gradients equal the full layer's up to rounding."""
    from transformers import AutoModel

    from xstilts.models.dropout import use_fast_dropout

    batch = _batch()
    encoder = AutoModel.from_pretrained(tiny_model, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                                        attn_implementation="eager" if attention == "eager" else "sdpa")
    if attention == "fast":
        use_fast_dropout(encoder)
    plain = copy.deepcopy(encoder).train()
    assert install(encoder, train="same-draws")
    encoder.train()

    def step(model: nn.Module, first_only: bool) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(5)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if first_only:
                with first_token_only(model):
                    hidden = _hidden(model, batch)
            else:
                hidden = _hidden(model, batch)
        return hidden, torch.rand(4)  # the generator's next draw: where the step left it

    first, after_first = step(encoder, True)
    full, after_full = step(plain, False)
    assert first.shape[1] == 1  # the shortcut ran
    assert torch.equal(after_first, after_full)  # the same draws, in number and order
    tol = {"rtol": 2e-2, "atol": 2e-2} if bf16 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(first[:, 0].float(), full[:, 0].float(), **tol)
    weights = torch.randn(encoder.config.hidden_size)
    (first[:, 0].float() @ weights).sum().backward()
    (full[:, 0].float() @ weights).sum().backward()
    assert_same_gradients(encoder, plain, **tol)
    _, not_installed = step(copy.deepcopy(plain).train(), True)  # asked, not installed: the full layer's draws
    assert torch.equal(not_installed, after_full)
    install(encoder, train="own-draws")  # its own draws: fewer, so the generator ends elsewhere
    _, own = step(encoder, True)
    assert not torch.equal(own, after_full)


def test_same_draws_falls_back_to_the_full_layer_where_it_cannot_match(tiny_model: Path) -> None:
    """An attention implementation whose draws it does not know: the full layer runs, whose draws
    are the implementation's own."""
    from transformers import AttentionInterface, AutoModel
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    name = "xstilts_test_attention"
    AttentionInterface.register(name, sdpa_attention_forward)
    if name not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionMaskInterface.register(name, sdpa_mask)
    encoder = AutoModel.from_pretrained(tiny_model, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                                        attn_implementation=name)
    assert install(encoder, train="same-draws")
    batch = _batch()
    with first_token_only(encoder.train()):
        assert _hidden(encoder, batch).shape[1] == batch["input_ids"].shape[1]
    with torch.no_grad(), first_token_only(encoder.eval()):  # evaluation has no draws to match
        assert _hidden(encoder, batch).shape[1] == 1
