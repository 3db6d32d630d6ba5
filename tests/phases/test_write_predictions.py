"""``runtime.write_predictions``: a real (tiny) experiment writes what its target runs predicted in
XTREME's submission layout, and scoring those files gives the scores the store holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from _experiment import experiment_toml
from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.evaluation.submission import score_submission
from xstilts.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


def test_target_runs_write_predictions_that_score_as_stored(tmp_path: Path, mini_data: Path, tiny_model: Path,
                                                           shared_data: Path) -> None:
    config = tmp_path / "write.toml"
    config.write_text(experiment_toml(
        tiny_model, mini_data, tmp_path / "exp", settings=["none"], tasks=["panx", "xnli", "tatoeba"],
        runtime="progress = false\nwrite_predictions = true\n",
        extra=f'[target.task_options.tatoeba]\ndir = "{shared_data / "xtreme" / "tatoeba"}"\n'),
        encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output

    exp = tmp_path / "exp"
    with Store(exp, readonly=True) as store:
        final = store.scores_frame(kind="final")
    target = final[final["phase"] == "target"]
    assert set(target["task"]) == {"panx", "xnli", "tatoeba"}
    # the submission's metric for each task, and the stored metric it must equal
    same = {"panx": ("panx", "f1", "f1"), "xnli": ("xnli", "accuracy", "accuracy"),
            "tatoeba": ("tatoeba", "accuracy", "accuracy_en_xx")}
    checked = 0
    for run_id, rows in target.groupby("run_id"):
        task = rows["task"].iloc[0]
        folder, sub_metric, stored_metric = same[task]
        pred_dir, label_dir = exp / "predictions" / run_id, exp / "labels" / run_id
        expected_langs = {"de", "sw"} if task == "tatoeba" else {"en", "de", "sw"}
        assert {p.name for p in (pred_dir / folder).iterdir()} == {f"test-{lang}.tsv" for lang in expected_langs}
        scores = score_submission(pred_dir, label_dir).detailed[folder][sub_metric]
        for lang in ("de", "sw"):  # English is stored on its report half only; the submission has all of it
            stored = rows[(rows["language"] == lang) & (rows["metric"] == stored_metric)]["value"]
            assert scores[lang] == pytest.approx(float(stored.iloc[0]), abs=1e-9), (task, lang)
            checked += 1
        n_lines = len((label_dir / folder / "test-de.tsv").read_text(encoding="utf-8").splitlines())
        assert n_lines >= 12  # max_eval_examples: 12 sentences (plus blank lines) or 12 rows
    assert checked == 6

    # one submission folder for the setting, scored as evaluate.py scores it
    gathered = CliRunner().invoke(app, ["submission", str(exp), str(tmp_path / "sub"), "--setting", "none"])
    assert gathered.exit_code == 0, gathered.output
    assert {p.name for p in (tmp_path / "sub" / "predictions").iterdir()} == {"panx", "xnli", "tatoeba"}
    whole = score_submission(tmp_path / "sub" / "predictions", tmp_path / "sub" / "labels")
    assert f"panx: {whole.detailed['panx']['avg_metric']:.2f}" in gathered.output
    assert "all_task" not in whole.overall  # six of nine tasks missing: no overall score, as evaluate.py
    again = CliRunner().invoke(app, ["submission", str(exp), str(tmp_path / "sub2"), "--setting", "sick"])
    assert again.exit_code == 2 and "no finished target run of setting 'sick'" in again.output
