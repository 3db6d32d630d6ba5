"""Task.split_file: the options every single-file English task shares (``dir``, ``train_file``, ``eval_file``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.tasks import get_task

# task, its folder under the data directory, default train and dev file names
SINGLE_FILE_TASKS = [
    ("qqp", "english/qqp", "train.tsv", "dev.tsv"),
    ("sst2", "english/sst2", "train.tsv", "dev.tsv"),
    ("mnli", "english/mnli", "train.tsv", "dev_matched.tsv"),
    ("commonsenseqa", "english/commonsenseqa", "train_rand_split.jsonl", "dev_rand_split.jsonl"),
]


@pytest.mark.parametrize(("name", "folder", "train", "dev"), SINGLE_FILE_TASKS)
def test_defaults_lie_under_the_data_directory(tmp_path: Path, name: str, folder: str, train: str,
                                               dev: str) -> None:
    task = get_task(name, data_dir=tmp_path)
    assert task.files("train", "en") == [tmp_path / folder / train]
    assert task.files("eval", "en") == [tmp_path / folder / dev]


@pytest.mark.parametrize(("name", "folder", "train", "dev"), SINGLE_FILE_TASKS)
def test_options_move_the_folder_and_rename_each_split(tmp_path: Path, name: str, folder: str,
                                                       train: str, dev: str) -> None:
    other = tmp_path / "elsewhere"
    only_dir = get_task(name, {"dir": str(other)}, tmp_path)
    assert only_dir.files("train", "en") == [other / train]
    assert only_dir.files("eval", "en") == [other / dev]
    renamed = get_task(name, {"dir": str(other), "train_file": "t.x", "eval_file": "e.x"}, tmp_path)
    assert renamed.files("train", "en") == [other / "t.x"]
    assert renamed.files("eval", "en") == [other / "e.x"]


def test_ccg_keeps_its_tag_file_beside_the_split(tmp_path: Path) -> None:
    folder = tmp_path / "english" / "ccg"
    folder.mkdir(parents=True)
    (folder / "tags_to_id.json").write_text('{"N": 0, "NP": 1}')
    task = get_task("ccg", {"eval_file": "ccg.test"}, tmp_path)
    assert task.files("train", "en") == [folder / "ccg.train", folder / "tags_to_id.json"]
    assert task.files("eval", "en") == [folder / "ccg.test", folder / "tags_to_id.json"]
