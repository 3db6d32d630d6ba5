"""Choosing an executor in the config; the [ray] table; fsspec checkpoint copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.config import load_config
from xstilts.errors import ConfigError
from xstilts.executors import get_executor
from xstilts.executors.local import run_local
from xstilts.executors.pool import run_pool
from xstilts.executors.ray import checkpoint_url, fetch_checkpoint, publish_checkpoint, run_ray
from xstilts.plan import make_plan

BASE = """name = "x"
seeds = [1, 2]
{top}
[intermediate]
settings = ["none", "sick"]
[target]
tasks = ["panx"]
{tables}"""


def _config(tmp_path: Path, top: str = "", tables: str = "") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(BASE.format(top=top, tables=tables), encoding="utf-8")
    return path


def test_local_is_the_default_and_stays_valid(tmp_path: Path) -> None:
    assert get_executor(load_config(_config(tmp_path))) is run_local
    assert get_executor(load_config(_config(tmp_path, 'executor = "local"'))) is run_local
    parallel = load_config(_config(tmp_path, tables="[runtime]\nparallel_runs = 2\n"))
    assert get_executor(parallel) is run_pool
    # runs at once change how, not which: the same run ids
    assert [r.run_id for r in make_plan(parallel)] == [r.run_id for r in make_plan(load_config(_config(tmp_path)))]


def test_ray_table(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, 'executor = "ray"', '[ray]\naddress = "auto"\ngpus_per_run = 1\n'
                                                             'max_retries = 3\nshared_dir = "s3://b/exp"\n'))
    assert get_executor(cfg) is run_ray
    assert (cfg.ray.address, cfg.ray.gpus_per_run, cfg.ray.max_retries, cfg.ray.shared_dir) == \
        ("auto", 1.0, 3, "s3://b/exp")
    # how a study is executed never changes which runs it has
    assert [r.run_id for r in make_plan(cfg)] == [r.run_id for r in make_plan(load_config(_config(tmp_path)))]


@pytest.mark.parametrize(("top", "tables", "key", "line"), [
    ('executor = "slurm"', "", "executor", 3),
    ('executor = "ray"', "[ray]\ncpus_per_gpu = 2\n", "ray.cpus_per_gpu", 9),
    ('executor = "ray"', "[ray]\ngpus_per_run = -1\n", "ray.gpus_per_run", 9),
    ('executor = "ray"', "[runtime]\nparallel_runs = 2\n", "executor", 3),
    ("", "[runtime]\nparallel_runs = 0\n", "runtime.parallel_runs", 9),
])
def test_bad_executor_settings_name_key_and_line(tmp_path: Path, top: str, tables: str, key: str,
                                                 line: int) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, top, tables))
    assert key in info.value.message and info.value.line == line


def test_mixed_precision_and_accumulation_options(tmp_path: Path) -> None:
    base = make_plan(load_config(_config(tmp_path, tables="[target.train]\nepochs = 3\n")))
    bf16 = make_plan(load_config(_config(tmp_path, tables="[runtime]\nbf16 = true\n")))
    bf16_too = make_plan(load_config(_config(tmp_path, tables='[runtime]\nmixed_precision = "bf16"\n')))
    fp16 = make_plan(load_config(_config(tmp_path, tables='[runtime]\nmixed_precision = "fp16"\n')))
    accum1 = make_plan(load_config(_config(tmp_path,
                                           tables="[target.train]\nepochs = 3\ngrad_accum_steps = 1\n")))
    accum2 = make_plan(load_config(_config(tmp_path, tables="[target.train]\ngrad_accum_steps = 2\n")))
    ids = [[r.run_id for r in p] for p in (base, bf16, bf16_too, fp16, accum1, accum2)]
    assert ids[1] == ids[2]  # two spellings of one setting
    assert ids[0] == ids[4]  # the default keeps the ids runs had before the option existed
    assert len({tuple(i) for i in ids}) == 4  # bf16, fp16 and accumulation each change results
    with pytest.raises(ConfigError, match="contradicts"):
        load_config(_config(tmp_path, tables='[runtime]\nbf16 = true\nmixed_precision = "fp16"\n'))


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_checkpoint_round_trip_through_shared_dir(tmp_path: Path, scheme: str) -> None:
    local = tmp_path / "scratch"
    local.mkdir()
    (local / "encoder.safetensors").write_bytes(b"\x00weights\xff" * 1000)
    url = checkpoint_url(f"{scheme}{tmp_path / 'shared'}/", "int-sick-s1-abc")
    assert url == f"{scheme}{tmp_path / 'shared'}/int-sick-s1-abc"
    assert publish_checkpoint(local, url) == url
    assert (tmp_path / "shared" / "int-sick-s1-abc" / "encoder.safetensors").is_file()
    back = fetch_checkpoint(url, tmp_path / "worker" / "parent")
    assert (back / "encoder.safetensors").read_bytes() == (local / "encoder.safetensors").read_bytes()
    with pytest.raises(Exception, match="missing"):
        fetch_checkpoint(f"{scheme}{tmp_path / 'shared'}/int-none", tmp_path / "w2")
