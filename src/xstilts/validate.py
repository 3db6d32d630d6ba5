"""Check every data file a plan needs before anything runs.

A missing language file or a malformed line found after hours of training is a lost afternoon;
found here, it is a one-line error and nothing has been written.
"""

from __future__ import annotations

from pathlib import Path

from xstilts.config import ExperimentConfig, line_of
from xstilts.errors import ConfigError, DataError
from xstilts.plan import Run
from xstilts.tasks import get_task


def check_data(cfg: ExperimentConfig, plan: list[Run], data_dir: Path) -> None:
    """Read every split the plan will use; raise the first DataError (file:line) found."""
    if not data_dir.is_dir():
        raise DataError("data directory not found (set data_dir in the config or XSTILTS_DATA)", data_dir)
    needed: dict[tuple[str, str], set[str]] = {}
    for run in plan:
        if run.phase == "intermediate":
            for t in run.tasks:
                needed.setdefault(("intermediate", t), set()).add("en")
        elif run.target:
            needed.setdefault(("target", run.target), set()).update(run.languages)
    checked: set[tuple[str, str, str, str]] = set()
    for (phase, name), langs in needed.items():
        section = cfg.intermediate if phase == "intermediate" else cfg.target
        task = get_task(name, section.task_options.get(name), data_dir)
        train = [("train", "en")] if task.trainable else []
        for split, lang in [*train, *[("eval", lang) for lang in sorted(langs)]]:
            key = (phase, name, split, lang)
            if key in checked:
                continue
            checked.add(key)
            for path in task.files(split, lang):
                if not path.is_file():
                    raise DataError(f"{name} {split} file for language '{lang}' not found", path)
            task.load(split, lang)


def check_max_length(cfg: ExperimentConfig, plan: list[Run], model_path: str, config_path: Path) -> None:
    """A ``max_length`` beyond the model's position embeddings fails at the first batch, after the
    store and caches exist; here it is one line naming the key, before anything is written."""
    from xstilts.models.loading import max_positions

    limit = max_positions(model_path)
    if limit is None:
        return
    used: list[tuple[tuple[str, ...], int]] = []
    if any(run.phase == "intermediate" for run in plan):
        used.append((("intermediate", "train", "max_length"), cfg.intermediate.train.max_length))
    for task in cfg.target.tasks:
        loc = ("target", "overrides", task) if task in cfg.target.overrides else ("target", "train")
        used.append(((*loc, "max_length"), cfg.target.train_for(task).max_length))
    for loc, value in used:
        if value > limit:
            text = config_path.read_text(encoding="utf-8-sig", errors="replace")
            raise ConfigError(f"key '{'.'.join(loc)}': {value} is more than the model's {limit} positions "
                              f"(model {cfg.model})", config_path, line_of(text, loc))
