"""``xstilts results`` on a store where nothing has finished yet: a first run interrupted during its
first run, or every run failed. A note naming the store, an empty table and a CSV of its header,
exit 0, as ``report`` and ``analyze`` treat such a store; never a traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.store import Store


def test_results_of_a_store_where_no_run_has_finished(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        ids = [f"tgt-none-xnli-s{seed}-h" for seed in (1, 2, 3)]
        for seed, run_id in enumerate(ids, start=1):
            store.register_run(run_id, "target", "none", "xnli", seed, "h", None)
        store.set_meta("plan", ids)
        store.mark_running(ids[0])  # interrupted (Ctrl-C): left 'running'
        store.mark_running(ids[1])
        store.mark_failed(ids[1], "boom")
        path = store.path
    result = CliRunner().invoke(app, ["results", str(tmp_path)])
    assert result.exit_code == 0 and result.exception is None, result.output
    assert (f"{path}: no target run has finished yet (3 target run(s): 1 failed, 1 pending, 1 running or "
            "interrupted); no scores to show") in result.output.splitlines(), result.output
    assert (tmp_path / "results.csv").read_text() == "intermediate,target,language,metric,seed,value,step,run_id,stale\n"
