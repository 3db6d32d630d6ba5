"""How the analysed runs were computed: precision and thread counts from the runs' stored records."""

from __future__ import annotations

import json

from xstilts.analysis.computation import computation_notes, run_computation


def _row(run_id: str, thread_log: list, precision: str = "no", threads: int = 1, target: str | None = "panx",
         intermediate: str = "none", as_json: bool = True) -> dict:
    extra = {"speed": {"precision": precision, "threads": threads, "thread_log": thread_log}}
    return {"run_id": run_id, "target": target, "intermediate": intermediate,
            "extra": json.dumps(extra) if as_json else extra}


def test_a_run_that_kept_its_threads_has_no_changes() -> None:
    run = run_computation(_row("a", [[0, 1, 1.0], [17, 1, 1.0], [34, 1, 1.01]]))
    assert run is not None
    assert run.threads == (1,) and run.changes == () and run.precision == "fp32"


def test_a_change_is_recorded_with_its_step_and_a_change_back_too() -> None:
    run = run_computation(_row("a", [[0, 1, 1.0], [46, 2, 0.04], [50, 2, 0.01], [60, 1, 1.0]], precision="bf16",
                               as_json=False))
    assert run is not None
    assert run.threads == (1, 2, 1)
    assert run.changes == ((46, 2), (60, 1))
    assert run.precision == "bf16 autocast"


def test_runs_without_a_speed_record_are_left_out() -> None:
    assert run_computation({"run_id": "a", "extra": None}) is None
    assert run_computation({"run_id": "a", "extra": "{not json"}) is None
    assert run_computation({"run_id": "a", "extra": json.dumps({"train_s": 3.0})}) is None
    assert computation_notes([{"run_id": "a", "extra": None}]) == ([], [])


def test_notes_name_the_run_that_changed_threads_and_the_step() -> None:
    rows = [_row("tgt-a", [[0, 1, 1.0], [17, 1, 1.0]]),
            _row("tgt-b", [[0, 1, 1.0], [46, 2, 0.04]]),
            _row("int-c", [[0, 1, 0.1]], target=None)]
    notes, warnings = computation_notes(rows)
    assert notes[0] == "Precision: fp32 in all 3 runs with a computation record."
    assert "1 of 3 runs changed their thread count" in notes[1]
    assert "tgt-b (1 → 2 after step 46)" in notes[1]
    assert "tgt-a" not in notes[1] and "2 on 1 thread" in notes[1]
    assert warnings == []


def test_every_run_keeping_its_count_says_so_by_count() -> None:
    rows = [_row("a", [[0, 1, 1.0]]), _row("b", [[0, 2, 0.0]], threads=2), _row("c", [], threads=2)]
    notes, _ = computation_notes(rows)
    assert notes[1] == "Threads: every run kept one thread count while training (1 on 1 thread, 2 on 2 threads)."
    bare = {"run_id": "d", "extra": json.dumps({"speed": {"precision": "no"}})}
    notes, _ = computation_notes([*rows, bare])
    assert notes[1].endswith("(1 with no count recorded, 1 on 1 thread, 2 on 2 threads).")


def test_a_target_whose_settings_ran_at_different_precisions_is_a_warning() -> None:
    rows = [_row("n1", [[0, 1, 1.0]], precision="no", intermediate="none"),
            _row("s1", [[0, 1, 1.0]], precision="bf16", intermediate="sick"),
            _row("x1", [[0, 1, 1.0]], precision="bf16", target="xnli", intermediate="none"),
            _row("x2", [[0, 1, 1.0]], precision="bf16", target="xnli", intermediate="sick")]
    notes, warnings = computation_notes(rows)
    assert notes[0] == "Precision: bf16 autocast in 3, fp32 in 1 of the 4 runs with a computation record."
    assert len(warnings) == 1
    assert warnings[0].startswith("panx: its runs used more than one precision (none: fp32; sick: bf16 autocast)")
