"""Everything ``xstilts run`` checks before it creates anything, and ``xstilts plan --check`` prints.

A missing language file, a malformed line, a model that cannot be loaded or an output directory
that cannot be written, found after hours of training, is a lost afternoon; found here, it is a
one-line error and nothing has been written. :func:`preflight` is the one list of checks: ``run``
stops at its first problem, ``plan --check`` reports them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from xstilts.config import ExperimentConfig, key_error, load_config
from xstilts.context import RunContext
from xstilts.errors import DataError, XstiltsError
from xstilts.plan import Run, make_plan
from xstilts.tasks import get_task


@dataclass
class Prepared:
    """A config that passed :func:`preflight`: what ``run`` executes."""

    cfg: ExperimentConfig
    plan: list[Run]
    ctx: RunContext


def preflight(config_path: Path, output_dir: Path | None = None, sets: Sequence[str] = (),
              ) -> tuple[Prepared | None, list[XstiltsError]]:
    """Every check ``run`` makes before it creates anything; returns the prepared run and the problems.

    A config that does not load is the only problem reported (nothing else can be checked without it);
    otherwise the model, the output and cache directories and every data file are each checked, so
    ``plan --check`` lists all that is wrong at once. Creates nothing in the output directory.
    """
    try:
        cfg = load_config(config_path, sets)
        plan = make_plan(cfg)
    except XstiltsError as exc:
        return None, [exc]
    problems: list[XstiltsError] = []
    model_path = cfg.model
    try:
        from xstilts.models.loading import resolve_model_path

        model_path = resolve_model_path(cfg.model)
        check_max_length(cfg, plan, model_path, config_path, sets)
    except XstiltsError as exc:
        problems.append(exc)
    ctx = RunContext.create(cfg, output_dir, model_path=model_path)
    out_problem = writable_problem(ctx.out_dir, "output")
    if out_problem is not None:
        problems.append(out_problem)
    if out_problem is None or not ctx.cache_dir.absolute().is_relative_to(ctx.out_dir.absolute()):
        cache_problem = writable_problem(ctx.cache_dir, "cache")  # under a bad output dir: said once
        if cache_problem is not None:
            problems.append(cache_problem)
    problems.extend(data_problems(cfg, plan, ctx.data_dir))
    return Prepared(cfg, plan, ctx), problems


def writable_problem(directory: Path, what: str) -> XstiltsError | None:
    """Why ``directory`` cannot be used (or created) for writing, or None.

    ``os.access`` answers for the effective user and for read-only mounts (``EROFS`` even for root),
    without writing a probe file: the check must create nothing.
    """
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            return XstiltsError(f"{what} directory is not a directory (a file is in the way)", directory)
        if not os.access(directory, os.W_OK | os.X_OK):
            return XstiltsError(f"{what} directory is not writable", directory)
        from xstilts.store import Store

        store = directory / Store.FILENAME
        if what == "output" and store.exists() and not (store.is_file() and os.access(store, os.R_OK | os.W_OK)):
            return XstiltsError("results store is not a writable file", store)
        return None
    parent = directory.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return XstiltsError(f"cannot create the {what} directory: {parent} is a file, not a directory", directory)
    if not os.access(parent, os.W_OK | os.X_OK):
        return XstiltsError(f"cannot create the {what} directory: {parent} is not writable", directory)
    return None


def check_data(cfg: ExperimentConfig, plan: list[Run], data_dir: Path) -> None:
    """Read every split the plan will use; raise the first DataError (file:line) found."""
    for problem in data_problems(cfg, plan, data_dir):
        raise problem


def data_problems(cfg: ExperimentConfig, plan: list[Run], data_dir: Path) -> Iterator[XstiltsError]:
    """Read every split the plan will use; one DataError (file:line) per split that is missing or bad."""
    if not data_dir.is_dir():
        yield DataError("data directory not found (set data_dir in the config or XSTILTS_DATA)", data_dir)
        return
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
            missing = [path for path in task.files(split, lang) if not path.is_file()]
            if missing:
                yield DataError(f"{name} {split} file for language '{lang}' not found", missing[0])
                continue
            try:
                task.load(split, lang)
            except XstiltsError as exc:  # a DataError (file:line), or a task option that does not fit the file
                yield exc


def check_max_length(cfg: ExperimentConfig, plan: list[Run], model_path: str, config_path: Path,
                     sets: Sequence[str] = ()) -> None:
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
            raise key_error(f"key '{'.'.join(loc)}': {value} is more than the model's {limit} positions "
                            f"(model {cfg.model})", loc, config_path, text, sets)
