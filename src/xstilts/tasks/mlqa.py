"""MLQA: extractive QA over parallel Wikipedia paragraphs in 7 languages.

Files (MLQA v1 layout): ``xtreme/mlqa/MLQA_V1/{dev,test}/{split}-context-{c}-question-{q}.json``,
SQuAD v1.1 JSON. English training data = SQuAD v1.1, as for XQuAD (real ``train-v1.1.json`` when
present, else the same stand-in: SQuAD v1.1 dev minus XQuAD's paragraphs, see
:mod:`xstilts.tasks.xquad`; MLQA's contexts are other Wikipedia articles, so no MLQA context is in
that training set either).

Languages: XTREME scores the 7 matching pairs (context and question in the same language), so
``en``/``de``/... mean ``context-de-question-de``. MLQA's generalised cross-lingual transfer
grid (G-XLT: context in one language, question in another) is available as pair codes
``{context}-{question}`` (e.g. ``de-en``; :data:`CROSS_PAIRS` lists all 42) in the target's
per-task language list, e.g. ``[target.languages] mlqa = ["en", "de", "de-en", "en-de"]``; the
matching and the cross scores are then reported side by side. Offline only the matching dev
pairs exist. Option ``split`` picks ``dev`` (default: XTREME's test labels are not distributed)
or ``test``. Answers are scored as MLQA's official script scores them, normalised by the context
language (:func:`xstilts.metrics.squad.normalize_answer`); option ``normalization = "squad"``
uses SQuAD v1.1's English rules for every language instead.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from xstilts.errors import ConfigError
from xstilts.tasks.base import SpanQAExample, Task
from xstilts.tasks.registry import register
from xstilts.tasks.xquad import XQuAD, read_labelled_squad

LANGUAGES = ("ar", "de", "en", "es", "hi", "vi", "zh")
CROSS_PAIRS = tuple(f"{c}-{q}" for c in LANGUAGES for q in LANGUAGES if c != q)


def context_question(language: str) -> tuple[str, str]:
    """``de`` -> (de, de); ``de-en`` -> (context de, question en)."""
    context, sep, question = language.partition("-")
    return (context, question) if sep else (language, language)


@register
class MLQA(Task):
    name = "mlqa"
    head = "span_qa"
    options_read = ("dir", "split", "normalization", "train_file", "squad_dir", "xquad_dir")
    metric = "squad_f1"
    metrics = ("squad_f1", "exact_match")
    xtreme_metrics = ("squad_f1", "exact_match")  # the leaderboard's (EM + F1) / 2
    languages = LANGUAGES
    extra_eval_languages = CROSS_PAIRS  # G-XLT pairs, listed by `xstilts tasks` when their files exist
    description = "MLQA (F1/EM; matching-language pairs, cross pairs as 'ctx-q'); train = SQuAD v1.1"

    def _squad(self) -> XQuAD:
        """Training data is XQuAD's (SQuAD v1.1 or its stand-in), with the same options."""
        keys = ("train_file", "squad_dir")
        opts = {k: v for k, v in self.options.items() if k in keys}
        if "xquad_dir" in self.options:
            opts["dir"] = self.options["xquad_dir"]
        return self.part(XQuAD, opts)  # type: ignore[return-value]

    def _split(self) -> str:
        split = self.options.get("split", "dev")
        if split not in ("dev", "test"):
            raise ConfigError(f"mlqa option 'split' must be 'dev' or 'test', not {split!r}")
        return split

    def files(self, split: str, language: str) -> list[Path]:
        if split == "train":
            return self._squad().files("train", "en")
        folder = self.option_path("dir", "xtreme/mlqa/MLQA_V1")
        context, question = context_question(language)
        name = self._split()
        return [folder / name / f"{name}-context-{context}-question-{question}.json"]

    def read(self, split: str, language: str) -> list[SpanQAExample]:
        if split == "train":
            return self._squad().read("train", "en")
        examples = read_labelled_squad(self.files(split, language)[0])
        normalization = self.options.get("normalization", "mlqa")
        if normalization == "squad":
            return examples
        if normalization != "mlqa":
            raise ConfigError(f"mlqa option 'normalization' must be 'mlqa' or 'squad', not {normalization!r}")
        # as MLQA's official script scores it: answers normalised by the context (answer) language
        answer_language = context_question(language)[0]
        return [replace(ex, answer_language=answer_language) for ex in examples]
