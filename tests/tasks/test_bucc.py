"""BUCC 2018: the id<TAB>sentence / gold reader on fixtures, and mining F1 end to end by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xstilts.errors import DataError
from xstilts.metrics.stats import score_from_stats
from xstilts.tasks import get_task

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
    assert res.extra["threshold"] == pytest.approx(4.0)
    assert res.extra["scored_split"] == "test" and res.extra["gold_pairs"] == 3
    by_source = dict(zip(test.source_ids, res.stats["f1"].tolist(), strict=True))
    assert by_source == {"de-000101": [0, 1, 1], "de-000102": [1, 1, 1], "de-000103": [0, 0, 0],
                         "de-000104": [0, 0, 1]}
    assert score_from_stats("f1", res.stats["f1"]) == pytest.approx(40.0)
    assert res.extra["precision"] == pytest.approx(50.0) and res.extra["recall"] == pytest.approx(100 / 3)
    limited = task.evaluate_embeddings(lambda texts, lang: np.stack([vec[t] for t in texts]), "de", limit=2)
    assert limited.stats["f1"].shape == (2, 3)  # first 2 sentences of each side


def test_dev_only_scores_dev_at_its_own_threshold(tmp_path: Path) -> None:
    folder = _copy(tmp_path, {})
    for name in ("de-en.test.de", "de-en.test.en", "de-en.test.gold"):
        (folder / name).unlink()
    task = _task(folder)
    vec = {}
    eye = np.eye(8, dtype=np.float32)
    dev = task.at(tmp_path).read_split("dev", "de")
    text = dict(zip(dev.source_ids + dev.target_ids, dev.source + dev.target, strict=True))
    for slot, (s, t) in enumerate(sorted(dev.gold)):
        vec[text[s]] = vec[text[t]] = eye[slot]
    loners = [i for i in dev.source_ids + dev.target_ids if text[i] not in vec]
    for slot, sid in enumerate(loners, start=4):
        vec[text[sid]] = eye[slot]
    res = task.at(tmp_path).evaluate_embeddings(lambda texts, lang: np.stack([vec[t] for t in texts]), "de")
    assert res.extra["scored_split"] == "dev"
    assert score_from_stats("f1", res.stats["f1"]) == pytest.approx(100.0)
    assert res.extra["precision"] == pytest.approx(100.0) and res.extra["recall"] == pytest.approx(100.0)
