"""Phase 2's table: each setting's own dev score per task and seed, beside the task's chance."""

from __future__ import annotations

import pandas as pd

from xstilts.analysis.intermediate import intermediate_table
from xstilts.report.tables import intermediate_view


def _row(run: str, phase: str, inter: str, task: str, metric: str, value: float, seed: int,
         kind: str = "final") -> dict:
    return {"run_id": run, "task": task, "language": "en", "split": "eval", "metric": metric, "value": value,
            "step": 64, "kind": kind, "phase": phase, "intermediate": inter, "target": None, "seed": seed}


def test_phase_two_scores_per_task_and_seed_with_chance() -> None:
    scores = pd.DataFrame([
        _row("int-sick-s1", "intermediate", "sick", "sick", "accuracy", 80.5, 1),
        _row("int-sick-s2", "intermediate", "sick", "sick", "accuracy", 82.0, 2),
        _row("int-sick-s2", "intermediate", "sick", "sick", "accuracy", 40.0, 2, kind="curve"),  # not final
        _row("int-mix-s1", "intermediate", "sick+sst2", "sick", "accuracy", 55.5, 1),
        _row("int-mix-s1", "intermediate", "sick+sst2", "sst2", "accuracy", 49.5, 1),  # below 50 % chance
        _row("int-sq-s1", "intermediate", "squad", "squad", "exact_match", 20.0, 1),  # not the primary metric
        _row("int-sq-s1", "intermediate", "squad", "squad", "squad_f1", 31.0, 1),
        _row("tgt-none-panx-s1", "target", "none", "panx", "f1", 60.0, 1),  # phase 3: not listed
    ])
    t = intermediate_table(scores)
    assert t[["intermediate", "task", "metric", "seed", "score"]].values.tolist() == [
        ["sick", "sick", "accuracy", 1, 80.5], ["sick", "sick", "accuracy", 2, 82.0],
        ["sick+sst2", "sick", "accuracy", 1, 55.5], ["sick+sst2", "sst2", "accuracy", 1, 49.5],
        ["squad", "squad", "squad_f1", 1, 31.0]]
    assert t.set_index("task")["chance"].to_dict() == {"sick": 100 / 3, "sst2": 50.0, "squad": 0.0}

    class _A:
        intermediate = t

    view = intermediate_view(_A())  # type: ignore[arg-type]
    notes = {(r[0], r[1]): r[-1] for r in view.rows}
    assert notes[("sick+sst2", "sst2")] == "at or below chance in seed 1"
    assert notes[("sick", "sick")] == ""
    assert view.header[4:6] == ["Seed 1", "Seed 2"]
