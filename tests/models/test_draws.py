"""runtime.draw_kernel: PyTorch's own CPU dropout masks from a compiled kernel, equal bit for bit
(the 0s and 1s, the generator's state after, and so every output, gradient and trained weight), and
PyTorch's own draws for every call the kernel does not take."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from xstilts.models import draws

pytestmark = pytest.mark.usefixtures("one_thread")

needs_kernel = pytest.mark.skipif(
    not draws.available(), reason="no compiler here, or this CPU's bernoulli_ draws otherwise (MKL)")


def _draw_both(n: int, dtype: torch.dtype, p: float, offset: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(values, generator state after) of bernoulli_ and of the kernel, from the same state: seeded,
    then ``offset`` 32-bit words consumed, so draws start anywhere in the 624-word block."""
    out = []
    for draw in (lambda t: t.bernoulli_(p), lambda t: draws.kernel_bernoulli_(t, p)):
        torch.manual_seed(11)
        torch.randint(0, 2**31, (offset,), dtype=torch.int64)  # one 32-bit word each
        values = draw(torch.empty(n, dtype=dtype))
        out.append((values, torch.get_rng_state()))
    return out


@needs_kernel
@pytest.mark.parametrize("dtype", draws.DTYPES)
@pytest.mark.parametrize("n", [1, 311, 312, 313, 624, 2048, 2049, 10_007])
def test_the_kernel_draws_what_bernoulli_draws(dtype: torch.dtype, n: int) -> None:
    for offset in (0, 1, 622, 623, 1000):
        (a, state_a), (b, state_b) = _draw_both(n, dtype, 0.9, offset)
        assert torch.equal(a, b), (dtype, n, offset)
        assert torch.equal(state_a, state_b), (dtype, n, offset)


@needs_kernel
@pytest.mark.parametrize("p", [0.0, 1.0, 0.5, 0.1, 1e-9, 1 - 1e-12, 0.7000000000000001])
def test_every_probability_including_the_edges(p: float) -> None:
    (a, state_a), (b, state_b) = _draw_both(4096, torch.float32, p, 5)
    assert torch.equal(a, b) and torch.equal(state_a, state_b)
    if p == 0.0:
        assert not b.any()
    if p == 1.0:
        assert b.all()


@needs_kernel
def test_a_long_stream_of_calls_stays_in_step() -> None:
    sizes = [3, 700, 624, 1, 5000, 1248, 17]
    drawn = []
    for draw in (lambda t: t.bernoulli_(0.9), lambda t: draws.kernel_bernoulli_(t, 0.9)):
        torch.manual_seed(5)
        drawn.append(([draw(torch.empty(s)) for s in sizes], torch.rand(8)))  # then a different draw
    (a, after_a), (b, after_b) = drawn
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)) and torch.equal(after_a, after_b)


def _attention_step(mode: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """A bf16-autocast block with nn.Dropout and SDPA's own attention dropout: output, input gradient,
    generator state, and how many draws the kernel took."""
    torch.manual_seed(3)
    lin = torch.nn.Linear(64, 64)
    x = torch.randn(4, 20, 64, requires_grad=True)
    kernel = draws.KernelDraws()
    with torch.autocast("cpu", dtype=torch.bfloat16), (kernel if mode else nullcontext()):
        h = torch.nn.Dropout(0.1)(lin(x))
        q = h.view(4, 20, 4, 16).transpose(1, 2)
        y = torch.nn.functional.scaled_dot_product_attention(q, q, q, dropout_p=0.1)
    y.float().sum().backward()
    return y, x.grad, torch.get_rng_state(), kernel.calls


@needs_kernel
def test_the_mode_takes_dropout_and_sdpa_draws_and_changes_nothing() -> None:
    y_a, g_a, s_a, calls_a = _attention_step(False)
    y_b, g_b, s_b, calls_b = _attention_step(True)
    assert calls_a == 0 and calls_b == 2  # nn.Dropout's mask and SDPA's attention-probability mask
    assert torch.equal(y_a, y_b) and torch.equal(g_a, g_b) and torch.equal(s_a, s_b)


@needs_kernel
def test_calls_it_cannot_promise_are_pytorchs() -> None:
    generator = torch.Generator().manual_seed(1)
    strided = torch.empty(8, 6)[:, ::2]
    with draws.KernelDraws() as kernel:
        own = torch.empty(100).bernoulli_(0.5, generator=generator)  # another generator
        strided.bernoulli_(0.5)  # not contiguous
        torch.empty(10, dtype=torch.int64).bernoulli_(0.5)  # an integer type
        torch.empty(10).bernoulli_(torch.full((10,), 0.5))  # a tensor of probabilities
    assert kernel.calls == 0
    assert torch.equal(own, torch.empty(100).bernoulli_(0.5, generator=torch.Generator().manual_seed(1)))
    assert set(strided.unique().tolist()) <= {0.0, 1.0}


def test_one_build_per_source_text_and_torch_installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    folder = draws.build_directory()
    assert folder.parent == tmp_path and folder.name.startswith(draws.NAME + "_")
    assert (folder / draws.SOURCE.name).read_bytes() == draws.SOURCE.read_bytes()  # built from the copy
    assert draws.build_directory() == folder  # any checkout with this source lands here
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert draws.build_directory() != folder  # another torch gets its own build
    monkeypatch.undo()
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(torch, "__file__", "/elsewhere/venv/torch/__init__.py")
    assert draws.build_directory() != folder  # and so does the same torch in another environment


def test_draw_alike_tells_other_values_and_other_generator_states_apart() -> None:
    torch.manual_seed(5)
    before = torch.get_rng_state()

    def plain() -> list[torch.Tensor]:
        return [torch.empty(100).bernoulli_(0.5)]

    def negated() -> list[torch.Tensor]:  # the same draws, other values
        return [1 - torch.empty(100).bernoulli_(0.5)]

    def one_more() -> list[torch.Tensor]:  # the same values, the generator moved on further
        out = [torch.empty(100).bernoulli_(0.5)]
        torch.rand(1)
        return out

    assert draws.draw_alike([plain, plain, plain], seed=1)
    assert not draws.draw_alike([plain, negated], seed=1)
    assert not draws.draw_alike([plain, one_more], seed=1)
    assert not draws.draw_alike([plain, lambda: plain() + plain()], seed=1)
    assert torch.equal(torch.get_rng_state(), before)


def test_without_a_build_nothing_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    draws.available.cache_clear()
    monkeypatch.setattr(draws, "_build", lambda: None)
    try:
        assert draws.available() is False
    finally:
        draws.available.cache_clear()


@needs_kernel
def test_the_loop_trains_the_same_weights_with_and_without_it(tiny_model: Path, mini_data: Path) -> None:
    from xstilts.config import RuntimeConfig, TrainConfig
    from xstilts.featurize import load_features
    from xstilts.heads import get_head_kind
    from xstilts.models.loading import load_encoder, load_tokenizer
    from xstilts.tasks import get_task
    from xstilts.training.loop import Job, set_seed, train

    task = get_task("sick", data_dir=mini_data)
    kind = get_head_kind(task.head)
    _, feats = load_features(task, "train", "en", load_tokenizer(str(tiny_model)), 32, 24)
    set_seed(0)
    encoder = load_encoder(str(tiny_model), dropout=0.1)
    head = kind.build(task, encoder.config.hidden_size, 0.1)
    hp = TrainConfig(lr=1e-3, batch_size=8, max_steps=4, eval_every=10**9)
    trained = []
    for flag in (False, True):
        enc, hd = copy.deepcopy(encoder), copy.deepcopy(head)
        set_seed(7)
        runtime = RuntimeConfig(progress=False, threads=1, bf16=True, draw_kernel=flag)
        train(enc, [Job(task.name, kind, hd, feats)], hp, runtime, 7, 1, lambda s: 0.0)
        trained.append([p.detach().clone() for p in (*enc.parameters(), *hd.parameters())])
    assert all(torch.equal(a, b) for a, b in zip(*trained, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(trained[0], encoder.parameters(), strict=False))  # it trained


def _forward_counting(model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch, scope) -> tuple[torch.Tensor, int]:
    """A bf16 training forward of ``model`` from seed 4 within ``scope``: output, and the kernel's draws."""
    calls = []
    real = draws.kernel_bernoulli_
    monkeypatch.setattr(draws, "kernel_bernoulli_", lambda t, p: calls.append(p) or real(t, p))
    ids = torch.randint(5, 1000, (3, 10), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(4)
    with torch.autocast("cpu", dtype=torch.bfloat16), scope():
        out = model(input_ids=ids).last_hidden_state
    monkeypatch.undo()
    return out, len(calls)


@needs_kernel
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])  # SDPA draws inside its operator, eager in F.dropout
def test_installed_places_draw_with_the_kernel_only_within_drawing(tiny_model: Path, implementation: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModel

    base = AutoModel.from_pretrained(tiny_model, attn_implementation=implementation).train()
    layers = base.config.num_hidden_layers
    model = copy.deepcopy(base)
    # embeddings' dropout, and per layer: attention output's, feed-forward output's, and the attention
    # module (its own nn.Dropout is counted once, as the module holding SDPA's draw)
    assert draws.install(model) == (3 * layers + 1) + layers
    assert draws.install(model) == 4 * layers + 1  # again: nothing more
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    reference, none = _forward_counting(base, monkeypatch, nullcontext)
    state = torch.get_rng_state()
    local, taken = _forward_counting(model, monkeypatch, draws.drawing)
    assert none == 0 and taken == 3 * layers + 1  # every dropout mask, SDPA's included
    assert torch.equal(local, reference) and torch.equal(torch.get_rng_state(), state)
    assert _forward_counting(model, monkeypatch, nullcontext)[1] == 0  # outside drawing(): PyTorch's
    assert _forward_counting(model.eval(), monkeypatch, draws.drawing)[1] == 0  # evaluation draws nothing


@needs_kernel
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_a_failing_attention_module_leaves_no_mode_behind(tiny_model: Path, implementation: str) -> None:
    from torch.utils._python_dispatch import _get_current_dispatch_mode
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_model, attn_implementation=implementation).train()
    draws.install(model)
    attention = draws.attention_modules(model)[0]
    attention.key = None  # its forward now raises inside the held mode
    with draws.drawing(), pytest.raises(TypeError):
        model(input_ids=torch.ones(1, 4, dtype=torch.long))
    assert _get_current_dispatch_mode() is None and draws._HELD not in vars(attention)
