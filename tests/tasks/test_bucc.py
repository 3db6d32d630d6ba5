"""BUCC 2018: the id<TAB>sentence / gold reader on fixtures, and mining F1 end to end by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xstilts.errors import DataError
from xstilts.metrics.stats import score_from_stats
from xstilts.tasks import get_task
from xstilts.tasks._retrieval import best_threshold, mining_stats
from xstilts.tasks.bucc import CROSS_FIT, MiningCorpus, cross_fitted_stats, half_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"


def _task(folder: Path = FIXTURES / "bucc2018", **options: object):
    return get_task("bucc", {"dir": str(folder), "backend": "numpy", **options})


def test_metadata_and_reader() -> None:
    task = _task()
    assert task.head == "retrieval" and task.metric == "f1" and task.languages == ("de", "fr", "ru", "zh")
    assert task.languages_r == ()  # not part of XTREME-R
    assert [p.name for p in task.files("eval", "de")] == [
        "de-en.dev.de", "de-en.dev.en", "de-en.dev.gold", "de-en.test.de", "de-en.test.en", "de-en.test.gold"]
    dev, test = task.read("eval", "de")
    assert dev.split == "dev" and test.split == "test"
    assert dev.source_ids[0] == "de-000001" and dev.target[1] == "The contract was signed yesterday."
    assert ("de-000005", "en-000006") in dev.gold and len(dev.gold) == 4 and len(test.gold) == 3
    assert task.files("train", "en") == []


def _copy(tmp_path: Path, replace: dict[str, str]) -> Path:
    folder = tmp_path / "bucc2018"
    folder.mkdir(parents=True)
    for src in (FIXTURES / "bucc2018").iterdir():
        text = replace.get(src.name, src.read_text(encoding="utf-8"))
        (folder / src.name).write_text(text, encoding="utf-8")
    return folder


def test_bad_files_name_file_and_line(tmp_path: Path) -> None:
    folder = _copy(tmp_path, {"de-en.dev.gold": "de-000001\ten-000002\nde-000009\ten-000001\n"})
    with pytest.raises(DataError, match=r"de-en.dev.gold:2: gold source id 'de-000009'"):
        _task(folder).at(tmp_path).read("eval", "de")
    folder = _copy(tmp_path / "b", {"de-en.dev.en": "en-1\tOne.\nen-1\tTwo.\n"})
    with pytest.raises(DataError, match=r"de-en.dev.en:2: sentence id 'en-1' repeated"):
        _task(folder).at(tmp_path).read("eval", "de")
    folder = _copy(tmp_path / "c", {"de-en.dev.de": "de-1 no tab here\n"})
    with pytest.raises(DataError, match=r"de-en.dev.de:1: expected 2 tab-separated columns"):
        _task(folder).at(tmp_path).read("eval", "de")
    (folder / "de-en.dev.gold").unlink()
    (folder / "de-en.dev.de").write_text("de-1\tEins.\n", encoding="utf-8")
    with pytest.raises(DataError, match="dev gold pairs not found"):
        _task(folder).at(tmp_path).read("eval", "de")


def _one_hot_per_pair(corpus, eye: np.ndarray, vec: dict[str, np.ndarray], slot: int) -> int:
    """Each gold pair shares one direction; every other sentence gets its own."""
    text = dict(zip(corpus.source_ids + corpus.target_ids, corpus.source + corpus.target, strict=True))
    for s, t in sorted(corpus.gold):
        vec[text[s]] = vec[text[t]] = eye[slot]
        slot += 1
    for sid in corpus.source_ids + corpus.target_ids:
        if text[sid] not in vec:
            vec[text[sid]] = eye[slot]
            slot += 1
    return slot


def test_mining_f1_threshold_from_dev_scored_on_test() -> None:
    """By hand (k=4). Dev: each gold pair has cosine 1 and neighbourhood means 1/4, so margin
    1/((1/4 + 1/4)/2) = 4; the loners' candidates all lose to them in one-to-one mining, every
    candidate is right, and the threshold is the last kept score, 4. Test: de-000101 is given
    the direction of en-000104 and de-000104 a direction of its own, so 101-en104 also scores 4
    (one neighbour at cosine 1 on each side): mined pairs 102-en101 (right) and 101-en104
    (wrong), both >= 4; 1 right of 2 predicted, 3 gold: F1 = 2*1/(2+3) = 40."""
    task = _task()
    dev, test = task.read("eval", "de")
    eye = np.eye(16, dtype=np.float32)
    vec: dict[str, np.ndarray] = {}
    _one_hot_per_pair(test, eye, vec, _one_hot_per_pair(dev, eye, vec, 0))
    vec["Die Schule bleibt morgen geschlossen."] = vec["The government is planning new taxes."]
    vec["Die Regierung plant neue Steuern."] = eye[15]

    res = task.evaluate_embeddings(lambda texts, lang: np.stack([vec[t] for t in texts]), "de")
    assert res.extra["threshold"] == pytest.approx(4.0) and res.extra["threshold_method"] == "dev->test"
    assert res.extra["scored_split"] == "test" and res.extra["gold_pairs"] == 3
    by_source = dict(zip(test.source_ids, res.stats["f1"].tolist(), strict=True))
    assert by_source == {"de-000101": [0, 1, 1], "de-000102": [1, 1, 1], "de-000103": [0, 0, 0],
                         "de-000104": [0, 0, 1]}
    assert score_from_stats("f1", res.stats["f1"]) == pytest.approx(40.0)
    assert res.extra["precision"] == pytest.approx(50.0) and res.extra["recall"] == pytest.approx(100 / 3)
    limited = task.evaluate_embeddings(lambda texts, lang: np.stack([vec[t] for t in texts]), "de", limit=2)
    assert limited.stats["f1"].shape == (2, 3)  # first 2 sentences of each side


def _ids_by_half(prefix: str, n: int) -> tuple[list[str], list[str]]:
    """The first ``n`` ids ``{prefix}-000001``, ... that fall in half A and in half B."""
    a: list[str] = []
    b: list[str] = []
    i = 0
    while len(a) < n or len(b) < n:
        i += 1
        sid = f"{prefix}-{i:06d}"
        (a if half_of(sid) == 0 else b).append(sid)
    return a[:n], b[:n]


def test_halves_partition_sources_candidates_and_gold() -> None:
    a, b = _ids_by_half("zh", 3)
    sources = sorted(a + b)
    candidates = [(5.0 - i, s, f"en-{s}") for i, s in enumerate(sources)]
    gold = {(s, f"en-{s}") for s in sources[::2]}
    rows, info = cross_fitted_stats(candidates, gold, sources)
    assert info["threshold_method"] == CROSS_FIT
    assert info["half_a"] == {"sources": 3, "gold_pairs": len({p for p in gold if p[0] in a}), "candidates": 3}
    assert info["half_b"]["sources"] == 3 and info["half_b"]["candidates"] == 3
    assert not set(a) & set(b) and set(a) | set(b) == set(sources)
    assert rows.shape == (6, 3) and rows[:, 2].sum() == len(gold)  # every gold pair scored exactly once
    assert rows[:, 1].max() <= 1  # each candidate counted once, in the row of its source


def test_threshold_never_sees_the_gold_it_is_scored_on() -> None:
    """The threshold that scores half B is chosen on half A alone: rewriting B's gold pairs (or
    dropping them) leaves it, and which of B's candidates are kept, unchanged; it equals
    best_threshold on A's candidates and gold. Scores interleave A (10, 8, 6, 4) and B (9, 7, 5,
    3): A's threshold 7 keeps B's first two, B's own (3) would keep all four."""
    a, b = _ids_by_half("zh", 4)
    scores = {s: 10.0 - i for i, s in enumerate(x for pair in zip(a, b, strict=True) for x in pair)}
    candidates = [(scores[s], s, f"en-{s}") for s in a + b]
    gold_a = {(s, f"en-{s}") for s in a[:2]}
    gold_b = {(s, f"en-{s}") for s in b[1:]}
    rows, info = cross_fitted_stats(candidates, gold_a | gold_b, a + b)
    assert info["threshold_a"] == best_threshold([c for c in candidates if c[1] in a], gold_a)
    assert info["threshold_b"] == best_threshold([c for c in candidates if c[1] in b], gold_b)
    predicted_b = rows[4:, 1].tolist()  # which of B's candidates are kept: the threshold at work
    assert 0 < sum(predicted_b) < 4
    for other_b in (set(), {(b[0], "en-x")}, {(s, f"en-{s}") for s in b}):
        changed_rows, changed = cross_fitted_stats(candidates, gold_a | other_b, a + b)
        assert changed["threshold_a"] == info["threshold_a"]  # B is scored at this: blind to B's gold
        assert changed_rows[4:, 1].tolist() == predicted_b
    _, changed = cross_fitted_stats(candidates, gold_b, a + b)  # A's gold gone: B's threshold stays
    assert changed["threshold_b"] == info["threshold_b"]


def test_tuned_on_itself_beats_the_cross_fitted_f1() -> None:
    """Half A's right pairs score 5 and 4 (a wrong one 3), half B's 2 and 1.8 (a wrong one 1): A's
    threshold is 3.5, B's 1.4. B scored at 3.5 keeps nothing (0 of 2 gold); A scored at 1.4 keeps
    all 3 (2 right): pooled F1 = 2*2/(3+4) = 57.1. One threshold tuned on all of it keeps the top
    5 (4 right): F1 = 2*4/(5+4) = 88.9."""
    (a1, a2, a3), (b1, b2, b3) = _ids_by_half("zh", 3)
    candidates = [(5.0, a1, "e1"), (4.0, a2, "e2"), (3.0, a3, "e3"),
                  (2.0, b1, "e4"), (1.8, b2, "e5"), (1.0, b3, "e6")]
    gold = {(a1, "e1"), (a2, "e2"), (b1, "e4"), (b2, "e5")}
    sources = [a1, b1, a2, b2, a3, b3]
    rows, info = cross_fitted_stats(candidates, gold, sources)
    assert info["threshold_a"] == pytest.approx(3.5) and info["threshold_b"] == pytest.approx(1.4)
    assert rows.tolist() == [[1, 1, 1], [0, 0, 1], [1, 1, 1], [0, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert score_from_stats("f1", rows) == pytest.approx(400 / 7)
    tuned = mining_stats(candidates, gold, best_threshold(candidates, gold), sources)
    assert score_from_stats("f1", tuned) == pytest.approx(800 / 9)


def _write_dev_only(folder: Path, pairs: int, loners: int) -> tuple[list[str], list[str]]:
    """A dev-only zh-en folder: ``pairs`` gold pairs and ``loners`` unpaired sentences per side."""
    folder.mkdir(parents=True)
    zh = [f"zh-{i:06d}" for i in range(1, pairs + loners + 1)]
    en = [f"en-{i:06d}" for i in range(1, pairs + loners + 1)]
    (folder / "zh-en.dev.zh").write_text("".join(f"{s}\t句子 {s}\n" for s in zh), encoding="utf-8")
    (folder / "zh-en.dev.en").write_text("".join(f"{t}\tSentence {t}\n" for t in en), encoding="utf-8")
    (folder / "zh-en.dev.gold").write_text("".join(f"{zh[i]}\t{en[i]}\n" for i in range(pairs)), encoding="utf-8")
    return zh, en


def test_dev_only_is_cross_fitted_end_to_end(tmp_path: Path) -> None:
    """No test split: mined once, scored 2-fold; the old tuned-on-dev F1 is kept beside it.

    Gold pair i shares a random direction plus noise growing with i; loners get their own. With
    strong noise the late pairs are missed or crossed, so the halves' thresholds differ."""
    zh, en = _write_dev_only(tmp_path / "bucc2018", pairs=40, loners=30)
    rng = np.random.default_rng(0)
    vec: dict[str, np.ndarray] = {}
    for i in range(40):
        base = rng.normal(size=24)
        vec[f"句子 {zh[i]}"] = base
        vec[f"Sentence {en[i]}"] = base + rng.normal(scale=0.05 * i, size=24)
    for sid in zh[40:] + en[40:]:
        vec[f"句子 {sid}" if sid.startswith("zh") else f"Sentence {sid}"] = rng.normal(size=24)
    task = _task(tmp_path / "bucc2018").at(tmp_path)
    res = task.evaluate_embeddings(lambda texts, lang: np.stack([vec[t] for t in texts]).astype(np.float32), "zh")
    extra = res.extra
    assert extra["scored_split"] == "dev" and extra["threshold_method"] == CROSS_FIT
    assert extra["half_a"]["sources"] + extra["half_b"]["sources"] == 70
    assert extra["half_a"]["gold_pairs"] + extra["half_b"]["gold_pairs"] == 40 == extra["gold_pairs"]
    assert extra["threshold_a"] is not None and extra["threshold_b"] is not None
    f1 = score_from_stats("f1", res.stats["f1"])
    assert 0 < f1 <= extra["f1_tuned_on_scored"] <= 100
    assert res.stats["f1"].shape == (70, 3) and res.stats["f1"][:, 2].sum() == 40


def test_dev_only_perfect_embeddings_score_100_both_ways(tmp_path: Path) -> None:
    folder = _copy(tmp_path, {})
    for name in ("de-en.test.de", "de-en.test.en", "de-en.test.gold"):
        (folder / name).unlink()
    # the fixture's 5 dev ids all hash into half A: give B gold pairs of its own
    extra_ids = [s for s in (f"de-{i:06d}" for i in range(6, 60)) if half_of(s) == 1][:2]
    with (folder / "de-en.dev.de").open("a", encoding="utf-8") as f:
        f.writelines(f"{s}\tZusatzsatz {s}.\n" for s in extra_ids)
    with (folder / "de-en.dev.en").open("a", encoding="utf-8") as f:
        f.writelines(f"en-{s}\tExtra sentence {s}.\n" for s in extra_ids)
    with (folder / "de-en.dev.gold").open("a", encoding="utf-8") as f:
        f.writelines(f"{s}\ten-{s}\n" for s in extra_ids)
    task = _task(folder).at(tmp_path)
    dev = task.read_split("dev", "de")
    eye = np.eye(16, dtype=np.float32)
    vec: dict[str, np.ndarray] = {}
    _one_hot_per_pair(dev, eye, vec, 0)
    res = task.evaluate_embeddings(lambda texts, lang: np.stack([vec[t] for t in texts]), "de")
    assert res.extra["scored_split"] == "dev" and res.extra["half_b"]["gold_pairs"] == 2
    assert score_from_stats("f1", res.stats["f1"]) == pytest.approx(100.0)
    assert res.extra["f1_tuned_on_scored"] == pytest.approx(100.0)
    assert res.extra["precision"] == pytest.approx(100.0) and res.extra["recall"] == pytest.approx(100.0)


def test_real_zh_dev_halves_and_cross_fit(shared_data: Path) -> None:
    """On the real zh-en dev files: the hash halves split the 8,624 sources and 257 gold pairs
    about evenly; then a slice (every gold pair plus 300 other sentences per side) is mined with a
    synthetic embedder (gold pairs share a direction up to noise) and cross-fitted."""
    task = get_task("bucc", {"backend": "numpy"}, data_dir=shared_data)
    (dev,) = task.read("eval", "zh")
    assert len(dev.source_ids) == 8624 and len(dev.target_ids) == 13589 and len(dev.gold) == 257
    in_a = {s for s in dev.source_ids if half_of(s) == 0}
    gold_a = [p for p in dev.gold if p[0] in in_a]
    assert 0.45 < len(in_a) / 8624 < 0.55 and 0.35 < len(gold_a) / 257 < 0.65

    gold_src, gold_trg = {s for s, _ in dev.gold}, {t for _, t in dev.gold}
    src = [i for i, s in enumerate(dev.source_ids) if s in gold_src or i < 300]
    trg = [i for i, t in enumerate(dev.target_ids) if t in gold_trg or i < 300]
    keep_s, keep_t = {dev.source_ids[i] for i in src}, {dev.target_ids[i] for i in trg}
    part = MiningCorpus("dev", tuple(dev.source_ids[i] for i in src), tuple(dev.source[i] for i in src),
                        tuple(dev.target_ids[i] for i in trg), tuple(dev.target[i] for i in trg),
                        frozenset(p for p in dev.gold if p[0] in keep_s and p[1] in keep_t))
    rng = np.random.default_rng(1)
    text_of = dict(zip(part.source_ids + part.target_ids, part.source + part.target, strict=True))
    vec: dict[str, np.ndarray] = {}
    for n, (s, t) in enumerate(sorted(part.gold)):
        base = rng.normal(size=32)
        vec.setdefault(text_of[s], base)
        vec.setdefault(text_of[t], base + rng.normal(scale=0.8 * (n % 3), size=32))
    for text in part.source + part.target:
        vec.setdefault(text, rng.normal(size=32))
    candidates = task.candidates(lambda texts, lang: np.stack([vec[t] for t in texts]).astype(np.float32),
                                 part, "zh")
    rows, info = cross_fitted_stats(candidates, part.gold, part.source_ids)
    assert info["half_a"]["gold_pairs"] + info["half_b"]["gold_pairs"] == len(part.gold) > 200
    in_b = [c for c in candidates if half_of(c[1]) == 1]
    assert info["threshold_a"] == best_threshold([c for c in candidates if half_of(c[1]) == 0],
                                                 {p for p in part.gold if half_of(p[0]) == 0})
    assert info["threshold_b"] == best_threshold(in_b, {p for p in part.gold if half_of(p[0]) == 1})
    assert rows[:, 2].sum() == len(part.gold)
    cross = score_from_stats("f1", rows)
    tuned = score_from_stats("f1", mining_stats(candidates, set(part.gold), best_threshold(candidates, set(part.gold)),
                                                part.source_ids))
    assert 30 < cross <= tuned < 100
