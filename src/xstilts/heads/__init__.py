"""Head kinds by name: each task names the kind of output layer it needs."""

from __future__ import annotations

import importlib

from xstilts.heads.base import Evaluation, Feature, HeadKind

_MODULES = {
    "tagging": ("xstilts.heads.tagging", "Tagging"),
    "classification": ("xstilts.heads.classification", "Classification"),
    "span_qa": ("xstilts.heads.span_qa", "SpanQA"),
    "multiple_choice": ("xstilts.heads.multiple_choice", "MultipleChoice"),
}


def get_head_kind(kind: str) -> HeadKind:
    if kind not in _MODULES:
        raise ValueError(f"no trainable head of kind {kind!r}")
    module, cls = _MODULES[kind]
    return getattr(importlib.import_module(module), cls)()


__all__ = ["Evaluation", "Feature", "HeadKind", "get_head_kind"]
