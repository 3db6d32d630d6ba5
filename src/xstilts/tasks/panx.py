"""PAN-X (WikiANN) named entity recognition, as XTREME prepares it.

Files: ``xtreme/panx/train-en.tsv`` and ``dev-{lang}.tsv``, ``token<TAB>tag`` with a blank line
between sentences. The raw form of XTREME's download, every token prefixed with the file's language
(``de:Berlin`` in ``dev-de.tsv``), is accepted too: the prefix is stripped only when every token of
the file carries it, so real tokens such as ``bar:24`` are kept (see ``formats.read_conll``).

Scoring: entity-level F1 (seqeval) over every word; sentences longer than ``max_length`` are split
into overlapping windows (options ``stride``, ``windows``: see ``xstilts.heads.tagging``).
"""

from __future__ import annotations

from xstilts.tasks._conll import XtremeTaggingTask
from xstilts.tasks.registry import register

XTREME_LANGUAGES = tuple(
    "af ar bg bn de el en es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr ms my nl pt ru sw "
    "ta te th tl tr ur vi yo zh".split()
)
XTREME_R_EXTRA = tuple("az gu lt pa pl qu ro uk".split())


@register
class PanX(XtremeTaggingTask):
    name = "panx"
    folder = "xtreme/panx"
    metric = "f1"
    labels = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
    languages = XTREME_LANGUAGES
    languages_r = tuple(sorted(XTREME_LANGUAGES + XTREME_R_EXTRA))
    description = "PAN-X / WikiANN NER (entity-level F1, seqeval)"
