"""``xstilts predict``: tag or classify new text, in any language, with an exported model.

The text is encoded by the same head code that trained and scored the run (tagging windows for
long sentences, first sub-token of each word, span-QA windows) and scored by the exported
Hugging Face model, so a sentence gets the tags xstilts' own evaluation would give it.

Input, one item per line (tab-separated fields):

- token classification: a sentence, words separated by spaces → one tag per word;
- sequence classification: a sentence, or ``first<TAB>second`` for a pair → the label;
- question answering: ``question<TAB>context`` → the answer text (empty: none found);
- multiple choice: ``context<TAB>question<TAB>choice 1<TAB>choice 2…`` (question may be empty)
  → the index (from 0) of the best choice, a tab, and its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xstilts.errors import DataError, XstiltsError
from xstilts.export.hf import LABELLED, hf_logits
from xstilts.heads import get_head_kind
from xstilts.tasks import get_task
from xstilts.tasks.base import ClassificationExample, MultipleChoiceExample, SpanQAExample, TaggingExample
from xstilts.tasks.formats import decode_utf8

BATCH_SIZE = 32


def read_items(path: Path, kind: str, labels: Sequence[str] = ("",)) -> list[Any]:
    """Examples of ``kind`` from the lines of ``path``; their gold labels are ``labels[0]``, a
    placeholder the encoders need and nothing reads."""
    gold = labels[0]
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read input ({exc})", path) from None
    lines = decode_utf8(path, raw, strip_bom=False).splitlines()  # bad UTF-8: an error naming its line
    items = []
    for n, line in enumerate(lines, 1):
        fields = line.split("\t")
        if not line.strip():
            raise DataError("empty line: one input per line", path, n)
        if kind == "tagging":
            items.append(TaggingExample(tuple(line.split()), (gold,) * len(line.split())))
        elif kind == "classification":
            if len(fields) > 2:
                raise DataError(f"{len(fields)} tab-separated fields; expected a sentence or a pair", path, n)
            items.append(ClassificationExample(fields[0], fields[1] if len(fields) == 2 else None, gold))
        elif kind == "span_qa":
            if len(fields) != 2:
                raise DataError(f"{len(fields)} tab-separated fields; expected question<TAB>context", path, n)
            items.append(SpanQAExample(str(n), fields[0], fields[1], ()))
        else:
            if len(fields) < 4:
                raise DataError(f"{len(fields)} tab-separated fields; expected context, question and at least two "
                                "choices", path, n)
            items.append(MultipleChoiceExample(fields[0], fields[1] or None, tuple(fields[2:]), 0))
    return items


def load_exported(model_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, the ``xstilts`` entry of config.json) of an export."""
    from transformers import AutoConfig, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()  # a loading bar per call would interleave with predictions on a terminal

    from xstilts.export import EXPORT_KEY
    from xstilts.export.hf import auto_class

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise XstiltsError("not a model directory (no config.json)", model_dir)
    try:
        config = AutoConfig.from_pretrained(model_dir)
        meta = getattr(config, EXPORT_KEY, None)
        if not isinstance(meta, dict):
            raise XstiltsError("not an xstilts export of a phase-3 run (config.json has no 'xstilts' entry); "
                               "an encoder-only export has no task to predict", model_dir / "config.json")
        model = auto_class(meta["kind"]).from_pretrained(model_dir).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise XstiltsError(f"cannot load the model ({str(exc).strip().splitlines()[0]})", model_dir) from None
    return model, tokenizer, meta


def predict_items(model: Any, tokenizer: Any, meta: dict[str, Any], items: Sequence[Any]) -> list[str]:
    """One output line per item (see the module docstring)."""
    kind, task = meta["kind"], get_task(meta["task"], meta["task_options"])
    if kind in LABELLED and [model.config.id2label[i] for i in range(model.config.num_labels)] != list(task.labels):
        raise XstiltsError(f"the model's labels (config.id2label) are not task {task.name}'s: {task.labels}")
    head_kind = get_head_kind(kind)
    features = []
    for i, item in enumerate(items):  # one at a time: a classification file may mix sentences and pairs
        for feature in head_kind.encode(task, [item], tokenizer, int(meta["max_length"])):
            features.append(feature | {"example_index": i})
    outputs = _outputs(model, head_kind, kind, features, tokenizer.pad_token_id)
    if kind == "tagging":
        return [" ".join(tags) for tags in head_kind.predict_tags(task, features, outputs, len(items))]
    if kind == "classification":
        return [task.labels[int(np.argmax(o))] for o in outputs]
    if kind == "span_qa":
        from xstilts.heads.span_qa import predict_answers

        return predict_answers(items, features, outputs, int(task.options.get("n_best", 20)),
                               int(task.options.get("max_answer_length", 30)),
                               bool(getattr(task, "unanswerable", False)))
    best = [int(np.argmax(o)) for o in outputs]
    return [f"{b}\t{item.choices[b]}" for b, item in zip(best, items, strict=True)]


def _outputs(model: Any, head_kind: Any, kind: str, features: Sequence[dict[str, Any]], pad_id: int) -> list[np.ndarray]:
    """Per-feature outputs of the exported model, in feature order (batches of similar length)."""
    order = sorted(range(len(features)), key=lambda i: features[i]["length"])
    out: list[np.ndarray] = [np.empty(0)] * len(features)
    with torch.inference_mode():
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start: start + BATCH_SIZE]
            batch = head_kind.collate([features[i] for i in idx], pad_id)
            for i, o in zip(idx, head_kind.outputs(hf_logits(model, kind, batch), batch), strict=True):
                out[i] = o
    return out


def predict_file(model_dir: Path, path: Path) -> list[str]:
    """``xstilts predict MODEL_DIR FILE``: one output line per input line."""
    model, tokenizer, meta = load_exported(model_dir)
    task = get_task(meta["task"], meta["task_options"])
    return predict_items(model, tokenizer, meta, read_items(path, meta["kind"], task.labels or ("",)))
