from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.config import load_config
from xstilts.errors import ConfigError

GOOD = """name = "x"
seeds = [1, 2]
[intermediate]
settings = ["none", "sick"]
[target]
tasks = ["panx"]
[target.train]
lr = 2e-5
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, GOOD))
    assert cfg.intermediate.setting_names() == ["none", "sick"]
    assert cfg.target.languages_for("panx", ("de", "en"))[0] == "en"


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        (GOOD.replace("lr = 2e-5", "lr = -1"), "target.train.lr", 8),
        (GOOD.replace("lr = 2e-5", "learning_rate = 1"), "target.train.learning_rate", 8),
        (GOOD.replace("seeds = [1, 2]", "seeds = [1, 1]"), "key 'seeds': Value error, seeds must be distinct", 2),
        (GOOD.replace('tasks = ["panx"]', "tasks = []"), "target.tasks", 6),
        (GOOD.replace("[target.train]", "[target.train]\nbatch_size = 0"), "target.train.batch_size", 8),
    ],
)
def test_bad_values_name_the_key_and_line(tmp_path: Path, text: str, key: str, line: int | None) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert key in info.value.message
    assert info.value.line == line
    assert "\n" not in info.value.one_line()


def test_bad_toml_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, 'name = "x"\nseeds = [1,\n[target]\n'))
    assert "invalid TOML" in info.value.message and info.value.line is not None
