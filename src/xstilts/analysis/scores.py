"""One target's final scores as arrays, with the same test-item resamples applied to every run.

Why arrays: every statistic of the analysis (a language's score, the mean over zero-shot
languages, the transfer ratio, ...) is a function of one run's scores across languages, and its
uncertainty comes from recomputing it on item resamples. Holding ``values[run, language]`` and
``reps[run, language, replicate]`` lets each statistic be one vectorised function.

Resampling respects the structure of the test sets:

* every run of a (target, language) sees the same item draw (pairing across seeds and arms);
* in a **parallel** test set (XNLI, PAWS-X, XQuAD: row i is the same item in every language) one
  draw of item indices is shared by every language, so averages over languages are not treated as
  if their items were independent;
* corpus metrics are re-aggregated exactly from per-example ``(hits, n_pred, n_gold)`` rows.

Split-half replication (:meth:`TargetScores.half`) keeps only the items of one replication half,
by zeroing the other rows (see :mod:`xstilts.evaluation.halves`) and recomputing everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xstilts.analysis.bootstrap import aggregate_totals, rng_for
from xstilts.analysis.data import ExperimentData, chance_of, common_length, language_order
from xstilts.evaluation.halves import keep_rows, replication_mask

_CHUNK_CELLS = 2_000_000


def draw_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` multiplicities of each item in each bootstrap resample."""
    idx = rng.integers(0, n, size=(n_boot, n))
    idx += (np.arange(n_boot, dtype=idx.dtype) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def resample_scores(metric: str, stats: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(runs, n_boot)`` corpus scores of aligned per-example rows under shared item resamples.

    The draws depend only on ``rng``'s stream and ``n``: two calls with equal streams and equal
    ``n`` resample the same items, which is how parallel languages share a draw.
    """
    n, n_runs = len(stats[0]), len(stats)
    stacked = np.concatenate([np.asarray(s, dtype=np.float64) for s in stats], axis=1)  # (n, 3R)
    out = np.empty((n_runs, n_boot))
    chunk = max(1, min(n_boot, _CHUNK_CELLS // max(n, 1)))
    for start in range(0, n_boot, chunk):
        c = min(chunk, n_boot - start)
        totals = draw_counts(n, c, rng) @ stacked  # (c, 3R)
        out[:, start : start + c] = aggregate_totals(metric, totals.reshape(c * n_runs, 3)).reshape(c, n_runs).T
    return out


@dataclass
class TargetScores:
    """Final scores of one target's runs; ``reps`` vary with the items where stats exist."""

    target: str
    metric: str
    chance: float
    parallel: bool
    source: str
    languages: list[str]  # source first, then alphabetical
    runs: list[tuple[str, int]]  # (intermediate, seed)
    values: np.ndarray  # (runs, languages); NaN where a run has no score
    reps: np.ndarray  # (runs, languages, n_boot); equal to values where has_stats is False
    has_stats: np.ndarray  # (languages,) bool: every run of the language has aligned rows
    n_examples: dict[str, int]
    stats: dict[tuple[int, int], np.ndarray]  # (run index, language index) -> rows

    def arm(self, intermediate: str) -> list[int]:
        """Run indices of one setting, in seed order."""
        return [k for k, (inter, _) in enumerate(self.runs) if inter == intermediate]

    def seeds(self, intermediate: str) -> list[int]:
        return [s for inter, s in self.runs if inter == intermediate]

    def half(self, which: int, n_boot: int, seed: int) -> TargetScores:
        """The same runs scored on replication half A (``which=0``) or B (``1``) of every test set."""
        stats = {}
        for key, rows in self.stats.items():
            mask = replication_mask(len(rows))
            stats[key] = keep_rows(rows, mask if which == 0 else ~mask)
        return _build(self.target, self.metric, self.chance, self.parallel, self.source, self.languages,
                      self.runs, self.values, stats, n_boot, seed, tag=("half", which))


def _build(target: str, metric: str, chance: float, parallel: bool, source: str, languages: list[str],
           runs: list[tuple[str, int]], values: np.ndarray, stats: dict[tuple[int, int], np.ndarray],
           n_boot: int, seed: int, tag: tuple = (), warn: list[str] | None = None) -> TargetScores:
    values = values.copy()
    reps = np.repeat(values[:, :, None], n_boot, axis=2)
    has = np.zeros(len(languages), dtype=bool)
    n_examples: dict[str, int] = {}
    kept: dict[tuple[int, int], np.ndarray] = {}
    lengths = {j: common_length([stats[(r, j)] for r in range(len(runs)) if (r, j) in stats]) for j in
               range(len(languages))}
    shared = parallel and len({n for n in lengths.values() if n}) == 1
    if parallel and not shared and warn is not None and any(lengths.values()):
        warn.append(f"{target}: languages have different numbers of items, so items are resampled per language "
                    "(the test set is parallel only when every language has the same rows)")
    for j, lang in enumerate(languages):
        n = lengths[j]
        present = [r for r in range(len(runs)) if np.isfinite(values[r, j])]
        rows = {r: stats.get((r, j)) for r in present}
        if not n or not present or any(a is None or len(a) != n for a in rows.values()):
            continue
        stream = rng_for(seed, "items", target, *tag) if shared else rng_for(seed, "items", target, lang, *tag)
        mat = resample_scores(metric, [rows[r] for r in present], n_boot, stream)
        for pos, r in enumerate(present):
            reps[r, j] = mat[pos]
            values[r, j] = float(aggregate_totals(metric, rows[r].sum(axis=0))[0])
            kept[(r, j)] = rows[r]
        has[j] = True
        n_examples[lang] = int(n)
    return TargetScores(target, metric, chance, parallel, source, languages, runs, values, reps, has, n_examples,
                        kept)


def _task_is_parallel(target: str) -> bool:
    """For stores written before the ``parallel`` meta entry: ask the task registry."""
    from xstilts.errors import XstiltsError
    from xstilts.tasks import get_task

    try:
        return bool(get_task(target).parallel)
    except (XstiltsError, KeyError, ValueError):
        return False


def target_scores(data: ExperimentData, target: str, n_boot: int, seed: int,
                  parallel: bool | None = None) -> TargetScores:
    """Arrays of one target's finished runs, resampled where per-example statistics exist."""
    fin = data.finals[data.finals["target"] == target]
    languages = language_order(fin["language"], data.source)
    runs = sorted({(str(i), int(s)) for i, s in zip(fin["intermediate"], fin["seed"], strict=True)},
                  key=lambda r: (r[0] != data.baseline, r[0], r[1]))
    r_index = {r: k for k, r in enumerate(runs)}
    l_index = {lang: j for j, lang in enumerate(languages)}
    values = np.full((len(runs), len(languages)), np.nan)
    stats: dict[tuple[int, int], np.ndarray] = {}
    for inter, s, lang, value, run_id in zip(fin["intermediate"], fin["seed"], fin["language"], fin["value"],
                                             fin["run_id"], strict=True):
        key = (r_index[(str(inter), int(s))], l_index[lang])
        values[key] = float(value)
        rows = data.example_stats.get(run_id, {}).get(lang)
        if rows is not None:
            stats[key] = rows
    for j, lang in enumerate(languages):
        arrays = [stats[(r, j)] for r in range(len(runs)) if (r, j) in stats]
        n = common_length(arrays)
        odd = sum(1 for a in arrays if len(a) != n)
        if odd:
            data.warnings.append(f"{target}/{lang}: per-example stats of {odd} run(s) have a different number of "
                                 "examples; this language is not resampled over items")
    if parallel is None:
        parallel = target in set(data.parallel) if data.parallel is not None else _task_is_parallel(target)
    return _build(target, data.metrics[target], chance_of(target, data.chance), parallel, data.source, languages,
                runs, values, stats, n_boot, seed, warn=data.warnings)
