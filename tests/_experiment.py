"""The config text of the small real experiments the tests run (imported by several test packages).

One builder, so the shape of a test experiment (a baseline and an intermediate setting, targets,
languages, the tiny training block) is written once; each test changes only what it is about.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The tiny training block of every test experiment: a few steps on a few dozen examples. Tests
#: that build a config in Python take TINY_TRAIN_OPTIONS (the same block as a dict).
TINY_TRAIN = """lr = 1e-3
batch_size = 8
max_steps = 4
eval_every = 2
max_length = 32
max_train_examples = 24
max_eval_examples = 12
"""
TINY_TRAIN_OPTIONS: dict[str, Any] = tomllib.loads(TINY_TRAIN)


def _array(value: str | Sequence[object]) -> str:
    """A TOML array from a list, or the text itself when the caller wrote TOML already."""
    return value if isinstance(value, str) else json.dumps(list(value))


def experiment_toml(model: Path | str, data_dir: Path, out_dir: Path, *, name: str = "tiny",
                    seeds: str | Sequence[int] = (1,), settings: str | Sequence[str] = ("none", "sick"),
                    tasks: str | Sequence[str] = ("panx", "xnli"),
                    languages: str | Sequence[str] = ("en", "de", "sw"), train: str = TINY_TRAIN,
                    intermediate_extra: str = "", runtime: str = "progress = false\n", header: str = "",
                    extra: str = "") -> str:
    """A complete experiment config; ``header`` goes before the first table, ``extra`` after the last."""
    return f"""name = "{name}"
model = "{model}"
data_dir = "{data_dir}"
output_dir = "{out_dir}"
seeds = {_array(seeds)}
{header}
[intermediate]
settings = {_array(settings)}
[intermediate.train]
{train}{intermediate_extra}
[target]
tasks = {_array(tasks)}
languages = {_array(languages)}
[target.train]
{train}
[runtime]
{runtime}
{extra}"""
