"""The model card (``README.md``) of an exported run: how it was trained and how it scored.

The front matter is the Hub's metadata, written by ``huggingface_hub.ModelCardData`` so the
``model-index`` (one result per task and language, every final metric the store holds, values
exactly as stored) is in the format the Hub reads. The body lists the training phases, the data
and the hyperparameters from the config the store recorded.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from xstilts.config import BASELINE, TrainConfig, setting_tasks
from xstilts.export.source import StoredRun
from xstilts.models.loading import DEFAULT_MODEL_ALIASES, LOCAL_PREFIXES
from xstilts.tasks import get_task
from xstilts.tasks.base import EVAL_SPLIT

HUB_TASK_TYPES = {  # head kind -> the Hub's task type (pipeline tag)
    "tagging": "token-classification",
    "classification": "text-classification",
    "span_qa": "question-answering",
    "multiple_choice": "multiple-choice",
}
PIPELINE_TAGS = {"tagging": "token-classification", "classification": "text-classification",
                 "span_qa": "question-answering"}  # the Hub has no multiple-choice pipeline
DEFAULT_BASE = "intfloat/multilingual-e5-small"  # what xstilts' offline default model is converted from


def base_model(model: str) -> str | None:
    """The Hub id the run started from, when there is one (not a local directory)."""
    if model in DEFAULT_MODEL_ALIASES:
        return DEFAULT_BASE
    return None if model.startswith(LOCAL_PREFIXES) or Path(model).exists() else model


def _hyperparameters(train: TrainConfig) -> str:
    values = train.model_dump(mode="json", exclude_none=True)
    return "\n".join(f"| `{key}` | `{value}` |" for key, value in values.items())


def _eval_results(run: StoredRun) -> list[Any]:
    from huggingface_hub import EvalResult

    results = []
    for score in run.scores:
        if score["split"] != EVAL_SPLIT:
            continue
        task = get_task(score["task"])
        results.append(EvalResult(
            task_type=HUB_TASK_TYPES.get(task.head, task.head), dataset_type=task.name,
            dataset_name=f"{task.description or task.name} ({score['language']})",
            dataset_config=score["language"], dataset_split="dev", metric_type=score["metric"],
            metric_value=score["value"], metric_name=f"{score['metric']} ({score['language']})"))
    return results


def _score_table(run: StoredRun) -> str:
    by_task: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for score in run.scores:
        if score["split"] == EVAL_SPLIT:
            by_task[score["task"]][score["language"]][score["metric"]] = score["value"]
    lines = []
    for task, langs in by_task.items():
        metrics = sorted({m for values in langs.values() for m in values})
        lines += [f"**{task}**", "", "| language | " + " | ".join(metrics) + " |",
                  "|---|" + "---|" * len(metrics)]
        lines += [f"| {lang} | " + " | ".join(f"{values[m]:.2f}" if m in values else "" for m in metrics) + " |"
                  for lang, values in langs.items()]
        lines.append("")
    return "\n".join(lines)


def model_card(run: StoredRun, kind: str | None) -> str:
    """The README.md of the export of ``run`` (``kind``: its head kind; None for an encoder)."""
    from huggingface_hub import ModelCard, ModelCardData

    cfg, row = run.config, run.row
    setting = row["intermediate"]
    languages = sorted({s["language"] for s in run.scores}, key=lambda lang: (lang != "en", lang))
    data = ModelCardData(
        model_name=run.run_id, language=languages or None, library_name="transformers",
        base_model=base_model(cfg.model), pipeline_tag=PIPELINE_TAGS.get(kind or ""),
        tags=["xstilts", "intermediate-task-training", "zero-shot-cross-lingual-transfer"],
        eval_results=_eval_results(run) or None)
    inter_tasks = [] if setting == BASELINE else list(setting_tasks(setting.split("+")))
    phases = [f"1. **Pretrained model**: `{cfg.model}`"]
    if inter_tasks:
        phases.append(f"2. **Intermediate training** (English), setting `{setting}`: "
                      + ", ".join(f"`{t}` ({get_task(t).description})" for t in inter_tasks))
    else:
        phases.append("2. **Intermediate training**: none (baseline setting `none`)")
    if run.is_target:
        target = get_task(row["target"])
        phases.append(f"3. **Target task** `{target.name}` ({target.description}), fine-tuned on English; "
                      "every other language is zero-shot")
    hyper = [f"### Intermediate training (`[intermediate.train]`)\n\n| setting | value |\n|---|---|\n"
             f"{_hyperparameters(cfg.intermediate.train)}\n"] if inter_tasks else []
    if run.is_target:
        hyper.append(f"### Target training (`{row['target']}`)\n\n| setting | value |\n|---|---|\n"
                     f"{_hyperparameters(cfg.target.train_for(row['target']))}\n")
    what = (f"the encoder and trained `{kind}` head of the phase-3 run" if run.is_target
            else "the encoder after the phase-2 (intermediate) run; it has no task head")
    body = f"""
# {run.run_id}

Exported by xstilts from experiment `{cfg.name}`: {what} `{run.run_id}`
(seed {row['seed']}, {row['train_steps']} training steps, checkpoint of step {row['selected_step']}).

## Training phases

{chr(10).join(phases)}

## Data

Training data is English only; scores are on each language's evaluation set (XTREME's dev
splits, data directory `{cfg.data_dir}`). The English score of a phase-3 run is on the half of
English dev that did not select the checkpoint. Languages scored: {", ".join(languages) or "none"}.

## Hyperparameters

{chr(10).join(hyper)}
Seeds of the experiment: {cfg.seeds}; this model: seed {row['seed']}.

## Scores (0–100)

{_score_table(run)}
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))
