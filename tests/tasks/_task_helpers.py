"""Helpers shared by the task tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

from xstilts.store import RunResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE_DATA = FIXTURES / "data"
SHARED = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()

PHASE2_TRAIN = {"lr": 1e-3, "batch_size": 4, "max_steps": 3, "eval_every": 3, "max_length": 48,
                "max_train_examples": 16, "max_eval_examples": 8}


def final_scores(result: RunResult) -> dict[tuple[str, str], float]:
    return {(s.task, s.metric): s.value for s in result.scores if s.kind == "final"}


def assert_phase2_ran(result: RunResult, task: str, metrics: tuple[str, ...], steps: int = 3) -> None:
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
