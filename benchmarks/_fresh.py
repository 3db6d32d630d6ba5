"""The set-up most benchmarks share: one task's features and the default model, freshly loaded.

Why one place: the benchmarks that time a training step or an evaluation pass (profile_step.py,
bench_peak.py, bench_draws.py, bench_kernel_builds.py, bench_two_trees.py, bench_eval_attention.py)
must start from the same weights and the same examples, so their figures compare. The model is loaded right
after ``set_seed(1)`` and the head built next, as the training phase does, so every benchmark's head
starts from the same random draws. xstilts is imported when called, not at import: bench_two_trees.py
runs this against another checkout's package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

CACHE = Path(os.environ.get("XSTILTS_BENCH_CACHE", "/tmp/xstilts-bench-cache"))  # featurized examples


class Fresh(NamedTuple):
    """A task, its features, and the default encoder with a new head for it (nothing prepared yet);
    a tuple, so a benchmark unpacks what it uses."""

    tokenizer: Any
    task: Any
    kind: Any
    features: list
    encoder: Any
    head: Any


def fresh(task_name: str, examples: int, data_dir: Path, split: str = "train",
          languages: tuple[str, ...] = ("en",), max_length: int = 128) -> Fresh:
    """Up to ``examples`` features a language of ``task_name``'s ``split``, the default encoder
    loaded after ``set_seed(1)``, and the task's head (dropout 0.1) built after it."""
    from xstilts.featurize import load_features
    from xstilts.heads import get_head_kind
    from xstilts.models.loading import load_encoder, load_tokenizer
    from xstilts.tasks import get_task
    from xstilts.training.loop import set_seed

    tokenizer = load_tokenizer("default")
    task = get_task(task_name, data_dir=data_dir)
    kind = get_head_kind(task.head)
    features = [f for language in languages
                for f in load_features(task, split, language, tokenizer, max_length, examples, CACHE)[1]]
    set_seed(1)
    encoder = load_encoder("default")
    head = kind.build(task, encoder.config.hidden_size, 0.1)
    return Fresh(tokenizer, task, kind, features, encoder, head)
