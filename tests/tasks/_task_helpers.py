"""Helpers shared by the task tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

from _experiment import TINY_TRAIN_OPTIONS

from xstilts.store import RunResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE_DATA = FIXTURES / "data"

PHASE2_TRAIN = {**TINY_TRAIN_OPTIONS, "max_length": 48}  # room for a question and a window of its context


def final_scores(result: RunResult) -> dict[tuple[str, str], float]:
    return {(s.task, s.metric): s.value for s in result.scores if s.kind == "final"}


def assert_phase2_ran(result: RunResult, task: str, metrics: tuple[str, ...],
                      steps: int = PHASE2_TRAIN["max_steps"]) -> None:
    """Phase 2 trained ``steps`` steps, saved a checkpoint, and scored every metric on English dev."""
    assert result.train_steps == steps
    assert result.train_tokens > 0
    assert Path(result.checkpoint).is_dir()
    scores = final_scores(result)
    for metric in metrics:
        assert 0.0 <= scores[(task, metric)] <= 100.0
    langs = {s.language for s in result.scores if s.task == task}
    assert langs == {"en"}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
