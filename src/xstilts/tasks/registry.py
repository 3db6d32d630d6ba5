"""The task registry: every task module registers itself here on import."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from xstilts.errors import ConfigError
from xstilts.tasks.base import Task

_REGISTRY: dict[str, type[Task]] = {}
_ALIASES: dict[str, str] = {}


def register(cls: type[Task], aliases: tuple[str, ...] = ()) -> type[Task]:
    """Class decorator: make a task available by name (and aliases) in configs and the CLI."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    for alias in aliases:
        _ALIASES[alias] = cls.name
    return cls


def _load_all() -> None:
    import xstilts.tasks as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in {"base", "registry", "formats"} and not mod.name.startswith("_"):
            importlib.import_module(f"xstilts.tasks.{mod.name}")


def task_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_task(name: str, options: dict[str, Any] | None = None, data_dir: str | Path | None = None) -> Task:
    """A fresh task instance by name, reading from ``data_dir``; unknown names are a config error
    listing the known ones. Without a data directory the task tells what it is but reads nothing."""
    _load_all()
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _REGISTRY:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    return _REGISTRY[key](options=dict(options or {}), data_dir=Path(data_dir) if data_dir is not None else None)
