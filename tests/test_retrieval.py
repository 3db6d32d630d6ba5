"""Retrieval: neighbour search (faiss and numpy alike), hand-computed margin mining and scoring,
the embedding pooling, and retrieval targets running through the pipeline with no training."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from xstilts.errors import ConfigError
from xstilts.evaluation.embed import resolve_layer
from xstilts.metrics.stats import score_from_stats
from xstilts.tasks._retrieval import (
    _knn_numpy,
    best_threshold,
    knn,
    margin_scores,
    mine_pairs,
    mining_stats,
    nearest_accuracy_stats,
    normalize,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "xtreme"
S3 = math.sqrt(3) / 2  # cos 30°


def _angles(*degrees: float) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


# x0 = 0°, x1 = 90°; y0 = 0°, y1 = 60°, y2 = 90°: cosines [[1, .5, 0], [0, √3/2, 1]]
X = _angles(0, 90)
Y = _angles(0, 60, 90)


def test_numpy_knn_matches_brute_force_and_breaks_ties_low_index() -> None:
    rng = np.random.default_rng(0)
    q, db = normalize(rng.normal(size=(50, 8))), normalize(rng.normal(size=(70, 8)))
    sims, idx = knn(q, db, 5, backend="numpy")
    full = q @ db.T
    assert np.array_equal(idx, np.argsort(-full, axis=1, kind="stable")[:, :5])
    assert np.allclose(sims, np.take_along_axis(full, idx, axis=1), atol=1e-6)
    tied = np.ones((1, 2), dtype=np.float32)
    s, i = _knn_numpy(tied, np.ones((4, 2), dtype=np.float32), 3)
    assert i.tolist() == [[0, 1, 2]] and np.allclose(s, 2.0)


def test_faiss_and_numpy_give_identical_neighbours() -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    q, db = normalize(rng.normal(size=(300, 32))), normalize(rng.normal(size=(400, 32)))
    s_f, i_f = knn(q, db, 4, backend="faiss")
    s_n, i_n = knn(q, db, 4, backend="numpy")
    assert np.array_equal(i_f, i_n)
    assert np.allclose(s_f, s_n, atol=1e-5)
    # and the whole mining procedure agrees
    pairs = {b: [(i, j) for _, i, j in mine_pairs(q, db, 4, b)] for b in ("faiss", "numpy")}
    assert pairs["faiss"] == pairs["numpy"] and len(pairs["numpy"]) > 200


def test_faiss_stays_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without faiss, 'auto' falls back to numpy and an explicit 'faiss' is a clear config error."""
    import sys

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    sims, idx = knn(X, Y, 2)
    assert idx.tolist() == [[0, 1], [2, 1]]
    with pytest.raises(ConfigError, match="pip install faiss-cpu"):
        knn(X, Y, 1, backend="faiss")


def test_bad_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="backend"):
        knn(X, Y, 1, backend="annoy")


def test_ratio_margin_by_hand() -> None:
    """k=2: m(x0)=(1+.5)/2, m(x1)=(1+√3/2)/2, m(y0)=(1+0)/2, m(y1)=(.5+√3/2)/2, m(y2)=(0+1)/2."""
    fwd_idx, fwd, bwd_idx, bwd = margin_scores(X, Y, k=2, backend="numpy")
    mx = [0.75, (1 + S3) / 2]
    my = [0.5, (0.5 + S3) / 2, 0.5]
    assert fwd_idx.tolist() == [[0, 1], [2, 1]]
    expected_fwd = [[1 / ((mx[0] + my[0]) / 2), 0.5 / ((mx[0] + my[1]) / 2)],
                    [1 / ((mx[1] + my[2]) / 2), S3 / ((mx[1] + my[1]) / 2)]]
    assert np.allclose(fwd, expected_fwd, atol=1e-5)
    assert fwd[0, 0] == pytest.approx(1.6, abs=1e-5)
    # y1's neighbours are x1 (√3/2) then x0 (.5)
    assert bwd_idx[1].tolist() == [1, 0]
    assert bwd[1, 0] == pytest.approx(S3 / ((mx[1] + my[1]) / 2), abs=1e-5)


def test_mining_is_one_to_one_best_first() -> None:
    """Candidates x0-y0 (1.6), x1-y2 (1.396) and y1-x1 (1.072): the last reuses x1, so it is dropped."""
    mined = mine_pairs(X, Y, k=2, backend="numpy")
    assert [(i, j) for _, i, j in mined] == [(0, 0), (1, 2)]
    assert mined[0][0] == pytest.approx(1.6, abs=1e-5)
    assert mined[1][0] == pytest.approx(1 / (((1 + S3) / 2 + 0.5) / 2), abs=1e-5)


def test_threshold_and_bucc_f1_by_hand() -> None:
    cands = [(0.9, "a", "A"), (0.8, "b", "B"), (0.7, "c", "C"), (0.2, "d", "D")]
    gold = {("a", "A"), ("c", "C"), ("e", "E")}
    # F1 by prefix: 1/2, 2/5, 2/3, 4/7 -> keep 3, threshold halfway to the next score
    th = best_threshold(cands, gold)
    assert th == pytest.approx(0.45)
    rows = mining_stats(cands, gold, th, ["a", "b", "c", "d", "e"])
    assert rows.tolist() == [[1, 1, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0], [0, 0, 1]]
    assert score_from_stats("f1", rows) == pytest.approx(100 * 2 * 2 / (3 + 3))
    assert best_threshold([(0.5, "x", "X")], {("x", "X")}) == 0.5  # best = all kept: the last score
    assert best_threshold([(0.5, "x", "Y")], {("x", "X")}) == 0.0  # nothing right: XTREME's starting 0


def test_threshold_ties_break_as_xtreme_rounds() -> None:
    """8 gold pairs; ranked hit, 8 misses, hit, miss: F1 is exactly 2/9 after 1 and after 10 kept.
    XTREME's 2PR/(P+R) rounds the second a hair above the first (0.22222222222222224 against
    0.2222222222222222), so its ``bucc_optimize`` keeps 10; 2c/(n+g) would keep 1."""
    hits = [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    cands = [(float(20 - i), f"s{i}", f"t{i}") for i in range(len(hits))]
    gold = {(f"s{i}", f"t{i}") for i, h in enumerate(hits) if h} | {(f"g{i}", f"u{i}") for i in range(6)}
    assert best_threshold(cands, gold) == 10.5


def test_nearest_accuracy_by_hand() -> None:
    # queries 0°, 90°, 45°+ε against database 0°, 90°, 10°: hits on 0 and 1, query 2 finds 10° (index 2)
    q = _angles(0, 90, 44)
    db = _angles(0, 90, 10)
    rows = nearest_accuracy_stats(q, db, backend="numpy")
    assert rows.tolist() == [[1, 1, 1], [1, 1, 1], [1, 1, 1]]
    rows = nearest_accuracy_stats(_angles(0, 90, 80), db, backend="numpy")  # 80° is nearest to 90°
    assert rows[:, 0].tolist() == [1, 1, 0]
    assert score_from_stats("accuracy", rows) == pytest.approx(200 / 3)


def test_resolve_layer() -> None:
    assert resolve_layer("xtreme", 12) == 8 and resolve_layer("xtreme", 24) == 14
    assert resolve_layer("xtreme", 6) == 4 and resolve_layer("xtreme", 2) == 1
    assert resolve_layer("last", 12) == 12 and resolve_layer(-1, 12) == 12 and resolve_layer(0, 12) == 0
    with pytest.raises(ConfigError, match="out of range"):
        resolve_layer(13, 12)
    with pytest.raises(ConfigError, match="integer"):
        resolve_layer("middle", 12)


def test_embeddings_mean_pool_the_chosen_layer(tiny_model: Path) -> None:
    """Manual mean over hidden_states[layer]; batch composition and padding change nothing."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from xstilts.evaluation.embed import embed_sentences

    enc = AutoModel.from_pretrained(tiny_model)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    sentences = ["Hallo Welt.", "A much longer English sentence with many more tokens than the first.", "Ja"]
    out = embed_sentences(enc, tok, sentences, layer=1, batch_size=2)
    for i, s in enumerate(sentences):
        ids = tok(s, return_tensors="pt")
        with torch.no_grad():
            h = enc(**ids, output_hidden_states=True).hidden_states[1][0]
        assert np.allclose(out[i], h.mean(dim=0).numpy(), atol=1e-5)
    cls = embed_sentences(enc, tok, sentences[:1], layer="last", pool="cls")
    with torch.no_grad():
        last = enc(**tok(sentences[0], return_tensors="pt")).last_hidden_state[0, 0]
    assert np.allclose(cls[0], last.numpy(), atol=1e-5)
    prefixed = embed_sentences(enc, tok, ["query: " + sentences[0]], layer=1)
    assert np.allclose(embed_sentences(enc, tok, sentences[:1], layer=1, prefix="query: "), prefixed)


def _retrieval_data(root: Path, mini_data: Path) -> Path:
    shutil.copytree(FIXTURES / "tatoeba", root / "xtreme" / "tatoeba")
    shutil.copytree(FIXTURES / "bucc2018", root / "xtreme" / "bucc2018")
    shutil.copytree(mini_data / "english", root / "english")
    return root


def test_retrieval_targets_run_after_phase2_without_training(tmp_path: Path, mini_data: Path,
                                                              tiny_model: Path) -> None:
    """`xstilts run`: retrieval targets are scored on the phase-2 encoder (and the pretrained one)."""
    from typer.testing import CliRunner

    from xstilts.cli import app
    from xstilts.config import load_config
    from xstilts.plan import make_plan
    from xstilts.store import Store

    data = _retrieval_data(tmp_path / "data", mini_data)
    cfg = tmp_path / "r.toml"
    cfg.write_text(f"""
name = "retr"
model = "{tiny_model}"
data_dir = "{data}"
output_dir = "{tmp_path / 'exp'}"
seeds = [1]
[intermediate]
settings = ["none", "sick"]
[intermediate.train]
lr = 1e-3
batch_size = 8
max_steps = 2
eval_every = 2
max_length = 32
max_train_examples = 16
max_eval_examples = 8
[target]
tasks = ["tatoeba", "bucc"]
languages = {{ tatoeba = ["de", "fr"], bucc = ["de"] }}
[target.train]
max_length = 32
[target.task_options.tatoeba]
layer = "last"
backend = "numpy"
[runtime]
progress = false
log_with = ["tensorboard"]
""", encoding="utf-8")
    plan = make_plan(load_config(cfg))
    targets = [r for r in plan if r.phase == "target"]
    assert {r.languages for r in targets} == {("de", "fr"), ("de",)}  # no English set for retrieval
    result = CliRunner().invoke(app, ["run", str(cfg)])
    assert result.exit_code == 0, result.output
    with Store(tmp_path / "exp", readonly=True) as store:
        runs = {r["run_id"]: r for r in store.runs()}
        finals = store.scores_frame(kind="final")
    tgt = finals[finals["phase"] == "target"]
    assert set(zip(tgt["target"], tgt["language"], tgt["metric"], strict=True)) == {
        ("tatoeba", "de", "accuracy"), ("tatoeba", "de", "accuracy_en_xx"), ("tatoeba", "fr", "accuracy"),
        ("tatoeba", "fr", "accuracy_en_xx"), ("bucc", "de", "f1")}
    for r in targets:
        assert runs[r.run_id]["status"] == "done" and runs[r.run_id]["train_steps"] == 0
    assert ((tgt["value"] >= 0) & (tgt["value"] <= 100)).all()
    # the phase-2 encoder changes the embeddings: scores are stored per setting
    assert set(tgt["intermediate"]) == {"none", "sick"}
    assert "XTREME score of 'none': not computable, missing task(s) xnli, pawsx" in result.output
    # live tracking reaches phase 2 (loss per step, English dev) and the retrieval runs (their scores at step 0)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for run_id, row in runs.items():
        acc = EventAccumulator(str(tmp_path / "exp" / "tensorboard" / run_id))
        acc.Reload()
        tags = set(acc.Tags()["scalars"])
        if row["phase"] == "intermediate":
            assert [e.step for e in acc.Scalars("train/loss")] == [1, 2] and "eval/sick/en/accuracy" in tags
            continue
        mine = tgt[tgt["run_id"] == run_id]
        assert tags == {f"eval/{t}/{lang}/{m}" for t, lang, m in zip(mine["target"], mine["language"], mine["metric"],
                                                                      strict=True)}
        for t, lang, m, value in zip(mine["target"], mine["language"], mine["metric"], mine["value"], strict=True):
            (event,) = acc.Scalars(f"eval/{t}/{lang}/{m}")
            assert event.step == 0 and event.value == pytest.approx(value, rel=1e-6, abs=1e-6)


def test_retrieval_task_cannot_be_an_intermediate_task(tmp_path: Path) -> None:
    from xstilts.config import load_config
    from xstilts.plan import make_plan

    cfg = tmp_path / "bad.toml"
    cfg.write_text('name = "b"\n[intermediate]\nsettings = ["tatoeba"]\n[target]\ntasks = ["xnli"]\n',
                   encoding="utf-8")
    with pytest.raises(ConfigError, match="retrieval task"):
        make_plan(load_config(cfg))
