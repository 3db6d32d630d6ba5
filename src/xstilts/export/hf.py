"""xstilts heads as Hugging Face ``AutoModelFor…`` models: which class, which parameter is which.

Each head kind maps onto the task class of the encoder's own architecture (``AutoModelFor…`` of
its config type, so BERT, XLM-R, ... alike):

- ``tagging`` → ``…ForTokenClassification``: dropout + ``classifier`` on every token, the same layers.
- ``span_qa`` → ``…ForQuestionAnswering``: ``qa_outputs`` to (start, end), the same layer.
- ``classification`` and ``multiple_choice``: xstilts scores the first token with dense → tanh →
  linear and never uses the encoder's pooler. RoBERTa-style classes have exactly that head
  (``classifier.dense`` / ``classifier.out_proj``). BERT-style classes score the pooler's output,
  and BERT's pooler *is* dense → tanh on the first token: the head's dense layer becomes the
  pooler (whose pretrained weights xstilts left unused and untrained) and its output layer the
  classifier. Dropout sits in other places, which only matters in training.

That reading of the classes is checked, not assumed: :func:`check_same_outputs` runs the xstilts
head and the exported model on a probe input and refuses an export whose outputs differ (e.g. an
architecture whose classification head uses another activation).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xstilts.errors import XstiltsError
from xstilts.heads import HeadKind, get_head_kind
from xstilts.tasks import Task
from xstilts.tasks.base import ClassificationExample, MultipleChoiceExample, SpanQAExample, TaggingExample

AUTO_CLASSES = {
    "tagging": "AutoModelForTokenClassification",
    "classification": "AutoModelForSequenceClassification",
    "span_qa": "AutoModelForQuestionAnswering",
    "multiple_choice": "AutoModelForMultipleChoice",
}
LABELLED = ("tagging", "classification")  # kinds whose outputs are the task's labels (config.id2label)
TOLERANCE = 1e-4  # largest |difference| of outputs allowed, relative to the largest |output| (and at least absolute)


def auto_class(kind: str) -> Any:
    import transformers

    if kind not in AUTO_CLASSES:
        raise XstiltsError(f"head kind {kind!r} has no Hugging Face model class to export to")
    return getattr(transformers, AUTO_CLASSES[kind])


def head_parameters(kind: str, head: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """The head's weights under the parameter names of ``model`` (a freshly built ``…For…`` model)."""
    names = set(model.state_dict())
    prefix = model.base_model_prefix
    if kind == "tagging":
        layers = {"classifier": "classifier"}
    elif kind == "span_qa":
        layers = {"qa_outputs": "qa_outputs"}
    elif {"classifier.dense.weight", "classifier.out_proj.weight"} <= names:  # RoBERTa-style head
        layers = {"dense": "classifier.dense", "out": "classifier.out_proj"}
    elif {f"{prefix}.pooler.dense.weight", "classifier.weight"} <= names:  # BERT-style: pooler + classifier
        layers = {"dense": f"{prefix}.pooler.dense", "out": "classifier"}
    else:
        raise XstiltsError(f"{type(model).__name__} has neither a RoBERTa-style classification head nor a pooler "
                           f"+ classifier: a {kind} head cannot be exported to it")
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in layers.items():
        for part in ("weight", "bias"):
            name = f"{theirs}.{part}"
            if name not in names or model.state_dict()[name].shape != head[f"{ours}.{part}"].shape:
                raise XstiltsError(f"{type(model).__name__} has no parameter {name} shaped like the head's "
                                   f"{ours}.{part}; cannot export the {kind} head to it")
            out[name] = head[f"{ours}.{part}"]
    return out


def build_model(config: Any, kind: str | None, encoder: dict[str, torch.Tensor],
                head: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """The HF model of ``config`` holding the encoder weights (+ the head's, mapped): ``AutoModel``
    when ``kind`` is None (a phase-2 encoder), else the kind's ``AutoModelFor…``."""
    from transformers import AutoModel

    model = (AutoModel if kind is None else auto_class(kind)).from_config(config)
    names = set(model.state_dict())
    prefix = "" if kind is None else f"{model.base_model_prefix}."
    state = {prefix + k: v for k, v in encoder.items() if prefix + k in names}  # e.g. a pooler the class lacks
    if kind is not None:
        state |= head_parameters(kind, head or {}, model)
    missing = sorted(names - set(state))
    if missing:
        raise XstiltsError(f"the checkpoint does not fill {type(model).__name__}: {len(missing)} parameter(s) "
                           f"missing, e.g. {missing[:3]}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def hf_logits(model: nn.Module, kind: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The exported model's outputs on an xstilts batch, shaped as the xstilts head's logits.

    Only ids and attention mask go in, as in xstilts (which never passes segment ids).
    """
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    if kind == "span_qa":
        return torch.stack([out.start_logits, out.end_logits], dim=-1)
    logits = out.logits
    if kind == "multiple_choice":  # padded choices score -inf-like, as in xstilts
        logits = logits.masked_fill(batch["choice_mask"] == 0, torch.finfo(logits.dtype).min)
    return logits


def probe_example(kind: str, labels: list[str]) -> Any:
    """A small input of each kind, to compare the exported model with the xstilts head on."""
    if kind == "tagging":
        words = ("Angela", "Merkel", "besuchte", "Paris", "und", "New", "York", ".")
        return TaggingExample(words, (labels[0],) * len(words))
    if kind == "classification":
        return ClassificationExample("Ein Mann spielt Gitarre.", "Jemand macht Musik.", labels[0])
    if kind == "span_qa":
        return SpanQAExample("probe", "Wo liegt Paris?", "Paris liegt in Frankreich, an der Seine.", ())
    return MultipleChoiceExample("Ein Mann spielt Gitarre.", "Was tut er?", ("Er singt.", "Er schläft.", "Musik"), 0)


def check_same_outputs(model: nn.Module, kind: str, task: Task, labels: list[str], encoder: nn.Module,
                       head: nn.Module, tokenizer: Any, max_length: int) -> float:
    """Largest |difference| between the exported model's and the xstilts head's outputs on a probe;
    an XstiltsError when they differ beyond rounding."""
    head_kind: HeadKind = get_head_kind(kind)
    features = head_kind.encode(task, [probe_example(kind, labels)], tokenizer, max_length)
    batch = head_kind.collate(features, tokenizer.pad_token_id)
    encoder.eval()
    head.eval()
    with torch.inference_mode():
        ours = head(encoder, batch).float()
        theirs = hf_logits(model, kind, batch).float()
    if ours.shape != theirs.shape:
        raise XstiltsError(f"{type(model).__name__} outputs {tuple(theirs.shape)}, the xstilts head "
                           f"{tuple(ours.shape)}: not the same model")
    diff = float((ours - theirs).abs().max())
    if not diff <= TOLERANCE * max(1.0, float(ours.abs().max())):
        raise XstiltsError(f"{type(model).__name__} does not reproduce the xstilts {kind} head (outputs differ "
                           f"by up to {diff:.3g}): its head has other layers; not exported")
    return diff
