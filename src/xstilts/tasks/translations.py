"""Translated intermediate data: one task trained on English plus machine-translated copies.

In a config, an intermediate task lists per-language training files in its task options::

    [intermediate.task_options.mnli]
    translations = { de = "/data/mnli-de/train.tsv", fr = "/data/mnli-fr/train.tsv" }
    # translations_only = true   # drop the English file, train on the translations alone

Each file must be in the task's own training-file format (a translated MNLI is a GLUE MNLI tsv).
It is read by the task itself with its training-file option pointed at the path, so every
reader, check and cache works unchanged. All languages form *one* task: one head, one job, their
features pooled (a multilingual task, not several tasks for the sampler). Model selection stays on
the English dev set. An example cap (``task_caps`` / ``max_train_examples``) applies to each
language's file. Relative paths are looked up under the data directory first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xstilts.errors import ConfigError
from xstilts.tasks.base import Task
from xstilts.tasks.registry import get_task

TRAIN_FILE_OPTION = {"sick": "file"}  # tasks whose training-file option is not ``train_file``


def translation_variants(name: str, options: dict[str, Any] | None, data_dir: Path) -> list[tuple[str, Task]]:
    """(language, task instance) per training file of an intermediate task; English first."""
    opts = dict(options or {})
    translations = opts.pop("translations", {})
    only = bool(opts.pop("translations_only", False))
    if not isinstance(translations, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in translations.items()):
        raise ConfigError(f"task {name!r}: translations must be a table {{language = \"path\"}}")
    if only and not translations:
        raise ConfigError(f"task {name!r}: translations_only needs at least one translation")
    variants: list[tuple[str, Task]] = [] if only else [("en", get_task(name, opts, data_dir))]
    key = TRAIN_FILE_OPTION.get(name, "train_file")
    for lang, raw in translations.items():
        path = Path(raw).expanduser()
        if not path.is_absolute() and not path.exists() and (data_dir / path).exists():
            path = data_dir / path
        task = get_task(name, {**opts, key: str(path.resolve())}, data_dir)
        if path.resolve() not in [p.resolve() for p in task.files("train", lang)]:
            raise ConfigError(f"task {name!r} has no training-file option {key!r}, so it cannot read "
                              f"translations")
        variants.append((lang, task))
    return variants
