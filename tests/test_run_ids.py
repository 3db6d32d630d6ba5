"""Run ids never change by accident: every shipped config (and variants that switch on each option
hashed into ids) plans to exactly the ids recorded in tests/fixtures/run_ids.json.

A changed id would make every existing store recompute its finished runs. If a change to the
ids is meant, document the migration and re-record: ``PYTHONPATH=src python tests/_run_ids.py
> tests/fixtures/run_ids.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from _run_ids import run_ids

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "run_ids.json"


def test_run_ids_of_the_shipped_configs_are_unchanged() -> None:
    golden = json.loads(GOLDEN.read_text())
    now = run_ids()
    assert sorted(now) == sorted(golden)
    for name, ids in golden.items():
        assert now[name] == ids, name
