"""runtime.attention_kernel: attention on real tokens by a compiled kernel, equal to PyTorch's up to
float rounding -- in evaluation, and with attention_kernel_train in training: its gradients, and
dropout with the mask SDPA draws."""

from __future__ import annotations

import copy
import platform
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from _gradients import assert_same_gradients
from torch import nn

from xstilts.models import attention_kernel, unpadding

pytestmark = pytest.mark.usefixtures("one_thread")

needs_kernel = pytest.mark.skipif(not attention_kernel.available(), reason="no C++ compiler here")


def _rows(lengths: list[int], width: int, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(sum(lengths), width, generator=g).to(dtype) for _ in range(3))


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: list[int], heads: int) -> torch.Tensor:
    """PyTorch's SDPA in the padded layout with a key-padding mask, real rows back (float64)."""
    batch, length, width = len(lengths), max(lengths), q.shape[-1]
    keys = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    index = keys.reshape(-1).nonzero().squeeze(1)

    def spread(t: torch.Tensor) -> torch.Tensor:
        rows = t.new_zeros(batch * length, width).index_copy(0, index, t)
        return rows.view(batch, length, heads, -1).transpose(1, 2)

    out = F.scaled_dot_product_attention(spread(q.double()), spread(k.double()), spread(v.double()),
                                         attn_mask=keys[:, None, None, :])
    return out.transpose(1, 2).reshape(batch * length, width)[index]


@needs_kernel
@pytest.mark.parametrize("head_size", [16, 32, 64, 128])
def test_fp32_attention_equals_sdpa_to_rounding(head_size: int) -> None:
    lengths = [1, 5, 16, 17, 40, 3]
    heads = 2
    q, k, v = _rows(lengths, heads * head_size, torch.float32)
    got = attention_kernel.attend(q, k, v, torch.tensor(lengths), heads, head_size ** -0.5)
    assert got.dtype == torch.float32 and got.shape == q.shape
    torch.testing.assert_close(got.double(), _sdpa(q, k, v, lengths, heads), rtol=1e-5, atol=1e-5)


@needs_kernel
@pytest.mark.skipif(platform.machine() != "x86_64", reason="the kernel's builds are chosen by x86-64 flags")
def test_it_runs_the_widest_instruction_set_the_cpu_has(cpu_flags: set[str]) -> None:
    """AVX-512 where the CPU has it, else AVX2 with FMA (an AVX2 build without FMA was the slow one)."""
    want = "avx512" if "avx512f" in cpu_flags else "avx2+fma" if {"avx2", "fma"} <= cpu_flags else "baseline"
    assert attention_kernel.instruction_set() == want


@needs_kernel
def test_bf16_attention_is_the_exact_result_rounded_once() -> None:
    """From bf16 inputs the kernel computes in fp32 and rounds the output: within bf16's half-step."""
    lengths = [7, 33, 2]
    q, k, v = _rows(lengths, 4 * 32, torch.bfloat16)
    got = attention_kernel.attend(q, k, v, torch.tensor(lengths), 4, 32 ** -0.5)
    assert got.dtype == torch.bfloat16
    want = _sdpa(q, k, v, lengths, 4)
    assert float(((got.double() - want).abs() / want.abs().clamp_min(1e-3)).max()) <= 2 ** -8 * 1.01


@needs_kernel
def test_the_other_sequences_and_the_scale_matter_as_they_should() -> None:
    lengths = [6, 9]
    q, k, v = _rows(lengths, 64, torch.float32)
    both = attention_kernel.attend(q, k, v, torch.tensor(lengths), 2, 0.25)
    alone = attention_kernel.attend(q[6:], k[6:], v[6:], torch.tensor([9]), 2, 0.25)
    assert torch.equal(both[6:], alone)  # a sequence never sees another's keys
    other = attention_kernel.attend(q, k, v, torch.tensor(lengths), 2, 0.5)
    assert not torch.allclose(both, other)
    want = attention_kernel._reference(q.double(), k.double(), v.double(), torch.tensor(lengths), 2, 0.5)
    torch.testing.assert_close(other.double(), want, rtol=1e-5, atol=1e-5)


@needs_kernel
def test_views_with_other_row_strides_and_any_thread_count_give_the_same_bits() -> None:
    lengths = [12, 30, 1, 19]
    stacked = _rows(lengths, 3 * 96, torch.float32)[0]  # a fused projection's output
    q, k, v = stacked[:, :96], stacked[:, 96:192], stacked[:, 192:]
    one = attention_kernel.attend(q, k, v, torch.tensor(lengths), 3, 0.2)
    assert torch.equal(one, attention_kernel.attend(q.contiguous(), k.contiguous(), v.contiguous(),
                                                    torch.tensor(lengths), 3, 0.2))
    torch.set_num_threads(2)
    try:
        assert torch.equal(one, attention_kernel.attend(q, k, v, torch.tensor(lengths), 3, 0.2))
    finally:
        torch.set_num_threads(1)


@needs_kernel
def test_sequences_outside_the_rows_are_refused() -> None:
    q, k, v = _rows([4], 32, torch.float32)
    with pytest.raises(RuntimeError, match="outside the rows"):
        attention_kernel.attend(q, k, v, torch.tensor([5]), 2, 0.25)
    with pytest.raises(RuntimeError, match="outside the rows"):
        attention_kernel.attend(q, k, v, torch.tensor([0, 4]), 2, 0.25)


def test_what_it_takes() -> None:
    q = torch.zeros(5, 64)
    assert attention_kernel.takes(q, 2) and attention_kernel.takes(q.bfloat16(), 4)
    assert attention_kernel.takes(q.clone().requires_grad_(), 2)  # it has a backward
    assert not attention_kernel.takes(q, 3)  # 64 is not 3 heads
    assert not attention_kernel.takes(torch.zeros(5, 48), 1)  # head size 48
    assert not attention_kernel.takes(q.half(), 2)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("head_size", [16, 32, 64, 128])
@pytest.mark.parametrize("dropped", [False, True])
def test_gradients_equal_float64_attentions(dtype: torch.dtype, head_size: int, dropped: bool) -> None:
    """The backward pass, with and without a dropout mask on the probabilities, against autograd
    through float64 attention on the same (rounded) inputs; views with other row strides too."""
    lengths, heads = [1, 5, 16, 17, 40, 3], 2
    g = torch.Generator().manual_seed(head_size)
    stacked = torch.randn(sum(lengths), 3 * heads * head_size, generator=g).to(dtype)
    mask = (torch.rand(len(lengths), heads, 41, 41, generator=g) >= 0.1).float() / 0.9 if dropped else None
    leaf = stacked.clone().requires_grad_()
    got = attention_kernel.attend(*leaf.chunk(3, dim=1), torch.tensor(lengths), heads, head_size ** -0.5, mask)
    wide = stacked.double().requires_grad_()
    want = attention_kernel._reference(*wide.chunk(3, dim=1), torch.tensor(lengths), heads, head_size ** -0.5,
                                       None if mask is None else mask.double())
    upstream = torch.randn(got.shape, generator=g).to(dtype)
    got.backward(upstream)
    want.backward(upstream.double())
    assert got.dtype == leaf.grad.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float32 else 2 ** -7
    for a, b in ((got, want), (leaf.grad, wide.grad)):
        assert float((a.detach().double() - b.detach()).abs().max() / b.detach().abs().max()) <= tolerance
    if dropped:  # the mask matters: without it the output differs
        plain = attention_kernel.attend(*stacked.chunk(3, dim=1), torch.tensor(lengths), heads, head_size ** -0.5)
        assert not torch.allclose(plain.float(), got.detach().float(), atol=1e-2)


@needs_kernel
def test_rows_outside_every_sequence_get_zero_gradients() -> None:
    """The compiled call takes any starts; rows no sequence covers have no gradient (zeros, not garbage)."""
    module = attention_kernel._build()
    q, k, v = _rows([20], 64, torch.float32)
    starts, lengths = torch.tensor([0, 6, 15]), torch.tensor([4, 7, 5])  # rows 4-5 and 13-14 left out
    _, probs, offsets = module.attention_train(q, k, v, starts, lengths, 2, 0.25, None)
    grads = module.attention_backward(torch.ones_like(q), q, k, v, starts, lengths, 2, 0.25, None, probs, offsets)
    outside = [4, 5, 13, 14]
    for g in grads:
        assert not g[outside].any() and g[[0, 6, 15]].abs().sum() > 0


@needs_kernel
def test_a_mask_of_the_wrong_shape_is_refused() -> None:
    q, k, v = _rows([4, 6], 64, torch.float32)
    with pytest.raises(RuntimeError, match="mask"):
        attention_kernel.attend(q, k, v, torch.tensor([4, 6]), 2, 0.25, torch.ones(2, 2, 5, 5))  # L < 6
    with pytest.raises(RuntimeError, match="mask"):
        attention_kernel.attend(q, k, v, torch.tensor([4, 6]), 2, 0.25, torch.ones(2, 2, 6, 6).double())


def test_a_kernel_that_disagrees_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check at first use: a build whose results are wrong (here: zeros) is refused."""
    wrong = SimpleNamespace(attention=lambda q, k, v, starts, lengths, heads, scale: torch.zeros_like(q))
    attention_kernel.available.cache_clear()
    monkeypatch.setattr(attention_kernel, "_build", lambda: wrong)
    attention_kernel.trains.cache_clear()
    try:
        assert attention_kernel.available() is False and attention_kernel.trains() is False
        monkeypatch.setattr(attention_kernel, "_build", lambda: None)
        attention_kernel.available.cache_clear()
        assert attention_kernel.available() is False  # no compiler
    finally:
        monkeypatch.undo()
        attention_kernel.available.cache_clear()
        attention_kernel.trains.cache_clear()


@needs_kernel
def test_a_backward_that_disagrees_is_not_trained_with(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inference may pass its check and training still be refused: here the gradients come back halved."""
    built = attention_kernel._build()

    def halved(*args: object) -> list[torch.Tensor]:
        return [g / 2 for g in built.attention_backward(*args)]

    wrong = SimpleNamespace(attention=built.attention, attention_train=built.attention_train,
                            attention_backward=halved)
    monkeypatch.setattr(attention_kernel, "_build", lambda: wrong)
    attention_kernel.available.cache_clear()
    attention_kernel.trains.cache_clear()
    try:
        assert attention_kernel.available() is True and attention_kernel.trains() is False
    finally:
        monkeypatch.undo()
        attention_kernel.available.cache_clear()
        attention_kernel.trains.cache_clear()


# --- in the encoder (models/unpadding.py) ---

def _encoder(tiny_model: Path, attention: str = "sdpa", dropout: float | None = None) -> nn.Module:
    from transformers import AutoModel

    rates = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    return AutoModel.from_pretrained(tiny_model, attn_implementation=attention, **rates)


def _batch(padded: bool) -> dict[str, torch.Tensor]:
    """Four sequences of 9 tokens, or of 9, 5, 9 and 1 with padding after them (id 1)."""
    lengths = torch.tensor([9, 5, 9, 1] if padded else [9] * 4)
    mask = (torch.arange(9)[None, :] < lengths[:, None]).long()
    ids = torch.randint(5, 1000, (4, 9), generator=torch.Generator().manual_seed(0)).masked_fill(mask == 0, 1)
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture()
def kernel_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    attention_kernel.available()  # the checks call attend: counted before, not here (each is cached
    attention_kernel.trains()  # on its own, and a test may have cleared one)
    calls: list[int] = []
    original = attention_kernel.attend
    monkeypatch.setattr(attention_kernel, "attend", lambda *a: calls.append(1) or original(*a))
    return calls


@needs_kernel
@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("bf16", [False, True])
def test_evaluation_equals_the_padded_encoder(tiny_model: Path, kernel_calls: list[int], padded: bool,
                                              bf16: bool) -> None:
    """Every batch in evaluation, padded or not, runs its layers on real tokens with the kernel."""
    batch = _batch(padded)
    encoder = _encoder(tiny_model).eval()
    plain = copy.deepcopy(encoder)
    assert unpadding.install(encoder, 0.05, kernel=True) == 2 and unpadding.kernel_installed(encoder)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hidden, full = encoder(**batch).last_hidden_state, plain(**batch).last_hidden_state
    assert len(kernel_calls) == 2
    real = batch["attention_mask"].bool()
    tolerance = 2e-2 if bf16 else 1e-5
    torch.testing.assert_close(hidden[real].float(), full[real].float(), rtol=tolerance, atol=tolerance)


@needs_kernel
@pytest.mark.parametrize("attention", ["sdpa", "fast"])
@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("bf16", [False, True])
def test_training_equals_the_padded_encoders_with_its_draws(tiny_model: Path, kernel_calls: list[int],
                                                            attention: str, padded: bool, bf16: bool) -> None:
    """With attention_kernel_train every training batch runs its layers on real tokens, attention's
    forward and backward by the kernel, dropping the probabilities with the very mask SDPA (or the
    fast-dropout attention) draws: hidden states and gradients equal the padded encoder's to rounding,
    and the random generator ends where it does."""
    from xstilts.models.dropout import use_fast_dropout

    batch = _batch(padded)
    encoder = _encoder(tiny_model, dropout=0.1)
    if attention == "fast":
        use_fast_dropout(encoder)
    plain = copy.deepcopy(encoder).train()
    assert unpadding.install(encoder, 0.05, kernel=True, train_kernel=True) == 2
    assert unpadding.train_kernel_installed(encoder)
    encoder.train()
    outs = []
    for model in (encoder, plain):
        torch.manual_seed(5)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            outs.append((model(**batch).last_hidden_state, torch.rand(4)))
    (hidden, after), (full, after_full) = outs
    assert len(kernel_calls) == 2 and torch.equal(after, after_full)  # the same draws, in number and order
    real = batch["attention_mask"].bool()
    tolerance = {"rtol": 2e-2, "atol": 2e-2} if bf16 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(hidden[real].float(), full[real].float(), **tolerance)
    weights = torch.randn(encoder.config.hidden_size)
    for out in (hidden, full):
        ((out.float() @ weights) * real).sum().backward()
    assert_same_gradients(encoder, plain, **tolerance)
    torch.manual_seed(6)  # the check can fail: another seed's attention masks move every real token
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        other = encoder(**batch).last_hidden_state
    assert not torch.allclose(other[real].float(), full[real].float(), **tolerance)


@needs_kernel
def test_training_takes_it_only_when_asked_and_right_padded(tiny_model: Path, kernel_calls: list[int]) -> None:
    batch = _batch(True)
    encoder = _encoder(tiny_model)
    unpadding.install(encoder, kernel=True)  # evaluation's only
    encoder.train()
    encoder(**batch).last_hidden_state.sum().backward()
    assert not kernel_calls and not unpadding.train_kernel_installed(encoder)
    unpadding.install(encoder, kernel=True, train_kernel=True)
    left = {key: value.flip(1) for key, value in batch.items()}  # padding first: dropout's mask is by position
    encoder(**left).last_hidden_state.sum().backward()
    assert not kernel_calls
    encoder(**batch).last_hidden_state.sum().backward()
    assert len(kernel_calls) == 2
    encoder.eval()  # eval mode with gradients wanted (saliency, probes): no dropout, the kernel's backward
    encoder(**batch).last_hidden_state.sum().backward()
    assert len(kernel_calls) == 4
    eager = _encoder(tiny_model, attention="eager")  # its dropout is not SDPA's: PyTorch's attention
    unpadding.install(eager, kernel=True, train_kernel=True)
    assert not unpadding.train_kernel_installed(eager)


@needs_kernel
def test_only_when_asked_and_available(tiny_model: Path, kernel_calls: list[int],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    batch = _batch(False)
    encoder = _encoder(tiny_model).eval()
    plain = copy.deepcopy(encoder)
    unpadding.install(encoder)  # not asked: a batch without padding runs the ordinary encoder
    with torch.no_grad():
        assert torch.equal(encoder(**batch).last_hidden_state, plain(**batch).last_hidden_state)
    unpadding.install(encoder, kernel=True)
    monkeypatch.setattr(attention_kernel, "available", lambda: False)
    assert not unpadding.kernel_installed(encoder)
    with torch.no_grad():
        assert torch.equal(encoder(**batch).last_hidden_state, plain(**batch).last_hidden_state)
    assert not kernel_calls


@needs_kernel
def test_packed_rows_and_rows_of_padding_alone_are_not_its_to_take() -> None:
    stack = SimpleNamespace(training=False, layer=[SimpleNamespace(attention=SimpleNamespace(
        self=SimpleNamespace(config=SimpleNamespace(is_decoder=False))))])
    vars(stack)[unpadding._KERNEL] = True
    block = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool).expand(2, 1, 3, 3)
    keys = torch.tensor([[True, True, False], [False, False, False]])
    with torch.no_grad():
        index, lengths = unpadding._kernel_rows(stack, None, 2, 3)  # no mask: no padding
        assert index.tolist() == list(range(6)) and lengths.tolist() == [3, 3]
        index, lengths = unpadding._kernel_rows(stack, keys[:1, None, None, :].expand(1, 1, 3, 3), 1, 3)
        assert index.tolist() == [0, 1] and lengths.tolist() == [2]
        assert unpadding._kernel_rows(stack, block, 2, 3) is None
        assert unpadding._kernel_rows(stack, keys[:, None, None, :].expand(2, 1, 3, 3), 2, 3) is None
        stack.layer[0].attention.self.config.is_decoder = True  # causal attention may come without a mask
        assert unpadding._kernel_rows(stack, None, 2, 3) is None


@pytest.mark.parametrize("capability, auto", [("AVX512", True), ("AVX512_BF16", True), ("AVX2", False),
                                              ("DEFAULT", False)])
def test_auto_uses_the_kernel_on_avx512_cpus_only(tiny_model: Path, monkeypatch, capability, auto) -> None:
    from xstilts.config import RuntimeConfig
    from xstilts.training.speed import prepare_encoder

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert attention_kernel.wanted("auto") is auto
    assert attention_kernel.wanted(True) is True and attention_kernel.wanted(False) is False
    # attention_kernel left at its default, "auto"
    runtime = RuntimeConfig(threads=1, onednn_linear=False, openblas_linear=False)
    assert prepare_encoder(_encoder(tiny_model), runtime, [], None).attention_kernel is (
        auto and attention_kernel.available())


def test_the_runtime_switch(tiny_model: Path) -> None:
    from xstilts.config import RuntimeConfig
    from xstilts.plan import runtime_key
    from xstilts.training.speed import prepare_encoder

    on = RuntimeConfig(threads=1, attention_kernel=True)
    assert prepare_encoder(_encoder(tiny_model), on, [], None).attention_kernel == attention_kernel.available()
    assert RuntimeConfig(threads=1).attention_kernel == "auto"
    off = RuntimeConfig(threads=1, attention_kernel=False)
    assert prepare_encoder(_encoder(tiny_model), off, [], None).attention_kernel is False
    no_unpad = RuntimeConfig(threads=1, unpad=False, attention_kernel=True)
    assert prepare_encoder(_encoder(tiny_model), no_unpad, [], None).attention_kernel is False  # runs in unpadded layers
    assert runtime_key(on) == runtime_key(off)  # rounding only: not in run ids
