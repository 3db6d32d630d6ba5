"""The plan: expand a config into the grid of runs, in dependency order.

A phase-2 run exists once per (intermediate setting, seed) and is reused by every target;
the ``none`` setting has no phase-2 run (its targets start from the pretrained model).
Run ids carry a hash of everything that determines the run's result, so a changed config never
reuses a stale result, and an unchanged one never recomputes a finished one.
"""

from __future__ import annotations

from dataclasses import dataclass

from xstilts.config import ExperimentConfig, fingerprint
from xstilts.errors import ConfigError
from xstilts.tasks import get_task

BASELINE = "none"
MULTI_TASK_ALIASES = {
    "all-nine": ("anli_plus", "mnli", "qqp", "sst2", "squad", "hellaswag", "commonsenseqa", "cosmosqa", "ccg"),
}


@dataclass(frozen=True)
class Run:
    run_id: str
    phase: str  # 'intermediate' | 'target'
    setting: str  # intermediate setting name; 'none' = baseline
    tasks: tuple[str, ...]  # intermediate tasks of the setting
    target: str | None
    seed: int
    config_hash: str
    parent: str | None  # phase-2 run this target run starts from
    languages: tuple[str, ...] = ()


def setting_tasks(setting: str | list[str]) -> tuple[str, ...]:
    """The intermediate tasks a setting trains on together (one for single-task settings)."""
    names = [setting] if isinstance(setting, str) else list(setting)
    out: list[str] = []
    for name in names:
        out.extend(MULTI_TASK_ALIASES.get(name, (name,)))
    return tuple(dict.fromkeys(out))


def make_plan(cfg: ExperimentConfig) -> list[Run]:
    """All runs of the study; phase-2 runs come before the targets that need them."""
    runtime_key: tuple = (cfg.runtime.bucket_by_length, cfg.runtime.bf16)
    if cfg.runtime.precision == "fp16":  # changes results; appended so other runs keep their ids
        runtime_key += ("fp16",)
    if cfg.runtime.freeze_embeddings:  # a different training procedure, same rule
        runtime_key += ("freeze_embeddings",)
    runs: list[Run] = []
    for setting, name in zip(cfg.intermediate.settings, cfg.intermediate.setting_names(), strict=True):
        tasks = () if name == BASELINE else setting_tasks(setting)
        for task in tasks:
            if get_task(task).head == "retrieval":  # unknown names fail here, before anything runs
                raise ConfigError(f"intermediate setting {name!r}: {task} is a retrieval task, it has no "
                                  "training data (use it as a target)")
        for seed in cfg.seeds:
            parent_id = None
            parent_hash = fingerprint(cfg.model)
            if tasks:
                opts = {t: cfg.intermediate.task_options.get(t, {}) for t in tasks}
                extra = cfg.intermediate.run_key(tasks)  # sampler, caps, MLM; {} when default (ids kept)
                h = fingerprint(cfg.model, tasks, cfg.intermediate.train.model_dump(), opts, seed,
                                runtime_key, *([extra] if extra else []))
                parent_id = f"int-{name}-s{seed}-{h}"
                parent_hash = h
                runs.append(Run(parent_id, "intermediate", name, tasks, None, seed, h, None, ("en",)))
            for target in cfg.target.tasks:
                task = get_task(target)
                langs = tuple(cfg.target.languages_for(target, task.languages))
                if task.head == "retrieval":  # xx against English: no English set, no model selection
                    langs = tuple(lang for lang in langs if lang != "en")
                h = fingerprint(parent_hash, target, cfg.target.train_for(target).model_dump(), langs,
                                cfg.target.task_options.get(target, {}), seed, runtime_key)
                runs.append(Run(f"tgt-{name}-{target}-s{seed}-{h}", "target", name, tasks, target, seed, h,
                                parent_id, langs))
    return runs
