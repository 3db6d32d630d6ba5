"""Changed data or weights never silently reuse finished results (data and model identity).

Each test runs a small real study through the CLI on its own copy of the mini data, then changes
what a finished run read: XNLI's German labels (an evaluation file), SICK's labels (a phase-2
training file) or the pretrained weights. ``xstilts run`` must name every stale run and the file,
keep it unless ``--rerun-stale`` is given, and then recompute it (and the target runs that start
from a recomputed phase-2 run); ``results`` and ``report`` mark stale rows. A store written before
identities were recorded must resume with every run done and none stale.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import sqlite3
from pathlib import Path

from _reliability import RUNTIME, write_experiment
from typer.testing import CliRunner, Result

from xstilts.cli import app

ROTATE = {"entailment": "neutral", "neutral": "contradiction", "contradiction": "entailment"}


def _study(tmp_path: Path, mini_data: Path, model: Path, settings: list[str]) -> tuple[Path, Path, Path]:
    """(config, output dir, data dir) of an XNLI-only study on a private copy of the mini data."""
    data, out = tmp_path / "data", tmp_path / "exp"
    shutil.copytree(mini_data, data)
    config = write_experiment(
        tmp_path / "study.toml", model, data, out, settings=settings, tasks=["xnli"], languages=["en", "de"], runtime=RUNTIME
    )
    return config, out, data


def _xstilts(*args: str) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _rotate_column(path: Path, column: int, header: bool = False) -> None:
    """Change every NLI label in one tab-separated column (entailment -> neutral -> contradiction -> ...)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out = lines[:1] if header else []
    for line in lines[1:] if header else lines:
        cols = line.split("\t")
        label = cols[column].lower()
        cols[column] = ROTATE[label].upper() if cols[column].isupper() else ROTATE[label]
        out.append("\t".join(cols))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _relabel(path: Path, label: str) -> None:
    """Give every row of an XTREME XNLI file the same label."""
    rows = [line.rsplit("\t", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("".join(f"{row}\t{label}\n" for row in rows), encoding="utf-8")


def _finals(out: Path) -> dict[tuple[str, str], float]:
    """(run id, language) -> final accuracy of every target run."""
    with sqlite3.connect(out / "results.sqlite") as con:
        return {
            (r, lang): v
            for r, lang, v in con.execute(
                "SELECT run_id, language, value FROM scores WHERE kind='final' AND metric='accuracy' AND run_id LIKE 'tgt-%'"
            )
        }


def _run_ids(out: Path) -> dict[str, str]:
    """Prefix ('tgt-none-xnli', 'int-sick', ...) -> run id."""
    with sqlite3.connect(out / "results.sqlite") as con:
        ids = [r for (r,) in con.execute("SELECT run_id FROM runs")]
    return {re.sub(r"-s\d+-\w+$", "", r): r for r in ids}


def _extra(out: Path, run_id: str) -> dict:
    with sqlite3.connect(out / "results.sqlite") as con:
        return json.loads(con.execute("SELECT extra FROM runs WHERE run_id=?", (run_id,)).fetchone()[0])


def _stale_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("stale: ")]


def _csv_stale(out: Path) -> dict[str, bool]:
    with open(out / "results.csv", encoding="utf-8") as fh:
        return {row["run_id"]: row["stale"] == "True" for row in csv.DictReader(fh)}


def test_changed_eval_labels_are_reported_kept_and_recomputed_on_request(
    tiny_model: Path, mini_data: Path, tmp_path: Path
) -> None:
    config, out, data = _study(tmp_path, mini_data, tiny_model, ["none"])
    _xstilts("run", config)
    (run_id,) = _run_ids(out).values()
    recorded = _extra(out, run_id)["identity"]
    assert {"xtreme/xnli/dev-en.tsv", "xtreme/xnli/dev-de.tsv"} <= set(recorded["data"])  # train and eval
    assert recorded["model"]
    before = _finals(out)

    _relabel(data / "xtreme" / "xnli" / "dev-de.tsv", "entailment")  # a third of them were before
    kept = _xstilts("run", config)
    assert _stale_lines(kept.output) == [
        f"stale: {run_id}: data changed since it ran: xtreme/xnli/dev-de.tsv (kept, skipped)"
    ]
    assert "0 run(s) done now, 1 already done (1 of them stale" in kept.output
    assert _finals(out) == before

    shown = _xstilts("results", out)
    assert "1 stale run(s) (marked 'stale')" in shown.output
    assert f"stale: {run_id}: data changed since it ran: xtreme/xnli/dev-de.tsv" in shown.output
    assert _csv_stale(out) == {run_id: True}
    _xstilts("report", out, "--n-boot", "10")
    report = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert "Warning: 1 stale run(s)" in report
    assert f"{run_id} (stale): data changed since it ran: xtreme/xnli/dev-de.tsv" in report

    rerun = _xstilts("run", config, "--rerun-stale")
    assert _stale_lines(rerun.output) == [
        f"stale: {run_id}: data changed since it ran: xtreme/xnli/dev-de.tsv (recomputing it)"
    ]
    assert "1 run(s) done now, 0 already done" in rerun.output
    after = _finals(out)
    assert after[(run_id, "de")] != before[(run_id, "de")]  # scored against the new labels
    assert after[(run_id, "en")] == before[(run_id, "en")]  # English data unchanged: same run, same score
    assert _csv_stale(out) == {run_id: False}

    again = _xstilts("run", config)
    assert not _stale_lines(again.output) and "0 run(s) done now, 1 already done" in again.output


def test_a_stale_phase2_run_makes_its_targets_stale_and_recomputes_them(
    tiny_model: Path, mini_data: Path, tmp_path: Path
) -> None:
    config, out, data = _study(tmp_path, mini_data, tiny_model, ["none", "sick"])
    _xstilts("run", config)
    ids = _run_ids(out)
    parent, child, baseline = ids["int-sick"], ids["tgt-sick-xnli"], ids["tgt-none-xnli"]
    first_checkpoint = _extra(out, parent)["identity"]["checkpoint"]
    assert _extra(out, child)["identity"]["parent_checkpoint"] == first_checkpoint

    _rotate_column(data / "english" / "sick" / "SICK.txt", 3, header=True)  # phase 2's training data
    kept = _xstilts("run", config)
    assert _stale_lines(kept.output) == [
        f"stale: {parent}: data changed since it ran: english/sick/SICK.txt (kept, skipped)",
        f"stale: {child}: its phase-2 run {parent} is stale (kept, skipped)",
    ]
    assert "0 run(s) done now, 3 already done (2 of them stale" in kept.output
    assert _csv_stale(out) == {baseline: False, child: True}

    rerun = _xstilts("run", config, "--rerun-stale")
    assert "2 run(s) done now, 1 already done" in rerun.output
    new_checkpoint = _extra(out, parent)["identity"]["checkpoint"]
    assert new_checkpoint != first_checkpoint  # trained on other labels
    assert _extra(out, child)["identity"]["parent_checkpoint"] == new_checkpoint
    assert not _stale_lines(_xstilts("run", config).output)


def test_changed_pretrained_weights_are_detected(tiny_model: Path, mini_data: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    config, out, _ = _study(tmp_path, mini_data, model, ["none", "sick"])
    _xstilts("run", config)
    ids = _run_ids(out)

    weights = model / "model.safetensors"
    state = load_file(str(weights))
    name = next(k for k in sorted(state) if k.endswith("attention.self.query.weight"))
    state[name] = state[name] + 0.01
    save_file(state, str(weights), metadata={"format": "pt"})
    kept = _xstilts("run", config)
    changed = f"model weights changed since it ran: {model}"
    assert _stale_lines(kept.output) == [
        f"stale: {ids['tgt-none-xnli']}: {changed} (kept, skipped)",
        f"stale: {ids['int-sick']}: {changed} (kept, skipped)",
        f"stale: {ids['tgt-sick-xnli']}: its phase-2 run {ids['int-sick']} is stale (kept, skipped)",
    ]
    assert set(_csv_stale(out).values()) == {True}


def test_a_store_without_identities_resumes_done_and_not_stale(tiny_model: Path, mini_data: Path, tmp_path: Path) -> None:
    config, out, data = _study(tmp_path, mini_data, tiny_model, ["none"])
    _xstilts("run", config)
    with sqlite3.connect(out / "results.sqlite") as con:  # what a store of an older xstilts holds
        con.execute("UPDATE runs SET extra = json_remove(extra, '$.identity')")
    before = _finals(out)

    _relabel(data / "xtreme" / "xnli" / "dev-de.tsv", "entailment")
    resumed = _xstilts("run", config, "--rerun-stale")
    assert not _stale_lines(resumed.output)
    assert resumed.output.count("identity not recorded") == 1
    assert "0 run(s) done now, 1 already done" in resumed.output
    assert _finals(out) == before
    shown = _xstilts("results", out)
    assert "stale" not in shown.output
    assert set(_csv_stale(out).values()) == {False}
