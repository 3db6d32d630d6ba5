"""How the analysed runs were computed: precision and thread counts, read from each run's record.

Why: two runs of one config and seed round alike only at the same precision and on the same thread
counts (``docs/reliability.md``, "Determinism"). Auto threads change a run's count with the
machine's load, and give the last of several runs at once every core when its sibling ends, so a
rerun of a grid can differ from the first by rounding in a few runs. The report says which runs
that was, so a reader comparing two reports knows why a score moved; a target whose settings ran
at different precisions is a warning, since the comparison then mixes the effect with rounding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from xstilts.config import precision_words
from xstilts.store import run_extra


@dataclass(frozen=True)
class RunComputation:
    """One finished run's precision and its thread counts in the order it used them."""

    run_id: str
    target: str | None
    intermediate: str | None
    precision: str | None
    threads: tuple[int, ...]  # the count it started on, then each count it changed to
    changes: tuple[tuple[int, int], ...]  # (step, new count) for each change while training


def run_computation(row: Mapping[str, Any]) -> RunComputation | None:
    """A store row's computation, or None where the run kept no speed record (older stores, tools)."""
    speed = run_extra(row).get("speed")
    if not isinstance(speed, dict):
        return None
    precision = speed.get("precision")
    counts: list[int] = []
    changes: list[tuple[int, int]] = []
    if isinstance(speed.get("threads"), int):
        counts.append(speed["threads"])
    for entry in speed.get("thread_log") or []:
        step, threads = int(entry[0]), entry[1]
        if not isinstance(threads, int):
            continue
        if not counts:
            counts.append(threads)
        elif threads != counts[-1]:
            counts.append(threads)
            changes.append((step, threads))
    return RunComputation(
        run_id=str(row["run_id"]),
        target=row.get("target"),
        intermediate=row.get("intermediate"),
        precision=precision_words(precision) if isinstance(precision, str) and precision else None,
        threads=tuple(counts),
        changes=tuple(changes),
    )


def _counted(counter: Counter) -> str:
    return ", ".join(f"{name} in {n}" for name, n in counter.most_common())


def computation_notes(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(notes, warnings) on how ``rows`` (store rows of the analysed runs) were computed.

    Notes: the precisions used, and which runs changed their thread count while training (with the
    step). Warnings: a target whose settings ran at different precisions.
    """
    runs = [r for r in (run_computation(row) for row in rows) if r is not None]
    if not runs:
        return [], []
    notes: list[str] = []
    precisions = Counter(r.precision or "not recorded" for r in runs)
    if len(precisions) == 1:
        notes.append(f"Precision: {next(iter(precisions))} in all {len(runs)} runs with a computation record.")
    else:
        notes.append(f"Precision: {_counted(precisions)} of the {len(runs)} runs with a computation record.")
    changed = [r for r in runs if r.changes]
    kept = Counter(r.threads[0] if r.threads else 0 for r in runs if not r.changes)  # 0: no count recorded
    kept_text = ", ".join(
        f"{n} on {count} thread{'s' if count != 1 else ''}" if count else f"{n} with no count recorded"
        for count, n in sorted(kept.items())
    )
    if not changed:
        notes.append(f"Threads: every run kept one thread count while training ({kept_text}).")
    else:
        listed = "; ".join(
            f"{r.run_id} ({r.threads[0]}" + "".join(f" → {t} after step {s}" for s, t in r.changes) + ")"
            for r in changed
        )
        notes.append(
            f"Threads: {len(changed)} of {len(runs)} runs changed their thread count while training "
            f"(auto threads: the machine's load, or a sibling run ending): {listed}"
            + (f"; the rest kept one ({kept_text})" if kept_text else "")
            + ". Another thread count rounds otherwise, so a rerun of these runs may differ slightly in "
            "their scores; a fixed runtime.threads reproduces every run bit for bit "
            "(docs/reliability.md, 'Determinism')."
        )
    warnings: list[str] = []
    by_setting: dict[str, dict[str, set[str]]] = {}
    for r in runs:
        if r.target and r.precision:
            by_setting.setdefault(r.target, {}).setdefault(r.intermediate or "none", set()).add(r.precision)
    for target, settings in sorted(by_setting.items()):
        used = {p for ps in settings.values() for p in ps}
        if len(used) > 1:
            shown = "; ".join(f"{s}: {', '.join(sorted(ps))}" for s, ps in sorted(settings.items()))
            warnings.append(
                f"{target}: its runs used more than one precision ({shown}); a precision changes "
                "rounding and the checkpoints chosen, so the settings' difference is not theirs alone"
            )
    return notes, warnings
