"""The plan: expand a config into the grid of runs, in dependency order, and name each run.

A phase-2 run exists once per (intermediate setting, seed) and is reused by every target;
the ``none`` setting has no phase-2 run (its targets start from the pretrained model).
Run ids carry a hash of everything that determines the run's result, so a changed config never
reuses a stale result, and an unchanged one never recomputes a finished one. Every rule of what
enters that hash lives in this module.

Options added after the first stores existed enter the hash only when they differ from their
default (``grad_accum_steps``, the sampler, task caps, MLM, fp16, frozen embeddings), so the runs
of older stores keep their ids; tests/fixtures/run_ids.json pins the ids of the shipped configs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from xstilts.config import (
    BASELINE,
    MLM_TATOEBA,
    ExperimentConfig,
    IntermediateConfig,
    RuntimeConfig,
    SelectionConfig,
    TrainConfig,
    setting_tasks,
)
from xstilts.errors import ConfigError
from xstilts.tasks import get_task


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


def fingerprint(*parts: Any) -> str:
    """Stable short hash of JSON-able values: what makes a run's result what it is."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def train_key(hp: TrainConfig) -> dict[str, Any]:
    """A phase's hyperparameters as hashed: ``grad_accum_steps`` only when it is not 1."""
    data = hp.model_dump()
    if data.get("grad_accum_steps") == 1:
        data.pop("grad_accum_steps")
    return data


def runtime_key(rt: RuntimeConfig) -> tuple:
    """The runtime settings that change results (the rest only change speed)."""
    key: tuple = (rt.bucket_by_length, rt.bf16)
    if rt.precision == "fp16":  # changes results; appended so other runs keep their ids
        key += ("fp16",)
    if rt.freeze_embeddings:  # a different training procedure, same rule
        key += ("freeze_embeddings",)
    if rt.fast_dropout:  # another random stream for the masks, same rule
        key += ("fast_dropout",)
    if rt.first_token_only:  # the last layer draws fewer dropout masks: the random stream shifts
        key += ("first_token_only",)
    if rt.pack_sequences:  # dropout masks drawn over the packed layout, same rule
        key += ("pack_sequences",)
    return key


def average_key(selection: SelectionConfig) -> dict[str, Any] | None:
    """Checkpoint averaging as hashed into target run ids: only when it is switched on.

    Averaging leaves training and every other stored row unchanged, but a finished run that did
    not average cannot get its average row without training again (the average is formed from
    weights that exist only during training). So switching it on (or changing it) gives new run
    ids, which train the runs again; with it off (the default) ids are those of older stores. The
    analysis-only strategies (English dev, k-shot, oracle) and ``k_shot`` never enter the hash.
    """
    if selection.average is None:
        return None
    return {"average": selection.average, **({"k": selection.average_k} if selection.average == "last-k" else {})}


def intermediate_key(icfg: IntermediateConfig, tasks: tuple[str, ...]) -> dict[str, Any]:
    """What else (besides ``train`` and ``task_options``) changes a phase-2 run of ``tasks``; {} by default."""
    key: dict[str, Any] = {}
    if len(tasks) > 1 and icfg.sampler != "proportional":
        key["sampler"] = [icfg.sampler, icfg.temperature if icfg.sampler == "temperature" else None]
    caps = {t: icfg.task_caps[t] for t in tasks if t in icfg.task_caps}
    if caps:
        key["task_caps"] = caps
    if icfg.mlm_rate > 0:
        key["mlm"] = [icfg.mlm_rate, icfg.mlm_weight, icfg.mlm_data, sorted(icfg.mlm_languages),
                      icfg.mlm_max_sentences]
        if icfg.mlm_data == MLM_TATOEBA and icfg.task_options.get("tatoeba"):  # where the text is read
            key["mlm_tatoeba"] = icfg.task_options["tatoeba"]
    return key


def make_plan(cfg: ExperimentConfig) -> list[Run]:
    """All runs of the study; phase-2 runs come before the targets that need them."""
    rt_key = runtime_key(cfg.runtime)
    runs: list[Run] = []
    for setting, name in zip(cfg.intermediate.settings, cfg.intermediate.setting_names(), strict=True):
        tasks = () if name == BASELINE else setting_tasks(setting)
        for task in tasks:
            if not get_task(task).trainable:  # unknown names fail here, before anything runs
                raise ConfigError(f"intermediate setting {name!r}: {task} is a retrieval task, it has no "
                                  "training data (use it as a target)")
        for seed in cfg.seeds:
            parent_id = None
            parent_hash = fingerprint(cfg.model)
            if tasks:
                opts = {t: cfg.intermediate.task_options.get(t, {}) for t in tasks}
                extra = intermediate_key(cfg.intermediate, tasks)
                h = fingerprint(cfg.model, tasks, train_key(cfg.intermediate.train), opts, seed,
                                rt_key, *([extra] if extra else []))
                parent_id = f"int-{name}-s{seed}-{h}"
                parent_hash = h
                runs.append(Run(parent_id, "intermediate", name, tasks, None, seed, h, None, ("en",)))
            for target in cfg.target.tasks:
                task = get_task(target)
                langs = tuple(cfg.target.languages_for(target, task.languages))
                if not task.trainable:  # xx against English: no English set, no model selection
                    langs = tuple(lang for lang in langs if lang != "en")
                avg = average_key(cfg.target.selection) if task.trainable else None
                h = fingerprint(parent_hash, target, train_key(cfg.target.train_for(target)), langs,
                                cfg.target.task_options.get(target, {}), seed, rt_key, *([avg] if avg else []))
                runs.append(Run(f"tgt-{name}-{target}-s{seed}-{h}", "target", name, tasks, target, seed, h,
                                parent_id, langs))
    return runs
