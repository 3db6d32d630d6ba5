"""Tatoeba: both file layouts, the gold labels, the sorted-English guard, and xx->en accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xstilts.errors import ConfigError, DataError
from xstilts.tasks import get_task

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"


def _task(**options: object):
    return get_task("tatoeba", {"dir": str(FIXTURES / "tatoeba"), **options})


def test_metadata(shared_data: Path) -> None:
    task = get_task("tatoeba", data_dir=shared_data)
    assert task.head == "retrieval" and task.all_metrics() == ("accuracy", "accuracy_en_xx")
    assert len(task.languages) == 36 and len(task.languages_r) == 41 and "en" not in task.languages
    assert task.files("train", "en") == []
    with pytest.raises(DataError, match="no 'train' split"):
        task.read("train", "en")


def test_laser_layout_is_line_aligned() -> None:
    pairs = _task().read("eval", "de")
    assert len(pairs) == 6
    assert pairs[2].source == "Wo ist der Bahnhof?" and pairs[2].target == "Where is the train station?"


def test_xtreme_layout_with_gold_labels_restores_the_alignment() -> None:
    task = _task()
    names = [p.name for p in task.files("eval", "fr")]
    assert names == ["fr-en.fr", "fr-en.en", "test-fr.tsv"]
    pairs = task.read("eval", "fr")
    assert [p.target for p in pairs] == ["The cat eats fish.", "We leave on holiday tomorrow.",
                                         "It is very cold tonight.", "She sings in a choir.",
                                         "My brother lives in Lyon."]


def test_sorted_english_without_labels_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "tatoeba"
    folder.mkdir()
    (folder / "fr-en.fr").write_text("c\nb\na\n", encoding="utf-8")
    (folder / "fr-en.en").write_text("A\nB\nC\n", encoding="utf-8")  # sorted, as XTREME writes it
    task = get_task("tatoeba", {"dir": str(folder)}, tmp_path)
    with pytest.raises(DataError, match=r"fr-en.en: the English side is sorted"):
        task.read("eval", "fr")
    assert len(get_task("tatoeba", {"dir": str(folder), "gold": "aligned"}).at(tmp_path).read("eval", "fr")) == 3
    (folder / "fr-en.en").write_text("B\nA\nC\n", encoding="utf-8")  # not sorted: trusted as aligned
    assert task.read("eval", "fr")[0].target == "B"


def test_the_shared_copy_reads_lasers_gold_alignment(tmp_path: Path, shared_data: Path) -> None:
    """Since 2026-11-29 the shared folder has LASER's line-aligned files beside XTREME's sorted ones:
    the default reads the aligned pair; XTREME's sorted pair alone is still refused."""
    task = get_task("tatoeba", data_dir=shared_data)
    pairs = task.read("eval", "de")
    assert len(pairs) == 1000
    assert pairs[0].source == "Maria sagte, sie wisse nicht, wo Tom sei."
    assert pairs[0].target == "Mary said she didn't know where Tom was."
    shared = shared_data / "xtreme" / "tatoeba"
    xtreme_en = (shared / "de-en.en").read_text(encoding="utf-8").splitlines()
    xtreme_de = (shared / "de-en.de").read_text(encoding="utf-8").splitlines()
    assert sorted(p.target for p in pairs) == sorted(xtreme_en)  # the same sentences; XTREME sorted them
    assert [p.source for p in pairs] == xtreme_de  # the xx sides are byte-identical
    for name in ("de-en.de", "de-en.en"):  # XTREME's files without LASER's beside them
        (tmp_path / name).write_bytes((shared / name).read_bytes())
    with pytest.raises(DataError, match="sorted"):
        get_task("tatoeba", {"dir": str(tmp_path)}).at(shared_data).read("eval", "de")


def test_bad_files_name_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "tatoeba"
    folder.mkdir()
    (folder / "de-en.de").write_text("a\nb\nc\n", encoding="utf-8")
    (folder / "de-en.en").write_text("B\nA\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"de-en.en:3: 3 lines in de-en.de but 2"):
        get_task("tatoeba", {"dir": str(folder)}).at(tmp_path).read("eval", "de")
    (folder / "de-en.en").write_text("B\nA\nC\n", encoding="utf-8")
    (folder / "test-de.tsv").write_text("0\n2\nx\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test-de.tsv:3: expected a line index"):
        get_task("tatoeba", {"dir": str(folder)}).at(tmp_path).read("eval", "de")
    (folder / "test-de.tsv").write_text("0\n2\n2\n", encoding="utf-8")
    with pytest.raises(DataError, match="each of the 3 line indices once"):
        get_task("tatoeba", {"dir": str(folder)}).at(tmp_path).read("eval", "de")
    with pytest.raises(ConfigError, match="gold"):
        get_task("tatoeba", {"dir": str(folder), "gold": "guess"}).at(tmp_path).read("eval", "de")
    with pytest.raises(ConfigError, match="unknown tatoeba option"):
        get_task("tatoeba", {"layers": 3}).embedding_options()


def test_accuracy_both_directions_with_a_known_embedder() -> None:
    """Pairs 0-3 embed identically; French pair 4's sentence sits nearest English sentence 0,
    while English sentence 4 still finds French 4: xx->en 4/5, en->xx 5/5."""
    task = _task(backend="numpy")
    pairs = task.read("eval", "fr")
    index = {p.source: i for i, p in enumerate(pairs)} | {p.target: i for i, p in enumerate(pairs)}

    def embed(texts, language):
        vecs = np.eye(8, dtype=np.float32)[[index[t] for t in texts]]
        if language == "fr":
            vecs[[index[t] == 4 for t in texts]] = [1, 0, 0, 0, 0.5, 0, 0, 0]
        return vecs

    res = task.evaluate_embeddings(embed, "fr")
    assert res.stats["accuracy"][:, 0].tolist() == [1, 1, 1, 1, 0]
    assert res.stats["accuracy_en_xx"][:, 0].tolist() == [1, 1, 1, 1, 1]
    limited = task.evaluate_embeddings(embed, "fr", limit=2)
    assert limited.stats["accuracy"].shape == (2, 3)
