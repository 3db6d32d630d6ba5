"""The XTREME score by hand: language averages, QA's (EM + F1) / 2, seeds averaged first,
only the official languages, and a clear message while tasks are missing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from xstilts.store import RunResult, Score, Store
from xstilts.xtreme import TASKS, xtreme_from_store, xtreme_scores

# (target, language, metric, value[, seed])
ROWS = [
    ("xnli", "en", "accuracy", 80), ("xnli", "de", "accuracy", 68, 1), ("xnli", "de", "accuracy", 72, 2),
    ("pawsx", "en", "accuracy", 90), ("pawsx", "fr", "accuracy", 80),
    ("udpos", "en", "f1", 96), ("udpos", "de", "f1", 88),
    ("udpos", "en", "token_accuracy", 99), ("udpos", "de", "token_accuracy", 91),  # not the leaderboard's
    ("panx", "en", "f1", 84), ("panx", "de", "f1", 76),
    ("xquad", "en", "squad_f1", 80), ("xquad", "en", "exact_match", 70),
    ("xquad", "de", "squad_f1", 60), ("xquad", "de", "exact_match", 50),
    ("mlqa", "en", "squad_f1", 70), ("mlqa", "en", "exact_match", 60),
    ("mlqa", "de", "squad_f1", 50), ("mlqa", "de", "exact_match", 40),
    ("mlqa", "de-en", "squad_f1", 0), ("mlqa", "de-en", "exact_match", 0),  # cross pair: not in the score
    ("tydiqa", "en", "squad_f1", 60), ("tydiqa", "en", "exact_match", 50),
    ("bucc", "de", "f1", 90), ("bucc", "fr", "f1", 70),
    ("tatoeba", "de", "accuracy_en_xx", 95), ("tatoeba", "fr", "accuracy_en_xx", 85),  # XTREME's direction
    ("tatoeba", "de", "accuracy", 0), ("tatoeba", "fr", "accuracy", 0),  # xx->en: not the leaderboard's
    ("panx", "qu", "f1", 0),  # XTREME-R-only language: not in the XTREME score
]
TASK_SCORES = {"xnli": 75, "pawsx": 85, "udpos": 92, "panx": 80, "xquad": 65, "mlqa": 55, "tydiqa": 55,
               "bucc": 80, "tatoeba": 90}


def _frame(setting: str, rows=ROWS) -> pd.DataFrame:
    return pd.DataFrame([
        {"intermediate": setting, "target": r[0], "language": r[1], "metric": r[2], "value": float(r[3]),
         "seed": r[4] if len(r) > 4 else 1} for r in rows])


def test_score_by_hand() -> None:
    (score,) = xtreme_scores(_frame("none")).values()
    assert {t: s.value for t, s in score.tasks.items()} == pytest.approx(TASK_SCORES)
    assert score.score == pytest.approx(677 / 9)
    assert score.groups == pytest.approx({"classification": 80, "structured prediction": 86,
                                          "question answering": 175 / 3, "retrieval": 85})
    assert score.tasks["mlqa"].languages == ("de", "en")
    assert score.tasks["xquad"].measure == "(EM + F1) / 2"
    assert score.tasks["udpos"].measure == "f1"  # seqeval over the tag sequences, as evaluate.py
    assert score.group_mean == pytest.approx((80 + 86 + 175 / 3 + 85) / 4)
    assert "panx (2/40 languages)" in score.message() and score.message().startswith(
        "XTREME score of 'none': 75.2 (mean of 9 tasks, as evaluate.py; mean of the 4 groups 77.3)")


def test_missing_tasks_are_named() -> None:
    rows = [r for r in ROWS if r[0] not in ("bucc", "tatoeba")]
    scores = xtreme_scores(pd.concat([_frame("none"), _frame("sick", rows)]))
    assert scores["none"].score == pytest.approx(677 / 9)
    assert scores["sick"].score is None and scores["sick"].missing_tasks == ["bucc", "tatoeba"]
    assert "retrieval" not in scores["sick"].groups
    assert "not computable, missing task(s) bucc, tatoeba (7 of 9 present)" in scores["sick"].message()


def test_qa_task_needs_both_metrics() -> None:
    rows = [r for r in ROWS if not (r[0] == "tydiqa" and r[2] == "exact_match")]
    (score,) = xtreme_scores(_frame("none", rows)).values()
    assert "tydiqa" not in score.tasks and score.score is None


def test_from_a_results_store(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        for i, task in enumerate(TASKS):
            rid = f"tgt-none-{task}-s1"
            store.register_run(rid, "target", "none", task, 1, f"h{i}", None)
            rows = [r for r in ROWS if r[0] == task and (len(r) < 5 or r[4] == 1)]
            scores = [Score(task, r[1], "eval", r[2], float(r[3]), 0, "final") for r in rows]
            result = RunResult(scores=scores)
            store.complete_run(rid, result, 1.0)
    score = xtreme_from_store(tmp_path)["none"]
    assert score.tasks["xnli"].value == pytest.approx((80 + 68) / 2)  # one seed here
    assert score.score == pytest.approx((677 - 75 + 74) / 9)


def test_tasks_command_lists_heads_languages_and_files(tmp_path: Path) -> None:
    """`xstilts tasks`: every task with its head kind, and which files were found in --data-dir."""
    import shutil

    from typer.testing import CliRunner

    from xstilts.cli import app

    fixtures = Path(__file__).resolve().parent / "fixtures" / "xtreme"
    shutil.copytree(fixtures / "tatoeba", tmp_path / "xtreme" / "tatoeba")
    shutil.copytree(fixtures / "bucc2018", tmp_path / "xtreme" / "bucc2018")
    (tmp_path / "xtreme" / "xquad").mkdir()
    shutil.copy(fixtures / "xquad" / "xquad.es.json", tmp_path / "xtreme" / "xquad")  # answers removed
    args = ["tasks", "--data-dir", str(tmp_path), "--check"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    assert "retrieval" in lines["tatoeba"] and "accuracy, accuracy_en_xx" in lines["tatoeba"]
    assert "none: not trained" in lines["bucc"] and "1/4: de" in lines["bucc"]
    assert "2/41: de fr" in lines["tatoeba"]  # the LASER and the labelled XTREME layout
    assert "span_qa" in lines["xquad"] and "1/12: es" in lines["xquad"]
    assert "token_accuracy" in lines["udpos"] and "missing" in lines["udpos"]
    assert "es: " in result.output and "answers were removed" in result.output  # --check read it


def test_results_prints_the_per_task_table(tmp_path: Path) -> None:
    """`xstilts results` shows each task's leaderboard measure, the groups and both overall means."""
    from typer.testing import CliRunner

    from xstilts.cli import app

    with Store(tmp_path) as store:
        for i, task in enumerate(TASKS):
            rid = f"tgt-none-{task}-s1"
            store.register_run(rid, "target", "none", task, 1, f"h{i}", None)
            rows = [r for r in ROWS if r[0] == task and (len(r) < 5 or r[4] == 1)]
            store.complete_run(rid, RunResult(scores=[Score(task, r[1], "eval", r[2], float(r[3]), 0, "final")
                                                      for r in rows]), 1.0)
    result = CliRunner().invoke(app, ["results", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") >= 4}
    assert "f1" in rows["udpos"] and "92.0" in rows["udpos"]  # seqeval F1, not the 95.0 of word accuracy
    assert "(EM + F1) / 2" in rows["xquad"] and "65.0" in rows["xquad"]
    assert "mean of 9 tasks" in rows["XTREME score"]
    assert "XTREME score of 'none'" in result.output


def test_tasks_command_finds_all_nine_targets_in_the_shared_data(shared_data: Path) -> None:
    """`xstilts tasks` on the real data: each of XTREME's nine targets has its evaluation files
    (BUCC: zh only; Tatoeba: LASER's aligned files for all 36 languages; the UD/PAN-X languages
    the shared copy lacks are named) and none shows a problem. Without --check: reading every
    file takes minutes on the shared box; the readers have their own real-data tests."""
    from typer.testing import CliRunner

    from xstilts.cli import app
    from xstilts.tasks import get_task

    result = CliRunner().invoke(app, ["tasks", "--data-dir", str(shared_data)], env={"COLUMNS": "600"})
    assert result.exit_code == 0, result.output
    rows: dict[str, list[str]] = {}
    name = ""
    for line in result.output.splitlines():
        cells = line.split("│")
        if len(cells) > 6:
            name = cells[1].strip() or name
            rows.setdefault(name, []).append(cells[6].strip())
    expected = {"xnli": "15/15:", "pawsx": "7/7:", "udpos": "34/38:", "panx": "47/48:", "xquad": "12/12:",
                "mlqa": "7/7:", "tydiqa": "9/9:", "bucc": "1/4: zh", "tatoeba": "41/41:"}
    assert set(expected) == set(TASKS)
    for task, found in expected.items():
        cell = " ".join(rows[task])
        assert cell.startswith(found), (task, cell)
        assert "problems" not in cell, (task, cell)
    assert "missing: kk th tl yo" in " ".join(rows["udpos"]) and "missing: th" in " ".join(rows["panx"])
    tatoeba = get_task("tatoeba", data_dir=shared_data)
    assert all(tatoeba.files("eval", lang)[0].name.startswith("tatoeba.") for lang in tatoeba.languages)
