"""SQuAD 2.0: SQuAD v1.1 plus unanswerable questions (``is_impossible``), scored as the v2.0
script does (an empty prediction is right for an unanswerable question).

Files ``train-v2.0.json`` / ``dev-v2.0.json`` in ``english/squad`` (options as in
:mod:`xstilts.tasks.squad`, including the held-out-articles stand-in when train is missing).
Unanswerable questions train the span head towards the ``<s>`` position, and at prediction
time the empty answer wins when its score beats the best span.
"""

from __future__ import annotations

from xstilts.tasks.registry import register
from xstilts.tasks.squad import SQuADBase


@register
class SQuADv2(SQuADBase):
    name = "squad_v2"
    unanswerable = True
    train_names = ("train-v2.0.json",)
    eval_names = ("dev-v2.0.json",)
    description = "SQuAD 2.0 (F1/EM with unanswerable questions)"
