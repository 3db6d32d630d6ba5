"""Tatoeba: retrieving the English translation of a sentence, scored with no task training.

Two file layouts are read (option ``dir`` overrides the folder, default ``xtreme/tatoeba``):

* LASER's original ``tatoeba.{xxx}-eng.{xxx}`` / ``tatoeba.{xxx}-eng.eng`` (ISO 639-3 codes):
  one sentence per line, line i of one file translating line i of the other.
* XTREME's preprocessed ``{xx}-en.{xx}`` / ``{xx}-en.en``. XTREME's ``utils_preprocess.py``
  **sorts the English file alphabetically**, so line i no longer translates line i; the
  alignment survives only in XTREME's gold label files ``test-{xx}.tsv`` (line j: the 0-based
  line of the xx file that translates English line j), which XTREME does not distribute.
  Give them with option ``labels_dir``. The offline copy here has sorted English files and no
  labels: reading it is a DataError that says why, instead of a ~0.1 % score against a wrong
  gold alignment.

Option ``gold``: ``auto`` (labels if found, LASER files if found, else the line alignment unless
the English side is sorted), ``labels`` or ``aligned`` (trust line i ↔ line i).

Metrics: ``accuracy`` is xx→en (each xx sentence retrieves its nearest English sentence by
cosine; a hit when it is its translation), the direction the XTREME paper and LASER describe.
``accuracy_en_xx`` is the reverse search, which is what XTREME's released
``evaluate_retrieval.py`` computes (it indexes the xx side and queries it with English).
"""

from __future__ import annotations

from pathlib import Path

from xstilts.errors import ConfigError, DataError
from xstilts.tasks._retrieval import (
    Embedder,
    RetrievalResult,
    RetrievalTask,
    aligned_hit_stats,
    nearest_accuracy_stats,
    nearest_indices,
)
from xstilts.tasks.base import SentencePair
from xstilts.tasks.formats import iter_lines
from xstilts.tasks.registry import register

XTREME_LANGUAGES = tuple(
    "af ar bg bn de el es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr nl pt ru sw ta te th tl tr "
    "ur vi zh".split()
)
XTREME_R_EXTRA = tuple("az lt pl ro uk".split())
#: LASER's file codes (ISO 639-3) for XTREME's languages, as XTREME's preprocessing maps them.
ISO3 = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa", "et": "est",
    "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar",
    "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl",
    "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn", "az": "aze", "lt": "lit", "pl": "pol", "uk": "ukr",
    "ro": "ron",
}


def read_lines(path: Path) -> list[str]:
    """Every line of a one-sentence-per-line file (blank lines are kept: they hold a position)."""
    return [line for _, line in iter_lines(path)]


def read_gold_labels(path: Path, n: int) -> list[int]:
    """XTREME's ``test-{xx}.tsv``: a permutation of 0..n-1, one index per line."""
    out: list[int] = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            value = int(line.strip())
        except ValueError:
            raise DataError(f"expected a line index, found {line.strip()!r}", path, lineno) from None
        if not 0 <= value < n:
            raise DataError(f"index {value} out of range for {n} sentences", path, lineno)
        out.append(value)
    if len(out) != n or len(set(out)) != n:
        raise DataError(f"expected each of the {n} line indices once, found {len(out)} lines "
                        f"({len(set(out))} distinct)", path)
    return out


@register
class Tatoeba(RetrievalTask):
    name = "tatoeba"
    metric = "accuracy"
    metrics = ("accuracy", "accuracy_en_xx")
    # XTREME's leaderboard scores predictions made as its evaluate_retrieval.py makes them: faiss
    # indexes the xx side and each English sentence queries it (utils_retrieve.similarity_search)
    xtreme_metrics = ("accuracy_en_xx",)
    languages = XTREME_LANGUAGES
    languages_r = tuple(sorted(XTREME_LANGUAGES + XTREME_R_EXTRA))
    options_read = ("dir", "labels_dir", "gold")
    description = "Tatoeba retrieval xx->en by cosine of mean-pooled embeddings (accuracy; no training)"

    def folder(self) -> Path:
        return self.option_path("dir", "xtreme/tatoeba")

    def _gold_mode(self) -> str:
        mode = self.options.get("gold", "auto")
        if mode not in ("auto", "labels", "aligned"):
            raise ConfigError(f"tatoeba option 'gold' must be auto, labels or aligned, not {mode!r}")
        return mode

    def _layout(self, language: str) -> tuple[str, list[Path]]:
        """('laser' | 'labels' | 'xtreme', files) for one language."""
        folder = self.folder()
        code = ISO3.get(language, language)
        laser = [folder / f"tatoeba.{code}-eng.{code}", folder / f"tatoeba.{code}-eng.eng"]
        xtreme = [folder / f"{language}-en.{language}", folder / f"{language}-en.en"]
        labels = Path(self.options.get("labels_dir", folder)) / f"test-{language}.tsv"
        mode = self._gold_mode()
        if mode == "labels" or (mode == "auto" and labels.is_file()):
            return "labels", [*xtreme, labels]
        if mode == "auto" and all(p.is_file() for p in laser):
            return "laser", laser
        return "xtreme", xtreme

    def sentence_languages(self) -> list[str]:
        """Every language with a sentence file in the task's folder (either layout), sorted."""
        folder = self.folder()
        code_of = {code: lang for lang, code in ISO3.items()}
        langs = {p.suffix[1:] for p in folder.glob("*-en.*") if p.suffix != ".en"}
        langs |= {code_of.get(p.suffix[1:], p.suffix[1:]) for p in folder.glob("tatoeba.*-eng.*") if p.suffix != ".eng"}
        return sorted(langs)

    def sentences(self, language: str) -> list[str]:
        """Every line of one language's non-English side, in file order (alignment plays no part)."""
        return read_lines(self._layout(language)[1][0])

    def files(self, split: str, language: str) -> list[Path]:
        if split != "eval":
            return []  # no training split: scored straight after phase 2
        return self._layout(language)[1]

    def read(self, split: str, language: str) -> list[SentencePair]:
        """Pairs in the order of the xx file: ``source`` the xx sentence, ``target`` its translation."""
        if split != "eval":
            raise DataError(f"tatoeba has no {split!r} split (retrieval tasks are not trained)")
        layout, paths = self._layout(language)
        src, en = read_lines(paths[0]), read_lines(paths[1])
        if len(src) != len(en):
            shorter = paths[0] if len(src) < len(en) else paths[1]
            raise DataError(f"{len(src)} lines in {paths[0].name} but {len(en)} in {paths[1].name}; "
                            "the two sides must have one line per pair", shorter, min(len(src), len(en)) + 1)
        if layout == "labels":
            source_of = read_gold_labels(paths[2], len(src))
            translation = [""] * len(src)
            for j, i in enumerate(source_of):
                translation[i] = en[j]
            en = translation
        elif layout == "xtreme" and self._gold_mode() == "auto" and len(en) > 2 and en == sorted(en):
            raise DataError(
                "the English side is sorted (XTREME's preprocessing), so line i does not translate line i "
                "and the gold alignment is unknown; give XTREME's gold labels (option labels_dir with "
                f"test-{language}.tsv), LASER's original tatoeba.{ISO3.get(language, language)}-eng.* files, "
                "or gold = \"aligned\" if these files really are line-aligned", paths[1])
        return [SentencePair(s, e) for s, e in zip(src, en, strict=True)]

    def evaluate_embeddings(self, embed: Embedder, language: str, limit: int | None = None,
                            ) -> RetrievalResult:
        pairs = self.load("eval", language, limit)
        backend = self.embedding_options()["backend"]
        x = embed([p.source for p in pairs], language)
        y = embed([p.target for p in pairs], "en")
        en_xx = nearest_indices(y, x, backend)  # XTREME's submission holds this direction
        return RetrievalResult(
            stats={"accuracy": nearest_accuracy_stats(x, y, backend), "accuracy_en_xx": aligned_hit_stats(en_xx)},
            extra={"pairs": len(pairs)},
            predictions=[int(i) for i in en_xx],
        )
