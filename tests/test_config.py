from __future__ import annotations

from pathlib import Path

import pytest

from xstilts import config as config_module
from xstilts.config import RuntimeConfig, load_config
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
        (GOOD.replace("seeds = [1, 2]", "seeds = [1, 1]"), "key 'seeds': seeds must be distinct", 2),
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


OVERRIDES = GOOD.replace("lr = 2e-5", "lr = 2e-5\nepochs = 2\nmax_train_examples = 800\neval_every = 10") + """
[target.overrides.panx]
lr = 1e-4
max_train_examples = "none"
"""


def test_overrides_merge_over_train(tmp_path: Path) -> None:
    """The keys an override names win; the others are inherited; "none" undoes an inherited value."""
    cfg = load_config(_write(tmp_path, OVERRIDES))
    hp = cfg.target.train_for("panx")
    assert (hp.lr, hp.epochs, hp.eval_every, hp.max_train_examples) == (1e-4, 2, 10, None)
    assert cfg.target.train.max_train_examples == 800  # the base itself is untouched
    # round trip through the dump the store keeps: the same effective values
    from xstilts.config import ExperimentConfig

    again = ExperimentConfig.model_validate(cfg.model_dump(mode="json"))
    assert again.target.train_for("panx") == hp


def test_overrides_without_a_train_table_inherit_the_target_defaults(tmp_path: Path) -> None:
    text = 'name = "x"\n[target]\ntasks = ["panx", "xnli"]\n[target.overrides.xnli]\nlr = 1e-4\n'
    cfg = load_config(_write(tmp_path, text))
    assert cfg.target.train_for("xnli").epochs == cfg.target.train.epochs == 3
    assert cfg.target.train_for("panx") == cfg.target.train


def test_quickstart_xnli_keeps_its_uncapped_training_set() -> None:
    """Shipped configs say what they mean: XNLI trains on all its pairs, PAN-X on 800."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "quickstart.toml")
    assert cfg.target.train_for("panx").max_train_examples == 800
    assert cfg.target.train_for("xnli").max_train_examples is None


def test_set_values_are_typed_and_validated(tmp_path: Path) -> None:
    path = _write(tmp_path, OVERRIDES)
    cfg = load_config(path, ["target.train.lr=3e-4", "seeds=[1, 2, 3]", "target.overrides.panx.epochs=4",
                             "runtime.threads=2", "model=intfloat/multilingual-e5-small"])
    assert cfg.target.train.lr == 3e-4 and cfg.seeds == [1, 2, 3]
    assert cfg.target.train_for("panx").epochs == 4 and cfg.target.train_for("panx").lr == 1e-4
    assert cfg.runtime.threads == 2 and cfg.model == "intfloat/multilingual-e5-small"  # a bare string


@pytest.mark.parametrize(("assignment", "message"), [
    ("seeds=[-1]", "key 'seeds.0': Input should be greater than or equal to 0"),  # numpy refuses it mid-run
    ("seeds=[99999999999999999999]", "key 'seeds.0': Input should be less than 4294967296"),  # SQLite does
    ('seeds=["1"]', "key 'seeds.0': Input should be a valid integer"),  # not coerced
    ("target.train.batch_size=true", "key 'target.train.batch_size': Input should be a valid integer"),
    ("intermediate.mlm_weight=inf", "key 'intermediate.mlm_weight': Input should be a finite number"),
    ('intermediate.settings=["none", []]', "key 'intermediate.settings': a multi-task setting lists no task"),
    ('intermediate.settings=["none", "sick", "none"]', "key 'intermediate.settings': setting 'none' listed twice"),
    ('intermediate.settings=["sick", ["sick"]]', "key 'intermediate.settings': setting 'sick' listed twice"),
    ('target.tasks=["panx", "panx"]', "key 'target.tasks': task 'panx' listed twice"),
    ('target.languages=["en", "de", "de"]', "key 'target.languages': language 'de' listed twice"),
    ('target.languages={panx=["de", "de"]}', "key 'target.languages': language 'de' listed twice"),
])
def test_values_run_would_fail_on_are_refused(tmp_path: Path, assignment: str, message: str) -> None:
    """Each of these passed the check and then failed in a run (a traceback after the store existed),
    or ran something other than was written (a duplicate run, a coerced value)."""
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, GOOD), [assignment])
    assert err.value.one_line() == f"--set {assignment!r}: {message}"


@pytest.mark.parametrize(("assignment", "message"), [
    ("target.train.lr=abc", "--set 'target.train.lr=abc': key 'target.train.lr': Input should be a valid number"),
    ("target.trian.lr=1", "--set 'target.trian.lr=1': key 'target.trian': unknown key"),
    ("seeds=[1, 1]", "--set 'seeds=[1, 1]': key 'seeds': seeds must be distinct"),
    ("seeds", "--set 'seeds': expected KEY=VALUE"),
    ("name.x=1", "--set 'name.x=1': 'name' is a value, not a table"),
    # the checks after validation name the assignment too, not the line of the value it replaced
    ('target.tasks=["panxx"]', """--set 'target.tasks=["panxx"]': key 'target.tasks': unknown task 'panxx'"""),
    ('target.languages=["qq"]', """--set 'target.languages=["qq"]': key 'target.languages': no target evaluates"""),
    ('target.task_options.panx={dri="x"}',
     """--set 'target.task_options.panx={dri="x"}': key 'target.task_options.panx.dri': panx has no option"""),
])
def test_bad_set_names_the_assignment(tmp_path: Path, assignment: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, OVERRIDES), [assignment])
    assert err.value.one_line().startswith(message), err.value.one_line()


def test_plan_shows_effective_values(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from xstilts.cli import app

    result = CliRunner().invoke(app, ["plan", str(_write(tmp_path, OVERRIDES)), "--set", "target.train.epochs=5"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2:-1] for line in result.output.splitlines()
            if line.count("│") >= 4}
    assert [c.strip() for c in rows["epochs"]] == ["1", "5"]  # intermediate (its default), panx (--set)
    assert [c.strip() for c in rows["lr"]][1:] == ["0.0001"]
    assert [c.strip() for c in rows["max_train_examples"]][1:] == ["-"]


@pytest.mark.parametrize("native", [True, False])
def test_auto_bf16_is_decided_by_the_machine_and_named_in_run_ids(monkeypatch: pytest.MonkeyPatch,
                                                                  native: bool) -> None:
    """``bf16 = "auto"`` becomes a plain true/false when the config is read, so the run ids of the
    quickstart (which asks for it) are exactly those of an explicit ``bf16`` on that machine."""
    from xstilts.plan import make_plan

    monkeypatch.setattr(config_module, "native_bf16", lambda: native)
    quickstart = Path(__file__).resolve().parents[1] / "configs" / "quickstart.toml"
    auto = load_config(quickstart)
    assert auto.runtime.bf16 is native and auto.runtime.precision == ("bf16" if native else "no")
    explicit = load_config(quickstart, [f"runtime.bf16={str(native).lower()}"])
    other = load_config(quickstart, [f"runtime.bf16={str(not native).lower()}"])
    ids = [[r.run_id for r in make_plan(c)] for c in (auto, explicit, other)]
    assert ids[0] == ids[1] and not set(ids[0]) & set(ids[2])
    # another precision asked for explicitly wins over "auto"; "auto" spelled on the command line works
    assert RuntimeConfig(bf16="auto", mixed_precision="fp16").precision == "fp16"
    assert RuntimeConfig(bf16="auto", mixed_precision="no").bf16 is False
    assert load_config(quickstart, ["runtime.bf16=auto"]).runtime.bf16 is native
    # `xstilts plan` says which precision the runs will train in
    from typer.testing import CliRunner

    from xstilts.cli import app

    said = CliRunner().invoke(app, ["plan", str(quickstart)])
    assert said.exit_code == 0, said.output
    assert ("precision: bf16 autocast" if native else "precision: fp32") in said.output
