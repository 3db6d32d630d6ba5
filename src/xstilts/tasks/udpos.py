"""UD-POS: universal part-of-speech tagging (Universal Dependencies v2.5, as XTREME prepares it).

Files: ``xtreme/udpos/train-en.tsv`` and ``dev-{lang}.tsv``, ``token<TAB>UPOS`` with a blank line
between sentences (the raw form, every token prefixed with the file's language as in ``de:Haus``, is
accepted too; the prefix is stripped only when every token of the file has it). Option ``dir``
overrides the folder.

Metrics: ``token_accuracy`` (primary: model selection and the analysis) is the share of words
tagged right, the first sub-token of each word carrying its prediction (the ``tagging`` head's
rule). Sentences longer than ``max_length`` are split into overlapping windows, so no word is cut;
with the head option ``windows = false`` words beyond ``max_length`` get no prediction and count as
wrong, never dropped. ``f1`` is what XTREME's ``evaluate.py`` and its leaderboard report for UD-POS:
seqeval's entity F1 applied to the POS sequences. seqeval reads a tag without a B-/I- prefix as
first letter = chunk tag, rest = type, so runs of one tag form one "entity" (``NOUN NOUN`` is a
single unit, ``S``-initial tags such as ``SYM`` and ``SCONJ`` are always single units); the score is
an F1 over those runs, not per word. The XTREME score uses ``f1`` for UD-POS, as the leaderboard.
That is ``evaluate.py`` run with seqeval >= 0.0.16 (xstilts requires >= 1.2.2; XTREME installs seqeval
unpinned): seqeval 0.0.12, current when XTREME was published, took the text after the last
hyphen as the type, so there ``CCONJ SCONJ`` are two units and ``X`` is not read like ``O``;
on real dev files with 10 % of tags wrong the two versions differ by 0.02-0.06 points.
Resampling sentences for ``f1``'s intervals is exact for BIO tags but, for UD-POS, approximate
where a run of ``X`` crosses a sentence boundary (at most 0.015 points off in an audit of 690
resamples of the English dev file).

The offline data has dev splits for 34 languages: kk, th, tl and yo have only test sets in
UD v2.5 and are absent.
"""

from __future__ import annotations

from xstilts.tasks._conll import XtremeTaggingTask
from xstilts.tasks.registry import register

UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
             "PUNCT", "SCONJ", "SYM", "VERB", "X")
XTREME_LANGUAGES = tuple(
    "af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te th tl tr ur vi yo zh"
    .split()
)
XTREME_R_EXTRA = tuple("lt pl ro uk wo".split())


@register
class UDPOS(XtremeTaggingTask):
    name = "udpos"
    folder = "xtreme/udpos"
    metric = "token_accuracy"
    metrics = ("token_accuracy", "f1")
    xtreme_metrics = ("f1",)  # evaluate.py's seqeval F1 over the tag sequences
    labels = UPOS_TAGS
    languages = XTREME_LANGUAGES
    languages_r = tuple(sorted(XTREME_LANGUAGES + XTREME_R_EXTRA))
    chance = 100 / len(UPOS_TAGS)
    description = "UD-POS tagging, 17 UPOS tags (word accuracy, first sub-token; seqeval F1 as XTREME)"
