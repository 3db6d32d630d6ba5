"""Data and model identity (``xstilts.identity``): digests, recording of reads, stale verdicts, and the
tokenisation cache's record of what it read. The end-to-end CLI behaviour is in
``tests/reliability/test_stale_data.py``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from xstilts import identity
from xstilts.identity import (
    check_runs,
    file_digest,
    model_digest,
    not_recording,
    note_read,
    recording,
    run_identity,
)


def test_file_digest_follows_the_bytes_not_the_write(tmp_path: Path) -> None:
    f = tmp_path / "a.tsv"
    f.write_text("x\tentailment\n")
    first = file_digest(f)
    f.write_text("x\tneutral\n")  # one byte longer
    second = file_digest(f)
    f.write_text("x\tentailment\n")
    os.utime(f, ns=(1, 1))  # another mtime, the same bytes
    assert first != second and file_digest(f) == first


def test_recording_collects_every_read_of_nested_blocks(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    note_read(a)  # nothing records: a no-op
    with recording() as outer:
        note_read(a)
        with recording() as inner:
            note_read(b)
        with not_recording():
            note_read(c)
    assert outer == {str(a), str(b)} and inner == {str(b)}


def _row(run_id: str, record: dict | None, parent: str | None = None, status: str = "done") -> dict:
    extra = {"train_s": 1.0} | ({identity.KEY: record} if record is not None else {})
    return {"run_id": run_id, "status": status, "parent_run": parent, "extra": json.dumps(extra)}


def test_check_runs_names_the_changed_file_and_propagates_to_targets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "x").mkdir(parents=True)
    train, dev = data / "x" / "train.tsv", data / "x" / "dev.tsv"
    train.write_text("a\n")
    dev.write_text("b\n")
    parent = run_identity([str(train)], data, "nowhere", checkpoint=train) | {"model": None}
    child = run_identity([str(dev)], data, "nowhere") | {"parent_checkpoint": parent["checkpoint"]}
    assert set(parent["data"]) == {"x/train.tsv"} and set(child["data"]) == {"x/dev.tsv"}
    rows = [_row("int", parent), _row("tgt", child, parent="int"), _row("old", None), _row("failed", child, status="failed")]
    assert check_runs(rows).stale == {}
    assert check_runs(rows).unrecorded == ["old"]

    train.write_text("A\n")
    check = check_runs(rows)
    assert check.stale == {"int": "data changed since it ran: x/train.tsv", "tgt": "its phase-2 run int is stale"}
    dev.unlink()
    assert check_runs(rows[1:]).stale == {"tgt": "data changed since it ran: x/dev.tsv (missing)"}

    # the phase-2 run was re-run since (another checkpoint): its earlier target runs are stale
    train.write_text("a\n")
    dev.write_text("b\n")
    rerun = parent | {"checkpoint": "0" * 64}
    assert check_runs([_row("int", rerun), _row("tgt", child, parent="int")]).stale == {
        "tgt": "its phase-2 run int was re-run since (other checkpoint)"
    }


def test_a_moved_data_dir_is_checked_where_a_rerun_would_read(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    (old / "f.tsv").write_text("a\n")
    rows = [_row("r", run_identity([str(old / "f.tsv")], old, "nowhere"))]
    shutil.copytree(old, new)
    (new / "f.tsv").write_text("b\n")
    assert check_runs(rows).stale == {}  # where the run read
    assert check_runs(rows, data_dir=new).stale == {"r": "data changed since it ran: f.tsv"}


def test_weights_are_hashed_once_per_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XSTILTS_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    weights = model / "model.safetensors"
    weights.write_bytes(b"\0" * 1000)
    digest = model_digest(str(model))
    assert digest == file_digest(weights)
    assert (tmp_path / "cache" / identity.WEIGHT_DIGESTS).is_file()

    def no_hashing(*args: object) -> str:
        raise AssertionError("weights hashed again")

    identity._weights.clear()  # a new process: only the digest file remembers
    monkeypatch.setattr(identity, "_digest", no_hashing)
    assert model_digest(str(model)) == digest
    weights.write_bytes(b"\1" * 1000)
    with pytest.raises(AssertionError, match="hashed again"):  # changed weights are hashed again
        model_digest(str(model))


def test_cache_hit_replays_its_reads_and_a_change_outside_the_key_rebuilds(
    mini_data: Path, default_model: Path, tmp_path: Path
) -> None:
    """XNLI's German eval split is drawn by English premises: dev-en is read, though the cache key
    (Task.files) names dev-de only."""
    from xstilts.featurize import load_features
    from xstilts.models.loading import load_tokenizer
    from xstilts.tasks import get_task

    data = tmp_path / "data"
    shutil.copytree(mini_data, data)
    task, tok, cache = get_task("xnli", None, data), load_tokenizer(str(default_model)), tmp_path / "cache"
    folder = data / "xtreme" / "xnli"
    both = {str(folder / "dev-de.tsv"), str(folder / "dev-en.tsv")}
    with recording() as read:
        first, _ = load_features(task, "eval", "de", tok, 32, None, cache)
    assert read == both
    with recording() as read:  # from the cache: the same files count as read
        again, _ = load_features(task, "eval", "de", tok, 32, None, cache)
    assert read == both and again == first and len(list(cache.iterdir())) == 1

    en = folder / "dev-en.tsv"  # one premise per row: another premise-disjoint split
    en.write_text(
        "".join(
            f"premise {i}\t{line.split(chr(9), 1)[1]}\n"
            for i, line in enumerate(en.read_text(encoding="utf-8").splitlines())
        ),
        encoding="utf-8",
    )
    rebuilt, _ = load_features(task, "eval", "de", tok, 32, None, cache)
    assert rebuilt != first
