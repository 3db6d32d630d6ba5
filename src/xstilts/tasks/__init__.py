"""Tasks: one module per task, found by name through the registry."""

from xstilts.tasks.base import Task
from xstilts.tasks.registry import get_task, register, task_names

__all__ = ["Task", "get_task", "register", "task_names"]
