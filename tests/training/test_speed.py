"""The runtime speed switches: what each does to the encoder, and that the exact ones change nothing."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from xstilts.config import RuntimeConfig, TrainConfig
from xstilts.models import attention_kernel, draws, linear, openblas
from xstilts.models.vocab import TrimmedEmbedding, full_state_dict
from xstilts.training.speed import prepare_encoder, set_cudnn_attention, uses_draw_kernel

WORD = "embeddings.word_embeddings.weight"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tiny_model: Path, shared_data: Path):
    """Tokenizer, PAN-X task and head kind, 32 real training sentences, 12 dev sentences, a model."""
    from transformers import AutoModel, AutoTokenizer

    from xstilts.heads import get_head_kind
    from xstilts.tasks import get_task

    tok = AutoTokenizer.from_pretrained(tiny_model)
    task = get_task("panx", data_dir=shared_data)
    kind = get_head_kind(task.head)
    train_ex = task.load("train", "en", 32)
    dev_ex = task.load("eval", "en", 12)
    torch.manual_seed(0)
    return (tok, task, kind, kind.encode(task, train_ex, tok, 32), dev_ex, kind.encode(task, dev_ex, tok, 32),
            AutoModel.from_pretrained(tiny_model))


def _train(setup, runtime: RuntimeConfig, steps: int = 4):
    from xstilts.training.loop import Job, set_seed, train

    tok, task, kind, feats, _, dev_feats, base = setup
    set_seed(7)
    encoder = copy.deepcopy(base)
    head = kind.build(task, 32, 0.1)
    info = prepare_encoder(encoder, runtime, [feats, dev_feats], tok.pad_token_id)
    hp = TrainConfig(lr=1e-2, batch_size=8, max_steps=steps, eval_every=1000, weight_decay=0.1)
    train(encoder, [Job(task.name, kind, head, feats)], hp, runtime, 7, tok.pad_token_id, lambda s: 0.0)
    return encoder, head, info


def test_prepare_encoder_applies_each_switch(setup) -> None:
    tok, _, _, feats, _, dev_feats, base = setup
    encoder = copy.deepcopy(base)
    info = prepare_encoder(encoder, RuntimeConfig(threads=1, trim_vocab=True, freeze_embeddings=True,
                                                  fast_dropout=True, fuse_qkv=True),
                           [feats, dev_feats], tok.pad_token_id)
    emb = encoder.get_input_embeddings()
    assert isinstance(emb, TrimmedEmbedding) and not emb.weight.requires_grad
    pad = emb.kept[emb.padding_idx].item()  # the model's padding row is always kept
    ids = {i for f in [*feats, *dev_feats] for i in f["input_ids"]} | {tok.pad_token_id, pad}
    assert set(emb.kept.tolist()) == ids
    blas = openblas.available() and openblas.wanted("auto")
    assert info.as_dict() == {"threads": 1, "thread_log": [[0, 1, None]], "vocab_rows": len(ids),
                              "frozen_parameters": emb.weight.numel(),
                              "fast_dropout_modules": 3 * encoder.config.num_hidden_layers + 1,
                              "draw_kernel": False,  # fast_dropout left nothing for it to draw
                              # q, k, v, attention output, intermediate, output per layer, and the pooler
                              "onednn_linear": (6 * encoder.config.num_hidden_layers + 1)
                              if linear.available() and linear.wanted("auto") and not blas else 0,
                              "openblas_linear": (6 * encoder.config.num_hidden_layers + 1) if blas else 0,
                              "fused_qkv": encoder.config.num_hidden_layers,
                              "unpadded": encoder.config.num_hidden_layers,
                              # "auto": where PyTorch runs AVX-512 kernels
                              "attention_kernel": attention_kernel.available() and attention_kernel.wanted("auto"),
                              # ... in training too (fast_dropout's attention draws as the kernel can)
                              "attention_kernel_train": attention_kernel.trains() and attention_kernel.wanted("auto"),
                              "first_token_only": False, "first_token_train": True, "first_token_eval": True,
                              "compiled": False,
                              "packed": False, "precision": "no", "cudnn_attention": None}
    plain = copy.deepcopy(base)
    info = prepare_encoder(plain, RuntimeConfig(trim_vocab=False), [feats], tok.pad_token_id)
    assert plain.get_input_embeddings().weight.requires_grad and info.vocab_rows is None
    assert info.fast_dropout_modules == 0 and plain.config._attn_implementation == "sdpa"
    for setting, installed in ((True, linear.available()), (False, False)):  # explicit settings on any CPU
        info = prepare_encoder(copy.deepcopy(base), RuntimeConfig(trim_vocab=False, onednn_linear=setting,
                                                                  openblas_linear=False), [feats], tok.pad_token_id)
        assert (info.onednn_linear > 0) is installed
    for setting, installed in ((True, openblas.available()), (False, False)):
        info = prepare_encoder(copy.deepcopy(base), RuntimeConfig(trim_vocab=False, onednn_linear=True,
                                                                  openblas_linear=setting), [feats], tok.pad_token_id)
        assert (info.openblas_linear > 0) is installed  # where both are on, OpenBLAS takes the layers
        assert (info.onednn_linear > 0) is (not installed and linear.available())


@pytest.mark.parametrize("wanted", [False, True])
def test_cudnn_attention_is_switched_on_cuda_only(wanted: bool) -> None:
    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(not wanted)
        assert set_cudnn_attention(RuntimeConfig(cudnn_attention=wanted), "cpu") is None
        assert torch.backends.cuda.cudnn_sdp_enabled() is (not wanted)  # a CPU run leaves it alone
        assert set_cudnn_attention(RuntimeConfig(cudnn_attention=wanted), "cuda") is wanted
        assert torch.backends.cuda.cudnn_sdp_enabled() is wanted
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


@pytest.mark.parametrize("trim", [True, False])
def test_frozen_embeddings_stay_unchanged_after_training(setup, trim: bool) -> None:
    base = setup[-1]
    encoder, _, _ = _train(setup, RuntimeConfig(progress=False, trim_vocab=trim, freeze_embeddings=True))
    after = full_state_dict(encoder)
    before = base.state_dict()
    assert torch.equal(after[WORD], before[WORD])
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(after[layer], before[layer])  # the rest did train


def test_trimmed_training_equals_full_training(setup) -> None:
    """Same seed, same loop: the expanded trimmed encoder matches the full one, and so do predictions."""
    from xstilts.evaluation.predict import predict

    tok, _, kind, _, _, dev_feats, _ = setup
    runs = {trim: _train(setup, RuntimeConfig(progress=False, trim_vocab=trim)) for trim in (True, False)}
    trimmed, full = full_state_dict(runs[True][0]), runs[False][0].state_dict()
    assert trimmed.keys() == full.keys()
    for key in full:
        torch.testing.assert_close(trimmed[key], full[key], msg=key)
    outputs = {trim: predict(enc, head, kind, dev_feats, tok.pad_token_id)
               for trim, (enc, head, _) in runs.items()}
    for a, b in zip(outputs[True], outputs[False], strict=True):
        torch.testing.assert_close(torch.from_numpy(a), torch.from_numpy(b))
        assert (a.argmax(-1) == b.argmax(-1)).all()


def test_packed_training_without_dropout_equals_padded_training(setup) -> None:
    """pack_sequences changes the layout, not the arithmetic: with no dropout to draw, the same
    steps give the same weights up to rounding. Packing is checked before the vocabulary is trimmed."""
    tok, task, kind, feats, _, dev_feats, base = setup
    from xstilts.models import packing

    runs = {}
    for packed in (True, False):
        model = copy.deepcopy(base)
        model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        runs[packed] = _train((tok, task, kind, feats, None, dev_feats, model),
                              RuntimeConfig(progress=False, pack_sequences=packed), steps=3)
    assert runs[True][2].packed and packing.installed(runs[True][0]) and not packing.installed(runs[False][0])
    packed_state, padded_state = full_state_dict(runs[True][0]), full_state_dict(runs[False][0])
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(packed_state[layer], base.state_dict()[layer])  # it trained
    # AdamW divides by the gradient's own scale, so a row whose gradient is rounding noise moves by up
    # to lr either way: allow that in a few rows, demand equality to 1e-5 everywhere else
    differing = 0
    for key, value in padded_state.items():
        torch.testing.assert_close(packed_state[key], value, rtol=1e-3, atol=1e-3, msg=key)
        differing += int(((packed_state[key] - value).abs() > 1e-5).sum())
    assert differing <= 1e-4 * sum(v.numel() for v in padded_state.values())


def test_unpadded_training_equals_padded_training_dropout_included(setup, layer_calls: list[int]) -> None:
    """unpad computes the layers on real tokens alone and draws the padded encoder's dropout masks:
    the same steps, dropout on, give the same weights up to rounding."""
    from xstilts.models import unpadding

    runs = {unpad: _train(setup, RuntimeConfig(progress=False, unpad=unpad), steps=3) for unpad in (True, False)}
    # layer_calls: the loop's batches took the unpadded path
    assert layer_calls and runs[True][2].unpadded == 2 and unpadding.installed(runs[True][0])
    assert not runs[False][2].unpadded and not unpadding.installed(runs[False][0])
    base = setup[-1]
    assert any(m.p > 0 for m in base.modules() if isinstance(m, torch.nn.Dropout))  # masks were drawn
    unpadded, padded = full_state_dict(runs[True][0]), full_state_dict(runs[False][0])
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(unpadded[layer], base.state_dict()[layer])  # it trained
    differing = 0  # as for packing above: rounding-noise gradients may move a few rows by up to lr
    for key, value in padded.items():
        torch.testing.assert_close(unpadded[key], value, rtol=1e-3, atol=1e-3, msg=key)
        differing += int(((unpadded[key] - value).abs() > 1e-5).sum())
    assert differing <= 1e-4 * sum(v.numel() for v in padded.values())
    head_a, head_b = runs[True][1].state_dict(), runs[False][1].state_dict()
    for key, value in head_b.items():
        torch.testing.assert_close(head_a[key], value, rtol=1e-3, atol=1e-3, msg=key)


def test_phase_two_checkpoint_is_full_vocabulary(tiny_config: Path) -> None:
    """A trimmed phase-2 run still hands phase 3 a full-vocabulary encoder."""
    from safetensors.torch import load_file

    from xstilts.config import load_config
    from xstilts.context import RunContext
    from xstilts.phases.intermediate import run_intermediate
    from xstilts.plan import make_plan

    cfg = load_config(tiny_config)
    assert cfg.runtime.trim_vocab  # the default
    run = next(r for r in make_plan(cfg) if r.phase == "intermediate")
    result = run_intermediate(run, RunContext.create(cfg))
    assert 0 < result.extra["speed"]["vocab_rows"] < 250037
    state = load_file(str(Path(result.checkpoint) / "encoder.safetensors"))
    assert state[WORD].shape == (250037, 32)


@pytest.mark.parametrize(("others", "expected"), [(0.0, 3), (0.4, 3), (1.2, 3), (2.6, 1), (3.0, 1), (11.0, 1)])
def test_auto_threads_use_the_cores_others_leave_free(monkeypatch, others: float, expected: int) -> None:
    import os

    from xstilts.training import speed

    monkeypatch.setattr(speed, "_initial_threads", 3)  # e.g. what PyTorch or an executor chose
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(speed, "other_busy_cores", lambda window_s=0.25: others)
    assert speed.choose_threads(RuntimeConfig()) == expected  # 4 cores, never above the initial 3
    assert speed.choose_threads(RuntimeConfig(threads=2)) == 2  # an explicit count always wins
    # without /proc: the load average stands in; without that, the initial count
    monkeypatch.setattr(speed, "other_busy_cores", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 0.0, 0.0))
    assert speed.choose_threads(RuntimeConfig()) == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (_ for _ in ()).throw(OSError()))
    assert speed.choose_threads(RuntimeConfig()) == 3


def _scripted_proc(monkeypatch: pytest.MonkeyPatch, readings: list,
                   stalls: list[float] = ()) -> tuple[list[float], dict[str, float]]:
    """Feed :func:`other_busy_cores` scripted /proc readings (100 jiffies/s) and a scripted clock.

    A sleep advances the clock by its length, plus the next of ``stalls`` (the process stopped
    midway) while there are any. Returns the list of sleeps asked for and the clock (``"t"``).
    """
    from xstilts.training import speed

    it, extra, clock, slept = iter(readings), list(stalls), {"t": 100.0}, []

    def sleep(s: float) -> None:
        slept.append(s)
        clock["t"] += s + (extra.pop(0) if extra else 0.0)

    monkeypatch.setattr(speed, "_cpu_jiffies", lambda: next(it))
    monkeypatch.setattr(speed.os, "sysconf", lambda name: 100)
    monkeypatch.setattr(speed.time, "sleep", sleep)
    monkeypatch.setattr(speed.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(speed, "_last_reading", None)  # a fresh window, not one from an earlier test
    return slept, clock


def test_own_cpu_use_is_not_counted_as_other_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bug this replaces: a process's own busy threads made the next run think the machine busy.
    The arithmetic on scripted /proc readings, so the test does not depend on what else runs."""
    from xstilts.training import speed

    # (machine busy, own utime + stime, yielding processes): the machine +150 jiffies, ours +100
    _scripted_proc(monkeypatch, [(10_000, 500, {}), (10_150, 600, {})])
    assert speed.other_busy_cores(0.5) == pytest.approx((150 - 100) / 100 / 0.5)  # one other core


def test_a_check_measures_the_interval_since_the_last_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rechecks cost no sleep: the window runs from the previous reading when it is recent enough."""
    from xstilts.training import speed

    # 1st check: a fresh 0.5 s window, one other core; then 10 s of training in which another
    # process used 5 of those seconds (500 jiffies) beside our 1,200
    slept, clock = _scripted_proc(monkeypatch, [(0, 0, {}), (150, 100, {}), (150 + 1700, 1300, {})])
    assert speed.other_busy_cores(0.5) == pytest.approx(1.0)
    assert slept == [0.5]
    clock["t"] += 10.0
    assert speed.other_busy_cores(0.5) == pytest.approx(0.5)  # 500 jiffies over 10 s, no sleep
    assert slept == [0.5]
    clock["t"] += 1000.0  # too old to stand for the present: a fresh window again
    monkeypatch.setattr(speed, "_cpu_jiffies", iter([(0, 0, {}), (0, 0, {})]).__next__)
    assert speed.other_busy_cores(0.5) == 0.0 and slept == [0.5, 0.5]


def test_a_window_in_which_this_process_was_stopped_is_measured_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped for 3 s in its 0.5 s window while others ran both cores: not 12 busy cores but a retry.

    The case that made a time-sliced benchmark train XNLI on one thread (2026-12-01)."""
    from xstilts.training import speed

    readings = [(0, 0, {}), (600, 0, {}),  # 6 core-seconds of others' work while we were stopped
                (600, 0, {}), (600 + 10, 0, {})]  # the retry: 0.1 core-seconds in 0.5 s
    slept, _ = _scripted_proc(monkeypatch, readings, stalls=[3.0])
    assert speed.other_busy_cores(0.5) == pytest.approx(0.2)
    assert slept == [0.5, 0.5]


def test_busy_time_is_divided_by_the_time_that_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window that overran every try is still divided by its real length, not the sleep asked for."""
    from xstilts.training import speed

    readings = [(0, 0, {}), (350, 0, {}), (350, 0, {}), (700, 0, {}), (700, 0, {}), (1050, 0, {})]
    slept, _ = _scripted_proc(monkeypatch, readings, stalls=[3.0, 3.0, 3.0])
    assert speed.other_busy_cores(0.5) == pytest.approx(350 / 100 / 3.5)  # one core, not seven
    assert slept == [0.5, 0.5, 0.5]


def test_yielding_processes_are_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only processes seen at both readings are subtracted; one that appears mid-window competes."""
    from xstilts.training import speed

    # pid 7 yields and used 50 jiffies (a core for 0.5 s); pid 9 appeared mid-window (25 jiffies)
    _scripted_proc(monkeypatch, [(1000, 300, {7: 2000}), (1000 + 40 + 50 + 25, 340, {7: 2050, 9: 25})])
    assert speed.other_busy_cores(0.5) == pytest.approx(25 / 100 / 0.5)


@pytest.mark.parametrize(("other", "mine", "yields"), [
    # autogroup off: plain nice values decide
    ((19, False, None), (0, False, None), True),    # a nice -19 job yields its core to us
    ((0, False, None), (0, False, None), False),
    ((19, False, None), (19, False, None), False),  # we are niced as much ourselves: it competes
    ((0, True, None), (0, False, None), True),      # idle-priority (chrt --idle) yields to anything
    # autogroup on: within our session nice decides; another session competes as a whole
    ((19, False, ("/autogroup-1", 0)), (0, False, ("/autogroup-1", 0)), True),
    ((19, False, ("/autogroup-2", 0)), (0, False, ("/autogroup-1", 0)), False),
    ((0, False, ("/autogroup-2", 10)), (0, False, ("/autogroup-1", 0)), True),  # a niced session
    ((19, False, None), (0, False, ("/autogroup-1", 0)), False),  # group unknown: assume it competes
])
def test_which_processes_yield(other: tuple, mine: tuple, yields: bool) -> None:
    """Issue 14: a `nice -19` busy loop made auto threads pick 1 thread and leave a core idle."""
    from xstilts.training.speed import Sched, yields_to

    assert yields_to(Sched(*other), Sched(*mine)) is yields


def _group_of(pid: int | str) -> tuple[str, int] | None:
    """The autogroup a process is in and that group's nice, read here without the module's reader."""
    try:
        name, _, nice = Path(f"/proc/{pid}/autogroup").read_text().split()
        return name, int(nice)
    except (OSError, ValueError):
        return None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_niced_child_in_our_session_is_seen_as_yielding() -> None:
    """Real processes: a nice -19 child of this process yields; one in a new session (setsid) competes
    where the kernel puts it in a group of its own (autogroup on and readable), and yields where the
    sandbox shows one group for all or none (seen in CI: both children read as yielding)."""
    import os
    import subprocess
    import sys

    from xstilts.training import speed

    def lower() -> None:  # runs before exec, so the children are lowered when Popen returns
        if os.nice(0) < 19:
            os.nice(19)
        else:  # the test itself already runs at nice 19: idle priority is the only lower one left
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

    loop = [sys.executable, "-c", "import time; time.sleep(60)"]
    same = subprocess.Popen(loop, preexec_fn=lower)
    other = subprocess.Popen(loop, preexec_fn=lower, start_new_session=True)
    try:
        yielding = speed._cpu_jiffies()[2]
        own_group, other_group = _group_of("self"), _group_of(other.pid)
        own_group_known = speed._autogroup_enabled() and own_group is not None
        # competes: its own group, not niced below ours, or a group unreadable while ours is known
        apart = own_group_known and (other_group is None or (other_group[0] != own_group[0]
                                                             and other_group[1] <= own_group[1]))
        assert same.pid in yielding
        assert (other.pid in yielding) is (not apart)
    finally:
        same.kill()
        other.kill()
        same.wait()
        other.wait()


@pytest.mark.parametrize(("confirming", "threads"), [(5, 2), (100, 1)])
def test_a_reading_that_takes_threads_away_is_confirmed(monkeypatch: pytest.MonkeyPatch, confirming: int,
                                                       threads: int) -> None:
    """A 0.25-s window that reads most of a core is measured again over a second, which decides.

    The case: the quickstart's first check read 0.69 busy cores on a quiet machine (2026-12-01 19:42)
    and trained 17 steps on one of two cores. A moment's work (17 jiffies) then reads 0.05 cores over
    the confirming second and keeps both threads; a competitor that persists (a core, 100 jiffies)
    is seen again and takes one."""
    import os

    from xstilts.training import speed

    monkeypatch.setattr(speed, "_initial_threads", 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(speed.torch, "get_num_threads", lambda: 2)
    readings = [(0, 0, {}), (17, 0, {}), (17, 0, {}), (17 + confirming, 0, {})]
    slept, _ = _scripted_proc(monkeypatch, readings)
    choice = speed.decide_threads(RuntimeConfig())
    assert slept == [0.25, speed.CONFIRM_WINDOW_S]
    assert choice == speed.ThreadChoice(threads, confirming / 100, 0.68)
    assert choice.log_entry(0) == [0, threads, confirming / 100, 0.68]


def test_a_reading_that_keeps_the_threads_is_not_confirmed(monkeypatch: pytest.MonkeyPatch) -> None:
    """No second window (and no second of waiting) where nothing would be taken away."""
    import os

    from xstilts.training import speed

    monkeypatch.setattr(speed, "_initial_threads", 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    for current, jiffies, threads in [(2, 5, 2), (1, 25, 1)]:  # quiet at 2 threads; still busy at 1
        monkeypatch.setattr(speed.torch, "get_num_threads", lambda current=current: current)
        slept, _ = _scripted_proc(monkeypatch, [(0, 0, {}), (jiffies, 0, {})])
        choice = speed.decide_threads(RuntimeConfig())
        assert slept == [0.25] and choice == speed.ThreadChoice(threads, jiffies / 25)
        assert choice.log_entry(3) == [3, threads, jiffies / 25]


def test_the_pool_executors_bound_caps_auto_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """With two runs at once each worker decides within one core, even where the sibling's moment
    of rest reads as a free core; alone it takes both again. The bound costs no confirming second:
    only a reading that takes threads away is confirmed. Explicit counts are not bounded."""
    import os

    from xstilts.training import speed

    monkeypatch.setattr(speed, "_initial_threads", 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(speed.torch, "get_num_threads", lambda: 2)
    running = {"runs": 2}
    monkeypatch.setattr(speed, "_thread_cap", None)
    speed.set_thread_cap(lambda: max(1, 2 // running["runs"]))
    for runs, threads in [(2, 1), (1, 2)]:
        running["runs"] = runs
        slept, _ = _scripted_proc(monkeypatch, [(0, 0, {}), (2, 0, {})])  # the sibling at rest: 0.08 cores
        assert speed.decide_threads(RuntimeConfig()) == speed.ThreadChoice(threads, 0.08)
        assert slept == [0.25]
    assert speed.decide_threads(RuntimeConfig(threads=2)) == speed.ThreadChoice(2, None)
    speed.set_thread_cap(None)
    slept, _ = _scripted_proc(monkeypatch, [(0, 0, {}), (2, 0, {})])
    assert speed.decide_threads(RuntimeConfig()).threads == 2


def test_a_change_of_the_pools_bound_is_seen_and_measured_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last run standing: the bound rises when the sibling ends. The change is seen without a
    /proc reading, and the re-decision measures a fresh window, not the interval since the last
    decision, in which the sibling still worked (here 0.9 of a core: that window would keep 1 thread)."""
    import os

    from xstilts.training import speed

    monkeypatch.setattr(speed, "_initial_threads", 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(speed.torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr(speed.torch, "set_num_threads", lambda n: None)
    running = {"runs": 2}
    monkeypatch.setattr(speed, "_thread_cap", None)
    assert not speed.thread_cap_changed()  # no pool: never
    speed.set_thread_cap(lambda: max(1, 2 // running["runs"]))
    assert not speed.thread_cap_changed()  # no decision taken yet
    # decision at t=100.25 (fresh window); the sibling then works 10 s, ends, and a fresh window is quiet
    slept, clock = _scripted_proc(monkeypatch, [(0, 0, {}), (0, 0, {}), (900, 0, {}), (902, 0, {})])
    assert speed.decide_threads(RuntimeConfig()).threads == 1
    assert not speed.thread_cap_changed()
    running["runs"] = 1
    assert speed.thread_cap_changed()
    clock["t"] += 10.0
    log: list = []
    speed.recheck_threads(RuntimeConfig(), 7, log)
    assert log == [[7, 2, 0.08]] and slept == [0.25, 0.25]
    assert not speed.thread_cap_changed()
    speed.set_thread_cap(None)
    assert not speed.thread_cap_changed()


def test_the_loop_re_decides_at_the_step_after_the_bound_changed(setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not at the next evaluation: a step's check is enough. Without a pool nothing is checked between evaluations."""
    from xstilts.training import speed
    from xstilts.training.loop import Job, train

    tok, task, kind, feats, _, _, base = setup
    hp = TrainConfig(lr=1e-2, batch_size=8, max_steps=6, eval_every=3)
    monkeypatch.setattr(speed, "other_busy_cores", lambda window_s=0.25: 0.0)
    running = {"runs": 2}

    def evaluate(step: int) -> float:
        running["runs"] = 1  # the sibling ends while this run evaluates at step 3
        return 0.0

    monkeypatch.setattr(speed, "_thread_cap", None)
    speed.set_thread_cap(lambda: max(1, 2 // running["runs"]))
    try:
        out = train(copy.deepcopy(base), [Job(task.name, kind, kind.build(task, 32, 0.1), feats)], hp,
                    RuntimeConfig(progress=False), 7, tok.pad_token_id, evaluate)
    finally:
        speed.set_thread_cap(None)
    assert [e[0] for e in out.thread_log] == [3, 4, 6]


def test_auto_threads_are_rechecked_and_logged_during_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A decision taken at the start must not outlive the load it saw; explicit counts are kept."""
    import os

    from xstilts.training import speed

    monkeypatch.setattr(speed, "_initial_threads", 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    # another job runs at the first check (and at its confirmation) and has ended by the second check
    loads = iter([1.4, 1.3, 0.1])
    monkeypatch.setattr(speed, "other_busy_cores", lambda window_s=0.25: next(loads))
    set_to: list[int] = []
    monkeypatch.setattr(speed.torch, "set_num_threads", set_to.append)
    monkeypatch.setattr(speed.torch, "get_num_threads", lambda: set_to[-1] if set_to else 2)
    log: list = []
    speed.recheck_threads(RuntimeConfig(), 20, log)
    speed.recheck_threads(RuntimeConfig(), 40, log)
    assert log == [[20, 1, 1.3, 1.4], [40, 2, 0.1]] and set_to == [1, 2]
    speed.recheck_threads(RuntimeConfig(threads=1), 60, log)
    assert len(log) == 2  # an explicit count is never re-decided


def test_thread_decisions_are_kept_in_the_run_record(setup) -> None:
    """The loop re-checks at every evaluation (auto threads only) and the outcome carries the log."""
    from xstilts.training.loop import Job, train

    tok, task, kind, feats, _, _, base = setup
    hp = TrainConfig(lr=1e-2, batch_size=8, max_steps=4, eval_every=2)
    for runtime, checks in [(RuntimeConfig(progress=False), [2, 4]), (RuntimeConfig(progress=False, threads=1), [])]:
        out = train(copy.deepcopy(base), [Job(task.name, kind, kind.build(task, 32, 0.1), feats)], hp, runtime, 7,
                    tok.pad_token_id, lambda s: 0.0)
        assert [e[0] for e in out.thread_log] == checks and all(e[1] >= 1 for e in out.thread_log)


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")
def test_own_jiffies_are_this_process_cpu_time() -> None:
    """What is subtracted is exactly this process's CPU time, however busy the machine is."""
    import time

    from xstilts.training.speed import _cpu_jiffies

    hz = os.sysconf("SC_CLK_TCK")
    own0 = _cpu_jiffies()[1]
    cpu0 = time.process_time()
    while time.process_time() - cpu0 < 0.3:
        sum(range(1000))
    own1 = _cpu_jiffies()[1]
    assert (own1 - own0) / hz == pytest.approx(time.process_time() - cpu0, abs=0.05)


def test_stolen_time_is_not_counted_as_busy() -> None:
    """A VM's host taking time (steal) is not another process: it must not cost the run a thread."""
    from xstilts.training.speed import busy_jiffies

    #             user nice system idle iowait irq softirq steal guest guest_nice
    quiet = "cpu  1000 50 30 900 7 0 3 0 0 0"
    stolen = "cpu  1000 50 30 900 7 0 3 5000 0 0"
    assert busy_jiffies(quiet) == 1000 + 50 + 30 + 0 + 3
    assert busy_jiffies(stolen) == busy_jiffies(quiet)
    assert busy_jiffies("cpu  1000 50 30 900 7 2 3") == 1085  # older kernels' lines end before steal


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")
def test_busy_jiffies_reads_this_machines_stat_line() -> None:
    from xstilts.training.speed import _cpu_jiffies, busy_jiffies

    line = Path("/proc/stat").read_text().splitlines()[0]
    assert 0 < busy_jiffies(line) <= _cpu_jiffies()[0]


def test_fused_adamw_is_used_where_it_exists_and_trains_like_the_plain_one(setup) -> None:
    from xstilts.training.speed import adamw_options

    assert adamw_options(RuntimeConfig(), torch.device("cpu")) == {"fused": True}
    assert adamw_options(RuntimeConfig(fused_adamw=False), torch.device("cpu")) == {}
    assert adamw_options(RuntimeConfig(), torch.device("meta")) == {}
    fused = _train(setup, RuntimeConfig(progress=False))[0].state_dict()
    plain = _train(setup, RuntimeConfig(progress=False, fused_adamw=False))[0].state_dict()
    for key in plain:
        torch.testing.assert_close(fused[key], plain[key], msg=key)


def test_evaluation_batch_size_defaults_by_device(setup) -> None:
    from xstilts.evaluation.predict import predict
    from xstilts.training.speed import auto_eval_batch_size

    assert RuntimeConfig().eval_batch_size is None
    assert auto_eval_batch_size("cpu") == 32 and auto_eval_batch_size("cuda") == 128
    tok, task, kind, _, _, dev_feats, base = setup
    head = kind.build(task, 32, 0.1)
    auto = predict(base, head, kind, dev_feats, tok.pad_token_id)
    explicit = predict(base, head, kind, dev_feats, tok.pad_token_id, batch_size=32)
    assert all((a == b).all() for a, b in zip(auto, explicit, strict=True))


def test_the_draw_kernel_is_used_only_where_asked_on_a_cpu_and_shown_exact() -> None:
    assert uses_draw_kernel(RuntimeConfig()) is draws.available()
    assert not uses_draw_kernel(RuntimeConfig(draw_kernel=False))
    assert not uses_draw_kernel(RuntimeConfig(), "cuda")  # CUDA's dropout is another kernel altogether
    assert not uses_draw_kernel(RuntimeConfig(compile=True))  # a compiled graph draws in its own code
    assert uses_draw_kernel(RuntimeConfig(), "cpu", nn.Dropout(0.1)) is draws.available()
    assert not uses_draw_kernel(RuntimeConfig(), "cpu", nn.Dropout(0.0))  # nothing to draw: no dispatch mode
