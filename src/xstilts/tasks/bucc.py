"""BUCC 2018: mining parallel sentences from comparable corpora (de/fr/ru/zh with English).

Files, as XTREME's download script lays them out (folder option ``dir``, default
``xtreme/bucc2018``): ``{xx}-en.{split}.{xx}`` and ``{xx}-en.{split}.en`` with one
``id<TAB>sentence`` per line, and ``{xx}-en.{split}.gold`` with one ``xx_id<TAB>en_id`` gold pair
per line; ``split`` is ``dev`` (BUCC's sample data) or ``test`` (BUCC's training data, whose gold
XTREME keeps hidden). Offline only ``zh-en.dev.*`` exists (8,624 zh / 13,589 en sentences, 257
gold pairs); the reader is also tested on fixtures in exactly this format.

Scoring (no training; XTREME's ``run_retrieval.py`` / ``utils_retrieve.py``): candidates are mined
with the ratio margin of Artetxe & Schwenk (2019) over k=4 nearest neighbours in both directions
(:func:`xstilts.tasks._retrieval.mine_pairs`) and F1 is computed of the candidates whose score is
at or above a threshold, the one that maximises F1 on gold pairs the scored pairs are not among:

* **dev → test** when the test split has its gold file: the threshold is chosen on the dev gold
  pairs and test is scored (``extra["threshold_method"] == "dev->test"``).
* **2-fold cross-fit on dev** otherwise (the offline case: only ``zh-en.dev.*`` with 257 gold
  pairs). Mining is done once over the full dev corpora, as it would be on real data: it uses
  no gold, and the margin's neighbourhoods are those of the whole corpus. The source sentences
  are then split into two fixed halves by their id (:func:`half_of`: the lowest bit of the
  first SHA-256 byte of the id, so the split is the same on every machine and run and does not
  depend on file order); each mined candidate and each gold pair goes to the half of its source
  id (every candidate and gold pair has exactly one source, so the halves partition both; the
  English side is shared, as it is one corpus). The threshold chosen on half A's candidates and
  gold scores half B and vice versa, so no threshold sees the gold pairs it is scored on. The
  reported F1 comes from the pooled per-source ``(correct, predicted, gold)`` rows of both scored
  halves, in source-file order (what the bootstrap CIs resample). ``extra`` records the method
  (``"2-fold cross-fit on dev (source-id hash halves)"``), both thresholds (``threshold_a``:
  chosen on A, scores B; ``threshold_b``) and the half sizes (sources, gold pairs, candidates).

For comparison, ``extra["f1_tuned_on_scored"]`` is the F1 of the scored split at the threshold
tuned on that split's own gold pairs (what XTREME's dev numbers are, and what this task reported
on dev before the cross-fit): an optimistic figure, not the metric. Identical sentences are
embedded once; a candidate whose sentence occurs under several ids is dropped, as XTREME drops
them. Option ``k`` changes the neighbourhood.

BUCC is an XTREME task only; XTREME-R replaced it with LAReQA and Mewsli-X.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xstilts.errors import ConfigError, DataError
from xstilts.tasks._retrieval import (
    Embedder,
    RetrievalResult,
    RetrievalTask,
    best_threshold,
    mine_pairs,
    mining_stats,
)
from xstilts.tasks.formats import read_tsv
from xstilts.tasks.registry import register

LANGUAGES = ("de", "fr", "ru", "zh")
SPLITS = ("dev", "test")
CROSS_FIT = "2-fold cross-fit on dev (source-id hash halves)"

Candidate = tuple[float, str, str]  # (margin score, source id, English id)


@dataclass(frozen=True)
class MiningCorpus:
    """One split of one language pair: both monolingual sides (ids, sentences) and the gold pairs."""

    split: str
    source_ids: tuple[str, ...]
    source: tuple[str, ...]
    target_ids: tuple[str, ...]
    target: tuple[str, ...]
    gold: frozenset[tuple[str, str]] | None  # None: no gold file for this split

    def head(self, limit: int | None) -> MiningCorpus:
        """The first ``limit`` sentences of each side and the gold pairs among them."""
        if not limit:
            return self
        src, trg = set(self.source_ids[:limit]), set(self.target_ids[:limit])
        gold = None if self.gold is None else frozenset((s, t) for s, t in self.gold if s in src and t in trg)
        return MiningCorpus(self.split, self.source_ids[:limit], self.source[:limit], self.target_ids[:limit],
                            self.target[:limit], gold)


def read_sentences(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(ids, sentences) of an ``id<TAB>sentence`` file; ids must be unique."""
    ids: list[str] = []
    sentences: list[str] = []
    seen: dict[str, int] = {}
    for lineno, cols in read_tsv(path, 2):
        sid = cols[0].strip()
        if not sid:
            raise DataError("empty sentence id", path, lineno)
        if sid in seen:
            raise DataError(f"sentence id {sid!r} repeated (first on line {seen[sid]})", path, lineno)
        seen[sid] = lineno
        ids.append(sid)
        sentences.append(cols[1].strip())
    return tuple(ids), tuple(sentences)


def read_gold(path: Path, source_ids: set[str], target_ids: set[str]) -> frozenset[tuple[str, str]]:
    """Gold ``xx_id<TAB>en_id`` pairs, each id checked against the sentence files."""
    pairs: set[tuple[str, str]] = set()
    for lineno, cols in read_tsv(path, 2):
        s, t = cols[0].strip(), cols[1].strip()
        if s not in source_ids:
            raise DataError(f"gold source id {s!r} is not in the source sentence file", path, lineno)
        if t not in target_ids:
            raise DataError(f"gold English id {t!r} is not in the English sentence file", path, lineno)
        pairs.add((s, t))
    return frozenset(pairs)


def unique_index(sentences: tuple[str, ...], ids: tuple[str, ...]) -> tuple[list[str], list[str | None]]:
    """Distinct sentences, and for each the id it maps to (None when several ids share the text)."""
    first: dict[str, int] = {}
    texts: list[str] = []
    owner: list[str | None] = []
    for sid, text in zip(ids, sentences, strict=True):
        if text in first:
            owner[first[text]] = None
            continue
        first[text] = len(texts)
        texts.append(text)
        owner.append(sid)
    return texts, owner


def half_of(source_id: str) -> int:
    """0 (half A) or 1 (half B): a fixed hash of the id, independent of file order, machine and run."""
    return hashlib.sha256(source_id.encode("utf-8")).digest()[0] & 1


def _f1(rows: np.ndarray) -> float:
    hits, n_pred, n_gold = rows.sum(axis=0)
    return float(200 * hits / (n_pred + n_gold)) if n_pred + n_gold else 0.0


def cross_fitted_stats(candidates: Sequence[Candidate], gold: frozenset[tuple[str, str]] | set[tuple[str, str]],
                       source_ids: Sequence[str]) -> tuple[np.ndarray, dict[str, object]]:
    """Per-source stats rows (in ``source_ids`` order) of each half scored at the other half's threshold.

    Candidates and gold pairs are split by the half of their source id (:func:`half_of`); the
    threshold that scores a half is chosen on the other half's candidates and gold alone.
    """
    halves = [[s for s in source_ids if half_of(s) == h] for h in (0, 1)]
    cands = [[c for c in candidates if half_of(c[1]) == h] for h in (0, 1)]
    golds = [{p for p in gold if half_of(p[0]) == h} for h in (0, 1)]
    thresholds = [best_threshold(cands[h], golds[h]) for h in (0, 1)]
    row_of = {s: i for i, s in enumerate(source_ids)}
    rows = np.zeros((len(source_ids), 3), dtype=np.float64)
    for h in (0, 1):
        scored = mining_stats(cands[h], golds[h], thresholds[1 - h], halves[h])
        rows[[row_of[s] for s in halves[h]]] = scored
    info: dict[str, object] = {
        "threshold_method": CROSS_FIT,
        "threshold_a": thresholds[0], "threshold_b": thresholds[1],
        "half_a": {"sources": len(halves[0]), "gold_pairs": len(golds[0]), "candidates": len(cands[0])},
        "half_b": {"sources": len(halves[1]), "gold_pairs": len(golds[1]), "candidates": len(cands[1])},
    }
    return rows, info


@register
class BUCC(RetrievalTask):
    name = "bucc"
    metric = "f1"
    languages = LANGUAGES
    options_read = ("dir", "k")
    description = ("BUCC 2018 bitext mining (F1; margin scoring; threshold from dev for test, 2-fold "
                   "cross-fit on dev without test gold; no training)")

    def _folder(self) -> Path:
        return self.option_path("dir", "xtreme/bucc2018")

    def split_files(self, split: str, language: str) -> list[Path]:
        stem = self._folder() / f"{language}-en.{split}"
        return [stem.with_name(f"{stem.name}.{language}"), stem.with_name(f"{stem.name}.en"),
                stem.with_name(f"{stem.name}.gold")]

    def files(self, split: str, language: str) -> list[Path]:
        """Dev files (always needed: they pick the threshold), plus test files that exist."""
        if split != "eval":
            return []  # no training split: scored straight after phase 2
        test = [p for p in self.split_files("test", language) if p.is_file()]
        return self.split_files("dev", language) + test

    def read_split(self, split: str, language: str) -> MiningCorpus:
        src_path, en_path, gold_path = self.split_files(split, language)
        source_ids, source = read_sentences(src_path)
        target_ids, target = read_sentences(en_path)
        gold = read_gold(gold_path, set(source_ids), set(target_ids)) if gold_path.is_file() else None
        if split == "dev" and gold is None:
            raise DataError("BUCC dev gold pairs not found (they choose the mining threshold)", gold_path)
        return MiningCorpus(split, source_ids, source, target_ids, target, gold)

    def read(self, split: str, language: str) -> list[MiningCorpus]:  # type: ignore[override]
        """``[dev]``, or ``[dev, test]`` when the test sentences exist."""
        if split != "eval":
            raise DataError(f"bucc has no {split!r} split (retrieval tasks are not trained)")
        corpora = [self.read_split("dev", language)]
        if self.split_files("test", language)[0].is_file():
            corpora.append(self.read_split("test", language))
        return corpora

    def _k(self) -> int:
        k = self.options.get("k", 4)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"bucc option 'k' must be a positive integer, not {k!r}")
        return k

    def candidates(self, embed: Embedder, corpus: MiningCorpus, language: str) -> list[Candidate]:
        """Mined (score, source id, English id) pairs of one corpus, best first."""
        src_texts, src_owner = unique_index(corpus.source, corpus.source_ids)
        trg_texts, trg_owner = unique_index(corpus.target, corpus.target_ids)
        if not src_texts or not trg_texts:
            return []
        x = embed(src_texts, language)
        y = embed(trg_texts, "en")
        mined = mine_pairs(x, y, self._k(), self.embedding_options()["backend"])
        out: list[Candidate] = []
        for score, i, j in mined:
            s, t = src_owner[i], trg_owner[j]
            if s is not None and t is not None:
                out.append((score, s, t))
        return out

    def evaluate_embeddings(self, embed: Embedder, language: str, limit: int | None = None,
                            ) -> RetrievalResult:
        corpora = [c.head(limit) for c in self.read("eval", language)]
        dev = corpora[0]
        assert dev.gold is not None
        dev_candidates = self.candidates(embed, dev, language)
        has_test_gold = len(corpora) > 1 and corpora[1].gold is not None
        if has_test_gold:
            scored = corpora[1]
            assert scored.gold is not None
            candidates = self.candidates(embed, scored, language)
            threshold = best_threshold(dev_candidates, set(dev.gold))
            rows = mining_stats(candidates, set(scored.gold), threshold, scored.source_ids)
            method: dict[str, object] = {"threshold_method": "dev->test", "threshold": threshold}
        else:
            scored, candidates = dev, dev_candidates
            assert scored.gold is not None
            rows, method = cross_fitted_stats(candidates, scored.gold, scored.source_ids)
        own = best_threshold(candidates, set(scored.gold))
        tuned_on_scored = _f1(mining_stats(candidates, set(scored.gold), own, scored.source_ids))
        hits, n_pred, n_gold = rows.sum(axis=0)
        return RetrievalResult(stats={"f1": rows}, extra={
            "scored_split": scored.split, **method,
            "precision": float(100 * hits / n_pred) if n_pred else 0.0,
            "recall": float(100 * hits / n_gold) if n_gold else 0.0,
            "candidates": len(candidates), "gold_pairs": int(n_gold),
            "source_sentences": len(scored.source_ids), "english_sentences": len(scored.target_ids),
            "f1_tuned_on_scored": tuned_on_scored,
            "f1_tuned_on_scored_note": "threshold tuned on the scored gold pairs themselves: optimistic, not the metric",
            "threshold_tuned_on_scored": own,
            "test_without_gold": bool(len(corpora) > 1 and corpora[1].gold is None),
        })
